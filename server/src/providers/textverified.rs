//! TextVerified's API v2 (PROTOCOLS.md section 1): US numbers for one-off verifications.
//!
//! Every call carries a bearer token from `POST /api/pub/v2/auth`, cached until shortly
//! before it expires and fetched again once when a call answers 401. Creation is
//! idempotent (`Idempotency-Key` = our verification id), so a create that timed out is
//! retried with the same key and cannot buy a second number. Created resources are reached
//! through the links TextVerified returns, always on the configured host so that the token
//! never leaves it. Webhooks (`v2.sms.received`) are checked and read by the free functions
//! [`verify_webhook`] and [`parse_webhook`].
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use sha2::Sha512;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{NumberRequest, Poll, Provider, ProviderError, ProviderSms, RemoteState, Rental};

/// Our catalog's service codes and TextVerified's `serviceName`s for them. Only services
/// the catalog prices in the US are listed: TextVerified sells nothing else. The names
/// must match `GET /api/pub/v2/services?numberType=mobile&reservationType=verification`;
/// a code missing here is simply not served by TextVerified.
const SERVICES: &[(&str, &str)] = &[
    ("airbnb", "airbnb"),
    ("alibaba", "alibaba"),
    ("amazon", "amazon"),
    ("apple", "apple"),
    ("bumble", "bumble"),
    ("cashapp", "cashapp"),
    ("coinbase", "coinbase"),
    ("discord", "discord"),
    ("doordash", "doordash"),
    ("ebay", "ebay"),
    ("facebook", "facebook"),
    ("google", "google"),
    ("hinge", "hinge"),
    ("imo", "imo"),
    ("instagram", "instagram"),
    ("kakaotalk", "kakaotalk"),
    ("line", "line"),
    ("linkedin", "linkedin"),
    ("lyft", "lyft"),
    ("microsoft", "microsoft"),
    ("naver", "naver"),
    ("netflix", "netflix"),
    ("openai", "openai"),
    ("paypal", "paypal"),
    ("revolut", "revolut"),
    ("signal", "signal"),
    ("snapchat", "snapchat"),
    ("steam", "steam"),
    ("telegram", "telegram"),
    ("tiktok", "tiktok"),
    ("tinder", "tinder"),
    ("truecaller", "truecaller"),
    ("twitch", "twitch"),
    ("twitter", "twitter"),
    ("uber", "uber"),
    ("venmo", "venmo"),
    ("viber", "viber"),
    ("vk", "vk"),
    ("wechat", "wechat"),
    ("whatsapp", "whatsapp"),
    ("yahoo", "yahoo"),
    ("yandex", "yandex"),
];

/// The only country TextVerified sells numbers in.
const COUNTRY: &str = "US";

/// A token is fetched again this long before TextVerified says it expires, so that a call
/// started just before expiry does not carry a dead token.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Assumed lifetime of a token whose answer gives neither `expiresIn` nor `expiresAt`
/// (TextVerified's documented lifetime is about 15 minutes).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// How many times a create is sent in all (the first try plus retries after a timeout or
/// a 409 `IdempotencyConflict`), all with the same `Idempotency-Key`.
const CREATE_ATTEMPTS: u32 = 3;

/// How long to wait before asking again when TextVerified says the first create with our
/// key is still running (409 `IdempotencyConflict`).
const CONFLICT_WAIT: Duration = Duration::from_millis(500);

/// The most pages of SMS read in one poll; a verification never gets near this many.
const MAX_SMS_PAGES: usize = 10;

/// The prefix of the `X-Webhook-Signature` header value.
const SIGNATURE_PREFIX: &str = "HMAC-SHA512=";

/// TextVerified's verification state while it holds the number for us.
const PENDING: &str = "verificationPending";

/// A client of TextVerified's API v2, holding the account's credentials and its current
/// bearer token.
pub struct TextVerified {
    http: reqwest::Client,
    base_url: url::Url,
    username: String,
    api_key: String,
    /// The cached token. Held across a refresh, so that only one refresh runs at a time
    /// and the callers waiting behind it reuse its result.
    token: Mutex<Option<Token>>,
}

struct Token {
    bearer: String,
    refresh_at: Instant,
}

/// An answer read in full: status, `Location` and body.
struct Answer {
    status: StatusCode,
    location: Option<String>,
    body: Vec<u8>,
}

/// `BearerToken`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BearerToken {
    token: String,
    #[serde(default)]
    expires_in: Option<f64>,
    #[serde(default, deserialize_with = "lenient_time")]
    expires_at: Option<DateTime<Utc>>,
}

/// `Link`: where to find a created resource or the next page.
#[derive(Deserialize)]
struct Link {
    href: String,
}

