//! Rate limits end to end: per account across credentials, per client address on the
//! sensitive RPCs, the login guard, several instances sharing Redis, and Redis going away
//! mid-test (each fallback policy). Every test names the limits it tests: the harness's
//! defaults are raised so that other suites never meet them.
//!
//! No test sleeps to make a limit pass or fail: a refusal is expected no later than the
//! count the limit allows in the time actually measured (`N + elapsed / T + 1`).
mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use namaskah_proto::v1 as pb;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

/// A `x-ratelimit-*` (or `retry-after`) value.
fn meta(metadata: &MetadataMap, name: &str) -> Option<u64> {
    metadata
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The most calls a limit of `per_minute` may admit over `elapsed`, plus the one refused:
/// the burst, one more per interval, and one.
fn refused_no_later_than(per_minute: u64, elapsed: Duration) -> u64 {
    let interval = Duration::from_secs(60) / per_minute as u32;
    per_minute + (elapsed.as_nanos() / interval.as_nanos()) as u64 + 1
}

/// Asserts a rate-limit refusal: `RESOURCE_EXHAUSTED`/`RATE_LIMITED` with `RetryInfo`,
/// `retry-after` and the `x-ratelimit-*` metadata for a limit of `per_minute`.
#[track_caller]
fn assert_rate_limited(status: &Status, per_minute: u64) {
    assert_error(status, Code::ResourceExhausted, "RATE_LIMITED");
    let interval = Duration::from_secs(60) / per_minute as u32;
    let delay = status
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .unwrap_or_else(|| panic!("no RetryInfo in {status:?}"));
    assert!(delay > Duration::ZERO && delay <= interval, "{delay:?}");
    let seconds = interval.as_secs() + u64::from(interval.subsec_nanos() > 0);
    let retry_after = meta(status.metadata(), "retry-after").expect("retry-after");
    assert!((1..=seconds.max(1)).contains(&retry_after), "{status:?}");
    let md = status.metadata();
    assert_eq!(
        meta(md, "x-ratelimit-limit"),
        Some(per_minute),
        "{status:?}"
    );
    assert_eq!(meta(md, "x-ratelimit-remaining"), Some(0), "{status:?}");
    // Refused means the bucket is more than a minute less one interval from full.
    let reset = meta(md, "x-ratelimit-reset").expect("x-ratelimit-reset");
    assert!((60 - seconds..=60).contains(&reset), "reset {reset}");
}

/// Sends `request` with `x-forwarded-for: from` (the test client connects over loopback,
/// which the server trusts as its own proxy, so this names the client's address).
fn from<T>(mut request: Request<T>, address: &str) -> Request<T> {
    request
        .metadata_mut()
        .insert("x-forwarded-for", address.parse().expect("ascii"));
    request
}

/// `request` from `address` (when given), with `token` (when given).
fn dress<T>(mut request: Request<T>, address: Option<&str>, token: Option<&str>) -> Request<T> {
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
    }
    match address {
        Some(address) => from(request, address),
        None => request,
    }
}

/// One call to a sensitive RPC that the handler refuses as invalid (so it costs no
/// hashing): `Ok` with the handler's `INVALID_ARGUMENT` when it got that far, `Err` with
/// any other answer (the limiter's). Alternates Register and Login; `token`, when given,
/// rides along.
async fn sensitive_call(
    app: &TestApp,
    i: u64,
    address: Option<&str>,
    token: Option<&str>,
) -> Result<Status, Status> {
    let outcome = if i.is_multiple_of(2) {
        app.auth()
            .register(dress(
                Request::new(pb::RegisterRequest {
                    email: String::new(),
                    password: String::new(),
                    referral_code: String::new(),
                }),
                address,
                token,
            ))
            .await
            .map(|_| ())
    } else {
        app.auth()
            .login(dress(
                Request::new(pb::LoginRequest {
                    email: String::new(),
                    password: String::new(),
                    totp_code: String::new(),
                }),
                address,
                token,
            ))
            .await
            .map(|_| ())
    };
    match outcome {
        Err(status) if status.code() == Code::InvalidArgument => Ok(status),
        Ok(()) => panic!("an empty registration or login was accepted"),
        Err(status) => Err(status),
    }
}

