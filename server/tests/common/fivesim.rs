//! A local fake of 5sim's API v1 (PROTOCOLS.md section 2), started per test: buy, check,
//! finish, cancel and ban, every one a `GET` behind a `Bearer` API key, answering with the
//! Order JSON on success and a plain-text body on failure. Plus what a test needs to play
//! the world: stock and balance, SMS arriving, orders timing out, and injected faults.
//!
//! 5sim's exact wording for refused order actions is unverified (PROTOCOLS.md 2.3); the
//! fake uses the strings client libraries match on: `order has sms` (cancel or ban of an
//! order with an SMS), `order no sms` (finish without one), `order expired` (an action on
//! a timed-out order) and `order not found` (unknown ids, and actions on orders already
//! cancelled or banned).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// Where order ids start, so they look like 5sim's and never like small test numbers.
pub const FIRST_ORDER: u64 = 560_000_001;
/// Numbers in stock for any country and product not set otherwise.
pub const DEFAULT_STOCK: u32 = 1_000;
/// What one activation costs (5sim quotes whole units in its examples).
pub const PRICE: u64 = 21;
/// The starting balance: plenty.
pub const DEFAULT_BALANCE: u64 = 100_000;
/// How long 5sim holds a bought number (the example's `expires - created_at`).
pub const HOLD: Duration = Duration::from_secs(15 * 60);

/// 5sim's country names that the fake sells, with their dialling prefixes.
const COUNTRIES: [(&str, &str); 35] = [
    ("argentina", "54"),
    ("bangladesh", "880"),
    ("brazil", "55"),
    ("canada", "1"),
    ("colombia", "57"),
    ("egypt", "20"),
    ("france", "33"),
    ("germany", "49"),
    ("ghana", "233"),
    ("india", "91"),
    ("indonesia", "62"),
    ("italy", "39"),
    ("japan", "81"),
    ("kazakhstan", "7"),
    ("kenya", "254"),
    ("malaysia", "60"),
    ("mexico", "52"),
    ("netherlands", "31"),
    ("nigeria", "234"),
    ("pakistan", "92"),
    ("philippines", "63"),
    ("poland", "48"),
    ("portugal", "351"),
    ("romania", "40"),
    ("russia", "7"),
    ("southafrica", "27"),
    ("southkorea", "82"),
    ("spain", "34"),
    ("sweden", "46"),
    ("thailand", "66"),
    ("turkey", "90"),
    ("ukraine", "380"),
    ("england", "44"),
    ("usa", "1"),
    ("vietnam", "84"),
];

const OPERATORS: [&str; 6] = ["any", "virtual21", "virtual34", "vodafone", "three", "mts"];

const PRODUCTS: [&str; 42] = [
    "whatsapp",
    "telegram",
    "google",
    "facebook",
    "instagram",
    "tiktok",
    "twitter",
    "discord",
    "uber",
    "amazon",
    "microsoft",
    "apple",
    "paypal",
    "tinder",
    "netflix",
    "steam",
    "airbnb",
    "linkedin",
    "snapchat",
    "signal",
    "wechat",
    "viber",
    "openai",
    "coinbase",
    "yahoo",
    "ebay",
    "shopee",
    "grabtaxi",
    "line",
    "kakaotalk",
    "naver",
    "alibaba",
    "aliexpress",
    "mercado",
    "lazada",
    "yandex",
    "vkontakte",
    "olx",
    "zalo",
    "careem",
    "truecaller",
    "imo",
];

/// What the next requests suffer instead of (or before) their normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status without touching any state: 5xx get an HTML page (as
    /// a load balancer would send), others the status's reason as plain text.
    Status(u16),
    /// Do the work (a number really is bought), then wait this long before answering, as
    /// when 5sim is slow and the client gives up.
    Delay(Duration),
    /// A 200 labelled `application/json` whose body is cut-off JSON; no state is touched.
    Garbage,
    /// Answer with this status and this plain-text body; no state is touched.
    Text(u16, &'static str),
}

/// An order as the fake holds it, for tests to look at.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSnapshot {
    pub id: u64,
    /// With its `+`, as 5sim sends it.
    pub phone: String,
    pub country: String,
    pub operator: String,
    pub product: String,
    pub price: u64,
    /// `PENDING`, `RECEIVED`, `CANCELED`, `TIMEOUT`, `FINISHED` or `BANNED`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    pub sms: Vec<SmsSnapshot>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SmsSnapshot {
    pub id: u64,
    pub created_at: DateTime<Utc>,
    /// When the number received it: whole seconds, as 5sim dates it.
    pub date: DateTime<Utc>,
    pub sender: String,
    pub text: String,
    pub code: String,
}

