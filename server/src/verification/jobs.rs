//! The background jobs of the lifecycle, safe to run in every instance at once:
//!
//! - **poll**: asks providers for the messages of rentals whose poll is due. A poll is
//!   taken with a lease (a conditional update that moves `next_poll_at` forward), so two
//!   instances never poll one rental at the same time; the interval grows with the
//!   rental's age.
//! - **expire**: verifications past `expires_at` expire (refund), and ones stuck `PENDING`
//!   past the deadline fail (refund). The lifecycle's conditional update makes racing
//!   instances, cancels and SMS resolve to exactly one outcome.
//! - **cleanup**: tells providers what they still need to hear (give back an unused
//!   number, finish an order), retrying with backoff when the outcome is unknown or the
//!   provider fails, since guessing would either lose the platform's money or double it.
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Semaphore, watch};

use super::domain::{Cleanup, Status};
use super::repo::{self, Lease};
use super::service::{AFTER_CODE_POLL, Incoming, Input, Verifications, next_poll, poll_interval};
use crate::providers::{ProviderError, RemoteState};

/// Rows taken per job pass.
const BATCH: u64 = 200;
/// Provider calls in flight per instance.
const CONCURRENCY: usize = 32;
/// How long a taken poll or cleanup is ours before another instance may take it.
const LEASE: Duration = Duration::from_secs(60);
/// Cleanups give up (and log an error for a human) after this many attempts.
const MAX_CLEANUP_ATTEMPTS: i32 = 12;

fn at(d: Duration) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Runs the jobs every `interval` until `stop` turns true.
pub async fn run(
    verifications: Arc<Verifications>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        if let Err(error) = expire(&verifications).await {
            tracing::warn!(%error, "expiry job");
        }
        if let Err(error) = poll(&verifications, &permits).await {
            tracing::warn!(%error, "polling job");
        }
        if let Err(error) = cleanup(&verifications, &permits).await {
            tracing::warn!(%error, "provider cleanup job");
        }
    }
}

/// One pass of the expiry job; returns how many verifications it ended.
pub async fn expire(verifications: &Verifications) -> anyhow::Result<usize> {
    let db = verifications.db();
    let mut ended = 0;
    for id in repo::overdue(db, Status::Active, Utc::now(), BATCH).await? {
        match verifications.apply(id, Input::Expire).await {
            Ok(applied) if applied.changed => ended += 1,
            Ok(_) => {}
            Err(error) => tracing::warn!(%id, error = %error, "cannot expire a verification"),
        }
    }
    let deadline = Utc::now()
        - chrono::Duration::from_std(verifications.settings().pending_deadline)
            .unwrap_or(chrono::Duration::MAX);
    for id in repo::overdue(db, Status::Pending, deadline, BATCH).await? {
        tracing::warn!(%id, "verification stuck pending: failing it and refunding");
        match verifications
            .apply(
                id,
                Input::Fail {
                    reason: super::domain::FailureReason::ProviderTimeout,
                    recover: None,
                },
            )
            .await
        {
            Ok(applied) if applied.changed => ended += 1,
            Ok(_) => {}
            Err(error) => tracing::warn!(%id, error = %error, "cannot fail a verification"),
        }
    }
    Ok(ended)
}

/// One pass of the polling job; waits for the polls it started.
pub async fn poll(
    verifications: &Arc<Verifications>,
    permits: &Arc<Semaphore>,
) -> anyhow::Result<()> {
    let db = verifications.db();
    let due = repo::due(db, Lease::Poll, Utc::now(), BATCH).await?;
    let mut running = tokio::task::JoinSet::new();
    for (id, read) in due {
        let lease = at(LEASE);
        if !repo::claim(db, Lease::Poll, id, read, lease).await? {
            continue; // another instance took it
        }
        let permit = Arc::clone(permits).acquire_owned().await?;
        let verifications = Arc::clone(verifications);
        running.spawn(async move {
            let _permit = permit;
            if let Err(error) = poll_one(&verifications, id, lease).await {
                tracing::warn!(%id, %error, "polling a rental failed");
            }
        });
    }
    while running.join_next().await.is_some() {}
    Ok(())
}

