//! The `ledger` scenario: many workers hold and release small amounts on many wallets,
//! straight through the server's own ledger (`namaskah_server::wallet::ledger`) against the
//! database, then the books are checked from the database.
//!
//! Set-up: the run's own customers (rows in `users`, which the ledger's accounts and
//! entries refer to), each with a wallet funded by one top-up credit. A worker's turn (one
//! cycle): pick a wallet at random, hold 1–`max_hold` cents under a fresh reference in one
//! transaction, commit; release that hold in a second transaction, commit. Each hold and
//! each release writes one journal entry; a hold the wallet cannot afford
//! (`INSUFFICIENT_FUNDS`) writes nothing and is counted apart from errors.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHasher, SaltString};
use chrono::Utc;
use namaskah_server::error::ApiError;
use namaskah_server::identity::domain::{Plan, Role, new_referral_code};
use namaskah_server::identity::entities::users;
use namaskah_server::identity::repo::{self, UserInsert};
use namaskah_server::wallet::domain::{AccountKind, LedgerError, MAX_AMOUNT};
use namaskah_server::wallet::ledger::{self, Posted, Settled};
use namaskah_server::{Config, store};
use rand::rngs::StdRng;
use rand::{Rng as _, RngCore as _, SeedableRng as _};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, QueryResult, Statement,
    TransactionTrait,
};
use serde::Serialize;
use tonic::{Code, Status};
use uuid::Uuid;

use crate::duration::format_latency;
use crate::report::{EndReason, GhzReport, RunDescription, Summary, render_text};
use crate::runner::{self, LoadPlan, RunOutcome, Stats, Worker};
use crate::stats::CallStats;

/// Wallets created when `--wallets` is not given.
pub const DEFAULT_WALLETS: u32 = 1_000;
/// What each wallet is funded with (cents) when `--wallet-funds` is not given: 100.00 USD,
/// far above what 1–50-cent holds can take at once.
pub const DEFAULT_WALLET_FUNDS: i64 = 10_000;
/// The largest hold (cents) when `--max-hold` is not given; the smallest is always 1.
pub const DEFAULT_MAX_HOLD: i64 = 50;
/// Wallets created (or funded) per set-up transaction.
const SETUP_BATCH: usize = 200;

/// The reason the ledger gives when a wallet cannot afford a hold (the API's `ErrorInfo`
/// reason); such holds are counted apart from errors.
pub const INSUFFICIENT_FUNDS: &str = "INSUFFICIENT_FUNDS";

const HOLD_MEMO: &str = "namaskah-load hold";
const RELEASE_MEMO: &str = "namaskah-load release";
const FUNDING_MEMO: &str = "namaskah-load funding";

/// What the scenario needs besides the run's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerOptions {
    /// `sqlite:…`, `postgres://…` or `postgresql://…`.
    pub database_url: String,
    pub wallets: u32,
    /// Cents each wallet is funded with.
    pub wallet_funds: i64,
    /// The largest hold, in cents.
    pub max_hold: i64,
}

impl LedgerOptions {
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(self.wallets >= 1, "--wallets must be at least 1");
        ensure!(
            (1..=MAX_AMOUNT).contains(&self.wallet_funds),
            "--wallet-funds must be from 1 to {MAX_AMOUNT} cents"
        );
        ensure!(
            (1..=MAX_AMOUNT).contains(&self.max_hold),
            "--max-hold must be from 1 to {MAX_AMOUNT} cents"
        );
        Ok(())
    }

    /// The request data shown in the report (ghz's `data`).
    pub fn data_json(&self) -> serde_json::Value {
        serde_json::json!({
            "wallets": self.wallets,
            "walletFunds": self.wallet_funds,
            "holdCents": format!("1-{}", self.max_hold),
        })
    }
}

