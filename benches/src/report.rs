//! The figures of a run, as text for people and as JSON shaped like ghz's report, so that
//! tools reading ghz output (ghz-web, scripts, dashboards) read ours too.
//!
//! ghz's JSON: durations are integer nanoseconds (Go's `time.Duration`), `date` is RFC 3339,
//! `latencyDistribution` lists the 10/25/50/75/90/95/99th percentiles, `histogram` has eleven
//! buckets from fastest to slowest with their marks in seconds. As in ghz, latencies,
//! fastest and slowest cover successful calls only; count, average and RPS cover every call.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::duration::{format_duration_short, format_latency};
use crate::stats::CallStats;

/// The percentiles ghz reports.
pub const GHZ_PERCENTILES: [u32; 7] = [10, 25, 50, 75, 90, 95, 99];

/// ghz's number of histogram buckets (plus one for the slowest call).
const HISTOGRAM_BUCKETS: usize = 10;

/// Why the run ended, in ghz's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The requested number of calls was made.
    Normal,
    /// The requested duration passed.
    Timeout,
    /// Interrupted (Ctrl-C) before the end.
    Cancel,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Normal => "normal",
            EndReason::Timeout => "timeout",
            EndReason::Cancel => "cancel",
        }
    }
}

/// How the run was set up: what ghz calls its options.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDescription {
    /// A name for the run (`--name`), if given.
    pub name: Option<String>,
    /// The driver's scenario name (`get_me`).
    pub scenario: String,
    /// The fully qualified method, `package.Service.Method`.
    pub call: String,
    /// The server address as given (`http://127.0.0.1:50051`).
    pub host: String,
    /// HTTP/2 connections (gRPC scenarios) or database connections (ledger).
    pub connections: u64,
    pub concurrency: u64,
    /// What one worker turn is, plural: `calls`, or `cycles` (ledger: a hold and its
    /// release).
    pub unit: &'static str,
    /// `--total`, when the run was bounded by a count (of [`RunDescription::unit`]).
    pub total_requests: Option<u64>,
    /// `--duration`, when the run was bounded by time.
    pub duration: Option<Duration>,
    pub warmup: Duration,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The request message, as JSON, with secrets redacted.
    pub data: serde_json::Value,
    /// The request metadata, with secrets redacted.
    pub metadata: BTreeMap<String, String>,
    pub cpus: u64,
}

/// The figures of a finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub end_reason: EndReason,
    pub count: u64,
    pub ok_count: u64,
    /// Wall time of the measured part of the run (after the warm-up).
    pub total: Duration,
    pub average: Duration,
    pub fastest: Duration,
    pub slowest: Duration,
    pub rps: f64,
    /// `(percent, latency)` for each of [`GHZ_PERCENTILES`]; empty when no call succeeded.
    pub latency_distribution: Vec<(u32, Duration)>,
    pub histogram: Vec<Bucket>,
    pub status_codes: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
}

/// One histogram bucket: calls no slower than `mark` (and slower than the previous mark).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    /// The bucket's upper edge, in seconds.
    pub mark: f64,
    pub count: u64,
    /// `count` as a fraction of all successful calls.
    pub frequency: f64,
}

impl Summary {
    /// Computes the figures from the merged stats and the measured wall time.
    pub fn compute(stats: &CallStats, total: Duration, end_reason: EndReason) -> Self {
        let count = stats.count();
        let rps = if total.is_zero() {
            0.0
        } else {
            count as f64 / total.as_secs_f64()
        };
        let (fastest, slowest) = match (stats.fastest(), stats.slowest()) {
            (Some(fastest), Some(slowest)) => (fastest, slowest),
            _ => (Duration::ZERO, Duration::ZERO),
        };
        let latency_distribution = GHZ_PERCENTILES
            .iter()
            .filter_map(|&p| stats.percentile(f64::from(p)).map(|lat| (p, lat)))
            .collect();
        let histogram = if stats.ok_count() == 0 {
            Vec::new()
        } else {
            histogram_buckets(&stats.latency_counts(), fastest, slowest)
        };
        Summary {
            end_reason,
            count,
            ok_count: stats.ok_count(),
            total,
            average: stats.average(),
            fastest,
            slowest,
            rps,
            latency_distribution,
            histogram,
            status_codes: stats
                .status_codes()
                .iter()
                .map(|(code, n)| ((*code).to_owned(), *n))
                .collect(),
            errors: stats.errors().clone(),
        }
    }

