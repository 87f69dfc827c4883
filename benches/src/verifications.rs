//! The verification scenarios, against a server running the sandbox provider:
//!
//! - `create_verification`: each worker buys numbers (`CreateVerification`, a fresh
//!   `request_id` each time) from its own funded account;
//! - `get_verification`: verifications bought during the set-up, read back
//!   (`GetVerification`) in a loop, each worker from its own account;
//! - `watch_streams`: many `WatchVerification` streams held open at once over several
//!   HTTP/2 connections, with the server's resident memory read before and while they are
//!   open (`/proc/<pid>/status`), then a few verifications cancelled to check that their
//!   watchers hear it live.
//!
//! The set-up is what a customer does: register, verify the email (the link from the
//! server's mail sink file), log in, create an API key, top the wallet up through the
//! sandbox gateway (`CreateTopUp`, then `SandboxService.CompletePayment`). The calls under
//! load authenticate with the account's API key.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use futures::StreamExt as _;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::auth_service_client::AuthServiceClient;
use namaskah_proto::v1::sandbox_service_client::SandboxServiceClient;
use namaskah_proto::v1::verification_service_client::VerificationServiceClient;
use namaskah_proto::v1::wallet_service_client::WalletServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Request, Status, Streaming};
use uuid::Uuid;

use crate::duration::{format_duration_short, format_latency};
use crate::report::{EndReason, GhzReport, RunDescription, Summary, render_text};
use crate::runner::{self, Bound, LoadPlan, RunOutcome, Stats, Worker, deadline_exceeded};
use crate::scenario::{Scenario, create_api_key, login, unique_account, with_retries};
use crate::stats::{CallStats, error_key};

/// What is bought unless `--service`/`--country` say otherwise (about 1.88 USD).
pub const DEFAULT_SERVICE: &str = "whatsapp";
pub const DEFAULT_COUNTRY: &str = "GB";
/// Cents per top-up. The server takes at most 10,000.00 USD per top-up, and the sandbox
/// gateway at most what Paystack charges in one payment (666,666 cents at the default
/// 1500 NGN/USD): 5,000.00 USD buys about 2,600 numbers at 1.88.
pub const DEFAULT_TOP_UP: i64 = 500_000;
/// Verifications bought during the set-up of `get_verification` and `watch_streams`.
pub const DEFAULT_VERIFICATIONS: usize = 200;
/// `watch_streams`: streams held open at once.
pub const DEFAULT_STREAMS: usize = 10_000;
/// `watch_streams`: accounts whose verifications are watched.
pub const DEFAULT_WATCH_ACCOUNTS: usize = 10;
/// `watch_streams`: verifications cancelled at the end to check live events.
pub const DEFAULT_CANCEL: usize = 3;
/// Accounts set up at once (each costs the server two Argon2id hashes).
const SETUP_PARALLEL: usize = 8;
/// Verifications bought at once during a set-up.
const BUY_PARALLEL: usize = 16;
/// At most this many accounts (each is set up one by one through the API).
pub const MAX_ACCOUNTS: usize = 1_000;
/// How long to wait for the verification mail to reach the sink.
const MAIL_WAIT: Duration = Duration::from_secs(15);
/// After the streams close, how long to wait before reading the server's memory again.
const SETTLE: Duration = Duration::from_secs(2);

/// The options of the verification scenarios.
#[derive(Debug, Clone, PartialEq)]
pub struct VerificationOptions {
    /// The server's mail sink (`NAMASKAH_MAIL_SINK`), where the verification links land.
    pub mail_sink: PathBuf,
    /// Accounts to set up; `None`: one per worker (`create_verification`,
    /// `get_verification`), [`DEFAULT_WATCH_ACCOUNTS`] for `watch_streams`.
    pub accounts: Option<usize>,
    /// Cents per top-up, and top-ups per account.
    pub top_up: i64,
    pub top_ups: u32,
    pub service: String,
    pub country: String,
    /// Verifications bought in the set-up (`get_verification`, `watch_streams`).
    pub verifications: usize,
    /// `watch_streams`: streams to open.
    pub streams: usize,
    /// `watch_streams`: verifications cancelled at the end.
    pub cancel: usize,
    /// The server's process id: `watch_streams` reads its memory, the others the CPU time
    /// of it, of PostgreSQL and of the machine.
    pub server_pid: Option<u32>,
}

impl Default for VerificationOptions {
    fn default() -> Self {
        Self {
            mail_sink: PathBuf::new(),
            accounts: None,
            top_up: DEFAULT_TOP_UP,
            top_ups: 1,
            service: DEFAULT_SERVICE.to_owned(),
            country: DEFAULT_COUNTRY.to_owned(),
            verifications: DEFAULT_VERIFICATIONS,
            streams: DEFAULT_STREAMS,
            cancel: DEFAULT_CANCEL,
            server_pid: None,
        }
    }
}

impl VerificationOptions {
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(
            !self.mail_sink.as_os_str().is_empty(),
            "the verification scenarios need --mail-sink (or NAMASKAH_MAIL_SINK): the server's mail sink file, where the email verification links land"
        );
        if let Some(accounts) = self.accounts {
            ensure!(
                (1..=MAX_ACCOUNTS).contains(&accounts),
                "--accounts must be from 1 to {MAX_ACCOUNTS}"
            );
        }
        ensure!(self.top_up > 0, "--top-up must be above zero");
        ensure!(
            self.verifications >= 1,
            "--verifications must be at least 1"
        );
        ensure!(self.streams >= 1, "--streams must be at least 1");
        ensure!(
            self.cancel <= self.verifications,
            "--cancel ({}) cannot exceed --verifications ({})",
            self.cancel,
            self.verifications
        );
        ensure!(
            !self.service.is_empty() && !self.country.is_empty(),
            "--service and --country must not be empty"
        );
        Ok(())
    }

    /// Accounts for `scenario` run with `concurrency` workers.
    pub fn accounts_for(&self, scenario: Scenario, concurrency: usize) -> usize {
        self.accounts.unwrap_or(match scenario {
            Scenario::WatchStreams => DEFAULT_WATCH_ACCOUNTS,
            _ => concurrency.clamp(1, MAX_ACCOUNTS),
        })
    }

    pub fn request_json(&self, scenario: Scenario) -> serde_json::Value {
        match scenario {
            Scenario::CreateVerification => serde_json::json!({
                "service": self.service,
                "country": self.country,
                "request_id": "(a fresh UUID per call)",
            }),
            Scenario::GetVerification => serde_json::json!({
                "name": "(the set-up's verifications/{id}, in turn)",
            }),
            _ => serde_json::json!({
                "name": "(the set-up's verifications/{id}, in turn)",
                "after_sequence": 0,
            }),
        }
    }
}

