//! A local fake of TextVerified's API v2 (PROTOCOLS.md section 1), started per test:
//! bearer tokens from `POST /api/pub/v2/auth`, idempotent verification creation (201 with
//! `Location` and a `Link` body), details, the paginated SMS listing, cancel and report;
//! plus what a test needs to play TextVerified's stock and account (no numbers, low
//! balance), the phone network (deliver an SMS), the clock (expire a verification or the
//! tokens), the network (injected faults) and the webhook sender (signed bodies).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha512;

/// The prefix of every API path.
const API: &str = "/api/pub/v2";
/// Numbers in stock for a service no test has set.
const DEFAULT_STOCK: usize = 100;
/// What every verification costs, in account credits.
const PRICE: f64 = 0.95;
/// How long TextVerified holds a verification's number.
const HOLD: Duration = Duration::from_secs(15 * 60);

/// What the next API requests (not `/auth`, see [`FakeTextVerified::fail_next_auth`])
/// suffer instead of (or after) their normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status without touching any state: 5xx get an HTML page (as a
    /// load balancer would send), 429 an empty body, others TextVerified's `Error` JSON
    /// with a null `errorCode`.
    Status(u16),
    /// Do the work (a verification really is created, cancelled, …), then wait this long
    /// before answering, as when TextVerified is slow and the client gives up.
    Delay(Duration),
    /// A 200 labelled `application/json` whose body is cut-off JSON; no state is touched.
    Garbage,
}

/// A verification as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeVerification {
    pub id: String,
    pub service_name: String,
    pub capability: String,
    /// Ten digits, no `+1`, as TextVerified writes it.
    pub number: String,
    pub state: String,
    pub total_cost: f64,
    pub created_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The `Idempotency-Key` it was created with.
    pub idempotency_key: Option<String>,
}

/// An SMS as the fake holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeSms {
    pub id: String,
    pub reservation_id: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub parsed_code: Option<String>,
    pub created_at: DateTime<Utc>,
}

struct Inner {
    /// Issued tokens and when they expire (by the fake's clock).
    tokens: HashMap<String, DateTime<Utc>>,
    token_lifetime: Duration,
    verifications: HashMap<String, FakeVerification>,
    order: Vec<String>,
    /// `Idempotency-Key` → the verification it created.
    keys: HashMap<String, String>,
    /// Keys whose first create is still being answered (a retry gets 409).
    keys_in_flight: HashSet<String>,
    stock: HashMap<String, usize>,
    balance_low: bool,
    sms: Vec<FakeSms>,
    page_size: usize,
    faults: VecDeque<Fault>,
    auth_faults: VecDeque<Fault>,
    auth_calls: usize,
    tokens_issued: usize,
    create_calls: usize,
    sms_page_calls: usize,
    api_calls: usize,
    /// 401 answers to API calls (bad, unknown, expired or revoked tokens).
    unauthorized_answers: usize,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            tokens: HashMap::new(),
            token_lifetime: Duration::from_secs(899),
            verifications: HashMap::new(),
            order: Vec::new(),
            keys: HashMap::new(),
            keys_in_flight: HashSet::new(),
            stock: HashMap::new(),
            balance_low: false,
            sms: Vec::new(),
            page_size: 10,
            faults: VecDeque::new(),
            auth_faults: VecDeque::new(),
            auth_calls: 0,
            tokens_issued: 0,
            create_calls: 0,
            sms_page_calls: 0,
            api_calls: 0,
            unauthorized_answers: 0,
        }
    }
}

/// A running fake; clones share the same server and state.
#[derive(Clone)]
pub struct FakeTextVerified {
    base_url: String,
    username: Arc<str>,
    api_key: Arc<str>,
    inner: Arc<Mutex<Inner>>,
}

