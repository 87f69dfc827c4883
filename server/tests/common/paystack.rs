//! A local fake of Paystack's transaction API (PROTOCOLS.md section 3), started per test:
//! `POST /transaction/initialize` and `GET /transaction/verify/{reference}` behind a
//! `Bearer` secret key, plus what a test needs to play the customer (pay, decline), the
//! network (injected faults) and Paystack's webhook sender (signed `charge.*` bodies).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha512;

/// Paystack's ceiling of 10,000,000 in any currency, in the smallest unit.
const MAX_AMOUNT: i64 = 1_000_000_000;
const CURRENCIES: [&str; 5] = ["NGN", "GHS", "ZAR", "USD", "KES"];

/// What the next requests suffer instead of (or before) their normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status without touching any state: 5xx get an HTML page (as a
    /// load balancer would send), others Paystack's JSON envelope.
    Status(u16),
    /// Do the work (a transaction really is created), then wait this long before answering,
    /// as when Paystack is slow and the client gives up.
    Delay(Duration),
    /// A 200 labelled `application/json` whose body is cut-off JSON; no state is touched.
    Garbage,
}

/// What the client sent to `initialize` for one reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Initialized {
    pub email: String,
    pub amount: i64,
    pub currency: String,
    pub callback_url: Option<String>,
    /// As given; `Value::Null` when absent.
    pub metadata: Value,
}

struct Transaction {
    id: i64,
    asked: Initialized,
    created_at: DateTime<Utc>,
    status: String,
    gateway_response: String,
    paid_at: Option<DateTime<Utc>>,
    /// The amount and currency Paystack reports (normally the asked ones).
    amount: i64,
    currency: String,
    customer: (i64, String),
    card_code: String,
}

#[derive(Default)]
struct Inner {
    transactions: HashMap<String, Transaction>,
    references: Vec<String>,
    customers: HashMap<String, (i64, String)>,
    initialize_calls: usize,
    verify_calls: HashMap<String, usize>,
    faults: VecDeque<Fault>,
}

/// A running fake; clones share the same server and state.
#[derive(Clone)]
pub struct FakePaystack {
    base_url: String,
    secret: Arc<str>,
    inner: Arc<Mutex<Inner>>,
}

impl FakePaystack {
    /// Binds 127.0.0.1 on a free port, then serves in a background task.
    pub async fn start(secret: &str) -> FakePaystack {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Paystack");
        let addr = listener.local_addr().expect("fake Paystack address");
        let fake = FakePaystack {
            base_url: format!("http://{addr}"),
            secret: secret.into(),
            inner: Arc::default(),
        };
        let app = Router::new()
            .route("/transaction/initialize", post(initialize))
            .route("/transaction/verify/{reference}", get(verify))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn initialized(&self, reference: &str) -> Option<Initialized> {
        let inner = self.inner();
        inner.transactions.get(reference).map(|t| t.asked.clone())
    }

    /// Accepted references, in the order they were initialized.
    pub fn references(&self) -> Vec<String> {
        self.inner().references.clone()
    }

    /// Every request to `initialize`, including refused and faulted ones.
    pub fn initialize_calls(&self) -> usize {
        self.inner().initialize_calls
    }

    /// Every request to verify this reference, including refused and faulted ones.
    pub fn verify_calls(&self, reference: &str) -> usize {
        let inner = self.inner();
        inner.verify_calls.get(reference).copied().unwrap_or(0)
    }

    /// The customer pays exactly what was asked.
    pub fn pay(&self, reference: &str) {
        let (amount, currency) =
            self.with(reference, |t| (t.asked.amount, t.asked.currency.clone()));
        self.pay_with(reference, amount, currency.as_str());
    }

    /// A successful payment that Paystack reports with this amount and currency.
    pub fn pay_with(&self, reference: &str, amount: i64, currency: &str) {
        self.with(reference, |t| {
            t.amount = amount;
            t.currency = currency.to_owned();
            t.status = "success".into();
            t.gateway_response = "Successful".into();
            t.paid_at = Some(Utc::now());
        });
    }

    pub fn decline(&self, reference: &str) {
        self.with(reference, |t| {
            t.status = "failed".into();
            t.gateway_response = "Declined".into();
            t.paid_at = None;
        });
    }

    /// Sets `data.status` to any Paystack status; everything else stays as it was.
    pub fn set_status(&self, reference: &str, status: &str) {
        self.with(reference, |t| t.status = status.to_owned());
    }

    /// The next `count` requests (to either endpoint) suffer `fault`; queued after any
    /// faults already pending.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        if let Fault::Status(code) = fault {
            StatusCode::from_u16(code).expect("Fault::Status needs a valid HTTP status");
        }
        let mut inner = self.inner();
        inner.faults.extend(std::iter::repeat_n(fault, count));
    }

    /// The `charge.success` webhook body for the transaction as it stands, and its signature.
    pub fn charge_success(&self, reference: &str) -> (Vec<u8>, String) {
        self.webhook("charge.success", reference)
    }

    pub fn charge_failed(&self, reference: &str) -> (Vec<u8>, String) {
        self.webhook("charge.failed", reference)
    }

    /// `x-paystack-signature`: lowercase hex HMAC-SHA512 of the raw body, keyed with the secret.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha512>::new_from_slice(self.secret.as_bytes()).expect("any key size");
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn webhook(&self, event: &str, reference: &str) -> (Vec<u8>, String) {
        let data = self.with(reference, |t| data(reference, t));
        let body = serde_json::to_vec(&json!({ "event": event, "data": data })).expect("JSON");
        let signature = self.sign(&body);
        (body, signature)
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with<T>(&self, reference: &str, change: impl FnOnce(&mut Transaction) -> T) -> T {
        let mut inner = self.inner();
        let transaction = inner.transactions.get_mut(reference).unwrap_or_else(|| {
            panic!("fake Paystack: no transaction {reference:?} was initialized")
        });
        change(transaction)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let expected = format!("Bearer {}", self.secret);
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(expected.as_str())
    }
}

