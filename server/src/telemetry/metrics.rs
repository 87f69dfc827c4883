//! Every Prometheus metric Namaskah exports: the names, their label sets, and one small
//! function per thing worth counting, so that the rooms call `metrics::topup("credited")`
//! instead of spelling metric names and labels themselves.
//!
//! Label values are always bounded: a label either takes a `&'static str` from a fixed set
//! in the code (a status, a kind, an outcome), or — for the few that come from data, such
//! as a catalog service code — passes through [`Bounded`], which keeps at most a fixed
//! number of distinct values and calls the rest `other`. No account ids, no raw paths.
//!
//! The recorder is process-wide (the `metrics` crate has one global recorder): it is
//! installed the first time an application starts with `NAMASKAH_METRICS_ADDR` on, and
//! every application in the process (tests start several) serves the same registry.
//! Without a recorder every function here is a cheap no-op.
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The metric names, in one place (the dashboards and alert rules in `deploy/` use them).
pub mod names {
    /// Histogram of gRPC calls by `service`, `method` and `code`, in seconds. A unary call
    /// ends with its trailers; a stream when its response body ends.
    pub const REQUEST_DURATION: &str = "request_duration_seconds";
    /// Calls slower than `NAMASKAH_SLOW_CALL_THRESHOLD`, by `service` and `method`.
    pub const SLOW_REQUESTS: &str = "slow_requests_total";
    /// Distinct accounts that made an authenticated call in the last 5 minutes (this
    /// instance).
    pub const ACTIVE_USERS: &str = "active_users_total";
    /// Server streams open now, by `service` and `method`.
    pub const OPEN_STREAMS: &str = "open_streams";
    /// Histogram of database statements by `operation` (select, insert, …), in seconds.
    pub const DB_QUERY_DURATION: &str = "db_query_duration_seconds";
    /// Database statements that failed, by `operation`.
    pub const DB_QUERY_ERRORS: &str = "db_query_errors_total";
    /// Connections of the database pool by `state` (`in_use`, `idle`).
    pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
    /// The pool's configured maximum.
    pub const DB_POOL_MAX: &str = "db_pool_max_connections";
    /// Cache lookups by `cache` (`in-process`, `redis`, `near`) and `result` (`hit`,
    /// `miss`, `error`).
    pub const CACHE_REQUESTS: &str = "cache_requests_total";
    /// Calls to number providers by `provider`, `operation` and `outcome`.
    pub const PROVIDER_CALLS: &str = "provider_calls_total";
    /// Histogram of provider calls by `provider` and `operation`, in seconds.
    pub const PROVIDER_CALL_DURATION: &str = "provider_call_duration_seconds";
    /// Top-ups by `outcome` (started, gateway_unavailable, gateway_refused, credited,
    /// failed, refused).
    pub const TOPUPS: &str = "topups_total";
    /// Money credited by top-ups, in minor units, by `currency`.
    pub const TOPUP_CREDITED: &str = "topup_credited_minor_units_total";
    /// Verification state changes by catalog `service` and the `status` reached.
    pub const VERIFICATIONS: &str = "verifications_total";
    /// Ledger entries written, by `kind`.
    pub const LEDGER_ENTRIES: &str = "ledger_entries_total";
    /// Money moved by ledger entries, in minor units, by `kind`.
    pub const LEDGER_AMOUNT: &str = "ledger_amount_minor_units_total";
    /// Calls refused by the rate limiter, by `plan` (or `address` for per-address limits).
    pub const RATE_LIMITED: &str = "rate_limited_total";
    /// Verifications still active a minute after they expired: refunds due and not made.
    pub const REFUND_BACKLOG: &str = "verification_refund_backlog";

    /// Every name above (the dashboards and alerts are checked against it).
    pub const ALL: &[&str] = &[
        REQUEST_DURATION,
        SLOW_REQUESTS,
        ACTIVE_USERS,
        OPEN_STREAMS,
        DB_QUERY_DURATION,
        DB_QUERY_ERRORS,
        DB_POOL_CONNECTIONS,
        DB_POOL_MAX,
        CACHE_REQUESTS,
        PROVIDER_CALLS,
        PROVIDER_CALL_DURATION,
        TOPUPS,
        TOPUP_CREDITED,
        VERIFICATIONS,
        LEDGER_ENTRIES,
        LEDGER_AMOUNT,
        RATE_LIMITED,
        REFUND_BACKLOG,
    ];
}

