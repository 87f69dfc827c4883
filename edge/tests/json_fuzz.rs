//! Random paths, methods, query strings and bodies thrown at the JSON edge in front of an
//! upstream that answers every call: a client's mistake is never a 5xx, and the edge never
//! panics (a panic would be a 500 from the catch-panic layer).

mod support;

use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use support::{Edge, FakeGrpc, http1};

/// Path segments worth trying: pieces of real routes, verbs, escapes and oddities.
const SEGMENTS: &[&str] = &[
    "v1",
    "auth:login",
    "auth:register",
    "auth:logout",
    "verifications",
    "verifications:watch",
    "v-1:cancel",
    "v-1:watch",
    "users",
    "me",
    "twoFactor:setup",
    "apiKeys",
    "k-1:revoke",
    "services",
    "whatsapp",
    "prices",
    "GB",
    "GB:set",
    "tenants",
    "t-1",
    "admin",
    "branding",
    "topUps",
    "nms-1:verify",
    "subscription:changePlan",
    "usage:setAlert",
    "sandbox:injectSms",
    "analytics",
    "revenue",
    "openapi.json",
    // Not `healthz`: its 503 reports the upstream's health, not a client's mistake.
    "",
    ":",
    "::",
    "%2F",
    "%zz",
    "%",
    "%ff",
    "..",
    "*",
    "**",
    "a%20b",
];

/// Field names (proto and JSON forms) and nonsense, for query strings and bodies.
const FIELDS: &[&str] = &[
    "email",
    "password",
    "name",
    "service",
    "country",
    "requestId",
    "request_id",
    "amount",
    "minorUnits",
    "currencyCode",
    "pageSize",
    "page_size",
    "pageToken",
    "statuses",
    "tenant",
    "tenant.name",
    "displayName",
    "updateMask",
    "start_date.year",
    "startDate",
    "granularity",
    "afterSequence",
    "host",
    "text",
    "phoneNumber",
    "colour",
    "",
    "a.b.c",
];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(SEGMENTS).prop_map(str::to_owned),
        1 => "[a-zA-Z0-9._~%:-]{0,12}",
    ]
}

fn random_path() -> impl Strategy<Value = String> {
    (any::<bool>(), proptest::collection::vec(segment(), 0..6)).prop_map(|(v1, segments)| {
        let mut path = String::from(if v1 { "/v1/" } else { "/" });
        path.push_str(&segments.join("/"));
        path
    })
}

