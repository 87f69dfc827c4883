//! Observability against the real server: `/metrics` after real calls (the request
//! histogram by service, method and code; bounded labels for unknown paths; active users;
//! open streams; database, cache, provider and top-up metrics; slow calls), and Sentry
//! reports through Sentry's test transport and through a fake Sentry endpoint.
//!
//! The metrics registry is process-wide, so the tests of this file take turns (`SERIAL`)
//! and compare values before and after their own calls.
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use namaskah_proto::v1 as pb;
use namaskah_server::config::SentryConfig;
use namaskah_server::telemetry::reports;
use sea_orm::ConnectionTrait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn spawn_observed(extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("NAMASKAH_METRICS_ADDR", "127.0.0.1:0"),
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off"),
    ];
    vars.extend_from_slice(extra);
    spawn_app_with(&vars).await
}

/// One plain HTTP/1.1 request; returns the status code and the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    // A chunked body still contains every line; the parser below ignores the chunk sizes.
    (status, body)
}

async fn scrape(app: &TestApp) -> Metrics {
    let addr = app.state.telemetry.metrics_addr().expect("metrics are on");
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    Metrics::parse(&body)
}

/// The samples of one scrape.
struct Metrics {
    text: String,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = match line.rsplit_once(' ') {
                Some(parts) => parts,
                None => continue,
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut map = BTreeMap::new();
            for pair in split_labels(labels) {
                if let Some((k, v)) = pair.split_once('=') {
                    map.insert(k.to_owned(), v.trim_matches('"').to_owned());
                }
            }
            samples.push((name.to_owned(), map, value));
        }
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// The sum of the samples named `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.samples.iter().any(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// Every value of label `label` on metric `name`.
    fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .filter_map(|(_, l, _)| l.get(label).cloned())
            .collect();
        values.sort();
        values.dedup();
        values
    }
}

fn split_labels(labels: &str) -> Vec<String> {
    // Values never contain `",` in our label sets, but may contain commas.
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in labels.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

const WALLET: &str = "namaskah.v1.WalletService";
const AUTH: &str = "namaskah.v1.AuthService";
const DURATION_COUNT: &str = "request_duration_seconds_count";

#[tokio::test]
async fn the_request_histogram_counts_calls_by_service_method_and_code() {
    let _turn = SERIAL.lock().await;
    let app = spawn_observed(&[]).await;
    let (_, token) = app.signed_in().await;
    let ok = [
        ("service", WALLET),
        ("method", "GetBalance"),
        ("code", "OK"),
    ];
    let refused = [
        ("service", WALLET),
        ("method", "GetBalance"),
        ("code", "UNAUTHENTICATED"),
    ];
    let before = scrape(&app).await;

    for _ in 0..3 {
        let mut request = bearer(pb::GetBalanceRequest {}, &token);
        request
            .metadata_mut()
            .insert("x-request-id", "my-own-request-id".parse().unwrap());
        let response = app.wallet().get_balance(request).await.expect("balance");
        let metadata = response.metadata();
        assert!(metadata.get("x-process-time").is_some());
        assert_eq!(
            metadata.get("x-request-id").and_then(|v| v.to_str().ok()),
            Some("my-own-request-id")
        );
    }
    for _ in 0..2 {
        let status = app
            .wallet()
            .get_balance(pb::GetBalanceRequest {})
            .await
            .expect_err("no credentials");
        assert_eq!(status.code(), Code::Unauthenticated);
        // A request id is made up when the caller sends none.
        let id = status.metadata().get("x-request-id").expect("a request id");
        assert!(uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok());
    }

    let after = scrape(&app).await;
    assert_eq!(
        after.value(DURATION_COUNT, &ok) - before.value(DURATION_COUNT, &ok),
        3.0
    );
    assert_eq!(
        after.value(DURATION_COUNT, &refused) - before.value(DURATION_COUNT, &refused),
        2.0
    );
    // Buckets from 1 ms to 10 s, and +Inf holding every call.
    for le in ["0.001", "0.01", "0.1", "1", "10", "+Inf"] {
        let bucket: Vec<(&str, &str)> = ok.iter().copied().chain([("le", le)]).collect();
        assert!(
            after.has("request_duration_seconds_bucket", &bucket),
            "no bucket le={le}:\n{}",
            after.text
        );
    }
    let inf: Vec<(&str, &str)> = ok.iter().copied().chain([("le", "+Inf")]).collect();
    assert_eq!(
        after.value("request_duration_seconds_bucket", &inf),
        after.value(DURATION_COUNT, &ok)
    );
    // Login and Register went through too, under their own names.
    assert!(
        after.value(
            DURATION_COUNT,
            &[("service", AUTH), ("method", "Login"), ("code", "OK")]
        ) >= 1.0
    );
    // The listener serves nothing else.
    let addr = app.state.telemetry.metrics_addr().unwrap();
    assert_eq!(http_get(addr, "/other").await.0, 404);
}

/// Calls a path the server does not have (with any message: none gets that far).
async fn call_path(app: &TestApp, path: &str, token: &str) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("ready");
    let path: http::uri::PathAndQuery = path.parse().expect("a path");
    grpc.unary::<pb::GetMeRequest, pb::GetMeResponse, _>(
        bearer(pb::GetMeRequest {}, token),
        path,
        tonic_prost::ProstCodec::default(),
    )
    .await
    .expect_err("no such method")
}

