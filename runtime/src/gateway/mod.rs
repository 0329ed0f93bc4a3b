//! The client-facing gateway: Streamable HTTP endpoints (`/mcp/{server}` and the aggregated
//! `/mcp`), sessions, a decision on every request that names a tool, prompt or resource,
//! and a transparent relay for everything else. The operator's HTTP faces (`/status`,
//! `/metrics`, `/admin/sync`, `/approvals`) are served here too.
//!
//! May use: everything below it (`session`, `upstream`, the services, `decision`, the
//! bottom layer); only `cli` uses it.

pub mod aggregate;
pub mod approvers;
pub mod assertion;
pub mod decide;
pub mod delegations;
pub mod dispatch;
pub mod handoff;
pub mod hold;
pub mod http;
pub mod input_bridge;
pub mod lock_gate;
pub mod modern;
pub mod pages;
pub mod redact;
pub mod relay;
pub mod resource_updates;
pub mod server;
pub mod sessions;
pub mod status;
pub mod status_access;
pub mod tasks;

pub use crate::decision::LoadedProgram;
pub use crate::protocol_version as version;
use crate::session::seal::Sealer;
use crate::session::{Endpoint, Store};
pub use crate::upstream::EnvSecrets;
use crate::upstream::{SecretResolver, Upstream};
use arc_swap::ArcSwap;
use mcpgate_compiler::Program;
use mcpgate_compiler::config::{Config, GatewayConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Sealed session ids older than this are refused (the client re-initializes).
pub const SESSION_MAX_AGE_SECS: u64 = 24 * 3600;
/// Most live sessions on one replica; `initialize` beyond it gets 503.
pub const MAX_SESSIONS: usize = 10_000;
/// Upstream request timeout when the server config sets none.
pub const DEFAULT_UPSTREAM_TIMEOUT_SECS: u64 = 60;

/// Everything one gateway process shares across connections.
#[derive(Debug)]
pub struct Gateway {
    /// The live program: load it once per request (`load_full`), never hold a guard across
    /// an `.await`.
    pub program: ArcSwap<LoadedProgram>,
    /// Quota counts, kept by rule id across program swaps.
    pub quotas: Arc<dyn crate::quota::QuotaStore>,
    pub config: GatewayConfig,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    timeouts: BTreeMap<String, Duration>,
    pub sealer: Sealer,
    pub sessions: Store,
    /// The address actually bound.
    pub listen: SocketAddr,
    /// Cancelled on shutdown: long-lived streams end.
    pub shutdown: CancellationToken,
    /// The policy source follower (`/admin/sync`, the policy part of `/status`).
    pub policy: std::sync::OnceLock<Arc<crate::gitops::Syncer>>,
    /// The audit log; unset: decisions are not recorded.
    pub audit: std::sync::OnceLock<Arc<crate::audit::AuditLog>>,
    /// Checks every request's credential (anonymous-only without an `identity` section).
    pub identity: crate::identity::Authenticator,
    /// Held calls (`approve` rules); unset, an `approve` verdict answers denied.
    pub approvals: std::sync::OnceLock<Arc<crate::approvals::Approvals>>,
    /// The stateless era's state: bridge sessions, parked multi round-trip calls.
    pub modern: modern::State,
    /// Servers whose allowed calls carry a signed assertion, and how.
    pub assertion_settings: BTreeMap<String, assertion::Setting>,
    /// Signs assertions and serves `/.well-known/jwks.json`; set when a server asks for
    /// assertions.
    pub assertions: Option<Arc<crate::assertions::Assertions>>,
    /// Delegations to agents (`POST /delegations`); unset without an `identity` section.
    pub delegations: Option<Arc<crate::delegation::Delegations>>,
    /// Which principal created which upstream task (in memory unless [`Gateway::with_tasks`]).
    pub tasks: Arc<dyn crate::tasks::TaskStore>,
    /// The held tools a fleet shares (`state.postgres`); unset, each replica holds only
    /// what it lists itself.
    pub held_pins: Option<Arc<crate::lock::fleet::FleetHolds>>,
    /// Counts the decision stream for `responders.yaml` and keeps the pauses (in memory
    /// unless [`Gateway::with_responders`]).
    pub responders: Arc<crate::responders::Responders>,
    /// Another HTTP face on the gateway's port (the web console), set by `serve`.
    pub mounted: std::sync::OnceLock<Arc<dyn http::Mounted>>,
    /// This replica's name (`state.replica_id`, else the host name), in `/status`.
    pub replica: String,
    /// In a fleet (`state.postgres`): where parked calls are recorded, and how retries
    /// reach the replica holding their call.
    pub handoff: Option<Arc<handoff::Handoff>>,
}

impl Gateway {
    /// Builds the gateway from a checked config and a compiled program.
    ///
    /// # Errors
    /// When an upstream's config cannot be used (the message names the server).
    pub fn new(
        config: &Config,
        program: impl Into<LoadedProgram>,
        sealer: Sealer,
        listen: SocketAddr,
        secrets: &dyn SecretResolver,
    ) -> Result<Gateway, String> {
        let mut upstreams = BTreeMap::new();
        let mut timeouts = BTreeMap::new();
        for (name, server) in &config.servers {
            let up =
                Upstream::from_config(name, server, &config.gateway, secrets).map_err(|e| {
                    // Upstream errors already name the server.
                    if e.starts_with("server `") {
                        e
                    } else {
                        format!("server `{name}`: {e}")
                    }
                })?;
            upstreams.insert(name.clone(), Arc::new(up));
            let secs = server.timeout_secs.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_SECS);
            timeouts.insert(name.clone(), Duration::from_secs(secs.max(1)));
        }
        Ok(Gateway {
            program: ArcSwap::from_pointee(program.into()),
            quotas: Arc::new(crate::quota::MemoryStore::new()),
            config: config.gateway.clone(),
            upstreams,
            timeouts,
            sealer,
            sessions: Store::default(),
            listen,
            shutdown: CancellationToken::new(),
            policy: std::sync::OnceLock::new(),
            audit: std::sync::OnceLock::new(),
            identity: crate::identity::Authenticator::anonymous_only(),
            approvals: std::sync::OnceLock::new(),
            modern: modern::State::default(),
            assertion_settings: assertion::settings(config)?,
            assertions: None,
            delegations: None,
            tasks: Arc::new(
                crate::tasks::SqliteTasks::in_memory().map_err(|e| format!("task store: {e}"))?,
            ),
            held_pins: None,
            responders: Arc::new(crate::responders::Responders::in_memory()),
            mounted: std::sync::OnceLock::new(),
            replica: crate::state::replica_name(config.state.as_ref()),
            handoff: None,
        })
    }

    /// Sets how callers are authenticated (from the `identity` section).
    #[must_use]
    pub fn with_identity(mut self, identity: crate::identity::Authenticator) -> Gateway {
        self.identity = identity;
        self
    }

    /// Accepts delegations (`POST /delegations`) kept by `delegations`.
    #[must_use]
    pub fn with_delegations(
        mut self,
        delegations: Option<Arc<crate::delegation::Delegations>>,
    ) -> Gateway {
        self.delegations = delegations;
        self
    }

    /// Signs the assertions of the servers that ask for them with `assertions`.
    #[must_use]
    pub fn with_assertions(
        mut self,
        assertions: Option<Arc<crate::assertions::Assertions>>,
    ) -> Gateway {
        self.assertions = assertions;
        self
    }

    /// Records parked calls for the other replicas of a fleet and forwards retries to the
    /// replica holding their call.
    #[must_use]
    pub fn with_handoff(mut self, handoff: Option<handoff::Handoff>) -> Gateway {
        self.handoff = handoff.map(Arc::new);
        self
    }

    /// Keeps quota counts in `store` (Redis for a fleet) instead of this process.
    #[must_use]
    pub fn with_quotas(mut self, store: Arc<dyn crate::quota::QuotaStore>) -> Gateway {
        self.quotas = store;
        self
    }

    /// Keeps task owners in `store` (the state dir's, or a fleet's PostgreSQL).
    #[must_use]
    pub fn with_tasks(mut self, store: Arc<dyn crate::tasks::TaskStore>) -> Gateway {
        self.tasks = store;
        self
    }

    /// Shares held tools with the other replicas through `holds`.
    #[must_use]
    pub fn with_held_pins(mut self, holds: Option<Arc<crate::lock::fleet::FleetHolds>>) -> Gateway {
        self.held_pins = holds;
        self
    }

    /// Keeps pauses in `responders` (the state dir's database, so a restart keeps them).
    #[must_use]
    pub fn with_responders(mut self, responders: crate::responders::Responders) -> Gateway {
        self.responders = Arc::new(responders);
        self
    }

    /// How long to wait for the next message from `server` before giving up on a request.
    /// A little over the upstream's own timeout, so the upstream reports first.
    pub fn timeout(&self, server: &str) -> Duration {
        self.timeouts
            .get(server)
            .copied()
            .unwrap_or(Duration::from_secs(DEFAULT_UPSTREAM_TIMEOUT_SECS))
            + Duration::from_secs(5)
    }

    /// The endpoint a path names, if any.
    pub fn endpoint(&self, path: &str) -> Option<Endpoint> {
        let path = path.strip_suffix('/').unwrap_or(path);
        if path == "/mcp" {
            return Some(Endpoint::Aggregate);
        }
        let name = path.strip_prefix("/mcp/")?;
        self.upstreams
            .contains_key(name)
            .then(|| Endpoint::Server(name.to_owned()))
    }

    /// Replaces the live program (policy reload).
    pub fn swap_program(&self, program: Program) {
        self.swap(LoadedProgram::new(program));
    }

    /// Replaces the live program and its pins together (policy reload). Limits keep their
    /// counts by rule id across the swap (the counts live in [`Gateway::quotas`]).
    pub fn swap(&self, loaded: LoadedProgram) {
        self.program.store(Arc::new(loaded));
    }
}

impl crate::gitops::ProgramSink for Gateway {
    fn swap(&self, loaded: LoadedProgram) {
        Gateway::swap(self, loaded);
    }
}
