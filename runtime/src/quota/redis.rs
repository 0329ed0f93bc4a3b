//! The quota store of a fleet: token buckets in Redis, shared by every replica.
//!
//! One call is one round trip: a Lua script (sent by SHA, `EVALSHA`, and as a whole once
//! when Redis answers `NOSCRIPT`) refills every bucket the call takes from, checks them all
//! and takes from all or none, on Redis's own clock so replicas' clocks do not matter.
//! Redis unreachable: a counted call is refused ([`Cause::Unavailable`]), never let
//! through; after a failure the store waits [`RETRY_AFTER_FAILURE`] before trying again,
//! so refusals are quick, and recovers by itself when Redis answers.
//!
//! The decision core is synchronous, so the client is too: a small pool of blocking
//! connections with short timeouts, each call run under `block_in_place` on the gateway's
//! multi-thread runtime so the other tasks of the worker move on.

use super::{Ask, Cause, Health, QuotaStore, Refusal};
use crate::state::blocking;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Connect, read and write timeout of one round trip.
const TIMEOUT: Duration = Duration::from_millis(500);
/// After a failed round trip, calls are refused without trying for this long.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_millis(500);
/// Idle connections kept for reuse; more are opened under load and closed after.
const POOL: usize = 32;
/// Every key the store writes starts with this.
const PREFIX: &str = "mcpgate:quota:";

/// KEYS: one bucket per ask. ARGV: capacity and window (seconds) per ask, in order.
/// Returns `{0, 0}` when a call was taken from every bucket, else `{i, ms}`: bucket `i`
/// (from 1) is empty and holds a call again in `ms` milliseconds; then nothing is taken.
const SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local left = {}
for i = 1, #KEYS do
  local cap = tonumber(ARGV[2 * i - 1])
  local rate = cap / tonumber(ARGV[2 * i])
  local b = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens = tonumber(b[1])
  local at = tonumber(b[2])
  if tokens == nil or at == nil then
    tokens = cap
    at = now
  end
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(cap, tokens + elapsed * rate)
  if tokens < 1 then
    return {i, math.ceil((1 - tokens) / rate * 1000)}
  end
  left[i] = tokens - 1
end
for i = 1, #KEYS do
  redis.call('HSET', KEYS[i], 'tokens', tostring(left[i]), 'at', tostring(now))
  -- Idle for a whole window, a bucket is full again: the same as no bucket.
  redis.call('PEXPIRE', KEYS[i], math.ceil(tonumber(ARGV[2 * i]) * 1000))
end
return {0, 0}
";

/// Token buckets in one Redis database.
pub struct RedisStore {
    client: redis::Client,
    /// For `rediss://`: the host, port and trusted roots, to check TLS at start.
    tls: Option<(String, u16, Vec<rustls::pki_types::CertificateDer<'static>>)>,
    script: redis::Script,
    idle: Mutex<Vec<redis::Connection>>,
    /// Until when calls are refused without trying, after a failure.
    resting: Mutex<Option<Instant>>,
    /// Whether the last round trip failed (logged once per outage, not per call).
    down: AtomicBool,
    /// Where Redis is, without credentials, for messages.
    shown: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("at", &self.shown)
            .finish_non_exhaustive()
    }
}

