//! `mcpgate.yaml`: the gateway's configuration, kept in the policy repository.
//! It names upstream servers and gateway settings; secrets appear only as references
//! (`${secret:NAME}`, `${env:NAME}`), never as values.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole `mcpgate.yaml` file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Upstream MCP servers by name (`[a-z0-9_-]+`); the name is what policies call `server`.
    #[serde(default)]
    pub servers: BTreeMap<String, ServerConfig>,
    /// Client-facing settings of `mcpgate serve`.
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// How callers are identified. Absent: every caller is `anonymous`, and the gateway
    /// refuses to listen on a non-loopback address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<IdentityConfig>,
    /// The audit log: where it is written, how durably, when files rotate and
    /// checkpoints are signed. Absent: the log is on, in the state dir's `audit/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditConfig>,
    /// Calls held by `approve` rules: how long they wait, and who is told.
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// The operator's web console under `/console` (on by default).
    #[serde(default)]
    pub console: ConsoleConfig,
    /// OpenTelemetry traces and metrics over OTLP/HTTP. Absent: they are exported only when
    /// the standard `OTEL_EXPORTER_OTLP_*ENDPOINT` variables are set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<TelemetryConfig>,
    /// State shared by the replicas of a fleet. Absent: every count lives in the replica
    /// (the embedded default, right for one gateway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<StateConfig>,
}

/// The operator's web console (see `docs/console.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// `false`: `/console` answers 404.
    pub enabled: bool,
    /// Sign-in with the OIDC provider of `identity.oidc` (authorization code flow with
    /// PKCE), beside gateway tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oidc: Option<ConsoleOidcConfig>,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            oidc: None,
        }
    }
}

/// The console as an OIDC client of the `identity.oidc` provider: a public client (PKCE,
/// no secret). Its ID tokens are checked as bearer tokens are, so `client_id` must be one of
/// `identity.oidc.audience`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleOidcConfig {
    /// The client id registered with the provider.
    pub client_id: String,
    /// Where the provider sends the browser back:
    /// `https://gateway.example.com/console/login/callback`. Default: that path on the
    /// request's `Host`, over `http` for a loopback host and `https` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// Scopes asked for (default `openid email profile`).
    #[serde(default = "default_console_scopes")]
    pub scopes: Vec<String>,
}

fn default_console_scopes() -> Vec<String> {
    ["openid", "email", "profile"]
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// OpenTelemetry export (see `docs/telemetry.md`). The standard `OTEL_*` variables fill in
/// what this section leaves out, and override nothing it sets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// `false`: no export, whatever the environment says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The OTLP/HTTP base URL (`http://collector:4318`); traces go to `/v1/traces` and
    /// metrics to `/v1/metrics` under it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `service.name` of what is exported (default `mcpgate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

/// `state:`: stores shared by several gateway replicas (see `docs/fleet.md`). Read at start;
/// a change takes effect on restart.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// The Redis server holding the quota counts of `limit` rules, as a reference
    /// (`${env:MCPGATE_REDIS_URL}` or `${secret:NAME}`) or a URL without a password
    /// (`redis://host:6379/0`). Absent: counts are kept in each replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub redis: Option<String>,
    /// The PostgreSQL database holding gateway tokens, their revocations and the
    /// approvals of held calls, as a
    /// reference (`${env:MCPGATE_PG_URL}`) or a URL without a password
    /// (`postgres://mcpgate@db:5432/mcpgate`). Absent: tokens are in each state dir.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub postgres: Option<String>,
    /// This replica's name in `/status` and the logs (default: the host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub replica_id: Option<String>,
    /// A PEM file of CA certificates trusted for TLS to the stores (`rediss://`,
    /// `sslmode=require` and stronger) besides the public and platform roots (a private
    /// CA): a path on the gateway's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub ca_file: Option<String>,
    /// This replica's own URL as the other replicas reach it (`http://10.0.3.7:8080`), or a
    /// reference to one (`http://${env:POD_IP}:8080`): where a retry of a call parked here
    /// is forwarded when it lands elsewhere. Default: the listen address, or the address this
    /// replica reaches `state.postgres` from when it listens on every interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub advertise: Option<String>,
    /// How old a token or delegation check may be and still be served from memory while
    /// `postgres` does not answer (`30s`, `2m`). Absent: none is; every check needs the
    /// database (fail closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub outage_grace: Option<String>,
}

