//! Every `google.api.http` route of the contract, called as JSON through the in-process
//! edge of the real server. The list of routes comes from the descriptor set: a route
//! added to a `.proto` without a call here fails `every_json_route_answers`.

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use common::{PASSWORD, TestApp, spawn_app_with, totp_code_at, unique_email};
use futures::StreamExt as _;
use http::{Method, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// Upper bound for anything that must not hang.
const PROMPTLY: Duration = Duration::from_secs(20);

/// The services that answer `UNIMPLEMENTED` until their issues land.
/// What a customer (no tenant's owner) gets from the tenant routes filled with `x`: the
/// administrators' RPCs refuse it, the others find `tenants/x` malformed.
const TENANT_REFUSALS: [(&str, StatusCode, i64, &str); 7] = [
    (
        "namaskah.v1.TenantService.CreateTenant",
        StatusCode::FORBIDDEN,
        7,
        "ADMIN_REQUIRED",
    ),
    (
        "namaskah.v1.TenantService.SuspendTenant",
        StatusCode::FORBIDDEN,
        7,
        "ADMIN_REQUIRED",
    ),
    (
        "namaskah.v1.TenantService.ReactivateTenant",
        StatusCode::FORBIDDEN,
        7,
        "ADMIN_REQUIRED",
    ),
    (
        "namaskah.v1.TenantService.GetTenant",
        StatusCode::BAD_REQUEST,
        3,
        "INVALID_ARGUMENT",
    ),
    (
        "namaskah.v1.TenantService.UpdateTenant",
        StatusCode::BAD_REQUEST,
        3,
        "INVALID_ARGUMENT",
    ),
    (
        "namaskah.v1.TenantService.ListTenantPrices",
        StatusCode::BAD_REQUEST,
        3,
        "INVALID_ARGUMENT",
    ),
    (
        "namaskah.v1.TenantService.SetTenantPrice",
        StatusCode::BAD_REQUEST,
        3,
        "INVALID_ARGUMENT",
    ),
];

/// Administrators' RPCs: a customer is refused through every route.
const ADMIN_ONLY: [&str; 2] = [
    "namaskah.v1.AdminService.",
    // The reports; TrackEvent is open to everyone.
    "namaskah.v1.AnalyticsService.Get",
];

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Value,
    text: String,
}

/// A JSON client of the edge that notes which route each call took.
struct Partner {
    edge: String,
    client: Client<HttpConnector, Body>,
    reached: Mutex<BTreeSet<(String, String, String)>>,
}