/// The database URL with any password cut out, for reports.
pub fn redact_database_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:(redacted)@{host}{path}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The database connections the scenario opens for `concurrency` workers: one each (at
/// most 1000), except on SQLite, where the store keeps a single connection.
pub fn pool_size(database_url: &str, concurrency: usize) -> usize {
    if database_url.starts_with("sqlite:") {
        1
    } else {
        concurrency.clamp(1, 1_000)
    }
}

/// The run's funded wallets in the database, and the connection pool the workers share.
pub struct LedgerBench {
    db: DatabaseConnection,
    /// Tags every reference and email this run writes: lower-case hex and `-` only.
    tag: String,
    wallets: Arc<[Uuid]>,
    options: LedgerOptions,
}

impl LedgerBench {
    /// Opens the database (see [`pool_size`]), applies the migrations, and creates and
    /// funds the run's wallets. Progress goes to standard error.
    pub async fn prepare(options: &LedgerOptions, concurrency: usize) -> anyhow::Result<Self> {
        options.check()?;
        let pool_size = pool_size(&options.database_url, concurrency);
        let source = std::collections::HashMap::from([
            ("DATABASE_URL".to_owned(), options.database_url.clone()),
            (
                "NAMASKAH_DATABASE_MAX_CONNECTIONS".to_owned(),
                pool_size.to_string(),
            ),
        ]);
        let config = Config::from_source(&source).context("--database-url")?;
        let db = store::connect(&config).await.with_context(|| {
            format!(
                "connecting to {}",
                redact_database_url(&options.database_url)
            )
        })?;
        store::migrate(&db)
            .await
            .context("applying the migrations")?;

        let tag = run_tag();
        let started = Instant::now();
        let wallets = create_customers(&db, &tag, options.wallets).await?;
        fund_wallets(&db, &tag, &wallets, options.wallet_funds).await?;
        eprintln!(
            "namaskah-load: created {} wallets of {} cents each in {} (run {tag})",
            wallets.len(),
            options.wallet_funds,
            format_latency(started.elapsed()),
        );
        Ok(LedgerBench {
            db,
            tag,
            wallets: wallets.into(),
            options: options.clone(),
        })
    }

    /// The tag in this run's references (`load-{tag}-…`) and emails.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The owners of the run's wallets.
    pub fn wallets(&self) -> &[Uuid] {
        &self.wallets
    }

    /// The pattern (SQL `LIKE`) of the references of this run's holds and releases.
    pub fn cycle_reference_pattern(&self) -> String {
        format!("load-{}-h%", self.tag)
    }

    /// One worker per call in flight.
    pub fn workers(&self, plan: &LoadPlan) -> Vec<LedgerWorker> {
        (0..plan.concurrency)
            .map(|index| LedgerWorker {
                db: self.db.clone(),
                wallets: Arc::clone(&self.wallets),
                reference_prefix: format!("load-{}-h{index}-", self.tag),
                next: 0,
                max_hold: self.options.max_hold,
                timeout: plan.timeout,
                rng: StdRng::from_os_rng(),
            })
            .collect()
    }

    /// Checks the whole books from the database; `driver_entries` is what this run's
    /// workers counted as written (warm-up included), when that count can be trusted.
    pub async fn check_books(&self, driver_entries: Option<u64>) -> anyhow::Result<Books> {
        check_books(&self.db, &self.cycle_reference_pattern(), driver_entries).await
    }
}

/// `{seconds since 1970 in hex}-{random}`: unique per run, and safe inside SQL `LIKE`.
fn run_tag() -> String {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!("{seconds:x}-{:06x}", rand::rng().next_u32() & 0xff_ffff)
}

/// Customers for the run: the ledger's accounts and entries refer to `users`, so each
/// wallet needs its user row. They all share the Argon2id hash of one random password
/// nobody knows, so they cannot log in.
async fn create_customers(
    db: &DatabaseConnection,
    tag: &str,
    count: u32,
) -> anyhow::Result<Vec<Uuid>> {
    let password_hash = tokio::task::spawn_blocking(|| {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        let password: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        Argon2::default()
            .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("hashing the customers' password: {e}"))
    })
    .await
    .context("hashing the customers' password")??;

    let mut ids = Vec::with_capacity(count as usize);
    let numbers: Vec<u32> = (0..count).collect();
    for batch in numbers.chunks(SETUP_BATCH) {
        let txn = db.begin().await?;
        for &n in batch {
            let email = format!("load-{tag}-{n}@example.com");
            let now = Utc::now();
            let mut user = users::Model {
                id: Uuid::now_v7(),
                email: email.clone(),
                email_lower: email,
                email_verified: false,
                password_hash: password_hash.clone(),
                role: Role::Customer.as_str().to_owned(),
                plan: Plan::Starter.as_str().to_owned(),
                status: "active".to_owned(),
                referral_code: new_referral_code(),
                referred_by: None,
                totp_secret: None,
                totp_pending_secret: None,
                totp_enabled: false,
                totp_last_step: None,
                tenant_id: None,
                created_at: now,
                updated_at: now,
            };
            // Referral codes are random and unique: draw again on the rare collision.
            let mut attempts = 0;
            loop {
                match repo::insert_user(&txn, user.clone()).await? {
                    UserInsert::Inserted => break,
                    UserInsert::ReferralCodeTaken if attempts < 5 => {
                        attempts += 1;
                        user.referral_code = new_referral_code();
                    }
                    other => bail!("creating customer {}: {other:?}", user.email),
                }
            }
            ids.push(user.id);
        }
        txn.commit().await?;
    }
    Ok(ids)
}