impl std::fmt::Debug for StateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password once references are resolved.
        f.debug_struct("StateConfig")
            .field("redis", &self.redis.as_deref().map(redacted_url))
            .field("postgres", &self.postgres.as_deref().map(redacted_url))
            .field("replica_id", &self.replica_id)
            .field("ca_file", &self.ca_file)
            .field("advertise", &self.advertise)
            .field("outage_grace", &self.outage_grace)
            .finish()
    }
}

/// One upstream: either `url` (Streamable HTTP, or legacy HTTP+SSE with `transport: sse`)
/// or `command` (a local stdio process). `Debug` shows header and env names, not values.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Endpoint of a Streamable HTTP (or HTTP+SSE) server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub url: Option<String>,
    /// Headers sent upstream, e.g. `Authorization: Bearer ${secret:github}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `streamable-http` (default for `url`) or `sse` (the 2024-11-05 HTTP+SSE transport).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Transport")]
    pub transport: Option<Transport>,
    /// Program of a stdio server, spawned once per client session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory of a stdio server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub cwd: Option<String>,
    /// Per-request timeout upstream, in seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub timeout_secs: Option<u64>,
    /// The same as a duration (`90s`, `2m`), rounded up to whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: Option<String>,
    /// Pinned tool definitions (`mcpgate.lock`): `off`, `warn` (log and count tools that
    /// changed since review) or `enforce` (hold them). Default: `enforce` when the lock pins
    /// this server, else `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "LockMode")]
    pub lock: Option<LockMode>,
    /// Refuse calls whose arguments do not satisfy the tool's pinned input schema.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub validate_arguments: bool,
    /// The protocol era spoken to this server: `auto` (default: probe with
    /// `server/discover`, fall back to `initialize`), `legacy` (`initialize` only, no probe)
    /// or `2026-07-28` (stateless only: a server that does not answer the probe with it is
    /// an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Protocol")]
    pub protocol: Option<Protocol>,
    /// Under `protocol: auto`, how long to wait for the answer to the `server/discover`
    /// probe, in seconds (default 10 for `url` servers, 3 for `command` servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "u64")]
    pub probe_timeout_secs: Option<u64>,
    /// The same as a duration (`5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub probe_timeout: Option<String>,
    /// A PEM file of CA certificates trusted for this `https` server besides the platform's
    /// roots (a company CA): a path on the gateway's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub ca_file: Option<String>,
    /// Attach a signed assertion (a short-lived EdDSA JWT naming the caller, the tool and a
    /// hash of the arguments) to every allowed call sent to this `url` server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion: Option<AssertionConfig>,
}

/// The signed assertion sent with each allowed call to one server (docs/assertions.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssertionConfig {
    /// The HTTP header that carries it (default `X-Mcpgate-Assertion`).
    #[serde(default = "default_assertion_header")]
    pub header: String,
    /// Its lifetime, a duration (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub ttl: Option<String>,
    /// Its `aud` claim (default: the server's `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

/// The header an assertion rides in unless the config names another.
pub const DEFAULT_ASSERTION_HEADER: &str = "X-Mcpgate-Assertion";
/// An assertion's lifetime unless the config gives one.
pub const DEFAULT_ASSERTION_TTL_SECS: u64 = 60;

fn default_assertion_header() -> String {
    DEFAULT_ASSERTION_HEADER.to_owned()
}

impl AssertionConfig {
    /// The lifetime in whole seconds (at least one).
    pub fn ttl_secs(&self) -> u64 {
        secs_of(self.ttl.as_ref())
            .unwrap_or(DEFAULT_ASSERTION_TTL_SECS)
            .max(1)
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header and env values may hold credentials (in clear by mistake, or resolved).
        let redacted = |m: &BTreeMap<String, String>| {
            m.keys()
                .map(|k| (k.clone(), "<redacted>"))
                .collect::<BTreeMap<_, _>>()
        };
        f.debug_struct("ServerConfig")
            .field("url", &self.url.as_deref().map(redacted_url))
            .field("headers", &redacted(&self.headers))
            .field("transport", &self.transport)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &redacted(&self.env))
            .field("cwd", &self.cwd)
            .field("timeout_secs", &self.timeout_secs)
            .field("timeout", &self.timeout)
            .field("lock", &self.lock)
            .field("validate_arguments", &self.validate_arguments)
            .field("protocol", &self.protocol)
            .field("probe_timeout_secs", &self.probe_timeout_secs)
            .field("probe_timeout", &self.probe_timeout)
            .field("ca_file", &self.ca_file)
            .field("assertion", &self.assertion)
            .finish()
    }
}