/// The part of `VerificationExpanded` we read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verification {
    id: String,
    number: String,
    state: String,
    #[serde(default)]
    total_cost: Option<Value>,
    #[serde(default, deserialize_with = "lenient_time")]
    ends_at: Option<DateTime<Utc>>,
}

/// A page of a paginated listing; only `links.next` drives paging.
#[derive(Deserialize)]
struct Page<T> {
    data: Vec<T>,
    #[serde(default)]
    links: Option<PageLinks>,
}

#[derive(Deserialize)]
struct PageLinks {
    #[serde(default)]
    next: Option<Link>,
}

/// `Sms`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sms {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(deserialize_with = "required_time")]
    created_at: DateTime<Utc>,
    #[serde(default)]
    sms_content: Option<String>,
    #[serde(default)]
    parsed_code: Option<String>,
    #[serde(default)]
    encrypted: bool,
}

impl Sms {
    fn into_provider_sms(self) -> ProviderSms {
        message(
            self.id,
            self.from,
            self.sms_content,
            self.parsed_code,
            self.encrypted,
            self.created_at,
        )
    }
}

/// `Error`: both fields may be null or missing, and many error answers have no body.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

impl TextVerified {
    /// A client of the API at `base_url` (`https://www.textverified.com` in production),
    /// with `timeout` on every request.
    pub fn new(
        base_url: url::Url,
        username: String,
        api_key: String,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            !base_url.cannot_be_a_base() && matches!(base_url.scheme(), "http" | "https"),
            "the TextVerified base URL must be an http(s) URL, not {base_url}"
        );
        // reqwest is built without a TLS provider of its own: use ring, as sea-orm does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("namaskah/", env!("CARGO_PKG_VERSION")))
            // Redirects are not part of the API; following one could carry the token
            // somewhere unexpected.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http,
            base_url,
            username,
            api_key,
            token: Mutex::new(None),
        })
    }

    /// `base_url` + `/api/pub/v2/` + the segments, each percent-encoded (ids come from the
    /// network and must not be able to change the path).
    fn endpoint(&self, segments: &[&str]) -> Result<url::Url, ProviderError> {
        let mut url = self.base_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| ProviderError::Upstream("unusable base URL".to_owned()))?
            .pop_if_empty()
            .extend(["api", "pub", "v2"])
            .extend(segments);
        Ok(url)
    }

    /// The current token, fetching one if there is none or it is about to expire.
    async fn bearer(&self) -> Result<String, ProviderError> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.bearer.clone());
        }
        *slot = None;
        let token = self.authenticate().await?;
        let bearer = token.bearer.clone();
        *slot = Some(token);
        Ok(bearer)
    }

    /// Drops the cached token after a 401, unless another call already replaced it.
    async fn forget(&self, bearer: &str) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.bearer == bearer) {
            *slot = None;
        }
    }

    /// `POST /auth` with the account's username and API key.
    async fn authenticate(&self) -> Result<Token, ProviderError> {
        let request = self
            .http
            .post(self.endpoint(&["auth"])?)
            .header("X-API-USERNAME", &self.username)
            .header("X-API-KEY", &self.api_key);
        let answer = send(request).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            return Err(ProviderError::Unauthorized);
        }
        if !answer.status.is_success() {
            return Err(refusal(answer.status, &answer.body));
        }
        let token: BearerToken = read(&answer.body, "bearer token")?;
        if token.token.trim().is_empty() {
            return Err(ProviderError::Garbage("an empty bearer token".to_owned()));
        }
        let lifetime = token_lifetime(token.expires_in, token.expires_at, Utc::now());
        Ok(Token {
            bearer: token.token,
            refresh_at: Instant::now() + refresh_after(lifetime),
        })
    }

    /// Sends a request with the bearer token; on 401 fetches a new token once and sends the
    /// request once more. A second 401 means our credentials are no good.
    async fn execute(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder + Send,
    ) -> Result<Answer, ProviderError> {
        let bearer = self.bearer().await?;
        let answer = send(request().bearer_auth(&bearer)).await?;
        if answer.status != StatusCode::UNAUTHORIZED {
            return Ok(answer);
        }
        tracing::debug!("TextVerified answered 401: fetching a new token");
        self.forget(&bearer).await;
        let bearer = self.bearer().await?;
        let answer = send(request().bearer_auth(&bearer)).await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            return Err(ProviderError::Unauthorized);
        }
        Ok(answer)
    }

    /// A GET whose success is a JSON body of type `T`.
    async fn get<T: DeserializeOwned>(
        &self,
        url: url::Url,
        what: &str,
    ) -> Result<T, ProviderError> {
        let answer = self.execute(|| self.http.get(url.clone())).await?;
        if !answer.status.is_success() {
            return Err(refusal(answer.status, &answer.body));
        }
        read(&answer.body, what)
    }

    async fn details(&self, id: &str) -> Result<Verification, ProviderError> {
        let verification: Verification = self
            .get(self.endpoint(&["verifications", id])?, "verification")
            .await?;
        if verification.id != id {
            return Err(ProviderError::Garbage(format!(
                "asked about verification {id}, answered about {}",
                verification.id
            )));
        }
        Ok(verification)
    }

    /// `POST /verifications` with our key, retried with the same key after a timeout or
    /// while TextVerified says the first attempt is still running. Returns the link to the
    /// new verification.
    async fn create(&self, service_name: &str, key: &str) -> Result<url::Url, ProviderError> {
        let url = self.endpoint(&["verifications"])?;
        let body = serde_json::json!({ "serviceName": service_name, "capability": "sms" });
        // TextVerified accepts keys of 1 to 256 characters; without one a retry could buy
        // a second number, so there is none.
        let key = Some(key.trim()).filter(|k| (1..=256).contains(&k.len()));
        let attempts = if key.is_some() { CREATE_ATTEMPTS } else { 1 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .execute(|| {
                    let request = self.http.post(url.clone()).json(&body);
                    match key {
                        Some(key) => request.header("Idempotency-Key", key),
                        None => request,
                    }
                })
                .await;
            let answer = match result {
                Err(ProviderError::Timeout) if attempt < attempts => {
                    tracing::warn!(attempt, "TextVerified create timed out: retrying");
                    continue;
                }
                other => other?,
            };
            if answer.status.is_success() {
                return self.created_link(&answer);
            }
            let error = refusal(answer.status, &answer.body);
            if answer.status == StatusCode::CONFLICT
                && error == ProviderError::Timeout
                && attempt < attempts
            {
                tracing::debug!(attempt, "TextVerified create still running: waiting");
                tokio::time::sleep(CONFLICT_WAIT).await;
                continue;
            }
            return Err(error);
        }
    }

    /// The `Link` body of a 201, or else its `Location` header.
    fn created_link(&self, answer: &Answer) -> Result<url::Url, ProviderError> {
        let href = match serde_json::from_slice::<Link>(&answer.body) {
            Ok(link) => link.href,
            Err(e) => answer.location.clone().ok_or_else(|| {
                ProviderError::Garbage(format!("a created verification without a link: {e}"))
            })?,
        };
        resolve_link(&self.base_url, &href)
    }

    /// Every SMS of the verification, following `links.next` page by page.
    async fn messages(&self, id: &str) -> Result<Vec<ProviderSms>, ProviderError> {
        let mut url = self.endpoint(&["sms"])?;
        url.query_pairs_mut().append_pair("reservationId", id);
        let mut messages = Vec::new();
        for _ in 0..MAX_SMS_PAGES {
            let page: Page<Sms> = self.get(url, "SMS page").await?;
            messages.extend(page.data.into_iter().map(Sms::into_provider_sms));
            match page.links.and_then(|l| l.next) {
                Some(next) => url = resolve_link(&self.base_url, &next.href)?,
                None => return Ok(messages),
            }
        }
        tracing::warn!(
            verification = id,
            pages = MAX_SMS_PAGES,
            "TextVerified lists more SMS pages than we read"
        );
        Ok(messages)
    }

    /// `POST /verifications/{id}/{action}` with no body; `Ok` on 2xx, else the answer.
    async fn act(&self, id: &str, action: &str) -> Result<Result<(), Answer>, ProviderError> {
        let url = self.endpoint(&["verifications", id, action])?;
        let answer = self.execute(|| self.http.post(url.clone())).await?;
        if answer.status.is_success() {
            Ok(Ok(()))
        } else {
            Ok(Err(answer))
        }
    }
}

