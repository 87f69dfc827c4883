//! Live verification events for watchers: a broadcast per account inside each instance,
//! and Redis pub/sub between instances (one channel for the deployment, one subscriber
//! connection per instance), so a watcher on one instance sees what another instance did.
//!
//! The feed is a doorbell, not the record: events are stored with their sequence numbers
//! before they are published, and a watcher that sees a gap, lags behind, or hears that
//! the Redis subscription reconnected reads what it missed from the database. Because an
//! instance can die between storing and publishing, each instance also rings every one of
//! its watchers once per recheck interval ([`run_rechecks`]).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fred::prelude::{ClientLike, EventInterface, PubsubInterface};
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::error::StoreError;

/// Events buffered per account for slow watchers before they must catch up from storage.
const PER_ACCOUNT_BUFFER: usize = 32;
/// Sweep senders nobody listens to once the map holds this many accounts.
const SWEEP_AT: usize = 4_096;

/// The sequence number of a recheck marker.
const RECHECK: i64 = -1;

/// A recheck round visits the accounts in this many slices, one slice per
/// `interval / RECHECK_SLICES`, so an instance's watchers do not all read storage at once.
const RECHECK_SLICES: u128 = 16;

/// One published event.
#[derive(Clone, Debug)]
pub struct FeedEvent {
    pub user: Uuid,
    /// `Uuid::nil()` with sequence 0: "you may have missed events, re-read storage"; with
    /// sequence -1: "re-read storage for what has not ended" (the periodic recheck). Both
    /// are made by this instance for its own watchers and never travel through Redis.
    pub verification: Uuid,
    pub sequence: i64,
    pub terminal: bool,
    /// The encoded `VerificationEvent`.
    pub payload: Arc<[u8]>,
}

impl FeedEvent {
    pub fn is_resync(&self) -> bool {
        self.sequence == 0
    }

    pub fn is_recheck(&self) -> bool {
        self.sequence == RECHECK
    }

    fn marker(user: Uuid, sequence: i64) -> Self {
        FeedEvent {
            user,
            verification: Uuid::nil(),
            sequence,
            terminal: false,
            payload: Arc::from(&[][..]),
        }
    }

    fn encode(&self, instance: Uuid) -> Vec<u8> {
        let mut out = Vec::with_capacity(57 + self.payload.len());
        out.extend_from_slice(instance.as_bytes());
        out.extend_from_slice(self.user.as_bytes());
        out.extend_from_slice(self.verification.as_bytes());
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.push(u8::from(self.terminal));
        out.extend_from_slice(&self.payload);
        out
    }

    fn decode(bytes: &[u8]) -> Option<(Uuid, FeedEvent)> {
        if bytes.len() < 57 {
            return None;
        }
        let id = |at: usize| Uuid::from_slice(&bytes[at..at + 16]).ok();
        let sequence = i64::from_be_bytes(bytes[48..56].try_into().ok()?);
        Some((
            id(0)?,
            FeedEvent {
                user: id(16)?,
                verification: id(32)?,
                sequence,
                terminal: bytes[56] == 1,
                payload: Arc::from(&bytes[57..]),
            },
        ))
    }
}

#[derive(Default)]
struct Local {
    accounts: Mutex<HashMap<Uuid, broadcast::Sender<Arc<FeedEvent>>>>,
}

impl Local {
    fn subscribe(&self, user: Uuid) -> broadcast::Receiver<Arc<FeedEvent>> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if accounts.len() >= SWEEP_AT {
            accounts.retain(|_, tx| tx.receiver_count() > 0);
        }
        accounts
            .entry(user)
            .or_insert_with(|| broadcast::channel(PER_ACCOUNT_BUFFER).0)
            .subscribe()
    }

    fn dispatch(&self, event: Arc<FeedEvent>) {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = accounts.get(&event.user)
            && tx.send(event.clone()).is_err()
        {
            accounts.remove(&event.user);
        }
    }

    /// Tells every local watcher to re-read storage.
    fn resync_all(&self) {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        for (user, tx) in accounts.iter() {
            let _ = tx.send(Arc::new(FeedEvent::marker(*user, 0)));
        }
    }

    /// Sends a recheck to the watchers of the accounts in `slice` (of [`RECHECK_SLICES`]).
    fn recheck(&self, slice: u128) {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        for (user, tx) in accounts.iter() {
            if user.as_u128() % RECHECK_SLICES == slice && tx.receiver_count() > 0 {
                let _ = tx.send(Arc::new(FeedEvent::marker(*user, RECHECK)));
            }
        }
    }

    fn watchers(&self) -> usize {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        accounts.values().map(|tx| tx.receiver_count()).sum()
    }
}

struct RedisFeed {
    client: fred::prelude::Client,
    channel: String,
    _subscriber: fred::clients::SubscriberClient,
}

/// The feed of verification events.
pub struct Feed {
    instance: Uuid,
    local: Arc<Local>,
    redis: Option<RedisFeed>,
}

impl Feed {
    /// Events stay inside this process.
    pub fn in_process() -> Self {
        Self {
            instance: Uuid::now_v7(),
            local: Arc::default(),
            redis: None,
        }
    }