/// `url` without user info or query, which may carry credentials.
fn redacted_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, _)) => (base, "?<redacted>"),
        None => (url, ""),
    };
    let (scheme, rest) = base.split_once("://").unwrap_or(("", base));
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let sep = if scheme.is_empty() { "" } else { "://" };
    format!("{scheme}{sep}{host}{path}{query}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    StreamableHttp,
    Sse,
}

/// The protocol era the gateway speaks to a server: `auto` probes with `server/discover`
/// and takes a server that does not answer it for legacy; `legacy` is the `initialize`
/// handshake and sessions (2024-11-05 to 2025-11-25); `2026-07-28` the stateless era.
// No doc comments on the variants: they would make the schema a `oneOf` whose errors say
// less than an `enum`'s.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Protocol {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "legacy")]
    Legacy,
    #[serde(rename = "2026-07-28")]
    Stateless20260728,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Auto => "auto",
            Protocol::Legacy => "legacy",
            Protocol::Stateless20260728 => "2026-07-28",
        }
    }
}

/// How a server's pinned definitions apply at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Off,
    Warn,
    Enforce,
}

impl LockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Off => "off",
            LockMode::Warn => "warn",
            LockMode::Enforce => "enforce",
        }
    }
}

/// Client-facing settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Address to listen on when `--listen` is not given.
    pub listen: String,
    /// Separator between server and tool names on the aggregated `/mcp` endpoint.
    pub namespace_separator: String,
    /// `Origin` values accepted (a request with another `Origin` gets 403). Loopback
    /// origins are always accepted when listening on loopback.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted (others get 421). Empty: the listen address and `localhost`.
    pub allowed_hosts: Vec<String>,
    /// Largest accepted request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Sessions idle longer than this are ended, in seconds.
    pub session_idle_secs: u64,
    /// The same as a duration (`30m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub session_idle: Option<String>,
    /// Most stdio server processes running at once, all sessions together.
    pub max_stdio_processes: usize,
    /// Who may read `/status` and `/metrics`: `open` (anyone who reaches the listener) or
    /// `authenticated` (a valid gateway token or OIDC JWT). Default: `authenticated` when
    /// the `identity` section is present, else `open`.
    pub status_access: Option<StatusAccess>,
    /// With `authenticated` status access, only members of one of these groups (from the
    /// credential or `principals.yaml`) may read them; empty: any authenticated caller.
    pub status_groups: Vec<String>,
    /// While at most one call is in flight, how long (microseconds) a thread waiting for
    /// an answer that usually comes sooner polls for it before sleeping: spares the wake-up
    /// of an idle core, which on virtual machines costs tens of microseconds. 0: never.
    pub busy_poll_us: u64,
}

/// Who may read the gateway's `/status` and `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusAccess {
    /// Anyone who reaches the listener.
    Open,
    /// Callers with a valid gateway token or OIDC JWT.
    Authenticated,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: "127.0.0.1:8080".into(),
            namespace_separator: "__".into(),
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            max_body_bytes: 4 * 1024 * 1024,
            session_idle_secs: 1800,
            session_idle: None,
            max_stdio_processes: 64,
            status_access: None,
            status_groups: Vec::new(),
            busy_poll_us: 100,
        }
    }
}

/// The audit log (`audit:` in `mcpgate.yaml`); see `docs/audit.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Write the audit log. `false` turns it off (the gateway then records no decisions).
    pub enabled: bool,
    /// Folder of the log files; relative paths are taken from the working directory.
    /// Default: `audit/` inside the state dir.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub path: Option<String>,
    /// `batched` (default): records are group-committed, one write and one fdatasync per
    /// batch, and each call waits for its batch. `strict`: one write and one fdatasync per
    /// record. Either way a call is forwarded only once its record is on disk. `written`:
    /// a call is forwarded once its record is written to the file (a killed gateway loses
    /// nothing), and the file is synced every `sync_ms` (a power loss can lose that much).
    pub durability: Durability,
    /// Longest a written record waits for its fdatasync: the sync timer of `written`, and of
    /// the records no call waits for (outcomes, lists) under `batched`.
    pub sync_ms: u64,
    /// Start a new log file when the current one reaches this many bytes.
    pub rotate_bytes: u64,
    /// Start a new log file when the current one is this many seconds old.
    pub rotate_secs: u64,
    /// The same as a duration (`1d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub rotate: Option<String>,
    /// Sign a checkpoint after this many records...
    pub checkpoint_records: u64,
    /// ...or this many seconds after the last one, whichever comes first.
    pub checkpoint_secs: u64,
    /// The same as a duration (`1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub checkpoint: Option<String>,
    /// Also append every record, as a JSON line, to this file (for log shippers);
    /// `stdout` writes to standard output.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub export: Option<String>,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            path: None,
            durability: Durability::Batched,
            sync_ms: 50,
            rotate_bytes: 64 * 1024 * 1024,
            rotate_secs: 24 * 3600,
            rotate: None,
            checkpoint_records: 1000,
            checkpoint_secs: 60,
            checkpoint: None,
            export: None,
        }
    }
}