/// `url` without user info, path or query.
fn shown(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}://{host}")
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://[:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://`
    /// for TLS, the server's certificate checked against the public and platform roots and
    /// `ca_file`, and its host name). Does not connect: a gateway starts while Redis is
    /// down and refuses counted calls until it answers.
    ///
    /// # Errors
    /// When the URL or `ca_file` cannot be used; the message never holds the password.
    pub fn open(url: &str, ca_file: Option<&std::path::Path>) -> Result<RedisStore, String> {
        let shown = shown(url);
        let secure = url.starts_with("rediss://");
        if !secure && !url.starts_with("redis://") && !url.starts_with("redis+unix://") {
            return Err(format!("`{shown}` is not a `redis://` URL"));
        }
        // The client's `#insecure` would accept any certificate: never.
        if url.contains('#') {
            return Err(format!(
                "`{shown}`: a fragment (`#...`) is not accepted; the server's certificate is always checked"
            ));
        }
        let unusable = |e: redis::RedisError| {
            format!("`{shown}` is not a usable Redis URL ({})", e.category())
        };
        let (client, tls) = if secure {
            // The client builds its TLS configuration with rustls's process default: ring,
            // as everywhere in the gateway. Already installed is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let certs =
                crate::state::tls::root_certs(ca_file).map_err(|e| format!("`{shown}`: {e}"))?;
            let client = redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(crate::state::tls::pem(&certs)),
                },
            )
            .map_err(unusable)?;
            let redis::ConnectionAddr::TcpTls { host, port, .. } =
                client.get_connection_info().addr()
            else {
                return Err(format!("`{shown}` is not a `rediss://HOST:PORT` URL"));
            };
            let tls = Some((host.clone(), *port, certs));
            (client, tls)
        } else {
            (redis::Client::open(url).map_err(unusable)?, None)
        };
        Ok(RedisStore {
            client,
            tls,
            script: redis::Script::new(SCRIPT),
            idle: Mutex::new(Vec::new()),
            resting: Mutex::new(None),
            down: AtomicBool::new(false),
            shown,
        })
    }

    /// For `rediss://`, one TLS handshake with the server: a certificate it does not trust
    /// is an error at start rather than every counted call refused. A server that does not
    /// answer is not (it may start later).
    ///
    /// # Errors
    /// When Redis answers and TLS fails.
    pub fn check_tls(&self) -> Result<(), String> {
        let Some((host, port, certs)) = &self.tls else {
            return Ok(());
        };
        match crate::state::tls::handshake(host, *port, certs, TIMEOUT) {
            Ok(Some(())) => Ok(()),
            Ok(None) => {
                tracing::warn!(target: "mcpgate::quota", redis = %self.shown, "Redis does not answer yet; its TLS certificate is checked at each connection");
                Ok(())
            }
            Err(e) => Err(format!("`{}`: {e}", self.shown)),
        }
    }

    /// Where Redis is (no credentials).
    pub fn address(&self) -> &str {
        &self.shown
    }

    /// The client of this Redis (for the fleet's announcements).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        if let Some(c) = self.idle.lock().ok().and_then(|mut p| p.pop()) {
            return Ok(c);
        }
        let c = self.client.get_connection_with_timeout(TIMEOUT)?;
        c.set_read_timeout(Some(TIMEOUT))?;
        c.set_write_timeout(Some(TIMEOUT))?;
        Ok(c)
    }

    fn give_back(&self, c: redis::Connection) {
        if let Ok(mut p) = self.idle.lock()
            && p.len() < POOL
        {
            p.push(c);
        }
    }

    /// Runs `f` on a pooled connection; a failed connection is dropped and the store rests.
    fn round_trip<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, String> {
        let resting = self.resting.lock().ok().and_then(|r| *r);
        if resting.is_some_and(|until| Instant::now() < until) {
            return Err(format!("{}: did not answer the last call", self.shown));
        }
        let result = self.connection().and_then(|mut c| {
            let r = f(&mut c);
            // A connection whose round trip failed may be half-read: never reuse it.
            if r.is_ok() {
                self.give_back(c);
            }
            r
        });
        match result {
            Ok(v) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    if let Ok(mut r) = self.resting.lock() {
                        *r = None;
                    }
                    tracing::info!(target: "mcpgate::quota", redis = %self.shown, "quota store answers again");
                }
                Ok(v)
            }
            Err(e) => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(target: "mcpgate::quota", redis = %self.shown, error = %e, "quota store unavailable: calls a limit counts are refused");
                }
                if let Ok(mut r) = self.resting.lock() {
                    *r = Some(Instant::now() + RETRY_AFTER_FAILURE);
                }
                self.drop_idle();
                Err(format!("{}: {e}", self.shown))
            }
        }
    }

    /// After a failure the idle connections are likely dead too.
    fn drop_idle(&self) {
        if let Ok(mut p) = self.idle.lock() {
            p.clear();
        }
    }

    fn acquire_blocking(&self, asks: &[Ask<'_>]) -> Result<(), Refusal> {
        let mut call = self.script.prepare_invoke();
        for ask in asks {
            call.key(key(ask));
        }
        for ask in asks {
            call.arg(ask.limit.count)
                .arg(ask.limit.window.seconds().max(1));
        }
        let unavailable = Refusal {
            index: 0,
            retry_after: Duration::from_secs(1),
            cause: Cause::Unavailable,
        };
        let answer: Vec<i64> = self
            .round_trip(|c| call.invoke(c))
            .map_err(|_| unavailable)?;
        match answer.as_slice() {
            [0, _] => Ok(()),
            [i, ms] if *i >= 1 && usize::try_from(*i - 1).is_ok_and(|i| i < asks.len()) => {
                Err(Refusal {
                    index: usize::try_from(*i - 1).unwrap_or_default(),
                    retry_after: Duration::from_millis(u64::try_from(*ms).unwrap_or(1000)),
                    cause: Cause::Empty,
                })
            }
            // An answer the script cannot give: refuse rather than guess.
            _ => Err(unavailable),
        }
    }
}

impl RedisStore {
    /// Runs `script` with `keys` and integer `args` on a pooled connection (under
    /// `block_in_place` on the gateway's runtime), for another service's shared counts on the
    /// same Redis; the same resting after a failure as quota calls.
    ///
    /// # Errors
    /// When Redis does not answer, or answers something else than a list of integers.
    pub fn eval(
        &self,
        script: &redis::Script,
        keys: &[String],
        args: &[i64],
    ) -> Result<Vec<i64>, String> {
        let mut call = script.prepare_invoke();
        for k in keys {
            call.key(k);
        }
        for a in args {
            call.arg(*a);
        }
        blocking(|| self.round_trip(|c| call.invoke(c)))
    }
}

