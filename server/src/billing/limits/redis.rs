//! The Redis store: each decision is one Lua script, run atomically by Redis with Redis's
//! own clock (`TIME`), so that instances never disagree because their clocks do. Scripts
//! are loaded once (`SCRIPT LOAD`) and run by digest (`EVALSHA`); a Redis that lost them
//! (a restart, a fail-over, `SCRIPT FLUSH`) gets them again on `NOSCRIPT`.
//!
//! The limiter has its own client, with short timeouts: a slow Redis must not slow every
//! call, and the limiter has a fallback for when it fails.
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{
    Builder, Client, ClientLike, Config, KeysInterface, LuaInterface, ReconnectPolicy,
};
use fred::types::config::UnresponsiveConfig;

use super::login::LoginPolicy;
use super::{Decision, LoginOp, LoginVerdict, Rate, SharedStore};
use crate::error::StoreError;

/// The most one limiter decision may wait for Redis (including a script reload).
const CALL_TIMEOUT: Duration = Duration::from_millis(150);

/// GCRA for one bucket. KEYS[1]: the bucket. ARGV: the emission interval `T` and the burst
/// window `N·T`, in nanoseconds. Returns {allowed, remaining, reset ns, retry-after ns}.
///
/// The value stored is "<stamp µs> <ns the TAT was ahead of the stamp>": Lua numbers are
/// doubles, exact only below 2^53, which nanoseconds since 1970 are not; these two are
/// (the distance is at most a minute, and the stamp is in microseconds).
const GCRA_SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local ahead = 0
local stored = redis.call('GET', KEYS[1])
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
local after = ahead + interval
if after <= burst then
  redis.call('SET', KEYS[1], string.format('%.0f %.0f', now, after),
    'PX', math.ceil(after / 1000000))
  return {1, math.floor((burst - after) / interval), after, 0}
end
return {0, 0, ahead, after - burst}
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

/// Rate limits and login guard in Redis, shared by every instance. Keys are
/// `{prefix}rl:{bucket}` and `{prefix}login:{hash}`; each expires once it restricts
/// nothing any more.
pub struct RedisLimits {
    client: Client,
    prefix: String,
    gcra: Script,
    login: Script,
}

impl RedisLimits {
    /// Connects (its own client, reconnecting forever in the background) and loads the
    /// scripts. Fails when Redis cannot be reached now.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let config =
            Config::from_url(url).map_err(|e| StoreError::Cache(format!("REDIS_URL: {e}")))?;
        let mut builder = Builder::from_config(config);
        builder
            .with_connection_config(|c| {
                c.connection_timeout = Duration::from_secs(2);
                c.internal_command_timeout = Duration::from_secs(2);
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
        Ok(Self {
            client,
            prefix: prefix.to_owned(),
            gcra,
            login,
        })
    }

    /// Runs a script by digest within [`CALL_TIMEOUT`], loading it again if Redis lost it.
    /// Fails at once when the connection is down (the client reconnects meanwhile).
    async fn run(
        &self,
        script: &Script,
        key: String,
        args: Vec<String>,
    ) -> Result<Vec<i64>, StoreError> {
        if !self.client.is_connected() {
            return Err(StoreError::Cache("not connected to Redis".to_owned()));
        }
        let call = async {
            let first = self
                .client
                .evalsha::<Vec<i64>, _, _, _>(script.digest.as_str(), key.clone(), args.clone())
                .await;
            match first {
                Err(error) if error.details().starts_with("NOSCRIPT") => {
                    tracing::info!("rate limiter: Redis lost its scripts; loading them again");
                    self.client.script_load::<String, _>(script.source).await?;
                    self.client
                        .evalsha::<Vec<i64>, _, _, _>(script.digest.as_str(), key, args)
                        .await
                }
                other => other,
            }
        };
        match tokio::time::timeout(CALL_TIMEOUT, call).await {
            Ok(result) => result.map_err(redis_error),
            Err(_) => Err(StoreError::Cache(format!(
                "Redis did not answer within {} ms",
                CALL_TIMEOUT.as_millis()
            ))),
        }
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}{name}", self.prefix)
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

fn reply(values: &[i64], n: usize) -> Result<&[i64], StoreError> {
    if values.len() == n && values.iter().all(|v| *v >= 0) {
        Ok(values)
    } else {
        Err(StoreError::Corrupt(format!(
            "rate-limit script answered {values:?}"
        )))
    }
}

fn nanos(value: i64) -> Duration {
    Duration::from_nanos(u64::try_from(value).unwrap_or(0))
}

#[async_trait]
impl SharedStore for RedisLimits {
    async fn gcra(&self, bucket: &str, rate: Rate) -> Result<Decision, StoreError> {
        let args = vec![rate.interval_ns.to_string(), rate.burst_ns().to_string()];
        let values = self.run(&self.gcra, self.key("rl:", bucket), args).await?;
        let values = reply(&values, 4)?;
        Ok(Decision {
            allowed: values[0] == 1,
            limit: rate.limit,
            remaining: u32::try_from(values[1]).unwrap_or(0),
            reset: nanos(values[2]),
            retry_after: nanos(values[3]),
        })
    }

    async fn login(
        &self,
        account: &str,
        op: LoginOp,
        policy: &LoginPolicy,
    ) -> Result<LoginVerdict, StoreError> {
        let key = self.key("", account);
        let op = match op {
            LoginOp::Admit => "admit",
            LoginOp::Failed => "failed",
            LoginOp::Succeeded => {
                if !self.client.is_connected() {
                    return Err(StoreError::Cache("not connected to Redis".to_owned()));
                }
                return match tokio::time::timeout(CALL_TIMEOUT, self.client.del::<i64, _>(key))
                    .await
                {
                    Ok(result) => result.map(|_| LoginVerdict::Admitted).map_err(redis_error),
                    Err(_) => Err(StoreError::Cache("Redis did not answer in time".into())),
                };
            }
        };
        let mut args = vec![op.to_owned()];
        args.extend(policy.script_args());
        let values = self.run(&self.login, key, args).await?;
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
        let ttl: i64 = store.client.pttl(store.key("rl:", "b")).await.unwrap();
        assert!((59_000..=60_000).contains(&ttl), "{ttl}");
    }

    #[tokio::test]
    async fn scripts_come_back_after_a_flush() {
        let Some(store) = store().await else { return };
        // Only this store's scripts matter here: every user of Redis in this code base
        // reloads on NOSCRIPT.
        store.client.script_flush(false).await.unwrap();
        assert!(store.gcra("b", Rate::per_minute(5)).await.unwrap().allowed);
        let policy = LoginPolicy::default();
        store.client.script_flush(false).await.unwrap();
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
        let ttl: i64 = store.client.pttl(store.key("", "login:a")).await.unwrap();
        assert!((899_000..=900_000).contains(&ttl), "{ttl}");
    }
}
