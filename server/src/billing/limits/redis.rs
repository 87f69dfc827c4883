//! The Redis store: each decision is made by a Lua script, run atomically by Redis with
//! Redis's own clock (`TIME`), so that instances never disagree because their clocks do.
//! Rate-limit decisions are batched (see [`RedisLimits`]). Scripts
//! are loaded once (`SCRIPT LOAD`) and run by digest (`EVALSHA`); a Redis that lost them
//! (a restart, a fail-over, `SCRIPT FLUSH`) gets them again on `NOSCRIPT`.
//!
//! The limiter has its own client, with short timeouts: a slow Redis must not slow every
//! call, and the limiter has a fallback for when it fails.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{
    Builder, Client, ClientLike, Config, KeysInterface, LuaInterface, ReconnectPolicy,
};
use fred::types::config::UnresponsiveConfig;

use super::local::{Bounded, Entry, Write};
use super::login::LoginPolicy;
use super::{
    Clock, Decision, LoginOp, LoginVerdict, MonotonicClock, Rate, SharedStore, duration_ns,
    gcra_step,
};
use crate::error::StoreError;
use tokio::sync::{mpsc, oneshot};

/// The most one limiter decision may wait for Redis (including a script reload).
const CALL_TIMEOUT: Duration = Duration::from_millis(150);

/// The most calls one script call decides.
const MAX_BATCH: usize = 512;

/// The most calls waiting for a decision; past that, calls use the fallback.
const QUEUE_CAPACITY: usize = 10_000;

/// Leases. When every call of a bucket's batch passed, the script also counts, ahead of
/// need, up to [`LEASE_PER_CALL`] more calls for each call of the batch (at most
/// [`LEASE_MAX`]), but never more than one [`LEASE_SHARE`]-th of what the bucket has left.
/// The instance then admits that many calls of the bucket without asking Redis: they are
/// already counted, so the limit can never be exceeded, whichever instance they come to,
/// and each is told what it would have been told in the batch. Busy buckets thus cost one
/// script call per many calls instead of one per round trip; a bucket near its limit has
/// little left, so its lease is small or none, and its calls are decided one batch at a
/// time, as before. A lease unused for [`LEASE_TTL`] is dropped: its calls stay counted
/// (the bucket refills at its rate), so an account spread over several instances could be
/// refused a few calls early. That is why only buckets with at least [`LEASE_MIN_ROOM`]
/// calls left lease at all: the plans' limits (up to 2,000 a minute) never do, and are
/// exact across instances; a bucket big enough to lease loses at most a share of a room
/// that large, and only for the lease's second.
const LEASE_SHARE: usize = 8;
const LEASE_MIN_ROOM: usize = 4_096;
const LEASE_PER_CALL: usize = 64;
const LEASE_MAX: usize = 512;
const LEASE_TTL: Duration = Duration::from_secs(1);
/// Buckets with a lease, at most (per shard; see [`Bounded`]).
const LEASE_SHARD_CAPACITY: usize = 4_096;
const LEASE_SHARDS: usize = 16;

/// Calls of one bucket counted in Redis by this instance before they came.
#[derive(Clone, Copy, Debug)]
struct Lease {
    rate: Rate,
    /// How far the TAT was ahead of now before the batch that took the lease.
    ahead: u64,
    /// The position (in that batch's count) of the next leased call, and one past the last.
    next: usize,
    end: usize,
    /// Clock ns.
    expires: u64,
}

impl Entry for Lease {
    /// The leases with the most calls left are kept longest.
    type Worth = usize;

    fn expired(&self, now: u64) -> bool {
        self.expires <= now || self.next >= self.end
    }

    fn worth(&self) -> usize {
        self.end.saturating_sub(self.next)
    }
}

/// The leases this instance holds, by bucket.
struct Leases {
    map: Bounded<Lease>,
    clock: MonotonicClock,
}

impl Leases {
    fn new() -> Self {
        Self {
            map: Bounded::new(LEASE_SHARDS, LEASE_SHARD_CAPACITY),
            clock: MonotonicClock::default(),
        }
    }