    /// The latency at `percent`, if it is one of [`GHZ_PERCENTILES`] and any call succeeded.
    pub fn percentile(&self, percent: u32) -> Option<Duration> {
        self.latency_distribution
            .iter()
            .find(|(p, _)| *p == percent)
            .map(|(_, latency)| *latency)
    }
}

/// ghz's histogram: eleven marks, ten equal steps from fastest then the slowest; each
/// latency counts in the first bucket whose mark is at least the latency. `latencies` are
/// `(latency, count)` pairs in ascending order.
pub fn histogram_buckets(
    latencies: &[(Duration, u64)],
    fastest: Duration,
    slowest: Duration,
) -> Vec<Bucket> {
    // Integer nanoseconds, so that a latency on a mark lands in that mark's bucket.
    let fastest_ns = fastest.as_nanos();
    let span_ns = slowest.as_nanos().saturating_sub(fastest_ns);
    let steps = HISTOGRAM_BUCKETS as u128;
    let mut counts = vec![0u64; HISTOGRAM_BUCKETS + 1];
    for &(latency, n) in latencies {
        let above_fastest = latency.as_nanos().saturating_sub(fastest_ns);
        let index = if above_fastest == 0 {
            0
        } else if span_ns == 0 {
            HISTOGRAM_BUCKETS
        } else {
            // The first i with fastest + span·i/steps ≥ latency, capped at the last bucket.
            (above_fastest * steps).div_ceil(span_ns).min(steps) as usize
        };
        counts[index] += n;
    }
    let all: u64 = counts.iter().sum();
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| {
            let mark_ns = fastest_ns + span_ns * i as u128 / steps;
            Bucket {
                mark: mark_ns as f64 / 1e9,
                count,
                frequency: if all == 0 {
                    0.0
                } else {
                    count as f64 / all as f64
                },
            }
        })
        .collect()
}

/// The JSON report, field for field as ghz writes it (`-O json`).
#[derive(Debug, Clone, Serialize)]
pub struct GhzReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "endReason")]
    pub end_reason: &'static str,
    pub options: GhzOptions,
    pub date: String,
    pub count: u64,
    /// Nanoseconds.
    pub total: u64,
    pub average: u64,
    pub fastest: u64,
    pub slowest: u64,
    pub rps: f64,
    #[serde(rename = "errorDistribution")]
    pub error_distribution: BTreeMap<String, u64>,
    #[serde(rename = "statusCodeDistribution")]
    pub status_code_distribution: BTreeMap<String, u64>,
    #[serde(rename = "latencyDistribution")]
    pub latency_distribution: Vec<GhzLatency>,
    pub histogram: Vec<Bucket>,
    /// ghz lists every call here; this driver keeps only aggregates, so it is empty.
    pub details: Vec<serde_json::Value>,
    /// Driver facts ghz has no field for: scenario, warm-up, successful calls.
    pub tags: BTreeMap<String, String>,
}