struct Inner {
    orders: HashMap<u64, OrderSnapshot>,
    next_order: u64,
    next_sms: u64,
    stock: HashMap<(String, String), u32>,
    balance: u64,
    /// The status of a `no free phones` answer (5sim's varies: 200 or 4xx).
    no_phones_status: StatusCode,
    /// Whether SMS items carry an `id` (5sim's examples disagree).
    sms_ids: bool,
    buys: usize,
    checks: usize,
    finishes: usize,
    cancels: usize,
    bans: usize,
    faults: VecDeque<Fault>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            orders: HashMap::new(),
            next_order: FIRST_ORDER,
            next_sms: 3_027_531,
            stock: HashMap::new(),
            balance: DEFAULT_BALANCE,
            no_phones_status: StatusCode::BAD_REQUEST,
            sms_ids: true,
            buys: 0,
            checks: 0,
            finishes: 0,
            cancels: 0,
            bans: 0,
            faults: VecDeque::new(),
        }
    }
}

/// A running fake; clones share the same server and state.
#[derive(Clone)]
pub struct FakeFiveSim {
    base_url: String,
    key: Arc<str>,
    inner: Arc<Mutex<Inner>>,
}

impl FakeFiveSim {
    /// Binds 127.0.0.1 on a free port, then serves in a background task. Requests must
    /// carry `Authorization: Bearer {key}`.
    pub async fn start(key: &str) -> FakeFiveSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake 5sim");
        let addr = listener.local_addr().expect("fake 5sim address");
        let fake = FakeFiveSim {
            base_url: format!("http://{addr}"),
            key: key.into(),
            inner: Arc::default(),
        };
        let app = Router::new()
            .route(
                "/v1/user/buy/activation/{country}/{operator}/{product}",
                get(buy),
            )
            .route("/v1/user/check/{id}", get(check))
            .route("/v1/user/finish/{id}", get(finish))
            .route("/v1/user/cancel/{id}", get(cancel))
            .route("/v1/user/ban/{id}", get(ban))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        fake
    }

    /// The origin, without `/v1` (as `FIVESIM_BASE_URL` defaults to `https://5sim.net`).
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Numbers left for this 5sim country name and product (`england`, `whatsapp`).
    pub fn set_stock(&self, country: &str, product: &str, count: u32) {
        let mut inner = self.inner();
        inner
            .stock
            .insert((country.to_owned(), product.to_owned()), count);
    }

    /// The HTTP status `no free phones` comes with (default 400).
    pub fn set_no_phones_status(&self, status: u16) {
        let status = StatusCode::from_u16(status).expect("a valid HTTP status");
        self.inner().no_phones_status = status;
    }

    pub fn set_balance(&self, balance: u64) {
        self.inner().balance = balance;
    }

    pub fn balance(&self) -> u64 {
        self.inner().balance
    }

    /// Whether SMS items carry an `id` (default yes).
    pub fn set_sms_ids(&self, with_ids: bool) {
        self.inner().sms_ids = with_ids;
    }

    /// The next `count` requests (to any endpoint) suffer `fault`; queued after any
    /// faults already pending.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        if let Fault::Status(code) | Fault::Text(code, _) = fault {
            StatusCode::from_u16(code).expect("a fault needs a valid HTTP status");
        }
        let mut inner = self.inner();
        inner.faults.extend(std::iter::repeat_n(fault, count));
    }

    /// An SMS reaches the order's number: the order becomes `RECEIVED`. Panics if the
    /// order is unknown or no longer open (a test mistake).
    pub fn deliver_sms(&self, order_id: u64, sender: &str, text: &str, code: &str) {
        let mut inner = self.inner();
        let sms_id = inner.next_sms;
        inner.next_sms += 1;
        let order = inner
            .orders
            .get_mut(&order_id)
            .unwrap_or_else(|| panic!("fake 5sim: no order {order_id}"));
        assert!(
            matches!(order.status.as_str(), "PENDING" | "RECEIVED"),
            "fake 5sim: order {order_id} is {}, it receives nothing",
            order.status
        );
        let now = Utc::now();
        order.sms.push(SmsSnapshot {
            id: sms_id,
            created_at: now,
            date: whole_seconds(now),
            sender: sender.to_owned(),
            text: text.to_owned(),
            code: code.to_owned(),
        });
        order.status = "RECEIVED".into();
    }

    /// The order's hold runs out now: an open order without SMS becomes `TIMEOUT` (and is
    /// refunded); one with SMS becomes `FINISHED`.
    pub fn time_out(&self, order_id: u64) {
        let mut inner = self.inner();
        let order = inner
            .orders
            .get_mut(&order_id)
            .unwrap_or_else(|| panic!("fake 5sim: no order {order_id}"));
        order.expires = Utc::now();
        expire(&mut inner, order_id);
    }

    pub fn order(&self, order_id: u64) -> Option<OrderSnapshot> {
        self.inner().orders.get(&order_id).cloned()
    }

    /// Every order bought, in order.
    pub fn orders(&self) -> Vec<OrderSnapshot> {
        let inner = self.inner();
        let mut orders: Vec<_> = inner.orders.values().cloned().collect();
        orders.sort_by_key(|o| o.id);
        orders
    }

    /// Every request to buy, including refused and faulted ones.
    pub fn buys(&self) -> usize {
        self.inner().buys
    }

    /// Every request to check, including refused and faulted ones.
    pub fn checks(&self) -> usize {
        self.inner().checks
    }

    pub fn finishes(&self) -> usize {
        self.inner().finishes
    }

    pub fn cancels(&self) -> usize {
        self.inner().cancels
    }

    pub fn bans(&self) -> usize {
        self.inner().bans
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let expected = format!("Bearer {}", self.key);
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(expected.as_str())
    }
}

