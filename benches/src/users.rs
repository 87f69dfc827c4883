//! The `users` scenario: many concurrent customers, each a loop of what a person does with
//! the product, with think times between the steps (issue 7's 1,000-user load test).
//!
//! Each worker is one user with its own account, set up through the API first (register,
//! the emailed link, log in, one sandbox top-up). One turn is one *visit*:
//!
//! 1. log in again now and then (`--relogin`), otherwise reuse the session's access token;
//! 2. the dashboard: `GetMe` and `GetBalance`;
//! 3. browse: `ListServices`, `ListCountries` for a service picked from it, `GetPrice`;
//! 4. top up (`CreateTopUp`, then the sandbox gateway's `CompletePayment`) when the wallet
//!    cannot pay twice the price, and otherwise now and then (`--top-up-chance`);
//! 5. buy (`CreateVerification`, a fresh `request_id`);
//! 6. watch it (`WatchVerification`) until the code arrives, or, now and then
//!    (`--cancel-chance`), cancel it shortly after the number is shown
//!    (`CancelVerification`) and watch until the stream says `CANCELLED`.
//!
//! A pause of `--think-min` to `--think-max` comes before every step but the dashboard's
//! second call and the top-up's payment, and after the visit. Every call carries the
//! session's bearer token. Latencies are kept per RPC and overall; a watch counts as
//! one call from its start to its first message (the `SNAPSHOT`); the time from the
//! purchase to the code is reported apart. Users start at random moments within `--ramp`
//! so that they do not move in step.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use futures::StreamExt as _;
use namaskah_proto::v1 as pb;
use namaskah_proto::v1::auth_service_client::AuthServiceClient;
use namaskah_proto::v1::catalog_service_client::CatalogServiceClient;
use namaskah_proto::v1::sandbox_service_client::SandboxServiceClient;
use namaskah_proto::v1::verification_service_client::VerificationServiceClient;
use namaskah_proto::v1::wallet_service_client::WalletServiceClient;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use tonic::{Request, Status};
use uuid::Uuid;

use crate::duration::{format_duration_short, format_latency};
use crate::report::{EndReason, GhzReport, RunDescription, Summary, render_text};
use crate::runner::{self, Bound, LoadPlan, RunOutcome, Stats, Worker, deadline_exceeded};
use crate::scenario::{Account, unique_account, with_retries};
use crate::stats::{CallStats, code_name};
use crate::verifications::{event_name, status_name, token_in};

/// Accounts set up at once (each costs the server two Argon2id hashes).
const SETUP_PARALLEL: usize = 16;
/// At most this many users.
pub const MAX_USERS: usize = 10_000;
/// How long to wait for a verification mail to reach a sink.
const MAIL_WAIT: Duration = Duration::from_secs(30);
/// Services and countries a user picks from: the first ones listed (the catalog lists the
/// popular ones first), as people do.
const POPULAR: usize = 8;
/// The session is renewed after this long whatever `--relogin` says (access tokens live
/// 15 minutes).
const SESSION_LIFE: Duration = Duration::from_secs(12 * 60);

/// The options of the `users` scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct UserOptions {
    /// The servers' mail sinks (several instances each write their own).
    pub mail_sinks: Vec<PathBuf>,
    /// Cents per top-up (the set-up's first one and each later one).
    pub top_up: i64,
    pub think_min: Duration,
    pub think_max: Duration,
    /// Users start their first visit at a random moment within this.
    pub ramp: Duration,
    /// Chance per visit of logging in again instead of reusing the session.
    pub relogin: f64,
    /// Chance per visit of a top-up the wallet does not need yet.
    pub top_up_chance: f64,
    /// Chance per purchase of cancelling instead of waiting for the code.
    pub cancel_chance: f64,
    /// The longest a user waits for its code (or its cancellation) on the stream.
    pub code_wait: Duration,
    /// Processes on this machine whose CPU time and memory are reported, `name=pid`.
    pub processes: Vec<(String, u32)>,
}

impl Default for UserOptions {
    fn default() -> Self {
        Self {
            mail_sinks: Vec::new(),
            top_up: 2_000,
            think_min: Duration::from_secs(1),
            think_max: Duration::from_secs(3),
            ramp: Duration::from_secs(10),
            relogin: 0.05,
            top_up_chance: 0.1,
            cancel_chance: 0.2,
            code_wait: Duration::from_secs(30),
            processes: Vec::new(),
        }
    }
}