async fn create_key(app: &TestApp, token: &str) -> (String, MetadataMap) {
    let response = app
        .auth()
        .create_api_key(bearer(
            pb::CreateApiKeyRequest {
                display_name: "limits".into(),
            },
            token,
        ))
        .await
        .expect("create an API key");
    let metadata = response.metadata().clone();
    (response.into_inner().secret, metadata)
}

#[tokio::test]
async fn a_starter_account_gets_100_a_minute_whichever_credential_it_uses() {
    let app = spawn_app_with(&[("NAMASKAH_PLANS", "[]")]).await;
    let (_, token) = app.signed_in().await;

    let started = Instant::now();
    // Creating the key is the account's first limited call.
    let (key, metadata) = create_key(&app, &token).await;
    assert_eq!(meta(&metadata, "x-ratelimit-limit"), Some(100));
    assert_eq!(meta(&metadata, "x-ratelimit-remaining"), Some(99));
    let mut calls = 1u64;
    let mut remaining = vec![99u64];
    let refusal = loop {
        assert!(calls < 1_000, "never refused");
        calls += 1;
        // Both credentials of the account, in turn.
        let request = if calls.is_multiple_of(2) {
            with_key(pb::GetMeRequest {}, &key)
        } else {
            bearer(pb::GetMeRequest {}, &token)
        };
        match app.auth().get_me(request).await {
            Ok(response) => {
                let md = response.metadata();
                assert_eq!(meta(md, "x-ratelimit-limit"), Some(100));
                let left = meta(md, "x-ratelimit-remaining").expect("x-ratelimit-remaining");
                let refilled = refused_no_later_than(100, started.elapsed()) - 101;
                assert!(
                    left + calls >= 100 && left + calls <= 100 + refilled,
                    "call {calls}: {left} remaining"
                );
                let reset = meta(md, "x-ratelimit-reset").expect("x-ratelimit-reset");
                assert!(reset <= 60, "reset {reset}");
                remaining.push(left);
            }
            Err(status) => break status,
        }
    };
    let elapsed = started.elapsed();
    assert!(calls > 100, "refused at call {calls}: {refusal:?}");
    assert!(
        calls <= refused_no_later_than(100, elapsed),
        "refused only at call {calls} after {elapsed:?}"
    );
    assert_rate_limited(&refusal, 100);
    // Remaining went down as the calls went on.
    assert!(remaining.last() < remaining.first(), "{remaining:?}");
    assert!(remaining.windows(2).filter(|w| w[1] < w[0]).count() >= 90);

    // Refused with either credential, and GetMe is no exception.
    for request in [
        with_key(pb::GetMeRequest {}, &key),
        bearer(pb::GetMeRequest {}, &token),
    ] {
        if let Err(status) = app.auth().get_me(request).await {
            assert_error(&status, Code::ResourceExhausted, "RATE_LIMITED");
        }
    }
}

#[tokio::test]
async fn streams_and_handler_errors_carry_the_limit_too() {
    let app = spawn_app_with(&[("NAMASKAH_PLANS", "[]")]).await;
    let (_, token) = app.signed_in().await;
    // A server stream: the metadata are its response headers.
    let stream = app
        .verifications()
        .watch_verifications(bearer(
            pb::WatchVerificationsRequest {
                include_snapshots: false,
            },
            &token,
        ))
        .await
        .expect("watch");
    assert_eq!(meta(stream.metadata(), "x-ratelimit-limit"), Some(100));
    assert_eq!(meta(stream.metadata(), "x-ratelimit-remaining"), Some(99));
    assert_eq!(meta(stream.metadata(), "x-ratelimit-reset"), Some(1));
    drop(stream);
    // An error from the handler.
    let status = app
        .verifications()
        .get_verification(bearer(
            pb::GetVerificationRequest {
                name: "verifications/not-a-uuid".into(),
            },
            &token,
        ))
        .await
        .expect_err("no such verification");
    assert_ne!(status.code(), Code::ResourceExhausted);
    assert_eq!(meta(status.metadata(), "x-ratelimit-limit"), Some(100));
    assert!(meta(status.metadata(), "x-ratelimit-remaining").is_some_and(|r| r >= 98));
}