#[async_trait]
impl Provider for TextVerified {
    fn name(&self) -> &'static str {
        "textverified"
    }

    fn idempotent_rent(&self) -> bool {
        // Creation carries an `Idempotency-Key`: the same key returns the same rental.
        true
    }

    fn serves(&self, service: &str, country: &str) -> bool {
        country == COUNTRY && service_name(service).is_some()
    }

    async fn rent(&self, request: &NumberRequest<'_>) -> Result<Rental, ProviderError> {
        let service = match service_name(request.service) {
            Some(service) if request.country == COUNTRY => service,
            _ => return Err(ProviderError::Unsupported),
        };
        let link = self.create(service, request.idempotency_key).await?;
        let verification: Verification = self.get(link, "created verification").await?;
        Ok(Rental {
            phone_number: e164(&verification.number)?,
            provider_ref: verification.id,
            expires_at: verification.ends_at,
            cost: verification.total_cost.as_ref().and_then(cost),
            quiet_until: None,
        })
    }

    async fn poll(&self, rental: &str) -> Result<Poll, ProviderError> {
        // The state first: an SMS that arrives between the two reads is then still seen,
        // whereas reading the messages first could miss one that came just before the end.
        let state = match self.details(rental).await?.state.as_str() {
            PENDING => RemoteState::Waiting,
            _ => RemoteState::Ended,
        };
        let messages = self.messages(rental).await?;
        Ok(Poll {
            messages,
            state,
            quiet_until: None,
        })
    }

    async fn cancel(&self, rental: &str) -> Result<(), ProviderError> {
        let answer = match self.act(rental, "cancel").await? {
            Ok(()) => return Ok(()),
            Err(answer) => answer,
        };
        if answer.status != StatusCode::BAD_REQUEST {
            return Err(refusal(answer.status, &answer.body));
        }
        // 400: not cancellable. Fine if it has already ended (timed out, completed,
        // cancelled); a number still held must not be forgotten.
        let verification = self.details(rental).await?;
        if verification.state == PENDING {
            return Err(ProviderError::Refused(format!(
                "cancel refused while pending: {}",
                describe_refusal(&answer.body)
            )));
        }
        Ok(())
    }

    async fn finish(&self, _rental: &str) -> Result<(), ProviderError> {
        // TextVerified completes a verification by itself once an SMS arrives.
        Ok(())
    }

    async fn report(&self, rental: &str) -> Result<(), ProviderError> {
        match self.act(rental, "report").await? {
            Ok(()) => Ok(()),
            Err(answer) => Err(refusal(answer.status, &answer.body)),
        }
    }
}

