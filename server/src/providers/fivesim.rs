//! 5sim's API v1 (PROTOCOLS.md section 2): buy an activation, check it for SMS, and
//! finish, cancel or ban it, every call a `GET` behind a `Bearer` API key.
//!
//! 5sim answers success with JSON (its Order object) and failure with a plain-text body
//! (`no free phones`) whose HTTP status varies between 200 and 4xx, so the body is read
//! first and matched on its words; the status decides only when the words are unknown.
//! 5sim has no idempotency key: a buy that times out is never retried here, because it may
//! have bought a number (the caller decides).
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{NumberRequest, Poll, Provider, ProviderError, ProviderSms, RemoteState, Rental};

/// The longest slice of an unexpected body quoted in an error.
const QUOTE: usize = 120;

/// The 5sim client: one [`Provider`] over one account.
pub struct FiveSim {
    http: reqwest::Client,
    base_url: url::Url,
    api_key: String,
}

impl fmt::Debug for FiveSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("FiveSim")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl FiveSim {
    /// A client for the account behind `api_key`. `base_url` is 5sim's origin
    /// (`https://5sim.net`); one that already ends in `/v1` works too. `timeout` bounds
    /// each whole call, connecting included.
    pub fn new(base_url: url::Url, api_key: String, timeout: Duration) -> anyhow::Result<Self> {
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            anyhow::bail!("the 5sim base URL must be an http(s) URL, not {base_url}");
        }
        if api_key.trim().is_empty() {
            anyhow::bail!("the 5sim API key is empty");
        }
        // reqwest is built without a TLS provider of its own: use ring, as sea-orm does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("namaskah/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            base_url,
            api_key,
        })
    }

    /// `{base}/v1/{path}`, whether or not the configured base already ends in `/v1`.
    fn endpoint(&self, path: &str) -> url::Url {
        let mut url = self.base_url.clone();
        let base = url.path().trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base).to_owned();
        url.set_path(&format!("{base}/v1/{path}"));
        url.set_query(None);
        url.set_fragment(None);
        url
    }

    /// One `GET`, answered with an Order. Never retried: the caller knows whether the
    /// call is safe to repeat.
    async fn call(&self, path: &str) -> Result<Order, ProviderError> {
        let response = self
            .http
            .get(self.endpoint(path))
            .bearer_auth(&self.api_key)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        read_answer(status.as_u16(), &body)
    }

    /// Ends an order with `action` (`finish`, `cancel`, `ban`). Success is an Order in
    /// one of the `done` states. A refusal is looked into with a check: an order already
    /// in one of the `done` states counts as success (the action was repeated, or 5sim
    /// ended the order first), anything else keeps the refusal.
    async fn end(
        &self,
        action: &str,
        rental: &str,
        done: &[OrderStatus],
    ) -> Result<(), ProviderError> {
        let id = order_id(rental)?;
        let refusal = match self.call(&format!("user/{action}/{id}")).await {
            Ok(order) => {
                let status = order.status()?;
                return if done.contains(&status) {
                    Ok(())
                } else {
                    Err(ProviderError::Refused(format!(
                        "{action} left order {id} {}",
                        order.status
                    )))
                };
            }
            Err(refusal @ ProviderError::Refused(_)) => refusal,
            Err(other) => return Err(other),
        };
        match self.call(&format!("user/check/{id}")).await {
            Ok(order) if order.status().is_ok_and(|s| done.contains(&s)) => Ok(()),
            _ => Err(refusal),
        }
    }
}

