//! The analytics room: client events in, the business's reports out, and the rollup job that
//! keeps the reports fast.
use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};
use uuid::Uuid;

use super::domain::{
    self, Activity, CustomerValue, DateRange, FunnelStep, Granularity, RevenueReport,
};
use super::events::{ClientEvent, Event, Tracker};
pub use super::repo::Audience;
use super::repo::{self, DAILY};
use crate::error::{ApiError, StoreError};

/// A rollup never reads the last moments: a ledger transaction that started before them may
/// not have committed yet. Nothing the rollup reads stays uncommitted this long.
pub const ROLLUP_GRACE: chrono::Duration = chrono::Duration::minutes(2);
/// The longest window one rollup transaction covers (a first run over a year of history
/// is many short transactions, not one long one).
const ROLLUP_WINDOW: chrono::Duration = chrono::Duration::days(7);
/// A pass of this many windows is a catch-up (a first run, or a long stop): when it ends,
/// the rollups are vacuumed and analysed.
const CATCH_UP_WINDOWS: usize = 4;

pub const TRACK_EVENT: &str = "namaskah.v1.AnalyticsService/TrackEvent";
pub const GET_REVENUE_ANALYTICS: &str = "namaskah.v1.AnalyticsService/GetRevenueAnalytics";
pub const GET_CONVERSION_FUNNEL: &str = "namaskah.v1.AnalyticsService/GetConversionFunnel";
pub const GET_CUSTOMER_METRICS: &str = "namaskah.v1.AnalyticsService/GetCustomerMetrics";

/// A `TrackEvent` as it arrived.
pub struct TrackInput {
    pub name: String,
    pub properties: BTreeMap<String, String>,
    pub at: Option<DateTime<Utc>>,
    pub anonymous_id: String,
    pub request_id: String,
}

/// One stage of the funnel report.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    pub step: FunnelStep,
    pub customers: i64,
    pub from_previous: Option<f64>,
    pub from_start: Option<f64>,
    pub median_from_previous: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Funnel {
    pub cohort: i64,
    pub stages: Vec<Stage>,
}

/// Outcomes of one service in one country.
#[derive(Clone, Debug, PartialEq)]
pub struct SuccessRate {
    pub service: String,
    pub country: String,
    pub completed: i64,
    pub expired: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub rate: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CustomerReport {
    pub activity: Activity,
    pub value: CustomerValue,
    pub success_rates: Vec<SuccessRate>,
}

pub struct Analytics {
    db: DatabaseConnection,
    tracker: Tracker,
}

impl Analytics {
    pub fn new(db: DatabaseConnection, tracker: Tracker) -> Self {
        Self { db, tracker }
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }

    /// Checks a client event and queues it, attributed to `user` when the caller sent
    /// credentials.
    pub fn track(&self, user: Option<Uuid>, input: TrackInput) -> Result<(), ApiError> {
        let now = Utc::now();
        let event = domain::check_event(
            &input.name,
            input.properties,
            input.at,
            &input.anonymous_id,
            &input.request_id,
            now,
        )?;
        let who = match (user, &event.anonymous_id) {
            (Some(user), _) => user.to_string(),
            (None, Some(anonymous)) => format!("anon:{anonymous}"),
            (None, None) => "anon".to_owned(),
        };
        let dedup_key = event
            .request_id
            .as_ref()
            .map(|id| format!("client:{who}:{id}"));
        self.tracker.record(Event::Client(ClientEvent {
            name: event.name.to_owned(),
            user,
            anonymous_id: event.anonymous_id,
            properties: event.properties,
            at: event.at,
            received_at: now,
            dedup_key,
        }));
        Ok(())
    }

    /// Checks a report's range against today.
    pub fn range(
        &self,
        start: Option<chrono::NaiveDate>,
        end: Option<chrono::NaiveDate>,
        granularity: Granularity,
    ) -> Result<DateRange, ApiError> {
        DateRange::checked(start, end, granularity, Utc::now().date_naive())
    }

    pub async fn revenue(
        &self,
        range: &DateRange,
        granularity: Granularity,
        audience: Audience,
    ) -> Result<RevenueReport, ApiError> {
        let days = domain::revenue_days(range, granularity);
        let upto = repo::rollup_upto(&self.db, DAILY).await?;
        let daily = repo::daily_revenue(&self.db, &days, upto, audience).await?;
        Ok(domain::revenue_report(&daily, range, granularity))
    }

