//! Test harness: builds the real application on port 0 (zero2prod's `spawn_app`), on
//! SQLite by default or on a fresh PostgreSQL database when `TEST_DATABASE_URL` is set, with
//! its own Redis key prefix when `TEST_REDIS_URL` is set; plus helpers to read the mail sink
//! and check error details.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use namaskah_proto::v1 as pb;
use namaskah_proto::v1::auth_service_client::AuthServiceClient;
use namaskah_server::{Application, Config};
use sea_orm::{ConnectionTrait, Database};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
pub mod fivesim;
pub mod paystack;
pub mod textverified;

pub const PASSWORD: &str = "correct horse 42";

/// `NAMASKAH_PLANS` for tests that do not test the limits themselves.
pub const RAISED_LIMITS: &str = r#"[{"plan": "starter", "requests_per_minute": 1000000},
    {"plan": "pro", "requests_per_minute": 1000000},
    {"plan": "enterprise", "requests_per_minute": 1000000}]"#;

pub struct TestApp {
    pub grpc_addr: SocketAddr,
    pub edge_addr: Option<SocketAddr>,
    pub channel: Channel,
    pub mail_sink: PathBuf,
    pub database_url: String,
    pub state: namaskah_server::app::AppState,
    vars: HashMap<String, String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// Starts a second instance of the same deployment: the same database, Redis prefix,
    /// signing key and mail sink (as two servers behind a load balancer).
    pub async fn spawn_peer(&self) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        start(
            self.vars.clone(),
            dir,
            self.database_url.clone(),
            self.mail_sink.clone(),
        )
        .await
    }

    /// Starts another instance on the same database and signing key that does not share
    /// this one's live feed or caches (its own Redis key prefix): as an instance whose
    /// publications never reach this one, e.g. one that died after committing.
    pub async fn spawn_detached_peer(&self) -> TestApp {
        let mut vars = self.vars.clone();
        if vars.contains_key("NAMASKAH_REDIS_PREFIX") {
            vars.insert(
                "NAMASKAH_REDIS_PREFIX".into(),
                format!("test:{}:", uuid::Uuid::new_v4().simple()),
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        start(vars, dir, self.database_url.clone(), self.mail_sink.clone()).await
    }

    /// Whether this deployment shares a Redis (only then do several instances agree).
    pub fn uses_redis(&self) -> bool {
        self.vars.contains_key("REDIS_URL")
    }

    pub fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }

    /// Stops the server the way SIGTERM does and waits for it to finish.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(handle) => handle.await?,
            None => Ok(()),
        }
    }

    /// Every mail written to the sink so far.
    pub fn mails(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.mail_sink)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Waits (bounded) until the `n`-th mail to `to` (1-based) has arrived, and returns it.
    /// Mail is sent in the background, so it may land just after the RPC answered.
    pub async fn nth_mail_to(&self, to: &str, n: usize) -> serde_json::Value {
        for _ in 0..200 {
            let mails: Vec<_> = self.mails().into_iter().filter(|m| m["to"] == to).collect();
            if mails.len() >= n {
                return mails[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no mail #{n} to {to} arrived; sink has {:?}", self.mails());
    }

    /// The `token=` of the `n`-th mail to `to`.
    pub async fn nth_token_to(&self, to: &str, n: usize) -> String {
        let mail = self.nth_mail_to(to, n).await;
        token_in(mail["text"].as_str().expect("mail text"))
    }

    /// Registers an account; returns its email.
    pub async fn register(&self) -> String {
        let email = unique_email();
        self.auth()
            .register(pb::RegisterRequest {
                email: email.clone(),
                password: PASSWORD.into(),
                referral_code: String::new(),
            })
            .await
            .expect("register");
        email
    }

    /// Logs in; returns the token pair.
    pub async fn login(&self, email: &str) -> pb::TokenPair {
        self.auth()
            .login(pb::LoginRequest {
                email: email.into(),
                password: PASSWORD.into(),
                totp_code: String::new(),
            })
            .await
            .expect("login")
            .into_inner()
            .tokens
            .expect("tokens")
    }

    /// Registers and logs in; returns the email and an access token.
    pub async fn signed_in(&self) -> (String, String) {
        let email = self.register().await;
        let tokens = self.login(&email).await;
        (email, tokens.access_token)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Extracts `token=…` from a mail's text.
pub fn token_in(text: &str) -> String {
    let start = text.find("token=").expect("a token= link") + "token=".len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

pub fn bearer<T>(message: T, token: &str) -> Request<T> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii token"),
    );
    request
}

pub fn with_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("x-api-key", key.parse().expect("ascii key"));
    request
}

/// Asserts the status code and the `ErrorInfo` reason (domain `namaskah.sms`).
#[track_caller]
pub fn assert_error(status: &Status, code: Code, reason: &str) {
    assert_eq!(status.code(), code, "unexpected status: {status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason, "unexpected reason in {status:?}");
    assert_eq!(info.domain, "namaskah.sms");
}

/// Asserts `INVALID_ARGUMENT` with a `BadRequest` violation on `field`.
#[track_caller]
pub fn assert_invalid(status: &Status, field: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad = status
        .get_details_bad_request()
        .unwrap_or_else(|| panic!("no BadRequest in {status:?}"));
    assert!(
        bad.field_violations.iter().any(|v| v.field == field),
        "no violation on {field} in {status:?}"
    );
}

/// A fresh database for one test: a file in the test's directory, or a new PostgreSQL
/// database named `namaskah_test_<uuid>` next to `TEST_DATABASE_URL`'s.
async fn fresh_database(dir: &std::path::Path) -> String {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let name = format!("namaskah_test_{}", uuid::Uuid::new_v4().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("connect to TEST_DATABASE_URL");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create a test database");
            admin.close().await.ok();
            let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&name);
            url.to_string()
        }
        _ => format!("sqlite://{}?mode=rwc", dir.join("namaskah.db").display()),
    }
}

/// Starts the application with the given extra configuration.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database_url = fresh_database(dir.path()).await;
    let mail_sink = dir.path().join("mail.jsonl");
    let mut vars: HashMap<String, String> = HashMap::from([
        ("NAMASKAH_GRPC_ADDR".into(), "127.0.0.1:0".into()),
        ("NAMASKAH_EDGE_ADDR".into(), "off".into()),
        ("NAMASKAH_METRICS_ADDR".into(), "off".into()),
        ("DATABASE_URL".into(), database_url.clone()),
        ("NAMASKAH_MAIL_SINK".into(), mail_sink.display().to_string()),
        (
            "NAMASKAH_JWT_SECRET".into(),
            "test-secret-test-secret-test-secret!".into(),
        ),
        ("NAMASKAH_SHUTDOWN_TIMEOUT".into(), "5s".into()),
        // Tests make many calls a minute from one address and one account: the limits
        // are raised here, and the rate-limit tests set the real ones.
        ("NAMASKAH_PLANS".into(), RAISED_LIMITS.into()),
        ("NAMASKAH_SENSITIVE_RPM".into(), "1000000".into()),
        ("NAMASKAH_ANONYMOUS_RPM".into(), "1000000".into()),
    ]);
    if let Ok(redis) = std::env::var("TEST_REDIS_URL")
        && !redis.is_empty()
    {
        vars.insert("REDIS_URL".into(), redis);
        vars.insert(
            "NAMASKAH_REDIS_PREFIX".into(),
            format!("test:{}:", uuid::Uuid::new_v4().simple()),
        );
    }
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    start(vars, dir, database_url, mail_sink).await
}