/// One top-up credit per wallet (gateway clearing → wallet), as a confirmed payment posts.
async fn fund_wallets(
    db: &DatabaseConnection,
    tag: &str,
    wallets: &[Uuid],
    amount: i64,
) -> anyhow::Result<()> {
    for (batch_number, batch) in wallets.chunks(SETUP_BATCH).enumerate() {
        let txn = db.begin().await?;
        for (i, &user) in batch.iter().enumerate() {
            let reference = format!("load-{tag}-fund-{}", batch_number * SETUP_BATCH + i);
            let posted = ledger::credit(
                &txn,
                user,
                amount,
                &format!("topup:{reference}"),
                &reference,
                FUNDING_MEMO,
            )
            .await
            .map_err(|e| anyhow::anyhow!("funding wallet {user}: {e}"))?;
            ensure!(
                matches!(posted, Posted::Now(_)),
                "funding wallet {user}: {reference} was already used"
            );
        }
        txn.commit().await?;
    }
    Ok(())
}

/// Figures of the ledger operations, per worker and merged.
#[derive(Debug, Clone, Default)]
pub struct LedgerStats {
    /// Every measured hold, with its outcome.
    pub hold: CallStats,
    /// Every measured release (made only after a successful hold), with its outcome.
    pub release: CallStats,
    /// Measured holds refused because the wallet could not afford them (also in `hold`
    /// under `FailedPrecondition`, but not errors).
    pub insufficient_funds: u64,
    /// Entries written during the warm-up (not measured, but in the database).
    pub warmup_entries: u64,
    /// Operations the driver's deadline cut short, warm-up included: whether they wrote
    /// their entry is unknown.
    pub abandoned: u64,
}

impl Stats for LedgerStats {
    fn merge(&mut self, other: &Self) {
        self.hold.merge(&other.hold);
        self.release.merge(&other.release);
        self.insufficient_funds += other.insufficient_funds;
        self.warmup_entries += other.warmup_entries;
        self.abandoned += other.abandoned;
    }
}

impl LedgerStats {
    /// Measured entries written: successful holds and releases.
    pub fn entries(&self) -> u64 {
        self.hold.ok_count() + self.release.ok_count()
    }

    /// Measured operations (holds and releases), successful or not.
    pub fn operations(&self) -> u64 {
        self.hold.count() + self.release.count()
    }

    /// Measured operations that failed for another reason than insufficient funds.
    pub fn errors(&self) -> u64 {
        self.operations() - self.entries() - self.insufficient_funds
    }

    /// Holds and releases together.
    pub fn all_operations(&self) -> CallStats {
        let mut all = self.hold.clone();
        all.merge(&self.release);
        all
    }