/// Sends one request and reads the whole answer. A timeout (connecting, waiting or
/// reading) is `Timeout`; any other transport failure is `Upstream`.
async fn send(request: reqwest::RequestBuilder) -> Result<Answer, ProviderError> {
    let response = request
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(transport)?;
    let status = response.status();
    let location = response
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.bytes().await.map_err(transport)?.to_vec();
    Ok(Answer {
        status,
        location,
        body,
    })
}

fn transport(error: reqwest::Error) -> ProviderError {
    if error.is_timeout() {
        ProviderError::Timeout
    } else if error.is_connect() {
        ProviderError::Upstream("cannot connect".to_owned())
    } else {
        ProviderError::Upstream(error.to_string())
    }
}

/// Reads a success body; a body of another shape is `Garbage` (the error names the serde
/// failure, never the body, which may hold a token).
fn read<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ProviderError> {
    serde_json::from_slice(body)
        .map_err(|e| ProviderError::Garbage(format!("an unreadable {what}: {e}")))
}

/// Maps an error answer to our errors (PROTOCOLS.md 1.2, the mock error matrix).
///
/// `TooManyUnfinishedVerifications` is `RateLimited`: a limit on our account that lifts as
/// verifications end, during which another provider should be tried (and the breaker may
/// rest this one). `IdempotencyConflict` is `Timeout`: the first create with the key is
/// still running, so its outcome is unknown. `ProcessingError` is TextVerified failing, so
/// `Upstream`; `PricingFailure` and other refusals are `Refused`.
fn refusal(status: StatusCode, body: &[u8]) -> ProviderError {
    let error: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return ProviderError::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => return ProviderError::RateLimited,
        s if s.is_server_error() => return ProviderError::Upstream(format!("HTTP {status}")),
        s if s.is_redirection() => {
            return ProviderError::Upstream(format!("an unexpected redirect (HTTP {status})"));
        }
        _ => {}
    }
    match error.error_code.as_deref() {
        Some("Unavailable") => ProviderError::NoNumbers,
        Some("InsufficientBalance") => ProviderError::InsufficientBalance,
        Some("TooManyUnfinishedVerifications") => ProviderError::RateLimited,
        Some("IdempotencyConflict") => ProviderError::Timeout,
        Some("ProcessingError") => ProviderError::Upstream(format!(
            "HTTP {status}: ProcessingError {}",
            error.error_description.unwrap_or_default()
        )),
        _ if status == StatusCode::NOT_FOUND => {
            ProviderError::Refused("TextVerified does not know this verification".to_owned())
        }
        _ if status.is_success() => {
            ProviderError::Garbage(format!("HTTP {status} where an error was expected"))
        }
        _ => ProviderError::Refused(format!("HTTP {status}: {}", describe_refusal(body))),
    }
}

/// `errorCode: errorDescription`, or what there is of them.
fn describe_refusal(body: &[u8]) -> String {
    let error: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    match (error.error_code, error.error_description) {
        (Some(code), Some(description)) => format!("{code}: {description}"),
        (Some(text), None) | (None, Some(text)) => text,
        (None, None) => "no reason given".to_owned(),
    }
}

/// The catalog code's TextVerified `serviceName`.
fn service_name(service: &str) -> Option<&'static str> {
    SERVICES
        .iter()
        .find(|(code, _)| *code == service)
        .map(|(_, name)| *name)
}