async fn start(
    vars: HashMap<String, String>,
    dir: tempfile::TempDir,
    database_url: String,
    mail_sink: PathBuf,
) -> TestApp {
    let config = Config::from_source(&vars).expect("test configuration");
    let app = Application::build(config)
        .await
        .expect("application builds");
    let grpc_addr = app.grpc_addr();
    let edge_addr = app.edge_addr();
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    // The listener is bound already: connecting needs no waiting.
    let channel = Channel::from_shared(format!("http://{grpc_addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the server");
    TestApp {
        grpc_addr,
        edge_addr,
        channel,
        mail_sink,
        database_url,
        state,
        vars,
        stop: Some(stop),
        server: Some(server),
        _dir: dir,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// How many rows `table` holds, counted in the test's own database (works on SQLite and
/// PostgreSQL alike).
pub async fn count_rows(app: &TestApp, table: &str) -> i64 {
    use sea_orm::Statement;
    let db = &app.state.db;
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .expect("count rows")
        .expect("a count");
    row.try_get::<i64>("", "n").expect("an integer count")
}

/// The fields named by the `BadRequest` of `status`, in order (empty without one).
pub fn violated_fields(status: &Status) -> Vec<String> {
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// Asserts `INVALID_ARGUMENT` with reason `INVALID_ARGUMENT` and violations on exactly
/// `fields`, in that order.
#[track_caller]
pub fn assert_invalid_fields(status: &Status, fields: &[&str]) {
    assert_error(status, Code::InvalidArgument, "INVALID_ARGUMENT");
    assert_eq!(violated_fields(status), fields, "{status:?}");
}

/// The current code of a base32 TOTP secret, `offset_steps` 30-second steps from now.
pub fn totp_code_at(secret: &str, offset_steps: i64) -> String {
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).expect("base32 secret"))
        .build()
        .expect("a TOTP");
    let at = chrono::Utc::now().timestamp() + offset_steps * 30;
    totp.generate(at as u64).to_string()
}

/// A 6-digit code that the secret produces at no step within three of now: wrong for sure.
pub fn wrong_totp_code(secret: &str) -> String {
    let near: Vec<String> = (-3..=3).map(|o| totp_code_at(secret, o)).collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|code| !near.contains(code))
        .expect("a code outside seven steps")
}

/// Registers and logs in an account; returns its id.
pub async fn user_id(app: &TestApp) -> uuid::Uuid {
    let email = app.register().await;
    let tokens = app.login(&email).await;
    let me = app
        .auth()
        .get_me(bearer(
            namaskah_proto::v1::GetMeRequest {},
            &tokens.access_token,
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    me.name.trim_start_matches("users/").parse().unwrap()
}

/// One integer from a query (a count or a sum).
pub async fn scalar(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// The invariants of the books, checked from the database alone.
pub async fn assert_books_balance(db: &sea_orm::DatabaseConnection) {
    let unbalanced = scalar(
        db,
        "SELECT COUNT(*) FROM (SELECT entry_id FROM journal_lines GROUP BY entry_id \
         HAVING SUM(amount) <> 0) AS unbalanced",
    )
    .await;
    assert_eq!(unbalanced, 0, "every entry's lines sum to zero");
    let lonely = scalar(
        db,
        "SELECT COUNT(*) FROM journal_entries e WHERE \
         (SELECT COUNT(*) FROM journal_lines l WHERE l.entry_id = e.id) < 2",
    )
    .await;
    assert_eq!(lonely, 0, "every entry has at least two lines");
    let negative = scalar(db, "SELECT COUNT(*) FROM ledger_accounts WHERE balance < 0").await;
    assert_eq!(negative, 0, "no customer account below zero");
    let drifted = scalar(
        db,
        "SELECT COUNT(*) FROM ledger_accounts a WHERE a.kind IN ('wallet', 'holds') AND \
         a.balance <> COALESCE((SELECT CAST(SUM(l.amount) AS BIGINT) FROM journal_lines l \
         WHERE l.account_id = a.id), 0)",
    )
    .await;
    assert_eq!(drifted, 0, "each balance equals the sum of its lines");
    let total = scalar(
        db,
        "SELECT COALESCE(CAST(SUM(amount) AS BIGINT), 0) FROM journal_lines",
    )
    .await;
    assert_eq!(total, 0, "money is neither created nor destroyed");
}

impl TestApp {
    /// Registers an account, verifies its email from the mail sink, and logs in; returns
    /// the email and an access token.
    pub async fn verified(&self) -> (String, String) {
        let email = self.register().await;
        let token = self.nth_token_to(&email, 1).await;
        self.auth()
            .verify_email(pb::VerifyEmailRequest { token })
            .await
            .expect("verify email");
        let tokens = self.login(&email).await;
        (email, tokens.access_token)
    }

    pub fn wallet(
        &self,
    ) -> namaskah_proto::v1::wallet_service_client::WalletServiceClient<Channel> {
        namaskah_proto::v1::wallet_service_client::WalletServiceClient::new(self.channel.clone())
    }

    pub fn webhooks(
        &self,
    ) -> namaskah_proto::v1::webhook_service_client::WebhookServiceClient<Channel> {
        namaskah_proto::v1::webhook_service_client::WebhookServiceClient::new(self.channel.clone())
    }

    /// Starts a top-up of `minor_units` USD cents with a fresh request id.
    pub async fn top_up(&self, token: &str, minor_units: i64) -> pb::TopUp {
        self.wallet()
            .create_top_up(bearer(
                pb::CreateTopUpRequest {
                    amount: Some(usd(minor_units)),
                    request_id: uuid::Uuid::new_v4().to_string(),
                    callback_url: String::new(),
                },
                token,
            ))
            .await
            .expect("create top-up")
            .into_inner()
            .top_up
            .expect("a top-up")
    }

    /// The caller's spendable balance in cents.
    pub async fn balance(&self, token: &str) -> i64 {
        self.wallet()
            .get_balance(bearer(pb::GetBalanceRequest {}, token))
            .await
            .expect("balance")
            .into_inner()
            .balance
            .map_or(0, |m| m.minor_units)
    }

    /// Delivers a webhook the way the edge hands it over.
    pub async fn deliver(
        &self,
        source: pb::WebhookSource,
        body: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<pb::ReceiveWebhookResponse, Status> {
        self.webhooks()
            .receive_webhook(pb::ReceiveWebhookRequest {
                source: source as i32,
                headers: headers
                    .iter()
                    .map(|(name, value)| pb::WebhookHeader {
                        name: (*name).to_owned(),
                        value: value.to_vec(),
                    })
                    .collect(),
                body: body.to_vec(),
                query: String::new(),
                client_address: "127.0.0.1".into(),
                receive_time: None,
            })
            .await
            .map(|r| r.into_inner())
    }
}

pub fn usd(minor_units: i64) -> pb::Money {
    pb::Money {
        currency_code: "USD".into(),
        minor_units,
    }
}

impl TestApp {
    pub fn verifications(
        &self,
    ) -> namaskah_proto::v1::verification_service_client::VerificationServiceClient<Channel> {
        namaskah_proto::v1::verification_service_client::VerificationServiceClient::new(
            self.channel.clone(),
        )
    }

    pub fn sandbox(
        &self,
    ) -> namaskah_proto::v1::sandbox_service_client::SandboxServiceClient<Channel> {
        namaskah_proto::v1::sandbox_service_client::SandboxServiceClient::new(self.channel.clone())
    }

    /// A verified account whose wallet holds `minor_units` USD cents, credited through a
    /// sandbox top-up and its signed webhook; returns its access token.
    pub async fn funded(&self, minor_units: i64) -> String {
        let (_, token) = self.verified().await;
        let top_up = self.top_up(&token, minor_units).await;
        self.sandbox()
            .complete_payment(bearer(
                pb::CompletePaymentRequest {
                    reference: top_up.reference,
                    outcome: 0,
                    paid_amount: None,
                },
                &token,
            ))
            .await
            .expect("complete the sandbox payment");
        assert_eq!(self.balance(&token).await, minor_units);
        token
    }

    /// Buys a number (`service` in `country`) with a fresh request id.
    pub async fn buy(
        &self,
        token: &str,
        service: &str,
        country: &str,
    ) -> Result<pb::Verification, Status> {
        self.verifications()
            .create_verification(bearer(
                pb::CreateVerificationRequest {
                    service: service.into(),
                    country: country.into(),
                    max_price: None,
                    request_id: uuid::Uuid::new_v4().to_string(),
                },
                token,
            ))
            .await
            .map(|r| r.into_inner().verification.expect("a verification"))
    }

    /// The caller's money held for verifications, in cents.
    pub async fn held(&self, token: &str) -> i64 {
        self.wallet()
            .get_balance(bearer(pb::GetBalanceRequest {}, token))
            .await
            .expect("balance")
            .into_inner()
            .held
            .map_or(0, |m| m.minor_units)
    }

    /// The first page of the caller's wallet transactions, newest first.
    pub async fn transactions(&self, token: &str) -> Vec<pb::Transaction> {
        self.wallet()
            .list_transactions(bearer(pb::ListTransactionsRequest::default(), token))
            .await
            .expect("transactions")
            .into_inner()
            .transactions
    }

    pub async fn get_verification(&self, token: &str, name: &str) -> pb::Verification {
        self.verifications()
            .get_verification(bearer(
                pb::GetVerificationRequest { name: name.into() },
                token,
            ))
            .await
            .expect("get verification")
            .into_inner()
            .verification
            .expect("a verification")
    }

    /// Opens `WatchVerification` on `name` after `after_sequence` (0: from a snapshot).
    pub async fn watch(
        &self,
        token: &str,
        name: &str,
        after_sequence: i64,
    ) -> Result<tonic::Streaming<pb::WatchVerificationResponse>, Status> {
        self.verifications()
            .watch_verification(bearer(
                pb::WatchVerificationRequest {
                    name: name.into(),
                    after_sequence,
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// Opens `WatchVerifications` on the caller's verifications.
    pub async fn watch_all(
        &self,
        token: &str,
        include_snapshots: bool,
    ) -> Result<tonic::Streaming<pb::WatchVerificationsResponse>, Status> {
        self.verifications()
            .watch_verifications(bearer(
                pb::WatchVerificationsRequest { include_snapshots },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// Delivers an SMS to a sandbox number through `SandboxService.InjectSms`.
    pub async fn inject(
        &self,
        token: &str,
        phone_number: &str,
        text: &str,
        receive_time: Option<prost_types::Timestamp>,
    ) -> Result<pb::InjectSmsResponse, Status> {
        self.sandbox()
            .inject_sms(bearer(
                pb::InjectSmsRequest {
                    phone_number: phone_number.into(),
                    text: text.into(),
                    sender: String::new(),
                    receive_time,
                },
                token,
            ))
            .await
            .map(|r| r.into_inner())
    }
}

/// The status of a verification as the enum.
/// Sets the billing clock of every instance to `at`, and waits (at most a few
/// milliseconds) until each reads `at` or later.
pub async fn set_clocks(apps: &[&TestApp], at: chrono::DateTime<chrono::Utc>) {
    for app in apps {
        app.state.clock.set(at);
    }
    for app in apps {
        for _ in 0..100 {
            if app.state.clock.now() >= at {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(app.state.clock.now() >= at, "the clock reads {at} or later");
    }
}

pub fn status_of(v: &pb::Verification) -> pb::VerificationStatus {
    pb::VerificationStatus::try_from(v.status).expect("a known status")
}

/// A timestamp `offset_ms` milliseconds from now.
pub fn timestamp_in(offset_ms: i64) -> prost_types::Timestamp {
    let t = chrono::Utc::now() + chrono::Duration::milliseconds(offset_ms);
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// An administrator logged in with a TOTP code: its id, email and access token.
pub struct AdminSession {
    pub id: String,
    pub email: String,
    pub token: String,
    /// A token of a password-only login of the same administrator.
    pub password_only: String,
}

pub async fn admin_session(app: &TestApp) -> AdminSession {
    let email = unique_email();
    let profile = namaskah_server::identity::service::create_admin(&app.state.db, &email, PASSWORD)
        .await
        .expect("create an administrator");
    let password_only = app.login(&email).await.access_token;
    let setup = app
        .auth()
        .setup_two_factor(bearer(pb::SetupTwoFactorRequest {}, &password_only))
        .await
        .expect("set up 2FA")
        .into_inner();
    app.auth()
        .confirm_two_factor(bearer(
            pb::ConfirmTwoFactorRequest {
                code: totp_code_at(&setup.secret, 0),
            },
            &password_only,
        ))
        .await
        .expect("confirm 2FA");
    // The confirming code is spent: the next step's code logs in.
    let token = app
        .auth()
        .login(pb::LoginRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            totp_code: totp_code_at(&setup.secret, 1),
        })
        .await
        .expect("log in with a TOTP code")
        .into_inner()
        .tokens
        .expect("tokens")
        .access_token;
    AdminSession {
        id: format!("users/{}", profile.id),
        email,
        token,
        password_only,
    }
}