/// How the audit log reaches the disk before a call is forwarded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// One write and fdatasync per record.
    Strict,
    /// One write and fdatasync per batch of waiting records (group commit).
    #[default]
    Batched,
    /// Written to the file before the call is forwarded, synced on a timer.
    Written,
}

/// `identity:`: how the gateway knows who calls. Present (even empty): every request to an
/// MCP endpoint must carry a bearer token, a gateway token or an OIDC JWT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// Accept tokens issued by `mcpgate token issue` (default true).
    #[serde(default = "default_true")]
    pub tokens: bool,
    /// Let callers without a token in as the principal `anonymous` (default false).
    #[serde(default)]
    pub anonymous: bool,
    /// The protected resource's URL (`https://mcp.example.com`), named in 401 answers and
    /// in `/.well-known/oauth-protected-resource`. Default: `http://` and the request's Host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub resource: Option<String>,
    /// Accept JWTs from an OpenID Connect provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "OidcConfig")]
    pub oidc: Option<OidcConfig>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            tokens: true,
            anonymous: false,
            resource: None,
            oidc: None,
        }
    }
}

fn default_true() -> bool {
    true
}

/// `identity.oidc`: JWT bearer tokens signed by an identity provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The `iss` every token must carry, e.g. `https://idp.example.com`; also named as the
    /// authorization server in the protected-resource metadata.
    pub issuer: String,
    /// The `aud` a token must carry (one of them): the gateway's resource URL or the client
    /// id the provider puts there.
    pub audience: OneOrMany,
    /// The provider's keys: a JWKS file (read at start) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub jwks_file: Option<String>,
    /// ... or an `https://` URL, fetched at start, on an unknown `kid` (at most once a
    /// minute) and every `jwks_refresh_secs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub jwks_url: Option<String>,
    /// Signature algorithms accepted (default `[RS256, ES256]`). HMAC and `none` cannot be
    /// named: the gateway holds no shared secret.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<JwtAlgorithm>,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (default 60).
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// The same as a duration (`1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub leeway: Option<String>,
    /// How often a `jwks_url` is fetched again, in seconds (default 3600).
    #[serde(default = "default_refresh")]
    pub jwks_refresh_secs: u64,
    /// The same as a duration (`1h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub jwks_refresh: Option<String>,
    /// The shortest time between two fetches of a `jwks_url` caused by tokens naming an
    /// unknown `kid`, in seconds (default 60): bounds what a flood of made-up tokens costs
    /// the provider, and how long a newly published key may wait.
    #[serde(default = "default_min_refetch")]
    pub jwks_min_refetch_secs: u64,
    /// The same as a duration (`1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub jwks_min_refetch: Option<String>,
    /// Which claims make the principal.
    #[serde(default)]
    pub claims: ClaimMapping,
}

/// A string or a list of strings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values, in order.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

fn default_algorithms() -> Vec<JwtAlgorithm> {
    vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256]
}

fn default_leeway() -> u64 {
    60
}

fn default_refresh() -> u64 {
    3600
}

fn default_min_refetch() -> u64 {
    60
}

/// A JWS algorithm with a public key.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum JwtAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// `identity.oidc.claims`: claim names read into the principal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    /// The claim that is `principal.id` (default `sub`; `email` is common).
    pub id: String,
    /// The claim that lists `principal.groups` (default `groups`; absent claim: none).
    pub groups: String,
    /// `principal.kind` of every OIDC caller: `human`, `agent` or `service` (default `human`).
    pub kind: TokenKind,
    /// `principal.attrs.NAME` from a claim: `{ team: team, agent: azp }`.
    pub attrs: BTreeMap<String, String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            id: "sub".into(),
            groups: "groups".into(),
            kind: TokenKind::Human,
            attrs: BTreeMap::new(),
        }
    }
}

/// The kinds a credential can name (`anonymous` is only for callers without one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Human,
    Agent,
    Service,
}

impl From<TokenKind> for crate::PrincipalKind {
    fn from(k: TokenKind) -> crate::PrincipalKind {
        match k {
            TokenKind::Human => crate::PrincipalKind::Human,
            TokenKind::Agent => crate::PrincipalKind::Agent,
            TokenKind::Service => crate::PrincipalKind::Service,
        }
    }
}