/// TextVerified's `number` in E.164: its ten US digits become `+1XXXXXXXXXX`; a number
/// that already has its `+` is kept. Anything else is not a number we can hand out.
fn e164(number: &str) -> Result<String, ProviderError> {
    let number = number.trim();
    let digits: String = number
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let garbage = || ProviderError::Garbage(format!("not a phone number: {number:.40}"));
    let (plus, rest) = match digits.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, digits.as_str()),
    };
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Err(garbage());
    }
    match (plus, rest.len()) {
        (true, 8..=15) => Ok(format!("+{rest}")),
        (false, 10) => Ok(format!("+1{rest}")),
        (false, 11) if rest.starts_with('1') => Ok(format!("+{rest}")),
        _ => Err(garbage()),
    }
}

/// `totalCost` as TextVerified wrote it (a number, or a string if it ever sends one).
fn cost(total: &Value) -> Option<String> {
    match total {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        _ => None,
    }
}

/// How long a token lives: `expiresIn` when given, else until `expiresAt`, else a default.
fn token_lifetime(
    expires_in: Option<f64>,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Duration {
    if let Some(seconds) = expires_in.filter(|s| s.is_finite() && *s >= 0.0) {
        return Duration::from_secs_f64(seconds.min(86_400.0));
    }
    if let Some(at) = expires_at {
        return (at - now).to_std().unwrap_or(Duration::ZERO);
    }
    DEFAULT_TOKEN_LIFETIME
}

/// When to fetch a new token: [`TOKEN_MARGIN`] before expiry, or half-way through a
/// lifetime too short for that margin.
fn refresh_after(lifetime: Duration) -> Duration {
    if lifetime > TOKEN_MARGIN * 2 {
        lifetime - TOKEN_MARGIN
    } else {
        lifetime / 2
    }
}

/// A link from an answer, resolved against the base URL. The docs say to follow links
/// rather than build URLs, but the token is only ever sent to the configured origin: a
/// link to another origin is followed by its path and query on ours.
fn resolve_link(base: &url::Url, href: &str) -> Result<url::Url, ProviderError> {
    let link = base
        .join(href.trim())
        .map_err(|e| ProviderError::Garbage(format!("an unusable link: {e}")))?;
    if link.origin() == base.origin() {
        return Ok(link);
    }
    tracing::debug!(
        link = link.as_str(),
        "TextVerified linked to another origin: following it on ours"
    );
    let mut rebased = base.clone();
    rebased.set_path(link.path());
    rebased.set_query(link.query());
    rebased.set_fragment(None);
    Ok(rebased)
}

/// Dates as TextVerified writes them: RFC 3339, or without an offset (taken as UTC), as
/// .NET sometimes writes them.
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) => parse_time(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("not a date-time: {text:.40}"))),
    }
}

fn required_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    lenient_time(d)?.ok_or_else(|| serde::de::Error::custom("a null date-time"))
}

/// One SMS from either a poll or a webhook. An encrypted message's text cannot be read, so
/// only its parsed code is kept.
fn message(
    id: Option<String>,
    from: Option<String>,
    content: Option<String>,
    parsed_code: Option<String>,
    encrypted: bool,
    received_at: DateTime<Utc>,
) -> ProviderSms {
    let text = if encrypted { None } else { content };
    ProviderSms {
        id: id.filter(|id| !id.is_empty()),
        sender: from.unwrap_or_default(),
        text: text.unwrap_or_default(),
        code: parsed_code.filter(|code| !code.trim().is_empty()),
        received_at,
    }
}

/// A webhook delivery, read from its JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Webhook {
    /// `v2.sms.received` for one of our verifications.
    Sms {
        /// The delivery's key: the same for every retry of one event, to drop duplicates.
        idempotency_key: String,
        /// The verification the message belongs to (our rental's `provider_ref`).
        reservation_id: String,
        sms: ProviderSms,
    },
    /// Any other event (or an SMS that names no reservation): nothing to act on, but it is
    /// answered 200 so that TextVerified does not retry or disable the webhook.
    Other {
        event: String,
        idempotency_key: String,
    },
}

/// Checks the `X-Webhook-Signature` header value, `HMAC-SHA512=<base64>`, against the raw
/// body: Base64(HMAC-SHA512(key = the webhook secret as UTF-8 bytes, message = body)),
/// compared in constant time. A value without the prefix or not in base64 is wrong.
pub fn verify_webhook(secret: &str, body: &[u8], signature_header: &str) -> bool {
    let Some(encoded) = signature_header.trim().strip_prefix(SIGNATURE_PREFIX) else {
        return false;
    };
    let Ok(claimed) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&claimed).is_ok()
}