/// One account of the run: its email, its user id and its API key.
#[derive(Debug, Clone)]
pub struct Customer {
    pub email: String,
    /// `users/{id}`.
    pub user: String,
    pub api_key: MetadataValue<Ascii>,
}

impl Customer {
    /// `message` with this customer's `x-api-key`.
    pub fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert("x-api-key", self.api_key.clone());
        request
    }
}

fn bearer<T>(message: T, token: &MetadataValue<Ascii>) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", token.clone());
    request
}

/// The `token=` of a mailed link.
pub fn token_in(text: &str) -> Option<String> {
    let start = text.find("token=")? + "token=".len();
    let token: String = text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!token.is_empty()).then_some(token)
}

/// The token of the first mail to `email` in the sink, if it has arrived.
fn mailed_token(sink: &Path, email: &str) -> Option<String> {
    let text = std::fs::read_to_string(sink).ok()?;
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|mail| mail["to"].as_str().is_some_and(|to| to.contains(email)))
        .find_map(|mail| mail["text"].as_str().and_then(token_in))
}

/// Waits (bounded) for the verification mail to `email` and returns its token.
async fn wait_for_token(sink: &Path, email: &str) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        if let Some(token) = mailed_token(sink, email) {
            return Ok(token);
        }
        if started.elapsed() > MAIL_WAIT {
            bail!(
                "no verification mail to {email} in {} after {}s: is it the server's NAMASKAH_MAIL_SINK?",
                sink.display(),
                MAIL_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Sets up one customer: register, verify the email, log in, create an API key, and top
/// the wallet up `top_ups` times by `top_up` cents through the sandbox gateway.
pub async fn set_up_customer(
    channel: &Channel,
    options: &VerificationOptions,
    timeout: Duration,
) -> anyhow::Result<Customer> {
    let account = unique_account();
    with_retries("Register", timeout, || {
        let request = Request::new(pb::RegisterRequest {
            email: account.email.clone(),
            password: account.password.clone(),
            referral_code: String::new(),
        });
        let mut client = AuthServiceClient::new(channel.clone());
        async move { client.register(request).await }
    })
    .await?;
    let token = wait_for_token(&options.mail_sink, &account.email).await?;
    with_retries("VerifyEmail", timeout, || {
        let request = Request::new(pb::VerifyEmailRequest {
            token: token.clone(),
        });
        let mut client = AuthServiceClient::new(channel.clone());
        async move { client.verify_email(request).await }
    })
    .await?;
    let access_token = login(channel, &account, timeout).await?;
    let secret = create_api_key(channel, &access_token, timeout).await?;
    let api_key: MetadataValue<Ascii> = secret
        .parse()
        .context("the API key is not valid ASCII metadata")?;
    let bearer_token: MetadataValue<Ascii> = format!("Bearer {access_token}")
        .parse()
        .context("the access token from Login is not valid metadata")?;

    for _ in 0..options.top_ups {
        let request_id = Uuid::new_v4().to_string();
        let top_up = with_retries("CreateTopUp", timeout, || {
            let request = bearer(
                pb::CreateTopUpRequest {
                    amount: Some(pb::Money {
                        currency_code: "USD".to_owned(),
                        minor_units: options.top_up,
                    }),
                    request_id: request_id.clone(),
                    callback_url: String::new(),
                },
                &bearer_token,
            );
            let mut client = WalletServiceClient::new(channel.clone());
            async move { client.create_top_up(request).await }
        })
        .await?
        .into_inner()
        .top_up
        .context("CreateTopUp answered without a top-up")?;
        with_retries("SandboxService.CompletePayment", timeout, || {
            let request = bearer(
                pb::CompletePaymentRequest {
                    reference: top_up.reference.clone(),
                    outcome: 0,
                    paid_amount: None,
                },
                &bearer_token,
            );
            let mut client = SandboxServiceClient::new(channel.clone());
            async move { client.complete_payment(request).await }
        })
        .await?;
    }

    let me = with_retries("GetMe", timeout, || {
        let request = bearer(pb::GetMeRequest {}, &bearer_token);
        let mut client = AuthServiceClient::new(channel.clone());
        async move { client.get_me(request).await }
    })
    .await?
    .into_inner()
    .user
    .context("GetMe answered without a user")?;
    let customer = Customer {
        email: account.email,
        user: me.name,
        api_key,
    };
    let balance = with_retries("GetBalance", timeout, || {
        let request = customer.request(pb::GetBalanceRequest {});
        let mut client = WalletServiceClient::new(channel.clone());
        async move { client.get_balance(request).await }
    })
    .await?
    .into_inner()
    .balance
    .map_or(0, |m| m.minor_units);
    let expected = options.top_up * i64::from(options.top_ups);
    ensure!(
        balance == expected,
        "{}: the wallet holds {balance} cents after the top-ups, not {expected}",
        customer.email
    );
    Ok(customer)
}

/// Sets up `count` customers, a few at a time. Progress goes to standard error.
pub async fn set_up_customers(
    channel: &Channel,
    options: &VerificationOptions,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Customer>> {
    let started = Instant::now();
    let customers: Vec<Customer> = futures::stream::iter(0..count)
        .map(|_| set_up_customer(channel, options, timeout))
        .buffer_unordered(SETUP_PARALLEL)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    eprintln!(
        "namaskah-load: set up {count} verified accounts, each topped up with {} x {} cents, in {}",
        options.top_ups,
        options.top_up,
        format_latency(started.elapsed())
    );
    Ok(customers)
}

/// `CreateVerification` for `customer`, with a fresh `request_id`.
pub async fn buy(
    channel: &Channel,
    customer: &Customer,
    service: &str,
    country: &str,
) -> Result<pb::Verification, Status> {
    let request = customer.request(pb::CreateVerificationRequest {
        service: service.to_owned(),
        country: country.to_owned(),
        max_price: None,
        request_id: Uuid::new_v4().to_string(),
    });
    VerificationServiceClient::new(channel.clone())
        .create_verification(request)
        .await?
        .into_inner()
        .verification
        .ok_or_else(|| Status::internal("CreateVerification answered without a verification"))
}

/// The name of a verification status without its prefix (`ACTIVE`).
pub fn status_name(status: i32) -> &'static str {
    match pb::VerificationStatus::try_from(status) {
        Ok(s) => s.as_str_name().trim_start_matches("VERIFICATION_STATUS_"),
        Err(_) => "UNKNOWN",
    }
}

/// The name of an event type without its prefix (`SNAPSHOT`).
pub fn event_name(kind: i32) -> &'static str {
    match pb::VerificationEventType::try_from(kind) {
        Ok(t) => t
            .as_str_name()
            .trim_start_matches("VERIFICATION_EVENT_TYPE_"),
        Err(_) => "UNKNOWN",
    }
}

/// A verification bought in a set-up, with its owner.
#[derive(Debug, Clone)]
pub struct Bought {
    pub owner: usize,
    pub name: String,
}

/// Buys `count` verifications, spread evenly over `customers`; each must come back
/// `ACTIVE` (the sandbox assigns a number at once).
pub async fn buy_many(
    channel: &Channel,
    customers: &[Customer],
    options: &VerificationOptions,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<Bought>> {
    ensure!(!customers.is_empty(), "no accounts to buy with");
    let started = Instant::now();
    let bought: Vec<Bought> = futures::stream::iter(0..count)
        .map(|n| {
            let owner = n % customers.len();
            let customer = &customers[owner];
            async move {
                let verification = tokio::time::timeout(
                    timeout,
                    buy(channel, customer, &options.service, &options.country),
                )
                .await
                .unwrap_or_else(|_| Err(deadline_exceeded(timeout)))
                .map_err(|status| {
                    anyhow::anyhow!(
                        "CreateVerification during set-up failed: {}",
                        error_key(&status)
                    )
                })?;
                let status = status_name(verification.status);
                ensure!(
                    status == "ACTIVE",
                    "CreateVerification during set-up answered {status}, not ACTIVE (is the server on the sandbox provider?)"
                );
                Ok(Bought {
                    owner,
                    name: verification.name,
                })
            }
        })
        .buffer_unordered(BUY_PARALLEL)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    eprintln!(
        "namaskah-load: bought {count} {} numbers in {} over {} accounts in {}",
        options.service,
        options.country,
        customers.len(),
        format_latency(started.elapsed())
    );
    Ok(bought)
}

/// What the create and get workers measure: every call, and the status of each
/// verification answered.
#[derive(Debug, Clone, Default)]
pub struct VerificationStats {
    pub calls: CallStats,
    /// Verification statuses in the measured answers (`ACTIVE`, `PENDING`…).
    pub statuses: BTreeMap<&'static str, u64>,
    /// Calls made during the warm-up (for `create_verification`, also numbers bought).
    pub warmup_calls: u64,
    pub warmup_ok: u64,
}

impl Stats for VerificationStats {
    fn merge(&mut self, other: &Self) {
        self.calls.merge(&other.calls);
        for (status, n) in &other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.warmup_calls += other.warmup_calls;
        self.warmup_ok += other.warmup_ok;
    }
}

impl VerificationStats {
    fn record(
        &mut self,
        latency: Duration,
        outcome: Result<Option<pb::Verification>, Status>,
        measured: bool,
    ) {
        if !measured {
            self.warmup_calls += 1;
            self.warmup_ok += u64::from(outcome.is_ok());
            return;
        }
        match outcome {
            Ok(verification) => {
                self.calls.record_ok(latency);
                let status = verification.map_or("(none)", |v| status_name(v.status));
                *self.statuses.entry(status).or_default() += 1;
            }
            Err(status) => self.calls.record_error(latency, &status),
        }
    }
}

/// One worker of `create_verification` or `get_verification`: one account, one call at a
/// time over its connection.
pub struct VerificationWorker {
    client: VerificationServiceClient<Channel>,
    customer: Customer,
    timeout: Duration,
    call: WorkerCall,
}

enum WorkerCall {
    Create { service: String, country: String },
    Get { names: Vec<String>, next: usize },
}

impl VerificationWorker {
    async fn call(&mut self) -> Result<Option<pb::Verification>, Status> {
        match &mut self.call {
            WorkerCall::Create { service, country } => {
                let request = self.customer.request(pb::CreateVerificationRequest {
                    service: service.clone(),
                    country: country.clone(),
                    max_price: None,
                    request_id: Uuid::new_v4().to_string(),
                });
                self.client
                    .create_verification(request)
                    .await
                    .map(|r| r.into_inner().verification)
            }
            WorkerCall::Get { names, next } => {
                let name = names[*next % names.len()].clone();
                *next += 1;
                let request = self.customer.request(pb::GetVerificationRequest { name });
                self.client
                    .get_verification(request)
                    .await
                    .map(|r| r.into_inner().verification)
            }
        }
    }
}

impl Worker for VerificationWorker {
    type Stats = VerificationStats;

    async fn turn(&mut self, stats: &mut VerificationStats, measured: bool) {
        let started = Instant::now();
        let timeout = self.timeout;
        let outcome = tokio::time::timeout(timeout, self.call())
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded(timeout)));
        stats.record(started.elapsed(), outcome, measured);
    }
}