#[tokio::test]
async fn unknown_paths_share_one_label_value() {
    let _turn = SERIAL.lock().await;
    let app = spawn_observed(&[]).await;
    let (_, token) = app.signed_in().await;
    let marker = uuid::Uuid::new_v4().simple().to_string();
    let before = scrape(&app).await;
    let paths = [
        format!("/evil{marker}.Service/Method"),
        format!("/namaskah.v1.AuthService/NoSuch{marker}"),
        format!("/{marker}"),
    ];
    for path in &paths {
        let status = call_path(&app, path, &token).await;
        assert_eq!(status.code(), Code::Unimplemented, "{path}: {status:?}");
    }
    let after = scrape(&app).await;
    assert!(
        !after.text.contains(&marker),
        "a raw path leaked into the labels"
    );
    let unknown = [("service", "unknown"), ("method", "unknown")];
    assert_eq!(
        after.value(DURATION_COUNT, &unknown) - before.value(DURATION_COUNT, &unknown),
        3.0
    );
    // Every service label is a real service or `unknown`.
    for service in after.label_values(DURATION_COUNT, "service") {
        assert!(
            service == "unknown"
                || service.starts_with("namaskah.v1.")
                || service.starts_with("grpc."),
            "{service}"
        );
    }
}

#[tokio::test]
async fn active_users_counts_distinct_accounts() {
    let _turn = SERIAL.lock().await;
    let app = spawn_observed(&[]).await;
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(app.signed_in().await.1);
    }
    let before = scrape(&app).await.value("active_users_total", &[]);
    for token in &tokens {
        for _ in 0..4 {
            app.auth()
                .get_me(bearer(pb::GetMeRequest {}, token))
                .await
                .expect("get me");
        }
    }
    // A second session of the same account is the same user.
    let email = app.register().await;
    let first = app.login(&email).await.access_token;
    let second = app.login(&email).await.access_token;
    for token in [&first, &second] {
        app.wallet()
            .get_balance(bearer(pb::GetBalanceRequest {}, token))
            .await
            .expect("balance");
    }
    let after = scrape(&app).await.value("active_users_total", &[]);
    assert_eq!(
        after - before,
        4.0,
        "3 accounts with 4 calls each, then 1 with two sessions"
    );
}

