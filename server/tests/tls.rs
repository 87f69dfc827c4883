//! TLS served by `namaskah-server` itself (`NAMASKAH_TLS_CERT`, `NAMASKAH_TLS_KEY`): a CA
//! and a server certificate for `localhost` are generated here, the real application serves
//! gRPC and the in-process edge with them, and clients that trust only that CA (and check
//! the host name) call both. Bad files stop start-up naming the variable.
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{PASSWORD, RAISED_LIMITS, bearer, unique_email};
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::auth_service_client::AuthServiceClient;
use namaskah_server::{Application, Config};
use rustls::pki_types::{CertificateDer, ServerName};
use tonic::transport::{Channel, Endpoint};

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1, written as PEM files.
struct Pki {
    ca: CertificateDer<'static>,
    cert: PathBuf,
    key: PathBuf,
    /// A second, unrelated key (for the mismatch case).
    other_key: PathBuf,
}

fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Namaskah test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: ca.der().clone(),
        // The chain as a CA would hand it out: the server's certificate, then the CA's.
        cert: write("server.pem", format!("{}{}", cert.pem(), ca.pem())),
        key: write("server.key", key.serialize_pem()),
        other_key: write(
            "other.key",
            rcgen::KeyPair::generate().unwrap().serialize_pem(),
        ),
    }
}