impl FakeTextVerified {
    /// Binds 127.0.0.1 on a free port, then serves in a background task. Only `username`
    /// and `api_key` get tokens.
    pub async fn start(username: &str, api_key: &str) -> FakeTextVerified {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake TextVerified");
        let addr = listener.local_addr().expect("fake TextVerified address");
        let fake = FakeTextVerified {
            base_url: format!("http://{addr}"),
            username: username.into(),
            api_key: api_key.into(),
            inner: Arc::default(),
        };
        let app = Router::new()
            .route(&format!("{API}/auth"), post(auth))
            .route(&format!("{API}/verifications"), post(create))
            .route(&format!("{API}/verifications/{{id}}"), get(details))
            .route(&format!("{API}/verifications/{{id}}/cancel"), post(cancel))
            .route(&format!("{API}/verifications/{{id}}/report"), post(report))
            .route(&format!("{API}/sms"), get(sms))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Numbers left for a TextVerified `serviceName`; 0 answers `Unavailable`.
    pub fn set_stock(&self, service_name: &str, count: usize) {
        self.inner().stock.insert(service_name.to_owned(), count);
    }

    /// From now on creates answer `InsufficientBalance`.
    pub fn set_balance_low(&self) {
        self.inner().balance_low = true;
    }

    /// SMS per page of the listing (10 by default).
    pub fn set_page_size(&self, size: usize) {
        assert!(size > 0, "a page holds at least one SMS");
        self.inner().page_size = size;
    }

    /// The `expiresIn` of tokens issued from now on (899 s by default); the fake refuses
    /// them after that long.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.inner().token_lifetime = lifetime;
    }

    /// Every token issued so far expires now: calls with them get 401.
    pub fn expire_tokens(&self) {
        let now = Utc::now();
        for expiry in self.inner().tokens.values_mut() {
            *expiry = now;
        }
    }

    /// Every token issued so far is forgotten: calls with them get 401.
    pub fn revoke_tokens(&self) {
        self.inner().tokens.clear();
    }

    /// A phone sends an SMS to the verification's number; a run of 4 to 8 digits in the
    /// text becomes `parsedCode`. The verification stays pending (see [`Self::complete`]).
    pub fn deliver_sms(&self, verification_id: &str, from: &str, text: &str) -> FakeSms {
        let mut inner = self.inner();
        let to = inner
            .verifications
            .get(verification_id)
            .unwrap_or_else(|| panic!("fake TextVerified: no verification {verification_id:?}"))
            .number
            .clone();
        let sms = FakeSms {
            id: format!("sms_{}", random(12)),
            reservation_id: verification_id.to_owned(),
            from: from.to_owned(),
            to,
            text: text.to_owned(),
            parsed_code: parse_code(text),
            created_at: Utc::now(),
        };
        inner.sms.push(sms.clone());
        sms
    }

    /// The verification times out (`verificationTimedOut`).
    pub fn expire(&self, verification_id: &str) {
        self.set_state(verification_id, "verificationTimedOut");
    }

    /// The verification completes (`verificationCompleted`).
    pub fn complete(&self, verification_id: &str) {
        self.set_state(verification_id, "verificationCompleted");
    }

    pub fn set_state(&self, verification_id: &str, state: &str) {
        let mut inner = self.inner();
        let verification = inner
            .verifications
            .get_mut(verification_id)
            .unwrap_or_else(|| panic!("fake TextVerified: no verification {verification_id:?}"));
        verification.state = state.to_owned();
    }