/// Buckets of `request_duration_seconds`: 1 ms to 10 s.
pub const REQUEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of database statements: 100 µs to 5 s.
pub const DB_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Buckets of provider calls: 10 ms to 30 s.
pub const PROVIDER_BUCKETS: &[f64] =
    &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once) and returns its handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(names::REQUEST_DURATION.to_owned()),
            REQUEST_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::DB_QUERY_DURATION.to_owned()),
            DB_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::PROVIDER_CALL_DURATION.to_owned()),
            PROVIDER_BUCKETS,
        )?
        .build_recorder();
    let handle = recorder.handle();
    // Two applications starting at once: the first recorder wins and both use its handle.
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle);
        describe();
    }
    HANDLE
        .get()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("another metrics recorder is installed in this process"))
}

fn describe() {
    use names::*;
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "gRPC calls by service, method and status code"
    );
    describe_counter!(
        SLOW_REQUESTS,
        "calls slower than NAMASKAH_SLOW_CALL_THRESHOLD"
    );
    describe_gauge!(
        ACTIVE_USERS,
        "distinct accounts seen in the last 5 minutes on this instance"
    );
    describe_gauge!(OPEN_STREAMS, "server streams open now");
    describe_histogram!(
        DB_QUERY_DURATION,
        Unit::Seconds,
        "database statements by operation"
    );
    describe_counter!(DB_QUERY_ERRORS, "database statements that failed");
    describe_gauge!(DB_POOL_CONNECTIONS, "database pool connections by state");
    describe_gauge!(DB_POOL_MAX, "database pool size limit");
    describe_counter!(CACHE_REQUESTS, "cache lookups by cache and result");
    describe_counter!(
        PROVIDER_CALLS,
        "calls to number providers by provider, operation and outcome"
    );
    describe_histogram!(
        PROVIDER_CALL_DURATION,
        Unit::Seconds,
        "calls to number providers"
    );
    describe_counter!(TOPUPS, "wallet top-ups by outcome");
    describe_counter!(TOPUP_CREDITED, "money credited by top-ups (minor units)");
    describe_counter!(
        VERIFICATIONS,
        "verification state changes by service and status reached"
    );
    describe_counter!(LEDGER_ENTRIES, "ledger entries by kind");
    describe_counter!(LEDGER_AMOUNT, "money moved by ledger entries (minor units)");
    describe_counter!(RATE_LIMITED, "calls refused by the rate limiter by plan");
    describe_gauge!(
        REFUND_BACKLOG,
        "verifications still active a minute after their expiry (refunds due)"
    );
}

/// A label whose values come from data (catalog codes): at most `cap` distinct values are
/// ever exported, the rest are `other`; values that do not look like codes are `other`
/// too.
pub struct Bounded {
    cap: usize,
    seen: Mutex<Vec<&'static str>>,
}

impl Bounded {
    pub const fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: Mutex::new(Vec::new()),
        }
    }

    pub fn get(&'static self, value: &str) -> &'static str {
        let looks_like_code = !value.is_empty()
            && value.len() <= 32
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        if !looks_like_code {
            return "other";
        }
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = seen.iter().copied().find(|known| *known == value) {
            return known;
        }
        if seen.len() >= self.cap {
            return "other";
        }
        // Leaked once per distinct value, and there are at most `cap` of them.
        let leaked: &'static str = Box::leak(value.to_owned().into_boxed_str());
        seen.push(leaked);
        leaked
    }
}

/// Catalog service codes as labels (the catalog has 54; room for growth).
static SERVICE_CODES: Bounded = Bounded::new(256);

