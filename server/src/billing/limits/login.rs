//! The login guard: password guessing is slowed per account (by normalised email), in
//! every instance at once. The first attempts are free; after that each one waits twice as
//! long as the one before; then the account's logins are locked for a while. A success
//! starts over; an account left alone is forgotten.
//!
//! Attempts are counted when they are admitted, before the password is checked, so that a
//! burst of concurrent guesses cannot all pass on the same count; a failure then restarts
//! the wait from the moment it is known. Unknown emails are counted exactly like known
//! ones, and a refused attempt gets the same answer either way.
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Limiter, LoginOp, LoginVerdict, duration_ns, whole_seconds_up};
use crate::error::ApiError;

/// The schedule of the login guard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Attempts in a row that need no wait (5).
    pub free_attempts: u32,
    /// The wait after the first attempt beyond those (1 s); it doubles with each one.
    pub first_delay: Duration,
    /// The longest such wait (5 min).
    pub max_delay: Duration,
    /// After this many attempts in a row without a success (10) the account is locked...
    pub lock_after: u32,
    /// ...for this long (15 min).
    pub lock_for: Duration,
    /// An account with no attempt for this long (15 min) starts over.
    pub forget_after: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            free_attempts: 5,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            lock_after: 10,
            lock_for: Duration::from_secs(15 * 60),
            forget_after: Duration::from_secs(15 * 60),
        }
    }
}

/// One account's attempts since its last success (in-process store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LoginState {
    pub(super) attempts: u32,
    /// The latest admitted attempt or failure (clock ns).
    pub(super) last_ns: u64,
    pub(super) expires_ns: u64,
}

impl LoginPolicy {
    /// How long an account that has made `attempts` attempts in a row must wait after the
    /// latest before the next.
    pub fn wait_after(&self, attempts: u32) -> Duration {
        if attempts >= self.lock_after {
            self.lock_for
        } else if attempts >= self.free_attempts {
            let doublings = (attempts - self.free_attempts).min(31);
            self.first_delay
                .saturating_mul(1 << doublings)
                .min(self.max_delay)
        } else {
            Duration::ZERO
        }
    }

    /// How long a state with `attempts` must be kept: until its wait is over, and at least
    /// `forget_after`.
    fn keep_for(&self, attempts: u32) -> Duration {
        self.wait_after(attempts).max(self.forget_after)
    }

    /// One step of the guard on the in-process store (the Redis script does the same in
    /// milliseconds). Returns the verdict and the state to store, if it changed.
    pub(super) fn step(
        &self,
        state: Option<LoginState>,
        op: LoginOp,
        now: u64,
    ) -> (LoginVerdict, Option<LoginState>) {
        let (attempts, last) = state.map_or((0, 0), |s| (s.attempts, s.last_ns));
        let attempts = match op {
            LoginOp::Admit => {
                if attempts > 0 {
                    let open_at = last.saturating_add(duration_ns(self.wait_after(attempts)));
                    if now < open_at {
                        return (
                            LoginVerdict::Wait(Duration::from_nanos(open_at - now)),
                            None,
                        );
                    }
                }
                attempts.saturating_add(1)
            }
            LoginOp::Failed => attempts.max(1),
            LoginOp::Succeeded => return (LoginVerdict::Admitted, None),
        };
        let next = LoginState {
            attempts,
            last_ns: now,
            expires_ns: now.saturating_add(duration_ns(self.keep_for(attempts))),
        };
        (LoginVerdict::Admitted, Some(next))
    }

    /// The script's arguments after the operation: the schedule in milliseconds.
    pub(super) fn script_args(&self) -> [String; 6] {
        let ms = |d: Duration| d.as_millis().to_string();
        [
            self.free_attempts.to_string(),
            self.lock_after.to_string(),
            ms(self.first_delay),
            ms(self.max_delay),
            ms(self.lock_for),
            ms(self.forget_after),
        ]
    }
}

/// Slows password guessing per account. Shares the limiter's store and fallback.
pub struct LoginGuard {
    limiter: Arc<Limiter>,
    policy: LoginPolicy,
}

impl LoginGuard {
    /// The default schedule: 5 free attempts, then 1 s, 2 s, 4 s, 8 s, 16 s, then locked
    /// for 15 minutes after the 10th; forgotten after 15 idle minutes.
    pub fn new(limiter: Arc<Limiter>) -> Self {
        Self::with_policy(limiter, LoginPolicy::default())
    }

    pub fn with_policy(limiter: Arc<Limiter>, policy: LoginPolicy) -> Self {
        Self { limiter, policy }
    }

    /// Before the password is checked: counts the attempt, or refuses it with
    /// `RESOURCE_EXHAUSTED`/`LOGIN_THROTTLED` (the same answer whether or not the account
    /// exists). With fallback `Closed` and Redis down, `UNAVAILABLE`.
    pub async fn admit(&self, email_lower: &str) -> Result<(), ApiError> {
        match self
            .limiter
            .login(&account_key(email_lower), LoginOp::Admit, &self.policy)
            .await?
        {
            LoginVerdict::Admitted => Ok(()),
            LoginVerdict::Wait(wait) => {
                // Whole seconds, rounded up, so that `RetryInfo` and `retry-after` agree and
                // a client that waits that long is let in.
                let seconds = whole_seconds_up(wait).max(1);
                Err(ApiError::ResourceExhausted {
                    reason: "LOGIN_THROTTLED",
                    message: format!(
                        "too many failed logins for this account; try again in {seconds} s"
                    ),
                    retry_after: Duration::from_secs(seconds),
                })
            }
        }
    }

