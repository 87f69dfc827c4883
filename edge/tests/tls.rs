//! The `namaskah-edge` binary serving HTTPS itself (`NAMASKAH_TLS_CERT`, `NAMASKAH_TLS_KEY`)
//! with a certificate generated here, in front of a plain-text gRPC upstream; and bad
//! certificate settings stopping start-up with the variable named.
#![cfg(unix)]

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use support::Upstream;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PROMPTLY: Duration = Duration::from_secs(20);

fn edge_command(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_namaskah-edge"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

/// Starts the binary and waits for its "listening" log line; returns the bound address.
async fn spawn_edge(vars: &[(&str, &str)]) -> (Child, SocketAddr) {
    let mut child = edge_command(vars).spawn().expect("spawn namaskah-edge");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(PROMPTLY, async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if line.contains("namaskah-edge listening")
                && let Some(rest) = line.split("addr=").nth(1)
            {
                assert!(line.contains("tls=true"), "{line}");
                let addr = rest.split_whitespace().next().expect("addr value");
                return addr.parse::<SocketAddr>().expect("a socket address");
            }
        }
        panic!("namaskah-edge exited before listening");
    })
    .await
    .expect("namaskah-edge starts");
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// A self-signed certificate for `localhost`, written to `dir`: (certificate, cert path,
/// key path).
fn self_signed(dir: &std::path::Path) -> (CertificateDer<'static>, String, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.join("edge.pem");
    let key_path = dir.join("edge.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, signing_key.serialize_pem()).unwrap();
    (
        cert.der().clone(),
        cert_path.display().to_string(),
        key_path.display().to_string(),
    )
}

/// One `GET path` over TLS (trusting only `trusted`, checking the name `localhost`),
/// offering `alpn`; returns the negotiated protocol, the status and the body.
async fn https_get(
    addr: SocketAddr,
    trusted: &CertificateDer<'static>,
    alpn: &[u8],
    path: &str,
) -> std::io::Result<(Vec<u8>, http::StatusCode, String)> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(trusted.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let negotiated = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    let request = http::Request::get(format!("https://localhost:{}{path}", addr.port()))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = if negotiated == b"h2" {
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            TokioIo::new(tls),
        )
        .await
        .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        sender.send_request(request).await
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        sender.send_request(request).await
    }
    .map_err(std::io::Error::other)?;
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok((
        negotiated,
        status,
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

#[tokio::test]
async fn serves_https_over_http1_and_http2_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, cert_path, key_path) = self_signed(dir.path());
    let upstream = Upstream::start().await;
    let (mut child, addr) = spawn_edge(&[
        ("NAMASKAH_EDGE_ADDR", "127.0.0.1:0"),
        ("NAMASKAH_UPSTREAM", &upstream.url()),
        ("NAMASKAH_TLS_CERT", &cert_path),
        ("NAMASKAH_TLS_KEY", &key_path),
    ])
    .await;

    for alpn in [&b"http/1.1"[..], b"h2"] {
        let (negotiated, status, body) = https_get(addr, &cert, alpn, "/healthz")
            .await
            .expect("an HTTPS answer");
        assert_eq!(negotiated, alpn, "ALPN");
        assert_eq!(status, http::StatusCode::OK, "{body}");
    }
    // A client that does not trust this certificate is refused at the handshake.
    let (stranger, _, _) = self_signed(tempfile::tempdir().unwrap().path());
    assert!(https_get(addr, &stranger, b"h2", "/healthz").await.is_err());
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = tokio::time::timeout(PROMPTLY, async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        sender
            .send_request(
                http::Request::get("/healthz")
                    .header("host", "localhost")
                    .body(Empty::<Bytes>::new())
                    .unwrap(),
            )
            .await
            .map_err(std::io::Error::other)
    })
    .await
    .expect("the plain-text attempt ends");
    assert!(plain.is_err(), "{plain:?}");

    child.start_kill().unwrap();
    let _ = child.wait().await;
}

#[tokio::test]
async fn bad_certificate_settings_stop_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert_path, key_path) = self_signed(dir.path());
    let missing = dir.path().join("missing.pem").display().to_string();
    for (vars, variable) in [
        (
            vec![("NAMASKAH_TLS_CERT", cert_path.as_str())],
            "NAMASKAH_TLS_KEY",
        ),
        (
            vec![
                ("NAMASKAH_TLS_CERT", missing.as_str()),
                ("NAMASKAH_TLS_KEY", key_path.as_str()),
            ],
            "NAMASKAH_TLS_CERT",
        ),
        (
            vec![
                ("NAMASKAH_TLS_CERT", cert_path.as_str()),
                ("NAMASKAH_TLS_KEY", cert_path.as_str()),
            ],
            "NAMASKAH_TLS_KEY",
        ),
    ] {
        let output = tokio::time::timeout(PROMPTLY, edge_command(&vars).output())
            .await
            .expect("the binary exits by itself")
            .expect("the binary runs");
        let text = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{vars:?} must stop start-up");
        assert!(text.contains(variable), "{variable} not named in: {text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}