impl UserOptions {
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(
            !self.mail_sinks.is_empty(),
            "the users scenario needs --mail-sink (or NAMASKAH_MAIL_SINK): the servers' mail sink files, separated by ':'"
        );
        ensure!(self.top_up > 0, "--top-up must be above zero");
        ensure!(
            self.think_min <= self.think_max,
            "--think-min cannot exceed --think-max"
        );
        for (name, chance) in [
            ("--relogin", self.relogin),
            ("--top-up-chance", self.top_up_chance),
            ("--cancel-chance", self.cancel_chance),
        ] {
            ensure!((0.0..=1.0).contains(&chance), "{name} must be from 0 to 1");
        }
        ensure!(!self.code_wait.is_zero(), "--code-wait must be above zero");
        Ok(())
    }

    pub fn request_json(&self, users: usize) -> serde_json::Value {
        serde_json::json!({
            "users": users,
            "thinkMin": format_duration_short(self.think_min),
            "thinkMax": format_duration_short(self.think_max),
            "ramp": format_duration_short(self.ramp),
            "relogin": self.relogin,
            "topUpChance": self.top_up_chance,
            "topUp": self.top_up,
            "cancelChance": self.cancel_chance,
            "codeWait": format_duration_short(self.code_wait),
        })
    }
}

/// Parses `name=pid`.
pub fn parse_process(input: &str) -> Result<(String, u32), String> {
    let (name, pid) = input
        .split_once('=')
        .ok_or_else(|| format!("{input:?}: expected NAME=PID, like server-1=4242"))?;
    let pid: u32 = pid
        .parse()
        .map_err(|_| format!("{input:?}: the process id must be a number"))?;
    if name.is_empty() {
        return Err(format!("{input:?}: the name is empty"));
    }
    Ok((name.to_owned(), pid))
}

// ---------------------------------------------------------------------------------------
// The user's choices: plain functions of a random source, tested on their own.

/// A pause between `min` and `max`.
pub fn think(rng: &mut impl rand::Rng, min: Duration, max: Duration) -> Duration {
    if max <= min {
        return min;
    }
    rng.random_range(min..=max)
}

/// Whether the user logs in again at the start of a visit: when the session is old, and
/// otherwise with `chance`.
pub fn logs_in_again(rng: &mut impl rand::Rng, chance: f64, session_age: Duration) -> bool {
    session_age >= SESSION_LIFE || rng.random_bool(chance)
}

/// Whether the user tops up before buying at `price`: always when the spendable balance
/// cannot pay twice the price (one for this purchase, one held by a purchase that might
/// still be open), otherwise with `chance`.
pub fn tops_up(rng: &mut impl rand::Rng, chance: f64, spendable: i64, price: i64) -> bool {
    spendable < price.saturating_mul(2) || rng.random_bool(chance)
}

/// Whether the user cancels this purchase instead of waiting for its code.
pub fn cancels(rng: &mut impl rand::Rng, chance: f64) -> bool {
    rng.random_bool(chance)
}

/// One of the first [`POPULAR`] of `count` choices, or `None` when there are none.
pub fn pick_popular(rng: &mut impl rand::Rng, count: usize) -> Option<usize> {
    (count > 0).then(|| rng.random_range(0..count.min(POPULAR)))
}

// ---------------------------------------------------------------------------------------
// Set-up.

/// One user's account and session.
#[derive(Debug, Clone)]
pub struct User {
    pub account: Account,
    pub bearer: MetadataValue<Ascii>,
}

fn bearer_value(access_token: &str) -> anyhow::Result<MetadataValue<Ascii>> {
    format!("Bearer {access_token}")
        .parse()
        .context("the access token from Login is not valid metadata")
}

fn with_bearer<T>(message: T, bearer: &MetadataValue<Ascii>) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    request
}

/// The token of the first mail to `email` in any of the sinks, if it has arrived.
fn mailed_token(sinks: &[PathBuf], email: &str) -> Option<String> {
    sinks.iter().find_map(|sink| token_in_sink(sink, email))
}

fn token_in_sink(sink: &Path, email: &str) -> Option<String> {
    let text = std::fs::read_to_string(sink).ok()?;
    text.lines()
        .filter(|line| line.contains(email))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|mail| mail["to"].as_str().is_some_and(|to| to.contains(email)))
        .find_map(|mail| mail["text"].as_str().and_then(token_in))
}

