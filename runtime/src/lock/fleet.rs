//! Held pins shared by a fleet (`state.postgres`). Each replica compares the tool
//! definitions it lists itself; when one finds a pinned tool whose definition changed, it
//! records it in the shared table (server, tool, pinned digest, digest seen, first seen,
//! replica), and every replica refuses calls to a tool held anywhere for the same pinned
//! digest. A row stops holding when the lock pins another digest (a policy commit that
//! re-pins the tool), and is removed when a replica lists the pinned definition again.
//!
//! Each replica reads a server's rows at most once a [`CACHE_FOR`] (the first call after
//! that reads again), so a hold reaches the other replicas within about a second. When the
//! table cannot be read, calls to that server's pinned tools are refused under `enforce`.

use crate::state::db::Migration;
use crate::state::postgres::{Pg, PgError};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The schema of the shared held-tool table.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "pins.v1",
    sql: "CREATE TABLE mcpgate_held_tools (
            server TEXT NOT NULL,
            tool TEXT NOT NULL,
            pinned_sha256 TEXT NOT NULL,
            seen_sha256 TEXT NOT NULL,
            first_seen_ms BIGINT NOT NULL,
            replica TEXT NOT NULL,
            PRIMARY KEY (server, tool, pinned_sha256)
          );",
}];

/// How long a replica reuses what it read of a server's held tools.
pub const CACHE_FOR: Duration = Duration::from_secs(1);
/// Most rows read for one server (a server lists far fewer tools).
const MAX_ROWS: i64 = 10_000;

/// A pinned tool some replica found changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetHold {
    pub server: String,
    pub tool: String,
    /// Lowercase hex SHA-256 of the pinned definition (as in `mcpgate.lock`).
    pub pinned: String,
    /// Lowercase hex SHA-256 of the definition the replica listed.
    pub seen: String,
    /// When it was first recorded, in milliseconds since the Unix epoch.
    pub first_seen_ms: u64,
    /// The replica that first recorded it.
    pub replica: String,
}

impl FleetHold {
    fn json(&self) -> Value {
        json!({
            "server": self.server,
            "tool": self.tool,
            "pinned_sha256": self.pinned,
            "seen_sha256": self.seen,
            "first_seen_ms": self.first_seen_ms,
            "replica": self.replica,
        })
    }
}

/// Where held tools are shared.
pub trait HeldTable: Send + Sync + std::fmt::Debug {
    /// Records `hold` unless a row for its (server, tool, pinned digest) exists (the first
    /// sighting is kept).
    ///
    /// # Errors
    /// When the table cannot be written.
    fn hold(&self, hold: &FleetHold) -> Result<(), PgError>;
    /// Removes the row of (server, tool, pinned digest), if any.
    ///
    /// # Errors
    /// When the table cannot be written.
    fn release(&self, server: &str, tool: &str, pinned: &str) -> Result<(), PgError>;
    /// The rows of `server`, or of every server with `None`.
    ///
    /// # Errors
    /// When the table cannot be read.
    fn list(&self, server: Option<&str>) -> Result<Vec<FleetHold>, PgError>;
}

/// The table in the shared PostgreSQL database.
#[derive(Debug)]
pub struct PgHeld {
    pg: Arc<Pg>,
}

impl PgHeld {
    /// The held tools in `pg`, opened with [`MIGRATIONS`].
    pub fn new(pg: Arc<Pg>) -> PgHeld {
        PgHeld { pg }
    }
}

impl HeldTable for PgHeld {
    fn hold(&self, h: &FleetHold) -> Result<(), PgError> {
        let first = i64::try_from(h.first_seen_ms).unwrap_or(i64::MAX);
        self.pg.run(async |c| {
            c.execute(
                "INSERT INTO mcpgate_held_tools
                   (server, tool, pinned_sha256, seen_sha256, first_seen_ms, replica)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (server, tool, pinned_sha256) DO NOTHING",
                &[&h.server, &h.tool, &h.pinned, &h.seen, &first, &h.replica],
            )
            .await
        })?;
        Ok(())
    }

    fn release(&self, server: &str, tool: &str, pinned: &str) -> Result<(), PgError> {
        self.pg.run(async |c| {
            c.execute(
                "DELETE FROM mcpgate_held_tools
                 WHERE server = $1 AND tool = $2 AND pinned_sha256 = $3",
                &[&server, &tool, &pinned],
            )
            .await
        })?;
        Ok(())
    }