    /// The password (or second factor) was wrong.
    pub async fn failed(&self, email_lower: &str) {
        self.record(email_lower, LoginOp::Failed).await;
    }

    /// The login succeeded: the account starts over.
    pub async fn succeeded(&self, email_lower: &str) {
        self.record(email_lower, LoginOp::Succeeded).await;
    }

    async fn record(&self, email_lower: &str, op: LoginOp) {
        // Only `admit` can refuse; recording an outcome never fails the login itself.
        if let Err(error) = self
            .limiter
            .login(&account_key(email_lower), op, &self.policy)
            .await
        {
            tracing::warn!(%error, ?op, "login guard: outcome not recorded");
        }
    }
}

/// The store key of an account: a hash, so that Redis never holds addresses.
fn account_key(email_lower: &str) -> String {
    format!(
        "login:{}",
        hex::encode(Sha256::digest(email_lower.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::super::testing::ManualClock;
    use super::super::{Clock, LimitFallback};
    use super::*;

    fn guard() -> (Arc<ManualClock>, LoginGuard) {
        let clock = Arc::new(ManualClock::default());
        let limiter = Limiter::with_clock(
            None,
            LimitFallback::Local,
            Arc::clone(&clock) as Arc<dyn Clock>,
        );
        (clock, LoginGuard::new(Arc::new(limiter)))
    }

    fn throttled_for(result: Result<(), ApiError>) -> Duration {
        match result {
            Err(ApiError::ResourceExhausted {
                reason: "LOGIN_THROTTLED",
                retry_after,
                ..
            }) => retry_after,
            other => panic!("expected LOGIN_THROTTLED, got {other:?}"),
        }
    }

    #[test]
    fn the_schedule() {
        let p = LoginPolicy::default();
        let waits: Vec<u64> = (0..=12).map(|n| p.wait_after(n).as_secs()).collect();
        assert_eq!(waits, [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 900, 900, 900]);
        let capped = LoginPolicy {
            lock_after: 100,
            ..LoginPolicy::default()
        };
        assert_eq!(capped.wait_after(13), Duration::from_secs(256));
        assert_eq!(capped.wait_after(14), Duration::from_secs(300));
        assert_eq!(capped.wait_after(99), Duration::from_secs(300));
    }

    #[tokio::test]
    async fn waits_grow_then_the_account_locks() {
        let (clock, guard) = guard();
        let email = "victim@example.com";
        for _ in 0..5 {
            guard.admit(email).await.unwrap();
            guard.failed(email).await;
        }
        // The 6th attempt waits 1 s, the 7th 2 s, then 4, 8 and 16.
        for wait in [1u64, 2, 4, 8, 16] {
            assert_eq!(
                throttled_for(guard.admit(email).await),
                Duration::from_secs(wait)
            );
            clock.advance(Duration::from_millis(wait * 1000 - 1));
            assert_eq!(
                throttled_for(guard.admit(email).await),
                Duration::from_secs(1),
                "1 ms left rounds up to a second"
            );
            clock.advance(Duration::from_millis(1));
            guard.admit(email).await.unwrap();
            guard.failed(email).await;
        }
        // Ten in a row: locked for 15 minutes.
        assert_eq!(
            throttled_for(guard.admit(email).await),
            Duration::from_secs(900)
        );
        clock.advance(Duration::from_secs(899));
        assert_eq!(
            throttled_for(guard.admit(email).await),
            Duration::from_secs(1)
        );
        // After the lock the account starts over (its state was kept just that long).
        clock.advance(Duration::from_secs(1));
        for _ in 0..5 {
            guard.admit(email).await.unwrap();
            guard.failed(email).await;
        }
        throttled_for(guard.admit(email).await);
    }

    #[tokio::test]
    async fn a_success_starts_over_and_accounts_are_independent() {
        let (_clock, guard) = guard();
        for _ in 0..4 {
            guard.admit("a@x.io").await.unwrap();
            guard.failed("a@x.io").await;
        }
        guard.admit("a@x.io").await.unwrap();
        guard.succeeded("a@x.io").await;
        for _ in 0..5 {
            guard.admit("a@x.io").await.unwrap();
            guard.failed("a@x.io").await;
            guard.admit("b@x.io").await.unwrap();
            guard.failed("b@x.io").await;
        }
        throttled_for(guard.admit("a@x.io").await);
        throttled_for(guard.admit("b@x.io").await);
        guard.admit("c@x.io").await.unwrap();
    }

    #[tokio::test]
    async fn concurrent_guesses_are_counted_before_their_outcome() {
        let (_clock, guard) = guard();
        // Six attempts arrive together, none finished yet: the sixth already waits.
        for _ in 0..5 {
            guard.admit("a@x.io").await.unwrap();
        }
        throttled_for(guard.admit("a@x.io").await);
    }

    #[tokio::test]
    async fn an_idle_account_is_forgotten() {
        let (clock, guard) = guard();
        for _ in 0..4 {
            guard.admit("a@x.io").await.unwrap();
            guard.failed("a@x.io").await;
        }
        clock.advance(Duration::from_secs(15 * 60));
        for _ in 0..5 {
            guard.admit("a@x.io").await.unwrap();
            guard.failed("a@x.io").await;
        }
        throttled_for(guard.admit("a@x.io").await);
    }

    #[test]
    fn keys_hide_the_address() {
        let key = account_key("a@x.io");
        assert!(key.starts_with("login:"));
        assert!(!key.contains("x.io"));
        assert_eq!(key.len(), "login:".len() + 64);
    }
}
