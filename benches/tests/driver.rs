//! The driver end to end against small in-process servers on port 0: the real health
//! service from tonic-health, and a fake AuthService that checks what the driver sends.

use std::collections::HashMap;
use std::future::pending;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use namaskah_bench::report::{EndReason, Summary};
use namaskah_bench::runner::{self, Bound, LoadPlan};
use namaskah_bench::scenario::{Account, Credentials, Scenario, Workload};
use namaskah_proto::v1::auth_service_server::{AuthService, AuthServiceServer};
use namaskah_proto::v1::*;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic::{Request, Response, Status};

async fn spawn_health_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        Server::builder()
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

#[derive(Default)]
struct FakeAuth {
    accounts: Mutex<HashMap<String, String>>,
    keys: Mutex<Vec<String>>,
    next_key: AtomicU64,
    get_me_calls: AtomicU64,
    /// How long GetMe takes.
    get_me_delay: Duration,
}

fn unimplemented<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented("not in the fake"))
}

#[tonic::async_trait]
impl AuthService for FakeAuth {
    async fn register(
        &self,
        request: Request<RegisterRequest>,
    ) -> Result<Response<RegisterResponse>, Status> {
        let RegisterRequest {
            email, password, ..
        } = request.into_inner();
        let strong = password.len() >= 10
            && password.chars().any(|c| c.is_ascii_alphabetic())
            && password.chars().any(|c| c.is_ascii_digit());
        if !strong || !email.contains('@') {
            return Err(Status::invalid_argument("weak password or bad email"));
        }
        let mut accounts = self.accounts.lock().await;
        if accounts.contains_key(&email) {
            return Err(Status::already_exists("EMAIL_TAKEN"));
        }
        accounts.insert(email, password);
        Ok(Response::new(RegisterResponse { user: None }))
    }