async fn poll_one(
    verifications: &Verifications,
    id: uuid::Uuid,
    lease: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    let db = verifications.db();
    let Some(row) = repo::by_id(db, id).await? else {
        return Ok(());
    };
    let provider = row
        .provider
        .as_deref()
        .and_then(|name| verifications.router().by_name(name));
    let (Some(provider), Some(rental)) = (provider, row.provider_ref.clone()) else {
        repo::schedule_poll(db, id, lease, None).await?;
        return Ok(());
    };
    let outcome = provider.poll(&rental).await;
    let mut ended_remotely = false;
    match &outcome {
        Ok(poll) => {
            for sms in &poll.messages {
                verifications
                    .apply(id, Input::Sms(Incoming::from_provider(sms)))
                    .await?;
            }
            ended_remotely = poll.state == RemoteState::Ended;
        }
        Err(error) => {
            tracing::debug!(%id, provider = provider.name(), %error, "poll failed; will retry");
        }
    }
    // Look again after the messages were applied: keep polling while the number can still
    // receive something we would show.
    let Some(row) = repo::by_id(db, id).await? else {
        return Ok(());
    };
    let status = Status::parse(&row.status);
    let open = matches!(status, Some(Status::Active | Status::Completed))
        && row.expires_at.is_some_and(|at| at > Utc::now())
        && !ended_remotely;
    let next = match row.expires_at {
        Some(expires_at) if open => {
            let due = if status == Some(Status::Completed) {
                at(AFTER_CODE_POLL)
            } else {
                let mut interval = poll_interval(row.provider.as_deref(), row.poll_count);
                if matches!(outcome, Err(ProviderError::RateLimited)) {
                    interval *= 4;
                }
                at(interval)
            };
            let quiet_until = outcome.as_ref().ok().and_then(|poll| poll.quiet_until);
            next_poll(due, quiet_until, expires_at)
        }
        _ => None,
    };
    repo::schedule_poll(db, id, lease, next).await?;
    Ok(())
}

/// One pass of the provider cleanup job.
pub async fn cleanup(
    verifications: &Arc<Verifications>,
    permits: &Arc<Semaphore>,
) -> anyhow::Result<()> {
    let db = verifications.db();
    let due = repo::due(db, Lease::Cleanup, Utc::now(), BATCH).await?;
    let mut running = tokio::task::JoinSet::new();
    for (id, read) in due {
        let lease = at(LEASE);
        if !repo::claim(db, Lease::Cleanup, id, read, lease).await? {
            continue;
        }
        let permit = Arc::clone(permits).acquire_owned().await?;
        let verifications = Arc::clone(verifications);
        running.spawn(async move {
            let _permit = permit;
            if let Err(error) = cleanup_one(&verifications, id, lease).await {
                tracing::warn!(%id, %error, "provider cleanup failed");
            }
        });
    }
    while running.join_next().await.is_some() {}
    Ok(())
}

async fn cleanup_one(
    verifications: &Verifications,
    id: uuid::Uuid,
    lease: chrono::DateTime<Utc>,
) -> anyhow::Result<()> {
    let db = verifications.db();
    let Some(row) = repo::by_id(db, id).await? else {
        return Ok(());
    };
    let what = Verifications::cleanup_of(&row);
    let provider = row
        .provider
        .as_deref()
        .and_then(|name| verifications.router().by_name(name));
    let (Some(what), Some(provider)) = (what, provider) else {
        repo::finish_cleanup(db, id, lease, None).await?;
        return Ok(());
    };
    let result = match (what, row.provider_ref.as_deref()) {
        (Cleanup::Recover, _) => {
            // Ask again with the same key: the provider returns the rental the timed-out
            // call made (or makes one now), and it goes straight back.
            let key = row.id.to_string();
            let request = crate::providers::NumberRequest {
                service: &row.service,
                country: &row.country,
                idempotency_key: &key,
            };
            match provider.rent(&request).await {
                Ok(rental) => {
                    tracing::info!(%id, provider = provider.name(), rental = %rental.provider_ref, "recovered a rental from a timed-out call; giving it back");
                    provider.cancel(&rental.provider_ref).await
                }
                // Nothing was rented (and none can be now): nothing to give back.
                Err(ProviderError::NoNumbers | ProviderError::Unsupported) => Ok(()),
                Err(error) => Err(error),
            }
        }
        (_, None) => Ok(()),
        (Cleanup::Finish, Some(rental)) => provider.finish(rental).await,
        (Cleanup::Cancel, Some(rental)) => match provider.cancel(rental).await {
            // Too late to cancel (the provider already closed it its own way): report the
            // number instead, which is how providers refund a number that brought no code.
            Err(ProviderError::Refused(why)) => {
                tracing::info!(%id, provider = provider.name(), %why, "cancel refused; reporting the number");
                provider.report(rental).await
            }
            other => other,
        },
    };
    let retry = match result {
        Ok(()) => None,
        Err(ProviderError::Refused(why)) => {
            tracing::warn!(%id, provider = provider.name(), %why, what = what.as_str(), "provider refused the cleanup; giving up");
            None
        }
        Err(error) if row.cleanup_attempts >= MAX_CLEANUP_ATTEMPTS => {
            tracing::error!(%id, provider = provider.name(), %error, what = what.as_str(), "provider cleanup kept failing; giving up, check the provider account by hand");
            None
        }
        Err(error) => {
            // Unknown outcome or provider failure: try again later, backing off.
            let wait =
                Duration::from_secs(2u64.saturating_pow(row.cleanup_attempts.clamp(1, 10) as u32))
                    .min(Duration::from_secs(600));
            tracing::info!(%id, provider = provider.name(), %error, retry_in_s = wait.as_secs(), "provider cleanup will be retried");
            Some(at(wait))
        }
    };
    repo::finish_cleanup(db, id, lease, retry).await?;
    Ok(())
}
