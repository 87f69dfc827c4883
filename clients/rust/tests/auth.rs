//! The authentication wrapper against the real server, started in-process on port 0 with
//! the embedded defaults (SQLite in a temporary directory, the sandbox, the mail sink).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use namaskah_client::v1;
use namaskah_client::v1::auth_service_client::AuthServiceClient;
use namaskah_client::{Credentials, Error, Namaskah};
use namaskah_server::{Application, Config};
use tonic::Code;

struct Server {
    grpc: SocketAddr,
    mail_sink: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server ran");
        }
    }
}

/// Access tokens live `access_ttl`; everything else is the embedded default.
async fn start(access_ttl: &str) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mail_sink = dir.path().join("mail.jsonl");
    let vars: HashMap<String, String> = [
        ("NAMASKAH_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("NAMASKAH_EDGE_ADDR", "off".to_owned()),
        ("NAMASKAH_METRICS_ADDR", "off".to_owned()),
        (
            "DATABASE_URL",
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("namaskah.db").display()
            ),
        ),
        ("NAMASKAH_MAIL_SINK", mail_sink.display().to_string()),
        (
            "NAMASKAH_JWT_SECRET",
            "client-test-secret-client-test-secret".to_owned(),
        ),
        ("NAMASKAH_ACCESS_TOKEN_TTL", access_ttl.to_owned()),
        ("NAMASKAH_SANDBOX_SMS_DELAY", "500ms".to_owned()),
        ("NAMASKAH_SHUTDOWN_TIMEOUT", "2s".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_source(&vars).expect("configuration");
    let app = Application::build(config).await.expect("server builds");
    let grpc = app.grpc_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    Server {
        grpc,
        mail_sink,
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
    }
}

async fn mailed_token(mail_sink: &Path, to: &str) -> String {
    for _ in 0..150 {
        let text = std::fs::read_to_string(mail_sink).unwrap_or_default();
        let token = text
            .lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|mail| mail["to"].as_str().is_some_and(|t| t.contains(to)))
            .filter_map(|mail| {
                let text = mail["text"].as_str()?.to_owned();
                let start = text.find("token=")? + "token=".len();
                Some(
                    text[start..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || "-_.~%".contains(*c))
                        .collect::<String>(),
                )
            })
            .next();
        if let Some(token) = token {
            return token;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no mail with a token for {to}");
}

const PASSWORD: &str = "correct horse 42";

/// Registers an account and verifies its email; returns its address.
async fn verified_account(server: &Server) -> String {
    let email = format!("rust-{}@example.com", uuid::Uuid::new_v4().simple());
    let mut auth = AuthServiceClient::connect(server.url())
        .await
        .expect("connect");
    auth.register(v1::RegisterRequest {
        email: email.clone(),
        password: PASSWORD.into(),
        referral_code: String::new(),
    })
    .await
    .expect("register");
    let token = mailed_token(&server.mail_sink, &email).await;
    auth.verify_email(v1::VerifyEmailRequest { token })
        .await
        .expect("verify email");
    email
}

fn password(email: &str) -> Credentials {
    Credentials::Password {
        email: email.to_owned(),
        password: PASSWORD.into(),
        totp_code: None,
    }
}

async fn my_email(namaskah: &Namaskah) -> Result<String, Error> {
    let me = namaskah
        .auth()
        .await?
        .get_me(v1::GetMeRequest {})
        .await?
        .into_inner();
    Ok(me.user.unwrap_or_default().email)
}

#[tokio::test]
async fn a_session_is_refreshed_before_its_access_token_expires() {
    let server = start("5s").await;
    let email = verified_account(&server).await;
    let namaskah = Namaskah::connect(server.url(), password(&email))
        .await
        .expect("login")
        .with_refresh_margin(Duration::from_secs(2));
    let first = namaskah.tokens().await.expect("a session has tokens");
    assert_eq!(my_email(&namaskah).await.expect("GetMe"), email);
    // Nothing to refresh yet: the token has more than the margin left.
    assert_eq!(
        namaskah.tokens().await.unwrap().refresh_token,
        first.refresh_token
    );

    // Wait until a second of the access token's life is left (the server's expiry, as it
    // reported it), then less than the margin is left: the next client comes with a new pair.
    let expiry = std::time::SystemTime::try_from(first.access_token_expire_time.unwrap()).unwrap();
    let left = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left.saturating_sub(Duration::from_secs(1))).await;
    assert_eq!(my_email(&namaskah).await.expect("GetMe"), email);
    let second = namaskah.tokens().await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);

    // The first refresh token was spent by the wrapper: presenting it again is theft, and
    // the server ends the session; the wrapper's calls then fail with the server's answer.
    let reuse = AuthServiceClient::connect(server.url())
        .await
        .unwrap()
        .refresh_token(v1::RefreshTokenRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await
        .expect_err("a spent refresh token is refused");
    assert_eq!(reuse.code(), Code::Unauthenticated);
    match my_email(&namaskah).await {
        Err(Error::Status(status)) => assert_eq!(status.code(), Code::Unauthenticated),
        other => panic!("a revoked session still answers: {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let server = start("3s").await;
    let email = verified_account(&server).await;
    // A margin longer than the token's life: every client asks for a refresh first.
    let namaskah = Namaskah::connect(server.url(), password(&email))
        .await
        .expect("login")
        .with_refresh_margin(Duration::from_secs(3600));
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let namaskah = namaskah.clone();
            tokio::spawn(async move { my_email(&namaskah).await })
        })
        .collect();
    for call in calls {
        // A refresh token used twice would revoke the session and fail these calls.
        assert_eq!(call.await.unwrap().expect("GetMe"), email);
    }
    server.stop().await;
}

#[tokio::test]
async fn saved_tokens_resume_the_session() {
    let server = start("15m").await;
    let email = verified_account(&server).await;
    let first = Namaskah::connect(server.url(), password(&email))
        .await
        .expect("login");
    let saved = first.tokens().await.unwrap();
    let resumed = Namaskah::connect(server.url(), Credentials::Tokens(saved.clone()))
        .await
        .expect("connect");
    assert_eq!(my_email(&resumed).await.expect("GetMe"), email);
    resumed.refresh().await.expect("refresh");
    assert_ne!(
        resumed.tokens().await.unwrap().refresh_token,
        saved.refresh_token
    );
    assert_eq!(my_email(&resumed).await.expect("GetMe"), email);
    server.stop().await;
}

#[tokio::test]
async fn an_api_key_buys_a_verification_and_its_code_arrives_on_the_stream() {
    let server = start("15m").await;
    let email = verified_account(&server).await;
    let session = Namaskah::connect(server.url(), password(&email))
        .await
        .expect("login");
    let key = session
        .auth()
        .await
        .unwrap()
        .create_api_key(v1::CreateApiKeyRequest {
            display_name: "client test".into(),
        })
        .await
        .expect("create key")
        .into_inner()
        .secret;

    let namaskah = Namaskah::connect(server.url(), Credentials::ApiKey(key))
        .await
        .expect("connect");
    assert!(namaskah.tokens().await.is_none());
    assert_eq!(my_email(&namaskah).await.expect("GetMe"), email);

    // Fund the wallet through the sandbox gateway, then buy and watch.
    let top_up = namaskah
        .wallet()
        .await
        .unwrap()
        .create_top_up(v1::CreateTopUpRequest {
            amount: Some(v1::Money {
                currency_code: "USD".into(),
                minor_units: 500,
            }),
            request_id: uuid::Uuid::new_v4().to_string(),
            callback_url: String::new(),
        })
        .await
        .expect("top up")
        .into_inner()
        .top_up
        .unwrap();
    namaskah
        .sandbox()
        .await
        .unwrap()
        .complete_payment(v1::CompletePaymentRequest {
            reference: top_up.reference,
            outcome: v1::SandboxPaymentOutcome::Succeeded as i32,
            paid_amount: None,
        })
        .await
        .expect("complete payment");
    let bought = namaskah
        .verifications()
        .await
        .unwrap()
        .create_verification(v1::CreateVerificationRequest {
            service: "whatsapp".into(),
            country: "GB".into(),
            max_price: None,
            request_id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .expect("buy")
        .into_inner()
        .verification
        .unwrap();
    let mut stream = namaskah
        .verifications()
        .await
        .unwrap()
        .watch_verification(v1::WatchVerificationRequest {
            name: bought.name.clone(),
            after_sequence: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let code = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(answer) = stream.message().await.expect("stream") {
            let verification = answer.event.and_then(|e| e.verification).unwrap();
            if !verification.code.is_empty() {
                return verification.code;
            }
        }
        panic!("the stream ended without a code");
    })
    .await
    .expect("a code within 30 s");
    assert!(
        (4..=8).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    let stored = namaskah
        .verifications()
        .await
        .unwrap()
        .get_verification(v1::GetVerificationRequest { name: bought.name })
        .await
        .unwrap()
        .into_inner()
        .verification
        .unwrap();
    assert_eq!(stored.code, code);
    assert_eq!(stored.status(), v1::VerificationStatus::Completed);
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_api_key_is_refused() {
    let server = start("15m").await;
    let namaskah = Namaskah::connect(
        server.url(),
        Credentials::ApiKey(format!("nsk_{}", "0".repeat(43))),
    )
    .await
    .expect("connect");
    match my_email(&namaskah).await {
        Err(Error::Status(status)) => assert_eq!(status.code(), Code::Unauthenticated),
        other => panic!("a made-up key was accepted: {other:?}"),
    }
    assert!(matches!(
        Namaskah::connect(server.url(), Credentials::ApiKey("bad\nkey".into())).await,
        Err(Error::BadCredential)
    ));
    server.stop().await;
}