async fn wait_for_token(sinks: &[PathBuf], email: &str) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        if let Some(token) = mailed_token(sinks, email) {
            return Ok(token);
        }
        if started.elapsed() > MAIL_WAIT {
            bail!(
                "no verification mail to {email} in {sinks:?} after {}s: are they the servers' NAMASKAH_MAIL_SINK files?",
                MAIL_WAIT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn log_in(channel: &Channel, account: &Account) -> Result<MetadataValue<Ascii>, Status> {
    let response = AuthServiceClient::new(channel.clone())
        .login(pb::LoginRequest {
            email: account.email.clone(),
            password: account.password.clone(),
            totp_code: String::new(),
        })
        .await?
        .into_inner();
    let token = response
        .tokens
        .map(|t| t.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Status::internal("Login answered without an access token"))?;
    bearer_value(&token).map_err(|e| Status::internal(e.to_string()))
}

async fn top_up(
    channel: &Channel,
    bearer: &MetadataValue<Ascii>,
    cents: i64,
    request_id: String,
) -> Result<String, Status> {
    let top_up = WalletServiceClient::new(channel.clone())
        .create_top_up(with_bearer(
            pb::CreateTopUpRequest {
                amount: Some(pb::Money {
                    currency_code: "USD".to_owned(),
                    minor_units: cents,
                }),
                request_id,
                callback_url: String::new(),
            },
            bearer,
        ))
        .await?
        .into_inner()
        .top_up
        .ok_or_else(|| Status::internal("CreateTopUp answered without a top-up"))?;
    Ok(top_up.reference)
}

async fn complete_payment(
    channel: &Channel,
    bearer: &MetadataValue<Ascii>,
    reference: String,
) -> Result<(), Status> {
    SandboxServiceClient::new(channel.clone())
        .complete_payment(with_bearer(
            pb::CompletePaymentRequest {
                reference,
                outcome: 0,
                paid_amount: None,
            },
            bearer,
        ))
        .await
        .map(drop)
}

/// Sets up one user: register, verify the email, log in, one sandbox top-up.
async fn set_up_user(
    channel: &Channel,
    options: &UserOptions,
    timeout: Duration,
) -> anyhow::Result<User> {
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
    let token = wait_for_token(&options.mail_sinks, &account.email).await?;
    with_retries("VerifyEmail", timeout, || {
        let request = Request::new(pb::VerifyEmailRequest {
            token: token.clone(),
        });
        let mut client = AuthServiceClient::new(channel.clone());
        async move { client.verify_email(request).await }
    })
    .await?;
    let bearer = with_retries("Login", timeout, || log_in(channel, &account)).await?;
    let request_id = Uuid::new_v4().to_string();
    let reference = with_retries("CreateTopUp", timeout, || {
        top_up(channel, &bearer, options.top_up, request_id.clone())
    })
    .await?;
    with_retries("SandboxService.CompletePayment", timeout, || {
        complete_payment(channel, &bearer, reference.clone())
    })
    .await?;
    Ok(User { account, bearer })
}

/// Sets up `count` users, a few at a time, spread over `channels`.
pub async fn set_up_users(
    channels: &[Channel],
    options: &UserOptions,
    count: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<User>> {
    let started = Instant::now();
    let users: Vec<User> = futures::stream::iter(0..count)
        .map(|n| set_up_user(&channels[n % channels.len()], options, timeout))
        .buffer_unordered(SETUP_PARALLEL)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    eprintln!(
        "namaskah-load: set up {count} verified, logged-in users, each topped up with {} cents, in {}",
        options.top_up,
        format_latency(started.elapsed())
    );
    Ok(users)
}

// ---------------------------------------------------------------------------------------
// What is measured.

/// The RPCs of a visit, in the order they happen (the report's order).
pub const RPCS: [&str; 11] = [
    "Login",
    "GetMe",
    "GetBalance",
    "ListServices",
    "ListCountries",
    "GetPrice",
    "CreateTopUp",
    "CompletePayment",
    "CreateVerification",
    "WatchVerification",
    "CancelVerification",
];

/// A user's figures, merged over all users at the end.
#[derive(Debug, Clone, Default)]
pub struct UserStats {
    /// Per RPC (a watch: from the call to its first message).
    pub rpcs: BTreeMap<&'static str, CallStats>,
    /// From the purchase's answer to the stream's `COMPLETED`.
    pub code_wait: CallStats,
    /// Visits finished (measured), and those cut short by an error.
    pub visits: u64,
    pub visits_cut_short: u64,
    /// How the watched verifications ended (`COMPLETED`, `CANCELLED`, or what went wrong).
    pub ends: BTreeMap<String, u64>,
    pub warmup_visits: u64,
}

impl Stats for UserStats {
    fn merge(&mut self, other: &Self) {
        for (rpc, stats) in &other.rpcs {
            self.rpcs.entry(rpc).or_default().merge(stats);
        }
        self.code_wait.merge(&other.code_wait);
        self.visits += other.visits;
        self.visits_cut_short += other.visits_cut_short;
        for (end, n) in &other.ends {
            *self.ends.entry(end.clone()).or_default() += n;
        }
        self.warmup_visits += other.warmup_visits;
    }
}

impl UserStats {
    /// Every call of every RPC together.
    pub fn overall(&self) -> CallStats {
        let mut all = CallStats::new();
        for stats in self.rpcs.values() {
            all.merge(stats);
        }
        all
    }
}

/// Where a visit's calls are recorded: nowhere during the warm-up.
struct Recorder<'a> {
    stats: &'a mut UserStats,
    measured: bool,
}

impl Recorder<'_> {
    fn call(&mut self, rpc: &'static str, latency: Duration, outcome: &Result<(), Status>) {
        if self.measured {
            self.stats
                .rpcs
                .entry(rpc)
                .or_default()
                .record(latency, outcome);
        }
    }

    fn end(&mut self, how: String) {
        if self.measured {
            *self.stats.ends.entry(how).or_default() += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------
// The user.

/// One user: its session, its connection, its own random source.
pub struct UserWorker {
    user: User,
    session_started: Instant,
    channel: Channel,
    options: UserOptions,
    timeout: Duration,
    rng: StdRng,
    first: bool,
    /// No step starts after this (a purchase already made is still watched to its end).
    stop_at: Option<Instant>,
}

/// A visit stopped: by an error (recorded already), or because the run is over.
struct Stop;

impl UserWorker {
    fn past_stop(&self) -> bool {
        self.stop_at.is_some_and(|at| Instant::now() >= at)
    }

    async fn pause(&mut self) -> Result<(), Stop> {
        let pause = think(
            &mut self.rng,
            self.options.think_min,
            self.options.think_max,
        );
        let pause = match self.stop_at {
            Some(at) => pause.min(at.saturating_duration_since(Instant::now())),
            None => pause,
        };
        tokio::time::sleep(pause).await;
        if self.past_stop() { Err(Stop) } else { Ok(()) }
    }

    /// Makes one call within the timeout and records it.
    async fn call<T>(
        &self,
        rec: &mut Recorder<'_>,
        rpc: &'static str,
        call: impl Future<Output = Result<T, Status>>,
    ) -> Result<T, Stop> {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded(self.timeout)));
        let latency = started.elapsed();
        match outcome {
            Ok(value) => {
                rec.call(rpc, latency, &Ok(()));
                Ok(value)
            }
            Err(status) => {
                rec.call(rpc, latency, &Err(status));
                Err(Stop)
            }
        }
    }

    async fn visit(&mut self, rec: &mut Recorder<'_>) -> Result<(), Stop> {
        let channel = self.channel.clone();
        if logs_in_again(
            &mut self.rng,
            self.options.relogin,
            self.session_started.elapsed(),
        ) {
            let account = self.user.account.clone();
            self.user.bearer = self.call(rec, "Login", log_in(&channel, &account)).await?;
            self.session_started = Instant::now();
        }
        let bearer = self.user.bearer.clone();

        // The dashboard.
        self.call(
            rec,
            "GetMe",
            AuthServiceClient::new(channel.clone())
                .get_me(with_bearer(pb::GetMeRequest {}, &bearer)),
        )
        .await?;
        let spendable = self
            .call(
                rec,
                "GetBalance",
                WalletServiceClient::new(channel.clone())
                    .get_balance(with_bearer(pb::GetBalanceRequest {}, &bearer)),
            )
            .await?
            .into_inner()
            .balance
            .map_or(0, |m| m.minor_units);

        // Browsing.
        let mut catalog = CatalogServiceClient::new(channel.clone());
        self.pause().await?;
        let services = self
            .call(
                rec,
                "ListServices",
                catalog.list_services(with_bearer(
                    pb::ListServicesRequest {
                        available_only: true,
                        ..Default::default()
                    },
                    &bearer,
                )),
            )
            .await?
            .into_inner()
            .services;
        let Some(service) = pick_popular(&mut self.rng, services.len()) else {
            rec.end("no service listed".to_owned());
            return Err(Stop);
        };
        let service = services[service].code.clone();
        self.pause().await?;
        let countries = self
            .call(
                rec,
                "ListCountries",
                catalog.list_countries(with_bearer(
                    pb::ListCountriesRequest {
                        service: service.clone(),
                        available_only: true,
                        ..Default::default()
                    },
                    &bearer,
                )),
            )
            .await?
            .into_inner()
            .countries;
        let Some(country) = pick_popular(&mut self.rng, countries.len()) else {
            rec.end(format!("no country listed for {service}"));
            return Err(Stop);
        };
        let country = countries[country].code.clone();
        self.pause().await?;
        let price = self
            .call(
                rec,
                "GetPrice",
                catalog.get_price(with_bearer(
                    pb::GetPriceRequest {
                        name: format!("services/{service}/prices/{country}"),
                    },
                    &bearer,
                )),
            )
            .await?
            .into_inner()
            .price
            .and_then(|p| p.price)
            .map_or(0, |m| m.minor_units);

        // Topping up.
        if tops_up(&mut self.rng, self.options.top_up_chance, spendable, price) {
            self.pause().await?;
            let reference = self
                .call(
                    rec,
                    "CreateTopUp",
                    top_up(
                        &channel,
                        &bearer,
                        self.options.top_up,
                        Uuid::new_v4().to_string(),
                    ),
                )
                .await?;
            self.call(
                rec,
                "CompletePayment",
                complete_payment(&channel, &bearer, reference),
            )
            .await?;
        }

        // Buying, then watching.
        self.pause().await?;
        let mut verifications = VerificationServiceClient::new(channel.clone());
        let verification = self
            .call(
                rec,
                "CreateVerification",
                verifications.create_verification(with_bearer(
                    pb::CreateVerificationRequest {
                        service: service.clone(),
                        country: country.clone(),
                        max_price: None,
                        request_id: Uuid::new_v4().to_string(),
                    },
                    &bearer,
                )),
            )
            .await?
            .into_inner()
            .verification
            .ok_or(Stop)?;
        let bought_at = Instant::now();
        let cancel = cancels(&mut self.rng, self.options.cancel_chance);
        self.watch(rec, &bearer, verification.name, bought_at, cancel)
            .await
    }

    /// Watches a verification to its end: its code, or the cancellation this user makes.
    async fn watch(
        &mut self,
        rec: &mut Recorder<'_>,
        bearer: &MetadataValue<Ascii>,
        name: String,
        bought_at: Instant,
        cancel: bool,
    ) -> Result<(), Stop> {
        let mut client = VerificationServiceClient::new(self.channel.clone());
        let request = with_bearer(
            pb::WatchVerificationRequest {
                name: name.clone(),
                after_sequence: 0,
            },
            bearer,
        );
        let started = Instant::now();
        let opened = tokio::time::timeout(self.timeout, async {
            let mut stream = client.watch_verification(request).await?.into_inner();
            let first = stream
                .message()
                .await?
                .ok_or_else(|| Status::unknown("the stream ended before its first message"))?;
            Ok::<_, Status>((stream, first))
        })
        .await
        .unwrap_or_else(|_| Err(deadline_exceeded(self.timeout)));
        let (mut stream, first) = match opened {
            Ok(opened) => {
                rec.call("WatchVerification", started.elapsed(), &Ok(()));
                opened
            }
            Err(status) => {
                rec.call("WatchVerification", started.elapsed(), &Err(status));
                return Err(Stop);
            }
        };
        if let Some(end) = terminal(&first) {
            rec.end(format!("{end} (already at the snapshot)"));
            return Ok(());
        }

        if cancel {
            // The user looks at the number, then changes their mind.
            let pause = think(
                &mut self.rng,
                self.options.think_min / 2,
                self.options.think_max / 2,
            );
            tokio::time::sleep(pause).await;
            self.call(
                rec,
                "CancelVerification",
                client.cancel_verification(with_bearer(
                    pb::CancelVerificationRequest { name: name.clone() },
                    bearer,
                )),
            )
            .await?;
        }

        let ended = tokio::time::timeout(self.options.code_wait, async {
            while let Some(message) = stream.message().await? {
                if let Some(end) = terminal(&message) {
                    return Ok(Some(end));
                }
            }
            Ok::<_, Status>(None)
        })
        .await;
        match ended {
            Ok(Ok(Some(end))) => {
                if end == "COMPLETED" && rec.measured {
                    rec.stats.code_wait.record_ok(bought_at.elapsed());
                }
                let expected = if cancel { "CANCELLED" } else { "COMPLETED" };
                if end == expected {
                    rec.end(end.to_owned());
                } else {
                    rec.end(format!("{end} (expected {expected})"));
                }
                Ok(())
            }
            Ok(Ok(None)) => {
                rec.end("stream ended without a final state".to_owned());
                Err(Stop)
            }
            Ok(Err(status)) => {
                rec.end(format!("stream broke: {}", code_name(status.code())));
                Err(Stop)
            }
            Err(_) => {
                rec.end(format!(
                    "no final state within {}",
                    format_duration_short(self.options.code_wait)
                ));
                Err(Stop)
            }
        }
    }
}

/// The final state an event reports, if it reports one.
fn terminal(message: &pb::WatchVerificationResponse) -> Option<&'static str> {
    let event = message.event.as_ref()?;
    let status = event.verification.as_ref().map(|v| status_name(v.status));
    match (event_name(event.r#type), status) {
        ("COMPLETED", _) | (_, Some("COMPLETED")) => Some("COMPLETED"),
        ("CANCELLED", _) | (_, Some("CANCELLED")) => Some("CANCELLED"),
        ("EXPIRED", _) | (_, Some("EXPIRED")) => Some("EXPIRED"),
        ("FAILED", _) | (_, Some("FAILED")) => Some("FAILED"),
        _ => None,
    }
}

impl Worker for UserWorker {
    type Stats = UserStats;

    async fn turn(&mut self, stats: &mut UserStats, measured: bool) {
        if self.first {
            self.first = false;
            let ramp = think(&mut self.rng, Duration::ZERO, self.options.ramp);
            tokio::time::sleep(ramp).await;
            return;
        }
        let mut rec = Recorder { stats, measured };
        let outcome = self.visit(&mut rec).await;
        let run_over = self.past_stop();
        if measured {
            stats.visits += 1;
            if outcome.is_err() && !run_over {
                stats.visits_cut_short += 1;
            }
        } else {
            stats.warmup_visits += 1;
        }
        if !run_over {
            // Between visits.
            let _ = self.pause().await;
        }
    }
}

// ---------------------------------------------------------------------------------------
// Processes on this machine.

/// CPU time (user + system, in clock ticks) and resident memory of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcessSample {
    pub ticks: u64,
    pub rss_kib: u64,
}

/// The clock ticks per second of `/proc/<pid>/stat` (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User and system ticks from the text of `/proc/<pid>/stat` (the fields after the
/// parenthesised command name, which may itself hold spaces).
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the whole line, utime 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A `kB` figure from the text of `/proc/<pid>/status` (`VmRSS`, `VmHWM`).
pub fn status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

pub fn sample_process(pid: u32) -> anyhow::Result<ProcessSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    Ok(ProcessSample {
        ticks: stat_ticks(&stat).with_context(|| format!("unreadable /proc/{pid}/stat"))?,
        rss_kib: status_kib(&status, "VmRSS").unwrap_or(0),
    })
}