    /// The decision for the next leased call of `bucket`, if a live lease at `rate` has one.
    fn take(&self, bucket: &str, rate: Rate, now: u64) -> Option<Decision> {
        self.map.update(bucket, now, |current| match current {
            Some(mut lease) if lease.rate == rate => {
                let n = lease.next;
                lease.next += 1;
                let decision = nth_decision(lease.ahead, lease.end, n, rate);
                (Some(decision), Write::Put(lease))
            }
            // Taken at another rate (a plan change): ask Redis.
            Some(_) => (None, Write::Remove),
            // None, spent or stale.
            None => (None, Write::Keep),
        })
    }

    fn grant(&self, bucket: &str, lease: Lease, now: u64) {
        self.map.update(bucket, now, |_| ((), Write::Put(lease)));
    }
}

/// GCRA for a batch of buckets, in one atomic step. KEYS: the buckets (a bucket may appear
/// more than once). ARGV: first the lease share and the least room that leases (see
/// [`LEASE_SHARE`]), then four numbers per key, in order: the emission interval `T` and the
/// burst window `N·T` in nanoseconds, how many calls ask to pass, and how many more calls
/// the instance would like counted ahead of need (a lease). For each key it admits as many
/// of the calls as fit, in order; if all of them passed and enough is left, it also counts
/// up to the lease asked for, but never more than a share of what is left. It returns
/// three numbers per key: how far the TAT was ahead of now before (clamped to the burst
/// window), how many calls passed, and how many were leased. The client derives each
/// call's answer (and each leased call's, later) from those with the same arithmetic as
/// [`super::gcra_step`], so a batch decides exactly what the same calls one at a time
/// would have.
///
/// The value stored is "<stamp µs> <ns the TAT was ahead of the stamp>": Lua numbers are
/// doubles, exact only below 2^53, which nanoseconds since 1970 are not; these two are
/// (the distance is at most a minute, and the stamp is in microseconds).
const GCRA_SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local share = tonumber(ARGV[1])
local room = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[4 * i - 1])
  local burst = tonumber(ARGV[4 * i])
  local asked = tonumber(ARGV[4 * i + 1])
  local extra = tonumber(ARGV[4 * i + 2])
  local ahead = 0
  local stored = redis.call('GET', key)
  if stored then
    local space = string.find(stored, ' ', 1, true)
    if space then
      local stamp = tonumber(string.sub(stored, 1, space - 1))
      local was = tonumber(string.sub(stored, space + 1))
      if stamp and was then
        local elapsed = (now - stamp) * 1000
        if elapsed < 0 then elapsed = 0 end
        ahead = was - elapsed
        if ahead < 0 then ahead = 0 end
      end
    end
  end
  if ahead > burst then ahead = burst end
  local fit = math.floor((burst - ahead) / interval)
  -- Division of doubles: make sure the count is exact.
  while fit > 0 and ahead + fit * interval > burst do fit = fit - 1 end
  while ahead + (fit + 1) * interval <= burst do fit = fit + 1 end
  local passed = fit
  if passed > asked then passed = asked end
  local leased = 0
  if passed == asked and extra > 0 and fit - passed >= room then
    leased = math.floor((fit - passed) / share)
    if leased > extra then leased = extra end
  end
  local taken = passed + leased
  if taken > 0 then
    local after = ahead + taken * interval
    redis.call('SET', key, string.format('%.0f %.0f', now, after),
      'PX', math.ceil(after / 1000000))
  end
  out[3 * i - 2] = ahead
  out[3 * i - 1] = passed
  out[3 * i] = leased
end
return out
"#;

/// The login guard for one account. KEYS[1]: the account's state, "<attempts> <ms>".
/// ARGV: the operation (`admit` or `failed`), then the schedule: free attempts, lock
/// after, first delay, longest delay, lock time, forget after (milliseconds). Returns
/// {1, 0} when admitted (or recorded), {0, ms to wait} when refused.
const LOGIN_SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local op = ARGV[1]
local free = tonumber(ARGV[2])
local lock_after = tonumber(ARGV[3])
local first = tonumber(ARGV[4])
local longest = tonumber(ARGV[5])
local lock_for = tonumber(ARGV[6])
local forget = tonumber(ARGV[7])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local attempts, last = 0, 0
local stored = redis.call('GET', KEYS[1])
if stored then
  local space = string.find(stored, ' ', 1, true)
  if space then
    attempts = tonumber(string.sub(stored, 1, space - 1)) or 0
    last = tonumber(string.sub(stored, space + 1)) or 0
  end
