//! Success rates from our own verifications of the last 24 hours: `COMPLETED` divided by
//! `COMPLETED` + `EXPIRED` + `FAILED` (cancellations are the customer's choice and say
//! nothing about the number), per service and country.
//!
//! One grouped query over the day's ended verifications (served by the
//! `verifications(status, created_at)` index), kept in memory for a minute per instance:
//! the rates move slowly, and the catalog's lists must not cost a scan per call.
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::DatabaseConnection;

use crate::error::StoreError;
use crate::verification::domain::Status;

/// How long a tally is reused.
const FRESH_FOR: Duration = Duration::from_secs(60);
/// The window the rates cover.
const WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// Completed and counted verifications.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub completed: i64,
    pub counted: i64,
}

impl Tally {
    /// The rate, or none when nothing was counted.
    pub fn rate(self) -> Option<f64> {
        (self.counted > 0).then(|| self.completed as f64 / self.counted as f64)
    }

    fn add(&mut self, other: Tally) {
        self.completed += other.completed;
        self.counted += other.counted;
    }
}

/// The tallies of one moment.
#[derive(Debug, Default)]
pub struct Rates {
    by_price: HashMap<(String, String), Tally>,
    by_service: HashMap<String, Tally>,
}

impl Rates {
    pub fn from_rows(rows: Vec<(String, String, String, i64)>) -> Self {
        let mut rates = Rates::default();
        for (service, country, status, n) in rows {
            let tally = Tally {
                completed: if Status::parse(&status) == Some(Status::Completed) {
                    n
                } else {
                    0
                },
                counted: n,
            };
            rates
                .by_service
                .entry(service.clone())
                .or_default()
                .add(tally);
            rates
                .by_price
                .entry((service, country))
                .or_default()
                .add(tally);
        }
        rates
    }

    /// A service in one country.
    pub fn price(&self, service: &str, country: &str) -> Tally {
        self.by_price
            .get(&(service.to_owned(), country.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    /// A service in `country`, or in all countries.
    pub fn service(&self, service: &str, country: Option<&str>) -> Tally {
        match country {
            Some(country) => self.price(service, country),
            None => self.by_service.get(service).copied().unwrap_or_default(),
        }
    }
}

/// The per-instance cache of the tallies.
pub struct SuccessRates {
    db: DatabaseConnection,
    current: RwLock<Option<(Instant, Arc<Rates>)>>,
}

impl SuccessRates {
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            current: RwLock::new(None),
        }
    }

    /// The current tallies (recomputed when older than a minute).
    pub async fn get(&self) -> Result<Arc<Rates>, StoreError> {
        if let Some((at, rates)) = &*self.current.read().unwrap_or_else(PoisonError::into_inner)
            && at.elapsed() < FRESH_FOR
        {
            return Ok(Arc::clone(rates));
        }
        let rows = crate::verification::repo::outcomes_since(&self.db, Utc::now() - WINDOW).await?;
        let rates = Arc::new(Rates::from_rows(rows));
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), Arc::clone(&rates)));
        Ok(rates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_leave_cancellations_out_and_sum_countries() {
        let rows = vec![
            ("whatsapp".into(), "GB".into(), "completed".into(), 3),
            ("whatsapp".into(), "GB".into(), "expired".into(), 1),
            ("whatsapp".into(), "US".into(), "failed".into(), 4),
        ];
        let rates = Rates::from_rows(rows);
        assert_eq!(rates.price("whatsapp", "GB").rate(), Some(0.75));
        assert_eq!(rates.service("whatsapp", None).rate(), Some(3.0 / 8.0));
        assert_eq!(rates.service("whatsapp", Some("US")).rate(), Some(0.0));
        assert_eq!(rates.price("telegram", "GB").rate(), None);
    }
}