/// A finished `create_verification` or `get_verification` run.
#[derive(Debug)]
pub struct CallsRun {
    pub scenario: Scenario,
    pub options: VerificationOptions,
    pub accounts: usize,
    /// Verifications bought in the set-up (`get_verification`).
    pub prepared: usize,
    pub stats: VerificationStats,
    pub total: Duration,
    pub end_reason: EndReason,
    /// CPU time per call from the end of the set-up to the end of the run (warm-up
    /// included), with `--server-pid`.
    pub cpu: Option<CpuPerCall>,
}

/// Sets up the accounts (and, for `get_verification`, the verifications), then runs one
/// worker per call in flight as `plan` says, worker `i` on account `i % accounts` and
/// connection `i % connections`.
pub async fn run_calls(
    scenario: Scenario,
    options: &VerificationOptions,
    plan: &LoadPlan,
    channels: &[Channel],
    interrupt: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<CallsRun> {
    options.check()?;
    runner::check_plan(plan)?;
    ensure!(!channels.is_empty(), "no connections to run on");
    ensure!(
        matches!(
            scenario,
            Scenario::CreateVerification | Scenario::GetVerification
        ),
        "{} is not a call scenario",
        scenario.name()
    );
    let accounts = options.accounts_for(scenario, plan.concurrency);
    let customers = set_up_customers(&channels[0], options, accounts, plan.timeout).await?;
    let mut names: Vec<Vec<String>> = vec![Vec::new(); accounts];
    let mut prepared = 0;
    if scenario == Scenario::GetVerification {
        let bought = buy_many(
            &channels[0],
            &customers,
            options,
            options.verifications.max(accounts),
            plan.timeout,
        )
        .await?;
        prepared = bought.len();
        for b in bought {
            names[b.owner].push(b.name);
        }
    }
    let workers = (0..plan.concurrency)
        .map(|index| {
            let owner = index % accounts;
            VerificationWorker {
                client: VerificationServiceClient::new(channels[index % channels.len()].clone()),
                customer: customers[owner].clone(),
                timeout: plan.timeout,
                call: match scenario {
                    Scenario::GetVerification => WorkerCall::Get {
                        names: names[owner].clone(),
                        // Workers sharing an account start at different verifications.
                        next: index / accounts,
                    },
                    _ => WorkerCall::Create {
                        service: options.service.clone(),
                        country: options.country.clone(),
                    },
                },
            }
        })
        .collect();
    let cpu_before = options.server_pid.map(sample_cpu).transpose()?;
    let RunOutcome {
        stats,
        total,
        end_reason,
    } = runner::run_workers(plan, workers, interrupt).await?;
    let cpu = match (cpu_before, options.server_pid) {
        (Some(before), Some(pid)) => CpuPerCall::between(
            before,
            sample_cpu(pid)?,
            stats.calls.count() + stats.warmup_calls,
        ),
        _ => None,
    };
    Ok(CallsRun {
        scenario,
        options: options.clone(),
        accounts,
        prepared,
        stats,
        total,
        end_reason,
        cpu,
    })
}

impl CallsRun {
    pub fn summary(&self) -> Summary {
        Summary::compute(&self.stats.calls, self.total, self.end_reason)
    }

    pub fn render_text(&self, run: &RunDescription) -> String {
        let mut out = render_text(run, &self.summary());
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out)?;
        writeln!(out, "Verifications:")?;
        writeln!(
            out,
            "  Accounts:\t{} (worker i uses account i mod {}), each topped up with {} x {} cents",
            self.accounts, self.accounts, self.options.top_ups, self.options.top_up
        )?;
        if self.scenario == Scenario::GetVerification {
            writeln!(
                out,
                "  Read:\t\t{} {} numbers in {} bought in the set-up, each worker reading its account's in turn",
                self.prepared, self.options.service, self.options.country
            )?;
        } else {
            writeln!(
                out,
                "  Bought:\t{} {} in {}",
                self.stats.calls.ok_count(),
                self.options.service,
                self.options.country
            )?;
        }
        let statuses: Vec<String> = self
            .stats
            .statuses
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        writeln!(
            out,
            "  Answered:\t{}",
            if statuses.is_empty() {
                "(nothing)".to_owned()
            } else {
                statuses.join(", ")
            }
        )?;
        if self.stats.warmup_calls > 0 {
            writeln!(
                out,
                "  Warm-up:\t{} calls ({} OK), not measured",
                self.stats.warmup_calls, self.stats.warmup_ok
            )?;
        }
        if let Some(cpu) = &self.cpu {
            writeln!(out)?;
            writeln!(
                out,
                "CPU per call (core-ms, over {} calls, warm-up included):",
                cpu.calls
            )?;
            writeln!(
                out,
                "  server {:.3}  PostgreSQL {:.3}  rest (driver, other work) {:.3}  machine busy {:.3}",
                cpu.server_ms, cpu.postgres_ms, cpu.rest_ms, cpu.machine_ms
            )?;
        }
        Ok(())
    }

    /// ghz's report, plus `verifications`.
    pub fn json(&self, run: &RunDescription, date: String) -> anyhow::Result<serde_json::Value> {
        let report = GhzReport::new(run, &self.summary(), date);
        let mut json = serde_json::to_value(&report)?;
        let object = json
            .as_object_mut()
            .context("a ghz report is a JSON object")?;
        object.insert(
            "verifications".to_owned(),
            serde_json::json!({
                "accounts": self.accounts,
                "topUp": self.options.top_up,
                "topUps": self.options.top_ups,
                "service": self.options.service,
                "country": self.options.country,
                "prepared": self.prepared,
                "statuses": self.stats.statuses,
                "warmupCalls": self.stats.warmup_calls,
                "warmupOk": self.stats.warmup_ok,
            }),
        );
        object.insert("cpu".to_owned(), serde_json::to_value(self.cpu)?);
        Ok(json)
    }
}

