//! Fleet fan-out over Redis pub/sub. A replica that puts a new policy commit live, or that
//! pauses a caller, says so on one channel; the other replicas sync (or reread the pauses)
//! at once instead of at their next poll or sweep. A message is only a hint to do what
//! the replica does anyway: it carries no policy and no pause, so a lost, late or forged
//! message costs a wait or an extra fetch, never a decision. The polls and sweeps still
//! run and remain the guarantee.
//!
//! Bottom layer: uses nothing of the crate.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// The one channel every replica of a fleet publishes and listens on.
pub const CHANNEL: &str = "mcpgate:fleet";
/// Longest wait for Redis when publishing.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait between two attempts to subscribe again after Redis went away.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Largest message read; anything longer is not one of ours.
const MAX_MESSAGE: usize = 1024;

/// What a replica announces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// This commit went live here: sync now.
    Policy { commit: String },
    /// A pause was set here: reread the shared pauses now.
    Pauses,
}

/// The thread that sends announcements, over one connection kept between them.
struct Publisher {
    client: redis::Client,
}

impl Publisher {
    fn run(&self, replica: &str, instance: u64, queue: &mpsc::Receiver<Event>) {
        let mut conn: Option<redis::Connection> = None;
        while let Ok(event) = queue.recv() {
            let Ok(body) = serde_json::to_string(&Message {
                replica: replica.to_owned(),
                instance,
                event,
            }) else {
                continue;
            };
            let sent = match conn.take() {
                Some(c) => Ok(c),
                None => self.connect(),
            }
            .and_then(|mut c| {
                redis::cmd("PUBLISH")
                    .arg(CHANNEL)
                    .arg(&body)
                    .query::<i64>(&mut c)
                    .map(|_| c)
            });
            match sent {
                Ok(c) => conn = Some(c),
                Err(e) => tracing::debug!(error = %e.category(), "cannot announce to the fleet"),
            }
        }
    }

    fn connect(&self) -> redis::RedisResult<redis::Connection> {
        let c = self.client.get_connection_with_timeout(TIMEOUT)?;
        c.set_read_timeout(Some(TIMEOUT))?;
        c.set_write_timeout(Some(TIMEOUT))?;
        Ok(c)
    }
}

/// Where a service announces its events: the fan-out in a fleet, unset on one gateway.
pub struct Announce(pub Box<dyn Fn(Event) + Send + Sync>);

impl std::fmt::Debug for Announce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Announce")
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Message {
    replica: String,
    /// This process among replicas that may share a name (one host, or a name set twice).
    instance: u64,
    #[serde(flatten)]
    event: Event,
}

/// One replica's side of the channel.
pub struct Fanout {
    client: redis::Client,
    replica: String,
    instance: u64,
    /// To the publishing thread: announcing never waits for Redis.
    outbox: mpsc::Sender<Event>,
    /// Quiet this long, the listener pings Redis to find a connection that died silently.
    idle_ping: Duration,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Fanout {
    /// The fan-out of replica `replica` through the Redis `client` reaches, with its
    /// publishing thread.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn start(client: redis::Client, replica: &str) -> std::io::Result<Arc<Fanout>> {
        let (outbox, queue) = mpsc::channel();
        // Random per process (std seeds each RandomState from the OS).
        let instance = {
            use std::hash::{BuildHasher, Hasher};
            std::hash::RandomState::new().build_hasher().finish()
        };
        let fanout = Arc::new(Fanout {
            client: client.clone(),
            replica: replica.to_owned(),
            instance,
            outbox,
            idle_ping: Duration::from_secs(30),
        });
        let (me, publisher) = ((fanout.replica.clone(), instance), Publisher { client });
        std::thread::Builder::new()
            .name("mcpgate-announce".into())
            .spawn(move || publisher.run(&me.0, me.1, &queue))?;
        Ok(fanout)
    }

    /// Tells the other replicas, best effort and without waiting: when Redis does not
    /// answer, they learn at their next poll or sweep.
    pub fn publish(&self, event: Event) {
        let _ = self.outbox.send(event);
    }

