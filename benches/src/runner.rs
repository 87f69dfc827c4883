//! Drives the load: M workers, each taking one turn at a time (a gRPC call over one of N
//! connections, or a ledger cycle against the database) until the run's bound (a duration
//! or a number of turns) is reached.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::sync::watch;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};

use crate::duration::format_duration_short;
use crate::report::EndReason;
use crate::scenario::Workload;
use crate::stats::CallStats;

/// When the measured part of a run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Start no call after this long (calls in flight then still finish and count).
    Duration(Duration),
    /// Make exactly this many measured calls.
    Total(u64),
}

/// The shape of a run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub connections: usize,
    pub concurrency: usize,
    pub bound: Bound,
    /// Calls made during the warm-up are not measured.
    pub warmup: Duration,
    /// Per-call deadline, enforced by the driver (an expired call counts as
    /// `DeadlineExceeded`).
    pub timeout: Duration,
}

/// What a run measured: [`CallStats`] for the gRPC scenarios, the worker's own figures
/// otherwise.
#[derive(Debug)]
pub struct RunOutcome<S = CallStats> {
    pub stats: S,
    /// Wall time from the end of the warm-up until the last call finished.
    pub total: Duration,
    pub end_reason: EndReason,
}

/// Checks that `addr` is a plaintext `http://` URL: the driver has no TLS, and talks only
/// to the address it is given.
pub fn check_address(addr: &str) -> anyhow::Result<()> {
    let uri: http::Uri = addr
        .parse()
        .with_context(|| format!("--addr {addr:?} is not a URL like http://127.0.0.1:50051"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => bail!("--addr {addr:?}: TLS is not supported; use http:// (plaintext)"),
        _ => bail!("--addr {addr:?} must start with http://, like http://127.0.0.1:50051"),
    }
    if uri.host().is_none_or(str::is_empty) {
        bail!("--addr {addr:?} has no host");
    }
    Ok(())
}

/// Opens `count` separate HTTP/2 connections to `addr`, failing fast if the server is not
/// there.
pub async fn connect(
    addr: &str,
    count: usize,
    connect_timeout: Duration,
) -> anyhow::Result<Vec<Channel>> {
    check_address(addr)?;
    let endpoint = Endpoint::from_shared(addr.to_owned())
        .with_context(|| format!("--addr {addr:?} is not a valid endpoint"))?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true);
    let mut channels = Vec::with_capacity(count);
    for n in 0..count {
        let channel = endpoint
            .connect()
            .await
            .with_context(|| format!("connection {} of {count} to {addr} failed", n + 1))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// Validates the plan before anything connects.
pub fn check_plan(plan: &LoadPlan) -> anyhow::Result<()> {
    if plan.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if plan.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if plan.connections > plan.concurrency {
        bail!(
            "--connections ({}) cannot exceed --concurrency ({}): each connection needs at least one call in flight",
            plan.connections,
            plan.concurrency
        );
    }
    match plan.bound {
        Bound::Duration(duration) if duration.is_zero() => bail!("--duration must be above zero"),
        Bound::Total(0) => bail!("--total must be at least 1"),
        _ => {}
    }
    if plan.timeout.is_zero() {
        bail!("--timeout must be above zero");
    }
    Ok(())
}

/// Figures one worker keeps without locks, merged once the run is over.
pub trait Stats: Default + Send + 'static {
    fn merge(&mut self, other: &Self);
}

impl Stats for CallStats {
    fn merge(&mut self, other: &Self) {
        CallStats::merge(self, other);
    }
}

/// What a worker does each time it is let through: one call, or one ledger cycle.
pub trait Worker: Send + 'static {
    type Stats: Stats;

    /// Takes one turn, recording it into `stats` when `measured` (warm-up turns are not).
    /// The turn may be dropped part-way when the run is interrupted.
    fn turn(&mut self, stats: &mut Self::Stats, measured: bool) -> impl Future<Output = ()> + Send;
}

/// A gRPC scenario's worker: one call at a time over its connection, bounded by the
/// per-call deadline.
struct CallWorker {
    workload: Arc<Workload>,
    channel: Channel,
    timeout: Duration,
}

impl Worker for CallWorker {
    type Stats = CallStats;

    async fn turn(&mut self, stats: &mut CallStats, measured: bool) {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.workload.call(&self.channel))
            .await
            .unwrap_or_else(|_| Err(deadline_exceeded(self.timeout)));
        if measured {
            stats.record(started.elapsed(), &outcome);
        }
    }
}

/// The status a call (or ledger operation) gets when the driver's deadline passes first.
pub fn deadline_exceeded(timeout: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "no answer within the {} timeout",
        format_duration_short(timeout)
    ))
}

