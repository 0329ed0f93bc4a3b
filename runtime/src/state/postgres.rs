//! PostgreSQL for the stores the replicas of a fleet share (`state.postgres`). Each feature
//! brings its tables as named migrations, applied once at start under an advisory lock (two
//! replicas starting together do not both apply one), each in a transaction.
//!
//! The callers are synchronous (the token check, the operator commands), so [`Pg`] runs the
//! asynchronous client on a runtime of its own and blocks on it: under `block_in_place` on
//! the gateway's multi-thread runtime, directly elsewhere. Connections are pooled; one that
//! fails is dropped.
//!
//! TLS ([`super::tls`]) follows `sslmode` in the URL: `disable`, `allow` and `prefer` (the
//! default) connect without TLS; `require` and `verify-ca` only with TLS, the server's
//! certificate chaining to a trusted root; `verify-full` also checks it names the host.
//! A mode asking for TLS never falls back to a connection without it.

use super::blocking;
use super::db::Migration;
use super::tls::Verify;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// Longest one round trip (connecting included) may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept for reuse.
const POOL: usize = 16;
/// After the server did not answer, calls fail at once for this long (a server that drops
/// packets would otherwise hold every request for the whole timeout).
const REST: Duration = Duration::from_millis(500);

/// Errors of the shared database. Messages name the server, never a password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("`{0}` is not a usable PostgreSQL URL: {1}")]
    Url(String, String),
    #[error("{0}: {1}")]
    Db(String, String),
    #[error("{0}: no answer within {1:?}")]
    Timeout(String, Duration),
    #[error("{0}: cannot connect: {1}")]
    Unreachable(String, String),
    #[error("cannot apply schema `{name}`: {message}")]
    Migrate { name: &'static str, message: String },
}

