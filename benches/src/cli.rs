//! The command line of `namaskah-load`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Parser;

use crate::duration::parse_duration;
use crate::ledger::{DEFAULT_MAX_HOLD, DEFAULT_WALLET_FUNDS, DEFAULT_WALLETS, LedgerOptions};
use crate::runner::{Bound, LoadPlan};
use crate::scenario::{Account, Credentials, Scenario};
use crate::users::UserOptions;
use crate::verifications::{
    DEFAULT_CANCEL, DEFAULT_COUNTRY, DEFAULT_SERVICE, DEFAULT_STREAMS, DEFAULT_TOP_UP,
    DEFAULT_VERIFICATIONS, VerificationOptions,
};

/// Load driver for the Namaskah gRPC API: runs a named scenario with N connections and M
/// calls in flight for a fixed time or number of calls, then prints RPS, latency
/// percentiles and errors by gRPC code (and, with --json, a report shaped like ghz's).
#[derive(Debug, Clone, Parser)]
#[command(name = "namaskah-load", version)]
pub struct Cli {
    /// The gRPC server, a plaintext http:// URL. Nothing else is contacted.
    #[arg(long, default_value = "http://127.0.0.1:50051", value_name = "URL")]
    pub addr: String,

    /// What to call.
    #[arg(long, value_enum)]
    pub scenario: Scenario,

    /// HTTP/2 connections to open; the in-flight calls are spread evenly across them.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub connections: usize,

    /// Calls in flight at once (workers, each making one call at a time).
    #[arg(short = 'c', long, default_value_t = 50, value_name = "M")]
    pub concurrency: usize,

    /// Run for this long (500ms, 30s, 2m, 1m30s). The default when --total is not given: 10s.
    #[arg(short = 'z', long, value_parser = parse_duration, conflicts_with = "total", value_name = "DURATION")]
    pub duration: Option<Duration>,

    /// Make exactly this many measured calls, then stop.
    #[arg(short = 'n', long, value_name = "COUNT")]
    pub total: Option<u64>,

    /// Run this long before measuring (connections warm, caches filled); not counted.
    #[arg(long, value_parser = parse_duration, default_value = "0s", value_name = "DURATION")]
    pub warmup: Duration,

    /// Per-call deadline; a call still unanswered then counts as DeadlineExceeded.
    #[arg(short = 't', long, value_parser = parse_duration, default_value = "20s", value_name = "DURATION")]
    pub timeout: Duration,

    /// How long to wait for each connection to open.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub connect_timeout: Duration,

    /// API key (nsk_…) for get_me. Without it (and without --email) the driver registers an
    /// account and creates a key first.
    #[arg(
        long,
        env = "NAMASKAH_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,

