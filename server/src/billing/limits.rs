//! Rate limits: a GCRA limiter shared by every instance through Redis (or kept in this
//! process), the tower layer that applies it to every RPC, and the login guard that slows
//! password guessing per account.
//!
//! GCRA (the generic cell rate algorithm) keeps one number per bucket, the theoretical
//! arrival time (TAT): the instant at which the bucket would be full again. A limit of `N`
//! calls a minute has an emission interval `T = 60 s / N` and a burst of `N`: a call at
//! `now` passes when `max(TAT, now) + T - now <= N·T`, and moves the TAT on by `T`. So `N`
//! calls at once pass, the next is refused, and one more passes every `T` after that.
//!
//! With Redis the decision is one Lua script that reads Redis's own clock (`TIME`), so the
//! instances' clocks never matter. When Redis is unreachable or slow the limiter follows
//! [`LimitFallback`] and never fails a call with `INTERNAL`.
mod layer;
mod local;
mod login;
mod redis;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;

pub(crate) use self::layer::client_address;
pub use self::layer::{RateLimit, RateLimitLayer};
pub use self::login::{LoginGuard, LoginPolicy};
pub use self::redis::RedisLimits;

use self::local::LocalLimits;
use crate::config::LimitFallback;
use crate::error::{ApiError, StoreError};

/// The window every limit is expressed in.
const PERIOD: Duration = Duration::from_secs(60);

/// After Redis failed, how long calls skip it (and use the fallback) before one call tries
/// it again: an outage then costs one slow call a second, not one per request.
const REDIS_PAUSE: Duration = Duration::from_secs(1);

/// A limit of so many calls a minute, with a burst of as many.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rate {
    limit: u32,
    /// `T`, in nanoseconds (at least 1).
    interval_ns: u64,
}

impl Rate {
    /// `per_minute` calls a minute (0 is taken as 1).
    pub fn per_minute(per_minute: u32) -> Self {
        let limit = per_minute.max(1);
        let interval_ns = (duration_ns(PERIOD) / u64::from(limit)).max(1);
        Self { limit, interval_ns }
    }

    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// `T`: one call's worth of time.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_nanos(self.interval_ns)
    }

    /// `N·T`: how far ahead of now the TAT may be after an admitted call. `T` is rounded
    /// down, so this is at most a minute, and exactly `N` calls fit in it.
    fn burst_ns(&self) -> u64 {
        self.interval_ns * u64::from(self.limit)
    }
}

/// What the limiter decided for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The bucket's limit (calls a minute, and the burst).
    pub limit: u32,
    /// Calls that would pass right now, after this one.
    pub remaining: u32,
    /// Time until the bucket is full again (`limit` calls would pass at once).
    pub reset: Duration,
    /// When refused: time until the next call would pass. Zero when allowed.
    pub retry_after: Duration,
}

impl Decision {
    /// The answer when calls are let through without counting (fallback `Open`): as if
    /// the bucket had been full.
    fn uncounted(rate: Rate) -> Self {
        Self {
            allowed: true,
            limit: rate.limit,
            remaining: rate.limit - 1,
            reset: rate.emission_interval(),
            retry_after: Duration::ZERO,
        }
    }
}

/// One GCRA step. `ahead_ns` is how far the stored TAT is ahead of now (0 when it is in
/// the past or there is none). Returns the decision and, when the call passes, the new
/// distance to store. The Redis script performs exactly this arithmetic.
fn gcra_step(ahead_ns: u64, rate: Rate) -> (Decision, Option<u64>) {
    let burst = rate.burst_ns();
    // A lower limit than the one the TAT was built with (a plan downgrade) leaves at most
    // a full bucket of debt.
    let ahead = ahead_ns.min(burst);
    let next = ahead + rate.interval_ns;
    if next <= burst {
        let remaining = (burst - next) / rate.interval_ns;
        let decision = Decision {
            allowed: true,
            limit: rate.limit,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: Duration::from_nanos(next),
            retry_after: Duration::ZERO,
        };
        (decision, Some(next))
    } else {
        let decision = Decision {
            allowed: false,
            limit: rate.limit,
            remaining: 0,
            reset: Duration::from_nanos(ahead),
            retry_after: Duration::from_nanos(next - burst),
        };
        (decision, None)
    }
}

fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Whole seconds, rounded up (what `retry-after` and `x-ratelimit-reset` carry).
pub(crate) fn whole_seconds_up(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

/// Nanoseconds on a monotonic clock with an arbitrary origin. Tests inject their own.
pub(crate) trait Clock: Send + Sync + 'static {
    fn now_ns(&self) -> u64;
}

/// The process's monotonic clock.
pub(crate) struct MonotonicClock {
    origin: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        duration_ns(self.origin.elapsed())
    }
}

/// What the login guard asks of a store, for one account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoginOp {
    /// May this attempt go ahead? If so it is counted (before the password is checked, so
    /// that concurrent guesses cannot all slip through on the same count).
    Admit,
    /// The attempt failed: the wait before the next one starts now.
    Failed,
    /// The attempt succeeded: forget the account's failures.
    Succeeded,
}

/// A store's answer to a [`LoginOp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoginVerdict {
    Admitted,
    /// Refused: the account's next attempt may start after this long.
    Wait(Duration),
}

/// A store shared by every instance (Redis). A trait so that tests can stand in a store
/// that fails or hangs.
#[async_trait]
pub(crate) trait SharedStore: Send + Sync + 'static {
    /// A decision from calls already counted in the store for this instance (a lease), if
    /// it holds one for `bucket` at `rate`: no round trip, and nothing to learn about the
    /// store's health from it.
    fn leased(&self, _bucket: &str, _rate: Rate) -> Option<Decision> {
        None
    }
    async fn gcra(&self, bucket: &str, rate: Rate) -> Result<Decision, StoreError>;
    async fn login(
        &self,
        account: &str,
        op: LoginOp,
        policy: &LoginPolicy,
    ) -> Result<LoginVerdict, StoreError>;
}

/// Whether Redis is usable, so that an outage costs one slow call a second at most.
#[derive(Default)]
struct Health {
    /// Redis failed and has not answered since.
    outage: AtomicBool,
    /// One call is trying Redis again; the others use the fallback meanwhile.
    probing: AtomicBool,
    /// During an outage, when (clock ns) the next call may try Redis.
    retry_at: AtomicU64,
}

/// Clears the probe flag however the probe ends (a call may be cancelled half-way).
struct Probe<'a>(&'a AtomicBool);

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

enum Route<'a> {
    /// No shared store is configured: this process is the whole deployment.
    Local,
    Shared(&'a dyn SharedStore, Option<Probe<'a>>),
    /// Redis is down and not due for another try: use the fallback.
    Fallback,
}

/// The rate limiter: counts in Redis when configured (falling back as configured when it
/// cannot be reached), in this process otherwise.
pub struct Limiter {
    shared: Option<Arc<dyn SharedStore>>,
    local: LocalLimits,
    fallback: LimitFallback,
    health: Health,
    clock: Arc<dyn Clock>,
}

impl Limiter {
    /// Counts in this process only (no `REDIS_URL`).
    pub fn in_process() -> Self {
        Self::build(
            None,
            LimitFallback::Local,
            Arc::new(MonotonicClock::default()),
        )
    }

    /// Counts in Redis, shared by every instance; `fallback` says what to do while Redis
    /// cannot be reached. Connects its own client (with its own short timeouts).
    pub async fn redis(
        url: &str,
        prefix: &str,
        fallback: LimitFallback,
    ) -> Result<Self, StoreError> {
        let store = RedisLimits::connect(url, prefix).await?;
        Ok(Self::with_shared(Arc::new(store), fallback))
    }

    /// Counts in an already connected Redis store.
    pub fn with_redis(store: RedisLimits, fallback: LimitFallback) -> Self {
        Self::with_shared(Arc::new(store), fallback)
    }

    pub(crate) fn with_shared(shared: Arc<dyn SharedStore>, fallback: LimitFallback) -> Self {
        Self::build(Some(shared), fallback, Arc::new(MonotonicClock::default()))
    }

