//! The in-process stores: what counts when there is no Redis, or while it cannot be
//! reached (fallback `Local`). Sharded maps, so that concurrent calls rarely share a lock,
//! each bounded: entries that no longer restrict anything are dropped when a shard fills,
//! and if that is not enough the least restrictive quarter goes.
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::login::{LoginPolicy, LoginState};
use super::{Clock, Decision, LoginOp, LoginVerdict, Rate, gcra_step};

const SHARDS: usize = 16;
/// Entries per shard: with 16 shards, about 130 000 buckets (some 15 MB) at most.
const SHARD_CAPACITY: usize = 8_192;

/// An entry of a bounded map.
pub(super) trait Entry: Copy {
    /// What keeps an entry when the map must shed some: the lowest go first.
    type Worth: Ord + Copy;
    /// An expired entry is as good as none.
    fn expired(&self, now: u64) -> bool;
    fn worth(&self) -> Self::Worth;
}

/// What an update does to the entry.
pub(super) enum Write<V> {
    Keep,
    Put(V),
    Remove,
}

/// A sharded map with a bounded number of entries. The shard is chosen with a keyed hash,
/// so that nobody can aim many keys at one shard.
pub(super) struct Bounded<V> {
    shards: Box<[Mutex<HashMap<String, V>>]>,
    capacity: usize,
    hasher: RandomState,
}