/// A rustls client trusting only `ca`, checking the server's name, offering `alpn`.
fn client_config(ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// A gRPC channel to `addr` over TLS, verifying the certificate for `name`.
async fn tls_channel(
    addr: SocketAddr,
    name: &'static str,
    config: Arc<rustls::ClientConfig>,
) -> Result<Channel, tonic::transport::Error> {
    tls_channel_from([127, 0, 0, 1], addr, name, config).await
}

/// [`tls_channel`] from the loopback address `from` (127.0.0.x: another client address).
async fn tls_channel_from(
    from: [u8; 4],
    addr: SocketAddr,
    name: &'static str,
    config: Arc<rustls::ClientConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let connector = tokio_rustls::TlsConnector::from(config);
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            async move {
                let socket = tokio::net::TcpSocket::new_v4()?;
                socket.bind(SocketAddr::from((from, 0)))?;
                let tcp = socket.connect(addr).await?;
                let tls = connector
                    .connect(ServerName::try_from(name).unwrap(), tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
}

fn vars(dir: &Path, pki: &Pki) -> HashMap<String, String> {
    HashMap::from(
        [
            ("NAMASKAH_GRPC_ADDR", "127.0.0.1:0".to_owned()),
            ("NAMASKAH_EDGE_ADDR", "127.0.0.1:0".to_owned()),
            ("NAMASKAH_METRICS_ADDR", "off".to_owned()),
            (
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", dir.join("tls.db").display()),
            ),
            (
                "NAMASKAH_MAIL_SINK",
                dir.join("mail.jsonl").display().to_string(),
            ),
            (
                "NAMASKAH_JWT_SECRET",
                "test-secret-test-secret-test-secret!".to_owned(),
            ),
            ("NAMASKAH_SHUTDOWN_TIMEOUT", "5s".to_owned()),
            ("NAMASKAH_PLANS", RAISED_LIMITS.to_owned()),
            ("NAMASKAH_SENSITIVE_RPM", "1000000".to_owned()),
            ("NAMASKAH_TLS_CERT", pki.cert.display().to_string()),
            ("NAMASKAH_TLS_KEY", pki.key.display().to_string()),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    )
}

#[tokio::test]
async fn grpc_and_the_edge_serve_tls_with_the_configured_certificate() {
    // As main does: reqwest has no crypto provider of its own.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let config = Config::from_source(&vars(dir.path(), &pki)).expect("TLS configuration");
    let app = Application::build(config)
        .await
        .expect("application builds");
    let grpc = app.grpc_addr();
    let edge = app.edge_addr().expect("the in-process edge");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));

    // gRPC: a client trusting only the CA, checking the name `localhost`.
    let channel = tls_channel(grpc, "localhost", client_config(&pki.ca, &[b"h2"]))
        .await
        .expect("a TLS connection to the gRPC listener");
    let email = unique_email();
    let mut auth = AuthServiceClient::new(channel.clone());
    auth.register(pb::RegisterRequest {
        email: email.clone(),
        password: PASSWORD.into(),
        referral_code: String::new(),
    })
    .await
    .expect("register over TLS");
    let tokens = auth
        .login(pb::LoginRequest {
            email: email.clone(),
            password: PASSWORD.into(),
            totp_code: String::new(),
        })
        .await
        .expect("login over TLS")
        .into_inner()
        .tokens
        .unwrap();
    let me = auth
        .get_me(bearer(pb::GetMeRequest {}, &tokens.access_token))
        .await
        .expect("get me over TLS")
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.email, email);

    // A client that checks the name refuses a certificate not made for it, and one that
    // does not trust the CA refuses it too: the server really presents this certificate.
    assert!(
        tls_channel(grpc, "api.example.com", client_config(&pki.ca, &[b"h2"]))
            .await
            .is_err(),
        "a certificate for localhost is not one for api.example.com"
    );
    let stranger = make_pki(tempfile::tempdir().unwrap().path());
    assert!(
        tls_channel(grpc, "localhost", client_config(&stranger.ca, &[b"h2"]))
            .await
            .is_err(),
        "a client trusting another CA refuses the server"
    );
    // Plain-text HTTP/2 to the TLS port gets no gRPC answer.
    let plain = Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(5));
    match plain.connect().await {
        Err(_) => {}
        Ok(channel) => {
            let answer = tonic_health::pb::health_client::HealthClient::new(channel)
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await;
            assert!(answer.is_err(), "plain text must not be served: {answer:?}");
        }
    }

    // The in-process edge serves HTTPS with the same certificate, and reaches the gRPC
    // listener over TLS: /healthz is 200 only when that hop works.
    let https = reqwest::Client::builder()
        .tls_backend_preconfigured(
            client_config(&pki.ca, &[b"h2", b"http/1.1"])
                .as_ref()
                .clone(),
        )
        .resolve("localhost", edge)
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", edge.port());
    let health = https.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "{:?}", health.text().await);
    let me = https
        .get(format!("{base}/v1/users/me"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let body: serde_json::Value = me.json().await.unwrap();
    assert_eq!(body["user"]["email"], email.as_str(), "{body}");
    // Plain HTTP to the edge's TLS port gets no HTTP answer.
    let plain_http = reqwest::Client::new()
        .get(format!("http://{edge}/healthz"))
        .timeout(std::time::Duration::from_secs(5))
        .send()
        .await;
    assert!(plain_http.is_err(), "{plain_http:?}");

    let _ = stop.send(());
    server.await.unwrap().expect("a clean stop");
}

/// Per-address limits still see each client's own address over TLS: two clients on
/// different loopback addresses have a bucket each.
#[tokio::test]
async fn limits_per_client_address_see_the_tls_peer() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let mut vars = vars(dir.path(), &pki);
    vars.insert("NAMASKAH_SENSITIVE_RPM".into(), "2".into());
    vars.insert("NAMASKAH_TRUSTED_PROXIES".into(), "none".into());
    vars.insert("NAMASKAH_EDGE_ADDR".into(), "off".into());
    let app = Application::build(Config::from_source(&vars).unwrap())
        .await
        .unwrap();
    let grpc = app.grpc_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    let login = |channel: Channel| async move {
        AuthServiceClient::new(channel)
            .login(pb::LoginRequest {
                email: unique_email(),
                password: PASSWORD.into(),
                totp_code: String::new(),
            })
            .await
    };
    let config = client_config(&pki.ca, &[b"h2"]);
    let first = tls_channel_from([127, 0, 0, 1], grpc, "localhost", config.clone())
        .await
        .unwrap();
    for _ in 0..2 {
        let refused = login(first.clone()).await.unwrap_err();
        common::assert_error(
            &refused,
            tonic::Code::Unauthenticated,
            "INVALID_CREDENTIALS",
        );
    }
    let limited = login(first.clone()).await.unwrap_err();
    common::assert_error(&limited, tonic::Code::ResourceExhausted, "RATE_LIMITED");
    // Another address has its own allowance (a lost peer address would share one bucket).
    let second = tls_channel_from([127, 0, 0, 2], grpc, "localhost", config)
        .await
        .unwrap();
    let refused = login(second).await.unwrap_err();
    common::assert_error(
        &refused,
        tonic::Code::Unauthenticated,
        "INVALID_CREDENTIALS",
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[test]
fn bad_certificate_files_stop_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let path = |p: &Path| p.display().to_string();
    for (cert, key, variable) in [
        (
            Some(path(&missing)),
            Some(path(&pki.key)),
            "NAMASKAH_TLS_CERT",
        ),
        (
            Some(path(&pki.cert)),
            Some(path(&missing)),
            "NAMASKAH_TLS_KEY",
        ),
        (
            Some(path(&garbage)),
            Some(path(&pki.key)),
            "NAMASKAH_TLS_CERT",
        ),
        (
            Some(path(&pki.cert)),
            Some(path(&garbage)),
            "NAMASKAH_TLS_KEY",
        ),
        // A key that does not belong to the certificate.
        (
            Some(path(&pki.cert)),
            Some(path(&pki.other_key)),
            "NAMASKAH_TLS_KEY",
        ),
        // The key swapped for the certificate.
        (
            Some(path(&pki.key)),
            Some(path(&pki.cert)),
            "NAMASKAH_TLS_CERT",
        ),
        (Some(path(&pki.cert)), None, "NAMASKAH_TLS_KEY"),
        (None, Some(path(&pki.key)), "NAMASKAH_TLS_CERT"),
    ] {
        let mut vars = vars(dir.path(), &pki);
        vars.remove("NAMASKAH_TLS_CERT");
        vars.remove("NAMASKAH_TLS_KEY");
        if let Some(cert) = &cert {
            vars.insert("NAMASKAH_TLS_CERT".into(), cert.clone());
        }
        if let Some(key) = &key {
            vars.insert("NAMASKAH_TLS_KEY".into(), key.clone());
        }
        let error = Config::from_source(&vars).expect_err("must be refused");
        assert_eq!(error.variable, variable, "{cert:?} {key:?}: {error}");
        assert!(error.to_string().contains(variable), "{error}");
    }

    // The binary says so and exits 2, without a panic.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_namaskah-server"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.path().join("bin.db").display()),
        )
        .env("NAMASKAH_METRICS_ADDR", "off")
        .env("NAMASKAH_TLS_CERT", &missing)
        .env("NAMASKAH_TLS_KEY", &pki.key)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("NAMASKAH_TLS_CERT") && stderr.contains("missing.pem"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_healthcheck_command_speaks_tls_to_a_tls_server() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let command = |arg: &str, grpc_addr: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_namaskah-server"));
        command
            .arg(arg)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env(
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", dir.path().join("bin.db").display()),
            )
            .env("NAMASKAH_MAIL_SINK", dir.path().join("mail.jsonl"))
            .env("NAMASKAH_GRPC_ADDR", grpc_addr)
            .env("NAMASKAH_EDGE_ADDR", "off")
            .env("NAMASKAH_METRICS_ADDR", "off")
            .env("NAMASKAH_TLS_CERT", &pki.cert)
            .env("NAMASKAH_TLS_KEY", &pki.key)
            .env("NO_COLOR", "1");
        command
    };
    /// Kills the server however the test ends.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut server = Running(
        command("serve", "127.0.0.1:0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait for the log line announcing the listener (bounded by the line count).
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // The address is only known from the log line that announces it.
    let address = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the server announces its gRPC listener");
        if line.contains("gRPC listening") {
            assert!(line.contains("tls=true"), "{line}");
            let start = line.find("address=").expect("address field") + "address=".len();
            break line[start..].split_whitespace().next().unwrap().to_owned();
        }
    };
    let check = command("healthcheck", &address).output().unwrap();
    drop(server);
    assert!(check.status.success(), "{check:?}");
    assert!(String::from_utf8_lossy(&check.stdout).contains("serving"));
}