/// Runs `workload` over `channels` as `plan` says. The run ends by itself at its bound, or
/// early when `interrupt` completes (Ctrl-C): calls in flight are then abandoned.
pub async fn run(
    plan: &LoadPlan,
    channels: &[Channel],
    workload: Arc<Workload>,
    interrupt: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunOutcome> {
    check_plan(plan)?;
    if channels.is_empty() {
        bail!("no connections to run on");
    }
    let workers = (0..plan.concurrency)
        .map(|index| CallWorker {
            workload: Arc::clone(&workload),
            channel: channels[index % channels.len()].clone(),
            timeout: plan.timeout,
        })
        .collect();
    run_workers(plan, workers, interrupt).await
}

/// Runs `workers` (one per call in flight, `plan.concurrency` of them) as `plan` says. The
/// run ends by itself at its bound, or early when `interrupt` completes (Ctrl-C): turns in
/// flight are then abandoned.
pub async fn run_workers<W: Worker>(
    plan: &LoadPlan,
    workers: Vec<W>,
    interrupt: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<RunOutcome<W::Stats>> {
    check_plan(plan)?;
    if workers.len() != plan.concurrency {
        bail!(
            "{} workers for a concurrency of {}",
            workers.len(),
            plan.concurrency
        );
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let interrupted = Arc::clone(&interrupted);
        tokio::spawn(async move {
            interrupt.await;
            interrupted.store(true, Ordering::SeqCst);
            // Every worker holds a receiver; none may have gone yet.
            let _ = stop_tx.send(true);
            // Keep the sender alive so that receivers do not see it closed.
            std::future::pending::<()>().await;
        })
    };

    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let shared = Arc::new(Shared {
        measure_from,
        deadline: match plan.bound {
            Bound::Duration(duration) => Some(measure_from + duration),
            Bound::Total(_) => None,
        },
        total: match plan.bound {
            Bound::Total(total) => Some(total),
            Bound::Duration(_) => None,
        },
        issued: AtomicU64::new(0),
    });

    let tasks: Vec<_> = workers
        .into_iter()
        .map(|worker| tokio::spawn(work(Arc::clone(&shared), worker, stop_rx.clone())))
        .collect();
    drop(stop_rx);

    let mut stats = W::Stats::default();
    for result in futures::future::join_all(tasks).await {
        match result {
            Ok(worker_stats) => stats.merge(&worker_stats),
            Err(error) => eprintln!("namaskah-load: a worker failed: {error}"),
        }
    }
    let finished = Instant::now();
    watcher.abort();

    let end_reason = if interrupted.load(Ordering::SeqCst) {
        EndReason::Cancel
    } else {
        match plan.bound {
            Bound::Duration(_) => EndReason::Timeout,
            Bound::Total(_) => EndReason::Normal,
        }
    };
    Ok(RunOutcome {
        stats,
        total: finished.saturating_duration_since(measure_from),
        end_reason,
    })
}

struct Shared {
    measure_from: Instant,
    deadline: Option<Instant>,
    total: Option<u64>,
    /// Measured turns started so far, in a count-bounded run.
    issued: AtomicU64,
}

impl Shared {
    /// Whether a turn starting `now` may go ahead, and whether it is measured.
    fn admit(&self, now: Instant) -> Admission {
        if now < self.measure_from {
            return Admission::Warmup;
        }
        if let Some(deadline) = self.deadline
            && now >= deadline
        {
            return Admission::Done;
        }
        if let Some(total) = self.total
            && self.issued.fetch_add(1, Ordering::Relaxed) >= total
        {
            return Admission::Done;
        }
        Admission::Measured
    }
}

enum Admission {
    Warmup,
    Measured,
    Done,
}

async fn work<W: Worker>(
    shared: Arc<Shared>,
    mut worker: W,
    mut stop: watch::Receiver<bool>,
) -> W::Stats {
    let mut stats = W::Stats::default();
    loop {
        if *stop.borrow() {
            break;
        }
        let measured = match shared.admit(Instant::now()) {
            Admission::Done => break,
            Admission::Warmup => false,
            Admission::Measured => true,
        };
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            () = worker.turn(&mut stats, measured) => {}
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(connections: usize, concurrency: usize, bound: Bound) -> LoadPlan {
        LoadPlan {
            connections,
            concurrency,
            bound,
            warmup: Duration::ZERO,
            timeout: Duration::from_secs(20),
        }
    }

    #[test]
    fn addresses_must_be_plaintext_urls() {
        assert!(check_address("http://127.0.0.1:50051").is_ok());
        assert!(check_address("http://localhost:50051").is_ok());
        assert!(check_address("https://127.0.0.1:50051").is_err());
        assert!(check_address("127.0.0.1:50051").is_err());
        assert!(check_address("not a url").is_err());
    }

    #[test]
    fn plans_are_checked() {
        assert!(check_plan(&plan(1, 1, Bound::Total(1))).is_ok());
        assert!(check_plan(&plan(4, 50, Bound::Duration(Duration::from_secs(1)))).is_ok());
        assert!(check_plan(&plan(0, 1, Bound::Total(1))).is_err());
        assert!(check_plan(&plan(1, 0, Bound::Total(1))).is_err());
        assert!(check_plan(&plan(5, 4, Bound::Total(1))).is_err());
        assert!(check_plan(&plan(1, 1, Bound::Total(0))).is_err());
        assert!(check_plan(&plan(1, 1, Bound::Duration(Duration::ZERO))).is_err());
    }

    #[test]
    fn admission_counts_exactly_the_total() {
        let now = Instant::now();
        let shared = Shared {
            measure_from: now,
            deadline: None,
            total: Some(3),
            issued: AtomicU64::new(0),
        };
        let admitted = (0..10)
            .filter(|_| matches!(shared.admit(now), Admission::Measured))
            .count();
        assert_eq!(admitted, 3);
    }

    #[test]
    fn admission_respects_warmup_and_deadline() {
        let now = Instant::now();
        let shared = Shared {
            measure_from: now + Duration::from_secs(2),
            deadline: Some(now + Duration::from_secs(5)),
            total: None,
            issued: AtomicU64::new(0),
        };
        assert!(matches!(shared.admit(now), Admission::Warmup));
        assert!(matches!(
            shared.admit(now + Duration::from_secs(3)),
            Admission::Measured
        ));
        assert!(matches!(
            shared.admit(now + Duration::from_secs(5)),
            Admission::Done
        ));
    }
}