    /// Email of an existing account, for login (and for get_me without --api-key).
    #[arg(
        long,
        env = "NAMASKAH_EMAIL",
        requires = "password",
        value_name = "EMAIL"
    )]
    pub email: Option<String>,

    /// Password of that account.
    #[arg(
        long,
        env = "NAMASKAH_PASSWORD",
        hide_env_values = true,
        requires = "email",
        value_name = "PASSWORD"
    )]
    pub password: Option<String>,

    /// Also write the report as JSON shaped like ghz's (`-` for standard output).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,

    /// A name for the run, kept in the report.
    #[arg(long)]
    pub name: Option<String>,

    /// Only set the scenario up (register, log in, create a key), print its credentials as
    /// shell `export` lines for ghz or later runs, and exit without load.
    #[arg(long)]
    pub setup_only: bool,

    /// ledger: the database to drive (sqlite:…, postgres://…); migrations are applied and
    /// the run's customers and wallets are written to it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_name = "URL")]
    pub database_url: Option<String>,

    /// ledger: wallets to create (each with its customer) and hold from at random.
    #[arg(long, default_value_t = DEFAULT_WALLETS, value_name = "N")]
    pub wallets: u32,

    /// ledger: what each new wallet is funded with, in cents.
    #[arg(long, default_value_t = DEFAULT_WALLET_FUNDS, value_name = "CENTS")]
    pub wallet_funds: i64,

    /// ledger: the largest hold, in cents (each hold is 1 to this, at random).
    #[arg(long, default_value_t = DEFAULT_MAX_HOLD, value_name = "CENTS")]
    pub max_hold: i64,

    /// Verification scenarios: the server's mail sink file (its NAMASKAH_MAIL_SINK), where
    /// the set-up reads each new account's email verification link.
    #[arg(long, env = "NAMASKAH_MAIL_SINK", value_name = "PATH")]
    pub mail_sink: Option<PathBuf>,

    /// Verification scenarios: accounts to set up (register, verify, log in, API key, top
    /// up). Default: one per worker (--concurrency); watch_streams: 10.
    #[arg(long, value_name = "N")]
    pub accounts: Option<usize>,

    /// Verification scenarios: cents per sandbox top-up of each account.
    #[arg(long, default_value_t = DEFAULT_TOP_UP, value_name = "CENTS")]
    pub top_up: i64,

    /// Verification scenarios: top-ups per account.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub top_ups: u32,

    /// Verification scenarios: the service to buy numbers for.
    #[arg(long, default_value = DEFAULT_SERVICE, value_name = "CODE")]
    pub service: String,

    /// Verification scenarios: the country of the numbers.
    #[arg(long, default_value = DEFAULT_COUNTRY, value_name = "CODE")]
    pub country: String,

    /// get_verification, watch_streams: verifications bought in the set-up (spread over
    /// the accounts), then read or watched.
    #[arg(long, default_value_t = DEFAULT_VERIFICATIONS, value_name = "N")]
    pub verifications: usize,

    /// watch_streams: streams to open and hold (spread over --connections; --concurrency
    /// of them opening at once; held for --duration).
    #[arg(long, default_value_t = DEFAULT_STREAMS, value_name = "N")]
    pub streams: usize,

    /// watch_streams: verifications cancelled at the end, whose watchers must each receive
    /// CANCELLED.
    #[arg(long, default_value_t = DEFAULT_CANCEL, value_name = "N")]
    pub cancel: usize,

    /// Verification scenarios: the server's process id (on this machine). watch_streams
    /// reads its memory (VmRSS) from /proc/<pid>/status before and while the streams are
    /// open; create_verification and get_verification report the CPU time per call of the
    /// server, of PostgreSQL (local postgres processes) and of the whole machine.
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,

    /// users: the shortest pause before a step.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    pub think_min: Duration,

    /// users: the longest pause before a step.
    #[arg(long, value_parser = parse_duration, default_value = "3s", value_name = "DURATION")]
    pub think_max: Duration,

    /// users: each user starts its first visit at a random moment within this.
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub ramp: Duration,

    /// users: the chance per visit of logging in again instead of reusing the session.
    #[arg(long, default_value_t = 0.05, value_name = "P")]
    pub relogin: f64,

    /// users: the chance per visit of a top-up the wallet does not need yet (a wallet that
    /// cannot pay twice the price is always topped up, by --top-up cents).
    #[arg(long, default_value_t = 0.1, value_name = "P")]
    pub top_up_chance: f64,

    /// users: the chance per purchase of cancelling instead of waiting for the code.
    #[arg(long, default_value_t = 0.2, value_name = "P")]
    pub cancel_chance: f64,

    /// users: the longest a user waits on the stream for its code or its cancellation.
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    pub code_wait: Duration,

    /// users: a process on this machine (NAME=PID, repeatable) whose CPU time and memory
    /// over the measured part are reported, from /proc.
    #[arg(long = "process", value_parser = crate::users::parse_process, value_name = "NAME=PID")]
    pub processes: Vec<(String, u32)>,
}

/// The default length of a run bounded by neither --duration nor --total.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);

impl Cli {
    /// The run's shape, checked.
    pub fn plan(&self) -> anyhow::Result<LoadPlan> {
        let bound = match (self.duration, self.total) {
            (Some(_), Some(_)) => bail!("give --duration or --total, not both"),
            (Some(duration), None) => Bound::Duration(duration),
            (None, Some(total)) => Bound::Total(total),
            (None, None) => Bound::Duration(DEFAULT_DURATION),
        };
        let plan = LoadPlan {
            connections: self.connections,
            concurrency: self.concurrency,
            bound,
            warmup: self.warmup,
            timeout: self.timeout,
        };
        crate::runner::check_plan(&plan)?;
        Ok(plan)
    }

    /// The ledger scenario's options, checked.
    pub fn ledger_options(&self) -> anyhow::Result<LedgerOptions> {
        let Some(database_url) = self.database_url.clone().filter(|url| !url.is_empty()) else {
            bail!("the ledger scenario needs --database-url (or DATABASE_URL)");
        };
        if self.setup_only {
            bail!(
                "--setup-only is for the gRPC scenarios; the ledger scenario sets up its wallets on every run"
            );
        }
        let options = LedgerOptions {
            database_url,
            wallets: self.wallets,
            wallet_funds: self.wallet_funds,
            max_hold: self.max_hold,
        };
        options.check()?;
        Ok(options)
    }