#[tokio::test]
async fn a_pro_account_gets_500_a_minute_from_the_moment_it_upgrades() {
    use namaskah_proto::v1::subscription_service_client::SubscriptionServiceClient;
    let app = spawn_app_with(&[("NAMASKAH_PLANS", "[]")]).await;
    let token = app.funded(10_000).await;
    let upgraded = SubscriptionServiceClient::new(app.channel.clone())
        .change_plan(bearer(
            pb::ChangePlanRequest {
                plan: pb::PlanTier::Pro as i32,
                request_id: "go-pro".into(),
            },
            &token,
        ))
        .await
        .expect("upgrade to pro");
    // The upgrade itself was counted at starter's limit.
    assert_eq!(meta(upgraded.metadata(), "x-ratelimit-limit"), Some(100));

    let started = Instant::now();
    let mut calls = 0u64;
    let refusal = loop {
        assert!(calls < 2_000, "never refused");
        calls += 1;
        match app.auth().get_me(bearer(pb::GetMeRequest {}, &token)).await {
            Ok(response) => {
                assert_eq!(meta(response.metadata(), "x-ratelimit-limit"), Some(500));
            }
            Err(status) => break status,
        }
    };
    let elapsed = started.elapsed();
    // The few calls made at starter's rate used part of the minute's allowance (each
    // starter call weighs five pro calls), so the refusal comes a little before 501.
    assert!(calls > 400, "refused at call {calls}: {refusal:?}");
    assert!(
        calls <= refused_no_later_than(500, elapsed),
        "refused only at call {calls} after {elapsed:?}"
    );
    assert_rate_limited(&refusal, 500);
}

#[tokio::test]
async fn sensitive_rpcs_are_limited_per_client_address() {
    let app = spawn_app_with(&[
        ("NAMASKAH_SENSITIVE_RPM", "20"),
        ("NAMASKAH_TRUSTED_PROXIES", "127.0.0.1"),
    ])
    .await;
    // Set up from the loopback address's own budget.
    let (_, token) = app.signed_in().await;

    let client = "203.0.113.10";
    let started = Instant::now();
    let mut calls = 0u64;
    let refusal = loop {
        assert!(calls < 200, "never refused");
        calls += 1;
        // Some with valid credentials: they count per address all the same.
        let token = calls.is_multiple_of(3).then_some(token.as_str());
        if let Err(status) = sensitive_call(&app, calls, Some(client), token).await {
            break status;
        }
    };
    let elapsed = started.elapsed();
    assert!(calls > 20, "refused at call {calls}: {refusal:?}");
    assert!(
        calls <= refused_no_later_than(20, elapsed),
        "call {calls} after {elapsed:?}"
    );
    assert_rate_limited(&refusal, 20);

    // With credentials: still refused (Register and Login alike).
    for i in 0..2 {
        let status = sensitive_call(&app, i, Some(client), Some(&token))
            .await
            .expect_err("refused");
        assert_error(&status, Code::ResourceExhausted, "RATE_LIMITED");
    }
    // Writing another address in front of the real one changes nothing: the address our
    // proxy (loopback) vouches for is the last one.
    let spoofed = format!("198.51.100.1, {client}");
    let status = sensitive_call(&app, 0, Some(&spoofed), None)
        .await
        .expect_err("refused");
    assert_error(&status, Code::ResourceExhausted, "RATE_LIMITED");
    // Another client has its own budget; the handler's errors carry the limit too.
    let answer = sensitive_call(&app, 0, Some("203.0.113.11"), None)
        .await
        .expect("another address");
    assert_eq!(meta(answer.metadata(), "x-ratelimit-limit"), Some(20));
    assert_eq!(meta(answer.metadata(), "x-ratelimit-remaining"), Some(19));
    assert_eq!(meta(answer.metadata(), "x-ratelimit-reset"), Some(3));
    // The account's own calls are counted elsewhere.
    app.auth()
        .get_me(from(bearer(pb::GetMeRequest {}, &token), client))
        .await
        .expect("GetMe is per account");
}