async fn initialize(State(fake): State<FakePaystack>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = {
        let mut inner = fake.inner();
        inner.initialize_calls += 1;
        inner.faults.pop_front()
    };
    answer(&fake, &headers, fault, || match create(&fake, &body) {
        Ok(created) => created,
        Err(message) => refuse(StatusCode::BAD_REQUEST, message),
    })
    .await
}

fn create(fake: &FakePaystack, body: &[u8]) -> Result<Response, &'static str> {
    let body: Value = serde_json::from_slice(body).map_err(|_| "Invalid request body")?;
    let text = |key| body.get(key).and_then(Value::as_str);
    let email = match text("email").map(str::trim) {
        None | Some("") => return Err("Email is required"),
        Some(email) if !email.contains('@') => return Err("Invalid Email Address Passed"),
        Some(email) => email.to_owned(),
    };
    let amount = match body.get("amount") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|a| (1..=MAX_AMOUNT).contains(a))
    .ok_or("Invalid Amount Sent")?;
    let currency = text("currency").unwrap_or("NGN");
    if !CURRENCIES.contains(&currency) {
        return Err("Currency not supported by merchant");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-.=".contains(c);
    let reference = match text("reference") {
        Some(r) if r.is_empty() || !r.chars().all(allowed) => {
            return Err("Only -, ., = and alphanumeric characters allowed for reference");
        }
        Some(r) => r.to_owned(),
        None => random(10),
    };
    let callback_url = text("callback_url").map(str::to_owned);
    let metadata = body.get("metadata").cloned().unwrap_or(Value::Null);

    let mut inner = fake.inner();
    if inner.transactions.contains_key(&reference) {
        return Err("Duplicate Transaction Reference");
    }
    // Paystack keeps one customer per email.
    let next_customer = 24_000_000 + inner.customers.len() as i64;
    let customer = (inner.customers.entry(email.clone()))
        .or_insert_with(|| (next_customer, format!("CUS_{}", random(15))))
        .clone();
    let transaction = Transaction {
        id: 690_000_000 + inner.references.len() as i64,
        asked: Initialized {
            email,
            amount,
            currency: currency.to_owned(),
            callback_url,
            metadata,
        },
        created_at: Utc::now(),
        status: "abandoned".into(),
        gateway_response: "The transaction was not completed".into(),
        paid_at: None,
        amount,
        currency: currency.to_owned(),
        customer,
        card_code: random(10),
    };
    inner.transactions.insert(reference.clone(), transaction);
    inner.references.push(reference.clone());
    let access_code = random(10);
    let data = json!({
        "authorization_url": format!("https://checkout.paystack.com/{access_code}"),
        "access_code": access_code,
        "reference": reference,
    });
    Ok(ok("Authorization URL created", data))
}