end
local function wait_after(n)
  if n >= lock_after then return lock_for end
  if n < free then return 0 end
  local d = first * (2 ^ math.min(n - free, 31))
  if d > longest then d = longest end
  return d
end
if op == 'admit' then
  if attempts > 0 then
    local open_at = last + wait_after(attempts)
    if now < open_at then return {0, open_at - now} end
  end
  attempts = attempts + 1
elseif attempts < 1 then
  attempts = 1
end
local keep = wait_after(attempts)
if keep < forget then keep = forget end
redis.call('SET', KEYS[1], string.format('%.0f %.0f', attempts, now), 'PX', math.ceil(keep))
return {1, 0}
"#;

/// A script and its digest (as Redis computed it when it was loaded).
struct Script {
    source: &'static str,
    digest: String,
}

/// The connection and the scripts, shared by the store and its batching task.
struct Scripts {
    client: Client,
    gcra: Script,
    login: Script,
    leases: Leases,
}

/// One call waiting for its rate-limit decision.
struct Waiting {
    bucket: String,
    key: String,
    rate: Rate,
    answer: oneshot::Sender<Result<Decision, StoreError>>,
}

/// Rate limits and login guard in Redis, shared by every instance. Keys are
/// `{prefix}rl:{bucket}` and `{prefix}login:{hash}`; each expires once it restricts
/// nothing any more.
///
/// Decisions are batched: calls queue for one task that sends everything waiting as one
/// script call, and while that call is out the next batch gathers. Nothing waits for a
/// timer — a lone call goes at once — but under load Redis sees one script call per round
/// trip instead of one per request, and the calls of a batch are decided in the order they
/// came, exactly as they would have been one at a time. A batch may also lease calls for
/// the ones to come (see [`LEASE_SHARE`]), which then need no round trip at all.
pub struct RedisLimits {
    scripts: Arc<Scripts>,
    prefix: String,
    queue: mpsc::Sender<Waiting>,
}

impl RedisLimits {
    /// Connects (its own client, reconnecting forever in the background), loads the
    /// scripts and starts the batching task. Fails when Redis cannot be reached now.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let config =
            Config::from_url(url).map_err(|e| StoreError::Cache(format!("REDIS_URL: {e}")))?;
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
                // Nagle off: commands pipelined on one connection go out at once.
                c.tcp.nodelay = Some(true);
                // A decision replayed after a dropped connection could count a call twice;
                // the limiter's fallback handles the failure instead.
                c.max_command_attempts = 1;
                // While reconnecting, commands queue; keep that queue small.
                c.max_command_buffer_len = 10_000;
                // A connection that stops answering (a partition without a reset) is
                // closed and made again, rather than trusted.
                c.unresponsive = UnresponsiveConfig {
                    max_timeout: Some(Duration::from_secs(2)),
                    interval: Duration::from_millis(500),
                };
            })
            .with_performance_config(|p| p.default_command_timeout = CALL_TIMEOUT)
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2));
        let client = builder.build().map_err(redis_error)?;
        client
            .init()
            .await
            .map_err(|e| StoreError::Cache(format!("cannot connect to Redis: {e}")))?;
        let gcra = load(&client, GCRA_SCRIPT).await?;
        let login = load(&client, LOGIN_SCRIPT).await?;
        let scripts = Arc::new(Scripts {
            client,
            gcra,
            login,
            leases: Leases::new(),
        });
        let (queue, waiting) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(decide_in_batches(Arc::clone(&scripts), waiting));
        Ok(Self {
            scripts,
            prefix: prefix.to_owned(),
            queue,
        })
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}{name}", self.prefix)
    }

    fn connected(&self) -> Result<(), StoreError> {
        if self.scripts.client.is_connected() {
            Ok(())
        } else {
            Err(StoreError::Cache("not connected to Redis".to_owned()))
        }
    }
}

