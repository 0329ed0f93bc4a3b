//! The shared stores of a fleet, run by the test itself: a `redis-server` on a free
//! loopback port, with nothing saved to disk, which the test can stop and start again (over
//! TLS and with a password if asked); a PostgreSQL instance of the test's own (with TLS if
//! asked); and databases on the shared server `MCPGATE_TEST_PG_URL` names.

use crate::certs::CertFiles;
use crate::process::Proc;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const STARTUP: Duration = Duration::from_secs(20);

/// A `redis-server` the test owns; killed on drop.
pub struct Redis {
    port: u16,
    proc: Option<Proc>,
    /// Certificate and key files: TLS only, on `port`.
    tls: Option<(PathBuf, PathBuf)>,
    password: Option<String>,
}

impl Redis {
    /// Starts `redis-server --port N --save ''` on a free port; fails (never skips) when
    /// the server is not installed.
    pub fn start() -> Redis {
        let mut r = Redis {
            port: crate::http::closed_port(),
            proc: None,
            tls: None,
            password: None,
        };
        r.resume();
        r
    }

    /// Starts a server accepting only TLS, with `certs`' server certificate, and asking for
    /// `password`.
    pub fn start_tls(certs: &CertFiles, password: &str) -> Redis {
        let mut r = Redis {
            port: crate::http::closed_port(),
            proc: None,
            tls: Some((certs.cert.clone(), certs.key.clone())),
            password: Some(password.to_owned()),
        };
        r.resume();
        r
    }

    /// `redis://127.0.0.1:PORT/0`, or `rediss://:PASSWORD@127.0.0.1:PORT/0` for a TLS server.
    pub fn url(&self) -> String {
        let auth = self
            .password
            .as_deref()
            .map(|p| format!(":{p}@"))
            .unwrap_or_default();
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://{auth}127.0.0.1:{}/0", self.port)
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
        let port = self.port.to_string();
        match &self.tls {
            None => cmd.args(["--port", &port]),
            Some((cert, key)) => cmd
                .args(["--port", "0", "--tls-port", &port, "--tls-cert-file"])
                .arg(cert)
                .arg("--tls-key-file")
                .arg(key)
                .args(["--tls-auth-clients", "no"]),
        };
        if let Some(p) = &self.password {
            cmd.args(["--requirepass", p]);
        }
        cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
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

/// A PostgreSQL instance of the test's own (`initdb` into a temporary folder), on a free
/// loopback port, password login for `postgres`, with TLS when given certificates; stopped
/// and removed on drop. The packaged binaries are used (`apt-get install postgresql`).
pub struct PgServer {
    // Dropped in this order: the server stops, then its folder goes.
    proc: Proc,
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    port: u16,
    password: String,
}

/// `/usr/lib/postgresql/VERSION/bin`, the newest there.
fn pg_bin() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or_default()
    });
    found.pop().unwrap_or_else(|| {
        panic!("PostgreSQL is not installed: `apt-get install postgresql` (.ci/run does)")
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` run as `postgres` when the tests run as root (initdb and the server refuse
/// root), else as the current user.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl PgServer {
    /// Starts an instance; with `certs`, `ssl=on` with their server certificate.
    pub fn start(certs: Option<&CertFiles>) -> PgServer {
        let bin = pg_bin();
        let dir = tempfile::tempdir().unwrap();
        let password = "pg-Secret-4711".to_owned();
        std::fs::write(dir.path().join("pw"), &password).unwrap();
        let mut settings = vec![
            "listen_addresses=127.0.0.1".to_owned(),
            "fsync=off".to_owned(),
        ];
        if let Some(c) = certs {
            for (from, to) in [(&c.cert, "server.crt"), (&c.key, "server.key")] {
                std::fs::copy(from, dir.path().join(to)).unwrap();
            }
            settings.push("ssl=on".to_owned());
            let at = dir.path().display();
            settings.push(format!("ssl_cert_file={at}/server.crt"));
            settings.push(format!("ssl_key_file={at}/server.key"));
        }
        if is_root() {
            let done = crate::process::run(
                "chown",
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path()),
                b"",
                STARTUP,
            );
            assert_eq!(done.code(), 0, "{done}");
        }
        {
            use std::os::unix::fs::PermissionsExt;
            let key = dir.path().join("server.key");
            if key.exists() {
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
        let data = dir.path().join("data");
        let done = crate::process::run(
            "initdb",
            as_server_user(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth-host=scram-sha-256",
                    "--auth-local=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ])
                .arg(format!("--pwfile={}", dir.path().join("pw").display())),
            b"",
            Duration::from_secs(120),
        );
        assert_eq!(done.code(), 0, "initdb failed:\n{done}");
        let port = crate::http::closed_port();
        let mut cmd = as_server_user(&bin.join("postgres"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path());
        for s in &settings {
            cmd.args(["-c", s]);
        }
        let proc = Proc::spawn("postgres", &mut cmd);
        let ready = proc.output.wait_for(Duration::from_secs(60), |l| {
            l.contains("ready to accept connections").then_some(())
        });
        assert!(
            ready.is_some(),
            "postgres did not start on port {port}:\n{}",
            proc.output.text()
        );
        PgServer {
            proc,
            dir,
            pg_ctl: bin.join("pg_ctl"),
            port,
            password,
        }
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/postgres`, with `query` (`sslmode=...`)
    /// if not empty.
    pub fn url(&self, query: &str) -> String {
        let q = if query.is_empty() {
            String::new()
        } else {
            format!("?{query}")
        };
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres{q}",
            self.password, self.port
        )
    }

    /// The password of `postgres`, to check it is never printed.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Runs one SQL statement (psql over TCP, TLS when the server offers it); its output.
    pub fn query(&self, sql: &str) -> String {
        let done = psql(&self.url(""), sql);
        assert_eq!(done.code(), 0, "psql failed:\n{done}");
        done.stdout.trim().to_owned()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // A fast shutdown ends the backends and frees shared memory; the kill that follows
        // (the process group) only ends what is left.
        let mut stop = as_server_user(&self.pg_ctl);
        stop.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "fast", "-w", "-t", "30", "stop"]);
        let _ = crate::process::run("pg_ctl stop", &mut stop, b"", Duration::from_secs(40));
        self.proc.kill();
    }
}
