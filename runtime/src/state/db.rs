//! `state.db`: one SQLite file in the state dir, in WAL mode so the gateway and an operator
//! command can use it at once. Each feature owns its tables and brings its schema as a
//! named migration; `open` applies the ones not yet applied, in order, each in a transaction.

use rusqlite::{Connection, OptionalExtension};
use std::path::Path;
use std::time::Duration;

/// The database file inside the state dir.
pub const DB_FILE: &str = "state.db";

/// A schema change, applied once: `name` is recorded in `migrations` and must never change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// Errors opening or migrating the state database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open `{path}`: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("cannot apply schema `{name}`: {source}")]
    Migrate {
        name: &'static str,
        source: rusqlite::Error,
    },
}

/// Opens (creating if needed) `state.db` in `state_dir` and applies `migrations`.
///
/// # Errors
/// When the file cannot be opened or a migration fails (nothing of it is kept).
pub fn open(state_dir: &Path, migrations: &[Migration]) -> Result<Connection, DbError> {
    let path = state_dir.join(DB_FILE);
    let open_err = |source| DbError::Open {
        path: path.display().to_string(),
        source,
    };
    let conn = Connection::open(&path).map_err(open_err)?;
    restrict_mode(&path);
    configure(&conn).map_err(open_err)?;
    migrate(&conn, migrations)?;
    Ok(conn)
}

/// An in-memory database with the same settings and migrations, for tests.
///
/// # Errors
/// When a migration fails.
pub fn open_in_memory(migrations: &[Migration]) -> Result<Connection, DbError> {
    let conn = Connection::open_in_memory().map_err(|source| DbError::Open {
        path: ":memory:".into(),
        source,
    })?;
    migrate(&conn, migrations)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // WAL lets readers proceed while the gateway writes; the busy timeout makes a second
    // process wait for a lock instead of failing at once.
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// The database holds token hashes and sealed secrets: owner-only, like the state dir.
fn restrict_mode(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn migrate(conn: &Connection, migrations: &[Migration]) -> Result<(), DbError> {
    let bootstrap = Migration {
        name: "migrations",
        sql: "CREATE TABLE IF NOT EXISTS migrations (
                name TEXT PRIMARY KEY,
                applied_at INTEGER NOT NULL
              )",
    };
    conn.execute_batch(bootstrap.sql)
        .map_err(|source| DbError::Migrate {
            name: bootstrap.name,
            source,
        })?;
    for m in migrations {
        apply(conn, m).map_err(|source| DbError::Migrate {
            name: m.name,
            source,
        })?;
    }
    Ok(())
}

fn apply(conn: &Connection, m: &Migration) -> rusqlite::Result<()> {
    let done: Option<String> = conn
        .query_row(
            "SELECT name FROM migrations WHERE name = ?1",
            [m.name],
            |r| r.get(0),
        )
        .optional()?;
    if done.is_some() {
        return Ok(());
    }
    // IMMEDIATE takes the write lock first, so two processes opening a fresh file do not
    // both apply the same migration.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let raced: Option<String> = conn
            .query_row(
                "SELECT name FROM migrations WHERE name = ?1",
                [m.name],
                |r| r.get(0),
            )
            .optional()?;
        if raced.is_none() {
            conn.execute_batch(m.sql)?;
            conn.execute(
                "INSERT INTO migrations (name, applied_at) VALUES (?1, unixepoch())",
                [m.name],
            )?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M1: Migration = Migration {
        name: "test.notes.v1",
        sql: "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    };
    const BAD: Migration = Migration {
        name: "test.bad.v1",
        sql: "CREATE TABLE half (id INTEGER); THIS IS NOT SQL",
    };

    #[test]
    fn migrations_apply_once_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(dir.path(), &[M1]).unwrap();
        conn.execute("INSERT INTO notes (body) VALUES ('kept')", [])
            .unwrap();
        drop(conn);
        // A second open must not re-run CREATE TABLE (which would fail) nor lose rows.
        let conn = open(dir.path(), &[M1]).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_failed_migration_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let err = open(dir.path(), &[M1, BAD]).unwrap_err();
        assert!(err.to_string().contains("test.bad.v1"), "{err}");
        let conn = open(dir.path(), &[M1]).unwrap();
        let half: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'half'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(half, 0, "the failed migration's table must be rolled back");
        let recorded: i64 = conn
            .query_row(
                "SELECT count(*) FROM migrations WHERE name = 'test.bad.v1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(recorded, 0);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path(), &[]).unwrap());
        let mode = std::fs::metadata(dir.path().join(DB_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
