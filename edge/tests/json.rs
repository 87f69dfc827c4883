//! JSON transcoding through the edge, against fake upstreams over real sockets.

mod support;

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::Full;
use namaskah_edge::EdgeOptions;
use namaskah_proto::v1;
use prost::Message as _;
use serde_json::{Value, json};
use support::{Answer, Edge, FakeGrpc, HttpReply, Upstream, closed_port, http1};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

/// Upper bound for anything that must not hang.
const PROMPTLY: Duration = Duration::from_secs(10);

struct Call<'a> {
    method: Method,
    path: &'a str,
    body: Option<&'a str>,
    headers: Vec<(&'a str, &'a str)>,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a str) -> Self {
        Self {
            method,
            path,
            body: None,
            headers: Vec::new(),
        }
    }

    fn get(path: &'a str) -> Self {
        Self::new(Method::GET, path)
    }

    fn post(path: &'a str, body: &'a str) -> Self {
        Self::new(Method::POST, path).json(body)
    }

    fn json(mut self, body: &'a str) -> Self {
        self.body = Some(body);
        self.headers.push(("content-type", "application/json"));
        self
    }

    fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    async fn send(self, edge: &Edge) -> HttpReply {
        let mut builder = http::Request::builder().method(self.method).uri(format!(
            "{}{}",
            edge.url(),
            self.path
        ));
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        let body = Full::new(Bytes::from(self.body.unwrap_or_default().to_owned()));
        tokio::time::timeout(PROMPTLY, http1(builder.body(body).unwrap()))
            .await
            .expect("the edge answers promptly")
    }
}

fn assert_json_error(reply: &HttpReply, http: u16, code: Code) -> Value {
    assert_eq!(reply.status.as_u16(), http, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["code"], code as i32, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["details"].is_array(), "{body}");
    body
}