    pub async fn funnel(&self, range: &DateRange, audience: Audience) -> Result<Funnel, ApiError> {
        let figures = repo::funnel(&self.db, range, audience).await?;
        let cohort = figures.first().map_or(0, |(_, n, _)| *n);
        let mut stages: Vec<Stage> = Vec::with_capacity(figures.len());
        let mut previous: Option<i64> = None;
        for (step, customers, median) in figures {
            stages.push(Stage {
                step,
                customers,
                from_previous: previous.and_then(|n| domain::ratio(customers, n)),
                from_start: domain::ratio(customers, cohort),
                median_from_previous: median.map(seconds_to_duration),
            });
            previous = Some(customers);
        }
        Ok(Funnel { cohort, stages })
    }

    pub async fn customers(
        &self,
        range: &DateRange,
        audience: Audience,
    ) -> Result<CustomerReport, ApiError> {
        let previous = range.previous();
        let upto = repo::rollup_upto(&self.db, DAILY).await?;
        let (total, new, previous_new) =
            repo::customer_counts(&self.db, range, &previous, audience).await?;
        let [
            active,
            previous_active,
            churned,
            daily,
            weekly,
            monthly,
            paying,
        ] = repo::activity(&self.db, range, &previous, upto, audience).await?;
        let daily_revenue = repo::daily_revenue(&self.db, range, upto, audience).await?;
        let net = domain::total(&daily_revenue, range).figures().net_revenue;
        let activity = Activity {
            total_customers: total,
            new_customers: new,
            previous_new_customers: previous_new,
            active,
            previous_active,
            churned,
            daily_active: daily,
            weekly_active: weekly,
            monthly_active: monthly,
            paying,
        };
        let value = domain::customer_value(net, &activity);

        let mut success_rates: Vec<SuccessRate> = repo::outcomes(&self.db, range, upto, audience)
            .await?
            .into_iter()
            .map(|((service, country), by_status)| {
                let n = |s: &str| by_status.get(s).copied().unwrap_or(0);
                let (completed, expired, failed) = (n("completed"), n("expired"), n("failed"));
                SuccessRate {
                    rate: domain::ratio(completed, completed + expired + failed),
                    service,
                    country,
                    completed,
                    expired,
                    failed,
                    cancelled: n("cancelled"),
                }
            })
            .collect();
        success_rates.sort_by(|a, b| {
            let total = |r: &SuccessRate| r.completed + r.expired + r.failed + r.cancelled;
            total(b)
                .cmp(&total(a))
                .then_with(|| a.service.cmp(&b.service))
                .then_with(|| a.country.cmp(&b.country))
        });
        Ok(CustomerReport {
            activity,
            value,
            success_rates,
        })
    }

    /// Rolls everything that happened up to `now − ROLLUP_GRACE` (ledger entries by when
    /// they were inserted, verifications by when they were bought and ended) into the
    /// rollups, a window at a time. Safe with several instances: each window is one
    /// transaction holding the rollup's row (another instance holding it makes this pass
    /// stop). Returns the number of windows rolled up.
    pub async fn roll_up(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        // In whole microseconds, as the databases keep it: the mark read back must equal the
        // mark written, or the last window would be rolled up again and again.
        let cutoff = now - ROLLUP_GRACE;
        let cutoff =
            DateTime::<Utc>::from_timestamp_micros(cutoff.timestamp_micros()).unwrap_or(cutoff);
        let mut windows = 0;
        loop {
            let txn = self.db.begin().await?;
            let Some(mut upto) = repo::lock_rollup(&txn, DAILY, now).await? else {
                // Another instance is rolling up now.
                break;
            };
            if upto == DateTime::<Utc>::UNIX_EPOCH {
                // Nothing is dated before the first account.
                match repo::first_account_time(&txn).await? {
                    Some(first) => upto = first.min(cutoff),
                    None => upto = cutoff,
                }
            }
            if upto >= cutoff {
                txn.commit().await?;
                break;
            }
            let to = (upto + ROLLUP_WINDOW).min(cutoff);
            repo::roll_up(&txn, DAILY, upto, to).await?;
            txn.commit().await?;
            windows += 1;
        }
        if windows >= CATCH_UP_WINDOWS {
            // A catch-up rewrites the rollups wholesale.
            repo::tidy_rollups(&self.db).await?;
        }
        Ok(windows)
    }
}

fn seconds_to_duration(seconds: f64) -> Duration {
    if seconds.is_finite() && seconds > 0.0 {
        // Microseconds: what the database keeps.
        Duration::from_micros((seconds * 1e6).round() as u64)
    } else {
        Duration::ZERO
    }
}

/// Runs the rollup every `interval` until `stop`.
pub async fn run_rollups(
    analytics: std::sync::Arc<Analytics>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        match analytics.roll_up(Utc::now()).await {
            Ok(0) => {}
            Ok(windows) => tracing::debug!(windows, "analytics rolled up"),
            Err(error) => tracing::warn!(%error, "analytics rollup job"),
        }
    }
}
