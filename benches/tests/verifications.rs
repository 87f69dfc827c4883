//! The verification scenarios end to end against the real server, built in-process on port
//! 0 over a fresh SQLite database with the sandbox provider (no automatic SMS, jobs quiet):
//! accounts set up through the API (the email link read from the mail sink, the wallet
//! topped up through the sandbox gateway), then a few calls of each scenario.

use std::collections::HashMap;
use std::future::pending;
use std::path::PathBuf;
use std::time::Duration;

use namaskah_bench::report::EndReason;
use namaskah_bench::runner::{self, Bound, LoadPlan};
use namaskah_bench::scenario::Scenario;
use namaskah_bench::verifications::{self, VerificationOptions};
use namaskah_server::{Application, Config};
use tonic::transport::Channel;

struct Server {
    addr: String,
    mail_sink: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn spawn_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
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
            "bench-test-secret-bench-test-secret".to_owned(),
        ),
        ("NAMASKAH_SANDBOX", "on".to_owned()),
        ("NAMASKAH_SANDBOX_SMS_DELAY", "off".to_owned()),
        ("NAMASKAH_JOB_INTERVAL", "1h".to_owned()),
        ("NAMASKAH_SHUTDOWN_TIMEOUT", "2s".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = Config::from_source(&vars).unwrap();
    let app = Application::build(config).await.unwrap();
    let addr = format!("http://{}", app.grpc_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        mail_sink,
        stop: Some(stop),
        _dir: dir,
    }
}

fn plan(connections: usize, concurrency: usize, bound: Bound) -> LoadPlan {
    LoadPlan {
        connections,
        concurrency,
        bound,
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(20),
    }
}

fn options(server: &Server, accounts: usize) -> VerificationOptions {
    VerificationOptions {
        mail_sink: server.mail_sink.clone(),
        accounts: Some(accounts),
        // A few numbers' worth: a run that bought more than the wallets hold would show
        // FailedPrecondition.
        top_up: 10_000,
        ..VerificationOptions::default()
    }
}

async fn connect(server: &Server, n: usize) -> Vec<Channel> {
    runner::connect(&server.addr, n, Duration::from_secs(5))
        .await
        .unwrap()
}

#[tokio::test]
async fn create_verification_buys_active_numbers_from_each_account() {
    let server = spawn_server().await;
    let channels = connect(&server, 2).await;
    let run = verifications::run_calls(
        Scenario::CreateVerification,
        &options(&server, 2),
        &plan(2, 3, Bound::Total(8)),
        &channels,
        pending(),
    )
    .await
    .unwrap();
    assert_eq!(run.accounts, 2);
    assert_eq!(run.end_reason, EndReason::Normal);
    let summary = run.summary();
    assert_eq!(summary.count, 8);
    assert_eq!(summary.ok_count, 8, "{:?}", summary.errors);
    assert_eq!(run.stats.statuses.get("ACTIVE"), Some(&8));
    assert!(summary.percentile(99).is_some());
}

#[tokio::test]
async fn get_verification_reads_the_set_up_verifications() {
    let server = spawn_server().await;
    let channels = connect(&server, 1).await;
    let run = verifications::run_calls(
        Scenario::GetVerification,
        &VerificationOptions {
            verifications: 4,
            ..options(&server, 2)
        },
        &plan(1, 2, Bound::Total(20)),
        &channels,
        pending(),
    )
    .await
    .unwrap();
    assert_eq!(run.prepared, 4);
    let summary = run.summary();
    assert_eq!(summary.ok_count, 20, "{:?}", summary.errors);
    assert_eq!(run.stats.statuses.get("ACTIVE"), Some(&20));
}

#[tokio::test]
async fn watch_streams_hold_streams_and_hear_cancellations() {
    let server = spawn_server().await;
    let channels = connect(&server, 2).await;
    let run = verifications::run_watch(
        &VerificationOptions {
            verifications: 4,
            streams: 20,
            cancel: 2,
            // The server runs in this process.
            server_pid: Some(std::process::id()),
            ..options(&server, 2)
        },
        &plan(2, 5, Bound::Duration(Duration::from_millis(200))),
        &channels,
        pending(),
    )
    .await
    .unwrap();
    assert_eq!(run.open_streams, 20, "{:?}", run.opens.errors());
    // Streams 0, 1, 4, 5, … watch the two cancelled verifications: half of them.
    assert_eq!(run.live.watchers, 10);
    assert_eq!(run.live.received, 10, "{:?}", run.live);
    assert!(run.ok());
    let memory = run.memory.expect("memory read");
    assert!(memory.before.rss_kib > 0);
    assert!(run.kib_per_stream().is_some());
    assert_eq!(run.end_reason, EndReason::Timeout);
}