impl Scripts {
    /// Runs a script by digest within [`CALL_TIMEOUT`], loading it again if Redis lost it.
    async fn run(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Vec<i64>, StoreError> {
        let call = async {
            let first = self
                .client
                .evalsha::<Vec<i64>, _, _, _>(script.digest.as_str(), keys.clone(), args.clone())
                .await;
            match first {
                Err(error) if error.details().starts_with("NOSCRIPT") => {
                    // EVAL with the source loads and runs in one step, so another flush
                    // cannot come in between (as it could between SCRIPT LOAD and EVALSHA).
                    tracing::info!("rate limiter: Redis lost its scripts; loading them again");
                    self.client
                        .eval::<Vec<i64>, _, _, _>(script.source, keys, args)
                        .await
                }
                other => other,
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(result) => result.map_err(redis_error),
            Err(_) => Err(timed_out()),
        }
    }
}

/// The batching task: takes everything waiting (up to [`MAX_BATCH`] calls), decides it with
/// one script call, answers, and goes again. Ends when the store is dropped.
async fn decide_in_batches(scripts: Arc<Scripts>, mut queue: mpsc::Receiver<Waiting>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // A caller that gave up has already been answered by the fallback: counting its
        // call in Redis as well would charge it twice.
        batch.retain(|waiting| !waiting.answer.is_closed());
        if !batch.is_empty() {
            decide_batch(&scripts, &mut batch).await;
        }
        batch.clear();
    }
}

async fn decide_batch(scripts: &Scripts, batch: &mut Vec<Waiting>) {
    // One script entry per bucket and rate, the calls of each in arrival order. (The same
    // bucket at two rates — a plan change in the middle of a batch — is two entries, which
    // the script applies one after the other.)
    let mut groups: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut index: HashMap<(&str, Rate), usize> = HashMap::new();
    for (i, waiting) in batch.iter().enumerate() {
        let group = *index
            .entry((waiting.key.as_str(), waiting.rate))
            .or_insert_with(|| {
                groups.push((i, Vec::new()));
                groups.len() - 1
            });
        groups[group].1.push(i);
    }
    let keys: Vec<String> = groups
        .iter()
        .map(|(first, _)| batch[*first].key.clone())
        .collect();
    let mut args = Vec::with_capacity(2 + groups.len() * 4);
    args.push(LEASE_SHARE.to_string());
    args.push(LEASE_MIN_ROOM.to_string());
    for (first, members) in &groups {
        let rate = batch[*first].rate;
        args.push(rate.interval_ns.to_string());
        args.push(rate.burst_ns().to_string());
        args.push(members.len().to_string());
        args.push((members.len() * LEASE_PER_CALL).min(LEASE_MAX).to_string());
    }
    let outcome = scripts
        .run(&scripts.gcra, keys, args)
        .await
        .and_then(|values| reply(&values, groups.len() * 3).map(<[i64]>::to_vec));
    let mut answers: Vec<Option<Result<Decision, StoreError>>> =
        std::iter::repeat_with(|| None).take(batch.len()).collect();
    match outcome {
        Ok(values) => {
            let now = scripts.leases.clock.now_ns();
            for (g, (first, members)) in groups.iter().enumerate() {
                let rate = batch[*first].rate;
                let ahead = u64::try_from(values[3 * g]).unwrap_or(0);
                let passed = usize::try_from(values[3 * g + 1]).unwrap_or(0);
                let leased = usize::try_from(values[3 * g + 2]).unwrap_or(0);
                for (n, member) in members.iter().enumerate() {
                    answers[*member] = Some(Ok(nth_decision(ahead, passed, n, rate)));
                }
                if leased > 0 {
                    let lease = Lease {
                        rate,
                        ahead,
                        next: passed,
                        end: passed + leased,
                        expires: now.saturating_add(duration_ns(LEASE_TTL)),
                    };
                    scripts.leases.grant(&batch[*first].bucket, lease, now);
                }
            }
        }
        Err(error) => {
            let message = error.to_string();
            for answer in &mut answers {
                *answer = Some(Err(StoreError::Cache(message.clone())));
            }
        }
    }
    for (waiting, answer) in batch.drain(..).zip(answers) {
        if let Some(answer) = answer {
            // A caller that stopped waiting meanwhile has its answer from the fallback.
            let _ = waiting.answer.send(answer);
        }
    }
}

/// The decision for the `n`-th call (from 0) of a bucket's batch, given how far its TAT was
/// ahead before the batch and how many of the batch Redis let pass: what [`gcra_step`]
/// gives for that call after the ones before it.
fn nth_decision(ahead: u64, passed: usize, n: usize, rate: Rate) -> Decision {
    let ahead = ahead.min(rate.burst_ns());
    if n < passed {
        let before = ahead + rate.interval_ns * n as u64;
        gcra_step(before, rate).0
    } else {
        let before = ahead + rate.interval_ns * passed as u64;
        let (decision, next) = gcra_step(before, rate);
        if next.is_none() {
            decision
        } else {
            // Redis refused a call that the arithmetic here would pass (it cannot happen
            // with the same numbers): trust Redis, and ask for one interval's wait.
            Decision {
                allowed: false,
                remaining: 0,
                reset: Duration::from_nanos(before),
                retry_after: rate.emission_interval(),
                ..decision
            }
        }
    }
}

async fn load(client: &Client, source: &'static str) -> Result<Script, StoreError> {
    let digest = client
        .script_load::<String, _>(source)
        .await
        .map_err(|e| StoreError::Cache(format!("cannot load the rate-limit scripts: {e}")))?;
    Ok(Script { source, digest })
}

fn redis_error(e: fred::error::Error) -> StoreError {
    StoreError::Cache(e.to_string())
}

fn timed_out() -> StoreError {
    StoreError::Cache(format!(
        "Redis did not answer within {} ms",
        CALL_TIMEOUT.as_millis()
    ))
}

fn reply(values: &[i64], n: usize) -> Result<&[i64], StoreError> {
    if values.len() == n && values.iter().all(|v| *v >= 0) {
        Ok(values)
    } else {
        Err(StoreError::Corrupt(format!(
            "rate-limit script answered {values:?}"
        )))
    }
}

#[async_trait]
impl SharedStore for RedisLimits {
    fn leased(&self, bucket: &str, rate: Rate) -> Option<Decision> {
        let leases = &self.scripts.leases;
        leases.take(bucket, rate, leases.clock.now_ns())
    }

