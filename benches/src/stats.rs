//! What the workers measure: every call's latency and outcome, kept per worker without
//! locks and merged once the run is over.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use tonic::{Code, Status};

/// Latencies are recorded in microseconds, from 1 µs up to an hour, to three significant
/// digits (hdrhistogram's usual precision: each value within 0.1 %).
const HIGHEST_TRACKABLE_MICROS: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// Distinct error messages kept; further ones are counted under [`OTHER_ERRORS`], so that
/// messages carrying ids cannot grow the report without bound.
pub const MAX_DISTINCT_ERRORS: usize = 256;
/// The `errorDistribution` key for errors past [`MAX_DISTINCT_ERRORS`] distinct messages.
pub const OTHER_ERRORS: &str = "(other errors: too many distinct messages to list)";

/// The name ghz (and grpc-go) gives a status code: `OK`, `Unavailable`, `DeadlineExceeded`…
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// An error as ghz writes it in `errorDistribution`: `rpc error: code = X desc = message`.
pub fn error_key(status: &Status) -> String {
    format!(
        "rpc error: code = {} desc = {}",
        code_name(status.code()),
        status.message()
    )
}

/// Counts and latencies of the calls one worker (or, merged, the whole run) made.
///
/// As in ghz, the latency distribution, fastest and slowest cover successful calls only,
/// while the count and the average cover every call.
#[derive(Debug, Clone)]
pub struct CallStats {
    ok_latencies_micros: Histogram<u64>,
    count: u64,
    latency_sum: Duration,
    fastest_ok: Option<Duration>,
    slowest_ok: Option<Duration>,
    status_codes: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
}

impl Default for CallStats {
    fn default() -> Self {
        Self::new()
    }
}