#[tokio::test]
async fn open_streams_are_counted_until_they_end() {
    let _turn = SERIAL.lock().await;
    let app = spawn_observed(&[]).await;
    let (_, token) = app.signed_in().await;
    let labels = [
        ("service", "namaskah.v1.VerificationService"),
        ("method", "WatchVerifications"),
    ];
    let cancelled = [
        ("service", "namaskah.v1.VerificationService"),
        ("method", "WatchVerifications"),
        ("code", "CANCELLED"),
    ];
    let before = scrape(&app).await;
    let open_before = before.value("open_streams", &labels);

    let stream = app
        .verifications()
        .watch_verifications(bearer(pb::WatchVerificationsRequest::default(), &token))
        .await
        .expect("stream opens")
        .into_inner();
    let during = scrape(&app).await;
    assert_eq!(during.value("open_streams", &labels), open_before + 1.0);

    drop(stream);
    // The server learns of the reset asynchronously: wait (bounded) for the gauge.
    let mut closed = None;
    for _ in 0..200 {
        let now = scrape(&app).await;
        if now.value("open_streams", &labels) == open_before {
            closed = Some(now);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let closed = closed.expect("the stream's gauge came back down");
    assert_eq!(
        closed.value(DURATION_COUNT, &cancelled) - before.value(DURATION_COUNT, &cancelled),
        1.0,
        "a stream the caller left is recorded as CANCELLED when its body ends"
    );
}

#[tokio::test]
async fn storage_cache_provider_and_top_up_metrics_follow_real_calls() {
    let _turn = SERIAL.lock().await;
    // No expiry job runs during the test (its first pass is at start-up).
    let app = spawn_observed(&[("NAMASKAH_JOB_INTERVAL", "1h")]).await;
    let before = scrape(&app).await;
    let token = app.funded(1_000).await;
    let verification = app.buy(&token, "whatsapp", "GB").await.expect("a number");
    assert!(!verification.phone_number.is_empty());
    let after = scrape(&app).await;

    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(delta("topups_total", &[("outcome", "started")]), 1.0);
    assert_eq!(delta("topups_total", &[("outcome", "credited")]), 1.0);
    assert_eq!(
        delta("topup_credited_minor_units_total", &[("currency", "USD")]),
        1000.0
    );
    assert_eq!(
        delta(
            "provider_calls_total",
            &[
                ("provider", "sandbox"),
                ("operation", "rent"),
                ("outcome", "ok")
            ]
        ),
        1.0
    );
    assert!(after.has(
        "provider_call_duration_seconds_count",
        &[("provider", "sandbox"), ("operation", "rent")]
    ));
    assert!(
        delta(
            "db_query_duration_seconds_count",
            &[("operation", "select")]
        ) > 0.0
    );
    assert!(
        delta(
            "db_query_duration_seconds_count",
            &[("operation", "insert")]
        ) > 0.0
    );
    assert!(after.value("db_pool_max_connections", &[]) >= 1.0);
    assert!(after.has("db_pool_connections", &[("state", "in_use")]));
    assert!(after.has("db_pool_connections", &[("state", "idle")]));
    // Authentication and the catalog read through the cache.
    assert!(delta("cache_requests_total", &[]) > 0.0);
    for cache in after.label_values("cache_requests_total", "cache") {
        assert!(
            ["in-process", "redis", "near"].contains(&cache.as_str()),
            "{cache}"
        );
    }
    // The refund backlog: an active verification a minute past its expiry that the
    // expiry job has not refunded.
    assert_eq!(after.value("verification_refund_backlog", &[]), 0.0);
    {
        use namaskah_server::verification::entities::verifications;
        use sea_orm::{EntityTrait, sea_query::Expr};
        verifications::Entity::update_many()
            .col_expr(
                verifications::Column::ExpiresAt,
                Expr::value(chrono::Utc::now() - chrono::Duration::minutes(2)),
            )
            .exec(&app.state.db)
            .await
            .expect("move the expiry back");
    }
    let overdue = scrape(&app).await;
    assert_eq!(overdue.value("verification_refund_backlog", &[]), 1.0);
    for operation in after.label_values("db_query_duration_seconds_count", "operation") {
        assert!(
            !operation.contains(' ') && operation.len() < 12,
            "{operation}"
        );
    }
}

/// A request id used again is answered with the first verification and charged once,
/// without a failed statement: `db_query_errors_total` does not move (so PostgreSQL logs
/// no ERROR either).
#[tokio::test]
async fn a_replayed_create_fails_no_database_statement() {
    let _turn = SERIAL.lock().await;
    let app = spawn_observed(&[("NAMASKAH_JOB_INTERVAL", "1h")]).await;
    let token = app.funded(1_000).await;
    let mut client = app.verifications();
    let create = || {
        bearer(
            pb::CreateVerificationRequest {
                service: "whatsapp".into(),
                country: "GB".into(),
                max_price: None,
                request_id: "once-only".into(),
            },
            &token,
        )
    };
    let first = client
        .create_verification(create())
        .await
        .expect("bought")
        .into_inner()
        .verification
        .expect("a verification");
    let before = scrape(&app).await;
    for _ in 0..3 {
        let replay = client
            .create_verification(create())
            .await
            .expect("replayed")
            .into_inner()
            .verification
            .expect("a verification");
        assert_eq!(replay.name, first.name);
    }
    let after = scrape(&app).await;
    assert_eq!(
        after.value("db_query_errors_total", &[]) - before.value("db_query_errors_total", &[]),
        0.0,
        "{}",
        after.text
    );
    let price = first.price.expect("a price").minor_units;
    assert_eq!(app.balance(&token).await, 1_000 - price);
}

#[tokio::test]
async fn slow_calls_are_counted_above_the_configured_threshold() {
    let _turn = SERIAL.lock().await;
    let register = [("service", AUTH), ("method", "Register")];

    let patient = spawn_observed(&[("NAMASKAH_SLOW_CALL_THRESHOLD", "1h")]).await;
    assert_eq!(
        patient.state.telemetry.slow_call_threshold(),
        Duration::from_secs(3600)
    );
    let before = scrape(&patient)
        .await
        .value("slow_requests_total", &register);
    patient.register().await;
    let after = scrape(&patient)
        .await
        .value("slow_requests_total", &register);
    assert_eq!(after, before, "nothing takes an hour");
    drop(patient);

    // Register hashes a password with Argon2id (19 MiB): never under a millisecond.
    let hasty = spawn_observed(&[("NAMASKAH_SLOW_CALL_THRESHOLD", "1ms")]).await;
    let before = scrape(&hasty).await.value("slow_requests_total", &register);
    hasty.register().await;
    let after = scrape(&hasty).await.value("slow_requests_total", &register);
    assert!(after >= before + 1.0, "before {before}, after {after}");
}

// ---- Sentry ----

/// Makes the account's wallet unreadable: the next GetBalance is an internal error.
async fn break_the_ledger(app: &TestApp) {
    app.state
        .db
        .execute_unprepared("ALTER TABLE ledger_accounts RENAME TO ledger_accounts_gone")
        .await
        .expect("rename");
}

async fn account_id(app: &TestApp, token: &str) -> String {
    let me = app
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, token))
        .await
        .expect("get me")
        .into_inner()
        .user
        .expect("user");
    me.name.trim_start_matches("users/").to_owned()
}

