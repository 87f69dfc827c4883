//! The `namaskah-server` binary itself: its commands, its refusal of bad configuration, and
//! its graceful stop on SIGTERM.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_namaskah-server");

fn base_command(dir: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", dir.join("bin.db").display()),
        )
        .env("NAMASKAH_MAIL_SINK", dir.join("mail.jsonl"))
        .env("NAMASKAH_METRICS_ADDR", "off")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1");
    command
}

#[test]
fn migrate_applies_the_schema_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = base_command(dir.path()).arg("migrate").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("migrations applied"));
    // Running it again is a no-op, not an error.
    let again = base_command(dir.path()).arg("migrate").output().unwrap();
    assert!(again.status.success(), "{again:?}");
}

#[test]
fn bad_configuration_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    for (variable, value) in [
        ("NAMASKAH_GRPC_ADDR", "not-an-address"),
        ("NAMASKAH_VERIFICATION_TTL", "forever"),
        ("DATABASE_URL", "mysql://localhost/x"),
    ] {
        let output = base_command(dir.path())
            .env(variable, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{variable}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
    let unknown = base_command(dir.path()).arg("launch").output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn serves_answers_its_health_check_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = base_command(dir.path())
        .env("NAMASKAH_GRPC_ADDR", "127.0.0.1:0")
        .env("NAMASKAH_EDGE_ADDR", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The address is only known from the log line that announces it.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let address = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the server announces its gRPC address");
        if line.contains("gRPC listening") {
            let start = line.find("address=").expect("address field") + "address=".len();
            break line[start..].split_whitespace().next().unwrap().to_owned();
        }
    };
    let port = address.rsplit(':').next().unwrap();

    let health = base_command(dir.path())
        .env("NAMASKAH_GRPC_ADDR", format!("0.0.0.0:{port}"))
        .arg("healthcheck")
        .output()
        .unwrap();
    assert!(health.status.success(), "{health:?}");
    assert!(String::from_utf8_lossy(&health.stdout).contains("serving"));

    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "graceful stop exits 0: {status:?}");
    let stopped = rx.try_iter().any(|line| line.contains("stopped"));
    assert!(stopped, "the server logs that it stopped");

    let after = base_command(dir.path())
        .env("NAMASKAH_GRPC_ADDR", format!("0.0.0.0:{port}"))
        .arg("healthcheck")
        .output()
        .unwrap();
    assert!(!after.status.success(), "nothing answers after the stop");
}