    fn build(
        shared: Option<Arc<dyn SharedStore>>,
        fallback: LimitFallback,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            shared,
            local: LocalLimits::new(Arc::clone(&clock)),
            fallback,
            health: Health::default(),
            clock,
        }
    }

    /// Which store counts: `redis` or `in-process` (for logs).
    pub fn kind(&self) -> &'static str {
        if self.shared.is_some() {
            "redis"
        } else {
            "in-process"
        }
    }

    /// Counts one call against `bucket`, limited to `per_minute`. An error only with
    /// fallback `Closed` while Redis is unreachable (`UNAVAILABLE`).
    pub async fn check(&self, bucket: &str, per_minute: u32) -> Result<Decision, ApiError> {
        let rate = Rate::per_minute(per_minute);
        if let Some(decision) = self.shared.as_ref().and_then(|s| s.leased(bucket, rate)) {
            return Ok(decision);
        }
        match self.route() {
            Route::Local => return Ok(self.local.gcra(bucket, rate)),
            Route::Shared(store, probe) => match store.gcra(bucket, rate).await {
                Ok(decision) => {
                    self.succeeded(probe);
                    return Ok(decision);
                }
                Err(error) => self.failed(probe, &error),
            },
            Route::Fallback => {}
        }
        match self.fallback {
            LimitFallback::Local => Ok(self.local.gcra(bucket, rate)),
            LimitFallback::Open => Ok(Decision::uncounted(rate)),
            LimitFallback::Closed => Err(unavailable()),
        }
    }

    /// The login guard's operations, with the same store and fallback as the limits.
    pub(crate) async fn login(
        &self,
        account: &str,
        op: LoginOp,
        policy: &LoginPolicy,
    ) -> Result<LoginVerdict, ApiError> {
        match self.route() {
            Route::Local => return Ok(self.local.login(account, op, policy)),
            Route::Shared(store, probe) => match store.login(account, op, policy).await {
                Ok(verdict) => {
                    self.succeeded(probe);
                    return Ok(verdict);
                }
                Err(error) => self.failed(probe, &error),
            },
            Route::Fallback => {}
        }
        match (self.fallback, op) {
            (LimitFallback::Local, _) => Ok(self.local.login(account, op, policy)),
            (LimitFallback::Open, _)
            | (LimitFallback::Closed, LoginOp::Failed | LoginOp::Succeeded) => {
                Ok(LoginVerdict::Admitted)
            }
            (LimitFallback::Closed, LoginOp::Admit) => Err(unavailable()),
        }
    }

    fn route(&self) -> Route<'_> {
        let Some(shared) = self.shared.as_deref() else {
            return Route::Local;
        };
        if !self.health.outage.load(Ordering::Acquire) {
            return Route::Shared(shared, None);
        }
        if self.clock.now_ns() < self.health.retry_at.load(Ordering::Acquire) {
            return Route::Fallback;
        }
        match self
            .health
            .probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Route::Shared(shared, Some(Probe(&self.health.probing))),
            Err(_) => Route::Fallback,
        }
    }

    fn succeeded(&self, probe: Option<Probe<'_>>) {
        if self.health.outage.swap(false, Ordering::AcqRel) {
            tracing::info!("rate limiter: Redis answers again; counting there");
        }
        drop(probe);
    }

    fn failed(&self, probe: Option<Probe<'_>>, error: &StoreError) {
        self.health.retry_at.store(
            self.clock.now_ns().saturating_add(duration_ns(REDIS_PAUSE)),
            Ordering::Release,
        );
        if !self.health.outage.swap(true, Ordering::AcqRel) {
            let fallback = match self.fallback {
                LimitFallback::Local => "counting in this instance only",
                LimitFallback::Open => "letting every call through",
                LimitFallback::Closed => "refusing calls with UNAVAILABLE",
            };
            tracing::warn!(%error, fallback, "rate limiter: Redis unreachable; {fallback} until it answers");
        }
        drop(probe);
    }

    #[cfg(test)]
    fn with_clock(
        shared: Option<Arc<dyn SharedStore>>,
        fallback: LimitFallback,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::build(shared, fallback, clock)
    }
}

