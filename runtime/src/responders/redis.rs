//! Responder counts shared by the replicas of a fleet, in the Redis of `state.redis`: a
//! caller spread over several replicas makes one count, not one per replica. Each event is
//! one round trip (a Lua script on Redis's own clock). When Redis does not answer, the
//! event is counted in this process instead, so a responder still fires on what this
//! replica saw (never less protection than one node has).

use super::window::{CounterStore, MemoryCounters};
use crate::quota::RedisStore;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Every key the counts write starts with this.
const PREFIX: &str = "mcpgate:responders:";

/// KEYS: the event times of one key (a sorted set), its sequence. ARGV: count, window (ms).
/// Returns 1 when the event makes `count` within the window (the key then starts over).
const HIT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count = tonumber(ARGV[1])
local within = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - within)
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], now, seq)
-- Older events than the last `count` cannot matter.
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(count + 1))
redis.call('PEXPIRE', KEYS[1], within)
redis.call('PEXPIRE', KEYS[2], within)
if redis.call('ZCARD', KEYS[1]) >= count then
  redis.call('DEL', KEYS[1])
  return {1}
end
return {0}
";

/// KEYS: the key's quiet mark. ARGV: quiet (ms). Returns 1 when it was not set (and sets it).
const ONCE: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return {1} end
return {0}
";

/// Counts in Redis, with this process's counts as the fallback.
#[derive(Debug)]
pub struct RedisCounters {
    redis: Arc<RedisStore>,
    hit: redis::Script,
    once: redis::Script,
    local: MemoryCounters,
}

impl RedisCounters {
    pub fn new(redis: Arc<RedisStore>) -> RedisCounters {
        RedisCounters {
            redis,
            hit: redis::Script::new(HIT),
            once: redis::Script::new(ONCE),
            local: MemoryCounters::default(),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

impl CounterStore for RedisCounters {
    fn hit(&self, key: &str, count: u32, within: Duration, now: Instant) -> bool {
        let k = format!("{PREFIX}{key}");
        let keys = [k.clone(), format!("{k}:seq")];
        match self
            .redis
            .eval(&self.hit, &keys, &[i64::from(count), millis(within)])
        {
            Ok(answer) => answer.first() == Some(&1),
            Err(_) => self.local.hit(key, count, within, now),
        }
    }

    fn once_per(&self, key: &str, quiet: Duration, now: Instant) -> bool {
        let keys = [format!("{PREFIX}once:{key}")];
        match self.redis.eval(&self.once, &keys, &[millis(quiet)]) {
            Ok(answer) => answer.first() == Some(&1),
            Err(_) => self.local.once_per(key, quiet, now),
        }
    }
}