/// The bucket of one ask: the rule id's length keeps `rule:key` pairs apart.
fn key(ask: &Ask<'_>) -> String {
    format!("{PREFIX}{}:{}:{}", ask.rule.len(), ask.rule, ask.key)
}

impl QuotaStore for RedisStore {
    fn acquire(&self, asks: &[Ask<'_>]) -> Result<(), Refusal> {
        if asks.is_empty() {
            return Ok(());
        }
        blocking(|| self.acquire_blocking(asks))
    }

    fn probe(&self) -> Health {
        let error = blocking(|| {
            // A probe always tries, resting or not: it is how `/readyz` sees Redis return.
            if let Ok(mut r) = self.resting.lock() {
                *r = None;
            }
            self.round_trip(|c| redis::cmd("PING").query::<String>(c))
                .err()
        });
        Health {
            store: "redis",
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            shown("redis://:hunter2@cache.internal:6379/0?x=1"),
            "redis://cache.internal:6379"
        );
        assert_eq!(shown("redis://cache"), "redis://cache");
    }

    #[test]
    fn unusable_urls_are_refused_without_their_password() {
        let e = RedisStore::open("rediss://:hunter2@cache:6380/#insecure", None).unwrap_err();
        assert!(e.contains("certificate") && !e.contains("hunter2"), "{e}");
        let e = RedisStore::open("http://:hunter2@cache", None).unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(RedisStore::open("redis://127.0.0.1:1/0", None).is_ok());
        let tls = RedisStore::open("rediss://:hunter2@127.0.0.1:1/0", None).unwrap();
        // Nothing listens there: not an error at start.
        assert!(tls.check_tls().is_ok());
    }

    #[test]
    fn an_unreachable_redis_refuses_counted_calls() {
        use mcpgate_compiler::ir::{Limit, LimitKey, Window};
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let s = RedisStore::open("redis://127.0.0.1:1/0", None).unwrap();
        let ask = Ask {
            rule: "r",
            key: "alice".into(),
            limit: Limit {
                count: 5,
                window: Window::Minute,
                key: LimitKey::Principal,
            },
        };
        let refusal = s.acquire(&[ask]).unwrap_err();
        assert_eq!(refusal.cause, Cause::Unavailable);
        assert!(s.probe().error.is_some());
        // No limit, no round trip: nothing to refuse.
        assert_eq!(s.acquire(&[]), Ok(()));
    }

    use crate::state::test_redis::redis_server;

    fn limit(count: u64, window: mcpgate_compiler::ir::Window) -> mcpgate_compiler::ir::Limit {
        mcpgate_compiler::ir::Limit {
            count,
            window,
            key: mcpgate_compiler::ir::LimitKey::Principal,
        }
    }

    #[test]
    fn buckets_are_taken_from_all_or_none() {
        use mcpgate_compiler::ir::Window;
        let server = redis_server();
        let s = RedisStore::open(&format!("redis://127.0.0.1:{}/0", server.1), None).unwrap();
        let wide = Ask {
            rule: "wide",
            key: "alice".into(),
            limit: limit(10, Window::Hour),
        };
        let narrow = Ask {
            rule: "narrow",
            key: "alice".into(),
            limit: limit(1, Window::Hour),
        };
        let both = [wide.clone(), narrow];
        assert_eq!(s.acquire(&both), Ok(()));
        let refusal = s.acquire(&both).unwrap_err();
        assert_eq!((refusal.index, refusal.cause), (1, Cause::Empty));
        // One call per hour refills every 3600 s.
        assert!(
            refusal.retry_after > Duration::from_secs(3500),
            "{refusal:?}"
        );
        // The refused call took nothing from `wide`: 9 calls remain there.
        let ok = (0..20)
            .filter(|_| s.acquire(std::slice::from_ref(&wide)).is_ok())
            .count();
        assert_eq!(ok, 9);
        // Another key has its own bucket.
        let bob = Ask {
            rule: "narrow",
            key: "bob".into(),
            limit: limit(1, Window::Hour),
        };
        assert_eq!(s.acquire(&[bob]), Ok(()));
    }

    #[test]
    fn concurrent_callers_never_overshoot() {
        use mcpgate_compiler::ir::Window;
        let server = redis_server();
        let s = std::sync::Arc::new(
            RedisStore::open(&format!("redis://127.0.0.1:{}/0", server.1), None).unwrap(),
        );
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let ask = Ask {
                        rule: "r",
                        key: "k".into(),
                        limit: limit(50, Window::Day),
                    };
                    (0..40)
                        .filter(|_| s.acquire(std::slice::from_ref(&ask)).is_ok())
                        .count()
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 50);
        assert_eq!(s.probe().error, None);
    }
}