impl CallStats {
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, HIGHEST_TRACKABLE_MICROS, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        Self {
            ok_latencies_micros: histogram,
            count: 0,
            latency_sum: Duration::ZERO,
            fastest_ok: None,
            slowest_ok: None,
            status_codes: BTreeMap::new(),
            errors: BTreeMap::new(),
        }
    }

    /// Records one finished call.
    pub fn record(&mut self, latency: Duration, outcome: &Result<(), Status>) {
        match outcome {
            Ok(()) => self.record_ok(latency),
            Err(status) => self.record_error(latency, status),
        }
    }

    pub fn record_ok(&mut self, latency: Duration) {
        self.count_call(latency, Code::Ok);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.ok_latencies_micros.saturating_record(micros);
        self.fastest_ok = Some(self.fastest_ok.map_or(latency, |f| f.min(latency)));
        self.slowest_ok = Some(self.slowest_ok.map_or(latency, |s| s.max(latency)));
    }

    pub fn record_error(&mut self, latency: Duration, status: &Status) {
        self.count_call(latency, status.code());
        self.count_error(error_key(status), 1);
    }

    fn count_call(&mut self, latency: Duration, code: Code) {
        self.count += 1;
        self.latency_sum = self.latency_sum.saturating_add(latency);
        *self.status_codes.entry(code_name(code)).or_default() += 1;
    }

    fn count_error(&mut self, key: String, n: u64) {
        if let Some(count) = self.errors.get_mut(&key) {
            *count += n;
        } else if self.errors.len() < MAX_DISTINCT_ERRORS || key == OTHER_ERRORS {
            self.errors.insert(key, n);
        } else {
            *self.errors.entry(OTHER_ERRORS.to_owned()).or_default() += n;
        }
    }

    /// Adds another worker's figures to these.
    pub fn merge(&mut self, other: &CallStats) {
        if self
            .ok_latencies_micros
            .add(&other.ok_latencies_micros)
            .is_err()
        {
            // Unreachable with identical bounds; re-record value by value to be safe.
            for value in other.ok_latencies_micros.iter_recorded() {
                for _ in 0..value.count_at_value() {
                    self.ok_latencies_micros
                        .saturating_record(value.value_iterated_to());
                }
            }
        }
        self.count += other.count;
        self.latency_sum = self.latency_sum.saturating_add(other.latency_sum);
        self.fastest_ok = match (self.fastest_ok, other.fastest_ok) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.slowest_ok = match (self.slowest_ok, other.slowest_ok) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (code, n) in &other.status_codes {
            *self.status_codes.entry(code).or_default() += n;
        }
        for (key, n) in &other.errors {
            self.count_error(key.clone(), *n);
        }
    }

    /// Every call, successful or not.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Successful calls.
    pub fn ok_count(&self) -> u64 {
        self.ok_latencies_micros.len()
    }

    /// The mean latency of every call, successful or not.
    pub fn average(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let nanos = self.latency_sum.as_nanos() / u128::from(self.count);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    pub fn fastest(&self) -> Option<Duration> {
        self.fastest_ok
    }

    pub fn slowest(&self) -> Option<Duration> {
        self.slowest_ok
    }

    /// The latency under which `percent` % of successful calls finished (`None` before
    /// any succeeded), kept within the exact fastest and slowest.
    pub fn percentile(&self, percent: f64) -> Option<Duration> {
        let (fastest, slowest) = (self.fastest_ok?, self.slowest_ok?);
        let micros = self
            .ok_latencies_micros
            .value_at_quantile((percent / 100.0).clamp(0.0, 1.0));
        Some(Duration::from_micros(micros).clamp(fastest, slowest))
    }

    /// The distinct recorded latencies of successful calls, ascending, with their counts
    /// (each value is its histogram bucket's upper edge, within 0.1 %).
    pub fn latency_counts(&self) -> Vec<(Duration, u64)> {
        self.ok_latencies_micros
            .iter_recorded()
            .map(|v| {
                (
                    Duration::from_micros(v.value_iterated_to()),
                    v.count_at_value(),
                )
            })
            .collect()
    }

    /// Calls by status code name (`OK`, `Unavailable`, …).
    pub fn status_codes(&self) -> &BTreeMap<&'static str, u64> {
        &self.status_codes
    }

    /// Failed calls by error message.
    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn code_names_match_grpc_go() {
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::Cancelled), "Canceled");
        assert_eq!(code_name(Code::Unavailable), "Unavailable");
        assert_eq!(code_name(Code::ResourceExhausted), "ResourceExhausted");
        assert_eq!(code_name(Code::Unauthenticated), "Unauthenticated");
    }

    #[test]
    fn error_keys_look_like_ghz() {
        let status = Status::unavailable("connection refused");
        assert_eq!(
            error_key(&status),
            "rpc error: code = Unavailable desc = connection refused"
        );
    }

    #[test]
    fn percentiles_of_one_to_a_hundred_ms() {
        let mut stats = CallStats::new();
        for n in 1..=100 {
            stats.record(ms(n), &Ok(()));
        }
        assert_eq!(stats.count(), 100);
        assert_eq!(stats.ok_count(), 100);
        assert_eq!(stats.fastest(), Some(ms(1)));
        assert_eq!(stats.slowest(), Some(ms(100)));
        assert_eq!(stats.average(), Duration::from_micros(50_500));
        for (percent, expected) in [(50.0, 50), (95.0, 95), (99.0, 99), (100.0, 100)] {
            let got = stats.percentile(percent).unwrap();
            let expected = ms(expected);
            // hdrhistogram keeps three significant digits: within 0.1 %.
            let tolerance = expected / 1000 + Duration::from_micros(1);
            assert!(
                got >= expected && got <= expected + tolerance,
                "p{percent}: got {got:?}, expected about {expected:?}"
            );
        }
    }

    #[test]
    fn errors_count_in_the_average_but_not_the_latency_distribution() {
        let mut stats = CallStats::new();
        stats.record(ms(10), &Ok(()));
        stats.record(ms(30), &Err(Status::unavailable("down")));
        stats.record(ms(50), &Err(Status::unavailable("down")));
        stats.record(ms(2), &Err(Status::resource_exhausted("slow down")));
        assert_eq!(stats.count(), 4);
        assert_eq!(stats.ok_count(), 1);
        assert_eq!(stats.average(), Duration::from_micros(23_000));
        assert_eq!(stats.fastest(), Some(ms(10)));
        assert_eq!(stats.slowest(), Some(ms(10)));
        assert_eq!(stats.percentile(99.0), Some(ms(10)));
        assert_eq!(stats.status_codes().get("OK"), Some(&1));
        assert_eq!(stats.status_codes().get("Unavailable"), Some(&2));
        assert_eq!(stats.status_codes().get("ResourceExhausted"), Some(&1));
        assert_eq!(
            stats
                .errors()
                .get("rpc error: code = Unavailable desc = down"),
            Some(&2)
        );
    }

    #[test]
    fn no_successes_means_no_percentiles() {
        let mut stats = CallStats::new();
        assert_eq!(stats.percentile(50.0), None);
        assert_eq!(stats.average(), Duration::ZERO);
        stats.record(ms(5), &Err(Status::internal("boom")));
        assert_eq!(stats.percentile(50.0), None);
        assert_eq!(stats.fastest(), None);
    }

    #[test]
    fn merging_workers_equals_recording_in_one() {
        let mut one = CallStats::new();
        let mut a = CallStats::new();
        let mut b = CallStats::new();
        for n in 1..=200u64 {
            let outcome = if n % 7 == 0 {
                Err(Status::unavailable("down"))
            } else {
                Ok(())
            };
            one.record(ms(n), &outcome);
            if n % 2 == 0 {
                a.record(ms(n), &outcome);
            } else {
                b.record(ms(n), &outcome);
            }
        }
        let mut merged = CallStats::new();
        merged.merge(&a);
        merged.merge(&b);
        assert_eq!(merged.count(), one.count());
        assert_eq!(merged.ok_count(), one.ok_count());
        assert_eq!(merged.average(), one.average());
        assert_eq!(merged.fastest(), one.fastest());
        assert_eq!(merged.slowest(), one.slowest());
        assert_eq!(merged.status_codes(), one.status_codes());
        assert_eq!(merged.errors(), one.errors());
        for p in [10.0, 50.0, 90.0, 99.0] {
            assert_eq!(merged.percentile(p), one.percentile(p));
        }
    }

    #[test]
    fn distinct_error_messages_are_bounded() {
        let mut stats = CallStats::new();
        for n in 0..(MAX_DISTINCT_ERRORS + 10) {
            stats.record(ms(1), &Err(Status::not_found(format!("thing {n}"))));
        }
        assert_eq!(stats.errors().len(), MAX_DISTINCT_ERRORS + 1);
        assert_eq!(stats.errors().get(OTHER_ERRORS), Some(&10));
        assert_eq!(stats.errors().values().sum::<u64>(), stats.count());
    }

    #[test]
    fn sub_microsecond_calls_are_recorded() {
        let mut stats = CallStats::new();
        stats.record(Duration::from_nanos(300), &Ok(()));
        assert_eq!(stats.ok_count(), 1);
        assert_eq!(stats.percentile(50.0), Some(Duration::from_nanos(300)));
    }
}