    /// Plays a first create with `key` that is still running for `duration`: meanwhile
    /// creates with the key get 409 `IdempotencyConflict`.
    pub fn hold_key(&self, key: &str, duration: Duration) {
        let guard = InFlight {
            fake: self.clone(),
            key: key.to_owned(),
        };
        assert!(
            self.inner().keys_in_flight.insert(key.to_owned()),
            "fake TextVerified: {key:?} is already in flight"
        );
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            drop(guard);
        });
    }

    pub fn verification(&self, id: &str) -> Option<FakeVerification> {
        self.inner().verifications.get(id).cloned()
    }

    /// The verification's `state`, if it exists.
    pub fn state(&self, id: &str) -> Option<String> {
        self.verification(id).map(|v| v.state)
    }

    /// Every verification created, in order.
    pub fn verifications(&self) -> Vec<FakeVerification> {
        let inner = self.inner();
        let order = inner.order.iter();
        order
            .filter_map(|id| inner.verifications.get(id).cloned())
            .collect()
    }

    /// Every request to `/auth`, including refused and faulted ones.
    pub fn auth_calls(&self) -> usize {
        self.inner().auth_calls
    }

    pub fn tokens_issued(&self) -> usize {
        self.inner().tokens_issued
    }

    /// Every request to create a verification, including refused and faulted ones.
    pub fn create_calls(&self) -> usize {
        self.inner().create_calls
    }

    /// Every request for a page of SMS.
    pub fn sms_page_calls(&self) -> usize {
        self.inner().sms_page_calls
    }

    /// Every request except `/auth`.
    pub fn api_calls(&self) -> usize {
        self.inner().api_calls
    }

    /// How many API calls were answered 401 for their token.
    pub fn unauthorized_answers(&self) -> usize {
        self.inner().unauthorized_answers
    }

    /// The next `count` API requests (any endpoint but `/auth`) suffer `fault`; queued
    /// after any faults already pending.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        check(fault);
        let mut inner = self.inner();
        inner.faults.extend(std::iter::repeat_n(fault, count));
    }

    /// The next `count` requests to `/auth` suffer `fault`.
    pub fn fail_next_auth(&self, count: usize, fault: Fault) {
        check(fault);
        let mut inner = self.inner();
        inner.auth_faults.extend(std::iter::repeat_n(fault, count));
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts an API call and takes its fault, if any.
    fn arrive(&self) -> Option<Fault> {
        let mut inner = self.inner();
        inner.api_calls += 1;
        inner.faults.pop_front()
    }

    /// Whether the request carries a live token; counts the 401 it gets otherwise.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let mut inner = self.inner();
        let live = token
            .and_then(|t| inner.tokens.get(t))
            .is_some_and(|expiry| Utc::now() < *expiry);
        if !live {
            inner.unauthorized_answers += 1;
        }
        live
    }

    fn link(&self, path: &str) -> Value {
        json!({ "method": "GET", "href": format!("{}{path}", self.base_url) })
    }

    fn expanded(&self, v: &FakeVerification) -> Value {
        let path = format!("{API}/verifications/{}", v.id);
        let pending = v.state == "verificationPending";
        json!({
            "id": v.id,
            "number": v.number,
            "serviceName": v.service_name,
            "state": v.state,
            "totalCost": v.total_cost,
            "createdAt": time(v.created_at),
            "endsAt": time(v.ends_at),
            "sms": self.link(&format!("{API}/sms?reservationId={}", v.id)),
            "calls": self.link(&format!("{API}/calls?reservationId={}", v.id)),
            "sale": self.link(&format!("{API}/sales/{}", v.id)),
            "cancel": { "canCancel": pending, "link": self.link(&format!("{path}/cancel")) },
            "report": {
                "canReport": reportable(&v.state),
                "link": self.link(&format!("{path}/report")),
            },
            "reactivate": {
                "canReactivate": false,
                "link": self.link(&format!("{path}/reactivate")),
            },
            "reuse": { "reusableUntil": null, "link": self.link(&format!("{path}/reuse")) },
        })
    }
}

fn check(fault: Fault) {
    if let Fault::Status(code) = fault {
        StatusCode::from_u16(code).expect("Fault::Status needs a valid HTTP status");
    }
}

/// `X-Webhook-Signature` for a body: `HMAC-SHA512=` + Base64(HMAC-SHA512(secret, body)).
pub fn sign_webhook(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(secret.as_bytes()).expect("any key size");
    mac.update(body);
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("HMAC-SHA512={signature}")
}

/// A `v2.sms.received` delivery for an SMS, in camelCase as the schema has it.
pub fn sms_received_webhook(idempotency_key: &str, sms: &FakeSms) -> Vec<u8> {
    let body = json!({
        "id": format!("evt_{}", random(12)),
        "event": "v2.sms.received",
        "attempt": 1,
        "occurredAt": time(Utc::now()),
        "idempotencyKey": idempotency_key,
        "data": {
            "from": sms.from,
            "to": sms.to,
            "createdAt": time(sms.created_at),
            "smsContent": sms.text,
            "parsedCode": sms.parsed_code,
            "encrypted": false,
            "reservationId": sms.reservation_id,
        },
    });
    serde_json::to_vec(&body).expect("JSON")
}