#[async_trait]
impl Provider for FiveSim {
    fn name(&self) -> &'static str {
        "fivesim"
    }

    fn serves(&self, service: &str, country: &str) -> bool {
        product(service).is_some() && country_name(country).is_some()
    }

    /// Buys an activation on any operator. Not retried on a timeout: 5sim has no
    /// idempotency key, so a second buy could rent (and charge for) a second number.
    async fn rent(&self, request: &NumberRequest<'_>) -> Result<Rental, ProviderError> {
        let (Some(country), Some(product)) =
            (country_name(request.country), product(request.service))
        else {
            return Err(ProviderError::Unsupported);
        };
        let order = self
            .call(&format!("user/buy/activation/{country}/any/{product}"))
            .await?;
        order.rental()
    }

    async fn poll(&self, rental: &str) -> Result<Poll, ProviderError> {
        let id = order_id(rental)?;
        let order = self.call(&format!("user/check/{id}")).await?;
        order.poll()
    }

    /// `order expired` and an order already `CANCELED`, `TIMEOUT` or `BANNED` count as
    /// success (5sim has refunded, or will); `order has sms` is refused.
    async fn cancel(&self, rental: &str) -> Result<(), ProviderError> {
        match self.end("cancel", rental, &OrderStatus::REFUNDED).await {
            Err(ProviderError::Refused(text)) if text.contains("order expired") => Ok(()),
            other => other,
        }
    }

    async fn finish(&self, rental: &str) -> Result<(), ProviderError> {
        self.end("finish", rental, &[OrderStatus::Finished]).await
    }

    /// Bans the number (`/user/ban`), which is 5sim's call for a number that is already
    /// used or never receives: it refunds and stops handing the number out. An order
    /// already refunded another way counts as success.
    async fn report(&self, rental: &str) -> Result<(), ProviderError> {
        self.end("ban", rental, &OrderStatus::REFUNDED).await
    }
}

/// Our ISO 3166-1 alpha-2 country code to 5sim's country name (`/guest/countries` keys).
fn country_name(iso: &str) -> Option<&'static str> {
    let name = match iso.to_ascii_uppercase().as_str() {
        "AR" => "argentina",
        "BD" => "bangladesh",
        "BR" => "brazil",
        "CA" => "canada",
        "CO" => "colombia",
        "EG" => "egypt",
        "FR" => "france",
        "DE" => "germany",
        "GH" => "ghana",
        "IN" => "india",
        "ID" => "indonesia",
        "IT" => "italy",
        "JP" => "japan",
        "KZ" => "kazakhstan",
        "KE" => "kenya",
        "MY" => "malaysia",
        "MX" => "mexico",
        "NL" => "netherlands",
        "NG" => "nigeria",
        "PK" => "pakistan",
        "PH" => "philippines",
        "PL" => "poland",
        "PT" => "portugal",
        "RO" => "romania",
        "RU" => "russia",
        "ZA" => "southafrica",
        "KR" => "southkorea",
        "ES" => "spain",
        "SE" => "sweden",
        "TH" => "thailand",
        "TR" => "turkey",
        "UA" => "ukraine",
        "GB" => "england",
        "US" => "usa",
        "VN" => "vietnam",
        _ => return None,
    };
    Some(name)
}

/// Our service code to 5sim's product name. Only products whose 5sim name is known are
/// listed; the rest of the catalog (bumble, hinge, binance, gojek, lyft, doordash, venmo,
/// cashapp, bolt, tokopedia, revolut, twitch) is not served by 5sim until checked
/// against `/guest/products`.
fn product(service: &str) -> Option<&'static str> {
    let name = match service.to_ascii_lowercase().as_str() {
        "whatsapp" => "whatsapp",
        "telegram" => "telegram",
        "google" => "google",
        "facebook" => "facebook",
        "instagram" => "instagram",
        "tiktok" => "tiktok",
        "twitter" => "twitter",
        "discord" => "discord",
        "uber" => "uber",
        "amazon" => "amazon",
        "microsoft" => "microsoft",
        "apple" => "apple",
        "paypal" => "paypal",
        "tinder" => "tinder",
        "netflix" => "netflix",
        "steam" => "steam",
        "airbnb" => "airbnb",
        "linkedin" => "linkedin",
        "snapchat" => "snapchat",
        "signal" => "signal",
        "wechat" => "wechat",
        "viber" => "viber",
        "openai" => "openai",
        "coinbase" => "coinbase",
        "yahoo" => "yahoo",
        "ebay" => "ebay",
        "shopee" => "shopee",
        "grab" => "grabtaxi",
        "line" => "line",
        "kakaotalk" => "kakaotalk",
        "naver" => "naver",
        "alibaba" => "alibaba",
        "aliexpress" => "aliexpress",
        "mercadolibre" => "mercado",
        "lazada" => "lazada",
        "yandex" => "yandex",
        "vk" => "vkontakte",
        "olx" => "olx",
        "zalo" => "zalo",
        "careem" => "careem",
        "truecaller" => "truecaller",
        "imo" => "imo",
        _ => return None,
    };
    Some(name)
}