/// Reads a webhook body (already verified). Keys are matched without regard to case: the
/// schema is camelCase, but receivers in the wild read PascalCase (PROTOCOLS.md 1.3).
pub fn parse_webhook(body: &[u8]) -> Result<Webhook, ProviderError> {
    let envelope: Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Garbage(format!("an unreadable webhook: {e}")))?;
    if !envelope.is_object() {
        return Err(ProviderError::Garbage(
            "a webhook that is not an object".to_owned(),
        ));
    }
    let event = text(&envelope, "event")
        .ok_or_else(|| ProviderError::Garbage("a webhook without an event".to_owned()))?;
    // `idempotencyKey` is required; the event id is unique per event as well.
    let idempotency_key = text(&envelope, "idempotencyKey")
        .or_else(|| text(&envelope, "id"))
        .ok_or_else(|| ProviderError::Garbage("a webhook without an idempotency key".to_owned()))?;
    let data = field(&envelope, "data");
    let reservation_id = data.and_then(|d| text(d, "reservationId"));
    let (Some(data), Some(reservation_id)) = (data, reservation_id) else {
        return Ok(Webhook::Other {
            event,
            idempotency_key,
        });
    };
    if !event.eq_ignore_ascii_case("v2.sms.received") {
        return Ok(Webhook::Other {
            event,
            idempotency_key,
        });
    }
    let received_at = text(data, "createdAt")
        .as_deref()
        .and_then(parse_time)
        .ok_or_else(|| ProviderError::Garbage("an SMS webhook without createdAt".to_owned()))?;
    let encrypted = field(data, "encrypted").and_then(Value::as_bool) == Some(true);
    let sms = message(
        text(data, "id"),
        text(data, "from"),
        text(data, "smsContent"),
        text(data, "parsedCode"),
        encrypted,
        received_at,
    );
    Ok(Webhook::Sms {
        idempotency_key,
        reservation_id,
        sms,
    })
}