async fn auth(State(fake): State<FakeTextVerified>, headers: HeaderMap) -> Response {
    let fault = {
        let mut inner = fake.inner();
        inner.auth_calls += 1;
        inner.auth_faults.pop_front()
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let reply = || {
        if header("x-api-username") != Some(&*fake.username)
            || header("x-api-key") != Some(&*fake.api_key)
        {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let token = format!("eyJh{}", random(32));
        let mut inner = fake.inner();
        let lifetime = inner.token_lifetime;
        let expires_at = Utc::now() + lifetime;
        inner.tokens.insert(token.clone(), expires_at);
        inner.tokens_issued += 1;
        axum::Json(json!({
            "token": token,
            "expiresIn": lifetime.as_secs_f64(),
            "expiresAt": time(expires_at),
        }))
        .into_response()
    };
    answer(fault, reply).await
}

/// Forgets a key's in-flight mark however its request ends (answered or dropped).
struct InFlight {
    fake: FakeTextVerified,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.fake.inner().keys_in_flight.remove(&self.key);
    }
}

async fn create(State(fake): State<FakeTextVerified>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = {
        let mut inner = fake.inner();
        inner.create_calls += 1;
        inner.api_calls += 1;
        inner.faults.pop_front()
    };
    let delay = match fault {
        Some(Fault::Delay(delay)) => delay,
        Some(other) => return answer(Some(other), || StatusCode::OK.into_response()).await,
        None => Duration::ZERO,
    };
    if !fake.authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().map(|k| k.trim().to_owned()));
    let key = match key {
        None => None,
        Some(Ok(key)) if (1..=256).contains(&key.len()) => Some(key),
        Some(_) => return error(StatusCode::BAD_REQUEST, None, "Invalid Idempotency-Key"),
    };
    let _in_flight = match &key {
        None => None,
        Some(key) => {
            let first = fake.inner().keys_in_flight.insert(key.clone());
            if !first {
                let conflict = error(
                    StatusCode::CONFLICT,
                    Some("IdempotencyConflict"),
                    "A request with this key is still being processed",
                );
                tokio::time::sleep(delay).await;
                return conflict;
            }
            Some(InFlight {
                fake: fake.clone(),
                key: key.clone(),
            })
        }
    };
    let response = new_verification(&fake, key, &body);
    tokio::time::sleep(delay).await;
    response
}

fn new_verification(fake: &FakeTextVerified, key: Option<String>, body: &[u8]) -> Response {
    let body: Value = match serde_json::from_slice(body) {
        Ok(body) => body,
        Err(_) => return error(StatusCode::BAD_REQUEST, None, "Invalid request body"),
    };
    let text = |key| body.get(key).and_then(Value::as_str).unwrap_or_default();
    let (service_name, capability) = (text("serviceName"), text("capability"));
    if service_name.is_empty() || !["sms", "voice", "smsAndVoiceCombo"].contains(&capability) {
        return error(
            StatusCode::BAD_REQUEST,
            None,
            "serviceName and capability are required",
        );
    }
    let mut inner = fake.inner();
    if let Some(id) = key.as_ref().and_then(|k| inner.keys.get(k)) {
        return created(fake, id);
    }
    if inner.balance_low {
        return error(
            StatusCode::BAD_REQUEST,
            Some("InsufficientBalance"),
            "Insufficient balance",
        );
    }
    let stock = inner
        .stock
        .entry(service_name.to_owned())
        .or_insert(DEFAULT_STOCK);
    if *stock == 0 {
        return error(
            StatusCode::BAD_REQUEST,
            Some("Unavailable"),
            "No numbers are available for this service",
        );
    }
    *stock -= 1;
    let id = format!("ver_{}", random(20));
    let now = Utc::now();
    let verification = FakeVerification {
        id: id.clone(),
        service_name: service_name.to_owned(),
        capability: capability.to_owned(),
        number: format!("{}", 2_025_550_000 + inner.order.len() as u64),
        state: "verificationPending".to_owned(),
        total_cost: PRICE,
        created_at: now,
        ends_at: now + HOLD,
        idempotency_key: key.clone(),
    };
    inner.verifications.insert(id.clone(), verification);
    inner.order.push(id.clone());
    if let Some(key) = key {
        inner.keys.insert(key, id.clone());
    }
    created(fake, &id)
}

/// 201 with `Location` and a `Link` body.
fn created(fake: &FakeTextVerified, id: &str) -> Response {
    let link = fake.link(&format!("{API}/verifications/{id}"));
    let href = link["href"].as_str().unwrap_or_default().to_owned();
    (
        StatusCode::CREATED,
        [(header::LOCATION, href)],
        axum::Json(link),
    )
        .into_response()
}

async fn details(
    State(fake): State<FakeTextVerified>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let fault = fake.arrive();
    answer(fault, || {
        if !fake.authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        match fake.verification(&id) {
            Some(v) => axum::Json(fake.expanded(&v)).into_response(),
            None => StatusCode::NOT_FOUND.into_response(),
        }
    })
    .await
}