/// The server's memory, from `/proc/<pid>/status`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss_kib: u64,
    /// The most ever resident (`VmHWM`).
    pub peak_kib: u64,
}

/// Reads `VmRSS` and `VmHWM` of process `pid`.
pub fn read_memory(pid: u32) -> anyhow::Result<Memory> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_memory(&status).with_context(|| format!("no VmRSS/VmHWM in {path}"))
}

/// `VmRSS` and `VmHWM` of a `/proc/<pid>/status` text.
pub fn parse_memory(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
    };
    Some(Memory {
        rss_kib: field("VmRSS")?,
        peak_kib: field("VmHWM")?,
    })
}

/// Clock ticks per second in `/proc` (`USER_HZ`, fixed at 100 in Linux's user ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time used so far, in clock ticks: by the server, by PostgreSQL (every live
/// `postgres` process, plus the postmaster's reaped children), and by the whole machine
/// (busy time over all cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    pub server: u64,
    pub postgres: u64,
    pub machine: u64,
}

/// The command name and the fields after it of a `/proc/<pid>/stat` text.
fn stat_fields(text: &str) -> Option<(&str, Vec<&str>)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?;
    let rest = text.get(close + 1..)?;
    Some((comm, rest.split_whitespace().collect()))
}

/// `utime + stime` (and, with `children`, `cutime + cstime`) from the fields after the
/// command name (state is field 0 there, utime field 11).
fn ticks(fields: &[&str], children: bool) -> Option<u64> {
    let at = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let own = at(11)? + at(12)?;
    Some(if children {
        own + at(13)? + at(14)?
    } else {
        own
    })
}