/// One process over the measured part of the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProcessUse {
    pub name: String,
    pub pid: u32,
    /// CPU time used, in seconds, and as cores (CPU seconds per second of the run).
    pub cpu_seconds: f64,
    pub cores: f64,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    /// The largest resident memory seen, sampled each second.
    pub rss_max_kib: u64,
}

/// Samples the processes each second while `run` goes, and reports their use between
/// the end of the warm-up and the end of the run.
async fn watch_processes<T>(
    processes: &[(String, u32)],
    warmup: Duration,
    run: impl Future<Output = T>,
) -> anyhow::Result<(T, Vec<ProcessUse>)> {
    for (name, pid) in processes {
        sample_process(*pid).with_context(|| format!("--process {name}={pid}"))?;
    }
    let measure_from = Instant::now() + warmup;
    let mut run = std::pin::pin!(run);
    let mut start: Option<(Instant, Vec<ProcessSample>)> = None;
    let mut max_rss = vec![0u64; processes.len()];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let sample_all = || -> Vec<ProcessSample> {
        processes
            .iter()
            .map(|(_, pid)| {
                sample_process(*pid).unwrap_or(ProcessSample {
                    ticks: 0,
                    rss_kib: 0,
                })
            })
            .collect()
    };
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            _ = tick.tick() => {
                if start.is_none() && Instant::now() >= measure_from {
                    start = Some((Instant::now(), sample_all()));
                }
                if start.is_some() {
                    for (max, sample) in max_rss.iter_mut().zip(sample_all()) {
                        *max = (*max).max(sample.rss_kib);
                    }
                }
            }
        }
    };
    let Some((started, first)) = start else {
        return Ok((outcome, Vec::new()));
    };
    let wall = started.elapsed().as_secs_f64();
    let last = sample_all();
    let uses = processes
        .iter()
        .zip(first.iter().zip(&last))
        .zip(max_rss)
        .map(|(((name, pid), (a, b)), max)| {
            let cpu_seconds = b.ticks.saturating_sub(a.ticks) as f64 / TICKS_PER_SECOND;
            ProcessUse {
                name: name.clone(),
                pid: *pid,
                cpu_seconds,
                cores: if wall > 0.0 { cpu_seconds / wall } else { 0.0 },
                rss_start_kib: a.rss_kib,
                rss_end_kib: b.rss_kib,
                rss_max_kib: max.max(b.rss_kib),
            }
        })
        .collect();
    Ok((outcome, uses))
}