    fn record(&mut self, operation: Operation, latency: Duration, outcome: &Outcome) {
        if matches!(outcome, Err(OperationError::Abandoned(_))) {
            self.abandoned += 1;
        }
        let stats = match operation {
            Operation::Hold => &mut self.hold,
            Operation::Release => &mut self.release,
        };
        match outcome {
            Ok(()) => stats.record_ok(latency),
            Err(error) => {
                if matches!(error, OperationError::InsufficientFunds) {
                    self.insufficient_funds += 1;
                }
                stats.record_error(latency, &error.status());
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Operation {
    Hold,
    Release,
}

#[derive(Debug)]
enum OperationError {
    InsufficientFunds,
    /// The driver's deadline passed first.
    Abandoned(Duration),
    /// Anything else, as the API would answer it (code) with the ledger's own message.
    Failed(Status),
}

impl OperationError {
    fn status(&self) -> Status {
        match self {
            OperationError::InsufficientFunds => Status::failed_precondition(INSUFFICIENT_FUNDS),
            OperationError::Abandoned(timeout) => runner::deadline_exceeded(*timeout),
            OperationError::Failed(status) => status.clone(),
        }
    }
}

impl From<LedgerError> for OperationError {
    fn from(error: LedgerError) -> Self {
        if matches!(error, LedgerError::InsufficientFunds) {
            return OperationError::InsufficientFunds;
        }
        // The code the API would answer with; the message the ledger gave (the API hides
        // internal messages, the report should not).
        let message = error.to_string();
        let code = Status::from(ApiError::from(error)).code();
        OperationError::Failed(Status::new(code, message))
    }
}

impl From<sea_orm::DbErr> for OperationError {
    fn from(error: sea_orm::DbErr) -> Self {
        LedgerError::from(error).into()
    }
}

type Outcome = Result<(), OperationError>;

/// A worker of the ledger scenario: one hold-and-release cycle per turn.
pub struct LedgerWorker {
    db: DatabaseConnection,
    wallets: Arc<[Uuid]>,
    /// `load-{tag}-h{worker}-`, followed by the cycle's number.
    reference_prefix: String,
    next: u64,
    max_hold: i64,
    timeout: Duration,
    rng: StdRng,
}

impl LedgerWorker {
    async fn timed(&self, operation: impl Future<Output = Outcome>) -> (Duration, Outcome) {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, operation)
            .await
            .unwrap_or(Err(OperationError::Abandoned(self.timeout)));
        (started.elapsed(), outcome)
    }
}

impl Worker for LedgerWorker {
    type Stats = LedgerStats;

    async fn turn(&mut self, stats: &mut LedgerStats, measured: bool) {
        let wallet = self.wallets[self.rng.random_range(0..self.wallets.len())];
        let amount = self.rng.random_range(1..=self.max_hold);
        let reference = format!("{}{}", self.reference_prefix, self.next);
        self.next += 1;

        let (latency, held) = self
            .timed(hold_once(&self.db, wallet, amount, &reference))
            .await;
        let hold_ok = held.is_ok();
        note(stats, measured, Operation::Hold, latency, &held);
        if !hold_ok {
            return;
        }
        let (latency, released) = self.timed(release_once(&self.db, &reference)).await;
        note(stats, measured, Operation::Release, latency, &released);
    }
}

fn note(
    stats: &mut LedgerStats,
    measured: bool,
    operation: Operation,
    latency: Duration,
    outcome: &Outcome,
) {
    if measured {
        stats.record(operation, latency, outcome);
    } else if outcome.is_ok() {
        stats.warmup_entries += 1;
    } else if matches!(outcome, Err(OperationError::Abandoned(_))) {
        stats.abandoned += 1;
    }
}

/// Commits `txn` when `result` is fine, rolls it back otherwise.
async fn finish(txn: DatabaseTransaction, result: Outcome) -> Outcome {
    match result {
        Ok(()) => Ok(txn.commit().await?),
        Err(error) => {
            // Dropping it would roll back too; saying so frees the connection at once.
            let _ = txn.rollback().await;
            Err(error)
        }
    }
}

/// Holds `amount` from `user`'s wallet under `reference`, in its own transaction.
async fn hold_once(db: &DatabaseConnection, user: Uuid, amount: i64, reference: &str) -> Outcome {
    let txn = db.begin().await?;
    let result = match ledger::hold(&txn, user, amount, reference, HOLD_MEMO).await {
        Ok(Posted::Now(_)) => Ok(()),
        Ok(Posted::Already(_)) => Err(OperationError::Failed(Status::internal(format!(
            "hold {reference} already existed: references must be fresh"
        )))),
        Err(error) => Err(error.into()),
    };
    finish(txn, result).await
}

/// Releases the hold placed under `reference`, in its own transaction.
async fn release_once(db: &DatabaseConnection, reference: &str) -> Outcome {
    let txn = db.begin().await?;
    let result = match ledger::release(&txn, reference, RELEASE_MEMO).await {
        Ok(Settled::Now) => Ok(()),
        Ok(other) => Err(OperationError::Failed(Status::internal(format!(
            "hold {reference} was already settled: {other:?}"
        )))),
        Err(error) => Err(error.into()),
    };
    finish(txn, result).await
}

/// The books as found in the database after the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Books {
    /// Journal entries, lines and accounts checked (the whole database, not only this run).
    pub entries: i64,
    pub lines: i64,
    pub accounts: i64,
    /// Entries whose lines do not sum to zero.
    pub unbalanced_entries: i64,
    /// Entries with fewer than two lines.
    pub short_entries: i64,
    /// Customer accounts (wallets, holds) below zero.
    pub negative_balances: i64,
    /// Customer accounts whose kept balance differs from the sum of their lines.
    pub drifted_balances: i64,
    /// The sum of every line: zero when money is neither created nor destroyed.
    pub sum_of_lines: i64,
    /// Entries in the database from this run's holds and releases.
    pub run_entries: i64,
    /// What the workers counted as written (warm-up included), when comparable: not after
    /// an interrupt or an operation cut short by the deadline, whose outcome is unknown.
    pub driver_entries: Option<u64>,
}

impl Books {
    /// Every entry sums to zero with at least two lines, no customer balance is negative,
    /// every kept balance equals the sum of its lines, and all lines sum to zero.
    pub fn balanced(&self) -> bool {
        self.unbalanced_entries == 0
            && self.short_entries == 0
            && self.negative_balances == 0
            && self.drifted_balances == 0
            && self.sum_of_lines == 0
    }

    /// Whether the database holds exactly the entries the workers counted (`None` when the
    /// count was not comparable).
    pub fn counted_right(&self) -> Option<bool> {
        self.driver_entries
            .map(|counted| i64::try_from(counted).is_ok_and(|c| c == self.run_entries))
    }

    /// Balanced, and no miscount.
    pub fn ok(&self) -> bool {
        self.balanced() && self.counted_right() != Some(false)
    }
}

async fn query_row(db: &DatabaseConnection, sql: &str) -> anyhow::Result<QueryResult> {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .with_context(|| format!("checking the books: {sql}"))?
        .with_context(|| format!("checking the books: no row from {sql}"))
}

fn column(row: &QueryResult, index: usize) -> anyhow::Result<i64> {
    row.try_get_by_index::<i64>(index)
        .map_err(|e| anyhow::anyhow!("checking the books: column {index}: {e}"))
}

/// Checks the books from the database alone. `cycle_pattern` is a `LIKE` pattern made only
/// of hex digits, `-`, letters and `%` (never user input).
pub async fn check_books(
    db: &DatabaseConnection,
    cycle_pattern: &str,
    driver_entries: Option<u64>,
) -> anyhow::Result<Books> {
    ensure!(
        cycle_pattern
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '%'),
        "unsafe reference pattern {cycle_pattern:?}"
    );
    let customer_kinds = format!(
        "'{}', '{}'",
        AccountKind::Wallet.as_str(),
        AccountKind::Holds.as_str()
    );

    // Per entry: how many lines, and what they sum to.
    let row = query_row(
        db,
        "SELECT COUNT(*), \
                COALESCE(SUM(CASE WHEN per_entry.total <> 0 THEN 1 ELSE 0 END), 0), \
                COALESCE(SUM(CASE WHEN per_entry.line_count < 2 THEN 1 ELSE 0 END), 0) \
         FROM (SELECT e.id, COUNT(l.id) AS line_count, COALESCE(SUM(l.amount), 0) AS total \
               FROM journal_entries e LEFT JOIN journal_lines l ON l.entry_id = e.id \
               GROUP BY e.id) per_entry",
    )
    .await?;
    let (entries, unbalanced_entries, short_entries) =
        (column(&row, 0)?, column(&row, 1)?, column(&row, 2)?);

    // Per account: its kept balance against the sum of its lines.
    let row = query_row(
        db,
        &format!(
            "SELECT COUNT(*), \
                    COALESCE(SUM(CASE WHEN a.kind IN ({customer_kinds}) AND a.balance < 0 \
                                      THEN 1 ELSE 0 END), 0), \
                    COALESCE(SUM(CASE WHEN a.kind IN ({customer_kinds}) \
                                           AND a.balance <> COALESCE(per_account.total, 0) \
                                      THEN 1 ELSE 0 END), 0) \
             FROM ledger_accounts a LEFT JOIN \
                  (SELECT account_id, SUM(amount) AS total FROM journal_lines \
                   GROUP BY account_id) per_account ON per_account.account_id = a.id"
        ),
    )
    .await?;
    let (accounts, negative_balances, drifted_balances) =
        (column(&row, 0)?, column(&row, 1)?, column(&row, 2)?);

    let row = query_row(
        db,
        "SELECT COUNT(*), COALESCE(CAST(SUM(amount) AS BIGINT), 0) FROM journal_lines",
    )
    .await?;
    let (lines, sum_of_lines) = (column(&row, 0)?, column(&row, 1)?);

    let row = query_row(
        db,
        &format!("SELECT COUNT(*) FROM journal_entries WHERE reference LIKE '{cycle_pattern}'"),
    )
    .await?;
    let run_entries = column(&row, 0)?;

    Ok(Books {
        entries,
        lines,
        accounts,
        unbalanced_entries,
        short_entries,
        negative_balances,
        drifted_balances,
        sum_of_lines,
        run_entries,
        driver_entries,
    })
}

/// A finished ledger run: what the workers measured and what the books say.
#[derive(Debug)]
pub struct LedgerRun {
    pub options: LedgerOptions,
    pub tag: String,
    pub stats: LedgerStats,
    /// Wall time of the measured part of the run.
    pub total: Duration,
    pub end_reason: EndReason,
    pub books: Books,
}

/// Prepares the wallets, runs the workers as `plan` says (ending early if `interrupt`
/// completes), then checks the books.
pub async fn run(
    options: &LedgerOptions,
    plan: &LoadPlan,
    interrupt: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<LedgerRun> {
    runner::check_plan(plan)?;
    let bench = LedgerBench::prepare(options, plan.concurrency).await?;
    let RunOutcome {
        stats,
        total,
        end_reason,
    } = runner::run_workers(plan, bench.workers(plan), interrupt).await?;
    let comparable = end_reason != EndReason::Cancel && stats.abandoned == 0;
    let books = bench
        .check_books(comparable.then(|| stats.entries() + stats.warmup_entries))
        .await?;
    Ok(LedgerRun {
        options: options.clone(),
        tag: bench.tag,
        stats,
        total,
        end_reason,
        books,
    })
}

impl LedgerRun {
    /// Measured entries written per second of the measured run.
    pub fn entries_per_second(&self) -> f64 {
        if self.total.is_zero() {
            0.0
        } else {
            self.stats.entries() as f64 / self.total.as_secs_f64()
        }
    }

    /// Holds and releases together, as ghz would sum them up.
    pub fn summary(&self) -> Summary {
        Summary::compute(&self.stats.all_operations(), self.total, self.end_reason)
    }

    pub fn hold_summary(&self) -> Summary {
        Summary::compute(&self.stats.hold, self.total, self.end_reason)
    }

    pub fn release_summary(&self) -> Summary {
        Summary::compute(&self.stats.release, self.total, self.end_reason)
    }

    /// The text report: ghz's summary of all operations, then one line per operation, the
    /// ledger's own figures, and the books.
    pub fn render_text(&self, run: &RunDescription) -> String {
        let mut out = render_text(run, &self.summary());
        // Writing to a String cannot fail.
        let _ = self.write_ledger_text(&mut out);
        out
    }

    fn write_ledger_text(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out)?;
        writeln!(
            out,
            "Operations (each one transaction writing one journal entry):"
        )?;
        for (name, summary) in [
            ("hold", self.hold_summary()),
            ("release", self.release_summary()),
        ] {
            let at = |p: u32| {
                summary
                    .percentile(p)
                    .map(format_latency)
                    .unwrap_or_else(|| "-".to_owned())
            };
            writeln!(
                out,
                "  {name:<8} count {}  ok {}  {:.2}/s  p50 {}  p95 {}  p99 {}  max {}  avg {}",
                summary.count,
                summary.ok_count,
                summary.rps,
                at(50),
                at(95),
                at(99),
                format_latency(summary.slowest),
                format_latency(summary.average),
            )?;
        }
        writeln!(out)?;
        writeln!(out, "Ledger:")?;
        writeln!(
            out,
            "  Wallets:\t{} of {} cents each, holds of 1-{} cents (run {})",
            self.options.wallets, self.options.wallet_funds, self.options.max_hold, self.tag
        )?;
        writeln!(
            out,
            "  Entries:\t{} written ({} holds, {} releases)",
            self.stats.entries(),
            self.stats.hold.ok_count(),
            self.stats.release.ok_count()
        )?;
        writeln!(out, "  Entries/sec:\t{:.2}", self.entries_per_second())?;
        writeln!(
            out,
            "  Insufficient funds:\t{} holds refused (not errors)",
            self.stats.insufficient_funds
        )?;
        writeln!(out, "  Errors:\t{}", self.stats.errors())?;
        if self.stats.warmup_entries > 0 {
            writeln!(
                out,
                "  Warm-up:\t{} entries, not measured",
                self.stats.warmup_entries
            )?;
        }

        let books = &self.books;
        writeln!(out)?;
        writeln!(
            out,
            "Books: {}",
            if books.balanced() {
                "balanced"
            } else {
                "NOT BALANCED"
            }
        )?;
        writeln!(
            out,
            "  {} entries, {} lines, {} accounts checked",
            books.entries, books.lines, books.accounts
        )?;
        writeln!(
            out,
            "  entries not summing to zero {}, with fewer than two lines {}; customer \
             balances below zero {}, off the sum of their lines {}; sum of all lines {}",
            books.unbalanced_entries,
            books.short_entries,
            books.negative_balances,
            books.drifted_balances,
            books.sum_of_lines
        )?;
        match books.driver_entries {
            Some(counted) => writeln!(
                out,
                "  this run's hold and release entries in the database: {} ({} counted by \
                 the driver, warm-up included: {})",
                books.run_entries,
                counted,
                if books.counted_right() == Some(true) {
                    "same"
                } else {
                    "MISCOUNT"
                }
            )?,
            None => writeln!(
                out,
                "  this run's hold and release entries in the database: {} (not compared: \
                 the run was interrupted or an operation timed out)",
                books.run_entries
            )?,
        }
        Ok(())
    }

    /// The JSON report: ghz's fields for all operations together, plus `operations` (a
    /// ghz-shaped report per operation), `ledger` and `books`.
    pub fn json(&self, run: &RunDescription, date: String) -> anyhow::Result<serde_json::Value> {
        let mut report = GhzReport::new(run, &self.summary(), date.clone());
        report.tags.insert(
            "entriesPerSecond".to_owned(),
            format!("{:.2}", self.entries_per_second()),
        );
        let mut json = serde_json::to_value(&report)?;
        let mut operations = BTreeMap::new();
        for (name, summary) in [
            ("hold", self.hold_summary()),
            ("release", self.release_summary()),
        ] {
            let mut described = run.clone();
            described.call = format!("namaskah_server::wallet::ledger::{name}");
            operations.insert(
                name,
                serde_json::to_value(GhzReport::new(&described, &summary, date.clone()))?,
            );
        }
        let object = json
            .as_object_mut()
            .context("a ghz report is a JSON object")?;
        object.insert("operations".to_owned(), serde_json::to_value(operations)?);
        object.insert(
            "ledger".to_owned(),
            serde_json::json!({
                "run": self.tag,
                "wallets": self.options.wallets,
                "walletFunds": self.options.wallet_funds,
                "maxHold": self.options.max_hold,
                "entries": self.stats.entries(),
                "entriesPerSecond": self.entries_per_second(),
                "holds": self.stats.hold.ok_count(),
                "releases": self.stats.release.ok_count(),
                "insufficientFunds": self.stats.insufficient_funds,
                "errors": self.stats.errors(),
                "warmupEntries": self.stats.warmup_entries,
                "abandoned": self.stats.abandoned,
            }),
        );
        let mut books = serde_json::to_value(&self.books)?;
        if let Some(books) = books.as_object_mut() {
            books.insert("balanced".to_owned(), self.books.balanced().into());
            books.insert(
                "countedRight".to_owned(),
                serde_json::to_value(self.books.counted_right())?,
            );
        }
        object.insert("books".to_owned(), books);
        Ok(json)
    }
}

/// Whether a status is the ledger's refusal of a hold the wallet cannot afford.
pub fn is_insufficient_funds(status: &Status) -> bool {
    status.code() == Code::FailedPrecondition && status.message() == INSUFFICIENT_FUNDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_lose_their_password() {
        assert_eq!(
            redact_database_url("postgres://postgres:secret@127.0.0.1:5432/bench"),
            "postgres://postgres:(redacted)@127.0.0.1:5432/bench"
        );
        assert_eq!(
            redact_database_url("postgres://postgres@127.0.0.1/bench"),
            "postgres://postgres@127.0.0.1/bench"
        );
        assert_eq!(
            redact_database_url("sqlite:///tmp/a.db?mode=rwc"),
            "sqlite:///tmp/a.db?mode=rwc"
        );
        assert_eq!(redact_database_url("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn run_tags_are_safe_in_like_patterns() {
        let tag = run_tag();
        assert!(
            tag.chars().all(|c| c.is_ascii_hexdigit() || c == '-'),
            "{tag}"
        );
        assert_ne!(run_tag(), run_tag());
    }

    #[test]
    fn options_are_checked() {
        let options = LedgerOptions {
            database_url: "sqlite::memory:".to_owned(),
            wallets: 10,
            wallet_funds: 100,
            max_hold: 50,
        };
        assert!(options.check().is_ok());
        for bad in [
            LedgerOptions {
                wallets: 0,
                ..options.clone()
            },
            LedgerOptions {
                wallet_funds: 0,
                ..options.clone()
            },
            LedgerOptions {
                max_hold: 0,
                ..options.clone()
            },
            LedgerOptions {
                max_hold: MAX_AMOUNT + 1,
                ..options.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn insufficient_funds_are_counted_apart_from_errors() {
        let mut stats = LedgerStats::default();
        let ms = Duration::from_millis;
        stats.record(Operation::Hold, ms(1), &Ok(()));
        stats.record(Operation::Release, ms(2), &Ok(()));
        stats.record(
            Operation::Hold,
            ms(1),
            &Err(OperationError::InsufficientFunds),
        );
        stats.record(
            Operation::Hold,
            ms(1),
            &Err(OperationError::Failed(Status::internal("boom"))),
        );
        stats.record(
            Operation::Release,
            ms(9),
            &Err(OperationError::Abandoned(ms(5))),
        );
        assert_eq!(stats.entries(), 2);
        assert_eq!(stats.operations(), 5);
        assert_eq!(stats.insufficient_funds, 1);
        assert_eq!(stats.errors(), 2);
        assert_eq!(stats.abandoned, 1);
        assert_eq!(
            stats.hold.status_codes().get("FailedPrecondition"),
            Some(&1)
        );
        assert!(is_insufficient_funds(
            &OperationError::InsufficientFunds.status()
        ));
        assert_eq!(stats.all_operations().count(), 5);

        let mut merged = LedgerStats::default();
        merged.merge(&stats);
        merged.merge(&stats);
        assert_eq!(merged.entries(), 4);
        assert_eq!(merged.insufficient_funds, 2);
        assert_eq!(merged.abandoned, 2);
    }

    #[test]
    fn ledger_errors_keep_the_api_code() {
        let OperationError::Failed(status) = OperationError::from(LedgerError::HoldNotFound) else {
            panic!("not a failure");
        };
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "no hold with this reference");
        assert!(matches!(
            OperationError::from(LedgerError::InsufficientFunds),
            OperationError::InsufficientFunds
        ));
    }

    #[test]
    fn books_flag_each_broken_invariant() {
        let good = Books {
            entries: 10,
            lines: 20,
            accounts: 5,
            unbalanced_entries: 0,
            short_entries: 0,
            negative_balances: 0,
            drifted_balances: 0,
            sum_of_lines: 0,
            run_entries: 8,
            driver_entries: Some(8),
        };
        assert!(good.balanced() && good.ok());
        assert_eq!(good.counted_right(), Some(true));
        for bad in [
            Books {
                unbalanced_entries: 1,
                ..good.clone()
            },
            Books {
                short_entries: 1,
                ..good.clone()
            },
            Books {
                negative_balances: 1,
                ..good.clone()
            },
            Books {
                drifted_balances: 1,
                ..good.clone()
            },
            Books {
                sum_of_lines: -3,
                ..good.clone()
            },
        ] {
            assert!(!bad.balanced() && !bad.ok(), "{bad:?}");
        }
        let miscounted = Books {
            driver_entries: Some(7),
            ..good.clone()
        };
        assert!(miscounted.balanced() && !miscounted.ok());
        let unknown = Books {
            driver_entries: None,
            ..good
        };
        assert_eq!(unknown.counted_right(), None);
        assert!(unknown.ok());
    }
}