/// A rental reference back to 5sim's numeric order id; anything else was not ours, and
/// never reaches a URL.
fn order_id(rental: &str) -> Result<u64, ProviderError> {
    let not_ours = || ProviderError::Refused(format!("not a 5sim order id: {rental:.40}"));
    // `parse` alone would take a leading `+`.
    if !rental.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_ours());
    }
    rental.parse().map_err(|_| not_ours())
}

/// A failure before any answer: a timeout leaves the outcome unknown.
fn transport(error: reqwest::Error) -> ProviderError {
    if error.is_timeout() {
        ProviderError::Timeout
    } else if error.is_connect() {
        ProviderError::Upstream("cannot connect".to_owned())
    } else {
        ProviderError::Upstream(error.to_string())
    }
}

/// Reads one answer: a plain-text body is an error named by its words whatever the
/// status; then 401, 429 and 5xx by status; then a 200 must be an Order.
fn read_answer(status: u16, body: &[u8]) -> Result<Order, ProviderError> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let json = text.starts_with('{') || text.starts_with('[');
    if status == 401 {
        return Err(ProviderError::Unauthorized);
    }
    if !json && let Some(error) = text_error(text) {
        return Err(error);
    }
    match status {
        429 => return Err(ProviderError::RateLimited),
        500..=599 => return Err(ProviderError::Upstream(format!("HTTP {status}"))),
        200..=299 => {}
        _ => {
            return Err(ProviderError::Upstream(format!(
                "HTTP {status}: {}",
                quote(text)
            )));
        }
    }
    if !json {
        return Err(ProviderError::Garbage(format!(
            "HTTP {status} with a non-JSON body: {}",
            quote(text)
        )));
    }
    serde_json::from_str(text).map_err(|e| ProviderError::Garbage(format!("not an order: {e}")))
}

/// 5sim's plain-text errors (PROTOCOLS.md 2.3), matched on their words.
///
/// `not enough rating` is `RateLimited`: the account may hold fewer orders at once until
/// its open ones end, so a later attempt (or another provider) may succeed, and the
/// breaker should hear of it; it is not about one rental, which `Refused` would say.
fn text_error(text: &str) -> Option<ProviderError> {
    let words = text.to_ascii_lowercase();
    let has = |needle: &str| words.contains(needle);
    let error = if has("no free phones") {
        ProviderError::NoNumbers
    } else if has("not enough user balance") {
        ProviderError::InsufficientBalance
    } else if has("not enough rating") {
        ProviderError::RateLimited
    } else if [
        "bad country",
        "bad operator",
        "no product",
        "select country",
        "select operator",
    ]
    .iter()
    .any(|needle| has(needle))
    {
        ProviderError::Unsupported
    } else if has("server offline") {
        ProviderError::Upstream(quote(text))
    } else if [
        "order not found",
        "order expired",
        "order has sms",
        "order no sms",
        "hosting order",
    ]
    .iter()
    .any(|needle| has(needle))
    {
        ProviderError::Refused(quote(text))
    } else if has("limit") {
        ProviderError::RateLimited
    } else {
        return None;
    };
    Some(error)
}

fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// An order's status (PROTOCOLS.md 2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OrderStatus {
    Pending,
    Received,
    Canceled,
    Timeout,
    Finished,
    Banned,
}

impl OrderStatus {
    /// The ends after which 5sim has given our money back.
    const REFUNDED: [OrderStatus; 3] = [
        OrderStatus::Canceled,
        OrderStatus::Timeout,
        OrderStatus::Banned,
    ];

    fn parse(status: &str) -> Option<OrderStatus> {
        Some(match status {
            "PENDING" => OrderStatus::Pending,
            "RECEIVED" => OrderStatus::Received,
            "CANCELED" => OrderStatus::Canceled,
            "TIMEOUT" => OrderStatus::Timeout,
            "FINISHED" => OrderStatus::Finished,
            "BANNED" => OrderStatus::Banned,
            _ => return None,
        })
    }
}

/// 5sim's Order, as far as we read it.
#[derive(Debug, Deserialize)]
struct Order {
    id: u64,
    phone: String,
    status: String,
    #[serde(default)]
    price: Option<serde_json::Number>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    sms: Option<Vec<Sms>>,
}

/// One SMS of an Order. `id` is present in some answers only.
#[derive(Debug, Deserialize)]
struct Sms {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    sender: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

impl Order {
    fn status(&self) -> Result<OrderStatus, ProviderError> {
        OrderStatus::parse(&self.status).ok_or_else(|| {
            ProviderError::Garbage(format!("unknown order status {}", quote(&self.status)))
        })
    }

    fn rental(self) -> Result<Rental, ProviderError> {
        let phone_number = e164(&self.phone)?;
        let expires_at = match self.expires.as_deref() {
            None | Some("") => None,
            Some(expires) => Some(timestamp(expires).ok_or_else(|| {
                ProviderError::Garbage(format!("unreadable expiry {}", quote(expires)))
            })?),
        };
        Ok(Rental {
            provider_ref: self.id.to_string(),
            phone_number,
            expires_at,
            cost: self.price.map(|price| price.to_string()),
            quiet_until: None,
        })
    }