fn one_of(value: &str, known: &[&'static str]) -> &'static str {
    known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(value))
        .copied()
        .unwrap_or("other")
}

// ---- requests (recorded by the telemetry layer) ----

/// One finished gRPC call.
pub fn request_finished(
    service: &'static str,
    method: &'static str,
    code: &'static str,
    elapsed: Duration,
) {
    histogram!(names::REQUEST_DURATION, "service" => service, "method" => method, "code" => code)
        .record(elapsed.as_secs_f64());
}

/// One call slower than the threshold.
pub fn slow_request(service: &'static str, method: &'static str) {
    counter!(names::SLOW_REQUESTS, "service" => service, "method" => method).increment(1);
}

/// A server stream opened (`+1`) or ended (`-1`).
pub fn stream_opened(service: &'static str, method: &'static str) {
    gauge!(names::OPEN_STREAMS, "service" => service, "method" => method).increment(1.0);
}

pub fn stream_closed(service: &'static str, method: &'static str) {
    gauge!(names::OPEN_STREAMS, "service" => service, "method" => method).decrement(1.0);
}

/// The active-user estimate, set when `/metrics` is scraped.
pub fn set_active_users(count: u64) {
    gauge!(names::ACTIVE_USERS).set(count as f64);
}

/// The refund backlog, set when `/metrics` is scraped.
pub fn set_refund_backlog(count: u64) {
    gauge!(names::REFUND_BACKLOG).set(count as f64);
}

// ---- database (recorded by `store`) ----

const SQL_OPERATIONS: &[&str] = &[
    "select",
    "insert",
    "update",
    "delete",
    "begin",
    "commit",
    "rollback",
    "savepoint",
    "release",
    "with",
    "pragma",
    "create",
    "alter",
    "drop",
    "set",
    "lock",
];

/// The operation of a SQL statement: its first keyword, from a fixed list.
pub fn sql_operation(sql: &str) -> &'static str {
    let word = sql
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    one_of(word, SQL_OPERATIONS)
}

/// One database statement.
pub fn db_query(operation: &'static str, elapsed: Duration, failed: bool) {
    histogram!(names::DB_QUERY_DURATION, "operation" => operation).record(elapsed.as_secs_f64());
    if failed {
        counter!(names::DB_QUERY_ERRORS, "operation" => operation).increment(1);
    }
}

/// The pool's use now.
pub fn db_pool(in_use: u64, idle: u64, max: u64) {
    gauge!(names::DB_POOL_CONNECTIONS, "state" => "in_use").set(in_use as f64);
    gauge!(names::DB_POOL_CONNECTIONS, "state" => "idle").set(idle as f64);
    gauge!(names::DB_POOL_MAX).set(max as f64);
}

// ---- cache (recorded by `cache`) ----

/// One cache lookup: `cache` is `in-process`, `redis` or `near` (Redis's in-instance
/// copies); `result` is `hit`, `miss` or `error`.
pub fn cache_lookup(cache: &'static str, result: &'static str) {
    counter!(names::CACHE_REQUESTS, "cache" => cache, "result" => result).increment(1);
}

// ---- providers (recorded by `providers::Instrumented`) ----

/// One call to a number provider. `operation` is rent, poll, cancel, finish or report;
/// `outcome` is `ok` or the error's kind (no_numbers, timeout, upstream, …).
pub fn provider_call(
    provider: &'static str,
    operation: &'static str,
    outcome: &'static str,
    elapsed: Duration,
) {
    counter!(names::PROVIDER_CALLS, "provider" => provider, "operation" => operation, "outcome" => outcome)
        .increment(1);
    histogram!(names::PROVIDER_CALL_DURATION, "provider" => provider, "operation" => operation)
        .record(elapsed.as_secs_f64());
}

// ---- top-ups (recorded by `payments`) ----

/// Outcomes of [`topup`].
pub const TOPUP_OUTCOMES: &[&str] = &[
    "started",
    "gateway_unavailable",
    "gateway_refused",
    "credited",
    "failed",
    "refused",
];

/// One top-up event: `started` (registered with the gateway), `gateway_unavailable` /
/// `gateway_refused` (could not start), `credited`, `failed` (declined), `refused` (a
/// confirmation with the wrong amount or currency).
pub fn topup(outcome: &'static str) {
    counter!(names::TOPUPS, "outcome" => outcome).increment(1);
}

/// Money credited to a wallet by a top-up.
pub fn topup_credited(currency: &'static str, minor_units: i64) {
    if minor_units > 0 {
        counter!(names::TOPUP_CREDITED, "currency" => currency).increment(minor_units as u64);
    }
}

// ---- for the other rooms ----