async fn verify(
    State(fake): State<FakePaystack>,
    Path(reference): Path<String>,
    headers: HeaderMap,
) -> Response {
    let fault = {
        let mut inner = fake.inner();
        *inner.verify_calls.entry(reference.clone()).or_default() += 1;
        inner.faults.pop_front()
    };
    answer(&fake, &headers, fault, || {
        match fake.inner().transactions.get(&reference) {
            Some(t) => ok("Verification successful", data(&reference, t)),
            None => refuse(StatusCode::BAD_REQUEST, "Transaction reference not found"),
        }
    })
    .await
}

/// Applies a pending fault around the normal answer, which needs the secret key.
async fn answer(
    fake: &FakePaystack,
    headers: &HeaderMap,
    fault: Option<Fault>,
    reply: impl FnOnce() -> Response,
) -> Response {
    let reply = || {
        if fake.authorized(headers) {
            reply()
        } else {
            refuse(StatusCode::UNAUTHORIZED, "Invalid key")
        }
    };
    match fault {
        None => reply(),
        Some(Fault::Delay(delay)) => {
            let response = reply();
            tokio::time::sleep(delay).await;
            response
        }
        Some(Fault::Garbage) => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"status":true,"message":"Verification succ"#,
        )
            .into_response(),
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                let page = format!("<html><body><h1>{status}</h1></body></html>");
                (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
            } else {
                refuse(status, status.canonical_reason().unwrap_or("Error"))
            }
        }
    }
}

/// The transaction object shared by verify and the webhooks (PROTOCOLS.md 3.3).
fn data(reference: &str, t: &Transaction) -> Value {
    let at = |time: DateTime<Utc>| time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let paid_at = t.paid_at.map(at);
    let created_at = at(t.created_at);
    let started = t.status != "abandoned";
    let authorization = if started {
        json!({
            "authorization_code": format!("AUTH_{}", t.card_code),
            "bin": "408408", "last4": "4081", "exp_month": "12", "exp_year": "2030",
            "channel": "card", "card_type": "visa DEBIT", "bank": "TEST BANK",
            "country_code": "NG", "brand": "visa", "reusable": t.status == "success",
            "signature": format!("SIG_{}", t.card_code), "account_name": null,
        })
    } else {
        json!({})
    };
    // Local cards: 1.5% plus 100 naira above 2,500 naira, capped at 2,000 naira.
    let fee = (t.amount * 15 / 1000 + if t.amount >= 250_000 { 10_000 } else { 0 }).min(200_000);
    let metadata = match &t.asked.metadata {
        Value::Null => json!(""),
        given => given.clone(),
    };
    json!({
        "id": t.id, "domain": "test", "status": t.status, "reference": reference,
        "amount": t.amount, "message": null, "gateway_response": t.gateway_response,
        "paid_at": paid_at, "created_at": created_at, "channel": "card",
        "currency": t.currency, "ip_address": "127.0.0.1", "metadata": metadata, "log": null,
        "fees": if t.status == "success" { json!(fee) } else { Value::Null },
        "fees_split": null, "authorization": authorization,
        "customer": {
            "id": t.customer.0, "first_name": null, "last_name": null, "email": t.asked.email,
            "customer_code": t.customer.1, "phone": null, "metadata": null,
            "risk_action": "default",
        },
        "plan": null, "order_id": null, "paidAt": paid_at, "createdAt": created_at,
        "requested_amount": t.asked.amount, "transaction_date": created_at,
    })
}

fn ok(message: &str, data: Value) -> Response {
    axum::Json(json!({ "status": true, "message": message, "data": data })).into_response()
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let body = json!({ "status": false, "message": message });
    (status, axum::Json(body)).into_response()
}

/// Lowercase alphanumerics, as Paystack's generated codes and references look.
fn random(len: usize) -> String {
    let mut s = uuid::Uuid::new_v4().simple().to_string();
    s.truncate(len);
    s
}