    async fn gcra(&self, bucket: &str, rate: Rate) -> Result<Decision, StoreError> {
        // Fails at once when the connection is down (the client reconnects meanwhile).
        self.connected()?;
        let (answer, decision) = oneshot::channel();
        let waiting = Waiting {
            bucket: bucket.to_owned(),
            key: self.key("rl:", bucket),
            rate,
            answer,
        };
        if self.queue.try_send(waiting).is_err() {
            return Err(StoreError::Cache(
                "too many rate-limit decisions waiting for Redis".to_owned(),
            ));
        }
        // The whole wait — the batch before this one, then this one — is bounded.
        match tokio::time::timeout(CALL_TIMEOUT, decision).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(StoreError::Cache(
                "the rate-limit batching task has stopped".to_owned(),
            )),
            Err(_) => Err(timed_out()),
        }
    }

    async fn login(
        &self,
        account: &str,
        op: LoginOp,
        policy: &LoginPolicy,
    ) -> Result<LoginVerdict, StoreError> {
        self.connected()?;
        let key = self.key("", account);
        let op = match op {
            LoginOp::Admit => "admit",
            LoginOp::Failed => "failed",
            LoginOp::Succeeded => {
                return match tokio::time::timeout(
                    CALL_TIMEOUT,
                    self.scripts.client.del::<i64, _>(key),
                )
                .await
                {
                    Ok(result) => result.map(|_| LoginVerdict::Admitted).map_err(redis_error),
                    Err(_) => Err(timed_out()),
                };
            }
        };
        let mut args = vec![op.to_owned()];
        args.extend(policy.script_args());
        let values = self
            .scripts
            .run(&self.scripts.login, vec![key], args)
            .await?;
        let values = reply(&values, 2)?;
        Ok(if values[0] == 1 {
            LoginVerdict::Admitted
        } else {
            let ms = u64::try_from(values[1]).unwrap_or(0);
            LoginVerdict::Wait(Duration::from_millis(ms))
        })
    }
}

#[cfg(test)]
mod tests {
    //! Against a real Redis when `TEST_REDIS_URL` is set; skipped otherwise.
    use super::*;