fn unavailable() -> ApiError {
    ApiError::Unavailable {
        reason: "RATE_LIMITER_UNAVAILABLE",
        message: "the rate limiter cannot be reached; try again shortly".to_owned(),
        retry_after: Some(REDIS_PAUSE),
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::Clock;

    /// A clock that moves only when told to.
    #[derive(Default)]
    pub struct ManualClock(AtomicU64);

    impl ManualClock {
        pub fn advance(&self, by: Duration) {
            self.0.fetch_add(super::duration_ns(by), Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now_ns(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::testing::ManualClock;
    use super::*;

    fn limiter(clock: &Arc<ManualClock>) -> Limiter {
        Limiter::with_clock(
            None,
            LimitFallback::Local,
            Arc::clone(clock) as Arc<dyn Clock>,
        )
    }

    #[test]
    fn rate_arithmetic() {
        let rate = Rate::per_minute(100);
        assert_eq!(rate.emission_interval(), Duration::from_millis(600));
        assert_eq!(rate.burst_ns(), 60_000_000_000);
        // 7 does not divide a minute: T rounds down, and still exactly 7 calls fit.
        let rate = Rate::per_minute(7);
        assert_eq!(rate.burst_ns() / rate.interval_ns, 7);
        assert_eq!(Rate::per_minute(0).limit(), 1);
        let huge = Rate::per_minute(100_000_000);
        assert_eq!(huge.interval_ns, 600);
    }

    #[tokio::test]
    async fn a_burst_of_n_passes_at_once_and_the_next_is_refused() {
        let clock = Arc::new(ManualClock::default());
        let limiter = limiter(&clock);
        for i in 1..=100u32 {
            let d = limiter.check("b", 100).await.unwrap();
            assert!(d.allowed, "call {i}");
            assert_eq!(d.limit, 100);
            assert_eq!(d.remaining, 100 - i);
            assert_eq!(d.reset, Duration::from_millis(600) * i);
            assert_eq!(d.retry_after, Duration::ZERO);
        }
        let refused = limiter.check("b", 100).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.retry_after, Duration::from_millis(600));
        assert_eq!(refused.reset, Duration::from_secs(60));
        // A refused call costs nothing: the next one waits no longer.
        let again = limiter.check("b", 100).await.unwrap();
        assert_eq!(again, refused);
        // Other buckets are untouched.
        assert!(limiter.check("other", 100).await.unwrap().allowed);
    }

    #[tokio::test]
    async fn the_bucket_refills_one_call_per_interval() {
        let clock = Arc::new(ManualClock::default());
        let limiter = limiter(&clock);
        for _ in 0..3 {
            assert!(limiter.check("b", 3).await.unwrap().allowed);
        }
        let refused = limiter.check("b", 3).await.unwrap();
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(20));

        clock.advance(Duration::from_secs(19));
        let still = limiter.check("b", 3).await.unwrap();
        assert!(!still.allowed);
        assert_eq!(still.retry_after, Duration::from_secs(1));
        assert_eq!(still.reset, Duration::from_secs(41));

        clock.advance(Duration::from_secs(1));
        let d = limiter.check("b", 3).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
        assert_eq!(d.reset, Duration::from_secs(60));
        assert!(!limiter.check("b", 3).await.unwrap().allowed);

        // Half a minute later half the bucket is back; a full minute later all of it.
        clock.advance(Duration::from_secs(40));
        let d = limiter.check("b", 3).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.reset, Duration::from_secs(40));
        clock.advance(Duration::from_secs(600));
        let d = limiter.check("b", 3).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 2));
        assert_eq!(d.reset, Duration::from_secs(20));
    }

    #[tokio::test]
    async fn a_plan_change_keeps_the_debt_but_not_more_than_a_bucket() {
        let clock = Arc::new(ManualClock::default());
        let limiter = limiter(&clock);
        for _ in 0..500 {
            assert!(limiter.check("acct", 500).await.unwrap().allowed);
        }
        // Downgraded to 100 a minute with a full minute of debt: one interval to wait.
        let d = limiter.check("acct", 100).await.unwrap();
        assert!(!d.allowed);
        assert_eq!(d.retry_after, Duration::from_millis(600));
        // Upgraded back: the same debt, measured in the new interval.
        clock.advance(Duration::from_millis(600));
        let d = limiter.check("acct", 500).await.unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
    }

    #[test]
    fn gcra_step_matches_the_formulas() {
        let rate = Rate::per_minute(4); // T = 15 s, burst 60 s
        let s = 1_000_000_000u64;
        assert_eq!(gcra_step(0, rate).1, Some(15 * s));
        assert_eq!(gcra_step(0, rate).0.remaining, 3);
        assert_eq!(gcra_step(45 * s, rate).1, Some(60 * s));
        assert_eq!(gcra_step(45 * s, rate).0.remaining, 0);
        let (refused, write) = gcra_step(50 * s, rate);
        assert_eq!(write, None);
        assert_eq!(refused.retry_after, Duration::from_secs(5));
        assert_eq!(refused.reset, Duration::from_secs(50));
        // A TAT further ahead than a bucket (a lower limit now) counts as one bucket.
        let (refused, _) = gcra_step(600 * s, rate);
        assert_eq!(refused.retry_after, Duration::from_secs(15));
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 0);
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1000)), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1001)), 2);
    }

    /// A shared store that fails (or, when told, answers) and counts its calls.
    #[derive(Default)]
    struct FlakyStore {
        up: AtomicBool,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl SharedStore for FlakyStore {
        async fn gcra(&self, _bucket: &str, rate: Rate) -> Result<Decision, StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.up.load(Ordering::SeqCst) {
                Ok(Decision {
                    allowed: true,
                    limit: rate.limit,
                    remaining: 42,
                    reset: Duration::ZERO,
                    retry_after: Duration::ZERO,
                })
            } else {
                Err(StoreError::Cache("connection refused".into()))
            }
        }

        async fn login(
            &self,
            _account: &str,
            _op: LoginOp,
            _policy: &LoginPolicy,
        ) -> Result<LoginVerdict, StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.up.load(Ordering::SeqCst) {
                Ok(LoginVerdict::Admitted)
            } else {
                Err(StoreError::Cache("connection refused".into()))
            }
        }
    }

    fn flaky(fallback: LimitFallback) -> (Arc<ManualClock>, Arc<FlakyStore>, Limiter) {
        let clock = Arc::new(ManualClock::default());
        let store = Arc::new(FlakyStore::default());
        let limiter = Limiter::with_clock(
            Some(Arc::clone(&store) as Arc<dyn SharedStore>),
            fallback,
            Arc::clone(&clock) as Arc<dyn Clock>,
        );
        (clock, store, limiter)
    }

    #[tokio::test]
    async fn local_fallback_counts_here_and_skips_redis_for_a_while() {
        let (clock, store, limiter) = flaky(LimitFallback::Local);
        for _ in 0..3 {
            assert!(limiter.check("b", 3).await.unwrap().allowed);
        }
        assert!(!limiter.check("b", 3).await.unwrap().allowed);
        // One try at Redis, then none until the pause is over.
        assert_eq!(store.calls.load(Ordering::SeqCst), 1);
        clock.advance(REDIS_PAUSE);
        assert!(!limiter.check("b", 3).await.unwrap().allowed);
        assert_eq!(store.calls.load(Ordering::SeqCst), 2);
        // Redis is back: the next try uses it, and so does every call after it.
        store.up.store(true, Ordering::SeqCst);
        clock.advance(REDIS_PAUSE);
        assert_eq!(limiter.check("b", 3).await.unwrap().remaining, 42);
        assert_eq!(limiter.check("b", 3).await.unwrap().remaining, 42);
        assert_eq!(store.calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn open_fallback_lets_everything_through() {
        let (_clock, _store, limiter) = flaky(LimitFallback::Open);
        for _ in 0..10 {
            let d = limiter.check("b", 3).await.unwrap();
            assert!(d.allowed);
            assert_eq!((d.limit, d.remaining), (3, 2));
        }
        assert_eq!(
            limiter
                .login("a", LoginOp::Admit, &LoginPolicy::default())
                .await
                .unwrap(),
            LoginVerdict::Admitted
        );
    }

    #[tokio::test]
    async fn closed_fallback_refuses_with_unavailable() {
        let (_clock, _store, limiter) = flaky(LimitFallback::Closed);
        for _ in 0..3 {
            let error = limiter.check("b", 3).await.unwrap_err();
            assert_eq!(error.reason(), "RATE_LIMITER_UNAVAILABLE");
            assert_eq!(error.into_status().code(), tonic::Code::Unavailable);
        }
        let policy = LoginPolicy::default();
        assert!(limiter.login("a", LoginOp::Admit, &policy).await.is_err());
        // Recording an outcome never fails a login that already happened.
        assert!(limiter.login("a", LoginOp::Failed, &policy).await.is_ok());
    }

    #[tokio::test]
    async fn a_cancelled_probe_does_not_stop_later_ones() {
        let (clock, store, limiter) = flaky(LimitFallback::Local);
        assert!(limiter.check("b", 3).await.unwrap().allowed);
        clock.advance(REDIS_PAUSE);
        // Start a probe and drop it before it finishes.
        {
            let Route::Shared(_, probe) = limiter.route() else {
                panic!("the pause is over: a call should try Redis");
            };
            assert!(probe.is_some());
            assert!(matches!(limiter.route(), Route::Fallback));
        }
        store.up.store(true, Ordering::SeqCst);
        assert_eq!(limiter.check("b", 3).await.unwrap().remaining, 42);
    }
}