    /// The verification scenarios' options, checked.
    pub fn verification_options(&self) -> anyhow::Result<VerificationOptions> {
        if self.setup_only {
            bail!(
                "--setup-only is not for the verification scenarios; they set up their accounts on every run"
            );
        }
        let options = VerificationOptions {
            mail_sink: self.mail_sink.clone().unwrap_or_default(),
            accounts: self.accounts,
            top_up: self.top_up,
            top_ups: self.top_ups,
            service: self.service.clone(),
            country: self.country.clone(),
            verifications: self.verifications,
            streams: self.streams,
            cancel: self.cancel,
            server_pid: self.server_pid,
        };
        options.check()?;
        Ok(options)
    }

    /// The users scenario's options, checked. `--mail-sink` may name several files,
    /// separated by `:` (one per server instance).
    pub fn user_options(&self) -> anyhow::Result<UserOptions> {
        if self.setup_only {
            bail!("--setup-only is not for the users scenario; it sets up its users on every run");
        }
        let options = UserOptions {
            mail_sinks: self
                .mail_sink
                .as_deref()
                .map(|sinks| std::env::split_paths(sinks).collect())
                .unwrap_or_default(),
            top_up: self.top_up,
            think_min: self.think_min,
            think_max: self.think_max,
            ramp: self.ramp,
            relogin: self.relogin,
            top_up_chance: self.top_up_chance,
            cancel_chance: self.cancel_chance,
            code_wait: self.code_wait,
            processes: self.processes.clone(),
        };
        options.check()?;
        Ok(options)
    }

