//! `mcpgate serve`: load and check a policy folder, compile it, and run the gateway.

use crate::gateway::Gateway;
use crate::gateway::LoadedProgram;
use crate::gateway::server::{serve, shutdown_signal};
use crate::gitops::fetch::GitSource;
use crate::gitops::{Start, Syncer, admin::AdminAuth, watch};
use crate::identity::Authenticator;
use crate::session::seal::Sealer;
use crate::upstream::SecretResolver;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy folder (`mcpgate.yaml`, `policies/`, `tests/`), watched for changes.
    #[arg(long, default_value = ".")]
    pub policy: PathBuf,
    /// Follow a branch of this policy repository instead of a folder: a local path,
    /// `file://`, `https://` or `ssh://` URL.
    #[arg(long, conflicts_with = "policy")]
    pub policy_repo: Option<String>,
    /// The branch to follow.
    #[arg(long, default_value = "main", requires = "policy_repo")]
    pub branch: String,
    /// How often to fetch the branch (`500ms`, `15s`, `2m`).
    #[arg(long, default_value = "15s", value_parser = parse_duration, requires = "policy_repo")]
    pub poll: Duration,
    /// The policy folder inside the repository (default: its root).
    #[arg(long, default_value = "", requires = "policy_repo")]
    pub policy_path: String,
    /// HTTPS token for the repository, as `${env:NAME}` (default: `MCPGATE_GIT_TOKEN`).
    #[arg(long, requires = "policy_repo")]
    pub git_token: Option<String>,
    /// HTTPS user name sent with the token.
    #[arg(long, default_value = "x-access-token", requires = "policy_repo")]
    pub git_user: String,
    /// SSH private key file for `ssh://` repositories (its passphrase, if any, from
    /// `MCPGATE_GIT_SSH_PASSPHRASE`).
    #[arg(long, env = "MCPGATE_GIT_SSH_KEY", requires = "policy_repo")]
    pub ssh_key: Option<PathBuf>,
    /// Address to listen on (default: `gateway.listen` from `mcpgate.yaml`); port 0 lets
    /// the OS choose, and the address is printed.
    #[arg(long)]
    pub listen: Option<String>,
    /// Where the gateway keeps its state (the session key); default `.mcpgate-state`.
    #[arg(long, env = "MCPGATE_STATE")]
    pub state: Option<PathBuf>,
    /// Log lines as `text` (colored on a terminal) or `json` (one object per line, for log
    /// pipelines). The level comes from `RUST_LOG` (default `info`).
    #[arg(long, env = "MCPGATE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// How `serve` writes its log to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parses `250ms`, `15s`, `2m`, `1h` (a bare number is seconds).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = mcpgate_compiler::duration::parse(s)?;
    if d < Duration::from_millis(10) {
        return Err(format!("`{s}` is too short; poll at most every 10ms"));
    }
    Ok(d)
}

/// The HTTPS token: `--git-token` (a `${env:NAME}` reference or the token itself), else
/// `MCPGATE_GIT_TOKEN`.
fn git_token(flag: Option<&str>) -> Result<Option<String>, String> {
    let Some(flag) = flag else {
        return Ok(std::env::var("MCPGATE_GIT_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()));
    };
    if let Some(name) = flag
        .strip_prefix("${env:")
        .and_then(|r| r.strip_suffix('}'))
    {
        return match std::env::var(name) {
            Ok(t) if !t.is_empty() => Ok(Some(t)),
            _ => Err(format!("`--git-token` names `{name}`, which is not set")),
        };
    }
    Ok(Some(flag.to_owned()))
}

fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    // Escape codes only where a person reads them: a log file or collector gets plain text.
    let fmt = match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => fmt.json().with_current_span(false).boxed(),
    };
    // The log level filters the log only: exported spans have their own filter.
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(crate::telemetry::layer())
        .try_init();
}

