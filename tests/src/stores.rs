//! The shared stores of a fleet, run by the test itself: a `redis-server` on a free
//! loopback port, with nothing saved to disk, which the test can stop and start again.

use crate::process::Proc;
use std::process::Command;
use std::time::Duration;

const STARTUP: Duration = Duration::from_secs(20);

/// A `redis-server` the test owns; killed on drop.
pub struct Redis {
    port: u16,
    proc: Option<Proc>,
}

impl Redis {
    /// Starts `redis-server --port N --save ''` on a free port; fails (never skips) when
    /// the server is not installed.
    pub fn start() -> Redis {
        let mut r = Redis {
            port: crate::http::closed_port(),
            proc: None,
        };
        r.resume();
        r
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (as a crash or a network cut would look to the gateway).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts the server again on the same port (empty: nothing was saved).
    pub fn resume(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()]).args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!("redis-server is not installed: `apt-get install redis-server` (.ci/run does)");
        }
        let proc = Proc::spawn("redis-server", &mut cmd);
        let ready = proc.output.wait_for(STARTUP, |l| {
            l.contains("Ready to accept connections").then_some(())
        });
        if ready.is_none() {
            panic!(
                "redis-server did not start on port {}:\n{}",
                self.port,
                proc.output.text()
            );
        }
        self.proc = Some(proc);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The variable naming the PostgreSQL server of the fleet tests (`scripts/start-postgres`
/// prints it; `.ci/run` exports it).
pub const PG_URL_ENV: &str = "MCPGATE_TEST_PG_URL";

/// A database of the test's own on the server `MCPGATE_TEST_PG_URL` names (its role may
/// create databases); dropped on drop.
pub struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

/// The URL with its password (if any) replaced, for messages.
fn mask_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn psql(url: &str, sql: &str) -> crate::process::Finished {
    let mut cmd = Command::new("psql");
    cmd.args([url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql]);
    crate::process::run("psql", &mut cmd, b"", Duration::from_secs(30))
}

impl PgDatabase {
    /// Creates a fresh database; fails (never skips) when PostgreSQL is not there.
    pub fn create() -> PgDatabase {
        let admin = std::env::var(PG_URL_ENV).unwrap_or_else(|_| {
            panic!(
                "{PG_URL_ENV} is not set: run `export {PG_URL_ENV}=$(scripts/start-postgres)` \
                 (after `apt-get install postgresql`; .ci/run does both)"
            )
        });
        // A URL with anything around it (a notice captured with it) would reach psql as a
        // database name, and psql would try the local socket as the current user instead.
        assert!(
            admin.starts_with("postgres://") && !admin.contains(char::is_whitespace),
            "{PG_URL_ENV} is not one postgres:// URL: {:?}",
            mask_password(&admin)
        );
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!("mcpgate_t{}_{n}_{nanos}", std::process::id());
        let done = psql(&admin, &format!("CREATE DATABASE {name}"));
        assert_eq!(
            done.code(),
            0,
            "cannot create a test database on {PG_URL_ENV} ({}):\n{done}",
            mask_password(&admin)
        );
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        PgDatabase { admin, name, url }
    }

    /// `postgres://USER:PASSWORD@HOST:PORT/DB` of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs one SQL statement in this database; its output.
    pub fn query(&self, sql: &str) -> String {
        let done = psql(&self.url, sql);
        assert_eq!(done.code(), 0, "psql failed:\n{done}");
        done.stdout.trim().to_owned()
    }
}

impl PgDatabase {
    /// Refuses new connections to this database and ends the open ones: to a gateway it
    /// looks like a database gone down, while the other tests' databases go on.
    pub fn cut(&self) {
        let sql = format!(
            "ALTER DATABASE {0} ALLOW_CONNECTIONS false; \
             SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{0}'",
            self.name
        );
        let done = psql(&self.admin, &sql);
        assert_eq!(done.code(), 0, "cannot cut {}:\n{done}", self.name);
    }

    /// Accepts connections again, with everything that was stored.
    pub fn restore(&self) {
        let done = psql(
            &self.admin,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.name),
        );
        assert_eq!(done.code(), 0, "cannot restore {}:\n{done}", self.name);
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
