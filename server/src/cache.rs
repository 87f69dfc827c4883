//! A small key-value cache with expiry: Redis in production (shared by every instance), an
//! in-process map otherwise. Callers see one trait and never know which is behind it.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fred::prelude::{
    ClientLike, EventInterface, Expiration, KeysInterface, PubsubInterface, SetOptions,
};

use crate::error::StoreError;
use crate::telemetry::metrics;

/// A cache of short strings. Entries may vanish at any time before their expiry; callers
/// always know how to rebuild them.
///
/// Two ways to write, so that a slow reader never undoes a change: `fill` stores what a
/// reader just read from the database, only if the key holds nothing (a change written
/// meanwhile wins); `set` records a change (a revocation, a tombstone) and overwrites.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Stores `value` unless the key already holds one.
    async fn fill(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Stores `value`, replacing what is there, and (with Redis) tells every instance.
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Stores `value` only if the key still holds `expected` (a tombstone the caller saw
    /// before reading what replaces it); returns whether it did.
    async fn replace(
        &self,
        key: &str,
        expected: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Which implementation this is, for logs and `/metrics`.
    fn kind(&self) -> &'static str;
    /// A counter that moves whenever a value this instance may have read could have been
    /// replaced (a `set` here, or, with Redis, a change announced by any instance). A copy
    /// of a value, decoded and kept by a caller, is still good while the counter stands
    /// where it stood *before* the value was read (and within [`DECODED_TTL`]).
    fn generation(&self) -> u64;
}

/// How long a caller may keep a decoded copy of an entry while [`Cache::generation`]
/// stands still. With Redis, a change made on another instance reaches this one as a
/// message; should that message be lost, the near copy ages out after [`NEAR_TTL`] and a
/// decoded copy after at most this much more.
pub const DECODED_TTL: Duration = Duration::from_secs(1);

const SHARDS: usize = 16;
/// Entries per shard before expired entries are swept (and, if still full, the shard is
/// emptied). Keeps memory bounded whatever the traffic.
const SHARD_CAPACITY: usize = 8_192;

/// The in-process cache: sharded maps, so that concurrent requests rarely share a lock.
pub struct InProcessCache {
    shards: Vec<Mutex<HashMap<String, (Instant, String)>>>,
    /// Moves on every overwrite and removal (see [`Cache::generation`]).
    generation: AtomicU64,
}

impl Default for InProcessCache {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            generation: AtomicU64::new(0),
        }
    }
}

impl InProcessCache {
    fn store(&self, key: &str, value: &str, ttl: Duration, overwrite: bool) {
        if overwrite {
            self.changing(|| self.put(key, value, ttl, true));
        } else {
            self.put(key, value, ttl, false);
        }
    }

    /// Runs a change between two moves of the generation: a copy read while it ran carries
    /// the first move's number, which the second makes stale (see [`Cache::generation`]).
    fn changing(&self, change: impl FnOnce()) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        change();
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn put(&self, key: &str, value: &str, ttl: Duration, overwrite: bool) {
        let now = Instant::now();
        let mut shard = lock(self.shard(key));
        if !overwrite && shard.get(key).is_some_and(|(expires, _)| *expires > now) {
            return;
        }
        if shard.len() >= SHARD_CAPACITY && !shard.contains_key(key) {
            shard.retain(|_, (expires, _)| *expires > now);
            if shard.len() >= SHARD_CAPACITY {
                shard.clear();
            }
        }
        shard.insert(key.to_owned(), (now + ttl, value.to_owned()));
    }

    /// Puts `value` in place of `expected`, if the key still holds it (and it is live).
    fn swap(&self, key: &str, expected: &str, value: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut shard = lock(self.shard(key));
        match shard.get_mut(key) {
            Some(entry) if entry.0 > now && entry.1 == expected => {
                *entry = (now + ttl, value.to_owned());
                true
            }
            _ => false,
        }
    }

    fn forget(&self, key: &str) {
        self.changing(|| {
            lock(self.shard(key)).remove(key);
        });
    }

    /// The live value of `key` (not counted in the metrics: callers count).
    fn lookup(&self, key: &str) -> Option<String> {
        let mut shard = lock(self.shard(key));
        match shard.get(key) {
            Some((expires, value)) if *expires > Instant::now() => Some(value.clone()),
            Some(_) => {
                shard.remove(key);
                None
            }
            None => None,
        }
    }

    /// Drops every entry.
    pub fn clear(&self) {
        self.changing(|| {
            for shard in &self.shards {
                lock(shard).clear();
            }
        });
    }