/// The value of `key` in a JSON object, its exact spelling first, then ignoring case.
fn field<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    let object = object.as_object()?;
    object.get(key).or_else(|| {
        object
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A non-empty string field (null, missing and other types are `None`).
fn text(object: &Value, key: &str) -> Option<String> {
    field(object, key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).expect("any key size");
        mac.update(body);
        let encoded = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        format!("{SIGNATURE_PREFIX}{encoded}")
    }

    #[test]
    fn numbers_become_e164() {
        assert_eq!(e164("2223334444").as_deref(), Ok("+12223334444"));
        assert_eq!(e164(" 222-333-4444 ").as_deref(), Ok("+12223334444"));
        assert_eq!(e164("(222) 333 4444").as_deref(), Ok("+12223334444"));
        assert_eq!(e164("12223334444").as_deref(), Ok("+12223334444"));
        assert_eq!(e164("+12223334444").as_deref(), Ok("+12223334444"));
        assert_eq!(e164("+447700900123").as_deref(), Ok("+447700900123"));
        for bad in [
            "",
            "+",
            "222333444",
            "22233344445",
            "32223334444",
            "222333444x",
            "+1234",
            "++12223334444",
            "+1222333444455556",
        ] {
            assert!(
                matches!(e164(bad), Err(ProviderError::Garbage(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn signatures_are_checked_exactly() {
        let secret = "whsec_test_1";
        let body = br#"{"event":"v2.sms.received"}"#;
        let good = sign(secret, body);
        assert!(verify_webhook(secret, body, &good));
        assert!(verify_webhook(secret, body, &format!(" {good} ")));
        assert!(!verify_webhook("whsec_test_2", body, &good));
        assert!(!verify_webhook(
            secret,
            br#"{"event":"v2.sms.receivee"}"#,
            &good
        ));
        let bare = good.trim_start_matches(SIGNATURE_PREFIX);
        assert!(!verify_webhook(secret, body, bare));
        assert!(!verify_webhook(
            secret,
            body,
            &format!("HMAC-SHA256={bare}")
        ));
        assert!(!verify_webhook(secret, body, &good[..good.len() - 8]));
        assert!(!verify_webhook(secret, body, "HMAC-SHA512=not base64!"));
        assert!(!verify_webhook(secret, body, "HMAC-SHA512="));
        assert!(!verify_webhook(secret, body, ""));
    }

    #[test]
    fn sms_webhooks_are_read_in_camel_case() {
        let body = br#"{"id":"evt_1","event":"v2.sms.received","attempt":1,
            "occurredAt":"2026-01-02T03:04:05+00:00","idempotencyKey":"idem_1",
            "data":{"from":"22000","to":"2223334444","createdAt":"2026-01-02T03:04:00+00:00",
            "smsContent":"Your code is 123456","parsedCode":"123456","encrypted":false,
            "reservationId":"ver_1"}}"#;
        let expected = Webhook::Sms {
            idempotency_key: "idem_1".into(),
            reservation_id: "ver_1".into(),
            sms: ProviderSms {
                id: None,
                sender: "22000".into(),
                text: "Your code is 123456".into(),
                code: Some("123456".into()),
                received_at: parse_time("2026-01-02T03:04:00Z").expect("a time"),
            },
        };
        assert_eq!(parse_webhook(body), Ok(expected));
    }

    #[test]
    fn sms_webhooks_are_read_in_pascal_case() {
        let body = br#"{"Id":"evt_1","Event":"v2.sms.received","Attempt":1,
            "IdempotencyKey":"idem_2","Data":{"From":null,"To":"2223334444",
            "CreatedAt":"2026-01-02T03:04:00.1234567","SmsContent":null,"ParsedCode":"9876",
            "Encrypted":false,"ReservationId":"ver_2"}}"#;
        let Ok(Webhook::Sms {
            idempotency_key,
            reservation_id,
            sms,
        }) = parse_webhook(body)
        else {
            panic!("not an SMS webhook: {:?}", parse_webhook(body));
        };
        assert_eq!(idempotency_key, "idem_2");
        assert_eq!(reservation_id, "ver_2");
        assert_eq!(sms.sender, "");
        assert_eq!(sms.text, "");
        assert_eq!(sms.code.as_deref(), Some("9876"));
        assert_eq!(
            sms.received_at,
            parse_time("2026-01-02T03:04:00.1234567Z").expect("a time")
        );
    }

    #[test]
    fn encrypted_text_is_not_passed_on() {
        let body = br#"{"event":"v2.sms.received","idempotencyKey":"k","data":{
            "createdAt":"2026-01-02T03:04:00Z","smsContent":"AAECAwQ=","parsedCode":"55",
            "encrypted":true,"reservationId":"ver_3"}}"#;
        let Ok(Webhook::Sms { sms, .. }) = parse_webhook(body) else {
            panic!("not an SMS webhook");
        };
        assert_eq!(sms.text, "");
        assert_eq!(sms.code.as_deref(), Some("55"));
    }

    #[test]
    fn other_webhooks_are_named() {
        let created = br#"{"event":"v2.reservation.created","idempotencyKey":"k1",
            "data":{"id":"ver_1","type":"verification"}}"#;
        assert_eq!(
            parse_webhook(created),
            Ok(Webhook::Other {
                event: "v2.reservation.created".into(),
                idempotency_key: "k1".into()
            })
        );
        let rental_sms = br#"{"event":"v2.sms.received","idempotencyKey":"k2",
            "data":{"createdAt":"2026-01-02T03:04:00Z","reservationId":null}}"#;
        assert!(matches!(
            parse_webhook(rental_sms),
            Ok(Webhook::Other { event, .. }) if event == "v2.sms.received"
        ));
        let test = br#"{"Id":"evt_9","Event":"v2.test"}"#;
        assert_eq!(
            parse_webhook(test),
            Ok(Webhook::Other {
                event: "v2.test".into(),
                idempotency_key: "evt_9".into()
            })
        );
    }

    #[test]
    fn unreadable_webhooks_are_garbage() {
        for body in [
            &b"{\"event\":\"v2.sms"[..],
            b"[]",
            b"{}",
            br#"{"event":"v2.sms.received"}"#,
            br#"{"event":"v2.sms.received","idempotencyKey":"k","data":{"reservationId":"v"}}"#,
            br#"{"event":"v2.sms.received","idempotencyKey":"k",
                "data":{"reservationId":"v","createdAt":"yesterday"}}"#,
        ] {
            assert!(
                matches!(parse_webhook(body), Err(ProviderError::Garbage(_))),
                "{} was read",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn error_answers_are_mapped() {
        let body = |code: &str| format!(r#"{{"errorCode":"{code}","errorDescription":"x"}}"#);
        let bad = StatusCode::BAD_REQUEST;
        assert_eq!(
            refusal(bad, body("Unavailable").as_bytes()),
            ProviderError::NoNumbers
        );
        assert_eq!(
            refusal(bad, body("InsufficientBalance").as_bytes()),
            ProviderError::InsufficientBalance
        );
        assert_eq!(
            refusal(bad, body("TooManyUnfinishedVerifications").as_bytes()),
            ProviderError::RateLimited
        );
        assert_eq!(
            refusal(StatusCode::CONFLICT, body("IdempotencyConflict").as_bytes()),
            ProviderError::Timeout
        );
        assert!(matches!(
            refusal(bad, body("ProcessingError").as_bytes()),
            ProviderError::Upstream(_)
        ));
        assert!(matches!(
            refusal(bad, body("PricingFailure").as_bytes()),
            ProviderError::Refused(m) if m.contains("PricingFailure")
        ));
        assert!(matches!(refusal(bad, b""), ProviderError::Refused(_)));
        assert!(matches!(
            refusal(bad, br#"{"errorCode":null,"errorDescription":null}"#),
            ProviderError::Refused(_)
        ));
        assert!(matches!(refusal(bad, b"<html>"), ProviderError::Refused(_)));
        assert!(matches!(
            refusal(StatusCode::NOT_FOUND, b""),
            ProviderError::Refused(_)
        ));
        assert_eq!(
            refusal(StatusCode::FORBIDDEN, b""),
            ProviderError::Unauthorized
        );
        assert_eq!(
            refusal(StatusCode::UNAUTHORIZED, b""),
            ProviderError::Unauthorized
        );
        assert_eq!(
            refusal(
                StatusCode::TOO_MANY_REQUESTS,
                body("Unavailable").as_bytes()
            ),
            ProviderError::RateLimited
        );
        for status in [500, 502, 503, 504] {
            let status = StatusCode::from_u16(status).expect("a status");
            assert!(matches!(
                refusal(status, body("Unavailable").as_bytes()),
                ProviderError::Upstream(_)
            ));
        }
        assert!(matches!(
            refusal(StatusCode::FOUND, b""),
            ProviderError::Upstream(_)
        ));
    }

    #[test]
    fn services_map_to_textverified_names_in_the_us_only() {
        assert_eq!(service_name("google"), Some("google"));
        assert_eq!(service_name("twitter"), Some("twitter"));
        assert_eq!(service_name("binance"), None);
        assert_eq!(service_name("Google"), None);
        let client = TextVerified::new(
            "http://127.0.0.1:9".parse().expect("a URL"),
            "u".into(),
            "k".into(),
            Duration::from_secs(1),
        )
        .expect("a client");
        assert_eq!(client.name(), "textverified");
        assert!(client.serves("whatsapp", "US"));
        assert!(!client.serves("whatsapp", "GB"));
        assert!(!client.serves("whatsapp", "us"));
        assert!(!client.serves("shopee", "US"));
        let names: std::collections::HashSet<_> = SERVICES.iter().map(|(_, n)| n).collect();
        assert_eq!(names.len(), SERVICES.len(), "two codes share a serviceName");
    }

    #[test]
    fn endpoints_keep_a_base_path_and_encode_ids() {
        let client = TextVerified::new(
            "https://proxy.example/tv/".parse().expect("a URL"),
            "u".into(),
            "k".into(),
            Duration::from_secs(1),
        )
        .expect("a client");
        assert_eq!(
            client
                .endpoint(&["verifications", "a/b?c", "cancel"])
                .expect("a URL")
                .as_str(),
            "https://proxy.example/tv/api/pub/v2/verifications/a%2Fb%3Fc/cancel"
        );
    }

    #[test]
    fn links_stay_on_the_configured_origin() {
        let base: url::Url = "https://www.textverified.com".parse().expect("a URL");
        let same = "https://www.textverified.com/api/pub/v2/verifications/v1";
        assert_eq!(resolve_link(&base, same).expect("a link").as_str(), same);
        assert_eq!(
            resolve_link(&base, "/api/pub/v2/sms?page=2")
                .expect("a link")
                .as_str(),
            "https://www.textverified.com/api/pub/v2/sms?page=2"
        );
        assert_eq!(
            resolve_link(
                &base,
                "http://evil.example:81/api/pub/v2/sms?reservationId=v&p=2"
            )
            .expect("a link")
            .as_str(),
            "https://www.textverified.com/api/pub/v2/sms?reservationId=v&p=2"
        );
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let now = Utc::now();
        assert_eq!(
            token_lifetime(Some(899.0), None, now),
            Duration::from_secs(899)
        );
        let at = now + chrono::Duration::seconds(600);
        assert_eq!(
            token_lifetime(None, Some(at), now),
            Duration::from_secs(600)
        );
        assert_eq!(
            token_lifetime(None, Some(now - chrono::Duration::seconds(5)), now),
            Duration::ZERO
        );
        assert_eq!(
            token_lifetime(Some(f64::NAN), None, now),
            DEFAULT_TOKEN_LIFETIME
        );
        assert_eq!(
            refresh_after(Duration::from_secs(899)),
            Duration::from_secs(839)
        );
        assert_eq!(
            refresh_after(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(refresh_after(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn costs_and_times_are_read_as_written() {
        assert_eq!(cost(&serde_json::json!(0.95)).as_deref(), Some("0.95"));
        assert_eq!(cost(&serde_json::json!(5)).as_deref(), Some("5"));
        assert_eq!(cost(&serde_json::json!("1.25")).as_deref(), Some("1.25"));
        assert_eq!(cost(&Value::Null), None);
        let utc = parse_time("2020-06-15T00:41:35Z").expect("a time");
        assert_eq!(parse_time("2020-06-15T00:41:35+00:00"), Some(utc));
        assert_eq!(parse_time("2020-06-15T02:41:35+02:00"), Some(utc));
        assert_eq!(parse_time("2020-06-15T00:41:35"), Some(utc));
        assert_eq!(parse_time("15/06/2020"), None);
    }
}