    async fn store() -> Option<RedisLimits> {
        let url = std::env::var("TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())?;
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        Some(RedisLimits::connect(&url, &prefix).await.expect("connect"))
    }

    #[tokio::test]
    async fn gcra_in_redis() {
        let Some(store) = store().await else { return };
        // T = 20 s: three calls at once pass, the fourth waits up to 20 s.
        let rate = Rate::per_minute(3);
        for remaining in [2, 1, 0] {
            let d = store.gcra("b", rate).await.unwrap();
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
            assert_eq!(d.limit, 3);
        }
        let refused = store.gcra("b", rate).await.unwrap();
        assert!(!refused.allowed);
        assert!(refused.retry_after > Duration::from_secs(19));
        assert!(refused.retry_after <= Duration::from_secs(20));
        assert!(refused.reset > Duration::from_secs(59));
        // The key expires when the bucket would be full again.
        let ttl: i64 = store
            .scripts
            .client
            .pttl(store.key("rl:", "b"))
            .await
            .unwrap();
        assert!((59_000..=60_000).contains(&ttl), "{ttl}");
    }

    #[test]
    fn a_batch_decides_what_the_calls_one_at_a_time_would() {
        let s = 1_000_000_000u64;
        for (per_minute, ahead) in [
            (3, 0),
            (3, 25 * s),
            (3, 59 * s),
            (7, 0),
            (7, 13 * s),
            (100, 30 * s),
            (100, 120 * s), // further ahead than a bucket (a lower limit now)
        ] {
            let rate = Rate::per_minute(per_minute);
            // What the script counts: as many as fit.
            let fit =
                usize::try_from((rate.burst_ns() - ahead.min(rate.burst_ns())) / rate.interval_ns)
                    .unwrap();
            for asked in [1, fit.max(1), fit + 5] {
                let passed = fit.min(asked);
                let mut tat = ahead;
                for n in 0..asked {
                    let (one_at_a_time, next) = gcra_step(tat, rate);
                    if let Some(next) = next {
                        tat = next;
                    }
                    assert_eq!(
                        nth_decision(ahead, passed, n, rate),
                        one_at_a_time,
                        "{per_minute}/min, ahead {ahead}, call {n} of {asked}"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn concurrent_calls_are_batched_and_exact() {
        let Some(store) = store().await else { return };
        let store = Arc::new(store);
        let rate = Rate::per_minute(7);
        let other = Rate::per_minute(3);
        let calls = (0..60).map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let (bucket, rate) = if i % 3 == 0 {
                    ("b", other)
                } else {
                    ("a", rate)
                };
                (bucket, store.gcra(bucket, rate).await.unwrap())
            })
        });
        let decisions = futures::future::join_all(calls).await;
        for (bucket, limit) in [("a", 7u32), ("b", 3)] {
            let mut remaining: Vec<u32> = decisions
                .iter()
                .map(|d| d.as_ref().unwrap())
                .filter(|(b, d)| *b == bucket && d.allowed)
                .map(|(_, d)| d.remaining)
                .collect();
            remaining.sort_unstable();
            // Exactly `limit` passed, each told a different number left.
            assert_eq!(remaining, (0..limit).collect::<Vec<_>>(), "bucket {bucket}");
            for (_, refused) in decisions
                .iter()
                .map(|d| d.as_ref().unwrap())
                .filter(|(b, d)| *b == bucket && !d.allowed)
            {
                assert_eq!(refused.limit, limit);
                assert!(refused.retry_after > Duration::ZERO);
                assert!(refused.retry_after <= Duration::from_secs(60) / limit);
            }
        }
        // A plan change between calls: the same bucket at a higher rate keeps its debt (a
        // full minute), now worth one interval of the new rate.
        let d = store.gcra("b", Rate::per_minute(6)).await.unwrap();
        assert!(!d.allowed, "{d:?}");
        assert!(d.retry_after > Duration::from_secs(9), "{d:?}");
        assert!(d.retry_after <= Duration::from_secs(10), "{d:?}");
    }

    #[tokio::test]
    async fn leases_count_ahead_in_redis_and_never_exceed_the_limit() {
        let Some(first) = store().await else { return };
        // A second instance: its own leases, the same keys.
        let url = std::env::var("TEST_REDIS_URL").unwrap();
        let second = RedisLimits::connect(&url, &first.prefix).await.unwrap();
        let rate = Rate::per_minute(100_000);
        // The first call goes to Redis, which also leases more (there is room enough).
        let d = first.gcra("b", rate).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 99_999));
        // The next ones come from the lease, each told what it would have been told.
        let leased = LEASE_PER_CALL as u32;
        for remaining in (99_999 - leased..99_999).rev() {
            let d = first.leased("b", rate).expect("a leased call");
            assert_eq!((d.allowed, d.remaining), (true, remaining));
        }
        assert!(first.leased("b", rate).is_none(), "the lease is spent");
        // Those calls were counted in Redis already: the other instance sees them.
        let d = second.gcra("b", rate).await.unwrap();
        assert_eq!((d.allowed, d.remaining), (true, 99_998 - leased));
        // A lease is not used at another rate (a plan change): that call asks Redis.
        let _ = second
            .leased("b", rate)
            .expect("the second instance's lease");
        assert!(second.leased("b", Rate::per_minute(200_000)).is_none());
        assert!(
            second.leased("b", rate).is_none(),
            "dropped at the rate change"
        );

        // A plan's limit (at most 2,000 a minute) is too small to lease: nothing counted
        // ahead can be stranded on one instance while the other is refused.
        for limit in [100, 2_000] {
            let rate = Rate::per_minute(limit);
            let bucket = format!("small{limit}");
            assert!(second.gcra(&bucket, rate).await.unwrap().allowed);
            assert!(second.leased(&bucket, rate).is_none(), "{limit}: no lease");
        }

        // Many calls over both instances: exactly the limit passes, to the call.
        let rate = Rate::per_minute(40);
        let stores = [Arc::new(first), Arc::new(second)];
        let mut passed = 0u64;
        let mut told = Vec::new();
        let started = std::time::Instant::now();
        for i in 0..120 {
            let store = &stores[i % 2];
            let d = match store.leased("c", rate) {
                Some(d) => d,
                None => store.gcra("c", rate).await.unwrap(),
            };
            if d.allowed {
                passed += 1;
                told.push(d.remaining);
            }
        }
        // The bucket refills one call every 1.5 s: at most that many more may pass.
        let refilled = started.elapsed().as_millis() as u64 / 1_500;
        assert!(
            passed >= 40 && passed <= 40 + refilled,
            "{passed} passed: {told:?}"
        );
        told.truncate(40);
        told.sort_unstable();
        told.dedup();
        assert_eq!(
            told.len(),
            40,
            "each passing call told a different number left"
        );
    }