/// A pool of connections to one PostgreSQL database.
pub struct Pg {
    /// Drives the connections; shut down in the background on drop (a runtime may not be
    /// dropped from async code).
    rt: Option<tokio::runtime::Runtime>,
    config: tokio_postgres::Config,
    /// `None`: connections without TLS (`sslmode=disable|allow|prefer`).
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    idle: Mutex<Vec<tokio_postgres::Client>>,
    /// Until when calls fail without trying, after the server did not answer.
    resting: Mutex<Option<std::time::Instant>>,
    shown: String,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg")
            .field("at", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// `user@host:port/db`, from the parsed config (no password).
fn shown(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        c.get_user().unwrap_or("-"),
        c.get_dbname().unwrap_or("-")
    )
}

impl Pg {
    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=MODE]`) and
    /// applies `migrations`. TLS trusts the public and platform roots and `ca_file`.
    ///
    /// # Errors
    /// When the URL cannot be used, the server does not answer, TLS fails, or a migration
    /// fails.
    pub fn open(
        url: &str,
        ca_file: Option<&Path>,
        migrations: &[Migration],
    ) -> Result<Pg, PgError> {
        let unusable = |e: String| PgError::Url("the value of `state.postgres`".into(), e);
        let (rest, verify) = take_sslmode(url).map_err(unusable)?;
        // The cause names the option (`unknown option `sslrootcert``), never a value.
        let mut config: tokio_postgres::Config = rest.parse().map_err(|e| {
            unusable(match std::error::Error::source(&e) {
                Some(cause) => format!("{e}: {cause}"),
                None => format!("{e}"),
            })
        })?;
        let shown = shown(&config);
        let tls = match verify {
            None => {
                config.ssl_mode(tokio_postgres::config::SslMode::Disable);
                None
            }
            Some(verify) => {
                // `Require` in tokio-postgres: TLS or no connection, never plain text.
                config.ssl_mode(tokio_postgres::config::SslMode::Require);
                let certs =
                    super::tls::root_certs(ca_file).map_err(|e| PgError::Url(shown.clone(), e))?;
                let tls = super::tls::client_config(&certs, verify)
                    .map_err(|e| PgError::Url(shown.clone(), e))?;
                Some(tokio_postgres_rustls::MakeRustlsConnect::new(tls))
            }
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(TIMEOUT);
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mcpgate-pg")
            .enable_all()
            .build()
            .map_err(|e| PgError::Db(shown.clone(), format!("cannot start a runtime: {e}")))?;
        let pg = Pg {
            rt: Some(rt),
            config,
            tls,
            idle: Mutex::new(Vec::new()),
            resting: Mutex::new(None),
            shown,
        };
        pg.migrate(migrations)?;
        Ok(pg)
    }

    /// Where the database is (no password).
    pub fn address(&self) -> &str {
        &self.shown
    }

    /// The server's TCP host and port, when it is reached over TCP.
    pub fn server(&self) -> Option<(String, u16)> {
        let host = match self.config.get_hosts().first()? {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(_) => return None,
        };
        Some((
            host,
            self.config.get_ports().first().copied().unwrap_or(5432),
        ))
    }

    fn db_err(&self, e: &tokio_postgres::Error) -> PgError {
        // The server's own message (`relation ... does not exist`) when there is one.
        let text = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned());
        PgError::Db(self.shown.clone(), text)
    }

    async fn client(&self) -> Result<tokio_postgres::Client, PgError> {
        let reused = self.idle.lock().ok().and_then(|mut p| {
            while let Some(c) = p.pop() {
                if !c.is_closed() {
                    return Some(c);
                }
            }
            None
        });
        if let Some(c) = reused {
            return Ok(c);
        }
        let unreachable = |e: tokio_postgres::Error| {
            // The TLS error is the cause: tokio-postgres's own message only says TLS failed.
            let text = match std::error::Error::source(&e) {
                Some(cause) if e.as_db_error().is_none() => format!("{e}: {cause}"),
                _ => return self.db_err(&e),
            };
            PgError::Unreachable(self.shown.clone(), text)
        };
        let client = match &self.tls {
            None => open(&self.config, tokio_postgres::NoTls).await,
            Some(tls) => open(&self.config, tls.clone()).await,
        }
        .map_err(unreachable)?;
        Ok(client)
    }

    /// Runs `f` on a pooled connection, within [`TIMEOUT`]; blocks the calling thread.
    ///
    /// # Errors
    /// When no connection can be made or `f` fails; the connection is then dropped.
    pub fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, PgError> {
        let Some(rt) = &self.rt else {
            return Err(PgError::Db(self.shown.clone(), "closed".into()));
        };
        let now = std::time::Instant::now();
        if self
            .resting
            .lock()
            .ok()
            .and_then(|r| *r)
            .is_some_and(|until| now < until)
        {
            return Err(PgError::Db(
                self.shown.clone(),
                "did not answer a moment ago".into(),
            ));
        }
        let result = blocking(|| {
            rt.block_on(async {
                let work = async {
                    let mut c = self.client().await?;
                    let r = f(&mut c).await.map_err(|e| self.db_err(&e));
                    if r.is_ok()
                        && let Ok(mut p) = self.idle.lock()
                        && p.len() < POOL
                    {
                        p.push(c);
                    }
                    r
                };
                tokio::time::timeout(TIMEOUT, work)
                    .await
                    .map_err(|_| PgError::Timeout(self.shown.clone(), TIMEOUT))?
            })
        });
        if let Err(PgError::Timeout(..) | PgError::Unreachable(..)) = &result
            && let Ok(mut r) = self.resting.lock()
        {
            *r = Some(std::time::Instant::now() + REST);
        }
        result
    }

    /// Whether the database answers; the error when it does not. Always tries: it is how
    /// `/readyz` sees the server return.
    pub fn probe(&self) -> Option<String> {
        if let Ok(mut r) = self.resting.lock() {
            *r = None;
        }
        self.run(async |c| c.simple_query("SELECT 1").await.map(|_| ()))
            .err()
            .map(|e| e.to_string())
    }

    fn migrate(&self, migrations: &[Migration]) -> Result<(), PgError> {
        // One transaction under an advisory lock: replicas starting together wait for each
        // other (even `CREATE TABLE IF NOT EXISTS` races in PostgreSQL), and a failed
        // migration leaves nothing behind.
        let mut failed: &'static str = "migrations";
        self.run(async |c| {
            let tx = c.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock(727274741)", &[])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS mcpgate_migrations (
                    name TEXT PRIMARY KEY,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                 )",
            )
            .await?;
            for m in migrations {
                failed = m.name;
                let done = tx
                    .query_opt(
                        "SELECT 1 FROM mcpgate_migrations WHERE name = $1",
                        &[&m.name],
                    )
                    .await?;
                if done.is_none() {
                    tx.batch_execute(m.sql).await?;
                    tx.execute(
                        "INSERT INTO mcpgate_migrations (name) VALUES ($1)",
                        &[&m.name],
                    )
                    .await?;
                }
            }
            tx.commit().await
        })
        .map_err(|e| match e {
            // Not reached: the message says so, not that a schema failed.
            PgError::Unreachable(..) | PgError::Timeout(..) => e,
            _ => PgError::Migrate {
                name: failed,
                message: e.to_string(),
            },
        })
    }
}

/// Takes `sslmode` out of `url` (tokio-postgres knows only `disable`, `prefer` and
/// `require`): `None` for a connection without TLS, else what TLS checks. Both URL
/// (`?sslmode=`) and key-value (`sslmode=`) forms.
fn take_sslmode(url: &str) -> Result<(String, Option<Verify>), String> {
    let mut mode = None;
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|p| match p.strip_prefix("sslmode=") {
                        Some(m) => {
                            mode = Some(m.to_owned());
                            false
                        }
                        None => true,
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let kept: Vec<&str> = url
            .split_whitespace()
            .filter(|p| match p.strip_prefix("sslmode=") {
                Some(m) => {
                    mode = Some(m.to_owned());
                    false
                }
                None => true,
            })
            .collect();
        kept.join(" ")
    };
    let verify = match mode.as_deref() {
        None | Some("disable" | "allow" | "prefer") => None,
        Some("require" | "verify-ca") => Some(Verify::Chain),
        Some("verify-full") => Some(Verify::ChainAndHost),
        Some(other) => {
            return Err(format!(
                "`sslmode={other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ));
        }
    };
    Ok((rest, verify))
}