/// The `BadRequest` field violations of an error body.
fn violations(body: &Value) -> Vec<(String, String)> {
    body["details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .flat_map(|d| d["fieldViolations"].as_array().cloned().unwrap_or_default())
        .map(|v| {
            (
                v["field"].as_str().unwrap_or_default().to_owned(),
                v["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

async fn echo_edge() -> (FakeGrpc, Edge) {
    let fake = FakeGrpc::echo().await;
    let edge = Edge::start(fake.channel()).await;
    (fake, edge)
}

#[tokio::test]
async fn get_me_passes_credentials_and_the_client_address_and_returns_headers() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;

    let reply = Call::get("/v1/users/me")
        .header("authorization", "Bearer token-123")
        .header("x-api-key", "nsk_test_key")
        .header("x-forwarded-for", "203.0.113.9")
        .send(&edge)
        .await;

    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("x-process-time"), Some("0.000042"));
    let user = &reply.json()["user"];
    assert_eq!(user["name"], "Bearer token-123");
    assert_eq!(user["email"], "nsk_test_key");
    assert_eq!(
        user["referralCode"], "203.0.113.9, 127.0.0.1",
        "the caller's address is appended to x-forwarded-for"
    );
}

#[tokio::test]
async fn path_variables_fill_the_request() {
    let (fake, edge) = echo_edge().await;
    let reply = Call::get("/v1/services/whatsapp/prices/GB")
        .send(&edge)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json(), json!({}));
    assert_eq!(reply.header("x-request-id"), Some("req-1"));
    let call = fake.only_call();
    assert_eq!(call.path, "/namaskah.v1.CatalogService/GetPrice");
    assert_eq!(
        call.decode::<v1::GetPriceRequest>().name,
        "services/whatsapp/prices/GB"
    );
}

#[tokio::test]
async fn query_parameters_fill_the_rest_by_proto_or_json_name() {
    let (fake, edge) = echo_edge().await;
    let reply = Call::get(
        "/v1/verifications?pageSize=5&page_token=abc%3D&statuses=VERIFICATION_STATUS_ACTIVE&statuses=1&service=whats+app",
    )
    .send(&edge)
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let request: v1::ListVerificationsRequest = fake.only_call().decode();
    assert_eq!(request.page_size, 5);
    assert_eq!(request.page_token, "abc=");
    assert_eq!(
        request.statuses,
        vec![
            v1::VerificationStatus::Active as i32,
            v1::VerificationStatus::Pending as i32
        ],
        "enum names and numbers, repeated"
    );
    assert_eq!(request.service, "whats app");

    let reply = Call::get(
        "/v1/analytics/revenue?start_date.year=2026&startDate.month=2&endDate.year=2026&granularity=1",
    )
    .send(&edge)
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let request: v1::GetRevenueAnalyticsRequest = fake.calls()[1].decode();
    let start = request.start_date.expect("nested fields from dotted names");
    assert_eq!((start.year, start.month), (2026, 2));
    assert_eq!(request.end_date.map(|d| d.year), Some(2026));
    assert_eq!(request.granularity, 1);
}

#[tokio::test]
async fn the_path_wins_over_the_body_and_the_body_over_the_query() {
    let (fake, edge) = echo_edge().await;

    // body "*": a path-bound field given again in the body keeps the path's value.
    let reply = Call::post(
        "/v1/verifications/v-1:cancel",
        r#"{"name": "verifications/someone-elses"}"#,
    )
    .send(&edge)
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let request: v1::CancelVerificationRequest = fake.calls()[0].decode();
    assert_eq!(request.name, "verifications/v-1");

    // body "tenant": the path sets tenant.name, the body the tenant, the query the rest
    // (and loses to the body for the tenant's own fields).
    let reply = Call::new(
        Method::PATCH,
        "/v1/tenants/t-1?updateMask=displayName,branding.logoUri&tenant.display_name=ignored",
    )
    .json(r#"{"name": "tenants/other", "displayName": "Acme", "branding": {"logoUri": "https://acme.example/logo.png"}}"#)
    .send(&edge)
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let call = &fake.calls()[1];
    assert_eq!(call.path, "/namaskah.v1.TenantService/UpdateTenant");
    let request: v1::UpdateTenantRequest = call.decode();
    let tenant = request.tenant.expect("tenant from the body");
    assert_eq!(tenant.name, "tenants/t-1");
    assert_eq!(tenant.display_name, "Acme");
    assert_eq!(
        tenant.branding.map(|b| b.logo_uri).as_deref(),
        Some("https://acme.example/logo.png")
    );
    assert_eq!(
        request.update_mask.expect("mask from the query").paths,
        vec!["display_name", "branding.logo_uri"]
    );

    // body "*": the query string is not read.
    let reply = Call::post(
        "/v1/auth:login?email=query@example.com",
        r#"{"email": "body@example.com"}"#,
    )
    .send(&edge)
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let request: v1::LoginRequest = fake.calls()[2].decode();
    assert_eq!(request.email, "body@example.com");
}

#[tokio::test]
async fn additional_bindings_are_routes_too() {
    let (fake, edge) = echo_edge().await;
    let reply = Call::get("/v1/branding/shop.example.com").send(&edge).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = Call::get("/v1/branding?host=other.example.com")
        .send(&edge)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let calls = fake.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.path == "/namaskah.v1.TenantService/GetBranding")
    );
    assert_eq!(
        calls[0].decode::<v1::GetBrandingRequest>().host,
        "shop.example.com"
    );
    assert_eq!(
        calls[1].decode::<v1::GetBrandingRequest>().host,
        "other.example.com"
    );
    assert!(
        calls[0]
            .header("x-forwarded-host")
            .is_some_and(|h| h.starts_with("127.0.0.1:")),
        "the host asked for is passed on: {:?}",
        calls[0].metadata
    );
}

#[tokio::test]
async fn proto3_json_64_bit_integers_and_enums() {
    let verification = v1::Verification {
        name: "verifications/v-1".into(),
        status: v1::VerificationStatus::Active as i32,
        price: Some(v1::Money {
            currency_code: "USD".into(),
            minor_units: 9_007_199_254_740_993,
        }),
        ..Default::default()
    };
    let answer = v1::CreateVerificationResponse {
        verification: Some(verification),
    }
    .encode_to_vec();
    let fake = FakeGrpc::start(move |_| Answer::one(answer.clone())).await;
    let edge = Edge::start(fake.channel()).await;

    // 64-bit integers in as strings or numbers, enums by name or number.
    let reply = Call::post(
        "/v1/verifications",
        r#"{"service": "whatsapp", "country": "GB", "requestId": "r-1", "maxPrice": {"currencyCode": "USD", "minorUnits": "9007199254740993"}}"#,
    )
    .send(&edge)
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let request: v1::CreateVerificationRequest = fake.calls()[0].decode();
    assert_eq!(
        request.max_price.map(|m| m.minor_units),
        Some(9_007_199_254_740_993)
    );
    assert_eq!(request.request_id, "r-1");

    let body = reply.json();
    assert_eq!(body["verification"]["status"], "VERIFICATION_STATUS_ACTIVE");
    assert_eq!(
        body["verification"]["price"]["minorUnits"], "9007199254740993",
        "64-bit integers go out as strings"
    );

    let reply = Call::post(
        "/v1/sandbox:injectSms",
        r#"{"phoneNumber": "+447700900123", "text": "code 1234"}"#,
    )
    .send(&edge)
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

#[tokio::test]
async fn bad_json_is_a_400_that_names_the_problem_and_never_reaches_the_server() {
    let (fake, edge) = echo_edge().await;
    let cases = [
        (
            Call::post("/v1/auth:login", r#"{"email": "a@b.c", "pasword": "x"}"#),
            "pasword",
        ),
        (
            Call::post("/v1/auth:login", r#"{"email": "a@b.c""#),
            "invalid JSON",
        ),
        (
            Call::post("/v1/auth:login", r#"{"email": 42}"#),
            "expected a string",
        ),
        (
            Call::post("/v1/auth:login", r#"{"email": "a@b.c"} trailing"#),
            "trailing",
        ),
        (Call::post("/v1/auth:login", "[1, 2]"), "invalid JSON"),
        (
            Call::post("/v1/verifications/v-1:cancel", "null"),
            "invalid JSON",
        ),
        (
            Call::post("/v1/topUps", r#"{"amount": {"minorUnits": "ten"}}"#),
            "minorUnits",
        ),
        (
            Call::post("/v1/topUps", r#"{"amount": {"minorUnits": 1.5}}"#),
            "minorUnits",
        ),
        (
            Call::get("/v1/verifications?statuses=VERIFICATION_STATUS_SOMETIMES"),
            "statuses",
        ),
        (Call::get("/v1/verifications?pageSize=many"), "pageSize"),
        (
            Call::get("/v1/verifications?pageSize=1&pageSize=2"),
            "more than once",
        ),
        (
            Call::get("/v1/verifications?colour=blue"),
            "unknown query parameter `colour`",
        ),
        (
            Call::get("/v1/verifications?page_token=%zz"),
            "broken escape",
        ),
        (
            Call::get("/v1/analytics/revenue?startDate=2026-01-01"),
            "cannot be set from the query",
        ),
        (
            Call::get("/v1/users/me").json(r#"{"x": 1}"#),
            "takes no request body",
        ),
    ];
    for (call, expected) in cases {
        let what = format!("{} {} {:?}", call.method, call.path, call.body);
        let reply = call.send(&edge).await;
        let body = assert_json_error(&reply, 400, Code::InvalidArgument);
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{what}: {message:?} should mention {expected:?}"
        );
        assert_eq!(violations(&body).len(), 1, "{what}: {body}");
    }
    assert!(fake.calls().is_empty(), "{:?}", fake.calls());
}

#[tokio::test]
async fn routing_errors_404_405_415_413() {
    let fake = FakeGrpc::echo().await;
    let edge = Edge::start_with(
        fake.channel(),
        EdgeOptions {
            max_body_bytes: 256,
            ..EdgeOptions::default()
        },
    )
    .await;

    let reply = Call::get("/v1/nothing/here").send(&edge).await;
    let body = assert_json_error(&reply, 404, Code::NotFound);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/v1/nothing/here")
    );
    assert_json_error(
        &Call::get("/v1/users/me/").send(&edge).await,
        404,
        Code::NotFound,
    );
    assert_json_error(
        &Call::get("/v1/verifications/a/b").send(&edge).await,
        404,
        Code::NotFound,
    );

    let reply = Call::post("/v1/users/me", "{}").send(&edge).await;
    assert_json_error(&reply, 405, Code::Unimplemented);
    assert_eq!(reply.header("allow"), Some("GET"));
    let reply = Call::new(Method::DELETE, "/v1/apiKeys").send(&edge).await;
    assert_json_error(&reply, 405, Code::Unimplemented);
    let allow = reply.header("allow").unwrap_or_default();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    let reply = Call::new(Method::POST, "/v1/auth:login")
        .header("content-type", "text/plain")
        .send(&edge)
        .await;
    assert_json_error(&reply, 415, Code::InvalidArgument);
    let mut form = Call::new(Method::POST, "/v1/auth:login")
        .header("content-type", "application/x-www-form-urlencoded");
    form.body = Some("email=a");
    assert_json_error(&form.send(&edge).await, 415, Code::InvalidArgument);
    // JSON with parameters, and no content type with an empty body, are fine.
    let reply = Call::new(Method::POST, "/v1/auth:logout")
        .header("content-type", "application/json; charset=utf-8")
        .send(&edge)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = Call::new(Method::POST, "/v1/auth:logout").send(&edge).await;
    assert_eq!(reply.status, StatusCode::OK);

    let big = format!(r#"{{"email": "{}"}}"#, "a".repeat(300));
    let reply = Call::post("/v1/auth:login", &big).send(&edge).await;
    assert_json_error(&reply, 413, Code::ResourceExhausted);

    // A chunked body (no content-length) is counted as it streams.
    let chunks: Vec<Result<http_body::Frame<Bytes>, std::convert::Infallible>> = (0..30)
        .map(|_| {
            Ok(http_body::Frame::data(Bytes::from_static(
                b"          \"x\": 1,",
            )))
        })
        .collect();
    let request = http::Request::builder()
        .method(Method::POST)
        .uri(format!("{}/v1/auth:login", edge.url()))
        .header("content-type", "application/json")
        .body(http_body_util::StreamBody::new(futures::stream::iter(
            chunks,
        )))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    let response = tokio::time::timeout(PROMPTLY, client.request(request))
        .await
        .expect("prompt")
        .expect("HTTP exchange");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let sent: Vec<String> = fake.calls().into_iter().map(|c| c.path).collect();
    assert_eq!(sent, vec!["/namaskah.v1.AuthService/Logout"; 2]);
}

#[tokio::test]
async fn upstream_errors_keep_their_details_and_headers() {
    let fake = FakeGrpc::start(|call| {
        let mut details = ErrorDetails::with_error_info(
            "RATE_LIMITED",
            "namaskah.sms",
            [("plan".to_owned(), "starter".to_owned())],
        );
        details.set_retry_info(Some(Duration::from_millis(1500)));
        let mut status = Status::with_error_details(Code::ResourceExhausted, "slow down", details);
        if call.path.ends_with("/GetMe") {
            let metadata = status.metadata_mut();
            metadata.insert("retry-after", "7".parse().unwrap());
            metadata.insert("x-ratelimit-limit", "100".parse().unwrap());
            metadata.insert("x-ratelimit-remaining", "0".parse().unwrap());
            metadata.insert("x-ratelimit-reset", "42".parse().unwrap());
            metadata.insert("x-process-time", "0.000100".parse().unwrap());
            return Answer::Status(status);
        }
        if call.path.ends_with("/Register") {
            let mut details = ErrorDetails::new();
            details.add_bad_request_violation("password", "at least 10 characters");
            return Answer::Status(Status::with_error_details(
                Code::InvalidArgument,
                "invalid registration",
                details,
            ));
        }
        if call.path.ends_with("/CreateTopUp") {
            return Answer::Status(Status::already_exists("same request_id, other amount"));
        }
        // RetryInfo alone: Retry-After is derived from it (rounded up).
        Answer::Status(status)
    })
    .await;
    let edge = Edge::start(fake.channel()).await;

    let reply = Call::get("/v1/users/me").send(&edge).await;
    let body = assert_json_error(&reply, 429, Code::ResourceExhausted);
    assert_eq!(body["message"], "slow down");
    assert_eq!(reply.header("retry-after"), Some("7"));
    assert_eq!(reply.header("ratelimit-limit"), Some("100"));
    assert_eq!(reply.header("ratelimit-remaining"), Some("0"));
    assert_eq!(reply.header("ratelimit-reset"), Some("42"));
    assert_eq!(reply.header("x-process-time"), Some("0.000100"));
    let details = body["details"].as_array().unwrap();
    let info = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        .expect("ErrorInfo kept");
    assert_eq!(info["reason"], "RATE_LIMITED");
    assert_eq!(info["domain"], "namaskah.sms");
    assert_eq!(info["metadata"]["plan"], "starter");
    let retry = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
        .expect("RetryInfo kept");
    assert_eq!(retry["retryDelay"], "1.5s");

    let reply = Call::get("/v1/balance").send(&edge).await;
    assert_json_error(&reply, 429, Code::ResourceExhausted);
    assert_eq!(reply.header("retry-after"), Some("2"));

    let reply = Call::post("/v1/auth:register", "{}").send(&edge).await;
    let body = assert_json_error(&reply, 400, Code::InvalidArgument);
    assert_eq!(
        violations(&body),
        vec![("password".to_owned(), "at least 10 characters".to_owned())]
    );

    let reply = Call::post("/v1/topUps", "{}").send(&edge).await;
    assert_json_error(&reply, 409, Code::AlreadyExists);
}

#[tokio::test]
async fn unimplemented_services_are_a_501() {
    let upstream = Upstream::start().await;
    let edge = Edge::start(upstream.channel()).await;
    // The fake upstream has no AdminService at all.
    let reply = Call::get("/v1/admin/users").send(&edge).await;
    assert_json_error(&reply, 501, Code::Unimplemented);
    // And its AuthService does not fake Logout.
    let reply = Call::post("/v1/auth:logout", "{}").send(&edge).await;
    let body = assert_json_error(&reply, 501, Code::Unimplemented);
    assert!(body["message"].as_str().unwrap().contains("Logout"));
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_prompt_503() {
    let dead = closed_port().await;
    let edge = Edge::start(namaskah_edge::upstream_channel(
        format!("http://{dead}").parse().unwrap(),
    ))
    .await;
    for call in [
        Call::get("/v1/users/me"),
        Call::get("/v1/verifications:watch"),
    ] {
        let reply = call.send(&edge).await;
        assert_json_error(&reply, 503, Code::Unavailable);
    }
}

fn watch_events(count: i64) -> Vec<Vec<u8>> {
    (1..=count)
        .map(|sequence| {
            v1::WatchVerificationResponse {
                event: Some(v1::VerificationEvent {
                    sequence,
                    ..Default::default()
                }),
            }
            .encode_to_vec()
        })
        .collect()
}

async fn streaming_edge(end: Status) -> (FakeGrpc, Edge) {
    let fake = FakeGrpc::start(move |_| Answer::Messages {
        metadata: vec![("x-process-time", "0.000001".into())],
        messages: watch_events(2),
        end: end.clone(),
    })
    .await;
    let edge = Edge::start(fake.channel()).await;
    (fake, edge)
}

#[tokio::test]
async fn server_streams_are_newline_delimited_json() {
    let (fake, edge) = streaming_edge(Status::ok("")).await;
    let reply = Call::get("/v1/verifications/v-1:watch?afterSequence=3")
        .send(&edge)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    let text = std::str::from_utf8(&reply.body).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"result": {"event": {"sequence": "1"}}}),
            json!({"result": {"event": {"sequence": "2"}}}),
        ]
    );
    assert!(text.ends_with('\n'));
    let request: v1::WatchVerificationRequest = fake.only_call().decode();
    assert_eq!(request.name, "verifications/v-1");
    assert_eq!(request.after_sequence, 3);

    let (_fake, edge) = streaming_edge(Status::unavailable("server shutting down")).await;
    let reply = Call::get("/v1/verifications:watch").send(&edge).await;
    assert_eq!(reply.status, StatusCode::OK);
    let lines: Vec<Value> = std::str::from_utf8(&reply.body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["error"]["code"], Code::Unavailable as i32);
    assert_eq!(lines[2]["error"]["message"], "server shutting down");
}

#[tokio::test]
async fn server_streams_are_server_sent_events_when_asked() {
    let (_fake, edge) = streaming_edge(Status::ok("")).await;
    let reply = Call::get("/v1/verifications/v-1:watch")
        .header("accept", "text/event-stream")
        .send(&edge)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert_eq!(reply.header("cache-control"), Some("no-cache"));
    let text = std::str::from_utf8(&reply.body).unwrap();
    assert_eq!(
        text,
        "data: {\"event\":{\"sequence\":\"1\"}}\n\n\
         data: {\"event\":{\"sequence\":\"2\"}}\n\n\
         event: end\ndata: {}\n\n"
    );

    let (_fake, edge) = streaming_edge(Status::permission_denied("not yours")).await;
    let reply = Call::get("/v1/verifications/v-1:watch")
        .header("accept", "text/event-stream")
        .send(&edge)
        .await;
    let text = std::str::from_utf8(&reply.body).unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let (event, data) = last.split_once('\n').unwrap();
    assert_eq!(event, "event: error");
    let error: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["code"], Code::PermissionDenied as i32);
}

#[tokio::test]
async fn a_stream_that_fails_before_its_first_message_is_an_http_error() {
    let fake = FakeGrpc::start(|_| Answer::Status(Status::not_found("no such verification"))).await;
    let edge = Edge::start(fake.channel()).await;
    let reply = Call::get("/v1/verifications/v-404:watch").send(&edge).await;
    assert_json_error(&reply, 404, Code::NotFound);
}

async fn cors_edge() -> (FakeGrpc, Edge) {
    let fake = FakeGrpc::echo().await;
    let edge = Edge::start_with(
        fake.channel(),
        EdgeOptions {
            cors_origins: namaskah_edge::parse_cors_origins(
                "https://app.example.com,http://localhost:5173",
            )
            .unwrap(),
            ..EdgeOptions::default()
        },
    )
    .await;
    (fake, edge)
}

#[tokio::test]
async fn cors_preflights_allow_only_the_listed_origins_with_credentials() {
    let (fake, edge) = cors_edge().await;
    for path in ["/v1/auth:login", "/namaskah.v1.AuthService/GetMe"] {
        let reply = Call::new(Method::OPTIONS, path)
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, x-api-key, content-type, x-grpc-web, x-user-agent",
            )
            .send(&edge)
            .await;
        assert!(reply.status.is_success(), "{path}: {}", reply.status);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            Some("true")
        );
        let allowed = reply
            .header("access-control-allow-headers")
            .unwrap_or_default();
        for header in ["authorization", "x-api-key", "content-type", "x-grpc-web"] {
            assert!(allowed.contains(header), "{allowed}");
        }
    }

    let reply = Call::new(Method::OPTIONS, "/v1/auth:login")
        .header("origin", "https://evil.example.com")
        .header("access-control-request-method", "POST")
        .send(&edge)
        .await;
    assert_eq!(reply.header("access-control-allow-origin"), None);
    assert!(fake.calls().is_empty(), "preflights never reach the server");
}

#[tokio::test]
async fn cors_answers_expose_the_grpc_web_and_rate_limit_headers() {
    let (_fake, edge) = cors_edge().await;
    let reply = Call::get("/v1/users/me")
        .header("origin", "http://localhost:5173")
        .send(&edge)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    let exposed = reply
        .header("access-control-expose-headers")
        .unwrap_or_default();
    for header in [
        "grpc-status",
        "grpc-message",
        "x-process-time",
        "retry-after",
        "ratelimit-remaining",
        "x-ratelimit-remaining",
    ] {
        assert!(exposed.contains(header), "{header} in {exposed}");
    }
    // Errors from the edge itself carry them too, or the page could not read them.
    let reply = Call::get("/v1/nothing")
        .header("origin", "http://localhost:5173")
        .send(&edge)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://localhost:5173")
    );

    let reply = Call::get("/v1/users/me")
        .header("origin", "https://evil.example.com")
        .send(&edge)
        .await;
    assert_eq!(reply.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn without_configured_origins_there_are_no_cors_headers() {
    let (_fake, edge) = echo_edge().await;
    let reply = Call::get("/v1/users/me")
        .header("origin", "https://app.example.com")
        .send(&edge)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply
            .headers
            .keys()
            .all(|name| !name.as_str().starts_with("access-control-")),
        "{:?}",
        reply.headers
    );
}

#[tokio::test]
async fn the_openapi_document_describes_the_json_routes() {
    let (_fake, edge) = echo_edge().await;
    let reply = Call::get("/openapi.json").send(&edge).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let doc = reply.json();
    assert_eq!(doc["openapi"], "3.0.3");
    let get_me = &doc["paths"]["/v1/users/me"]["get"];
    assert_eq!(get_me["operationId"], "AuthService_GetMe");
    assert_eq!(
        get_me["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/namaskah.v1.GetMeResponse"
    );
    let (routes, _) = namaskah_edge::json_routes();
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(operations, routes.len());
}

#[tokio::test]
async fn quiet_server_sent_event_streams_get_keep_alive_comments() {
    let events = watch_events(2);
    let fake = FakeGrpc::start(move |_| Answer::Slow {
        messages: [events[0].clone(), events[1].clone()],
        pause: Duration::from_millis(400),
    })
    .await;
    let edge = Edge::start_with(
        fake.channel(),
        EdgeOptions {
            sse_keep_alive: Duration::from_millis(50),
            ..EdgeOptions::default()
        },
    )
    .await;
    let reply = Call::get("/v1/verifications/v-1:watch")
        .header("accept", "text/event-stream")
        .send(&edge)
        .await;
    let text = std::str::from_utf8(&reply.body).unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(
        events.first(),
        Some(&"data: {\"event\":{\"sequence\":\"1\"}}")
    );
    assert!(
        events.iter().filter(|e| **e == ": keep-alive").count() >= 2,
        "{text}"
    );
    assert!(
        text.ends_with("data: {\"event\":{\"sequence\":\"2\"}}\n\nevent: end\ndata: {}\n\n"),
        "{text}"
    );

    // NDJSON has no comments: only the messages.
    let reply = Call::get("/v1/verifications/v-1:watch").send(&edge).await;
    assert_eq!(std::str::from_utf8(&reply.body).unwrap().lines().count(), 2);
}
