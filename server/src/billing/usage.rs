//! Usage metering without a database write per call: each instance counts admitted calls
//! in memory, per account and billing period, and the billing job adds the counts to the
//! period rows in one statement per flush. A crash loses at most one flush interval of
//! counts (`NAMASKAH_USAGE_FLUSH`); a clean shutdown flushes first.
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::repo::PeriodTerms;

const SHARDS: usize = 16;

type Counts = HashMap<(Uuid, DateTime<Utc>), (PeriodTerms, i64)>;

/// Calls counted since the last flush.
pub struct Meter {
    shards: Vec<Mutex<Counts>>,
}

impl Default for Meter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Meter {
    fn shard(&self, user: Uuid) -> std::sync::MutexGuard<'_, Counts> {
        let index = (user.as_u128() % SHARDS as u128) as usize;
        self.shards[index]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `calls` calls of `user` in the period of `terms`.
    pub fn record(&self, user: Uuid, terms: &PeriodTerms, calls: i64) {
        let mut shard = self.shard(user);
        let entry = shard.entry((user, terms.start)).or_insert((*terms, 0));
        entry.1 = entry.1.saturating_add(calls);
    }

    /// Everything counted so far, emptied.
    pub fn take(&self) -> Vec<(Uuid, PeriodTerms, i64)> {
        let mut batch = Vec::new();
        for shard in &self.shards {
            let counts = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            batch.extend(
                counts
                    .into_iter()
                    .map(|((user, _), (terms, calls))| (user, terms, calls)),
            );
        }
        batch
    }

    /// Puts back a batch that could not be written, to go with the next flush.
    pub fn restore(&self, batch: Vec<(Uuid, PeriodTerms, i64)>) {
        for (user, terms, calls) in batch {
            self.record(user, &terms, calls);
        }
    }

    /// Calls of `user` in the period starting at `start` not flushed yet (this instance).
    pub fn pending(&self, user: Uuid, start: DateTime<Utc>) -> i64 {
        self.shard(user)
            .get(&(user, start))
            .map_or(0, |(_, calls)| *calls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::domain::Plan;

    #[test]
    fn counts_per_account_and_period_until_taken() {
        let meter = Meter::default();
        let user = Uuid::new_v4();
        let start = Utc::now();
        let terms = PeriodTerms {
            start,
            end: start + chrono::Duration::days(30),
            plan: Plan::Enterprise,
            included_api_calls: 10,
            overage_per_thousand: 50,
        };
        let next = PeriodTerms {
            start: terms.end,
            end: terms.end + chrono::Duration::days(30),
            ..terms
        };
        for _ in 0..5 {
            meter.record(user, &terms, 1);
        }
        meter.record(user, &next, 2);
        assert_eq!(meter.pending(user, start), 5);
        let mut batch = meter.take();
        batch.sort_by_key(|(_, t, _)| t.start);
        assert_eq!(batch.len(), 2);
        assert_eq!((batch[0].2, batch[1].2), (5, 2));
        assert_eq!(meter.pending(user, start), 0);
        meter.restore(batch);
        assert_eq!(meter.pending(user, start), 5);
    }
}