    fn shard(&self, key: &str) -> &Mutex<HashMap<String, (Instant, String)>> {
        // FNV-1a: cheap and good enough to spread keys over a handful of shards.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in key.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        &self.shards[(hash as usize) % SHARDS]
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave a cache map inconsistent in a way that
    // matters (entries are independent), so a poisoned lock is simply taken over.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[async_trait]
impl Cache for InProcessCache {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let value = self.lookup(key);
        metrics::cache_lookup("in-process", if value.is_some() { "hit" } else { "miss" });
        Ok(value)
    }

    async fn fill(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.store(key, value, ttl, false);
        Ok(())
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        self.store(key, value, ttl, true);
        Ok(())
    }

    async fn replace(
        &self,
        key: &str,
        expected: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        // No move of the generation: what goes is a tombstone, which nobody keeps decoded.
        Ok(self.swap(key, expected, value, ttl))
    }

    fn kind(&self) -> &'static str {
        "in-process"
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

/// How long an instance keeps a Redis entry in its own memory. Changes made anywhere are
/// broadcast over Redis pub/sub and drop the local copies at once; this bounds staleness if
/// such a message is lost (it also clears everything when the subscription reconnects).
const NEAR_TTL: Duration = Duration::from_secs(5);

/// The Redis cache, shared by every instance, with a small near cache in each instance so
/// that a hot key (an API key, a session) costs no network round trip per request. Every
/// key is prefixed, so deployments (and tests) can share a server.
pub struct RedisCache {
    client: fred::prelude::Client,
    prefix: String,
    channel: String,
    near: Arc<NearCache>,
    _subscriber: fred::clients::SubscriberClient,
}

impl RedisCache {
    /// Connects, subscribes to invalidations and waits until Redis answers.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let config = fred::prelude::Config::from_url(url)
            .map_err(|e| StoreError::Cache(format!("REDIS_URL: {e}")))?;
        let builder = {
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
            builder
        };
        let client = builder.build().map_err(redis_error)?;
        let subscriber = builder.build_subscriber_client().map_err(redis_error)?;
        client
            .init()
            .await
            .map_err(|e| StoreError::Cache(format!("cannot connect to Redis: {e}")))?;
        subscriber
            .init()
            .await
            .map_err(|e| StoreError::Cache(format!("cannot connect to Redis: {e}")))?;

        let channel = format!("{prefix}cache-invalidate");
        let near = Arc::new(NearCache::default());
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        let listener = Arc::clone(&near);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) => match message.value.as_string() {
                            Some(key) => listener.forget(&key),
                            None => listener.clear(),
                        },
                        // Missed messages: forget everything rather than serve stale entries.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => listener.clear(),
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                    reconnected = reconnects.recv() => match reconnected {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                            listener.clear();
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                }
            }
        });
        subscriber
            .subscribe(channel.as_str())
            .await
            .map_err(redis_error)?;
        subscriber.manage_subscriptions();
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            channel,
            near,
            _subscriber: subscriber,
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    pub fn client(&self) -> &fred::prelude::Client {
        &self.client
    }

    /// Tells every instance (this one included) to drop its near copy of `key`.
    async fn broadcast_change(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .publish::<i64, _, _>(self.channel.as_str(), key)
            .await
            .map(|_| ())
            .map_err(redis_error)
    }
}