    fn poll(self) -> Result<Poll, ProviderError> {
        let state = match self.status()? {
            OrderStatus::Pending | OrderStatus::Received => RemoteState::Waiting,
            OrderStatus::Canceled
            | OrderStatus::Timeout
            | OrderStatus::Finished
            | OrderStatus::Banned => RemoteState::Ended,
        };
        let messages = (self.sms.unwrap_or_default().into_iter())
            .map(Sms::message)
            .collect::<Result<_, _>>()?;
        Ok(Poll {
            messages,
            state,
            quiet_until: None,
        })
    }
}

impl Sms {
    fn message(self) -> Result<ProviderSms, ProviderError> {
        // `date` is when the number received it; `created_at` when 5sim stored it.
        let received_at = [self.date.as_deref(), self.created_at.as_deref()]
            .into_iter()
            .flatten()
            .find_map(timestamp)
            .ok_or_else(|| {
                ProviderError::Garbage(format!(
                    "an SMS without a readable date ({:?}, {:?})",
                    self.date, self.created_at
                ))
            })?;
        let id = match self.id {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
            Some(other) => {
                return Err(ProviderError::Garbage(format!("an SMS id {other}")));
            }
        };
        Ok(ProviderSms {
            id,
            sender: self.sender.unwrap_or_default(),
            text: self.text.unwrap_or_default(),
            code: self.code.filter(|code| !code.trim().is_empty()),
            received_at,
        })
    }
}

/// RFC 3339, with or without fractional seconds.
fn timestamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// 5sim's `phone` already starts with `+`; keep exactly one, and refuse anything that is
/// not 4 to 15 digits behind it.
fn e164(phone: &str) -> Result<String, ProviderError> {
    let digits = phone.trim().strip_prefix('+').unwrap_or(phone.trim());
    if (4..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(format!("+{digits}"))
    } else {
        Err(ProviderError::Garbage(format!(
            "not a phone number: {}",
            quote(phone)
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUGHT: &str = r#"{"id":11631253,"phone":"+447350690992","operator":"vodafone",
        "product":"facebook","price":21,"status":"PENDING",
        "expires":"2018-10-13T08:28:38.809469028Z","sms":null,
        "created_at":"2018-10-13T08:13:38.809469028Z","forwarding":false,
        "forwarding_number":"","country":"england"}"#;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    fn client(base: &str) -> FiveSim {
        FiveSim::new(
            base.parse().expect("test URL"),
            "key".into(),
            Duration::from_secs(1),
        )
        .expect("client")
    }

    #[test]
    fn every_catalog_country_maps_to_a_5sim_name() {
        let ours = [
            "AR", "BD", "BR", "CA", "CO", "EG", "FR", "DE", "GH", "IN", "ID", "IT", "JP", "KZ",
            "KE", "MY", "MX", "NL", "NG", "PK", "PH", "PL", "PT", "RO", "RU", "ZA", "KR", "ES",
            "SE", "TH", "TR", "UA", "GB", "US", "VN",
        ];
        for code in ours {
            assert!(country_name(code).is_some(), "{code} is not mapped");
        }
        assert_eq!(country_name("GB"), Some("england"));
        assert_eq!(country_name("US"), Some("usa"));
        assert_eq!(country_name("ru"), Some("russia"));
        assert_eq!(country_name("KR"), Some("southkorea"));
        assert_eq!(country_name("ZA"), Some("southafrica"));
        assert_eq!(country_name("NL"), Some("netherlands"));
        assert_eq!(country_name("XX"), None);
        assert_eq!(country_name(""), None);
    }

    #[test]
    fn products_map_where_5sim_names_are_known() {
        assert_eq!(product("whatsapp"), Some("whatsapp"));
        assert_eq!(product("vk"), Some("vkontakte"));
        assert_eq!(product("grab"), Some("grabtaxi"));
        assert_eq!(product("mercadolibre"), Some("mercado"));
        assert_eq!(product("bumble"), None);
        assert_eq!(product("any"), None);
        let fivesim = client("https://5sim.net");
        assert!(fivesim.serves("telegram", "GB"));
        assert!(!fivesim.serves("telegram", "ZZ"));
        assert!(!fivesim.serves("hinge", "US"));
        assert_eq!(fivesim.name(), "fivesim");
    }

    #[test]
    fn endpoints_live_under_v1_whatever_the_base() {
        for base in [
            "https://5sim.net",
            "https://5sim.net/",
            "https://5sim.net/v1",
            "https://5sim.net/v1/",
        ] {
            assert_eq!(
                client(base).endpoint("user/check/7").as_str(),
                "https://5sim.net/v1/user/check/7",
                "from {base}"
            );
        }
        assert_eq!(
            client("http://127.0.0.1:9/proxy/5sim/")
                .endpoint("user/check/7")
                .as_str(),
            "http://127.0.0.1:9/proxy/5sim/v1/user/check/7"
        );
    }

    #[test]
    fn new_refuses_unusable_settings() {
        let url: url::Url = "https://5sim.net".parse().expect("URL");
        assert!(FiveSim::new(url.clone(), " ".into(), Duration::from_secs(1)).is_err());
        let ftp: url::Url = "ftp://5sim.net".parse().expect("URL");
        assert!(FiveSim::new(ftp, "key".into(), Duration::from_secs(1)).is_err());
        let shown = format!("{:?}", client("https://5sim.net"));
        assert!(!shown.contains("key\""), "{shown}");
    }

    #[test]
    fn a_bought_order_is_a_rental_with_one_plus() {
        let rental = read_answer(200, BOUGHT.as_bytes())
            .and_then(Order::rental)
            .expect("rental");
        assert_eq!(
            rental,
            Rental {
                provider_ref: "11631253".into(),
                phone_number: "+447350690992".into(),
                expires_at: Some(at("2018-10-13T08:28:38.809469028Z")),
                cost: Some("21".into()),
                quiet_until: None,
            }
        );
        let fresh = read_answer(200, BOUGHT.as_bytes())
            .and_then(Order::poll)
            .expect("poll");
        assert_eq!(fresh.state, RemoteState::Waiting);
        assert!(fresh.messages.is_empty());
    }

    #[test]
    fn phones_keep_exactly_one_plus() {
        assert_eq!(e164("+447350690992"), Ok("+447350690992".into()));
        assert_eq!(e164("447350690992"), Ok("+447350690992".into()));
        assert!(matches!(e164("++4473"), Err(ProviderError::Garbage(_))));
        assert!(matches!(e164("+44 7350"), Err(ProviderError::Garbage(_))));
        assert!(matches!(e164(""), Err(ProviderError::Garbage(_))));
    }

    #[test]
    fn sms_dates_with_and_without_fractions() {
        let body = r#"{"id":1,"phone":"+79990001122","status":"RECEIVED","price":3.5,
            "expires":"2030-01-01T00:15:00Z","sms":[
            {"id":3027531,"created_at":"2030-01-01T00:01:02.123456789Z",
             "date":"2030-01-01T00:01:00Z","sender":"Facebook",
             "text":"Use 415127 as your login code","code":"415127"},
            {"created_at":"2030-01-01T00:02:03.5+00:00","date":"",
             "sender":"WhatsApp","text":"code 99-11","code":""}]}"#;
        let poll = read_answer(200, body.as_bytes())
            .and_then(Order::poll)
            .expect("poll");
        assert_eq!(poll.state, RemoteState::Waiting);
        assert_eq!(
            poll.messages,
            vec![
                ProviderSms {
                    id: Some("3027531".into()),
                    sender: "Facebook".into(),
                    text: "Use 415127 as your login code".into(),
                    code: Some("415127".into()),
                    received_at: at("2030-01-01T00:01:00Z"),
                },
                ProviderSms {
                    id: None,
                    sender: "WhatsApp".into(),
                    text: "code 99-11".into(),
                    code: None,
                    received_at: at("2030-01-01T00:02:03.500Z"),
                },
            ]
        );
        let cost = read_answer(200, body.as_bytes()).and_then(Order::rental);
        assert_eq!(cost.map(|r| r.cost), Ok(Some("3.5".into())));
    }

    #[test]
    fn ended_states_and_unknown_ones() {
        for (status, state) in [
            ("PENDING", Some(RemoteState::Waiting)),
            ("RECEIVED", Some(RemoteState::Waiting)),
            ("CANCELED", Some(RemoteState::Ended)),
            ("TIMEOUT", Some(RemoteState::Ended)),
            ("FINISHED", Some(RemoteState::Ended)),
            ("BANNED", Some(RemoteState::Ended)),
            ("SOMETHING", None),
        ] {
            let body = format!(r#"{{"id":5,"phone":"+15550001111","status":"{status}","sms":[]}}"#);
            let poll = read_answer(200, body.as_bytes()).and_then(Order::poll);
            match state {
                Some(state) => assert_eq!(poll.map(|p| p.state), Ok(state), "{status}"),
                None => assert!(matches!(poll, Err(ProviderError::Garbage(_))), "{status}"),
            }
        }
    }

    #[test]
    fn shapes_that_are_not_orders_are_garbage() {
        for body in [
            r#"{"id":"11631253","phone":"+447350690992","status":"PENDING"}"#,
            r#"{"id":1,"phone":447350690992,"status":"PENDING"}"#,
            r#"{"id":1,"status":"PENDING"}"#,
            r#"{"id":1,"phone":"+447350690992","status":"PENDING","sms":{}}"#,
            r#"{"id":1,"phone":"+447350690992","status":"PENDING","expires":"soon"}"#,
            r#"{"id":1,"phone":"+447350690992","status":"RECEIVED","sms":[{"text":"x"}]}"#,
            r#"[]"#,
            r#"{"id":1,"phone":"+4473"#,
            "",
            "<html>ok</html>",
        ] {
            // Each is unreadable as a bought order, as a checked one, or as both.
            let rental = read_answer(200, body.as_bytes()).and_then(Order::rental);
            let poll = read_answer(200, body.as_bytes()).and_then(Order::poll);
            let garbage = |e: &ProviderError| matches!(e, ProviderError::Garbage(_));
            assert!(
                rental.as_ref().err().is_some_and(garbage)
                    || poll.as_ref().err().is_some_and(garbage),
                "{body}: {rental:?} {poll:?}"
            );
            assert!(
                rental.as_ref().err().is_none_or(garbage),
                "{body}: {rental:?}"
            );
            assert!(poll.as_ref().err().is_none_or(garbage), "{body}: {poll:?}");
        }
    }

    #[test]
    fn plain_text_errors_by_their_words_whatever_the_status() {
        use ProviderError::*;
        let refused = |text: &str| Refused(text.to_owned());
        for status in [200, 400, 404] {
            for (text, error) in [
                ("no free phones", NoNumbers),
                ("no free phones\n", NoNumbers),
                ("not enough user balance", InsufficientBalance),
                ("not enough rating", RateLimited),
                ("bad country", Unsupported),
                ("bad operator", Unsupported),
                ("no product", Unsupported),
                ("select country", Unsupported),
                ("select operator", Unsupported),
                ("server offline", Upstream("server offline".into())),
                ("order not found", refused("order not found")),
                ("order expired", refused("order expired")),
                ("order has sms", refused("order has sms")),
                ("order no sms", refused("order no sms")),
                ("hosting order", refused("hosting order")),
                ("api limit is 100 requests per second", RateLimited),
                ("ip address limit is 100 requests per second", RateLimited),
            ] {
                assert_eq!(
                    read_answer(status, text.as_bytes()).map(|o| o.id),
                    Err(error),
                    "HTTP {status} {text:?}"
                );
            }
        }
    }

    #[test]
    fn statuses_decide_when_the_words_do_not() {
        use ProviderError::*;
        assert_eq!(read_answer(401, b"").map(|o| o.id), Err(Unauthorized));
        assert_eq!(
            read_answer(401, b"no free phones").map(|o| o.id),
            Err(Unauthorized)
        );
        assert_eq!(read_answer(429, b"").map(|o| o.id), Err(RateLimited));
        assert_eq!(
            read_answer(429, b"Too Many Requests").map(|o| o.id),
            Err(RateLimited)
        );
        for status in [500, 502, 503] {
            assert!(matches!(
                read_answer(status, b"<html>oops</html>"),
                Err(Upstream(_))
            ));
            assert!(matches!(
                read_answer(status, BOUGHT.as_bytes()),
                Err(Upstream(_))
            ));
        }
        assert!(matches!(
            read_answer(400, b"what is this"),
            Err(Upstream(_))
        ));
        assert!(matches!(read_answer(200, b"what is this"), Err(Garbage(_))));
    }

    #[test]
    fn order_ids_are_decimal_only() {
        assert_eq!(order_id("11631253"), Ok(11631253));
        for bad in ["", "12a", "../1", "-1", "1 2", "99999999999999999999999"] {
            assert!(
                matches!(order_id(bad), Err(ProviderError::Refused(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn long_bodies_are_quoted_short() {
        let long = "x".repeat(1000);
        let quoted = quote(&long);
        assert!(quoted.chars().count() <= QUOTE + 1);
        assert_eq!(quote("é".repeat(5).as_str()), "ééééé");
    }
}