/// Busy clock ticks of all cores from `/proc/stat`'s first line: user to steal, less idle
/// and iowait (guest time is already in user).
fn machine_busy(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().next()?.strip_prefix("cpu ")?;
    let values: Vec<u64> = line
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let total: u64 = values.iter().take(8).sum();
    Some(total - values.get(3)? - values.get(4)?)
}

/// Samples the CPU time of `server_pid`, of PostgreSQL and of the machine.
pub fn sample_cpu(server_pid: u32) -> anyhow::Result<CpuSample> {
    let path = format!("/proc/{server_pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let server = stat_fields(&text)
        .and_then(|(_, f)| ticks(&f, false))
        .with_context(|| format!("unreadable {path}"))?;
    let mut postgres = 0;
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // Processes come and go: one that vanished meanwhile is skipped.
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some((comm, fields)) = stat_fields(&text)
            && comm == "postgres"
        {
            // The postmaster (parent pid 1) also counts its finished backends.
            let postmaster = fields.get(1) == Some(&"1");
            postgres += ticks(&fields, postmaster).unwrap_or(0);
        }
    }
    let machine =
        machine_busy(&std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?)
            .context("unreadable /proc/stat")?;
    Ok(CpuSample {
        server,
        postgres,
        machine,
    })
}

/// CPU time spent per call between two samples, in core-milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuPerCall {
    /// Calls the time is divided by (warm-up included).
    pub calls: u64,
    pub server_ms: f64,
    pub postgres_ms: f64,
    /// The machine's busy time not spent by the server or PostgreSQL: the driver, and
    /// whatever else runs on the machine.
    pub rest_ms: f64,
    pub machine_ms: f64,
}

impl CpuPerCall {
    pub fn between(before: CpuSample, after: CpuSample, calls: u64) -> Option<Self> {
        if calls == 0 {
            return None;
        }
        let per =
            |a: u64, b: u64| b.saturating_sub(a) as f64 * 1000.0 / TICKS_PER_SECOND / calls as f64;
        let server_ms = per(before.server, after.server);
        let postgres_ms = per(before.postgres, after.postgres);
        let machine_ms = per(before.machine, after.machine);
        Some(Self {
            calls,
            server_ms,
            postgres_ms,
            rest_ms: (machine_ms - server_ms - postgres_ms).max(0.0),
            machine_ms,
        })
    }
}

/// The memory readings of a `watch_streams` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryReadings {
    pub pid: u32,
    /// After the set-up, before the first stream.
    pub before: Memory,
    /// Once the first half of the streams were open (`half_open` of them).
    pub halfway: Memory,
    pub half_open: usize,
    /// Right after the last stream got its snapshot.
    pub open: Memory,
    /// At the end of the hold, streams still open.
    pub held: Memory,
    /// A moment after the driver dropped every stream.
    pub closed: Memory,
}

impl MemoryReadings {
    /// KiB per open stream: the growth of the resident set from before the streams to the
    /// end of the hold, divided by the streams open.
    pub fn kib_per_stream(&self, streams: usize) -> Option<f64> {
        (streams > 0)
            .then(|| (self.held.rss_kib as f64 - self.before.rss_kib as f64) / streams as f64)
    }

    /// KiB per stream of the second half only: the growth from half-way to all open,
    /// divided by the streams opened in between.
    pub fn marginal_kib_per_stream(&self, streams: usize) -> Option<f64> {
        let added = streams.checked_sub(self.half_open).filter(|n| *n > 0)?;
        Some((self.open.rss_kib as f64 - self.halfway.rss_kib as f64) / added as f64)
    }
}

/// Whether the watchers of cancelled verifications heard it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveCheck {
    /// Verifications cancelled.
    pub cancelled: usize,
    /// Open streams watching them.
    pub watchers: usize,
    /// Of those, how many received `CANCELLED` next.
    pub received: usize,
    /// How many received something else first (counted by event type).
    pub other: BTreeMap<String, usize>,
    /// How many heard nothing within the timeout, or failed.
    pub missing: usize,
}

impl LiveCheck {
    pub fn ok(&self) -> bool {
        self.received == self.watchers && self.watchers > 0
    }
}

/// A finished `watch_streams` run.
#[derive(Debug)]
pub struct WatchRun {
    pub options: VerificationOptions,
    pub accounts: usize,
    pub verifications: usize,
    pub connections: usize,
    /// Opening every stream, from the call to its snapshot.
    pub opens: CallStats,
    /// Wall time from the first open to the last snapshot.
    pub opening: Duration,
    pub open_streams: usize,
    pub hold: Duration,
    pub end_reason: EndReason,
    pub memory: Option<MemoryReadings>,
    pub live: LiveCheck,
}

type Watcher = (usize, Streaming<pb::WatchVerificationResponse>);

