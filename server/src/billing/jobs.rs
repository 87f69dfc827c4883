//! The billing jobs, safe to run in every instance at once: the metering flush (with usage
//! alerts), renewals and period closes. Renewals and closes are taken with a lease (a
//! conditional update) and charged under ledger keys that name the period, so a period is
//! charged once however many instances run.
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::service::Billing;

/// Runs the jobs until `stop` turns true: the flush every `flush` interval, renewals and
/// closes every `interval`. A last flush runs on the way out.
pub async fn run(
    billing: Arc<Billing>,
    interval: Duration,
    flush: Duration,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut jobs = tokio::time::interval(interval);
    jobs.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut flushes = tokio::time::interval(flush);
    flushes.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = flushes.tick() => {
                if let Err(error) = billing.flush_usage().await {
                    tracing::warn!(%error, "usage flush failed; the counts are kept for the next");
                }
            }
            _ = jobs.tick() => {
                if let Err(error) = billing.renew_due().await {
                    tracing::warn!(%error, "renewal job");
                }
                if let Err(error) = billing.close_due().await {
                    tracing::warn!(%error, "billing-period close job");
                }
            }
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        }
    }
    if let Err(error) = billing.flush_usage().await {
        tracing::error!(%error, "the last usage flush failed: these counts are lost");
    }
    Ok(())
}