    /// Events travel through Redis to every instance.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let error = |e: fred::error::Error| StoreError::Cache(e.to_string());
        let config = fred::prelude::Config::from_url(url)
            .map_err(|e| StoreError::Cache(format!("REDIS_URL: {e}")))?;
        let mut builder = fred::prelude::Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(5);
                c.internal_command_timeout = Duration::from_secs(5);
                // Nagle off: commands pipelined on one connection go out at once.
                c.tcp.nodelay = Some(true);
            })
            .set_policy(fred::prelude::ReconnectPolicy::new_exponential(
                0, 100, 5_000, 2,
            ));
        let client = builder.build().map_err(error)?;
        let subscriber = builder.build_subscriber_client().map_err(error)?;
        client.init().await.map_err(error)?;
        subscriber.init().await.map_err(error)?;

        let instance = Uuid::now_v7();
        let local = Arc::new(Local::default());
        let channel = format!("{prefix}verification-events");
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let listener = Arc::clone(&local);
        tokio::spawn(async move {
            use broadcast::error::RecvError;
            loop {
                tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) => {
                            let decoded = message.value.as_bytes().and_then(FeedEvent::decode);
                            match decoded {
                                // Our own events were dispatched locally when published.
                                Some((from, event)) if from != instance => {
                                    listener.dispatch(Arc::new(event));
                                }
                                Some(_) => {}
                                None => tracing::warn!("unreadable verification event on Redis"),
                            }
                        }
                        Err(RecvError::Lagged(_)) => listener.resync_all(),
                        Err(RecvError::Closed) => break,
                    },
                    reconnected = reconnects.recv() => match reconnected {
                        Ok(_) | Err(RecvError::Lagged(_)) => listener.resync_all(),
                        Err(RecvError::Closed) => break,
                    },
                }
            }
        });
        subscriber
            .subscribe(channel.as_str())
            .await
            .map_err(error)?;
        subscriber.manage_subscriptions();
        Ok(Self {
            instance,
            local,
            redis: Some(RedisFeed {
                client,
                channel,
                _subscriber: subscriber,
            }),
        })
    }

    /// Starts receiving an account's events. Subscribe before reading storage, so nothing
    /// falls between the read and the first live event.
    pub fn subscribe(&self, user: Uuid) -> broadcast::Receiver<Arc<FeedEvent>> {
        self.local.subscribe(user)
    }

    /// Publishes stored events: to this instance's watchers at once, and to the others
    /// through Redis. A Redis failure is logged; watchers elsewhere catch up on their next
    /// event or resync.
    pub async fn publish(&self, events: Vec<FeedEvent>) {
        for event in events {
            let event = Arc::new(event);
            self.local.dispatch(Arc::clone(&event));
            if let Some(redis) = &self.redis
                && let Err(error) = redis
                    .client
                    .publish::<i64, _, _>(redis.channel.as_str(), event.encode(self.instance))
                    .await
            {
                tracing::warn!(%error, "cannot publish a verification event to Redis");
            }
        }
    }

    /// Open watchers in this instance.
    pub fn watchers(&self) -> usize {
        self.local.watchers()
    }
}

/// Sends every watcher of this instance a recheck once per `interval`, a slice of the
/// accounts at a time, until `stop` turns true.
pub async fn run_rechecks(
    feed: Arc<Feed>,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let step = (interval / RECHECK_SLICES as u32).max(Duration::from_millis(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut slice = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return Ok(()),
        }
        feed.local.recheck(slice);
        slice = (slice + 1) % RECHECK_SLICES;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_the_wire() {
        let event = FeedEvent {
            user: Uuid::now_v7(),
            verification: Uuid::now_v7(),
            sequence: 42,
            terminal: true,
            payload: Arc::from(&b"payload"[..]),
        };
        let instance = Uuid::now_v7();
        let (from, back) = FeedEvent::decode(&event.encode(instance)).unwrap();
        assert_eq!(from, instance);
        assert_eq!(back.user, event.user);
        assert_eq!(back.verification, event.verification);
        assert_eq!(back.sequence, 42);
        assert!(back.terminal);
        assert_eq!(&*back.payload, b"payload");
        assert!(FeedEvent::decode(&[0; 10]).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn every_watcher_hears_one_recheck_per_interval() {
        let feed = Arc::new(Feed::in_process());
        let mut receivers: Vec<_> = (0..64).map(|_| feed.subscribe(Uuid::now_v7())).collect();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(run_rechecks(
            Arc::clone(&feed),
            Duration::from_secs(16),
            stop,
        ));
        // Half a round in, about half the accounts were told; a whole round, all of them
        // once; a second round, all of them again.
        tokio::time::sleep(Duration::from_millis(8_500)).await;
        let told = receivers
            .iter_mut()
            .map(|rx| rx.try_recv().is_ok())
            .filter(|told| *told)
            .count();
        assert!((8..=56).contains(&told), "{told} of 64 after half a round");
        tokio::time::sleep(Duration::from_millis(8_000)).await;
        for rx in &mut receivers {
            while let Ok(event) = rx.try_recv() {
                assert!(event.is_recheck() && !event.is_resync());
            }
        }
        tokio::time::sleep(Duration::from_secs(16)).await;
        for rx in &mut receivers {
            assert!(rx.try_recv().unwrap().is_recheck(), "one recheck a round");
            assert!(rx.try_recv().is_err(), "only one");
        }
        stop_tx.send(true).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_account_hears_only_its_own_events() {
        let feed = Feed::in_process();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut rx = feed.subscribe(a);
        let event = |user| FeedEvent {
            user,
            verification: Uuid::now_v7(),
            sequence: 1,
            terminal: false,
            payload: Arc::from(&[][..]),
        };
        feed.publish(vec![event(b), event(a)]).await;
        assert_eq!(rx.recv().await.unwrap().user, a);
        assert!(rx.try_recv().is_err());
        assert_eq!(feed.watchers(), 1);
        drop(rx);
        feed.publish(vec![event(a)]).await;
        assert_eq!(feed.watchers(), 0);
    }
}
