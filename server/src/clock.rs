//! The time billing runs on: the system clock, which tests may move forward (to a period's
//! end, past a renewal) without waiting. Nothing a request sends can move it.
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

#[derive(Debug, Default)]
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Now, in whole microseconds: what PostgreSQL stores, so a time handed out equals the
    /// time read back.
    pub fn now(&self) -> DateTime<Utc> {
        let now =
            Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed));
        DateTime::<Utc>::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }

    /// Moves this clock forward by `by` (tests).
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Sets this clock so that it reads `at` now (tests).
    pub fn set(&self, at: DateTime<Utc>) {
        // Rounded up, so that the clock never reads earlier than `at`.
        let offset = (at - Utc::now() + chrono::Duration::microseconds(999)).num_milliseconds();
        self.offset_ms.store(offset, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_on_demand() {
        let clock = Clock::default();
        let before = clock.now();
        clock.advance(Duration::from_secs(3_600));
        assert!(clock.now() - before >= chrono::Duration::seconds(3_600));
        let at = DateTime::parse_from_rfc3339("2030-01-31T23:59:59Z")
            .unwrap()
            .with_timezone(&Utc);
        clock.set(at);
        assert!((clock.now() - at).num_milliseconds().abs() < 1_000);
    }
}