/// Connects with `tls` (plain or rustls) and drives the connection on its own task.
async fn open<T>(
    config: &tokio_postgres::Config,
    tls: T,
) -> Result<tokio_postgres::Client, tokio_postgres::Error>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(target: "mcpgate::state", error = %e, "postgres connection ended");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_read_and_taken_out() {
        let t = |u: &str| take_sslmode(u).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            t("postgres://u:p@h/db"),
            ("postgres://u:p@h/db".into(), None)
        );
        assert_eq!(
            t("postgres://u@h/db?sslmode=require"),
            ("postgres://u@h/db".into(), Some(Verify::Chain))
        );
        assert_eq!(
            t("postgresql://u@h/db?application_name=x&sslmode=verify-full"),
            (
                "postgresql://u@h/db?application_name=x".into(),
                Some(Verify::ChainAndHost)
            )
        );
        assert_eq!(
            t("postgres://u@h/db?sslmode=verify-ca"),
            ("postgres://u@h/db".into(), Some(Verify::Chain))
        );
        assert_eq!(t("postgres://u@h/db?sslmode=prefer").1, None);
        assert_eq!(t("postgres://u@h/db?sslmode=disable").1, None);
        assert_eq!(
            t("host=h user=u sslmode=verify-full"),
            ("host=h user=u".into(), Some(Verify::ChainAndHost))
        );
        let e = take_sslmode("postgres://u@h/db?sslmode=strict")
            .err()
            .unwrap_or_default();
        assert!(e.contains("sslmode=strict"), "{e}");
    }

    #[test]
    fn a_mode_asking_for_tls_needs_a_usable_ca_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "nothing").unwrap_or_else(|e| panic!("{e}"));
        let e = Pg::open(
            "postgres://u:hunter2@127.0.0.1:1/db?sslmode=require",
            Some(&bad),
            &[],
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("state.ca_file") && !e.contains("hunter2"), "{e}");
    }
}
