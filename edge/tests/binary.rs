//! The `namaskah-edge` binary: configuration from the environment, signals.
#![cfg(unix)]

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::Full;
use support::{Upstream, http1};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PROMPTLY: Duration = Duration::from_secs(20);

fn edge_command(vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_namaskah-edge"));
    command
        .env_remove("NAMASKAH_EDGE_ADDR")
        .env_remove("NAMASKAH_UPSTREAM")
        .env_remove("NAMASKAH_EDGE_MAX_BODY")
        .env_remove("NAMASKAH_CORS_ORIGINS")
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

/// Runs the binary to completion and returns (success, stdout + stderr).
async fn run_to_exit(vars: &[(&str, &str)]) -> (bool, String) {
    let output = tokio::time::timeout(PROMPTLY, edge_command(vars).output())
        .await
        .expect("the binary exits by itself")
        .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Starts the binary and waits for its "listening" log line; returns the bound address.
async fn spawn_edge(vars: &[(&str, &str)]) -> (Child, SocketAddr) {
    let mut child = edge_command(vars).spawn().expect("spawn namaskah-edge");
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(PROMPTLY, async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            let line = strip_ansi(&line);
            if line.contains("namaskah-edge listening")
                && let Some(rest) = line.split("addr=").nth(1)
            {
                let addr = rest.split_whitespace().next().expect("addr value");
                return addr.parse::<SocketAddr>().expect("a socket address");
            }
        }
        panic!("namaskah-edge exited before listening");
    })
    .await
    .expect("namaskah-edge starts");
    // Keep draining the logs so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

#[tokio::test]
async fn a_bad_value_stops_start_up_naming_the_variable() {
    for (name, value) in [
        ("NAMASKAH_EDGE_MAX_BODY", "lots"),
        ("NAMASKAH_EDGE_ADDR", "somewhere"),
        ("NAMASKAH_UPSTREAM", "ftp://127.0.0.1:50051"),
        ("NAMASKAH_CORS_ORIGINS", "*"),
    ] {
        let (success, output) = run_to_exit(&[(name, value)]).await;
        assert!(!success, "{name}={value} must stop start-up");
        assert!(output.contains(name), "{name} not named in: {output}");
    }
}

#[tokio::test]
async fn an_address_in_use_stops_start_up_naming_the_variable() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();

    let (success, output) = run_to_exit(&[("NAMASKAH_EDGE_ADDR", &addr)]).await;

    assert!(!success);
    assert!(output.contains("NAMASKAH_EDGE_ADDR"), "{output}");
}

#[tokio::test]
async fn serves_until_sigterm_then_exits_cleanly() {
    let upstream = Upstream::start().await;
    let (mut child, addr) = spawn_edge(&[
        ("NAMASKAH_EDGE_ADDR", "127.0.0.1:0"),
        ("NAMASKAH_UPSTREAM", &upstream.url()),
        ("NAMASKAH_EDGE_MAX_BODY", "16"),
    ])
    .await;

    let healthz = http::Request::get(format!("http://{addr}/healthz"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(http1(healthz).await.status, StatusCode::OK);

    // NAMASKAH_EDGE_MAX_BODY took effect.
    let too_big = http::Request::post(format!("http://{addr}/v1/anything"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"seventeen\":\"b\"}")))
        .unwrap();
    assert_eq!(http1(too_big).await.status, StatusCode::PAYLOAD_TOO_LARGE);

    let pid = child.id().expect("running").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(killed.success());

    let status = tokio::time::timeout(PROMPTLY, child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("wait");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn the_standalone_edge_transcodes_json_with_cors() {
    let upstream = Upstream::start().await;
    let (_child, addr) = spawn_edge(&[
        ("NAMASKAH_EDGE_ADDR", "127.0.0.1:0"),
        ("NAMASKAH_UPSTREAM", &upstream.url()),
        ("NAMASKAH_CORS_ORIGINS", "https://app.example.com"),
    ])
    .await;

    let get_me = http::Request::get(format!("http://{addr}/v1/users/me"))
        .header("origin", "https://app.example.com")
        .header("x-api-key", "nsk_binary")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = http1(get_me).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json()["user"]["email"], "nsk_binary");
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(reply.header("x-process-time"), Some("0.000042"));

    let openapi = http::Request::get(format!("http://{addr}/openapi.json"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(http1(openapi).await.json()["openapi"], "3.0.3");
}
