//! Conversion events, off the request path: whoever records one hands it to the [`Tracker`]
//! (a bounded queue, never a wait), and one writer task per process writes them in batches —
//! every flush interval, or sooner when a batch fills. A crash loses at most the events of
//! the last interval; a full queue (the database far behind) drops new events with a warning
//! and a counter rather than slow a customer's call.
use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{DatabaseConnection, EntityTrait, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::domain::{FunnelStep, Source};
use super::entities::{conversion_events, funnel_progress};

/// How many events wait for the writer at most.
const QUEUE: usize = 20_000;
/// How many events the writer writes in one transaction at most.
const BATCH: usize = 500;

/// One event to record.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// An account reached a funnel step (recorded the first time only; a later or repeated
    /// report of the same step changes nothing, an earlier one moves it back).
    Step {
        user: Uuid,
        step: FunnelStep,
        at: DateTime<Utc>,
    },
    /// A client-side event (`TrackEvent`), already checked.
    Client(ClientEvent),
}

#[derive(Clone, Debug, PartialEq)]
pub struct ClientEvent {
    pub name: String,
    pub user: Option<Uuid>,
    pub anonymous_id: Option<String>,
    pub properties: BTreeMap<String, String>,
    pub at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// `client:{who}:{request_id}` for a retry-safe event.
    pub dedup_key: Option<String>,
}

enum Command {
    Record(Event),
    Flush(oneshot::Sender<()>),
}

/// Hands events to the writer. Cheap to clone; every room that records a step holds one.
#[derive(Clone)]
pub struct Tracker {
    tx: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker").finish_non_exhaustive()
    }
}

impl Tracker {
    /// Starts the writer on `db`, writing every `interval`. It ends, after a last flush,
    /// when every `Tracker` is dropped.
    pub fn spawn(db: DatabaseConnection, interval: Duration) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(db, rx, interval));
        Self { tx }
    }

    /// A tracker whose events go nowhere (counted as dropped): for parts built before the
    /// writer exists.
    pub fn disabled() -> Self {
        let (tx, _) = mpsc::channel(1);
        Self { tx }
    }

    /// Records that `user` reached `step` at `at`.
    pub fn step(&self, user: Uuid, step: FunnelStep, at: DateTime<Utc>) {
        self.record(Event::Step { user, step, at });
    }

    pub fn record(&self, event: Event) {
        match self.tx.try_send(Command::Record(event)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!("analytics_events_dropped_total", "reason" => "queue_full")
                    .increment(1);
                tracing::warn!("the analytics queue is full: an event was dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                metrics::counter!("analytics_events_dropped_total", "reason" => "stopped")
                    .increment(1);
            }
        }
    }

    /// Writes everything recorded so far, and returns when it is written (or the writer has
    /// given up on this batch: see the log). For shutdown and tests.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Command::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_loop(db: DatabaseConnection, mut rx: mpsc::Receiver<Command>, interval: Duration) {
    let mut pending: Vec<Event> = Vec::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            command = rx.recv() => match command {
                Some(Command::Record(event)) => {
                    pending.push(event);
                    if pending.len() >= BATCH {
                        write_pending(&db, &mut pending).await;
                    }
                }
                Some(Command::Flush(done)) => {
                    write_pending(&db, &mut pending).await;
                    let _ = done.send(());
                }
                None => {
                    write_pending(&db, &mut pending).await;
                    return;
                }
            },
            _ = tick.tick() => write_pending(&db, &mut pending).await,
        }
    }
}

/// Writes `pending` in batches. A batch the database refuses stays queued for the next
/// round, up to the queue's size; beyond it the oldest events are dropped (and counted).
async fn write_pending(db: &DatabaseConnection, pending: &mut Vec<Event>) {
    while !pending.is_empty() {
        let take = pending.len().min(BATCH);
        match write_batch(db, &pending[..take]).await {
            Ok(()) => {
                metrics::counter!("analytics_events_written_total").increment(take as u64);
                pending.drain(..take);
            }
            Err(error) => {
                tracing::error!(%error, events = pending.len(), "cannot write analytics events; keeping them for the next round");
                if pending.len() > QUEUE {
                    let drop = pending.len() - QUEUE;
                    pending.drain(..drop);
                    metrics::counter!("analytics_events_dropped_total", "reason" => "store_failed")
                        .increment(drop as u64);
                }
                return;
            }
        }
    }
}

async fn write_batch(db: &DatabaseConnection, batch: &[Event]) -> Result<(), sea_orm::DbErr> {
    // One row per account and step: the earliest report wins.
    let mut steps: BTreeMap<(Uuid, FunnelStep), DateTime<Utc>> = BTreeMap::new();
    let mut events = Vec::new();
    for event in batch {
        match event {
            Event::Step { user, step, at } => {
                steps
                    .entry((*user, *step))
                    .and_modify(|t| *t = std::cmp::min(*t, *at))
                    .or_insert(*at);
            }
            Event::Client(e) => events.push(conversion_events::ActiveModel {
                id: sea_orm::Set(Uuid::now_v7()),
                name: sea_orm::Set(e.name.clone()),
                source: sea_orm::Set(Source::Client.as_str().to_owned()),
                user_id: sea_orm::Set(e.user),
                anonymous_id: sea_orm::Set(e.anonymous_id.clone()),
                properties: sea_orm::Set(
                    serde_json::to_string(&e.properties).unwrap_or_else(|_| "{}".to_owned()),
                ),
                event_time: sea_orm::Set(e.at),
                received_at: sea_orm::Set(e.received_at),
                dedup_key: sea_orm::Set(e.dedup_key.clone()),
            }),
        }
    }
    let now = Utc::now();
    let mut progress = Vec::with_capacity(steps.len());
    for (&(user, step), &at) in &steps {
        progress.push(funnel_progress::ActiveModel {
            user_id: sea_orm::Set(user),
            step: sea_orm::Set(step.as_str().to_owned()),
            reached_at: sea_orm::Set(at),
        });
        events.push(conversion_events::ActiveModel {
            id: sea_orm::Set(Uuid::now_v7()),
            name: sea_orm::Set(step.as_str().to_owned()),
            source: sea_orm::Set(Source::Server.as_str().to_owned()),
            user_id: sea_orm::Set(Some(user)),
            anonymous_id: sea_orm::Set(None),
            properties: sea_orm::Set("{}".to_owned()),
            event_time: sea_orm::Set(at),
            received_at: sea_orm::Set(now),
            dedup_key: sea_orm::Set(Some(format!("step:{user}:{}", step.as_str()))),
        });
    }

    let txn = db.begin().await?;
    if !progress.is_empty() {
        funnel_progress::Entity::insert_many(progress)
            .on_conflict(
                OnConflict::columns([
                    funnel_progress::Column::UserId,
                    funnel_progress::Column::Step,
                ])
                .update_column(funnel_progress::Column::ReachedAt)
                .action_and_where(
                    Expr::col((funnel_progress::Entity, funnel_progress::Column::ReachedAt))
                        .gt(Expr::cust("excluded.reached_at")),
                )
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    if !events.is_empty() {
        conversion_events::Entity::insert_many(events)
            .on_conflict(
                OnConflict::column(conversion_events::Column::DedupKey)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await
}