#[tokio::test]
async fn failed_logins_make_the_next_attempts_wait() {
    let app = spawn_app_with(&[("NAMASKAH_SENSITIVE_RPM", "1000")]).await;
    let login = |email: String, password: &'static str| {
        let mut auth = app.auth();
        async move {
            auth.login(pb::LoginRequest {
                email,
                password: password.into(),
                totp_code: String::new(),
            })
            .await
        }
    };
    let wrong = "not the password 1";

    let email = app.register().await;
    for _ in 0..5 {
        let status = login(email.clone(), wrong)
            .await
            .expect_err("wrong password");
        assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    // The sixth attempt comes within the second it must wait: refused, right password or
    // not, and without the password being looked at.
    let known = login(email.clone(), PASSWORD).await.expect_err("throttled");
    assert_error(&known, Code::ResourceExhausted, "LOGIN_THROTTLED");
    assert_eq!(
        known.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(1))
    );
    assert_eq!(meta(known.metadata(), "retry-after"), Some(1));

    // An address nobody registered is treated exactly alike.
    let unknown_email = unique_email();
    for _ in 0..5 {
        let status = login(unknown_email.clone(), wrong)
            .await
            .expect_err("no such account");
        assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    let unknown = login(unknown_email, PASSWORD).await.expect_err("throttled");
    assert_error(&unknown, Code::ResourceExhausted, "LOGIN_THROTTLED");
    assert_eq!(unknown.message(), known.message());
    assert_eq!(
        unknown.get_details_retry_info().and_then(|r| r.retry_delay),
        Some(Duration::from_secs(1))
    );

    // A success starts the count over.
    let other = app.register().await;
    for _ in 0..4 {
        login(other.clone(), wrong)
            .await
            .expect_err("wrong password");
    }
    login(other.clone(), PASSWORD)
        .await
        .expect("right password");
    for _ in 0..5 {
        let status = login(other.clone(), wrong)
            .await
            .expect_err("wrong password");
        assert_error(&status, Code::Unauthenticated, "INVALID_CREDENTIALS");
    }
    let status = login(other, PASSWORD).await.expect_err("throttled");
    assert_error(&status, Code::ResourceExhausted, "LOGIN_THROTTLED");
}

#[tokio::test]
async fn two_instances_share_one_limit() {
    let app = spawn_app_with(&[(
        "NAMASKAH_PLANS",
        r#"[{"plan": "starter", "requests_per_minute": 10}]"#,
    )])
    .await;
    if !app.uses_redis() {
        eprintln!("skipped: set TEST_REDIS_URL to run several instances on one Redis");
        return;
    }
    let peer = app.spawn_peer().await;
    let (_, token) = app.signed_in().await;
    let started = Instant::now();
    let mut calls = 0u64;
    let refusal = loop {
        assert!(calls < 100, "never refused");
        calls += 1;
        let instance = if calls.is_multiple_of(2) { &peer } else { &app };
        if let Err(status) = instance
            .auth()
            .get_me(bearer(pb::GetMeRequest {}, &token))
            .await
        {
            break status;
        }
    };
    let elapsed = started.elapsed();
    assert!(calls > 10, "refused at call {calls}: {refusal:?}");
    // Counted apart, each instance would allow 10: the 11th call would pass.
    assert!(
        calls <= refused_no_later_than(10, elapsed),
        "call {calls} after {elapsed:?}"
    );
    assert_rate_limited(&refusal, 10);
    // And the other instance refuses too.
    let instance = if calls.is_multiple_of(2) { &app } else { &peer };
    let status = instance
        .auth()
        .get_me(bearer(pb::GetMeRequest {}, &token))
        .await
        .expect_err("refused on the other instance");
    assert_error(&status, Code::ResourceExhausted, "RATE_LIMITED");
}