    pub fn credentials(&self) -> Credentials {
        Credentials {
            api_key: self.api_key.clone().filter(|key| !key.is_empty()),
            account: match (&self.email, &self.password) {
                (Some(email), Some(password)) => Some(Account {
                    email: email.clone(),
                    password: password.clone(),
                }),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("namaskah-load").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_a_full_command_line() {
        let cli = parse(&[
            "--addr",
            "http://127.0.0.1:50051",
            "--scenario",
            "get_me",
            "--connections",
            "4",
            "--concurrency",
            "50",
            "--duration",
            "30s",
            "--warmup",
            "2s",
            "--api-key",
            "nsk_test",
            "--json",
            "out.json",
        ])
        .unwrap();
        assert_eq!(cli.scenario, Scenario::GetMe);
        let plan = cli.plan().unwrap();
        assert_eq!(plan.connections, 4);
        assert_eq!(plan.concurrency, 50);
        assert_eq!(plan.bound, Bound::Duration(Duration::from_secs(30)));
        assert_eq!(plan.warmup, Duration::from_secs(2));
        assert_eq!(cli.credentials().api_key.as_deref(), Some("nsk_test"));
        assert_eq!(cli.json, Some(PathBuf::from("out.json")));
    }

    #[test]
    fn total_and_defaults() {
        let cli = parse(&["--scenario", "health", "--total", "10000"]).unwrap();
        let plan = cli.plan().unwrap();
        assert_eq!(plan.bound, Bound::Total(10_000));
        assert_eq!(plan.connections, 1);
        assert_eq!(plan.concurrency, 50);
        assert_eq!(plan.timeout, Duration::from_secs(20));
        assert_eq!(cli.addr, "http://127.0.0.1:50051");

        let cli = parse(&["--scenario", "health"]).unwrap();
        assert_eq!(cli.plan().unwrap().bound, Bound::Duration(DEFAULT_DURATION));
    }

    #[test]
    fn rejects_contradictions_and_bad_values() {
        assert!(parse(&["--scenario", "health", "--duration", "5s", "--total", "5"]).is_err());
        assert!(parse(&["--scenario", "health", "--duration", "5"]).is_err());
        assert!(parse(&["--scenario", "nope"]).is_err());
        assert!(parse(&["--scenario", "login", "--email", "a@example.com"]).is_err());
        let cli = parse(&[
            "--scenario",
            "health",
            "--connections",
            "8",
            "--concurrency",
            "4",
        ])
        .unwrap();
        assert!(cli.plan().is_err());
    }

    #[test]
    fn ledger_options() {
        let cli = parse(&[
            "--scenario",
            "ledger",
            "--database-url",
            "postgres://postgres@127.0.0.1:5432/bench",
            "--wallets",
            "20",
            "--max-hold",
            "7",
            "--total",
            "100",
        ])
        .unwrap();
        assert_eq!(cli.scenario, Scenario::Ledger);
        assert!(cli.scenario.is_database());
        let options = cli.ledger_options().unwrap();
        assert_eq!(
            options.database_url,
            "postgres://postgres@127.0.0.1:5432/bench"
        );
        assert_eq!(options.wallets, 20);
        assert_eq!(options.wallet_funds, DEFAULT_WALLET_FUNDS);
        assert_eq!(options.max_hold, 7);
        assert_eq!(cli.plan().unwrap().bound, Bound::Total(100));

        let cli = parse(&[
            "--scenario",
            "ledger",
            "--database-url",
            "sqlite::memory:",
            "--wallets",
            "0",
        ])
        .unwrap();
        assert!(cli.ledger_options().is_err());
        let cli = parse(&[
            "--scenario",
            "ledger",
            "--database-url",
            "sqlite::memory:",
            "--setup-only",
        ])
        .unwrap();
        assert!(cli.ledger_options().is_err());
    }

    #[test]
    fn verification_options() {
        let cli = parse(&[
            "--scenario",
            "watch_streams",
            "--mail-sink",
            "/tmp/mail.jsonl",
            "--streams",
            "10000",
            "--connections",
            "100",
            "--concurrency",
            "200",
            "--server-pid",
            "4242",
            "--duration",
            "10s",
        ])
        .unwrap();
        assert_eq!(cli.scenario, Scenario::WatchStreams);
        assert!(cli.scenario.is_verification());
        assert!(!cli.scenario.is_database());
        let options = cli.verification_options().unwrap();
        assert_eq!(options.mail_sink, PathBuf::from("/tmp/mail.jsonl"));
        assert_eq!(options.streams, 10_000);
        assert_eq!(options.server_pid, Some(4242));
        assert_eq!(options.service, "whatsapp");
        assert_eq!(options.country, "GB");
        assert_eq!(options.top_up, DEFAULT_TOP_UP);
        let plan = cli.plan().unwrap();
        assert_eq!((plan.connections, plan.concurrency), (100, 200));

        let cli = parse(&[
            "--scenario",
            "create_verification",
            "--mail-sink",
            "m.jsonl",
            "--accounts",
            "5",
            "--top-ups",
            "2",
        ])
        .unwrap();
        let options = cli.verification_options().unwrap();
        assert_eq!(options.accounts, Some(5));
        assert_eq!(options.top_ups, 2);
        assert!(
            parse(&[
                "--scenario",
                "get_verification",
                "--mail-sink",
                "m",
                "--setup-only"
            ])
            .unwrap()
            .verification_options()
            .is_err()
        );
    }

    #[test]
    fn user_options() {
        let cli = parse(&[
            "--scenario",
            "users",
            "--mail-sink",
            "/tmp/a.jsonl:/tmp/b.jsonl",
            "--concurrency",
            "1000",
            "--connections",
            "100",
            "--think-min",
            "500ms",
            "--cancel-chance",
            "0.5",
            "--process",
            "server-1=11",
            "--process",
            "server-2=12",
        ])
        .unwrap();
        assert_eq!(cli.scenario, Scenario::Users);
        let options = cli.user_options().unwrap();
        assert_eq!(
            options.mail_sinks,
            vec![PathBuf::from("/tmp/a.jsonl"), PathBuf::from("/tmp/b.jsonl")]
        );
        assert_eq!(options.think_min, Duration::from_millis(500));
        assert_eq!(options.think_max, Duration::from_secs(3));
        assert_eq!(options.cancel_chance, 0.5);
        assert_eq!(
            options.processes,
            vec![("server-1".to_owned(), 11), ("server-2".to_owned(), 12)]
        );
        let bad = |args: &[&str]| {
            let mut all = vec!["--scenario", "users", "--mail-sink", "m"];
            all.extend_from_slice(args);
            parse(&all).map_or(true, |cli| cli.user_options().is_err())
        };
        assert!(bad(&["--relogin", "1.5"]));
        assert!(bad(&["--think-min", "5s", "--think-max", "1s"]));
        assert!(bad(&["--process", "nope"]));
        assert!(
            parse(&["--scenario", "users"])
                .unwrap()
                .user_options()
                .is_err()
        );
    }

    #[test]
    fn email_and_password_make_an_account() {
        let cli = parse(&[
            "--scenario",
            "login",
            "--email",
            "a@example.com",
            "--password",
            "correct horse 1",
        ])
        .unwrap();
        let account = cli.credentials().account.unwrap();
        assert_eq!(account.email, "a@example.com");
        assert_eq!(account.password, "correct horse 1");
    }
}