// ---------------------------------------------------------------------------------------
// The run and its report.

/// A finished `users` run.
#[derive(Debug)]
pub struct UsersRun {
    pub options: UserOptions,
    pub users: usize,
    pub stats: UserStats,
    pub total: Duration,
    pub end_reason: EndReason,
    pub processes: Vec<ProcessUse>,
    /// Unix time (seconds) of the measured window.
    pub measured_from_unix: f64,
    pub measured_to_unix: f64,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Sets up one user per worker, then runs them as `plan` says (worker `i` on connection
/// `i % connections`), sampling `options.processes`.
pub async fn run(
    options: &UserOptions,
    plan: &LoadPlan,
    channels: &[Channel],
    interrupt: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<UsersRun> {
    options.check()?;
    runner::check_plan(plan)?;
    ensure!(!channels.is_empty(), "no connections to run on");
    ensure!(
        plan.concurrency <= MAX_USERS,
        "at most {MAX_USERS} users (--concurrency)"
    );
    let users = set_up_users(channels, options, plan.concurrency, plan.timeout).await?;
    let stop_at = match plan.bound {
        Bound::Duration(duration) => Some(Instant::now() + plan.warmup + duration),
        Bound::Total(_) => None,
    };
    let seed = rand::rng().random::<u64>();
    let workers: Vec<UserWorker> = users
        .into_iter()
        .enumerate()
        .map(|(index, user)| UserWorker {
            user,
            session_started: Instant::now(),
            channel: channels[index % channels.len()].clone(),
            options: options.clone(),
            timeout: plan.timeout,
            rng: StdRng::seed_from_u64(seed ^ index as u64),
            first: true,
            stop_at,
        })
        .collect();
    let measured_from_unix = unix_now() + plan.warmup.as_secs_f64();
    let (outcome, processes) = watch_processes(
        &options.processes,
        plan.warmup,
        runner::run_workers(plan, workers, interrupt),
    )
    .await?;
    let RunOutcome {
        stats,
        total,
        end_reason,
    } = outcome?;
    Ok(UsersRun {
        options: options.clone(),
        users: plan.concurrency,
        stats,
        total,
        end_reason,
        processes,
        measured_from_unix,
        measured_to_unix: unix_now(),
    })
}

impl UsersRun {
    pub fn summary(&self) -> Summary {
        Summary::compute(&self.stats.overall(), self.total, self.end_reason)
    }

    fn rpc_summaries(&self) -> Vec<(&'static str, Summary)> {
        RPCS.iter()
            .filter_map(|rpc| {
                let stats = self.stats.rpcs.get(rpc)?;
                Some((*rpc, Summary::compute(stats, self.total, self.end_reason)))
            })
            .collect()
    }

    pub fn render_text(&self, run: &RunDescription) -> String {
        let mut out = render_text(run, &self.summary());
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        let ms = |d: Option<Duration>| {
            d.map_or("-".to_owned(), |d| format!("{:.2}", d.as_secs_f64() * 1e3))
        };
        writeln!(out)?;
        writeln!(
            out,
            "Users: {} (think {}-{}, relogin {}, top-up chance {}, cancel chance {})",
            self.users,
            format_duration_short(self.options.think_min),
            format_duration_short(self.options.think_max),
            self.options.relogin,
            self.options.top_up_chance,
            self.options.cancel_chance
        )?;
        writeln!(
            out,
            "  Visits:\t{} measured ({} cut short by an error), {} in the warm-up",
            self.stats.visits, self.stats.visits_cut_short, self.stats.warmup_visits
        )?;
        let ends: Vec<String> = self
            .stats
            .ends
            .iter()
            .map(|(end, n)| format!("{end} {n}"))
            .collect();
        writeln!(out, "  Purchases ended:\t{}", ends.join(", "))?;
        let wait = &self.stats.code_wait;
        writeln!(
            out,
            "  Purchase to code:\tp50 {} ms  p95 {} ms  p99 {} ms  ({} codes)",
            ms(wait.percentile(50.0)),
            ms(wait.percentile(95.0)),
            ms(wait.percentile(99.0)),
            wait.ok_count()
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "Per RPC (a watch: to its first message):\n  rpc                  count      rps   p50 ms   p95 ms   p99 ms   max ms  codes"
        )?;
        for (rpc, s) in self.rpc_summaries() {
            let codes: Vec<String> = s
                .status_codes
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            writeln!(
                out,
                "  {rpc:<20} {:>6} {:>8.1} {:>8} {:>8} {:>8} {:>8}  {}",
                s.count,
                s.rps,
                ms(s.percentile(50)),
                ms(s.percentile(95)),
                ms(s.percentile(99)),
                ms(Some(s.slowest)),
                codes.join(", ")
            )?;
        }
        if !self.processes.is_empty() {
            writeln!(out)?;
            writeln!(
                out,
                "Processes over the measured part (CPU from /proc/<pid>/stat, memory from /proc/<pid>/status):"
            )?;
            for p in &self.processes {
                writeln!(
                    out,
                    "  {:<10} pid {:<8} CPU {:.1} s = {:.2} cores  RSS {} -> {} MiB (max {} MiB)",
                    p.name,
                    p.pid,
                    p.cpu_seconds,
                    p.cores,
                    p.rss_start_kib / 1024,
                    p.rss_end_kib / 1024,
                    p.rss_max_kib / 1024
                )?;
            }
        }
        Ok(())
    }

    pub fn json(&self, run: &RunDescription, date: String) -> anyhow::Result<serde_json::Value> {
        let mut value = serde_json::to_value(GhzReport::new(run, &self.summary(), date.clone()))
            .context("encoding the JSON report")?;
        let mut rpcs = serde_json::Map::new();
        for (rpc, summary) in self.rpc_summaries() {
            rpcs.insert(
                rpc.to_owned(),
                serde_json::to_value(GhzReport::new(run, &summary, date.clone()))
                    .context("encoding the JSON report")?,
            );
        }
        let wait = &self.stats.code_wait;
        let micros = |d: Option<Duration>| d.map(|d| d.as_micros() as u64);
        value["rpcs"] = serde_json::Value::Object(rpcs);
        value["users"] = serde_json::json!({
            "users": self.users,
            "visits": self.stats.visits,
            "visitsCutShort": self.stats.visits_cut_short,
            "warmupVisits": self.stats.warmup_visits,
            "ends": self.stats.ends,
            "codeWaitMicros": {
                "count": wait.ok_count(),
                "p50": micros(wait.percentile(50.0)),
                "p95": micros(wait.percentile(95.0)),
                "p99": micros(wait.percentile(99.0)),
            },
            "options": self.options.request_json(self.users),
            "measuredFromUnix": self.measured_from_unix,
            "measuredToUnix": self.measured_to_unix,
        });
        value["processes"] =
            serde_json::to_value(&self.processes).context("encoding the JSON report")?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_memory_from_proc_text() {
        let stat = "4242 (namaskah server) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 100 1000 200";
        assert_eq!(stat_ticks(stat), Some(300));
        let status = "Name:\tnamaskah-server\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        assert_eq!(status_kib(status, "VmRSS"), Some(10240));
        assert_eq!(status_kib(status, "VmHWM"), Some(20480));
        assert_eq!(status_kib(status, "VmSwap"), None);
    }

    #[test]
    fn processes_parse() {
        assert_eq!(
            parse_process("server-1=4242"),
            Ok(("server-1".to_owned(), 4242))
        );
        assert!(parse_process("4242").is_err());
        assert!(parse_process("=4242").is_err());
        assert!(parse_process("a=b").is_err());
    }
}