#[tokio::test]
async fn an_upgrade_on_one_instance_applies_to_the_limit_on_the_other() {
    use namaskah_proto::v1::subscription_service_client::SubscriptionServiceClient;
    let app = spawn_app_with(&[("NAMASKAH_PLANS", "[]")]).await;
    if !app.uses_redis() {
        eprintln!("skipped: set TEST_REDIS_URL to run several instances on one Redis");
        return;
    }
    let peer = app.spawn_peer().await;
    let token = app.funded(10_000).await;
    // The peer has looked the plan up (and keeps it decoded between calls).
    for _ in 0..3 {
        let response = peer
            .auth()
            .get_me(bearer(pb::GetMeRequest {}, &token))
            .await
            .expect("a starter call on the peer");
        assert_eq!(meta(response.metadata(), "x-ratelimit-limit"), Some(100));
    }
    SubscriptionServiceClient::new(app.channel.clone())
        .change_plan(bearer(
            pb::ChangePlanRequest {
                plan: pb::PlanTier::Pro as i32,
                request_id: "go-pro-elsewhere".into(),
            },
            &token,
        ))
        .await
        .expect("upgrade to pro on the first instance");
    // The change reaches the peer as a message over Redis (in milliseconds); until then it
    // may still answer with starter's limit. The bound is generous for a loaded machine but
    // shorter than the near cache's 5 s, so a peer that only forgot by expiry fails.
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut starter_answers = 0;
    loop {
        let response = peer
            .auth()
            .get_me(bearer(pb::GetMeRequest {}, &token))
            .await
            .expect("a call on the peer");
        match meta(response.metadata(), "x-ratelimit-limit") {
            Some(500) => break,
            Some(100) => starter_answers += 1,
            other => panic!("limit {other:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the peer still applies starter's limit after {starter_answers} calls"
        );
        // Slow enough to stay within starter's 100 a minute while the peer still applies it.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // From then on, every call on the peer counts at pro's rate.
    for _ in 0..5 {
        let response = peer
            .auth()
            .get_me(bearer(pb::GetMeRequest {}, &token))
            .await
            .expect("a pro call on the peer");
        assert_eq!(meta(response.metadata(), "x-ratelimit-limit"), Some(500));
    }
}

/// A TCP forwarder in front of Redis, so that a test can take Redis away (and bring it
/// back) under a running server.
struct Forwarder {
    address: SocketAddr,
    target: String,
    accept: JoinHandle<()>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    /// When set, nothing more is relayed, but every connection stays open: a Redis that
    /// has stopped answering.
    frozen: tokio::sync::watch::Sender<bool>,
}

impl Forwarder {
    async fn start(target: String) -> Self {
        Self::listen("127.0.0.1:0".parse().unwrap(), target).await
    }

    async fn listen(address: SocketAddr, target: String) -> Self {
        let listener = TcpListener::bind(address)
            .await
            .expect("bind the forwarder");
        let address = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tasks = Arc::clone(&connections);
        let upstream = target.clone();
        let (frozen, frozen_rx) = tokio::sync::watch::channel(false);
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let mut frozen = frozen_rx.clone();
                let task = tokio::spawn(async move {
                    if *frozen.borrow() {
                        // Accept, then say nothing, holding the connection open.
                        std::future::pending::<()>().await;
                    }
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let froze = tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => false,
                            result = frozen.wait_for(|f| *f) => result.is_ok(),
                        };
                        if froze {
                            std::future::pending::<()>().await;
                        }
                    }
                });
                tasks.lock().unwrap().push(task);
            }
        });
        Self {
            address,
            target,
            accept,
            connections,
            frozen,
        }
    }

    /// Stops relaying anything, keeping every connection open.
    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Closes the listener and every connection through it, and waits until they are.
    async fn stop(self) -> (SocketAddr, String) {
        self.accept.abort();
        let _ = self.accept.await;
        let tasks: Vec<_> = std::mem::take(&mut *self.connections.lock().unwrap());
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        (self.address, self.target)
    }
}

/// A server whose Redis goes through a forwarder, or `None` without `TEST_REDIS_URL`.
async fn app_behind_forwarder(extra: &[(&str, &str)]) -> Option<(TestApp, Forwarder)> {
    let Some(redis) = std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: set TEST_REDIS_URL to take Redis away under a running server");
        return None;
    };
    let mut url = url::Url::parse(&redis).expect("TEST_REDIS_URL is a URL");
    let target = format!(
        "{}:{}",
        url.host_str().expect("a Redis host"),
        url.port().unwrap_or(6379)
    );
    let forwarder = Forwarder::start(target).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(forwarder.address.port())).unwrap();
    let url = url.to_string();
    let mut vars: Vec<(&str, &str)> = vec![("REDIS_URL", url.as_str())];
    vars.extend_from_slice(extra);
    let app = spawn_app_with(&vars).await;
    Some((app, forwarder))
}

/// One sensitive call that must come back within a second (an outage must not make calls
/// wait for Redis) and never with `INTERNAL`.
async fn prompt_call(app: &TestApp, i: u64) -> Result<Status, Status> {
    let started = Instant::now();
    let outcome = sensitive_call(app, i, None, None).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "call {i} took {:?}",
        started.elapsed()
    );
    if let Err(status) = &outcome {
        assert_ne!(status.code(), Code::Internal, "{status:?}");
    }
    outcome
}