fn parse_listen(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    let port = s.strip_prefix("localhost:")?.parse().ok()?;
    Some(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The resolver of `${secret:..}` and `${env:..}` references in upstream config that
/// `serve` uses (the vault of the state dir), for `lock` to reach upstreams with the same
/// credentials.
///
/// # Errors
/// When the vault cannot be opened (the message carries its help line).
pub fn secret_resolver(state: &Path) -> Result<Box<dyn SecretResolver>, String> {
    crate::vault::VaultSecrets::open(state)
        .map(|s| Box::new(s) as Box<dyn SecretResolver>)
        .map_err(|e| match e.help() {
            Some(help) => format!("vault: {e}\n  help: {help}"),
            None => format!("vault: {e}"),
        })
}

/// The PostgreSQL database `url` names (its references resolved), with the tables of the
/// tokens, the approvals, the delegations, the responder pauses, the task owners and the held
/// tools.
///
/// # Errors
/// When the URL cannot be resolved or used, or the database does not answer.
pub fn shared_db(
    state: &mcpgate_compiler::config::StateConfig,
    url: &str,
    secrets: &dyn SecretResolver,
) -> Result<Arc<crate::state::postgres::Pg>, String> {
    let url = crate::vault::references::resolve_references(url, secrets)
        .map_err(|e| format!("state.postgres: {e}"))?;
    let migrations: Vec<_> = crate::identity::postgres::MIGRATIONS
        .iter()
        .chain(crate::approvals::postgres::MIGRATIONS)
        .chain(crate::delegation::postgres::MIGRATIONS)
        .chain(crate::responders::postgres::MIGRATIONS)
        .chain(crate::tasks::postgres::MIGRATIONS)
        .chain(crate::lock::fleet::MIGRATIONS)
        .chain(crate::parked::postgres::MIGRATIONS)
        .chain(crate::console::sessions::postgres::MIGRATIONS)
        .copied()
        .collect();
    let ca_file = state.ca_file.as_deref().map(Path::new);
    let pg = crate::state::postgres::Pg::open(&url.value, ca_file, &migrations)
        .map_err(|e| format!("state.postgres: {e}"))?;
    tracing::info!(postgres = %pg.address(), "gateway tokens, approvals, delegations, responder pauses, task owners, held tools, parked calls and console sign-ins are kept in PostgreSQL");
    Ok(Arc::new(pg))
}

/// The shared database `state.postgres` of `policy`'s `mcpgate.yaml` names, for the
/// operator commands (`token`, `approvals` with `--policy`); `None` when it names none.
///
/// # Errors
/// When the folder or its config cannot be read, or the database cannot be used.
pub fn policy_db(
    policy: &Path,
    state: &Path,
) -> Result<Option<Arc<crate::state::postgres::Pg>>, String> {
    let files = mcpgate_compiler::repo::read_dir(policy)
        .map_err(|e| format!("cannot read `{}`: {e}", policy.display()))?;
    let checked = mcpgate_compiler::repo::check_files(files);
    let Some(config) = checked.config else {
        return Err(format!(
            "`{}` has no valid mcpgate.yaml; run `mcpgate check {}`",
            policy.display(),
            policy.display()
        ));
    };
    let Some(shared) = config.state.as_ref() else {
        return Ok(None);
    };
    let Some(url) = shared.postgres.as_deref() else {
        return Ok(None);
    };
    let secrets = secret_resolver(state)?;
    shared_db(shared, url, secrets.as_ref()).map(Some)
}

/// The token table in the shared database.
pub fn postgres_tokens(
    pg: &Arc<crate::state::postgres::Pg>,
) -> crate::identity::tokens::TokenStore {
    crate::identity::tokens::TokenStore::over(Box::new(crate::identity::postgres::PgTokens::new(
        pg.clone(),
    )))
}

/// The quota store `state.redis` names (its references resolved), else the in-process one.
/// The Redis of `state.redis` (its references resolved), if one is named.
fn shared_redis(
    state: Option<&mcpgate_compiler::config::StateConfig>,
    secrets: &dyn SecretResolver,
) -> Result<Option<Arc<crate::quota::RedisStore>>, String> {
    let Some(url) = state.and_then(|s| s.redis.as_deref()) else {
        return Ok(None);
    };
    let url = crate::vault::references::resolve_references(url, secrets)?;
    let ca_file = state.and_then(|s| s.ca_file.as_deref()).map(Path::new);
    let store = crate::quota::RedisStore::open(&url.value, ca_file)?;
    store.check_tls()?;
    tracing::info!(redis = %store.address(), "quota and responder counts are kept in Redis");
    Ok(Some(Arc::new(store)))
}

/// How this replica hands retries of its parked calls to the others: at `state.advertise`
/// (its references resolved), else at the address it listens on, else (listening on every
/// interface) at the address it reaches the shared database from.
async fn handoff(
    pg: &Arc<crate::state::postgres::Pg>,
    state: Option<&mcpgate_compiler::config::StateConfig>,
    bound: std::net::SocketAddr,
    sealer: &Sealer,
    secrets: &dyn SecretResolver,
) -> Result<crate::gateway::handoff::Handoff, String> {
    let url = match state.and_then(|s| s.advertise.as_deref()) {
        Some(text) => {
            crate::vault::references::resolve_references(text, secrets)
                .map_err(|e| format!("state.advertise: {e}"))?
                .value
        }
        None if !bound.ip().is_unspecified() => format!("http://{bound}"),
        None => {
            let ip = route_to(pg).await.ok_or_else(|| {
                format!("`{bound}` listens on every interface, and the address the other replicas reach this one at cannot be found")
            })?;
            format!("http://{}", std::net::SocketAddr::new(ip, bound.port()))
        }
    };
    let store = Arc::new(crate::parked::postgres::PgParked::new(pg.clone()));
    let h = crate::gateway::handoff::Handoff::new(
        store,
        &url,
        crate::state::replica_name(state),
        sealer,
    )?;
    tracing::info!(url = %h.url(), "retries of calls parked here are forwarded from the other replicas to this address");
    Ok(h)
}

/// The local address packets to the database leave from (a UDP "connection" sends
/// nothing; it only picks the route).
async fn route_to(pg: &crate::state::postgres::Pg) -> Option<std::net::IpAddr> {
    let (host, port) = pg.server()?;
    let to = tokio::net::lookup_host((host.as_str(), port))
        .await
        .ok()?
        .next()?;
    let any: std::net::SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(any).await.ok()?;
    socket.connect(to).await.ok()?;
    Some(socket.local_addr().ok()?.ip())
}

pub fn run(args: Args) -> ExitCode {
    init_logging(args.log_format);
    let state = crate::state::dir_or_default(args.state.as_deref());
    if let Err(e) = crate::state::prepare_dir(&state) {
        eprintln!("error: cannot create state dir `{}`: {e}", state.display());
        return ExitCode::from(2);
    }
    let admin = AdminAuth::from_env(&state);
    let start = if let Some(url) = &args.policy_repo {
        let token = match git_token(args.git_token.as_deref()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                eprintln!("  help: export the variable, or set `MCPGATE_GIT_TOKEN`");
                return ExitCode::from(2);
            }
        };
        let src = GitSource {
            url: url.clone(),
            branch: args.branch.clone(),
            subdir: args.policy_path.trim_matches('/').to_owned(),
            token,
            user: args.git_user.clone(),
            ssh_key: args.ssh_key.clone(),
            ssh_passphrase: std::env::var("MCPGATE_GIT_SSH_PASSPHRASE").ok(),
        };
        Syncer::start_git(src, &state, admin)
    } else {
        match Syncer::start_dir(&args.policy, &state, admin) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        }
    };
    let Start {
        syncer,
        program,
        config,
        lock,
        responders,
    } = start;
    let listen_text = args
        .listen
        .clone()
        .unwrap_or_else(|| config.gateway.listen.clone());
    let Some(listen) = parse_listen(&listen_text) else {
        eprintln!("error: cannot parse listen address `{listen_text}`");
        eprintln!("  help: write it as IP:PORT, e.g. `127.0.0.1:8080`");
        return ExitCode::from(2);
    };
    let identity = match &config.identity {
        None => Authenticator::anonymous_only(),
        Some(cfg) => {
            // A relative `jwks_file` is read from the policy folder (the working directory
            // when following a repository).
            let base = if args.policy_repo.is_some() {
                PathBuf::from(".")
            } else {
                args.policy.clone()
            };
            match Authenticator::from_config(cfg, &state, &base) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: {e}");
                    eprintln!("  help: fix the `identity` section of mcpgate.yaml");
                    return ExitCode::from(2);
                }
            }
        }
    };
    // Servers that get signed assertions: the signing key comes from the vault.
    let assertions = if config.servers.values().any(|s| s.assertion.is_some()) {
        match crate::assertions::Assertions::open(&state, crate::session::now_secs()) {
            Ok(a) => Some(Arc::new(a)),
            Err(e) => {
                eprintln!("error: assertions: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    if config.identity.as_ref().is_some_and(|i| i.anonymous) && !listen.ip().is_loopback() {
        tracing::warn!(%listen, "`identity.anonymous` is on: callers without a token are served as `anonymous`");
    }
    if config.identity.is_none() && !listen.ip().is_loopback() {
        eprintln!("error: refusing to listen on `{listen}` without an `identity` section");
        eprintln!(
            "  help: every caller would be anonymous; listen on 127.0.0.1, or configure `identity` in mcpgate.yaml"
        );
        return ExitCode::from(2);
    }
    let sealer = match Sealer::load_or_create(&state) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: session key: {e}");
            return ExitCode::from(2);
        }
    };
    let secrets = match crate::vault::VaultSecrets::open(&state) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: vault: {e}");
            if let Some(help) = e.help() {
                eprintln!("  help: {help}");
            }
            return ExitCode::from(2);
        }
    };
    // In a fleet every record names its replica, so merged chains can be told apart.
    let replica = config
        .state
        .as_ref()
        .map(|s| crate::state::replica_name(Some(s)));
    let audit = match crate::audit::AuditLog::open_as(
        &config.audit.clone().unwrap_or_default(),
        &state,
        replica,
    ) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: audit log: {e}");
            eprintln!(
                "  help: fix the folder or its permissions; the gateway does not run without its audit log (set `audit: {{enabled: false}}` to run without one)"
            );
            return ExitCode::from(2);
        }
    };
    crate::busy_poll::set_budget(std::time::Duration::from_micros(
        config.gateway.busy_poll_us.min(10_000),
    ));
    if audit.is_some() && config.gateway.busy_poll_us > 0 {
        // Started now rather than by the first audited call.
        crate::keep_awake::prepare();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        match crate::telemetry::start(config.telemetry.as_ref()) {
            Ok(urls) => {
                for url in urls {
                    tracing::info!(%url, "exporting over OTLP/HTTP");
                }
            }
            Err(e) => {
                eprintln!("error: telemetry: {e}");
                eprintln!("  help: fix the `telemetry` section of mcpgate.yaml or the OTEL_* variables");
                return ExitCode::from(2);
            }
        }
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on `{listen}`: {e}");
                return ExitCode::from(2);
            }
        };
        let bound = listener.local_addr().unwrap_or(listen);
        let loaded = LoadedProgram::with_lock(program, lock.as_ref(), Some(&config))
            .with_responders(responders);
        let shared = match config
            .state
            .as_ref()
            .and_then(|s| Some((s, s.postgres.as_deref()?)))
        {
            Some((state, url)) => match shared_db(state, url, &secrets) {
                Ok(pg) => Some(pg),
                Err(e) => {
                    eprintln!("error: {e}");
                    eprintln!(
                        "  help: set `state.postgres` to `${{env:MCPGATE_PG_URL}}` holding `postgres://USER:PASSWORD@HOST:5432/DB` (`?sslmode=verify-full` for TLS; a private CA in `state.ca_file`), and check that the server answers"
                    );
                    return ExitCode::from(2);
                }
            },
            None => None,
        };
        // A fleet keeps responder pauses in the shared database, so every replica refuses
        // a paused principal.
        let pauses = match &shared {
            Some(pg) => crate::responders::Responders::shared(pg, &state),
            None => crate::responders::Responders::open(&state),
        };
        let pauses = match pauses {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: responders: {e}");
                return ExitCode::from(2);
            }
        };
        // `state.outage_grace`: how old a check may be and still serve during an outage.
        let grace = config
            .state
            .as_ref()
            .and_then(|s| s.outage_grace.as_deref())
            .and_then(|g| mcpgate_compiler::duration::parse(g).ok())
            .filter(|g| !g.is_zero());
        let served_tokens = |pg: &Arc<crate::state::postgres::Pg>| match grace {
            Some(g) => crate::identity::tokens::TokenStore::over(Box::new(
                crate::identity::outage::CachedTokens::new(
                    Box::new(crate::identity::postgres::PgTokens::new(pg.clone())),
                    g,
                ),
            )),
            None => postgres_tokens(pg),
        };
        let mut identity = match &shared {
            Some(pg) => identity.with_token_store(served_tokens(pg)),
            None => identity,
        };
        // People authenticated by the identity section may delegate to agents. A delegation
        // ends with the token it was made with, so it reads the same token table as the
        // gateway (the shared one in a fleet).
        let delegations = match &config.identity {
            None => None,
            Some(_) => {
                let opened = match &shared {
                    Some(pg) => Ok(match grace {
                        Some(g) => crate::delegation::Delegations::shared_with_grace(
                            pg,
                            served_tokens(pg),
                            g,
                        ),
                        None => crate::delegation::Delegations::shared(pg, postgres_tokens(pg)),
                    }),
                    None => crate::delegation::Delegations::open(&state),
                };
                match opened {
                    Ok(d) => {
                        let d = Arc::new(d);
                        identity.set_delegations(d.clone());
                        Some(d)
                    }
                    Err(e) => {
                        eprintln!("error: delegations: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
        };
        // A fleet keeps task owners in the shared database, so a task created through one
        // replica is reached by its owner through any other.
        let tasks: Arc<dyn crate::tasks::TaskStore> = match &shared {
            Some(pg) => Arc::new(crate::tasks::postgres::PgTasks::new(pg.clone())),
            None => match crate::tasks::SqliteTasks::open(&state) {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    eprintln!("error: task store: {e}");
                    return ExitCode::from(2);
                }
            },
        };
        // A fleet shares the tools a replica found changed since review.
        let held_pins = shared.as_ref().map(|pg| {
            Arc::new(crate::lock::fleet::FleetHolds::new(
                Box::new(crate::lock::fleet::PgHeld::new(pg.clone())),
                &crate::state::replica_name(config.state.as_ref()),
            ))
        });
        let redis = match shared_redis(config.state.as_ref(), &secrets) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: state.redis: {e}");
                eprintln!(
                    "  help: set `state.redis` to `${{env:MCPGATE_REDIS_URL}}` or `${{secret:NAME}}` holding `redis://HOST:PORT[/DB]` (`rediss://` for TLS; a private CA in `state.ca_file`)"
                );
                return ExitCode::from(2);
            }
        };
        let quotas: Arc<dyn crate::quota::QuotaStore> = match &redis {
            Some(r) => r.clone(),
            None => Arc::new(crate::quota::MemoryStore::new()),
        };
        let pauses = match &redis {
            Some(r) => pauses.with_counters(Arc::new(crate::responders::redis::RedisCounters::new(
                r.clone(),
            ))),
            None => pauses,
        };
        let handoff = match &shared {
            Some(pg) => match handoff(pg, config.state.as_ref(), bound, &sealer, &secrets).await {
                Ok(h) => Some(h),
                Err(e) => {
                    eprintln!("error: {e}");
                    eprintln!(
                        "  help: set `state.advertise` to this replica's URL as the other replicas reach it, e.g. `http://${{env:POD_IP}}:8080`"
                    );
                    return ExitCode::from(2);
                }
            },
            None => None,
        };
        let gw = match Gateway::new(&config, loaded, sealer, bound, &secrets) {
            Ok(g) => Arc::new(
                g.with_identity(identity)
                    .with_tasks(tasks)
                    .with_held_pins(held_pins)
                    .with_responders(pauses)
                    .with_delegations(delegations)
                    .with_assertions(assertions)
                    .with_quotas(quotas)
                    .with_handoff(handoff),
            ),
            Err(e) => {
                eprintln!("error: {e}");
                if e.contains("unknown secret `") {
                    eprintln!(
                        "  help: store it with `mcpgate secret set NAME` (same `--state`), then restart"
                    );
                }
                return ExitCode::from(2);
            }
        };
        if let Some(log) = &audit {
            if let Err(e) = crate::audit::record_start(log, gw.listen, &gw.program.load_full()).await {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            let _ = gw.audit.set(log.clone());
            gw.responders.set_audit(log.clone());
        }
        gw.identity.start(gw.shutdown.clone());
        gw.responders
            .spawn_sweep(crate::responders::SWEEP_EVERY, gw.shutdown.clone());
        if let Some(d) = &gw.delegations {
            gw.responders.set_delegations(d.clone());
        }
        let approvals = match &shared {
            Some(pg) => crate::approvals::Approvals::shared(
                pg,
                &config.approvals,
                &secrets,
                Box::new(crate::approvals::NoIdentity),
            ),
            None => crate::approvals::Approvals::open(
                &state,
                &config.approvals,
                &secrets,
                Box::new(crate::approvals::NoIdentity),
            ),
        };
        // Upstreams and the webhook hold what they need; the vault is not kept open.
        drop(secrets);
        match approvals {
            Ok(a) => {
                let a = Arc::new(a);
                a.on_step(refused_approvals_to_responders(&gw));
                a.spawn_watch(gw.shutdown.clone(), gw.audit.get().cloned());
                let _ = gw.approvals.set(a);
            }
            Err(e) => {
                eprintln!("error: approvals: {e}");
                return ExitCode::from(2);
            }
        }
        if config.console.enabled {
            let flow = match &config.console.oidc {
                None => None,
                Some(c) => {
                    let issuer = config
                        .identity
                        .as_ref()
                        .and_then(|i| i.oidc.as_ref())
                        .map(|o| o.issuer.clone());
                    let Some(issuer) = issuer else {
                        eprintln!("error: `console.oidc` signs in with the `identity.oidc` provider, and there is none");
                        eprintln!("  help: configure `identity.oidc`, or remove `console.oidc`");
                        return ExitCode::from(2);
                    };
                    match crate::console::oidc::Flow::new(c.clone(), &issuer) {
                        Ok(f) => Some(f),
                        Err(e) => {
                            eprintln!("error: console.oidc: {e}");
                            return ExitCode::from(2);
                        }
                    }
                }
            };
            // A fleet keeps console sign-ins in the shared database, their credentials
            // sealed under a key every replica derives from the shared `session.key`.
            let sessions = match &shared {
                Some(pg) => crate::console::auth::Sessions::over(Arc::new(
                    crate::console::sessions::postgres::PgSessions::new(
                        pg.clone(),
                        gw.sealer
                            .derive(crate::console::sessions::postgres::KEY_LABEL),
                    ),
                )),
                None => crate::console::auth::Sessions::default(),
            };
            let _ = gw
                .mounted
                .set(Arc::new(crate::console::Console::new(flow, sessions)));
        }
        syncer.attach(&gw);
        let _ = gw.policy.set(syncer.clone());
        if let Some(r) = &redis {
            super::serve_fanout::start(
                r,
                &crate::state::replica_name(config.state.as_ref()),
                &syncer,
                &gw.responders,
            );
        }
        if args.policy_repo.is_some() {
            syncer.spawn_poll(args.poll);
        } else if let Err(e) = watch::spawn(&args.policy, syncer.clone()) {
            tracing::warn!(error = %e, "cannot watch the policy folder; changes need a restart or `/admin/sync`");
        }
        {
            let loaded = gw.program.load();
            tracing::info!(
                rules = loaded.program.rules().len(),
                program = %loaded.hash,
                upstreams = ?gw.upstreams.keys().collect::<Vec<_>>(),
                "policy loaded"
            );
        }
        let stop = shutdown_signal();
        println!("listening on http://{bound}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        tracing::info!("listening on http://{bound}");
        serve(listener, gw, stop).await;
        if let Some(log) = &audit {
            log.close();
        }
        let _ = tokio::task::spawn_blocking(crate::telemetry::flush).await;
        ExitCode::SUCCESS
    })
}

/// Hands each refused approval to the gateway's responders, with the live program's
/// responders.
fn refused_approvals_to_responders(gw: &Arc<Gateway>) -> crate::approvals::StepListener {
    let gw = Arc::downgrade(gw);
    crate::approvals::StepListener(Box::new(move |step, a| {
        if step != crate::approvals::events::Step::Denied {
            return;
        }
        let Some(gw) = gw.upgrade() else { return };
        let loaded = gw.program.load();
        let tool = format!("{}.{}", a.server, a.tool);
        gw.responders.observe(
            &loaded.responders,
            &crate::responders::Event {
                kind: crate::responders::EventKind::ApprovalDenied,
                principal: &a.principal.id,
                session: &a.session,
                // An approval keeps the person, not the delegation id: `pause: delegation`
                // and `revoke: delegation` have nothing to act on here.
                delegation: None,
                tool: Some(&tool),
            },
        );
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_intervals_parse_with_units() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert!(parse_duration("1ms").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