fn sentry_config(dsn: &str, rate: f32) -> SentryConfig {
    SentryConfig {
        dsn: Some(dsn.to_owned()),
        environment: "observability-test".to_owned(),
        traces_sample_rate: rate,
        traces_per_second: 1_000,
    }
}

fn envelope_text(envelope: &sentry::Envelope) -> String {
    let mut bytes = Vec::new();
    envelope.to_writer(&mut bytes).expect("serialise");
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn internal_errors_reach_sentry_with_the_rpc_account_and_request_id_and_no_secrets() {
    let _turn = SERIAL.lock().await;
    let app = spawn_observed(&[]).await;
    let transport = sentry::test::TestTransport::new();
    let client = reports::client(
        &sentry_config("https://public@sentry.invalid/1", 1.0),
        Some(Arc::new(Arc::clone(&transport)) as Arc<dyn sentry::TransportFactory>),
    )
    .expect("a client");
    assert!(app.state.telemetry.report_to(client));

    let (email, token) = app.signed_in().await;
    let account = account_id(&app, &token).await;
    let key = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: "observability".into(),
            },
            &token,
        ))
        .await
        .expect("api key")
        .into_inner()
        .secret;
    assert!(key.starts_with("nsk_"));
    // A sampled call that works: a transaction with its database spans, and no error.
    app.wallet()
        .get_balance(with_key(pb::GetBalanceRequest {}, &key))
        .await
        .expect("balance");
    let envelopes = transport.fetch_and_clear_envelopes();
    assert!(
        envelopes.iter().all(|e| e.event().is_none()),
        "no error reported for a good call"
    );
    let transaction = envelopes
        .iter()
        .flat_map(|e| e.items())
        .find_map(|item| match item {
            sentry::protocol::EnvelopeItem::Transaction(t)
                if t.name.as_deref() == Some("/namaskah.v1.WalletService/GetBalance") =>
            {
                Some(t.clone())
            }
            _ => None,
        })
        .expect("the call's transaction");
    assert_eq!(
        transaction.environment.as_deref(),
        Some("observability-test")
    );
    assert_eq!(transaction.release.as_deref(), Some(reports::RELEASE));
    assert!(
        transaction
            .spans
            .iter()
            .any(|s| s.op.as_deref() == Some("db.sql.query")),
        "database spans: {:?}",
        transaction.spans
    );

    break_the_ledger(&app).await;
    let mut request = with_key(pb::GetBalanceRequest {}, &key);
    request
        .metadata_mut()
        .insert("x-request-id", "req-ledger-broken".parse().unwrap());
    let status = app.wallet().get_balance(request).await.expect_err("broken");
    assert_eq!(status.code(), Code::Internal);

    // A login that fails inside carries a password and a TOTP code.
    app.state
        .db
        .execute_unprepared("ALTER TABLE users RENAME TO users_gone")
        .await
        .expect("rename");
    let mut login = tonic::Request::new(pb::LoginRequest {
        email: email.clone(),
        password: PASSWORD.into(),
        totp_code: "493817".into(),
    });
    login
        .metadata_mut()
        .insert("x-request-id", "req-login-broken".parse().unwrap());
    let status = app.auth().login(login).await.expect_err("broken");
    assert_eq!(status.code(), Code::Internal);

    let envelopes = transport.fetch_and_clear_envelopes();
    let events: Vec<_> = envelopes
        .iter()
        .filter_map(|e| e.event().cloned())
        .collect();
    let balance = events
        .iter()
        .find(|e| {
            e.tags.get("rpc").map(String::as_str) == Some("/namaskah.v1.WalletService/GetBalance")
        })
        .unwrap_or_else(|| panic!("no GetBalance event in {events:?}"));
    assert_eq!(balance.level, sentry::Level::Error);
    assert_eq!(
        balance.tags.get("request_id").map(String::as_str),
        Some("req-ledger-broken")
    );
    assert_eq!(
        balance.tags.get("status").map(String::as_str),
        Some("INTERNAL")
    );
    assert_eq!(
        balance.user.as_ref().and_then(|u| u.id.as_deref()),
        Some(account.as_str())
    );
    assert_eq!(balance.environment.as_deref(), Some("observability-test"));
    assert_eq!(balance.release.as_deref(), Some(reports::RELEASE));
    assert!(
        balance.breadcrumbs.iter().any(|b| b
            .message
            .as_deref()
            .is_some_and(|m| m.contains("ledger_accounts"))),
        "the cause is on the report: {:?}",
        balance.breadcrumbs
    );
    let login = events
        .iter()
        .find(|e| e.tags.get("rpc").map(String::as_str) == Some("/namaskah.v1.AuthService/Login"))
        .unwrap_or_else(|| panic!("no Login event in {events:?}"));
    assert_eq!(
        login.tags.get("request_id").map(String::as_str),
        Some("req-login-broken")
    );
    assert!(
        login.user.is_none(),
        "nobody is signed in on a failed login"
    );

    for envelope in &envelopes {
        let text = envelope_text(envelope);
        for secret in [
            PASSWORD,
            token.as_str(),
            key.as_str(),
            "493817",
            email.as_str(),
        ] {
            assert!(
                !text.contains(secret),
                "a secret reached Sentry: {secret} in {text}"
            );
        }
    }
}