#[tokio::test]
async fn redis_going_away_falls_back_to_counting_in_process() {
    let Some((app, forwarder)) = app_behind_forwarder(&[
        ("NAMASKAH_RATE_LIMIT_FALLBACK", "local"),
        ("NAMASKAH_SENSITIVE_RPM", "5"),
    ])
    .await
    else {
        return;
    };
    for i in 0..2 {
        prompt_call(&app, i).await.expect("counted in Redis");
    }
    forwarder.stop().await;

    // The instance counts on its own now, from a full bucket.
    let started = Instant::now();
    let mut calls = 0u64;
    let refusal = loop {
        assert!(calls < 100, "never refused");
        calls += 1;
        if let Err(status) = prompt_call(&app, calls).await {
            break status;
        }
    };
    assert!(calls > 5, "refused at call {calls}: {refusal:?}");
    assert!(calls <= refused_no_later_than(5, started.elapsed()));
    assert_rate_limited(&refusal, 5);
}

#[tokio::test]
async fn redis_that_stops_answering_does_not_hold_calls_up() {
    let Some((app, forwarder)) = app_behind_forwarder(&[
        ("NAMASKAH_RATE_LIMIT_FALLBACK", "local"),
        ("NAMASKAH_SENSITIVE_RPM", "5"),
    ])
    .await
    else {
        return;
    };
    for i in 0..2 {
        prompt_call(&app, i).await.expect("counted in Redis");
    }
    // The connection stays up but nothing comes back: only a timeout can tell.
    forwarder.freeze();
    let started = Instant::now();
    let mut calls = 0u64;
    let refusal = loop {
        assert!(calls < 100, "never refused");
        calls += 1;
        if let Err(status) = prompt_call(&app, calls).await {
            break status;
        }
    };
    let elapsed = started.elapsed();
    assert!(calls > 5, "refused at call {calls}: {refusal:?}");
    assert!(calls <= refused_no_later_than(5, elapsed));
    assert_rate_limited(&refusal, 5);
    // One call waited for Redis; the others did not (Redis is skipped for a while).
    assert!(
        elapsed < Duration::from_secs(2),
        "{calls} calls took {elapsed:?}"
    );
    forwarder.stop().await;
}

#[tokio::test]
async fn redis_going_away_lets_calls_through_when_open() {
    let Some((app, forwarder)) = app_behind_forwarder(&[
        ("NAMASKAH_RATE_LIMIT_FALLBACK", "open"),
        ("NAMASKAH_SENSITIVE_RPM", "3"),
    ])
    .await
    else {
        return;
    };
    prompt_call(&app, 0).await.expect("counted in Redis");
    forwarder.stop().await;
    let started = Instant::now();
    for i in 0..15 {
        prompt_call(&app, i)
            .await
            .expect("let through while Redis is away");
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn redis_going_away_refuses_calls_when_closed_until_it_is_back() {
    let Some((app, forwarder)) = app_behind_forwarder(&[
        ("NAMASKAH_RATE_LIMIT_FALLBACK", "closed"),
        ("NAMASKAH_SENSITIVE_RPM", "3"),
    ])
    .await
    else {
        return;
    };
    let started = Instant::now();
    prompt_call(&app, 0).await.expect("counted in Redis");
    let (address, target) = forwarder.stop().await;
    for i in 0..10 {
        let status = prompt_call(&app, i)
            .await
            .expect_err("refused while Redis is away");
        assert_error(&status, Code::Unavailable, "RATE_LIMITER_UNAVAILABLE");
        assert!(status.get_details_retry_info().is_some(), "{status:?}");
    }

    // Redis is back (on the same address): the limiter uses it again.
    let _forwarder = Forwarder::listen(address, target).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match prompt_call(&app, 0).await {
            Ok(_) => break,
            Err(status) => {
                assert_error(&status, Code::Unavailable, "RATE_LIMITER_UNAVAILABLE");
                assert!(Instant::now() < deadline, "Redis never came back");
                // Waiting for the client to reconnect, not for a limit.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    // With the count it had: the call before the outage and this one are two of three. A
    // probe whose reply was lost while the client reconnected may have been counted by
    // Redis too, so the refusal may come one call early, never later than the limit allows.
    let mut calls = 2u64;
    let refusal = loop {
        assert!(calls < 100, "never refused");
        calls += 1;
        if let Err(status) = prompt_call(&app, calls).await {
            break status;
        }
    };
    assert!(
        calls <= refused_no_later_than(3, started.elapsed()),
        "call {calls}"
    );
    assert_rate_limited(&refusal, 3);
}