async fn cancel(
    State(fake): State<FakeTextVerified>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let fault = fake.arrive();
    answer(fault, || {
        if !fake.authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let mut inner = fake.inner();
        match inner.verifications.get_mut(&id) {
            None => StatusCode::NOT_FOUND.into_response(),
            Some(v) if v.state == "verificationPending" => {
                v.state = "verificationCanceled".to_owned();
                StatusCode::OK.into_response()
            }
            Some(_) => StatusCode::BAD_REQUEST.into_response(),
        }
    })
    .await
}

/// Whether a verification in this state can still be reported.
fn reportable(state: &str) -> bool {
    matches!(
        state,
        "verificationPending" | "verificationCompleted" | "verificationTimedOut"
    )
}

async fn report(
    State(fake): State<FakeTextVerified>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let fault = fake.arrive();
    answer(fault, || {
        if !fake.authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let mut inner = fake.inner();
        match inner.verifications.get_mut(&id) {
            None => StatusCode::NOT_FOUND.into_response(),
            Some(v) if reportable(&v.state) => {
                v.state = "verificationReported".to_owned();
                StatusCode::OK.into_response()
            }
            Some(_) => StatusCode::BAD_REQUEST.into_response(),
        }
    })
    .await
}

async fn sms(State(fake): State<FakeTextVerified>, uri: Uri, headers: HeaderMap) -> Response {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let fault = {
        let mut inner = fake.inner();
        inner.sms_page_calls += 1;
        inner.api_calls += 1;
        inner.faults.pop_front()
    };
    answer(fault, || {
        if !fake.authorized(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let reservation = query.get("reservationId");
        let page: usize = match query.get("page").map(|p| p.parse()) {
            None => 1,
            Some(Ok(page)) if page >= 1 => page,
            Some(_) => return error(StatusCode::BAD_REQUEST, None, "Invalid page"),
        };
        let inner = fake.inner();
        let all: Vec<&FakeSms> = inner
            .sms
            .iter()
            .filter(|s| reservation.is_none_or(|r| *r == s.reservation_id))
            .collect();
        let size = inner.page_size;
        let data: Vec<Value> = all
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(|s| {
                json!({
                    "id": s.id, "from": s.from, "to": s.to, "createdAt": time(s.created_at),
                    "smsContent": s.text, "parsedCode": s.parsed_code, "encrypted": false,
                })
            })
            .collect();
        let at = |page: usize| {
            let filter = reservation
                .map(|r| format!("reservationId={r}&"))
                .unwrap_or_default();
            fake.link(&format!("{API}/sms?{filter}page={page}"))
        };
        let has_next = page * size < all.len();
        let has_previous = page > 1;
        axum::Json(json!({
            "data": data,
            "hasNext": has_next,
            "hasPrevious": has_previous,
            "count": all.len(),
            "links": {
                "current": at(page),
                "previous": if has_previous { at(page - 1) } else { Value::Null },
                "next": if has_next { at(page + 1) } else { Value::Null },
            },
        }))
        .into_response()
    })
    .await
}

/// Applies a pending fault around the normal answer.
async fn answer(fault: Option<Fault>, reply: impl FnOnce() -> Response) -> Response {
    match fault {
        None => reply(),
        Some(Fault::Delay(delay)) => {
            let response = reply();
            tokio::time::sleep(delay).await;
            response
        }
        Some(Fault::Garbage) => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"id":"ver_1","number":"20255"#,
        )
            .into_response(),
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                let page = format!("<html><body><h1>{status}</h1></body></html>");
                (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
            } else if status == StatusCode::TOO_MANY_REQUESTS {
                status.into_response()
            } else {
                error(status, None, status.canonical_reason().unwrap_or("Error"))
            }
        }
    }
}

/// TextVerified's `Error` body.
fn error(status: StatusCode, code: Option<&str>, description: &str) -> Response {
    let body = json!({ "errorCode": code, "errorDescription": description });
    (status, axum::Json(body)).into_response()
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string()
}

/// The first run of 4 to 8 digits, as TextVerified's `parsedCode`.
fn parse_code(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| (4..=8).contains(&run.len()))
        .map(str::to_owned)
}

fn random(len: usize) -> String {
    let mut s = uuid::Uuid::new_v4().simple().to_string();
    s.truncate(len);
    s
}