    async fn login(
        &self,
        request: Request<LoginRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        let LoginRequest {
            email, password, ..
        } = request.into_inner();
        if self.accounts.lock().await.get(&email) != Some(&password) {
            return Err(Status::unauthenticated("INVALID_CREDENTIALS"));
        }
        Ok(Response::new(LoginResponse {
            tokens: Some(TokenPair {
                access_token: format!("access-{email}"),
                token_type: "Bearer".to_owned(),
                ..Default::default()
            }),
            user: None,
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<CreateApiKeyRequest>,
    ) -> Result<Response<CreateApiKeyResponse>, Status> {
        let bearer = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !bearer.starts_with("Bearer access-") {
            return Err(Status::unauthenticated("UNAUTHENTICATED"));
        }
        if request.get_ref().display_name.is_empty() {
            return Err(Status::invalid_argument("display_name"));
        }
        let n = self.next_key.fetch_add(1, Ordering::SeqCst);
        let secret = format!("nsk_fake{n:024}");
        self.keys.lock().await.push(secret.clone());
        Ok(Response::new(CreateApiKeyResponse {
            api_key: None,
            secret,
        }))
    }

    async fn get_me(
        &self,
        request: Request<GetMeRequest>,
    ) -> Result<Response<GetMeResponse>, Status> {
        self.get_me_calls.fetch_add(1, Ordering::SeqCst);
        let key = request
            .metadata()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !self.keys.lock().await.contains(&key) {
            return Err(Status::unauthenticated("UNAUTHENTICATED"));
        }
        if !self.get_me_delay.is_zero() {
            tokio::time::sleep(self.get_me_delay).await;
        }
        Ok(Response::new(GetMeResponse { user: None }))
    }

    async fn verify_email(
        &self,
        _: Request<VerifyEmailRequest>,
    ) -> Result<Response<VerifyEmailResponse>, Status> {
        unimplemented()
    }
    async fn resend_verification_email(
        &self,
        _: Request<ResendVerificationEmailRequest>,
    ) -> Result<Response<ResendVerificationEmailResponse>, Status> {
        unimplemented()
    }
    async fn refresh_token(
        &self,
        _: Request<RefreshTokenRequest>,
    ) -> Result<Response<RefreshTokenResponse>, Status> {
        unimplemented()
    }
    async fn logout(&self, _: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        unimplemented()
    }
    async fn list_api_keys(
        &self,
        _: Request<ListApiKeysRequest>,
    ) -> Result<Response<ListApiKeysResponse>, Status> {
        unimplemented()
    }
    async fn revoke_api_key(
        &self,
        _: Request<RevokeApiKeyRequest>,
    ) -> Result<Response<RevokeApiKeyResponse>, Status> {
        unimplemented()
    }
    async fn setup_two_factor(
        &self,
        _: Request<SetupTwoFactorRequest>,
    ) -> Result<Response<SetupTwoFactorResponse>, Status> {
        unimplemented()
    }
    async fn confirm_two_factor(
        &self,
        _: Request<ConfirmTwoFactorRequest>,
    ) -> Result<Response<ConfirmTwoFactorResponse>, Status> {
        unimplemented()
    }
    async fn disable_two_factor(
        &self,
        _: Request<DisableTwoFactorRequest>,
    ) -> Result<Response<DisableTwoFactorResponse>, Status> {
        unimplemented()
    }
    async fn request_password_reset(
        &self,
        _: Request<RequestPasswordResetRequest>,
    ) -> Result<Response<RequestPasswordResetResponse>, Status> {
        unimplemented()
    }
    async fn reset_password(
        &self,
        _: Request<ResetPasswordRequest>,
    ) -> Result<Response<ResetPasswordResponse>, Status> {
        unimplemented()
    }
}

async fn spawn_auth_server(fake: Arc<FakeAuth>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        Server::builder()
            .add_service(AuthServiceServer::from_arc(fake))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    addr
}

fn plan(connections: usize, concurrency: usize, bound: Bound) -> LoadPlan {
    LoadPlan {
        connections,
        concurrency,
        bound,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(5),
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn health_runs_exactly_the_total() {
    let addr = format!("http://{}", spawn_health_server().await);
    let plan = plan(2, 8, Bound::Total(500));
    let channels = runner::connect(&addr, 2, CONNECT_TIMEOUT).await.unwrap();
    let workload = Workload::prepare(
        Scenario::Health,
        &channels[0],
        &Credentials::default(),
        plan.timeout,
    )
    .await
    .unwrap();
    let outcome = runner::run(&plan, &channels, Arc::new(workload), pending())
        .await
        .unwrap();
    assert_eq!(outcome.end_reason, EndReason::Normal);
    let summary = Summary::compute(&outcome.stats, outcome.total, outcome.end_reason);
    assert_eq!(summary.count, 500);
    assert_eq!(summary.status_codes.get("OK"), Some(&500));
    assert!(summary.errors.is_empty(), "{:?}", summary.errors);
    assert!(summary.rps > 0.0);
    assert!(summary.fastest <= summary.percentile(50).unwrap());
    assert!(summary.percentile(99).unwrap() <= summary.slowest);
}

#[tokio::test]
async fn health_stops_after_its_duration_with_a_warmup() {
    let addr = format!("http://{}", spawn_health_server().await);
    let mut plan = plan(1, 4, Bound::Duration(Duration::from_millis(300)));
    plan.warmup = Duration::from_millis(100);
    let channels = runner::connect(&addr, 1, CONNECT_TIMEOUT).await.unwrap();
    let started = std::time::Instant::now();
    let outcome = runner::run(
        &plan,
        &channels,
        Arc::new(Workload::Health {
            service: String::new(),
        }),
        pending(),
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(outcome.end_reason, EndReason::Timeout);
    assert!(elapsed >= Duration::from_millis(400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(
        outcome.total >= Duration::from_millis(300),
        "{:?}",
        outcome.total
    );
    assert!(outcome.stats.count() > 0);
}

#[tokio::test]
async fn unknown_health_service_is_counted_by_code() {
    let addr = format!("http://{}", spawn_health_server().await);
    let plan = plan(1, 2, Bound::Total(20));
    let channels = runner::connect(&addr, 1, CONNECT_TIMEOUT).await.unwrap();
    let workload = Workload::Health {
        service: "no.such.Service".to_owned(),
    };
    let outcome = runner::run(&plan, &channels, Arc::new(workload), pending())
        .await
        .unwrap();
    let summary = Summary::compute(&outcome.stats, outcome.total, outcome.end_reason);
    assert_eq!(summary.count, 20);
    assert_eq!(summary.status_codes.get("NotFound"), Some(&20));
    assert_eq!(summary.errors.values().sum::<u64>(), 20);
    assert!(summary.latency_distribution.is_empty());
}

#[tokio::test]
async fn get_me_sets_up_its_own_account_and_key() {
    let fake = Arc::new(FakeAuth::default());
    let addr = format!("http://{}", spawn_auth_server(Arc::clone(&fake)).await);
    let plan = plan(2, 4, Bound::Total(100));
    let channels = runner::connect(&addr, 2, CONNECT_TIMEOUT).await.unwrap();
    let workload = Workload::prepare(
        Scenario::GetMe,
        &channels[0],
        &Credentials::default(),
        plan.timeout,
    )
    .await
    .unwrap();
    assert_eq!(fake.accounts.lock().await.len(), 1);
    assert_eq!(fake.keys.lock().await.len(), 1);
    let shown = workload.metadata_shown();
    assert!(shown["x-api-key"].starts_with("nsk_fake"));
    assert!(!shown["x-api-key"].contains(&fake.keys.lock().await[0]));

    let outcome = runner::run(&plan, &channels, Arc::new(workload), pending())
        .await
        .unwrap();
    let summary = Summary::compute(&outcome.stats, outcome.total, outcome.end_reason);
    assert_eq!(
        summary.status_codes.get("OK"),
        Some(&100),
        "{:?}",
        summary.errors
    );
    assert_eq!(fake.get_me_calls.load(Ordering::SeqCst), 100);
}

#[tokio::test]
async fn get_me_with_a_wrong_key_counts_unauthenticated() {
    let fake = Arc::new(FakeAuth::default());
    let addr = format!("http://{}", spawn_auth_server(fake).await);
    let channels = runner::connect(&addr, 1, CONNECT_TIMEOUT).await.unwrap();
    let credentials = Credentials {
        api_key: Some("nsk_not_a_real_key_at_all".to_owned()),
        account: None,
    };
    let plan = plan(1, 2, Bound::Total(10));
    let workload = Workload::prepare(Scenario::GetMe, &channels[0], &credentials, plan.timeout)
        .await
        .unwrap();
    let outcome = runner::run(&plan, &channels, Arc::new(workload), pending())
        .await
        .unwrap();
    let summary = Summary::compute(&outcome.stats, outcome.total, outcome.end_reason);
    assert_eq!(summary.status_codes.get("Unauthenticated"), Some(&10));
    assert_eq!(
        summary
            .errors
            .get("rpc error: code = Unauthenticated desc = UNAUTHENTICATED"),
        Some(&10)
    );
}

#[tokio::test]
async fn slow_calls_hit_the_client_timeout() {
    let fake = Arc::new(FakeAuth {
        get_me_delay: Duration::from_secs(30),
        ..Default::default()
    });
    let addr = format!("http://{}", spawn_auth_server(Arc::clone(&fake)).await);
    let channels = runner::connect(&addr, 1, CONNECT_TIMEOUT).await.unwrap();
    let mut plan = plan(1, 2, Bound::Total(4));
    plan.timeout = Duration::from_millis(200);
    let workload = Workload::prepare(
        Scenario::GetMe,
        &channels[0],
        &Credentials::default(),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let outcome = runner::run(&plan, &channels, Arc::new(workload), pending())
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(outcome.stats.count(), 4);
    assert_eq!(
        outcome.stats.status_codes().get("DeadlineExceeded"),
        Some(&4),
        "{:?}",
        outcome.stats.errors()
    );
}

#[tokio::test]
async fn an_interrupt_ends_the_run_early() {
    let fake = Arc::new(FakeAuth {
        get_me_delay: Duration::from_millis(20),
        ..Default::default()
    });
    let addr = format!("http://{}", spawn_auth_server(Arc::clone(&fake)).await);
    let channels = runner::connect(&addr, 1, CONNECT_TIMEOUT).await.unwrap();
    let plan = plan(1, 4, Bound::Duration(Duration::from_secs(60)));
    let workload = Workload::prepare(
        Scenario::GetMe,
        &channels[0],
        &Credentials::default(),
        plan.timeout,
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let outcome = runner::run(
        &plan,
        &channels,
        Arc::new(workload),
        tokio::time::sleep(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.end_reason, EndReason::Cancel);
    assert!(outcome.stats.count() > 0);
}

#[tokio::test]
async fn login_with_given_credentials_and_a_clear_error_when_they_are_wrong() {
    let fake = Arc::new(FakeAuth::default());
    let addr = format!("http://{}", spawn_auth_server(Arc::clone(&fake)).await);
    let channels = runner::connect(&addr, 1, CONNECT_TIMEOUT).await.unwrap();
    fake.accounts.lock().await.insert(
        "known@example.com".to_owned(),
        "Correct-Horse-42".to_owned(),
    );

    let wrong = Credentials {
        api_key: None,
        account: Some(Account {
            email: "known@example.com".to_owned(),
            password: "Wrong-Horse-42".to_owned(),
        }),
    };
    let error = Workload::prepare(
        Scenario::Login,
        &channels[0],
        &wrong,
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    let message = format!("{error:#}");
    assert!(message.contains("Login during set-up failed"), "{message}");
    assert!(message.contains("Unauthenticated"), "{message}");

    let right = Credentials {
        api_key: None,
        account: Some(Account {
            email: "known@example.com".to_owned(),
            password: "Correct-Horse-42".to_owned(),
        }),
    };
    let plan = plan(1, 3, Bound::Total(30));
    let workload = Workload::prepare(Scenario::Login, &channels[0], &right, plan.timeout)
        .await
        .unwrap();
    assert!(!workload.data_json().to_string().contains("Correct-Horse"));
    let outcome = runner::run(&plan, &channels, Arc::new(workload), pending())
        .await
        .unwrap();
    assert_eq!(outcome.stats.status_codes().get("OK"), Some(&30));
    // No account was registered: the given one was used.
    assert_eq!(fake.accounts.lock().await.len(), 1);
}

#[tokio::test]
async fn login_registers_an_account_when_none_is_given() {
    let fake = Arc::new(FakeAuth::default());
    let addr = format!("http://{}", spawn_auth_server(Arc::clone(&fake)).await);
    let channels = runner::connect(&addr, 1, CONNECT_TIMEOUT).await.unwrap();
    let plan = plan(1, 2, Bound::Total(10));
    let workload = Workload::prepare(
        Scenario::Login,
        &channels[0],
        &Credentials::default(),
        plan.timeout,
    )
    .await
    .unwrap();
    assert_eq!(fake.accounts.lock().await.len(), 1);
    let outcome = runner::run(&plan, &channels, Arc::new(workload), pending())
        .await
        .unwrap();
    assert_eq!(outcome.stats.status_codes().get("OK"), Some(&10));
}

#[tokio::test]
async fn no_server_is_a_clear_connection_error() {
    // Bind then drop, so the port is (almost certainly) closed.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let error = runner::connect(&format!("http://{addr}"), 1, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("connection 1 of 1"),
        "{error:#}"
    );
}