/// A time to live as Redis's `PX` milliseconds (at least 1).
fn px(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// `replace`: compare and set, in one step on the Redis server.
const REPLACE_SCRIPT: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
     redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 else return 0 end";

fn redis_error(e: fred::error::Error) -> StoreError {
    StoreError::Cache(e.to_string())
}

/// The per-instance copies of Redis entries. `generation` moves on every invalidation, so
/// that a Redis answer fetched while an invalidation arrived is not kept (it may predate it).
#[derive(Default)]
struct NearCache {
    entries: InProcessCache,
    generation: AtomicU64,
}

impl NearCache {
    /// The generation moves before the copy goes (so a Redis answer fetched meanwhile is
    /// not kept) and again after it (so a copy decoded meanwhile is not taken for a fresh
    /// one: see [`Cache::generation`]).
    fn forget(&self, key: &str) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.forget(key);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        if let Some(value) = self.near.entries.lookup(key) {
            metrics::cache_lookup("near", "hit");
            return Ok(Some(value));
        }
        let generation = self.near.generation.load(Ordering::SeqCst);
        let value: Option<String> = match self.client.get::<Option<String>, _>(self.key(key)).await
        {
            Ok(value) => {
                metrics::cache_lookup("redis", if value.is_some() { "hit" } else { "miss" });
                value
            }
            Err(error) => {
                metrics::cache_lookup("redis", "error");
                return Err(redis_error(error));
            }
        };
        if let Some(value) = &value
            && self.near.generation.load(Ordering::SeqCst) == generation
        {
            self.near.entries.fill(key, value, NEAR_TTL).await?;
        }
        Ok(value)
    }

    async fn fill(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let millis = px(ttl);
        self.client
            .set::<Option<String>, _, _>(
                self.key(key),
                value,
                Some(Expiration::PX(millis)),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map(|_| ())
            .map_err(redis_error)
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), StoreError> {
        let millis = px(ttl);
        self.client
            .set::<(), _, _>(
                self.key(key),
                value,
                Some(Expiration::PX(millis)),
                None,
                false,
            )
            .await
            .map_err(redis_error)?;
        // This instance forgets its copy now; the others when the broadcast arrives.
        self.near.forget(key);
        self.broadcast_change(key).await
    }

    async fn replace(
        &self,
        key: &str,
        expected: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        use fred::interfaces::LuaInterface;
        let millis = px(ttl);
        let replaced: i64 = self
            .client
            .eval(
                REPLACE_SCRIPT,
                vec![self.key(key)],
                vec![expected.to_owned(), value.to_owned(), millis.to_string()],
            )
            .await
            .map_err(redis_error)?;
        if replaced == 1 {
            // Every instance drops its near copy of the tombstone.
            self.near.forget(key);
            self.broadcast_change(key).await?;
        }
        Ok(replaced == 1)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn generation(&self) -> u64 {
        self.near.generation.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_entries_expire() {
        let cache = InProcessCache::default();
        cache.set("a", "1", Duration::from_secs(60)).await.unwrap();
        cache.set("b", "2", Duration::from_millis(1)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(cache.get("a").await.unwrap().as_deref(), Some("1"));
        assert_eq!(cache.get("b").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_fill_never_replaces_a_change() {
        let cache = InProcessCache::default();
        cache
            .set("k", "revoked", Duration::from_secs(60))
            .await
            .unwrap();
        cache
            .fill("k", "live", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("revoked"));
        cache
            .fill("new", "live", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(cache.get("new").await.unwrap().as_deref(), Some("live"));
        cache
            .set("new", "revoked", Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(cache.get("new").await.unwrap().as_deref(), Some("revoked"));
    }

    #[tokio::test]
    async fn a_replace_takes_only_the_value_it_expects() {
        replaces_only_what_it_expects(&InProcessCache::default()).await;
    }

    /// Against a real Redis when `TEST_REDIS_URL` is set; skipped otherwise.
    #[tokio::test]
    async fn a_replace_in_redis_takes_only_the_value_it_expects() {
        let Some(url) = std::env::var("TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            return;
        };
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        let cache = RedisCache::connect(&url, &prefix).await.expect("connect");
        replaces_only_what_it_expects(&cache).await;
    }

    async fn replaces_only_what_it_expects(cache: &impl Cache) {
        let ttl = Duration::from_secs(60);
        assert!(
            !cache.replace("k", "stale:1", "v", ttl).await.unwrap(),
            "nothing there"
        );
        assert_eq!(cache.get("k").await.unwrap(), None);
        cache.set("k", "stale:1", ttl).await.unwrap();
        // Another change came first: its tombstone stays.
        cache.set("k", "stale:2", ttl).await.unwrap();
        assert!(!cache.replace("k", "stale:1", "old", ttl).await.unwrap());
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("stale:2"));
        assert!(cache.replace("k", "stale:2", "new", ttl).await.unwrap());
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("new"));
        // An expired entry is not replaced.
        cache
            .set("e", "stale:3", Duration::from_millis(1))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(!cache.replace("e", "stale:3", "v", ttl).await.unwrap());
        assert_eq!(cache.get("e").await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_generation_moves_on_changes_not_on_fills() {
        let cache = InProcessCache::default();
        let start = cache.generation();
        cache.fill("k", "v", Duration::from_secs(60)).await.unwrap();
        assert_eq!(cache.get("k").await.unwrap().as_deref(), Some("v"));
        assert_eq!(
            cache.generation(),
            start,
            "a fill changes no value anyone read"
        );
        cache.set("k", "w", Duration::from_secs(60)).await.unwrap();
        let after_set = cache.generation();
        assert!(after_set > start);
        cache.forget("k");
        assert!(cache.generation() > after_set);
    }

    #[tokio::test]
    async fn in_process_stays_bounded() {
        let cache = InProcessCache::default();
        for i in 0..(SHARDS * SHARD_CAPACITY * 2) {
            cache
                .set(&i.to_string(), "x", Duration::from_secs(60))
                .await
                .unwrap();
        }
        let total: usize = cache.shards.iter().map(|s| lock(s).len()).sum();
        assert!(total <= SHARDS * SHARD_CAPACITY);
    }
}