/// Opens streams `range` (stream `j` watches verification `j mod bought` over connection
/// `j mod connections`), `plan.concurrency` at once, recording each open into `opens` and
/// keeping the open ones in `watchers`.
async fn open_watches(
    range: std::ops::Range<usize>,
    bought: &[Bought],
    customers: &[Customer],
    channels: &[Channel],
    plan: &LoadPlan,
    opens: &mut CallStats,
    watchers: &mut Vec<Watcher>,
) {
    let results: Vec<(usize, Duration, Result<Streaming<_>, Status>)> =
        futures::stream::iter(range)
            .map(|j| {
                let index = j % bought.len();
                let target = &bought[index];
                let channel = channels[j % channels.len()].clone();
                let customer = customers[target.owner].clone();
                let name = target.name.clone();
                let timeout = plan.timeout;
                async move {
                    let opened = Instant::now();
                    let outcome = open_watch(channel, customer, name, timeout).await;
                    (index, opened.elapsed(), outcome)
                }
            })
            .buffer_unordered(plan.concurrency)
            .collect()
            .await;
    for (index, latency, outcome) in results {
        match outcome {
            Ok(stream) => {
                opens.record_ok(latency);
                watchers.push((index, stream));
            }
            Err(status) => opens.record_error(latency, &status),
        }
    }
}