impl Partner {
    fn new(app: &TestApp) -> Self {
        let edge = app.edge_addr.expect("the in-process edge is on");
        Self {
            edge: format!("http://{edge}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            reached: Mutex::default(),
        }
    }

    fn request(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
        extra: &[(&str, &str)],
    ) -> http::Request<Body> {
        let route_path = path.split('?').next().unwrap_or(path);
        if let Some(route) = namaskah_edge::json_route_for(method.as_str(), route_path) {
            self.reached
                .lock()
                .unwrap()
                .insert((route.rpc, route.method, route.template));
        }
        let mut builder = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.edge));
        if let Some(token) = token {
            builder = if token.starts_with("nsk_") {
                builder.header("x-api-key", token)
            } else {
                builder.header("authorization", format!("Bearer {token}"))
            };
        }
        for (name, value) in extra {
            builder = builder.header(*name, *value);
        }
        let body = match body {
            Some(body) => {
                builder = builder.header("content-type", "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        builder.body(body).unwrap()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Reply {
        self.call_with(method, path, body, token, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let request = self.request(&method, path, body.as_ref(), token, extra);
        let response = tokio::time::timeout(PROMPTLY, self.client.request(request))
            .await
            .unwrap_or_else(|_| panic!("{method} {path} answers promptly"))
            .expect("HTTP exchange");
        let (parts, body) = response.into_parts();
        let bytes = tokio::time::timeout(
            PROMPTLY,
            axum::body::to_bytes(Body::new(body), 16 * 1024 * 1024),
        )
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: the body ends"))
        .expect("body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status: parts.status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            headers: parts.headers,
            text,
        }
    }

    /// `call` that must answer 200; returns the JSON body.
    async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> Value {
        let reply = self.call(method.clone(), path, body, token).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{method} {path}: {}",
            reply.text
        );
        assert_eq!(
            reply
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{method} {path}"
        );
        assert!(
            reply.headers.contains_key("x-process-time"),
            "{method} {path}: X-Process-Time"
        );
        reply.body
    }

    /// The first line of a server stream that stays open, then hangs up.
    async fn first_line(&self, path: &str, token: &str) -> String {
        let request = self.request(&Method::GET, path, None, Some(token), &[]);
        let response = tokio::time::timeout(PROMPTLY, self.client.request(request))
            .await
            .expect("the stream starts promptly")
            .expect("HTTP exchange");
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = Body::new(response.into_body()).into_data_stream();
        let mut text = String::new();
        while !text.contains('\n') {
            let chunk = tokio::time::timeout(PROMPTLY, body.next())
                .await
                .expect("a line promptly")
                .expect("the stream stays open")
                .expect("a chunk");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text.lines().next().unwrap_or_default().to_owned()
    }
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{pointer} in {value}"))
}

#[tokio::test]
async fn every_json_route_answers() {
    let app = spawn_app_with(&[
        ("NAMASKAH_EDGE_ADDR", "127.0.0.1:0"),
        // Numbers wait for InjectSms, so verifications stay open as long as the test needs.
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
    ])
    .await;
    let partner = Partner::new(&app);
    use Method as M;

    // Public catalog and plans.
    let plans = partner.ok(M::GET, "/v1/plans", None, None).await;
    assert!(
        plans["plans"].as_array().is_some_and(|p| p.len() >= 3),
        "{plans}"
    );
    let services = partner
        .ok(
            M::GET,
            "/v1/services?country=GB&availableOnly=true",
            None,
            None,
        )
        .await;
    assert!(
        services["services"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
    partner
        .ok(M::GET, "/v1/countries?service=whatsapp", None, None)
        .await;
    let price = partner
        .ok(M::GET, "/v1/services/whatsapp/prices/GB", None, None)
        .await;
    assert_eq!(str_at(&price, "/price/name"), "services/whatsapp/prices/GB");

    // An account, verified, signed in.
    let email = unique_email();
    let registered = partner
        .ok(
            M::POST,
            "/v1/auth:register",
            Some(json!({"email": email, "password": PASSWORD})),
            None,
        )
        .await;
    assert_eq!(str_at(&registered, "/user/email"), email);
    partner
        .ok(
            M::POST,
            "/v1/auth:resendVerificationEmail",
            Some(json!({"email": email})),
            None,
        )
        .await;
    let token = app.nth_token_to(&email, 2).await;
    partner
        .ok(
            M::POST,
            "/v1/auth:verifyEmail",
            Some(json!({"token": token})),
            None,
        )
        .await;
    let login = partner
        .ok(
            M::POST,
            "/v1/auth:login",
            Some(json!({"email": email, "password": PASSWORD})),
            None,
        )
        .await;
    let refresh = str_at(&login, "/tokens/refreshToken").to_owned();
    let refreshed = partner
        .ok(
            M::POST,
            "/v1/auth:refreshToken",
            Some(json!({"refreshToken": refresh})),
            None,
        )
        .await;
    let access = str_at(&refreshed, "/tokens/accessToken").to_owned();
    let token = Some(access.as_str());
    let me = partner.ok(M::GET, "/v1/users/me", None, token).await;
    assert_eq!(str_at(&me, "/user/email"), email);

    // API keys: one made, used (as X-Api-Key), listed, revoked.
    let key = partner
        .ok(
            M::POST,
            "/v1/apiKeys",
            Some(json!({"displayName": "partner"})),
            token,
        )
        .await;
    let secret = str_at(&key, "/secret").to_owned();
    let key_name = str_at(&key, "/apiKey/name").to_owned();
    let listed = partner.ok(M::GET, "/v1/apiKeys", None, Some(&secret)).await;
    assert_eq!(str_at(&listed, "/apiKeys/0/name"), key_name);
    partner
        .ok(
            M::POST,
            &format!("/v1/{key_name}:revoke"),
            Some(json!({})),
            token,
        )
        .await;
    let refused = partner
        .call(M::GET, "/v1/users/me", None, Some(&secret))
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    assert_eq!(
        refused.body["details"][0]["reason"], "API_KEY_REVOKED",
        "{}",
        refused.text
    );

    // Two-factor authentication on, then off with a backup code.
    let setup = partner
        .ok(
            M::POST,
            "/v1/users/me/twoFactor:setup",
            Some(json!({})),
            token,
        )
        .await;
    let totp_secret = str_at(&setup, "/secret").to_owned();
    let backup = str_at(&setup, "/backupCodes/0").to_owned();
    partner
        .ok(
            M::POST,
            "/v1/users/me/twoFactor:confirm",
            Some(json!({"code": totp_code_at(&totp_secret, 0)})),
            token,
        )
        .await;
    let no_code = partner
        .call(
            M::POST,
            "/v1/auth:login",
            Some(json!({"email": email, "password": PASSWORD})),
            None,
        )
        .await;
    assert_eq!(no_code.status, StatusCode::BAD_REQUEST, "{}", no_code.text);
    assert_eq!(
        no_code.body["details"][0]["reason"], "TOTP_REQUIRED",
        "{}",
        no_code.text
    );
    partner
        .ok(
            M::POST,
            "/v1/users/me/twoFactor:disable",
            Some(json!({"password": PASSWORD, "code": backup})),
            token,
        )
        .await;

    // Money in: a sandbox top-up, paid, verified.
    partner.ok(M::GET, "/v1/balance", None, token).await;
    let top_up = partner
        .ok(
            M::POST,
            "/v1/topUps",
            Some(json!({"amount": {"currencyCode": "USD", "minorUnits": "10000"}, "requestId": "json-top-up"})),
            token,
        )
        .await;
    let reference = str_at(&top_up, "/topUp/reference").to_owned();
    partner
        .ok(
            M::POST,
            "/v1/sandbox:completePayment",
            Some(json!({"reference": reference})),
            token,
        )
        .await;
    let verified = partner
        .ok(
            M::POST,
            &format!("/v1/topUps/{reference}:verify"),
            Some(json!({})),
            token,
        )
        .await;
    assert_eq!(
        str_at(&verified, "/balance/minorUnits"),
        "10000",
        "{verified}"
    );
    let transactions = partner
        .ok(M::GET, "/v1/transactions?kind=1", None, token)
        .await;
    assert!(transactions["transactions"].is_array(), "{transactions}");

    // A verification bought, its code delivered, watched to its end (NDJSON and SSE).
    let bought = partner
        .ok(
            M::POST,
            "/v1/verifications",
            Some(json!({"service": "whatsapp", "country": "GB", "requestId": "json-1"})),
            token,
        )
        .await;
    let name = str_at(&bought, "/verification/name").to_owned();
    let number = str_at(&bought, "/verification/phoneNumber").to_owned();
    assert_eq!(
        str_at(&bought, "/verification/status"),
        "VERIFICATION_STATUS_ACTIVE"
    );
    let got = partner
        .ok(M::GET, &format!("/v1/{name}"), None, token)
        .await;
    assert_eq!(str_at(&got, "/verification/name"), name);
    partner
        .ok(
            M::POST,
            "/v1/sandbox:injectSms",
            Some(json!({"phoneNumber": number, "text": "Your WhatsApp code is 482-913"})),
            token,
        )
        .await;
    let listed = partner
        .ok(
            M::GET,
            "/v1/verifications?statuses=VERIFICATION_STATUS_COMPLETED&pageSize=10",
            None,
            token,
        )
        .await;
    assert_eq!(str_at(&listed, "/verifications/0/name"), name);
    let watched = partner
        .call(M::GET, &format!("/v1/{name}:watch"), None, token)
        .await;
    assert_eq!(watched.status, StatusCode::OK, "{}", watched.text);
    assert_eq!(
        watched.headers.get("content-type").unwrap(),
        "application/x-ndjson"
    );
    let last: Value = serde_json::from_str(watched.text.lines().last().unwrap()).unwrap();
    assert_eq!(
        str_at(&last, "/result/event/verification/status"),
        "VERIFICATION_STATUS_COMPLETED",
        "{}",
        watched.text
    );
    let sse = partner
        .call_with(
            M::GET,
            &format!("/v1/{name}:watch"),
            None,
            token,
            &[("accept", "text/event-stream")],
        )
        .await;
    assert_eq!(
        sse.headers.get("content-type").unwrap(),
        "text/event-stream"
    );
    assert!(sse.text.starts_with("data: {"), "{}", sse.text);
    assert!(
        sse.text.ends_with("event: end\ndata: {}\n\n"),
        "{}",
        sse.text
    );

    // Another, cancelled; a third stays open for the all-verifications stream.
    let second = partner
        .ok(
            M::POST,
            "/v1/verifications",
            Some(json!({"service": "telegram", "country": "GB", "requestId": "json-2"})),
            token,
        )
        .await;
    let second = str_at(&second, "/verification/name").to_owned();
    let cancelled = partner
        .ok(
            M::POST,
            &format!("/v1/{second}:cancel"),
            Some(json!({})),
            token,
        )
        .await;
    assert_eq!(
        str_at(&cancelled, "/verification/status"),
        "VERIFICATION_STATUS_CANCELLED"
    );
    let third = partner
        .ok(
            M::POST,
            "/v1/verifications",
            Some(json!({"service": "google", "country": "GB", "requestId": "json-3"})),
            token,
        )
        .await;
    let third = str_at(&third, "/verification/name").to_owned();
    let line = partner
        .first_line("/v1/verifications:watch?includeSnapshots=true", &access)
        .await;
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        str_at(&line, "/result/event/verification/name"),
        third,
        "{line}"
    );

    // Plans and usage.
    partner.ok(M::GET, "/v1/subscription", None, token).await;
    let changed = partner
        .ok(
            M::POST,
            "/v1/subscription:changePlan",
            Some(json!({"plan": "PLAN_TIER_PRO", "requestId": "json-pro"})),
            token,
        )
        .await;
    assert_eq!(
        str_at(&changed, "/subscription/plan"),
        "PLAN_TIER_PRO",
        "{changed}"
    );
    partner.ok(M::GET, "/v1/usage", None, token).await;
    let alert = partner
        .call(
            M::POST,
            "/v1/usage:setAlert",
            Some(json!({"thresholdPercents": [50, 80]})),
            token,
        )
        .await;
    assert!(
        alert.status == StatusCode::OK || alert.status == StatusCode::BAD_REQUEST,
        "{}",
        alert.text
    );
    partner
        .ok(M::POST, "/v1/subscription:cancel", Some(json!({})), token)
        .await;

    // A password reset by mail, then signing out.
    partner
        .ok(
            M::POST,
            "/v1/auth:requestPasswordReset",
            Some(json!({"email": email})),
            None,
        )
        .await;
    let reset = app.nth_token_to(&email, 3).await;
    partner
        .ok(
            M::POST,
            "/v1/auth:resetPassword",
            Some(json!({"token": reset, "newPassword": "another horse 43"})),
            None,
        )
        .await;
    let login = partner
        .ok(
            M::POST,
            "/v1/auth:login",
            Some(json!({"email": email, "password": "another horse 43"})),
            None,
        )
        .await;
    let refresh = str_at(&login, "/tokens/refreshToken").to_owned();
    let access = str_at(&login, "/tokens/accessToken").to_owned();
    partner
        .ok(
            M::POST,
            "/v1/auth:logout",
            Some(json!({"refreshToken": refresh})),
            Some(&access),
        )
        .await;

    // A customer, through every route: the administrators' RPCs answer 403, each with its
    // reason; a customer lists no tenants, and anyone reads the branding.
    let (routes, problems) = namaskah_edge::json_routes();
    assert!(problems.is_empty(), "{problems:?}");
    let customer = app.signed_in().await.1;
    // A conversion event, anonymous (a visitor's id) and signed in.
    for token in [None, Some(customer.as_str())] {
        partner
            .ok(
                M::POST,
                "/v1/analytics/events:track",
                Some(json!({"eventName": "pricing_viewed", "properties": {"page": "/pricing"}, "anonymousId": "visitor-7"})),
                token,
            )
            .await;
    }

    let tenants = partner
        .ok(M::GET, "/v1/tenants", None, Some(&customer))
        .await;
    assert_eq!(tenants["tenants"], json!(null), "{tenants}");
    for path in ["/v1/branding", "/v1/branding/sms.example.com"] {
        let branding = partner.ok(M::GET, path, None, None).await;
        assert_eq!(branding["tenant"], "tenants/default", "{branding}");
    }
    let refusals = TENANT_REFUSALS.into_iter().chain(
        ADMIN_ONLY
            .iter()
            .map(|s| (*s, StatusCode::FORBIDDEN, 7, "ADMIN_REQUIRED")),
    );
    for (service, status, code, reason) in refusals {
        for route in routes.iter().filter(|r| r.rpc.starts_with(service)) {
            let path = route_path(&route.template);
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let body = (!route.body.is_empty()).then(|| json!({}));
            let reply = partner.call(method, &path, body, Some(&customer)).await;
            assert_eq!(
                reply.status, status,
                "{} {path} ({}): {}",
                route.method, route.rpc, reply.text
            );
            assert_eq!(reply.body["code"], code, "{}", reply.text);
            assert!(
                reply.text.contains(reason),
                "{}: the reason is kept: {}",
                route.rpc,
                reply.text
            );
        }
    }

    // Every route of the contract was reached.
    let reached = partner.reached.lock().unwrap().clone();
    let missing: Vec<String> = routes
        .iter()
        .filter(|r| !reached.contains(&(r.rpc.clone(), r.method.clone(), r.template.clone())))
        .map(|r| format!("{} {} ({})", r.method, r.template, r.rpc))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a JSON call in this test: {missing:#?}"
    );
}

/// A path for a template with every variable filled with `x` values.
fn route_path(template: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').expect("closed variable") + open;
        let inner = &rest[open + 1..close];
        let pattern = inner.split_once('=').map_or("*", |(_, p)| p);
        let filled: Vec<&str> = pattern
            .split('/')
            .map(|part| if part.starts_with('*') { "x" } else { part })
            .collect();
        out.push_str(&filled.join("/"));
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_in_process_edge_maps_errors_and_headers() {
    let app = spawn_app_with(&[("NAMASKAH_EDGE_ADDR", "127.0.0.1:0")]).await;
    let partner = Partner::new(&app);

    let reply = partner.call(Method::GET, "/v1/users/me", None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
    assert_eq!(reply.body["code"], 16);
    assert_eq!(
        reply.body["details"][0]["@type"],
        "type.googleapis.com/google.rpc.ErrorInfo"
    );

    let reply = partner
        .call(
            Method::POST,
            "/v1/auth:register",
            Some(json!({"email": "not an email", "password": "x"})),
            None,
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    let violations = reply.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .expect("BadRequest kept")["fieldViolations"]
        .as_array()
        .unwrap()
        .len();
    assert!(violations >= 1, "{}", reply.text);

    let reply = partner
        .call(Method::GET, "/v1/services/whatsapp/prices/XX", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);

    let reply = partner.call(Method::GET, "/v1/nothing", None, None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = partner
        .call(Method::DELETE, "/v1/users/me", None, None)
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);

    let reply = partner.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["openapi"], "3.0.3");
}

#[tokio::test]
async fn json_callers_are_rate_limited_with_headers() {
    let app = spawn_app_with(&[
        ("NAMASKAH_EDGE_ADDR", "127.0.0.1:0"),
        ("NAMASKAH_ANONYMOUS_RPM", "2"),
    ])
    .await;
    let partner = Partner::new(&app);
    let mut last = None;
    for _ in 0..5 {
        let reply = partner.call(Method::GET, "/v1/plans", None, None).await;
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            last = Some(reply);
            break;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }
    let refused = last.expect("the third call a minute is refused");
    assert_eq!(refused.body["code"], 8, "{}", refused.text);
    assert!(
        refused.headers.contains_key("retry-after"),
        "{:?}",
        refused.headers
    );
    assert!(
        refused.headers.contains_key("ratelimit-limit"),
        "{:?}",
        refused.headers
    );
    assert!(refused.text.contains("RetryInfo"), "{}", refused.text);
}

#[tokio::test]
async fn the_in_process_edge_allows_only_the_configured_browser_origins() {
    let app = spawn_app_with(&[
        ("NAMASKAH_EDGE_ADDR", "127.0.0.1:0"),
        ("NAMASKAH_CORS_ORIGINS", "https://app.example.com"),
    ])
    .await;
    let partner = Partner::new(&app);
    let preflight = async |origin: &'static str| {
        let headers = [
            ("origin", origin),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization"),
        ];
        partner
            .call_with(Method::OPTIONS, "/v1/users/me", None, None, &headers)
            .await
    };
    let allowed = preflight("https://app.example.com").await;
    assert_eq!(
        allowed
            .headers
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(b"https://app.example.com".as_slice()),
        "{:?}",
        allowed.headers
    );
    assert_eq!(
        allowed
            .headers
            .get("access-control-allow-credentials")
            .map(|v| v.as_bytes()),
        Some(b"true".as_slice())
    );
    let other = preflight("https://evil.example.com").await;
    assert!(
        other.headers.get("access-control-allow-origin").is_none(),
        "{:?}",
        other.headers
    );
    // A real call from the page carries the header too, and exposes the limit headers.
    let (_, token) = app.signed_in().await;
    let call = partner
        .call_with(
            Method::GET,
            "/v1/users/me",
            None,
            Some(&token),
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(call.status, StatusCode::OK, "{}", call.text);
    assert!(call.headers.get("access-control-allow-origin").is_some());
    let exposed = call
        .headers
        .get("access-control-expose-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("ratelimit-remaining"), "{exposed}");
}