/// Which counter a request bumps.
#[derive(Clone, Copy)]
enum Call {
    Buy,
    Check,
    Finish,
    Cancel,
    Ban,
}

/// Counts the request and takes the next fault, in one lock.
fn arrive(fake: &FakeFiveSim, call: Call) -> Option<Fault> {
    let mut inner = fake.inner();
    match call {
        Call::Buy => inner.buys += 1,
        Call::Check => inner.checks += 1,
        Call::Finish => inner.finishes += 1,
        Call::Cancel => inner.cancels += 1,
        Call::Ban => inner.bans += 1,
    }
    inner.faults.pop_front()
}

async fn buy(
    State(fake): State<FakeFiveSim>,
    Path((country, operator, product)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let fault = arrive(&fake, Call::Buy);
    answer(&fake, &headers, fault, || {
        let mut inner = fake.inner();
        let country = match country.as_str() {
            "any" => "england",
            name => name,
        };
        let Some(&(_, prefix)) = COUNTRIES.iter().find(|(name, _)| *name == country) else {
            return text(StatusCode::BAD_REQUEST, "bad country");
        };
        if !OPERATORS.contains(&operator.as_str()) {
            return text(StatusCode::BAD_REQUEST, "bad operator");
        }
        if !PRODUCTS.contains(&product.as_str()) {
            return text(StatusCode::BAD_REQUEST, "no product");
        }
        let key = (country.to_owned(), product.clone());
        let stock = *inner.stock.get(&key).unwrap_or(&DEFAULT_STOCK);
        if stock == 0 {
            return text(inner.no_phones_status, "no free phones");
        }
        if inner.balance < PRICE {
            return text(StatusCode::BAD_REQUEST, "not enough user balance");
        }
        inner.stock.insert(key, stock - 1);
        inner.balance -= PRICE;
        let id = inner.next_order;
        inner.next_order += 1;
        let created_at = Utc::now();
        let order = OrderSnapshot {
            id,
            // A subscriber number unique per order, behind the country's prefix.
            phone: format!("+{prefix}7{:09}", id % 1_000_000_000),
            country: country.to_owned(),
            operator: match operator.as_str() {
                "any" => "virtual21".to_owned(),
                named => named.to_owned(),
            },
            product,
            price: PRICE,
            status: "PENDING".into(),
            created_at,
            expires: created_at + HOLD,
            sms: Vec::new(),
        };
        let body = order_json(&order, inner.sms_ids);
        inner.orders.insert(id, order);
        ok(body)
    })
    .await
}

async fn check(
    State(fake): State<FakeFiveSim>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let fault = arrive(&fake, Call::Check);
    answer(&fake, &headers, fault, || act(&fake, &id, |_| Ok(None))).await
}

async fn finish(
    State(fake): State<FakeFiveSim>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let fault = arrive(&fake, Call::Finish);
    answer(&fake, &headers, fault, || {
        act(&fake, &id, |order| match order.status.as_str() {
            "PENDING" | "RECEIVED" if order.sms.is_empty() => Err("order no sms"),
            "PENDING" | "RECEIVED" => Ok(Some("FINISHED")),
            "FINISHED" => Ok(None),
            "TIMEOUT" => Err("order expired"),
            _ => Err("order not found"),
        })
    })
    .await
}

async fn cancel(
    State(fake): State<FakeFiveSim>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let fault = arrive(&fake, Call::Cancel);
    answer(&fake, &headers, fault, || {
        act(&fake, &id, |order| refund_by(order, "CANCELED"))
    })
    .await
}

async fn ban(
    State(fake): State<FakeFiveSim>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let fault = arrive(&fake, Call::Ban);
    answer(&fake, &headers, fault, || {
        act(&fake, &id, |order| refund_by(order, "BANNED"))
    })
    .await
}

/// Cancel and ban: only an open order without SMS can be given back.
fn refund_by(
    order: &OrderSnapshot,
    to: &'static str,
) -> Result<Option<&'static str>, &'static str> {
    match order.status.as_str() {
        _ if !order.sms.is_empty() => Err("order has sms"),
        "PENDING" | "RECEIVED" => Ok(Some(to)),
        "TIMEOUT" => Err("order expired"),
        _ => Err("order not found"),
    }
}

/// Finds the order (first letting its hold run out if due), asks `decide` for its new
/// status (`None`: unchanged) or a refusal, refunds a move to `CANCELED` or `BANNED`, and
/// answers with the order.
fn act(
    fake: &FakeFiveSim,
    id: &str,
    decide: impl FnOnce(&OrderSnapshot) -> Result<Option<&'static str>, &'static str>,
) -> Response {
    let mut inner = fake.inner();
    let Some(id) = id
        .parse::<u64>()
        .ok()
        .filter(|id| inner.orders.contains_key(id))
    else {
        return text(StatusCode::BAD_REQUEST, "order not found");
    };
    expire(&mut inner, id);
    let sms_ids = inner.sms_ids;
    let Some(order) = inner.orders.get_mut(&id) else {
        return text(StatusCode::BAD_REQUEST, "order not found");
    };
    let refund = match decide(order) {
        Err(refusal) => return text(StatusCode::BAD_REQUEST, refusal),
        Ok(None) => false,
        Ok(Some(status)) => {
            order.status = status.to_owned();
            matches!(status, "CANCELED" | "BANNED")
        }
    };
    let body = order_json(order, sms_ids);
    if refund {
        inner.balance += PRICE;
    }
    ok(body)
}

/// An open order past its hold ends: `TIMEOUT` (refunded) without SMS, `FINISHED` with.
fn expire(inner: &mut Inner, id: u64) {
    let Some(order) = inner.orders.get_mut(&id) else {
        return;
    };
    if !matches!(order.status.as_str(), "PENDING" | "RECEIVED") || order.expires > Utc::now() {
        return;
    }
    if order.sms.is_empty() {
        order.status = "TIMEOUT".into();
        inner.balance += order.price;
    } else {
        order.status = "FINISHED".into();
    }
}

/// Applies a pending fault around the normal answer, which needs the API key.
async fn answer(
    fake: &FakeFiveSim,
    headers: &HeaderMap,
    fault: Option<Fault>,
    reply: impl FnOnce() -> Response,
) -> Response {
    let reply = || {
        if fake.authorized(headers) {
            reply()
        } else {
            text(StatusCode::UNAUTHORIZED, "Unauthorized")
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
            r#"{"id":560000001,"phone":"+4479"#,
        )
            .into_response(),
        Some(Fault::Text(code, body)) => text(status(code), body),
        Some(Fault::Status(code)) => {
            let status = status(code);
            if status.is_server_error() {
                let page = format!("<html><body><h1>{status}</h1></body></html>");
                (status, [(header::CONTENT_TYPE, "text/html")], page).into_response()
            } else {
                text(status, status.canonical_reason().unwrap_or("Error"))
            }
        }
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The Order object (PROTOCOLS.md 2.2): `sms` is `null` until a message arrives; times
/// carry nanoseconds, SMS `date`s whole seconds.
fn order_json(order: &OrderSnapshot, sms_ids: bool) -> Value {
    let sms: Vec<Value> = order
        .sms
        .iter()
        .map(|sms| {
            let mut item = json!({
                "created_at": nanos(sms.created_at),
                "date": sms.date.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "sender": sms.sender,
                "text": sms.text,
                "code": sms.code,
            });
            if sms_ids {
                item["id"] = json!(sms.id);
            }
            item
        })
        .collect();
    json!({
        "id": order.id,
        "phone": order.phone,
        "operator": order.operator,
        "product": order.product,
        "price": order.price,
        "status": order.status,
        "expires": nanos(order.expires),
        "sms": if sms.is_empty() { Value::Null } else { Value::Array(sms) },
        "created_at": nanos(order.created_at),
        "forwarding": false,
        "forwarding_number": "",
        "country": order.country,
    })
}

fn nanos(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

fn whole_seconds(time: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(time.timestamp(), 0).unwrap_or(time)
}

fn ok(body: Value) -> Response {
    axum::Json(body).into_response()
}

/// 5sim's errors: a plain-text body.
fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