    fn list(&self, server: Option<&str>) -> Result<Vec<FleetHold>, PgError> {
        self.pg.run(async |c| {
            let rows = c
                .query(
                    "SELECT server, tool, pinned_sha256, seen_sha256, first_seen_ms, replica
                     FROM mcpgate_held_tools WHERE $1::TEXT IS NULL OR server = $1
                     ORDER BY server, tool, first_seen_ms LIMIT $2",
                    &[&server, &MAX_ROWS],
                )
                .await?;
            rows.iter()
                .map(|r| {
                    Ok(FleetHold {
                        server: r.try_get(0)?,
                        tool: r.try_get(1)?,
                        pinned: r.try_get(2)?,
                        seen: r.try_get(3)?,
                        first_seen_ms: u64::try_from(r.try_get::<_, i64>(4)?).unwrap_or(0),
                        replica: r.try_get(5)?,
                    })
                })
                .collect()
        })
    }
}

/// Per server: when its rows were read, and the rows.
type Cache = HashMap<String, (Instant, Arc<Vec<FleetHold>>)>;

/// This replica's view of the fleet's held tools: the table, read per server at most once
/// a [`CACHE_FOR`].
#[derive(Debug)]
pub struct FleetHolds {
    table: Box<dyn HeldTable>,
    replica: String,
    cache: Mutex<Cache>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl FleetHolds {
    /// Held tools kept in `table`, recorded under this replica's name.
    pub fn new(table: Box<dyn HeldTable>, replica: &str) -> FleetHolds {
        FleetHolds {
            table,
            replica: replica.to_owned(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn cached(&self, server: &str) -> Result<Arc<Vec<FleetHold>>, PgError> {
        if let Some((at, rows)) = self.cache().get(server)
            && at.elapsed() < CACHE_FOR
        {
            return Ok(rows.clone());
        }
        // Read without the lock held: a slow database holds up only the calls that read.
        let rows = Arc::new(self.table.list(Some(server))?);
        self.cache()
            .insert(server.to_owned(), (Instant::now(), rows.clone()));
        Ok(rows)
    }

    fn forget(&self, server: &str) {
        self.cache().remove(server);
    }

    /// The fleet's hold on `server.tool` pinned at `pinned`, if any replica recorded one.
    ///
    /// # Errors
    /// When the table cannot be read (the caller refuses the call).
    pub fn held(
        &self,
        server: &str,
        tool: &str,
        pinned: &str,
    ) -> Result<Option<FleetHold>, PgError> {
        Ok(self
            .cached(server)?
            .iter()
            .find(|h| h.tool == tool && h.pinned == pinned)
            .cloned())
    }

    /// What this replica listed for a pinned tool: with `changed`, it records the hold
    /// (once: a hold the table already has is not written again); otherwise the definition
    /// is the pinned one again, and a hold on it is removed. Failures are logged: the
    /// replica's own check holds the tool either way, and the others read the table anew.
    pub fn saw(&self, server: &str, tool: &str, pinned: &str, seen: &str, changed: bool) {
        let rows = match self.cached(server) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(target: "mcpgate::lock", server, tool, error = %e, "cannot read the fleet's held tools");
                Arc::new(Vec::new())
            }
        };
        // Holds on an earlier pin of the tool ended when the lock re-pinned it.
        for old in rows.iter().filter(|h| h.tool == tool && h.pinned != pinned) {
            if let Err(e) = self.table.release(server, tool, &old.pinned) {
                tracing::warn!(target: "mcpgate::lock", server, tool, error = %e, "cannot update the fleet's held tools");
            }
            self.forget(server);
        }
        let known = rows
            .iter()
            .find(|h| h.tool == tool && h.pinned == pinned)
            .cloned();
        let result = match (changed, known) {
            (true, None) => {
                let hold = FleetHold {
                    server: server.to_owned(),
                    tool: tool.to_owned(),
                    pinned: pinned.to_owned(),
                    seen: seen.to_owned(),
                    first_seen_ms: now_ms(),
                    replica: self.replica.clone(),
                };
                tracing::info!(target: "mcpgate::lock", server, tool, seen, "held for the fleet: the definition differs from mcpgate.lock");
                self.table.hold(&hold)
            }
            (false, Some(_)) => {
                tracing::info!(target: "mcpgate::lock", server, tool, "released for the fleet: the server lists the pinned definition again");
                self.table.release(server, tool, pinned)
            }
            _ => return,
        };
        self.forget(server);
        if let Err(e) = result {
            tracing::warn!(target: "mcpgate::lock", server, tool, error = %e, "cannot update the fleet's held tools");
        }
    }

    /// The `fleet` part of the lock in `/status`: the held rows of the pins in force
    /// (`in_force` says which), or why none can be read.
    pub fn status_json(&self, in_force: impl Fn(&FleetHold) -> bool) -> Value {
        match self.table.list(None) {
            Ok(rows) => json!({
                "store": "postgres",
                "up": true,
                "held": rows.iter().filter(|h| in_force(h)).map(FleetHold::json).collect::<Vec<_>>(),
            }),
            Err(e) => json!({"store": "postgres", "up": false, "error": e.to_string()}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table in memory, failing on demand.
    #[derive(Debug, Default)]
    struct MemTable {
        rows: Mutex<Vec<FleetHold>>,
        reads: Mutex<usize>,
        down: Mutex<bool>,
    }

    impl MemTable {
        fn check(&self) -> Result<(), PgError> {
            if *self.down.lock().unwrap() {
                return Err(PgError::Unreachable("db".into(), "down".into()));
            }
            Ok(())
        }
    }

    impl HeldTable for Arc<MemTable> {
        fn hold(&self, h: &FleetHold) -> Result<(), PgError> {
            self.check()?;
            let mut rows = self.rows.lock().unwrap();
            if !rows
                .iter()
                .any(|r| (&r.server, &r.tool, &r.pinned) == (&h.server, &h.tool, &h.pinned))
            {
                rows.push(h.clone());
            }
            Ok(())
        }
        fn release(&self, server: &str, tool: &str, pinned: &str) -> Result<(), PgError> {
            self.check()?;
            self.rows.lock().unwrap().retain(|r| {
                (r.server.as_str(), r.tool.as_str(), r.pinned.as_str()) != (server, tool, pinned)
            });
            Ok(())
        }
        fn list(&self, server: Option<&str>) -> Result<Vec<FleetHold>, PgError> {
            self.check()?;
            *self.reads.lock().unwrap() += 1;
            let rows = self.rows.lock().unwrap();
            Ok(rows
                .iter()
                .filter(|r| server.is_none_or(|s| r.server == s))
                .cloned()
                .collect())
        }
    }

    #[test]
    fn a_hold_one_replica_records_is_seen_by_another_until_released() {
        let table = Arc::new(MemTable::default());
        let a = FleetHolds::new(Box::new(table.clone()), "gw-a");
        let b = FleetHolds::new(Box::new(table.clone()), "gw-b");
        assert_eq!(b.held("bank", "transfer", "p1").unwrap(), None);
        a.saw("bank", "transfer", "p1", "s2", true);
        a.saw("bank", "transfer", "p1", "s3", true);
        assert_eq!(table.rows.lock().unwrap().len(), 1, "recorded once");
        // B read "bank" a moment ago: its next read comes after the cache time.
        b.forget("bank");
        let h = b.held("bank", "transfer", "p1").unwrap().unwrap();
        assert_eq!((h.replica.as_str(), h.seen.as_str()), ("gw-a", "s2"));
        assert_eq!(
            b.held("bank", "transfer", "p2").unwrap(),
            None,
            "another pin"
        );
        assert_eq!(b.held("bank", "get_balance", "p1").unwrap(), None);
        assert_eq!(b.held("other", "transfer", "p1").unwrap(), None);
        // The pinned definition listed again releases it.
        b.saw("bank", "transfer", "p1", "p1", false);
        a.forget("bank");
        assert_eq!(a.held("bank", "transfer", "p1").unwrap(), None);
    }

    #[test]
    fn reads_are_cached_for_a_moment_and_failures_are_errors() {
        let table = Arc::new(MemTable::default());
        let holds = FleetHolds::new(Box::new(table.clone()), "gw-a");
        for _ in 0..5 {
            assert_eq!(holds.held("bank", "transfer", "p1").unwrap(), None);
        }
        assert_eq!(*table.reads.lock().unwrap(), 1);
        *table.down.lock().unwrap() = true;
        holds.forget("bank");
        assert!(holds.held("bank", "transfer", "p1").is_err());
        assert_eq!(holds.status_json(|_| true)["up"], false);
        *table.down.lock().unwrap() = false;
        assert_eq!(holds.held("bank", "transfer", "p1").unwrap(), None);
        assert_eq!(holds.status_json(|_| true)["up"], true);
    }

    #[test]
    fn a_new_pin_ends_the_holds_on_the_old_one() {
        let table = Arc::new(MemTable::default());
        let holds = FleetHolds::new(Box::new(table.clone()), "gw-a");
        holds.saw("bank", "transfer", "p1", "s2", true);
        holds.saw("bank", "get_balance", "p9", "s9", true);
        let status = holds.status_json(|h| h.pinned == "p1");
        assert_eq!(status["held"].as_array().unwrap().len(), 1, "{status}");
        assert_eq!(status["held"][0]["tool"], "transfer", "{status}");
        // The lock now pins what was seen: listing it removes the hold on the old pin.
        holds.forget("bank");
        holds.saw("bank", "transfer", "s2", "s2", false);
        holds.forget("bank");
        assert_eq!(holds.held("bank", "transfer", "p1").unwrap(), None);
        assert_eq!(holds.held("bank", "transfer", "s2").unwrap(), None);
        assert!(
            holds.held("bank", "get_balance", "p9").unwrap().is_some(),
            "others kept"
        );
    }
}