/// ghz's `options` object (only the fields that mean something here).
#[derive(Debug, Clone, Serialize)]
pub struct GhzOptions {
    pub host: String,
    pub call: String,
    pub insecure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    pub concurrency: u64,
    pub connections: u64,
    /// Nanoseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    pub timeout: u64,
    #[serde(rename = "dial-timeout")]
    pub dial_timeout: u64,
    pub data: serde_json::Value,
    pub binary: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(rename = "CPUs")]
    pub cpus: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One `latencyDistribution` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GhzLatency {
    pub percentage: u32,
    /// Nanoseconds.
    pub latency: u64,
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl GhzReport {
    /// `date` is RFC 3339, as ghz writes it (the time the report was made).
    pub fn new(run: &RunDescription, summary: &Summary, date: String) -> Self {
        let mut tags = BTreeMap::new();
        tags.insert("scenario".to_owned(), run.scenario.clone());
        tags.insert("warmup".to_owned(), format_duration_short(run.warmup));
        tags.insert("okCount".to_owned(), summary.ok_count.to_string());
        tags.insert("driver".to_owned(), DRIVER.to_owned());
        if run.unit != "calls" {
            // `options.total` counts these, not calls.
            tags.insert("unit".to_owned(), run.unit.to_owned());
        }
        GhzReport {
            name: run.name.clone(),
            end_reason: summary.end_reason.as_str(),
            options: GhzOptions {
                host: run.host.clone(),
                call: run.call.clone(),
                insecure: run.host.starts_with("http://"),
                total: run.total_requests,
                concurrency: run.concurrency,
                connections: run.connections,
                duration: run.duration.map(nanos),
                timeout: nanos(run.timeout),
                dial_timeout: nanos(run.connect_timeout),
                data: run.data.clone(),
                binary: false,
                metadata: run.metadata.clone(),
                cpus: run.cpus,
                name: run.name.clone(),
            },
            date,
            count: summary.count,
            total: nanos(summary.total),
            average: nanos(summary.average),
            fastest: nanos(summary.fastest),
            slowest: nanos(summary.slowest),
            rps: summary.rps,
            error_distribution: summary.errors.clone(),
            status_code_distribution: summary.status_codes.clone(),
            latency_distribution: summary
                .latency_distribution
                .iter()
                .map(|&(percentage, latency)| GhzLatency {
                    percentage,
                    latency: nanos(latency),
                })
                .collect(),
            histogram: summary.histogram.clone(),
            details: Vec::new(),
            tags,
        }
    }
}

const DRIVER: &str = concat!("namaskah-load ", env!("CARGO_PKG_VERSION"));

/// The text summary, laid out like ghz's.
pub fn render_text(run: &RunDescription, summary: &Summary) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_text(&mut out, run, summary);
    out
}

