//! The multi-instance topology of `compose.yaml`, started on loopback by
//! `deploy/loopback/up.sh` from the built binaries: two `namaskah-server` processes sharing
//! one PostgreSQL database and one Redis, `namaskah-edge`, and nginx in front. Every call here
//! goes through nginx (or, to pin a step to one instance, straight to it), so what is tested
//! is the deployment itself: streams, rate limits and jobs across the instances, and an
//! instance killed (SIGKILL) in the middle of a bounded load losing no money and no event.
//!
//! Needs `TEST_DATABASE_URL`, `TEST_REDIS_URL` and nginx (CI's second pass has them);
//! otherwise each test says why it is skipped and passes. `multi_instance.rs` covers cache
//! invalidation between two in-process instances; this file does not repeat it.
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{PASSWORD, bearer, status_of, token_in, unique_email, usd};
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::auth_service_client::AuthServiceClient;
use namaskah_proto::v1::sandbox_service_client::SandboxServiceClient;
use namaskah_proto::v1::verification_service_client::VerificationServiceClient;
use namaskah_proto::v1::wallet_service_client::WalletServiceClient;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

/// Requests a minute for the starter plan in the limits test's topology (the kill test
/// raises it: its clients retry through the kill).
const STARTER_RPM: u32 = 60;
/// How long a number waits for its SMS here: the verifications left alone expire (and are
/// refunded) by the jobs within the test.
const TTL: &str = "6s";

/// A running topology; stopped (by `down.sh`) when dropped, and by up.sh's watcher if this
/// process dies first.
struct Topology {
    env: HashMap<String, String>,
    run_dir: tempfile::TempDir,
    db: DatabaseConnection,
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo().join("deploy/loopback/down.sh"))
            .arg(self.run_dir.path())
            .status();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// What is missing for this test, if anything.
fn missing_prerequisite() -> Option<String> {
    for name in ["TEST_DATABASE_URL", "TEST_REDIS_URL"] {
        if std::env::var(name).map_or(true, |v| v.is_empty()) {
            return Some(format!("{name} is not set"));
        }
    }
    if std::process::Command::new("nginx")
        .arg("-v")
        .output()
        .map_or(true, |o| !o.status.success())
    {
        return Some("nginx is not installed (apt-get install nginx)".into());
    }
    let edge = bin_dir().join("namaskah-edge");
    if !edge.exists() {
        return Some(format!(
            "{} is not built (cargo build -p namaskah-edge)",
            edge.display()
        ));
    }
    None
}

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_namaskah-server"))
        .parent()
        .expect("the binaries' directory")
        .to_path_buf()
}

impl Topology {
    /// Starts the topology on a fresh database, or `None` (with the reason printed).
    /// `starter_rpm`: the starter plan's requests a minute in this topology.
    async fn up(starter_rpm: u32) -> Option<Topology> {
        // As main does: reqwest (scraping /metrics) has no crypto provider of its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Some(reason) = missing_prerequisite() {
            eprintln!("skipped: {reason}");
            return None;
        }
        let admin_url = std::env::var("TEST_DATABASE_URL").unwrap();
        let name = format!("namaskah_test_{}", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(&admin_url)
            .await
            .expect("TEST_DATABASE_URL");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the topology's database");
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);

        let plans = format!(r#"[{{"plan": "starter", "requests_per_minute": {starter_rpm}}}]"#);
        let run_dir = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(repo().join("deploy/loopback/up.sh"));
        command
            .arg(run_dir.path())
            .env("DATABASE_URL", url.as_str())
            .env("REDIS_URL", std::env::var("TEST_REDIS_URL").unwrap())
            .env("NAMASKAH_BIN_DIR", bin_dir())
            .env(
                "NAMASKAH_LOOPBACK_WATCH_PID",
                std::process::id().to_string(),
            )
            .env("NAMASKAH_PLANS", plans)
            // Codes come only from InjectSms, so each verification's end is the client's
            // choice: a code, a cancel, or the expiry job.
            .env("NAMASKAH_SANDBOX_SMS_DELAY", "off")
            .env("NAMASKAH_VERIFICATION_TTL", TTL)
            .env("NAMASKAH_JOB_INTERVAL", "300ms")
            .env("NAMASKAH_PROVIDER_TIMEOUT", "1s")
            .env("NAMASKAH_SENSITIVE_RPM", "1000000")
            .env("NAMASKAH_ANONYMOUS_RPM", "1000000")
            .env("NAMASKAH_SHUTDOWN_TIMEOUT", "2s")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        for name in [
            "NAMASKAH_TLS_CERT",
            "NAMASKAH_TLS_KEY",
            "NAMASKAH_REDIS_PREFIX",
        ] {
            command.env_remove(name);
        }
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("run up.sh");
        assert!(
            output.status.success(),
            "up.sh failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let env = String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let db = Database::connect(url.as_str())
            .await
            .expect("the topology's database");
        Some(Topology { env, run_dir, db })
    }

    fn get(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("topology.env has no {name}"))
    }