    #[tokio::test]
    async fn a_lease_runs_out_after_its_time() {
        let Some(store) = store().await else { return };
        let rate = Rate::per_minute(100_000);
        assert!(store.gcra("b", rate).await.unwrap().allowed);
        let leases = &store.scripts.leases;
        let now = leases.clock.now_ns();
        assert!(leases.take("b", rate, now).is_some(), "a lease was taken");
        let later = now + duration_ns(LEASE_TTL);
        assert!(
            leases.take("b", rate, later).is_none(),
            "a lease is not used past its time"
        );
    }

    #[tokio::test]
    async fn scripts_come_back_after_a_flush() {
        let Some(store) = store().await else { return };
        // Only this store's scripts matter here: every user of Redis in this code base
        // reloads on NOSCRIPT.
        store.scripts.client.script_flush(false).await.unwrap();
        assert!(store.gcra("b", Rate::per_minute(5)).await.unwrap().allowed);
        let policy = LoginPolicy::default();
        store.scripts.client.script_flush(false).await.unwrap();
        assert_eq!(
            store
                .login("login:x", LoginOp::Admit, &policy)
                .await
                .unwrap(),
            LoginVerdict::Admitted
        );
    }

    #[tokio::test]
    async fn login_schedule_in_redis() {
        let Some(store) = store().await else { return };
        let policy = LoginPolicy::default();
        for _ in 0..5 {
            assert_eq!(
                store
                    .login("login:a", LoginOp::Admit, &policy)
                    .await
                    .unwrap(),
                LoginVerdict::Admitted
            );
            store
                .login("login:a", LoginOp::Failed, &policy)
                .await
                .unwrap();
        }
        match store
            .login("login:a", LoginOp::Admit, &policy)
            .await
            .unwrap()
        {
            LoginVerdict::Wait(wait) => {
                assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(500));
            }
            other => panic!("expected a wait, got {other:?}"),
        }
        store
            .login("login:a", LoginOp::Succeeded, &policy)
            .await
            .unwrap();
        assert_eq!(
            store
                .login("login:a", LoginOp::Admit, &policy)
                .await
                .unwrap(),
            LoginVerdict::Admitted
        );
        let ttl: i64 = store
            .scripts
            .client
            .pttl(store.key("", "login:a"))
            .await
            .unwrap();
        assert!((899_000..=900_000).contains(&ttl), "{ttl}");
    }
}