    /// Listens on a thread of its own for the other replicas' events and hands each to
    /// `on` (its own are skipped). Subscribes again, backing off, whenever Redis goes away.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn listen(
        self: &Arc<Self>,
        on: impl Fn(Event) + Send + 'static,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("mcpgate-fanout".into())
            .spawn(move || me.listen_loop(&on))
    }

    fn listen_loop(&self, on: &dyn Fn(Event)) {
        let mut backoff = Duration::from_millis(100);
        let mut down_since: Option<Instant> = None;
        loop {
            match self.subscribed(on, &mut down_since) {
                Ok(()) => return,
                Err(e) => {
                    if down_since.is_none() {
                        tracing::warn!(error = %e.category(), "fleet announcements are not heard; replicas catch up at their next poll");
                        down_since = Some(Instant::now());
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One subscription, until the connection fails.
    fn subscribed(
        &self,
        on: &dyn Fn(Event),
        down_since: &mut Option<Instant>,
    ) -> redis::RedisResult<()> {
        let mut c = self.client.get_connection_with_timeout(TIMEOUT)?;
        let mut sub = c.as_pubsub();
        sub.subscribe(CHANNEL)?;
        // A dead peer is noticed by a read timeout, then a PING on the same connection.
        sub.set_read_timeout(Some(self.idle_ping))?;
        if down_since.take().is_some() {
            tracing::info!("fleet announcements are heard again");
        }
        loop {
            let msg = match sub.get_message() {
                Ok(m) => m,
                Err(e) if e.is_timeout() => {
                    sub.ping::<redis::Value>()?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let payload: &[u8] = msg.get_payload_bytes();
            if payload.len() > MAX_MESSAGE {
                continue;
            }
            match serde_json::from_slice::<Message>(payload) {
                Ok(m) if m.instance != self.instance => {
                    tracing::debug!(from = %m.replica, event = ?m.event, "fleet announcement");
                    on(m.event);
                }
                Ok(_) => {}
                Err(_) => {
                    tracing::debug!("an announcement on the fleet channel was not understood")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_their_replica_and_event() {
        let m = Message {
            replica: "gw-a".into(),
            instance: 7,
            event: Event::Policy {
                commit: "abc".into(),
            },
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"replica":"gw-a","instance":7,"kind":"policy","commit":"abc"}"#
        );
        let back: Message =
            serde_json::from_str(r#"{"replica":"b","instance":1,"kind":"pauses"}"#).unwrap();
        assert_eq!(back.event, Event::Pauses);
        assert!(
            serde_json::from_str::<Message>(r#"{"replica":"b","instance":1,"kind":"drop"}"#)
                .is_err()
        );
    }

    #[test]
    fn replicas_hear_each_other_not_themselves_and_after_a_quiet_spell() {
        let server = crate::state::test_redis::redis_server();
        let url = format!("redis://127.0.0.1:{}/0", server.1);
        let fanout = |name: &str| {
            let f = Fanout::start(redis::Client::open(url.as_str()).unwrap(), name).unwrap();
            let mut f = Arc::try_unwrap(f).unwrap();
            f.idle_ping = Duration::from_millis(200);
            Arc::new(f)
        };
        // One name, two processes (replicas on one host): still told apart.
        let (a, b) = (fanout("gw"), fanout("gw"));
        let (tx, rx) = std::sync::mpsc::channel();
        let heard = tx.clone();
        b.listen(move |e| {
            let _ = heard.send(e);
        })
        .unwrap();
        // The subscription is made on b's thread: publish until it hears.
        let first = (0..100).find_map(|_| {
            a.publish(Event::Pauses);
            rx.recv_timeout(Duration::from_millis(50)).ok()
        });
        assert_eq!(first, Some(Event::Pauses));
        while rx.try_recv().is_ok() {}
        // Its own announcements are not handed back.
        b.publish(Event::Pauses);
        // Longer than the idle ping: the subscription survives its pings.
        std::thread::sleep(Duration::from_millis(700));
        let commit = Event::Policy {
            commit: "c0ffee".into(),
        };
        a.publish(commit.clone());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).ok(), Some(commit));
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(tx);
    }
}