    /// A channel to `NGINX_GRPC`, `SERVER_1_GRPC` or `SERVER_2_GRPC`.
    async fn channel(&self, which: &str) -> Channel {
        Channel::from_shared(format!("http://{}", self.get(which)))
            .unwrap()
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connect to {which}: {e}"))
    }

    /// The verification token mailed to `email`, from either instance's mail sink.
    async fn mailed_token(&self, email: &str) -> String {
        for _ in 0..200 {
            for sink in self.get("MAIL_SINKS").split(':') {
                for line in std::fs::read_to_string(sink).unwrap_or_default().lines() {
                    if let Ok(mail) = serde_json::from_str::<serde_json::Value>(line)
                        && mail["to"] == email
                    {
                        return token_in(mail["text"].as_str().unwrap());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no mail to {email}");
    }

    /// A verified, logged-in account with `cents` in its wallet (a sandbox top-up through
    /// its signed webhook), all through `channel`; returns (user id, access token).
    async fn funded(&self, channel: &Channel, cents: i64) -> (uuid::Uuid, String) {
        let mut auth = AuthServiceClient::new(channel.clone());
        let email = unique_email();
        auth.register(pb::RegisterRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            referral_code: String::new(),
        })
        .await
        .expect("register");
        let token = self.mailed_token(&email).await;
        auth.verify_email(pb::VerifyEmailRequest { token })
            .await
            .expect("verify email");
        let access = auth
            .login(pb::LoginRequest {
                email,
                password: PASSWORD.into(),
                totp_code: String::new(),
            })
            .await
            .expect("login")
            .into_inner()
            .tokens
            .unwrap()
            .access_token;
        let me = auth
            .get_me(bearer(pb::GetMeRequest {}, &access))
            .await
            .expect("get me")
            .into_inner()
            .user
            .unwrap();
        if cents > 0 {
            let top_up = WalletServiceClient::new(channel.clone())
                .create_top_up(bearer(
                    pb::CreateTopUpRequest {
                        amount: Some(usd(cents)),
                        request_id: uuid::Uuid::new_v4().to_string(),
                        callback_url: String::new(),
                    },
                    &access,
                ))
                .await
                .expect("create top-up")
                .into_inner()
                .top_up
                .unwrap();
            SandboxServiceClient::new(channel.clone())
                .complete_payment(bearer(
                    pb::CompletePaymentRequest {
                        reference: top_up.reference,
                        outcome: 0,
                        paid_amount: None,
                    },
                    &access,
                ))
                .await
                .expect("complete the payment");
        }
        let id = me.name.trim_start_matches("users/").parse().unwrap();
        (id, access)
    }

    /// The value of `request_duration_seconds_count` for `method` on one instance.
    async fn calls_answered(&self, which: &str, method: &str) -> f64 {
        let text = reqwest::get(format!("http://{}/metrics", self.get(which)))
            .await
            .expect("scrape")
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with("request_duration_seconds_count")
                    && l.contains(&format!("method=\"{method}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn scalar(&self, sql: &str) -> i64 {
        common::scalar(&self.db, sql).await
    }
}

fn is_terminal(status: pb::VerificationStatus) -> bool {
    use pb::VerificationStatus as S;
    matches!(status, S::Completed | S::Cancelled | S::Expired | S::Failed)
}

/// Errors a client sees when the instance answering it dies: worth retrying with the same
/// request (and request_id).
fn transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
    )
}

/// Everything a watcher saw of one verification, across reconnections.
#[derive(Debug, Default)]
struct Watched {
    /// (sequence, type) of every message, the snapshot first.
    events: Vec<(i64, pb::VerificationEventType)>,
    last: Option<pb::Verification>,
    reconnects: usize,
}

/// Watches `name` through `channel` until its stream ends after the terminal event,
/// reconnecting with `after_sequence` whenever the stream breaks (bounded). `started` is
/// told when the first message (the snapshot) has arrived.
async fn watch_to_the_end(
    channel: Channel,
    token: String,
    name: String,
    mut started: Option<tokio::sync::oneshot::Sender<()>>,
) -> Watched {
    let mut client = VerificationServiceClient::new(channel);
    let mut watched = Watched::default();
    let mut after = 0;
    for attempt in 0..100 {
        if attempt > 0 {
            watched.reconnects += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stream = client
            .watch_verification(bearer(
                pb::WatchVerificationRequest {
                    name: name.clone(),
                    after_sequence: after,
                },
                &token,
            ))
            .await;
        let mut stream = match stream {
            Ok(stream) => stream.into_inner(),
            Err(status) if transient(&status) => continue,
            Err(status) => panic!("watch {name}: {status:?}"),
        };
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    let event = message.event.unwrap();
                    let kind = pb::VerificationEventType::try_from(event.r#type).unwrap();
                    watched.events.push((event.sequence, kind));
                    after = event.sequence;
                    if let Some(started) = started.take() {
                        let _ = started.send(());
                    }
                    if let Some(v) = event.verification {
                        watched.last = Some(v);
                    }
                }
                Ok(None) => {
                    if watched
                        .last
                        .as_ref()
                        .is_some_and(|v| is_terminal(status_of(v)))
                    {
                        return watched;
                    }
                    break; // ended early (shutdown): resume
                }
                Err(status) if transient(&status) => break,
                Err(status) => panic!("watch {name}: {status:?}"),
            }
        }
    }
    panic!("watch {name}: no end after 100 connections: {watched:?}");
}

/// Calls `call` until it answers something other than a transient error (bounded).
async fn retrying<T, F, Fut>(what: &str, errors: &Errors, mut call: F) -> Result<T, Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Status>>,
{
    for _ in 0..100 {
        match call().await {
            Err(status) if transient(&status) => {
                errors.saw(&status);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
    panic!("{what}: still failing after 100 tries");
}

/// Transient errors seen, and whether any came before the kill (which would be a fault).
#[derive(Default)]
struct Errors {
    killed: AtomicBool,
    before_kill: AtomicUsize,
    after_kill: AtomicUsize,
}

impl Errors {
    fn saw(&self, status: &Status) {
        if self.killed.load(Ordering::SeqCst) {
            self.after_kill.fetch_add(1, Ordering::SeqCst);
        } else {
            self.before_kill.fetch_add(1, Ordering::SeqCst);
            eprintln!("transient error before the kill: {status:?}");
        }
    }
}

fn sms(text: &str) -> pb::InjectSmsRequest {
    pb::InjectSmsRequest {
        phone_number: String::new(),
        text: text.into(),
        sender: String::new(),
        receive_time: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_limits_and_jobs_work_across_the_instances_through_nginx() {
    let Some(topology) = Topology::up(STARTER_RPM).await else {
        return;
    };
    let nginx = topology.channel("NGINX_GRPC").await;
    let one = topology.channel("SERVER_1_GRPC").await;
    let two = topology.channel("SERVER_2_GRPC").await;
    let errors = Errors::default();

    // Jobs: verifications bought through nginx and left alone expire and are refunded
    // once, by whichever instance's job takes them. Bought first, so their TTL runs out
    // while the rest of the test goes on.
    let (left_user, left_token) = topology.funded(&nginx, 1000).await;
    let mut left = Vec::new();
    for _ in 0..4 {
        let v = VerificationServiceClient::new(nginx.clone())
            .create_verification(bearer(
                pb::CreateVerificationRequest {
                    service: "whatsapp".into(),
                    country: "GB".into(),
                    max_price: None,
                    request_id: uuid::Uuid::new_v4().to_string(),
                },
                &left_token,
            ))
            .await
            .expect("buy through nginx")
            .into_inner()
            .verification
            .unwrap();
        assert_eq!(status_of(&v), pb::VerificationStatus::Active);
        left.push(v.name);
    }

    // Streams: watched on one instance, changed on the other; and both through nginx.
    let (_, token) = topology.funded(&nginx, 1000).await;
    let buy = |channel: &Channel| {
        let mut client = VerificationServiceClient::new(channel.clone());
        let token = token.clone();
        async move {
            client
                .create_verification(bearer(
                    pb::CreateVerificationRequest {
                        service: "telegram".into(),
                        country: "GB".into(),
                        max_price: None,
                        request_id: uuid::Uuid::new_v4().to_string(),
                    },
                    &token,
                ))
                .await
                .expect("buy")
                .into_inner()
                .verification
                .unwrap()
        }
    };
    // 1. watched on server 1, its code delivered on server 2.
    let first = buy(&nginx).await;
    let (snapshot, streamed) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn(watch_to_the_end(
        one.clone(),
        token.clone(),
        first.name.clone(),
        Some(snapshot),
    ));
    // The change comes after the snapshot, so the watcher must hear it as an event.
    streamed.await.expect("server 1 streams the snapshot");
    let injected = SandboxServiceClient::new(two.clone())
        .inject_sms(bearer(
            pb::InjectSmsRequest {
                phone_number: first.phone_number.clone(),
                ..sms("Your Telegram code is 482913")
            },
            &token,
        ))
        .await
        .expect("inject on server 2")
        .into_inner();
    assert_eq!(
        status_of(injected.verification.as_ref().unwrap()),
        pb::VerificationStatus::Completed
    );
    let seen = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .expect("the stream on server 1 ends")
        .unwrap();
    let last = seen.last.as_ref().unwrap();
    assert_eq!(
        status_of(last),
        pb::VerificationStatus::Completed,
        "{seen:?}"
    );
    assert_eq!(last.code, "482913");
    assert!(
        seen.events
            .iter()
            .any(|(_, kind)| *kind == pb::VerificationEventType::Completed),
        "server 1's watcher heard server 2's change: {seen:?}"
    );
    // 2. watched on server 2, cancelled on server 1.
    let second = buy(&nginx).await;
    let (snapshot, streamed) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn(watch_to_the_end(
        two.clone(),
        token.clone(),
        second.name.clone(),
        Some(snapshot),
    ));
    // The change comes after the snapshot, so the watcher must hear it as an event.
    streamed.await.expect("server 2 streams the snapshot");
    VerificationServiceClient::new(one.clone())
        .cancel_verification(bearer(
            pb::CancelVerificationRequest {
                name: second.name.clone(),
            },
            &token,
        ))
        .await
        .expect("cancel on server 1");
    let seen = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .expect("the stream on server 2 ends")
        .unwrap();
    assert_eq!(
        status_of(seen.last.as_ref().unwrap()),
        pb::VerificationStatus::Cancelled,
        "{seen:?}"
    );
    assert!(
        seen.events
            .iter()
            .any(|(_, kind)| *kind == pb::VerificationEventType::Cancelled),
        "server 2's watcher heard server 1's cancel: {seen:?}"
    );
    // 3. watched and cancelled through nginx (whichever instances answer).
    let third = buy(&nginx).await;
    let (snapshot, streamed) = tokio::sync::oneshot::channel();
    let watcher = tokio::spawn(watch_to_the_end(
        nginx.clone(),
        token.clone(),
        third.name.clone(),
        Some(snapshot),
    ));
    // The change comes after the snapshot, so the watcher must hear it as an event.
    streamed.await.expect("nginx streams the snapshot");
    retrying("cancel through nginx", &errors, || {
        let mut client = VerificationServiceClient::new(nginx.clone());
        let request = bearer(
            pb::CancelVerificationRequest {
                name: third.name.clone(),
            },
            &token,
        );
        async move { client.cancel_verification(request).await }
    })
    .await
    .expect("cancel through nginx");
    let seen = tokio::time::timeout(Duration::from_secs(20), watcher)
        .await
        .expect("the stream through nginx ends")
        .unwrap();
    assert_eq!(
        status_of(seen.last.as_ref().unwrap()),
        pb::VerificationStatus::Cancelled
    );

    // Rate limits: one account's allowance is shared by both instances. Calls through
    // nginx are spread over them; together they admit the plan's limit (plus what the
    // bucket refills while the calls are made: one every 60/limit s), not twice it.
    let (_, limited) = topology.funded(&nginx, 0).await;
    let before = [
        topology
            .calls_answered("SERVER_1_METRICS", "GetBalance")
            .await,
        topology
            .calls_answered("SERVER_2_METRICS", "GetBalance")
            .await,
    ];
    let started = Instant::now();
    let calls = 2 * STARTER_RPM as usize;
    let mut admitted = 0usize;
    let mut refused = 0usize;
    let mut answers = futures::stream::FuturesUnordered::new();
    for _ in 0..calls {
        let mut client = WalletServiceClient::new(nginx.clone());
        let request = bearer(pb::GetBalanceRequest {}, &limited);
        answers.push(async move { client.get_balance(request).await });
    }
    use futures::StreamExt as _;
    while let Some(answer) = answers.next().await {
        match answer {
            Ok(_) => admitted += 1,
            Err(status) => {
                common::assert_error(&status, Code::ResourceExhausted, "RATE_LIMITED");
                refused += 1;
            }
        }
    }
    let refill = (started.elapsed().as_secs_f64() * STARTER_RPM as f64 / 60.0).ceil() as usize;
    eprintln!(
        "rate limit across instances: {admitted} admitted, {refused} refused of {calls} in {:?}",
        started.elapsed()
    );
    // (The account's GetMe while signing in took one call of the allowance.)
    assert!(admitted + 1 >= STARTER_RPM as usize, "{admitted} admitted");
    assert!(
        admitted <= STARTER_RPM as usize + refill + 1,
        "{admitted} admitted: each instance counted on its own (limit {STARTER_RPM}, refill {refill})"
    );
    let after = [
        topology
            .calls_answered("SERVER_1_METRICS", "GetBalance")
            .await,
        topology
            .calls_answered("SERVER_2_METRICS", "GetBalance")
            .await,
    ];
    eprintln!(
        "GetBalance answered by server 1: {}, server 2: {}",
        after[0] - before[0],
        after[1] - before[1]
    );
    assert!(
        after[0] > before[0] && after[1] > before[1],
        "nginx spread the calls over both instances: {before:?} → {after:?}"
    );

    // The jobs' verifications: each expired and refunded exactly once. The account has 60
    // calls a minute: poll twice a second, and on a slow machine, where the jobs take longer,
    // wait as a refusal says rather than fail on it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for name in &left {
        let mut status = pb::VerificationStatus::Active;
        while tokio::time::Instant::now() < deadline {
            let answer = VerificationServiceClient::new(nginx.clone())
                .get_verification(bearer(
                    pb::GetVerificationRequest { name: name.clone() },
                    &left_token,
                ))
                .await;
            let v = match answer {
                Ok(answer) => answer.into_inner().verification.unwrap(),
                Err(refused) if refused.code() == Code::ResourceExhausted => {
                    let wait = refused
                        .metadata()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .expect("a refusal says when to retry");
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    continue;
                }
                Err(error) => panic!("get through nginx: {error:?}"),
            };
            status = status_of(&v);
            if is_terminal(status) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        assert_eq!(status, pb::VerificationStatus::Expired, "{name}");
    }
    let settled = topology
        .scalar(&format!(
            "SELECT COUNT(*) FROM journal_entries WHERE user_id = '{left_user}' \
             AND business_key LIKE 'settle:%'"
        ))
        .await;
    assert_eq!(settled, 4, "one refund per expired verification");
    let wallet = topology
        .scalar(&format!(
            "SELECT balance FROM ledger_accounts WHERE owner_id = '{left_user}' AND kind = 'wallet'"
        ))
        .await;
    assert_eq!(wallet, 1000, "every expired verification refunded in full");
    common::assert_books_balance(&topology.db).await;
    assert_eq!(errors.before_kill.load(Ordering::SeqCst), 0);

    // nginx terminates TLS: gRPC and HTTPS with the run's certificate, checked by name
    // against the run's CA. (A fresh account: polling the jobs above may have used up the
    // other one's minute.)
    let (_, tls_token) = topology.funded(&nginx, 1000).await;
    let certificate = rustls::pki_types::CertificateDer::from(
        rustls::pki_types::pem::PemObject::from_pem_file(topology.get("NGINX_TLS_CA"))
            .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
            .expect("the run's CA certificate"),
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).unwrap();
    let tls = |alpn: &[&[u8]]| {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    };
    let grpc_tls: std::net::SocketAddr = topology.get("NGINX_GRPC_TLS").parse().unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls(&[b"h2"])));
    let secure = tonic::transport::Endpoint::from_shared(format!("http://{grpc_tls}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(grpc_tls).await?;
                let stream = connector
                    .connect(
                        rustls::pki_types::ServerName::try_from("localhost").unwrap(),
                        tcp,
                    )
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .expect("gRPC over TLS to nginx");
    let balance = WalletServiceClient::new(secure)
        .get_balance(bearer(pb::GetBalanceRequest {}, &tls_token))
        .await
        .expect("a call over nginx's TLS listener")
        .into_inner();
    assert_eq!(balance.balance.map(|m| m.minor_units), Some(1000));
    let https = reqwest::Client::builder()
        .tls_backend_preconfigured(tls(&[b"h2", b"http/1.1"]))
        .resolve("localhost", topology.get("NGINX_HTTPS").parse().unwrap())
        .build()
        .unwrap();
    let port = topology
        .get("NGINX_HTTPS")
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let me = https
        .get(format!("https://localhost:{port}/v1/balance"))
        .bearer_auth(&tls_token)
        .send()
        .await
        .expect("HTTPS through nginx to the edge");
    let status = me.status();
    assert_eq!(status, 200, "{}", me.text().await.unwrap_or_default());
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["balance"]["minorUnits"], "1000", "{body}");
}

/// What one client was told about one of its verifications.
#[derive(Debug)]
struct Told {
    name: String,
    /// Its price when bought.
    price: i64,
    /// What the answer to the inject or cancel said (`None`: left alone).
    answered: Option<pb::VerificationStatus>,
    /// The state its watch stream ended with.
    status: pb::VerificationStatus,
    watched: Option<Watched>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killing_an_instance_mid_load_loses_no_money_and_no_event() {
    // Limits high enough that clients retrying through the kill are never refused.
    let Some(topology) = Topology::up(1_000_000).await else {
        return;
    };
    const ACCOUNTS: usize = 12;
    const ROUNDS: usize = 6;
    const FUNDS: i64 = 2000;
    let nginx = topology.channel("NGINX_GRPC").await;
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        accounts.push(topology.funded(&nginx, FUNDS).await);
    }
    let errors = Arc::new(Errors::default());
    let bought = Arc::new(AtomicUsize::new(0));
    let kill_at = ACCOUNTS * ROUNDS / 3;
    let victim: u32 = topology.get("SERVER_2_PID").parse().unwrap();
    let started = Instant::now();

    // The killer: SIGKILL server 2 once a third of the verifications are bought.
    let killer = {
        let bought = Arc::clone(&bought);
        let errors = Arc::clone(&errors);
        tokio::spawn(async move {
            while bought.load(Ordering::SeqCst) < kill_at {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            errors.killed.store(true, Ordering::SeqCst);
            let status = std::process::Command::new("kill")
                .args(["-KILL", &victim.to_string()])
                .status()
                .unwrap();
            assert!(status.success(), "kill server 2");
        })
    };

    let mut clients = tokio::task::JoinSet::new();
    for (index, (user, token)) in accounts.iter().cloned().enumerate() {
        let nginx = nginx.clone();
        let errors = Arc::clone(&errors);
        let bought = Arc::clone(&bought);
        clients.spawn(async move {
            let mut told = Vec::new();
            let mut watchers = Vec::new();
            for round in 0..ROUNDS {
                let request_id = uuid::Uuid::new_v4().to_string();
                // Buy, retrying with the same request_id until an answer comes: the first
                // attempt may have been written by the instance that died.
                let mut created = None;
                for _ in 0..100 {
                    let answer = retrying("create", &errors, || {
                        let mut client = VerificationServiceClient::new(nginx.clone());
                        let request = bearer(
                            pb::CreateVerificationRequest {
                                service: "whatsapp".into(),
                                country: "GB".into(),
                                max_price: None,
                                request_id: request_id.clone(),
                            },
                            &token,
                        );
                        async move { client.create_verification(request).await }
                    })
                    .await;
                    match answer {
                        Ok(answer) => {
                            created = answer.into_inner().verification;
                            break;
                        }
                        // The first attempt's instance died holding it: it stays PENDING
                        // (held, not lost) until the expiry job fails and refunds it.
                        Err(status)
                            if status.code() == Code::Aborted
                                && status
                                    .get_details_error_info()
                                    .is_some_and(|i| i.reason == "REQUEST_IN_PROGRESS") =>
                        {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(status) => panic!("create: {status:?}"),
                    }
                }
                bought.fetch_add(1, Ordering::SeqCst);
                let Some(v) = created else {
                    continue; // still in progress after 10 s: checked from the database
                };
                let price = v.price.as_ref().map_or(0, |m| m.minor_units);
                watchers.push(tokio::spawn(watch_to_the_end(
                    nginx.clone(),
                    token.clone(),
                    v.name.clone(),
                    None,
                )));
                let mut answered = None;
                match (index + round) % 3 {
                    0 => {
                        // Dated once: a retry after the instance died having stored it is
                        // the same message (deduplicated), not a second SMS.
                        let receive_time =
                            Some(prost_types::Timestamp::from(std::time::SystemTime::now()));
                        let answer = retrying("inject", &errors, || {
                            let mut client = SandboxServiceClient::new(nginx.clone());
                            let request = bearer(
                                pb::InjectSmsRequest {
                                    phone_number: v.phone_number.clone(),
                                    receive_time,
                                    ..sms("Your WhatsApp code: 731-904")
                                },
                                &token,
                            );
                            async move { client.inject_sms(request).await }
                        })
                        .await
                        .expect("inject");
                        answered = Some(status_of(answer.get_ref().verification.as_ref().unwrap()));
                    }
                    1 => {
                        let answer = retrying("cancel", &errors, || {
                            let mut client = VerificationServiceClient::new(nginx.clone());
                            let request = bearer(
                                pb::CancelVerificationRequest {
                                    name: v.name.clone(),
                                },
                                &token,
                            );
                            async move { client.cancel_verification(request).await }
                        })
                        .await;
                        answered = Some(match answer {
                            Ok(answer) => {
                                status_of(answer.get_ref().verification.as_ref().unwrap())
                            }
                            // A retry after the first cancel went through on the dead
                            // instance: it has ended.
                            Err(status) if status.code() == Code::FailedPrecondition => status_of(
                                &retrying("get", &errors, || {
                                    let mut client = VerificationServiceClient::new(nginx.clone());
                                    let request = bearer(
                                        pb::GetVerificationRequest {
                                            name: v.name.clone(),
                                        },
                                        &token,
                                    );
                                    async move { client.get_verification(request).await }
                                })
                                .await
                                .expect("get")
                                .into_inner()
                                .verification
                                .unwrap(),
                            ),
                            Err(status) => panic!("cancel: {status:?}"),
                        });
                    }
                    _ => {} // left alone: the expiry job ends it
                }
                told.push(Told {
                    name: v.name.clone(),
                    price,
                    answered,
                    status: status_of(&v),
                    watched: None,
                });
            }
            // Every watcher runs until its verification's terminal event.
            for (told, watcher) in told.iter_mut().zip(watchers) {
                let watched = tokio::time::timeout(Duration::from_secs(60), watcher)
                    .await
                    .expect("each watch ends")
                    .unwrap();
                told.status = status_of(watched.last.as_ref().unwrap());
                told.watched = Some(watched);
            }
            let balance = retrying("balance", &errors, || {
                let mut client = WalletServiceClient::new(nginx.clone());
                let request = bearer(pb::GetBalanceRequest {}, &token);
                async move { client.get_balance(request).await }
            })
            .await
            .expect("balance")
            .into_inner();
            (user, told, balance)
        });
    }
    let mut results = Vec::new();
    while let Some(result) = clients.join_next().await {
        results.push(result.expect("a client task"));
    }
    killer.await.unwrap();
    let elapsed = started.elapsed();

    // What the clients were told, against the database.
    let mut verifications = 0;
    let mut reconnects = 0;
    let mut outcomes: HashMap<&'static str, usize> = HashMap::new();
    let mut pending_at_the_end = 0;
    for (user, told, balance) in &results {
        let mut captured = 0;
        for t in told {
            verifications += 1;
            let id = t.name.trim_start_matches("verifications/");
            let row = topology
                .db
                .query_one_raw(Statement::from_string(
                    topology.db.get_database_backend(),
                    format!(
                        "SELECT status, charge_state, price, last_sequence FROM verifications \
                         WHERE id = '{id}'"
                    ),
                ))
                .await
                .unwrap()
                .expect("every verification a client was told about is stored");
            let status: String = row.try_get("", "status").unwrap();
            let charge: String = row.try_get("", "charge_state").unwrap();
            let price: i64 = row.try_get("", "price").unwrap();
            let last_sequence: i64 = row.try_get("", "last_sequence").unwrap();
            assert_eq!(price, t.price, "{}", t.name);
            let stored_as = |told: pb::VerificationStatus| match told {
                pb::VerificationStatus::Completed => "completed",
                pb::VerificationStatus::Cancelled => "cancelled",
                pb::VerificationStatus::Expired => "expired",
                pb::VerificationStatus::Failed => "failed",
                other => panic!("{}: told {other:?} at the end", t.name),
            };
            let expected = stored_as(t.status);
            assert_eq!(status, expected, "{}: watched to {:?}", t.name, t.status);
            // What the inject or cancel answered is what was stored; the ones left alone
            // were expired by a job.
            let answered = t.answered.map_or("expired", stored_as);
            assert_eq!(status, answered, "{}: answered {:?}", t.name, t.answered);
            *outcomes.entry(expected).or_default() += 1;
            if status == "completed" {
                assert_eq!(charge, "captured", "{}", t.name);
                captured += price;
            } else {
                assert_eq!(charge, "refunded", "{}", t.name);
            }
            // Exactly one hold and one settlement in the ledger.
            for prefix in ["hold", "settle"] {
                let n = topology
                    .scalar(&format!(
                        "SELECT COUNT(*) FROM journal_entries WHERE business_key = '{prefix}:{id}'"
                    ))
                    .await;
                assert_eq!(n, 1, "{prefix}:{id}");
            }
            // The watcher saw every event: its snapshot, then each sequence number once and
            // in order (across reconnections), up to the stored last one.
            let watched = t.watched.as_ref().unwrap();
            reconnects += watched.reconnects;
            let (first, kind) = watched.events[0];
            assert_eq!(kind, pb::VerificationEventType::Snapshot, "{watched:?}");
            let sequences: Vec<i64> = watched.events.iter().map(|(s, _)| *s).collect();
            let expected: Vec<i64> = (first..=last_sequence).collect();
            assert_eq!(sequences, expected, "{}: events lost or repeated", t.name);
            let stored = topology
                .scalar(&format!(
                    "SELECT COUNT(*) FROM verification_events WHERE verification_id = '{id}'"
                ))
                .await;
            assert_eq!(stored, last_sequence, "{}", t.name);
        }
        // No verification the client does not know of (a lost answer bought twice), but
        // those whose purchase the dead instance was making when it died: the client was
        // never told they exist (only REQUEST_IN_PROGRESS); each is still PENDING with its
        // price held, or already FAILED and refunded by a job.
        let known: Vec<String> = told
            .iter()
            .map(|t| format!("'{}'", t.name.trim_start_matches("verifications/")))
            .collect();
        let unknown = if known.is_empty() {
            "TRUE".to_owned()
        } else {
            format!("id NOT IN ({})", known.join(", "))
        };
        let strays = topology
            .scalar(&format!(
                "SELECT COUNT(*) FROM verifications WHERE user_id = '{user}' AND {unknown} \
                 AND NOT (status = 'pending' AND charge_state = 'held') \
                 AND NOT (status = 'failed' AND charge_state = 'refunded' AND phone_number IS NULL)"
            ))
            .await;
        assert_eq!(
            strays, 0,
            "{user}: verifications the client was never told of"
        );
        // Money: what the wallet shows is the top-up less the codes delivered (and any
        // price still held by a purchase the dead instance was making).
        let held = topology
            .scalar(&format!(
                "SELECT COALESCE(CAST(SUM(price) AS BIGINT), 0) FROM verifications \
                 WHERE user_id = '{user}' AND status = 'pending'"
            ))
            .await;
        pending_at_the_end += topology
            .scalar(&format!(
                "SELECT COUNT(*) FROM verifications WHERE user_id = '{user}' AND {unknown}"
            ))
            .await;
        let spendable = balance.balance.as_ref().map_or(0, |m| m.minor_units);
        assert_eq!(
            spendable,
            FUNDS - captured - held,
            "{user}: the balance told"
        );
        let wallet = topology
            .scalar(&format!(
                "SELECT balance FROM ledger_accounts WHERE owner_id = '{user}' AND kind = 'wallet'"
            ))
            .await;
        assert_eq!(wallet, spendable, "{user}: the ledger");
    }
    common::assert_books_balance(&topology.db).await;
    eprintln!(
        "killed server 2 after {kill_at} purchases: {verifications} verifications ended \
         ({outcomes:?}), {pending_at_the_end} caught mid-purchase by the kill, {} transient errors \
         after the kill, {reconnects} watch reconnections, in {elapsed:?}",
        errors.after_kill.load(Ordering::SeqCst)
    );
    assert_eq!(
        errors.before_kill.load(Ordering::SeqCst),
        0,
        "no errors while both instances ran"
    );
    assert!(
        errors.killed.load(Ordering::SeqCst),
        "the instance was killed mid-load"
    );
    assert!(
        outcomes.len() >= 3,
        "codes, cancels and expiries all happened: {outcomes:?}"
    );
}