impl<V: Entry> Bounded<V> {
    pub(super) fn new(shards: usize, capacity: usize) -> Self {
        Self {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(HashMap::new()))
                .collect(),
            capacity: capacity.max(4),
            hasher: RandomState::new(),
        }
    }

    /// Reads the live entry of `key` (if any), and writes what `update` says, atomically.
    pub(super) fn update<R>(
        &self,
        key: &str,
        now: u64,
        update: impl FnOnce(Option<V>) -> (R, Write<V>),
    ) -> R {
        let index = (self.hasher.hash_one(key) as usize) % self.shards.len();
        let mut shard = lock(&self.shards[index]);
        // A key already there (the usual case) is looked up once.
        if let Some(slot) = shard.get_mut(key) {
            let (result, write) = update(Some(*slot).filter(|v| !v.expired(now)));
            match write {
                Write::Keep => {}
                Write::Put(value) => *slot = value,
                Write::Remove => {
                    shard.remove(key);
                }
            }
            return result;
        }
        let (result, write) = update(None);
        if let Write::Put(value) = write {
            if shard.len() >= self.capacity {
                make_room(&mut shard, now, self.capacity);
            }
            shard.insert(key.to_owned(), value);
        }
        result
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

/// Drops the expired entries; if the shard is still full, the least worth quarter too.
/// Sheds a quarter at a time so that the O(n) pass is paid once per n/4 insertions.
fn make_room<V: Entry>(shard: &mut HashMap<String, V>, now: u64, capacity: usize) {
    shard.retain(|_, v| !v.expired(now));
    if shard.len() < capacity {
        return;
    }
    let mut worths: Vec<V::Worth> = shard.values().map(Entry::worth).collect();
    let cut = worths.len() / 4;
    let (_, threshold, _) = worths.select_nth_unstable(cut);
    let threshold = *threshold;
    shard.retain(|_, v| v.worth() > threshold);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Entries are independent: a panic while a shard was held cannot leave it inconsistent
    // in a way that matters, so a poisoned lock is simply taken over.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A bucket's theoretical arrival time (clock ns). In the past, it restricts nothing.
#[derive(Clone, Copy)]
struct Tat(u64);

impl Entry for Tat {
    type Worth = u64;

    fn expired(&self, now: u64) -> bool {
        self.0 <= now
    }

    fn worth(&self) -> u64 {
        self.0
    }
}

impl Entry for LoginState {
    /// The accounts with the most failures are kept longest: flooding the map with fresh
    /// addresses cannot wipe a guessed account's count.
    type Worth = (u32, u64);

    fn expired(&self, now: u64) -> bool {
        self.expires_ns <= now
    }

    fn worth(&self) -> (u32, u64) {
        (self.attempts, self.last_ns)
    }
}

/// The rate limits and login guard of this process.
pub(super) struct LocalLimits {
    buckets: Bounded<Tat>,
    logins: Bounded<LoginState>,
    clock: Arc<dyn Clock>,
}

impl LocalLimits {
    pub(super) fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_capacity(clock, SHARD_CAPACITY)
    }

    pub(super) fn with_capacity(clock: Arc<dyn Clock>, per_shard: usize) -> Self {
        Self {
            buckets: Bounded::new(SHARDS, per_shard),
            logins: Bounded::new(SHARDS, per_shard),
            clock,
        }
    }

    pub(super) fn gcra(&self, bucket: &str, rate: Rate) -> Decision {
        let now = self.clock.now_ns();
        self.buckets.update(bucket, now, |tat| {
            let ahead = tat.map_or(0, |Tat(at)| at.saturating_sub(now));
            let (decision, next) = gcra_step(ahead, rate);
            let write = match next {
                Some(next) => Write::Put(Tat(now.saturating_add(next))),
                None => Write::Keep,
            };
            (decision, write)
        })
    }

    pub(super) fn login(&self, account: &str, op: LoginOp, policy: &LoginPolicy) -> LoginVerdict {
        let now = self.clock.now_ns();
        self.logins.update(account, now, |state| match op {
            LoginOp::Succeeded => (LoginVerdict::Admitted, Write::Remove),
            LoginOp::Admit | LoginOp::Failed => {
                let (verdict, next) = policy.step(state, op, now);
                let write = next.map_or(Write::Keep, Write::Put);
                (verdict, write)
            }
        })
    }

    #[cfg(test)]
    pub(super) fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    #[cfg(test)]
    pub(super) fn login_count(&self) -> usize {
        self.logins.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::ManualClock;
    use super::*;

    #[test]
    fn stays_bounded_and_drops_spent_buckets_first() {
        let clock = Arc::new(ManualClock::default());
        let limits = LocalLimits::with_capacity(Arc::clone(&clock) as Arc<dyn Clock>, 64);
        let rate = Rate::per_minute(60);
        // A busy bucket, with 30 s of debt.
        for _ in 0..30 {
            assert!(limits.gcra("busy", rate).allowed);
        }
        // Far more one-off callers than fit.
        for i in 0..(SHARDS * 64 * 20) {
            limits.gcra(&format!("caller-{i}"), rate);
            assert!(limits.bucket_count() <= SHARDS * 64);
        }
        // The one-offs are worth one second each, the busy bucket thirty: it survived.
        let d = limits.gcra("busy", rate);
        assert_eq!(d.remaining, 29);
        // Once everything is spent, a full shard is swept instead of shed.
        clock.advance(Duration::from_secs(61));
        for i in 0..(SHARDS * 64) {
            limits.gcra(&format!("later-{i}"), rate);
        }
        assert!(limits.bucket_count() <= SHARDS * 64);
    }

    #[test]
    fn refused_calls_write_nothing() {
        let clock = Arc::new(ManualClock::default());
        let limits = LocalLimits::with_capacity(Arc::clone(&clock) as Arc<dyn Clock>, 64);
        let rate = Rate::per_minute(1);
        assert!(limits.gcra("b", rate).allowed);
        for _ in 0..10 {
            let d = limits.gcra("b", rate);
            assert!(!d.allowed);
            assert_eq!(d.retry_after, Duration::from_secs(60));
        }
        assert_eq!(limits.bucket_count(), 1);
    }

    #[test]
    fn login_states_stay_bounded_and_keep_the_most_failed() {
        let clock = Arc::new(ManualClock::default());
        let limits = LocalLimits::with_capacity(Arc::clone(&clock) as Arc<dyn Clock>, 16);
        let policy = LoginPolicy::default();
        for _ in 0..policy.free_attempts {
            assert_eq!(
                limits.login("victim", LoginOp::Admit, &policy),
                LoginVerdict::Admitted
            );
        }
        for i in 0..(SHARDS * 16 * 10) {
            limits.login(&format!("spray-{i}"), LoginOp::Admit, &policy);
            assert!(limits.login_count() <= SHARDS * 16);
        }
        assert!(matches!(
            limits.login("victim", LoginOp::Admit, &policy),
            LoginVerdict::Wait(_)
        ));
    }
}