/// The keys that take a number of seconds (`timeout_secs`) and their duration-valued
/// siblings (`timeout: 90s`), by section: what `mcpgate check` reports when both are given.
pub const DURATION_KEYS: &[(&str, &str)] = &[
    ("timeout", "timeout_secs"),
    ("probe_timeout", "probe_timeout_secs"),
    ("session_idle", "session_idle_secs"),
    ("rotate", "rotate_secs"),
    ("checkpoint", "checkpoint_secs"),
    ("leeway", "leeway_secs"),
    ("jwks_refresh", "jwks_refresh_secs"),
    ("jwks_min_refetch", "jwks_min_refetch_secs"),
];

/// Whole seconds of a duration-valued key, rounded up; `None` when absent or unreadable
/// (the schema and `mcpgate check` refuse those first).
fn secs_of(text: Option<&String>) -> Option<u64> {
    let d = crate::duration::parse(text?).ok()?;
    Some(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

impl Config {
    /// Moves each duration-valued key (`timeout: 90s`) into its `*_secs` sibling, which is
    /// what the gateway reads.
    pub fn fold_durations(&mut self) {
        for server in self.servers.values_mut() {
            if let Some(s) = secs_of(server.timeout.as_ref()) {
                server.timeout_secs = Some(s);
            }
            if let Some(s) = secs_of(server.probe_timeout.as_ref()) {
                server.probe_timeout_secs = Some(s);
            }
        }
        if let Some(s) = secs_of(self.gateway.session_idle.as_ref()) {
            self.gateway.session_idle_secs = s;
        }
        if let Some(audit) = self.audit.as_mut() {
            if let Some(s) = secs_of(audit.rotate.as_ref()) {
                audit.rotate_secs = s;
            }
            if let Some(s) = secs_of(audit.checkpoint.as_ref()) {
                audit.checkpoint_secs = s;
            }
        }
        if let Some(oidc) = self.identity.as_mut().and_then(|i| i.oidc.as_mut()) {
            if let Some(s) = secs_of(oidc.leeway.as_ref()) {
                oidc.leeway_secs = s;
            }
            if let Some(s) = secs_of(oidc.jwks_refresh.as_ref()) {
                oidc.jwks_refresh_secs = s;
            }
            if let Some(s) = secs_of(oidc.jwks_min_refetch.as_ref()) {
                oidc.jwks_min_refetch_secs = s;
            }
        }
    }
}

/// The duration syntax of config values (see [`crate::duration`]).
pub const DURATION_PATTERN: &str = crate::duration::PATTERN;

/// Reads a duration in the syntax of [`crate::duration`]; `None` for anything else.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    crate::duration::parse(text).ok()
}

/// Calls held by `approve` rules (see `docs/approvals.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// How long a held call waits for a decision before it is denied (`90s`, `15m`, `1h`).
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub timeout: String,
    /// How long an approval whose caller had gone (a closed connection, a gateway restart)
    /// lets the same caller's retry of the same call through, once.
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub grant: String,
    /// Announces each pending approval to a chat or paging tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookConfig>,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            timeout: "15m".into(),
            grant: "15m".into(),
            webhook: None,
        }
    }
}

impl ApprovalsConfig {
    /// The held-call timeout (the default, 15 minutes, if the text does not parse).
    pub fn timeout(&self) -> std::time::Duration {
        parse_duration(&self.timeout).unwrap_or(std::time::Duration::from_secs(900))
    }

    /// How long an undelivered approval stays usable by a retry.
    pub fn grant(&self) -> std::time::Duration {
        parse_duration(&self.grant).unwrap_or(std::time::Duration::from_secs(900))
    }
}

/// Where pending approvals are announced: a JSON `POST` signed with HMAC-SHA256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The receiver's URL (`https://...`; `http://` for loopback receivers).
    pub url: String,
    /// The signing key, as a reference: `${secret:NAME}` or `${env:NAME}`. The body's
    /// HMAC-SHA256 under it is sent as `X-Mcpgate-Signature: sha256=HEX`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_with_their_unit() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        // One syntax with the command line and the `*_secs` keys: a bare number is seconds.
        assert_eq!(parse_duration("15"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("1h 30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("15 minutes"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("99999999999999999999d"), None);
        let c = ApprovalsConfig::default();
        assert_eq!(c.timeout(), Duration::from_secs(900));
        assert_eq!(c.grant(), Duration::from_secs(900));
    }
}