/// A fake Sentry: accepts HTTP/1.1 requests on loopback and hands over each body.
async fn fake_sentry() -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                loop {
                    // Read one request: headers, then Content-Length bytes.
                    let head_end = loop {
                        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .unwrap_or(0);
                    while buffer.len() < head_end + length {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buffer[head_end..head_end + length].to_vec();
                    buffer.drain(..head_end + length);
                    let _ = tx.send((path, body));
                    let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if stream.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn a_real_envelope_reaches_a_sentry_endpoint_without_secrets() {
    let _turn = SERIAL.lock().await;
    let (sentry_addr, mut received) = fake_sentry().await;
    let dsn = format!("http://public@{sentry_addr}/7");
    let app = spawn_observed(&[
        ("SENTRY_DSN", dsn.as_str()),
        ("SENTRY_ENVIRONMENT", "fake-endpoint"),
        ("SENTRY_TRACES_SAMPLE_RATE", "0"),
    ])
    .await;
    let (_, token) = app.signed_in().await;
    let account = account_id(&app, &token).await;
    break_the_ledger(&app).await;
    let mut request = bearer(pb::GetBalanceRequest {}, &token);
    request
        .metadata_mut()
        .insert("x-request-id", "req-fake-sentry".parse().unwrap());
    let status = app.wallet().get_balance(request).await.expect_err("broken");
    assert_eq!(status.code(), Code::Internal);

    // The transport sends from its own thread: wait (bounded) for the envelope.
    let envelope = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let (path, body) = received.recv().await.expect("the fake Sentry is running");
            let text = String::from_utf8_lossy(&body).into_owned();
            if text.contains("req-fake-sentry") {
                return (path, text);
            }
        }
    })
    .await
    .expect("an envelope arrived");
    let (path, text) = envelope;
    assert_eq!(path, "/api/7/envelope/");
    assert!(
        text.contains("/namaskah.v1.WalletService/GetBalance"),
        "{text}"
    );
    assert!(text.contains(&account), "{text}");
    assert!(text.contains("fake-endpoint"), "{text}");
    assert!(!text.contains(&token), "the access token reached Sentry");
    assert!(!text.contains(PASSWORD), "the password reached Sentry");
}

#[tokio::test]
async fn a_sandbox_number_is_polled_when_its_code_is_due_not_every_second() {
    let _turn = SERIAL.lock().await;
    let app = spawn_observed(&[("NAMASKAH_SANDBOX_SMS_DELAY", "3s")]).await;
    let token = app.funded(1_000).await;
    let polls = &[
        ("provider", "sandbox"),
        ("operation", "poll"),
        ("outcome", "ok"),
    ];
    let before = scrape(&app).await.value("provider_calls_total", polls);
    let bought = app.buy(&token, "whatsapp", "GB").await.expect("a number");
    let mut completed = None;
    for _ in 0..100 {
        let now = app.get_verification(&token, &bought.name).await;
        if status_of(&now) == pb::VerificationStatus::Completed {
            completed = Some(now);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let completed = completed.expect("the code arrived within 10 s");
    assert!(!completed.code.is_empty(), "{completed:?}");
    // A few more passes of the job (every second): the sandbox has said nothing more will
    // come, so the completed number is not asked again.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let after = scrape(&app).await.value("provider_calls_total", polls);
    assert_eq!(
        after - before,
        1.0,
        "one poll, when the code was due (not one a second before it, nor after it)"
    );
}