fn write_text(out: &mut String, run: &RunDescription, summary: &Summary) -> std::fmt::Result {
    let bound = match (run.total_requests, run.duration) {
        (Some(total), _) => format!("{total} {}", run.unit),
        (None, Some(duration)) => format_duration_short(duration),
        (None, None) => "unbounded".to_owned(),
    };
    writeln!(out)?;
    writeln!(out, "Summary:")?;
    if let Some(name) = &run.name {
        writeln!(out, "  Name:\t\t{name}")?;
    }
    writeln!(out, "  Scenario:\t{} ({})", run.scenario, run.call)?;
    writeln!(out, "  Target:\t{}", run.host)?;
    writeln!(
        out,
        "  Load:\t\t{} connections × {} in flight, {bound}, warm-up {}",
        run.connections,
        run.concurrency,
        format_duration_short(run.warmup)
    )?;
    writeln!(out, "  Ended:\t{}", summary.end_reason.as_str())?;
    writeln!(out, "  Count:\t{}", summary.count)?;
    writeln!(out, "  Total:\t{}", format_latency(summary.total))?;
    writeln!(out, "  Slowest:\t{}", format_latency(summary.slowest))?;
    writeln!(out, "  Fastest:\t{}", format_latency(summary.fastest))?;
    writeln!(out, "  Average:\t{}", format_latency(summary.average))?;
    writeln!(out, "  Requests/sec:\t{:.2}", summary.rps)?;
    writeln!(out)?;

    let headline = |p: u32| {
        summary
            .percentile(p)
            .map(format_latency)
            .unwrap_or_else(|| "-".to_owned())
    };
    writeln!(
        out,
        "Latency: p50 {}  p95 {}  p99 {}  max {}  avg {}  fastest {}",
        headline(50),
        headline(95),
        headline(99),
        format_latency(summary.slowest),
        format_latency(summary.average),
        format_latency(summary.fastest),
    )?;

    if !summary.histogram.is_empty() {
        writeln!(out)?;
        writeln!(out, "Response time histogram:")?;
        let widest = summary.histogram.iter().map(|b| b.count).max().unwrap_or(0);
        for bucket in &summary.histogram {
            let bar = if widest == 0 {
                0
            } else {
                (bucket.count * 40).div_ceil(widest) as usize
            };
            writeln!(
                out,
                "  {:>10.3} ms [{}]\t|{}",
                bucket.mark * 1e3,
                bucket.count,
                "∎".repeat(bar)
            )?;
        }
    }

    if !summary.latency_distribution.is_empty() {
        writeln!(out)?;
        writeln!(out, "Latency distribution:")?;
        for (percent, latency) in &summary.latency_distribution {
            writeln!(out, "  {percent} % in {}", format_latency(*latency))?;
        }
    }

    writeln!(out)?;
    writeln!(out, "Status code distribution:")?;
    if summary.status_codes.is_empty() {
        writeln!(out, "  (no calls finished)")?;
    }
    for (code, n) in &summary.status_codes {
        writeln!(out, "  [{code}]\t{n} responses")?;
    }

    if !summary.errors.is_empty() {
        writeln!(out)?;
        writeln!(out, "Error distribution:")?;
        for (message, n) in &summary.errors {
            writeln!(out, "  [{n}]\t{message}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Status;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn description() -> RunDescription {
        RunDescription {
            name: Some("smoke".to_owned()),
            scenario: "get_me".to_owned(),
            call: "namaskah.v1.AuthService.GetMe".to_owned(),
            host: "http://127.0.0.1:50051".to_owned(),
            connections: 2,
            concurrency: 8,
            unit: "calls",
            total_requests: None,
            duration: Some(Duration::from_secs(30)),
            warmup: Duration::from_secs(2),
            timeout: Duration::from_secs(20),
            connect_timeout: Duration::from_secs(10),
            data: serde_json::json!({}),
            metadata: BTreeMap::from([("x-api-key".to_owned(), "nsk_abcd…".to_owned())]),
            cpus: 4,
        }
    }

    fn sample_stats() -> CallStats {
        let mut stats = CallStats::new();
        for n in 1..=100 {
            stats.record(ms(n), &Ok(()));
        }
        for _ in 0..4 {
            stats.record(ms(3), &Err(Status::unavailable("connection refused")));
        }
        stats
    }

    #[test]
    fn summary_figures() {
        let summary = Summary::compute(&sample_stats(), Duration::from_secs(2), EndReason::Timeout);
        assert_eq!(summary.count, 104);
        assert_eq!(summary.ok_count, 100);
        assert!((summary.rps - 52.0).abs() < 1e-9, "{}", summary.rps);
        assert_eq!(summary.fastest, ms(1));
        assert_eq!(summary.slowest, ms(100));
        // (5050 + 12) ms over 104 calls.
        assert_eq!(summary.average, Duration::from_nanos(5_062_000_000 / 104));
        let percents: Vec<u32> = summary
            .latency_distribution
            .iter()
            .map(|(p, _)| *p)
            .collect();
        assert_eq!(percents, GHZ_PERCENTILES);
        let p50 = summary.percentile(50).unwrap();
        assert!(
            p50 >= ms(50) && p50 <= ms(50) + Duration::from_micros(60),
            "{p50:?}"
        );
        assert_eq!(summary.status_codes.get("OK"), Some(&100));
        assert_eq!(summary.status_codes.get("Unavailable"), Some(&4));
        assert_eq!(
            summary
                .errors
                .get("rpc error: code = Unavailable desc = connection refused"),
            Some(&4)
        );
        assert_eq!(summary.histogram.len(), 11);
        assert_eq!(summary.histogram.iter().map(|b| b.count).sum::<u64>(), 100);
    }

    #[test]
    fn empty_run_has_zeroes_not_nans() {
        let summary = Summary::compute(&CallStats::new(), Duration::ZERO, EndReason::Cancel);
        assert_eq!(summary.count, 0);
        assert_eq!(summary.rps, 0.0);
        assert!(summary.latency_distribution.is_empty());
        assert!(summary.histogram.is_empty());
        let json =
            serde_json::to_value(GhzReport::new(&description(), &summary, "d".into())).unwrap();
        assert_eq!(json["rps"], 0.0);
        assert_eq!(json["latencyDistribution"], serde_json::json!([]));
    }

    #[test]
    fn histogram_follows_ghz_buckets() {
        let latencies: Vec<(Duration, u64)> = (0..=10).map(|n| (ms(10 + n * 10), 1)).collect();
        let buckets = histogram_buckets(&latencies, ms(10), ms(110));
        assert_eq!(buckets.len(), 11);
        let marks: Vec<f64> = buckets.iter().map(|b| (b.mark * 1e3).round()).collect();
        assert_eq!(
            marks,
            vec![
                10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0, 110.0
            ]
        );
        assert!(buckets.iter().all(|b| b.count == 1), "{buckets:?}");
        assert!((buckets[0].frequency - 1.0 / 11.0).abs() < 1e-12);
    }

    #[test]
    fn histogram_puts_a_latency_just_past_a_mark_in_the_next_bucket() {
        let latencies = [
            (ms(10), 1),
            (ms(20) + Duration::from_nanos(1), 1),
            (ms(110), 1),
        ];
        let buckets = histogram_buckets(&latencies, ms(10), ms(110));
        let counts: Vec<u64> = buckets.iter().map(|b| b.count).collect();
        assert_eq!(counts, vec![1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn histogram_with_one_latency_puts_all_in_the_first_bucket() {
        let buckets = histogram_buckets(&[(ms(5), 7)], ms(5), ms(5));
        assert_eq!(buckets.len(), 11);
        assert_eq!(buckets[0].count, 7);
        assert_eq!(buckets[0].frequency, 1.0);
        assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 7);
    }

    #[test]
    fn histogram_keeps_values_past_the_slowest_mark() {
        // hdrhistogram's bucket edge can sit a hair above the exact slowest call.
        let buckets = histogram_buckets(
            &[(ms(1), 1), (ms(10) + Duration::from_micros(5), 1)],
            ms(1),
            ms(10),
        );
        assert_eq!(buckets.last().unwrap().count, 1);
    }

    #[test]
    fn json_has_ghz_shape() {
        let summary = Summary::compute(&sample_stats(), Duration::from_secs(2), EndReason::Timeout);
        let report = GhzReport::new(&description(), &summary, "2026-11-26T06:00:00Z".to_owned());
        let json = serde_json::to_value(&report).unwrap();

        for key in [
            "name",
            "endReason",
            "options",
            "date",
            "count",
            "total",
            "average",
            "fastest",
            "slowest",
            "rps",
            "errorDistribution",
            "statusCodeDistribution",
            "latencyDistribution",
            "histogram",
            "details",
            "tags",
        ] {
            assert!(json.get(key).is_some(), "missing {key}: {json}");
        }
        assert_eq!(json["endReason"], "timeout");
        assert_eq!(json["date"], "2026-11-26T06:00:00Z");
        assert_eq!(json["count"], 104);
        // Durations are integer nanoseconds, as Go's time.Duration marshals.
        assert_eq!(json["total"], 2_000_000_000u64);
        assert_eq!(json["fastest"], 1_000_000u64);
        assert_eq!(json["slowest"], 100_000_000u64);
        assert!(json["average"].is_u64());
        assert!(json["rps"].is_f64());
        assert_eq!(json["statusCodeDistribution"]["OK"], 100);
        assert_eq!(json["statusCodeDistribution"]["Unavailable"], 4);
        assert_eq!(
            json["errorDistribution"]["rpc error: code = Unavailable desc = connection refused"],
            4
        );

        let latency = json["latencyDistribution"].as_array().unwrap();
        assert_eq!(latency.len(), 7);
        assert_eq!(latency[2]["percentage"], 50);
        assert!(latency[2]["latency"].is_u64());

        let histogram = json["histogram"].as_array().unwrap();
        assert_eq!(histogram.len(), 11);
        for bucket in histogram {
            assert!(bucket["mark"].is_f64());
            assert!(bucket["count"].is_u64());
            assert!(bucket["frequency"].is_f64());
        }

        let options = &json["options"];
        assert_eq!(options["host"], "http://127.0.0.1:50051");
        assert_eq!(options["call"], "namaskah.v1.AuthService.GetMe");
        assert_eq!(options["insecure"], true);
        assert_eq!(options["concurrency"], 8);
        assert_eq!(options["connections"], 2);
        assert_eq!(options["duration"], 30_000_000_000u64);
        assert!(options.get("total").is_none());
        assert_eq!(options["timeout"], 20_000_000_000u64);
        assert_eq!(options["dial-timeout"], 10_000_000_000u64);
        assert_eq!(options["CPUs"], 4);
        assert_eq!(options["metadata"]["x-api-key"], "nsk_abcd…");
        assert_eq!(json["tags"]["scenario"], "get_me");
        assert_eq!(json["tags"]["warmup"], "2s");
    }

    #[test]
    fn text_lists_the_headline_figures() {
        let summary = Summary::compute(&sample_stats(), Duration::from_secs(2), EndReason::Timeout);
        let text = render_text(&description(), &summary);
        for needle in [
            "Requests/sec:\t52.00",
            "p50 ",
            "p95 ",
            "p99 ",
            "max 100.00 ms",
            "fastest 1.00 ms",
            "[OK]\t100 responses",
            "[Unavailable]\t4 responses",
            "[4]\trpc error: code = Unavailable desc = connection refused",
            "2 connections × 8 in flight, 30s, warm-up 2s",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }
}