const VERIFICATION_STATUSES: &[&str] = &[
    "pending",
    "active",
    "completed",
    "cancelled",
    "expired",
    "failed",
];

/// A verification reached `status` (pending, active, completed, cancelled, expired,
/// failed; any other is `other`). `service` must be a catalog code (at most 256 distinct
/// values are exported). Call once per committed transition.
pub fn verification(service: &str, status: &str) {
    let service = SERVICE_CODES.get(&service.to_ascii_lowercase());
    let status = one_of(status, VERIFICATION_STATUSES);
    counter!(names::VERIFICATIONS, "service" => service, "status" => status).increment(1);
}

/// A ledger entry of `kind` (`EntryKind::as_str()`) moving `minor_units` was written.
/// Call after the transaction committed, once per new entry (not for `Posted::Already`).
pub fn ledger_entry(kind: &'static str, minor_units: i64) {
    counter!(names::LEDGER_ENTRIES, "kind" => kind).increment(1);
    if minor_units > 0 {
        counter!(names::LEDGER_AMOUNT, "kind" => kind).increment(minor_units as u64);
    }
}

const PLANS: &[&str] = &["starter", "pro", "enterprise", "sensitive", "anonymous"];

/// A call refused by the rate limiter: `plan` is the caller's plan (starter, pro,
/// enterprise), or `sensitive` / `anonymous` for the per-address limits.
pub fn rate_limited(plan: &str) {
    counter!(names::RATE_LIMITED, "plan" => one_of(plan, PLANS)).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metric names the shipped dashboard and alert rules use all exist.
    #[test]
    fn deploy_files_name_only_exported_metrics() {
        let files = [
            include_str!("../../../deploy/grafana/namaskah.json"),
            include_str!("../../../deploy/prometheus/alerts.yml"),
        ];
        let suffixes = [
            "_total",
            "_seconds",
            "_connections",
            "_backlog",
            "open_streams",
        ];
        let mut checked = 0;
        for text in files {
            for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                let base = ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s))
                    .unwrap_or(word);
                if base.contains('_') && suffixes.iter().any(|s| base.ends_with(s)) {
                    assert!(names::ALL.contains(&base), "{base} is not exported");
                    checked += 1;
                }
            }
        }
        assert!(checked > 20, "only {checked} metric names found");
    }

    #[test]
    fn sql_operations_are_bounded() {
        assert_eq!(sql_operation("SELECT * FROM users"), "select");
        assert_eq!(sql_operation("  insert into x values ($1)"), "insert");
        assert_eq!(sql_operation("WITH t AS (select 1) select 1"), "with");
        assert_eq!(sql_operation("VACUUM"), "other");
        assert_eq!(sql_operation(""), "other");
    }

    #[test]
    fn bounded_labels_stop_at_their_cap() {
        static LABELS: Bounded = Bounded::new(2);
        assert_eq!(LABELS.get("whatsapp"), "whatsapp");
        assert_eq!(LABELS.get("telegram"), "telegram");
        assert_eq!(LABELS.get("google"), "other");
        assert_eq!(LABELS.get("whatsapp"), "whatsapp");
        assert_eq!(LABELS.get("/etc/passwd"), "other");
        assert_eq!(LABELS.get(&"x".repeat(100)), "other");
    }

    #[test]
    fn helper_functions_export_their_names_and_labels() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            verification("WhatsApp", "completed");
            verification("whatsapp", "no-such-status");
            ledger_entry("verification_capture", 125);
            rate_limited("pro");
            rate_limited("someone@example.com");
            topup("credited");
            topup_credited("USD", 1000);
        });
        let text = handle.render();
        assert!(
            text.contains(r#"verifications_total{service="whatsapp",status="completed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"verifications_total{service="whatsapp",status="other"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ledger_entries_total{kind="verification_capture"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"ledger_amount_minor_units_total{kind="verification_capture"} 125"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rate_limited_total{plan="pro"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rate_limited_total{plan="other"} 1"#),
            "{text}"
        );
        assert!(!text.contains("example.com"), "{text}");
        assert!(
            text.contains(r#"topups_total{outcome="credited"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"topup_credited_minor_units_total{currency="USD"} 1000"#),
            "{text}"
        );
    }
}