/// Opens one watch stream and waits for its snapshot.
async fn open_watch(
    channel: Channel,
    customer: Customer,
    name: String,
    timeout: Duration,
) -> Result<Streaming<pb::WatchVerificationResponse>, Status> {
    let attempt = async {
        let request = customer.request(pb::WatchVerificationRequest {
            name: name.clone(),
            after_sequence: 0,
        });
        let mut stream = VerificationServiceClient::new(channel)
            .watch_verification(request)
            .await?
            .into_inner();
        let first = stream
            .message()
            .await?
            .and_then(|m| m.event)
            .ok_or_else(|| Status::internal("the stream ended before its snapshot"))?;
        let kind = event_name(first.r#type);
        if kind != "SNAPSHOT" {
            return Err(Status::internal(format!(
                "the first event was {kind}, not SNAPSHOT"
            )));
        }
        if first.verification.as_ref().map(|v| v.name.as_str()) != Some(name.as_str()) {
            return Err(Status::internal("the snapshot is of another verification"));
        }
        Ok(stream)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(deadline_exceeded(timeout)))
}

fn memory_of(pid: Option<u32>) -> anyhow::Result<Option<Memory>> {
    pid.map(read_memory).transpose()
}

/// `watch_streams`: sets up `--accounts` accounts and `--verifications` verifications,
/// opens `--streams` watch streams over the connections (stream `j` watches verification
/// `j mod verifications` over connection `j mod connections`, `plan.concurrency` opening at
/// once), holds them open for the plan's duration, reading the server's memory before, at
/// once and at the end; then cancels `--cancel` verifications and checks that every stream
/// watching them receives `CANCELLED`. Ctrl-C cuts the hold short.
pub async fn run_watch(
    options: &VerificationOptions,
    plan: &LoadPlan,
    channels: &[Channel],
    interrupt: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<WatchRun> {
    options.check()?;
    runner::check_plan(plan)?;
    ensure!(!channels.is_empty(), "no connections to run on");
    let hold = match plan.bound {
        Bound::Duration(duration) => duration,
        Bound::Total(_) => bail!(
            "watch_streams holds its streams open for --duration; give --streams for their number, not --total"
        ),
    };
    let accounts = options.accounts_for(Scenario::WatchStreams, plan.concurrency);
    let customers = set_up_customers(&channels[0], options, accounts, plan.timeout).await?;
    let bought = buy_many(
        &channels[0],
        &customers,
        options,
        options.verifications,
        plan.timeout,
    )
    .await?;

    // Let the set-up's work (mail, key usage, caches) settle before the baseline.
    tokio::time::sleep(SETTLE).await;
    let before = memory_of(options.server_pid)?;

    // Open the streams in two halves, reading the memory in between: the second half's
    // growth is the marginal cost of a stream, once the first half's opening burst has
    // grown the allocator's pools.
    let half = options.streams / 2;
    let started = Instant::now();
    let mut opens = CallStats::new();
    let mut watchers: Vec<Watcher> = Vec::with_capacity(options.streams);
    open_watches(
        0..half,
        &bought,
        &customers,
        channels,
        plan,
        &mut opens,
        &mut watchers,
    )
    .await;
    let half_open = watchers.len();
    let halfway = memory_of(options.server_pid)?;
    open_watches(
        half..options.streams,
        &bought,
        &customers,
        channels,
        plan,
        &mut opens,
        &mut watchers,
    )
    .await;
    let opening = started.elapsed();
    let open_streams = watchers.len();
    eprintln!(
        "namaskah-load: {open_streams} of {} streams open over {} connections in {}; holding them for {}",
        options.streams,
        channels.len(),
        format_latency(opening),
        format_duration_short(hold)
    );
    let open = memory_of(options.server_pid)?;

    let end_reason = tokio::select! {
        () = tokio::time::sleep(hold) => EndReason::Timeout,
        () = interrupt => EndReason::Cancel,
    };
    let held = memory_of(options.server_pid)?;

    // Cancel a few verifications; every stream watching one must hear CANCELLED.
    let cancelled: HashSet<usize> = (0..options.cancel.min(bought.len())).collect();
    for &index in &cancelled {
        let target = &bought[index];
        let request = customers[target.owner].request(pb::CancelVerificationRequest {
            name: target.name.clone(),
        });
        let mut client = VerificationServiceClient::new(channels[0].clone());
        tokio::time::timeout(plan.timeout, client.cancel_verification(request))
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded(plan.timeout)))
            .map_err(|status| anyhow::anyhow!("CancelVerification: {}", error_key(&status)))?;
    }
    let heard: Vec<Result<String, Status>> = futures::future::join_all(
        watchers
            .iter_mut()
            .filter(|(index, _)| cancelled.contains(index))
            .map(|(_, stream)| async {
                let next = tokio::time::timeout(plan.timeout, stream.message())
                    .await
                    .unwrap_or_else(|_| Err(deadline_exceeded(plan.timeout)))?;
                Ok(next
                    .and_then(|m| m.event)
                    .map_or("(end of stream)", |e| event_name(e.r#type))
                    .to_owned())
            }),
    )
    .await;
    let mut live = LiveCheck {
        cancelled: cancelled.len(),
        watchers: heard.len(),
        ..LiveCheck::default()
    };
    for outcome in heard {
        match outcome {
            Ok(kind) if kind == "CANCELLED" => live.received += 1,
            Ok(kind) => *live.other.entry(kind).or_default() += 1,
            Err(_) => live.missing += 1,
        }
    }

    drop(watchers);
    tokio::time::sleep(SETTLE).await;
    let closed = memory_of(options.server_pid)?;
    let memory = match (options.server_pid, before, halfway, open, held, closed) {
        (Some(pid), Some(before), Some(halfway), Some(open), Some(held), Some(closed)) => {
            Some(MemoryReadings {
                pid,
                before,
                halfway,
                half_open,
                open,
                held,
                closed,
            })
        }
        _ => None,
    };
    Ok(WatchRun {
        options: options.clone(),
        accounts,
        verifications: bought.len(),
        connections: channels.len(),
        opens,
        opening,
        open_streams,
        hold,
        end_reason,
        memory,
        live,
    })
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB ({kib} KiB)", kib as f64 / 1024.0)
}

impl WatchRun {
    /// The opens as ghz would sum them up (`Requests/sec`: streams opened per second).
    pub fn summary(&self) -> Summary {
        Summary::compute(&self.opens, self.opening, self.end_reason)
    }

    pub fn kib_per_stream(&self) -> Option<f64> {
        self.memory
            .as_ref()
            .and_then(|m| m.kib_per_stream(self.open_streams))
    }

    pub fn marginal_kib_per_stream(&self) -> Option<f64> {
        self.memory
            .as_ref()
            .and_then(|m| m.marginal_kib_per_stream(self.open_streams))
    }

    /// Every stream opened, and every watcher of a cancelled verification heard it.
    pub fn ok(&self) -> bool {
        self.open_streams == self.options.streams && self.live.ok()
    }

    pub fn render_text(&self, run: &RunDescription) -> String {
        let mut out = render_text(run, &self.summary());
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out)?;
        writeln!(out, "Streams:")?;
        writeln!(
            out,
            "  Open:\t\t{} of {} over {} connections, each with its SNAPSHOT, opened in {} ({} failed)",
            self.open_streams,
            self.options.streams,
            self.connections,
            format_latency(self.opening),
            self.options.streams - self.open_streams
        )?;
        writeln!(
            out,
            "  Watching:\t{} ACTIVE {} numbers in {} of {} accounts",
            self.verifications, self.options.service, self.options.country, self.accounts
        )?;
        writeln!(
            out,
            "  Held:\t\t{}{}",
            format_duration_short(self.hold),
            if self.end_reason == EndReason::Cancel {
                " (cut short by Ctrl-C)"
            } else {
                ""
            }
        )?;
        writeln!(out)?;
        match &self.memory {
            Some(m) => {
                writeln!(out, "Server memory (pid {}, VmRSS):", m.pid)?;
                writeln!(out, "  Before:\t{}", mib(m.before.rss_kib))?;
                writeln!(
                    out,
                    "  Half open:\t{} ({} streams)",
                    mib(m.halfway.rss_kib),
                    m.half_open
                )?;
                writeln!(out, "  All open:\t{}", mib(m.open.rss_kib))?;
                writeln!(
                    out,
                    "  After hold:\t{} (peak VmHWM {})",
                    mib(m.held.rss_kib),
                    mib(m.held.peak_kib)
                )?;
                if let Some(per) = self.kib_per_stream() {
                    writeln!(
                        out,
                        "  Per stream:\t{per:.2} KiB ((after hold - before) / {} open streams)",
                        self.open_streams
                    )?;
                }
                if let Some(per) = self.marginal_kib_per_stream() {
                    writeln!(
                        out,
                        "  Marginal:\t{per:.2} KiB per stream of the second half ((all open - half open) / {})",
                        self.open_streams - m.half_open
                    )?;
                }
                writeln!(
                    out,
                    "  Closed:\t{} ({}s after the driver dropped every stream)",
                    mib(m.closed.rss_kib),
                    SETTLE.as_secs()
                )?;
            }
            None => writeln!(
                out,
                "Server memory: not read (give --server-pid to read /proc/<pid>/status)"
            )?,
        }
        writeln!(out)?;
        writeln!(out, "Live events:")?;
        let other: Vec<String> = self
            .live
            .other
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(
            out,
            "  Cancelled {} verifications: {} of {} watchers received CANCELLED (missing {}, other first: {})",
            self.live.cancelled,
            self.live.received,
            self.live.watchers,
            self.live.missing,
            if other.is_empty() {
                "none".to_owned()
            } else {
                other.join(", ")
            }
        )?;
        Ok(())
    }

    /// ghz's report of the opens, plus `streams`, `memory` and `live`.
    pub fn json(&self, run: &RunDescription, date: String) -> anyhow::Result<serde_json::Value> {
        let mut report = GhzReport::new(run, &self.summary(), date);
        if let Some(per) = self.kib_per_stream() {
            report
                .tags
                .insert("kibPerStream".to_owned(), format!("{per:.2}"));
        }
        let mut json = serde_json::to_value(&report)?;
        let object = json
            .as_object_mut()
            .context("a ghz report is a JSON object")?;
        object.insert(
            "streams".to_owned(),
            serde_json::json!({
                "requested": self.options.streams,
                "open": self.open_streams,
                "connections": self.connections,
                "accounts": self.accounts,
                "verifications": self.verifications,
                "openingNanos": u64::try_from(self.opening.as_nanos()).unwrap_or(u64::MAX),
                "holdNanos": u64::try_from(self.hold.as_nanos()).unwrap_or(u64::MAX),
            }),
        );
        object.insert(
            "memory".to_owned(),
            match &self.memory {
                Some(m) => {
                    let mut value = serde_json::to_value(m)?;
                    if let Some(o) = value.as_object_mut() {
                        o.insert(
                            "kibPerStream".to_owned(),
                            serde_json::to_value(self.kib_per_stream())?,
                        );
                        o.insert(
                            "marginalKibPerStream".to_owned(),
                            serde_json::to_value(self.marginal_kib_per_stream())?,
                        );
                    }
                    value
                }
                None => serde_json::Value::Null,
            },
        );
        let mut live = serde_json::to_value(&self.live)?;
        if let Some(o) = live.as_object_mut() {
            o.insert("ok".to_owned(), self.live.ok().into());
        }
        object.insert("live".to_owned(), live);
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_mailed_links() {
        assert_eq!(
            token_in("Open http://localhost:8080/verify-email?token=abc-DEF_123 to verify.")
                .as_deref(),
            Some("abc-DEF_123")
        );
        assert_eq!(token_in("no link here"), None);
        assert_eq!(token_in("token= nothing"), None);
    }

    #[test]
    fn mail_sink_lines_are_matched_by_recipient() {
        let dir = tempfile::tempdir().unwrap();
        let sink = dir.path().join("mail.jsonl");
        std::fs::write(
            &sink,
            "{\"to\":\"a@example.com\",\"subject\":\"s\",\"text\":\"x?token=AAA\"}\n\
             not json\n\
             {\"to\":\"b@example.com\",\"subject\":\"s\",\"text\":\"x?token=BBB\"}\n",
        )
        .unwrap();
        assert_eq!(mailed_token(&sink, "b@example.com").as_deref(), Some("BBB"));
        assert_eq!(mailed_token(&sink, "c@example.com"), None);
    }

    #[test]
    fn memory_is_read_from_proc_status() {
        let status = "Name:\tnamaskah-server\nVmPeak:\t  900000 kB\nVmHWM:\t   52000 kB\nVmRSS:\t   40960 kB\nThreads:\t3\n";
        assert_eq!(
            parse_memory(status),
            Some(Memory {
                rss_kib: 40960,
                peak_kib: 52000
            })
        );
        assert_eq!(parse_memory("Name:\tx\n"), None);
        // This process has a status file.
        let own = read_memory(std::process::id()).unwrap();
        assert!(own.rss_kib > 0 && own.peak_kib >= own.rss_kib);
    }

    #[test]
    fn kib_per_stream_is_the_growth_over_the_streams() {
        let at = |rss_kib| Memory {
            rss_kib,
            peak_kib: rss_kib,
        };
        let readings = MemoryReadings {
            pid: 1,
            before: at(40_000),
            halfway: at(70_000),
            half_open: 5_000,
            open: at(90_000),
            held: at(100_000),
            closed: at(50_000),
        };
        assert_eq!(readings.kib_per_stream(10_000), Some(6.0));
        assert_eq!(readings.kib_per_stream(0), None);
        assert_eq!(readings.marginal_kib_per_stream(10_000), Some(4.0));
        assert_eq!(readings.marginal_kib_per_stream(5_000), None);
    }

    #[test]
    fn cpu_time_is_read_from_proc() {
        let stat = "2145 (postgres) S 1 2145 2145 0 -1 4194560 1 2 0 0 70 30 500 250 20 0 1 0";
        let (comm, fields) = stat_fields(stat).unwrap();
        assert_eq!(comm, "postgres");
        assert_eq!(fields[1], "1");
        assert_eq!(ticks(&fields, false), Some(100));
        assert_eq!(ticks(&fields, true), Some(850));
        // Names may hold spaces and parentheses.
        let (comm, fields) = stat_fields("7 (a (b) c) R 2 7 7 0 -1 0 0 0 0 0 5 6 0 0").unwrap();
        assert_eq!(comm, "a (b) c");
        assert_eq!(ticks(&fields, false), Some(11));
        assert_eq!(
            machine_busy("cpu  100 5 50 1000 20 3 2 0 7 0\ncpu0 1 1 1 1 1 1 1 1 1 1\n"),
            Some(160)
        );
        let own = sample_cpu(std::process::id()).unwrap();
        assert!(own.machine > 0);

        let at = |server, postgres, machine| CpuSample {
            server,
            postgres,
            machine,
        };
        let per = CpuPerCall::between(at(0, 0, 0), at(100, 50, 200), 1000).unwrap();
        assert_eq!(per.server_ms, 1.0);
        assert_eq!(per.postgres_ms, 0.5);
        assert_eq!(per.machine_ms, 2.0);
        assert_eq!(per.rest_ms, 0.5);
        assert!(CpuPerCall::between(at(0, 0, 0), at(1, 1, 1), 0).is_none());
    }

    #[test]
    fn names_lose_their_prefixes() {
        assert_eq!(status_name(pb::VerificationStatus::Active as i32), "ACTIVE");
        assert_eq!(
            event_name(pb::VerificationEventType::Cancelled as i32),
            "CANCELLED"
        );
        assert_eq!(status_name(999), "UNKNOWN");
    }

    #[test]
    fn options_are_checked() {
        let good = VerificationOptions {
            mail_sink: "mail.jsonl".into(),
            ..VerificationOptions::default()
        };
        assert!(good.check().is_ok());
        assert!(VerificationOptions::default().check().is_err());
        for bad in [
            VerificationOptions {
                accounts: Some(0),
                ..good.clone()
            },
            VerificationOptions {
                top_up: 0,
                ..good.clone()
            },
            VerificationOptions {
                streams: 0,
                ..good.clone()
            },
            VerificationOptions {
                verifications: 2,
                cancel: 3,
                ..good.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert_eq!(good.accounts_for(Scenario::CreateVerification, 50), 50);
        assert_eq!(
            good.accounts_for(Scenario::WatchStreams, 50),
            DEFAULT_WATCH_ACCOUNTS
        );
        let some = VerificationOptions {
            accounts: Some(7),
            ..good
        };
        assert_eq!(some.accounts_for(Scenario::GetVerification, 50), 7);
    }
}