/// A route's template with its variables filled in by `fills` (one per `*`/`**`).
fn filled(template: &str, fills: &[String]) -> String {
    let mut out = String::new();
    let mut fills = fills.iter().cycle();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let inner = &rest[open + 1..open + close];
        let pattern = inner.split_once('=').map_or("*", |(_, p)| p);
        let parts: Vec<String> = pattern
            .split('/')
            .map(|part| match part {
                "*" | "**" => fills.next().cloned().unwrap_or_default(),
                literal => literal.to_owned(),
            })
            .collect();
        out.push_str(&parts.join("/"));
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

/// Real routes (their method most of the time), with random values in their variables;
/// and random paths.
fn method_and_path() -> impl Strategy<Value = (Method, String)> {
    let (routes, _) = namaskah_edge::json_routes();
    let templates: Vec<(String, String)> =
        routes.into_iter().map(|r| (r.method, r.template)).collect();
    prop_oneof![
        3 => (
            proptest::sample::select(templates),
            proptest::collection::vec(segment(), 1..4),
            proptest::bool::weighted(0.8),
            method(),
        )
            .prop_map(|((route_method, template), fills, same, other)| {
                let method = if same {
                    Method::from_bytes(route_method.as_bytes()).unwrap_or(other)
                } else {
                    other
                };
                (method, filled(&template, &fills))
            }),
        1 => (method(), random_path()),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(proptest::collection::vec(
        (
            prop_oneof![
                3 => proptest::sample::select(FIELDS).prop_map(str::to_owned),
                1 => "[a-z_.]{0,8}",
            ],
            prop_oneof![
                Just("1".to_owned()),
                Just("-1".to_owned()),
                Just("99999999999999999999".to_owned()),
                Just("true".to_owned()),
                Just("VERIFICATION_STATUS_ACTIVE".to_owned()),
                Just("1.5".to_owned()),
                Just("%zz".to_owned()),
                "[a-zA-Z0-9%+._,-]{0,10}",
            ],
        ),
        0..5,
    ))
    .prop_map(|pairs| {
        pairs.map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-zA-Z0-9 @._-]{0,12}".prop_map(Value::String),
        Just(Value::String("VERIFICATION_STATUS_ACTIVE".into())),
        Just(Value::String("12345678901234567890".into())),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    proptest::sample::select(FIELDS).prop_map(str::to_owned),
                    inner
                ),
                0..5
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(Vec::new()),
        4 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => json_value().prop_map(|v| {
            let mut text = v.to_string();
            text.truncate(text.len() / 2);
            text.into_bytes()
        }),
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        4 => Just(Method::GET),
        4 => Just(Method::POST),
        1 => Just(Method::PATCH),
        1 => Just(Method::PUT),
        1 => Just(Method::DELETE),
        1 => Just(Method::HEAD),
        1 => Just(Method::OPTIONS),
        1 => Just(Method::from_bytes(b"PURGE").expect("a method")),
    ]
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    proptest::option::of(proptest::sample::select(
        &[
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/merge-patch+json",
            "",
        ][..],
    ))
}

#[test]
fn client_mistakes_are_never_a_5xx_and_never_a_panic() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (fake, edge) = runtime.block_on(async {
        let fake = FakeGrpc::echo().await;
        let edge = Edge::start_with(
            fake.channel(),
            namaskah_edge::EdgeOptions {
                max_body_bytes: 16 * 1024,
                ..Default::default()
            },
        )
        .await;
        (fake, edge)
    });

    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        method_and_path(),
        query(),
        body(),
        content_type(),
        any::<bool>(),
    );
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    // The edge answers `/openapi.json` itself, without the server.
    let openapi = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(
        &strategy,
        |((method, path), query, body, content_type, sse)| {
            let uri = match &query {
                Some(query) => format!("{}{path}?{query}", edge.url()),
                None => format!("{}{path}", edge.url()),
            };
            let Ok(uri) = uri.parse::<http::Uri>() else {
                return Ok(()); // not a request a client could send
            };
            let mut request = http::Request::builder().method(method.clone()).uri(uri);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            if sse {
                request = request.header("accept", "text/event-stream");
            }
            let request = request
                .body(Full::new(Bytes::from(body.clone())))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let reply = runtime.block_on(http1(request));
            *seen
                .lock()
                .expect("counts")
                .entry(reply.status.as_u16())
                .or_default() += 1;
            if reply.status == http::StatusCode::OK && path.starts_with("/openapi.json") {
                openapi.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let what = format!(
                "{method} {path}?{query:?} ({content_type:?}) body {:?}",
                String::from_utf8_lossy(&body)
            );
            prop_assert!(
                reply.status.as_u16() < 500,
                "{what}: {} {:?}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
            if reply.status.is_client_error() && method != Method::HEAD {
                let error: Value = serde_json::from_slice(&reply.body).map_err(|e| {
                    TestCaseError::fail(format!("{what}: error body is not JSON: {e}"))
                })?;
                prop_assert!(error["code"].is_i64(), "{what}: {error}");
                prop_assert!(error["message"].is_string(), "{what}: {error}");
            }
            Ok(())
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // Not vacuous: the random requests reached the server, and were refused, both often.
    let seen = seen.into_inner().expect("counts");
    eprintln!("answers by status: {seen:?}");
    let ok = seen.get(&200).copied().unwrap_or_default();
    let refused: usize = seen.range(400..500).map(|(_, n)| n).sum();
    assert!(ok >= 20 && refused >= 100, "answers by status: {seen:?}");
    let openapi = openapi.into_inner();
    assert!(
        fake.calls().len() >= ok - openapi,
        "every 200 but the OpenAPI document's came from the server ({openapi} of {ok})"
    );
    runtime.block_on(async {
        let _ = edge.shutdown().await;
        fake.stop().await;
    });
}
