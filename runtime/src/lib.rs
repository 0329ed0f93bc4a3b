//! The mcpgate gateway: MCP transports, sessions, decisions, and the `mcpgate` command line.
//!
//! The modules form layers; every dependency points down (checked by
//! `tests/tests/layering.rs`, drawn in `docs/architecture.md`):
//!
//! ```text
//! cli                                   the `mcpgate` command
//! gateway console                       client endpoints, dispatch, relay, era bridging;
//!                                       the operator's web console (mounted on the gateway)
//! session upstream                      client sessions; connections to MCP servers
//! audit approvals quota identity vault lock gitops responders     services
//! decision                              the loaded program, the request, the verdict
//! jsonrpc sse mcp_headers protocol_version http_client http_proxy state git clock metrics
//! signature demo telemetry              wire formats, storage, small values, trace export
//! ```

// The command line.
pub mod cli;
// The client-facing gateway, and the web console it serves.
pub mod console;
pub mod gateway;
// Client sessions and upstream connections.
pub mod session;
pub mod upstream;
// Services: each owns one concern; none imports `gateway`, `console` or `cli`.
pub mod approvals;
pub mod assertions;
pub mod audit;
pub mod delegation;
pub mod gitops;
pub mod identity;
pub mod lock;
pub mod parked;
pub mod quota;
pub mod responders;
pub mod tasks;
pub mod vault;
// The decision core.
pub mod decision;
// Wire formats, storage and small values.
pub mod busy_poll;
pub mod clock;
pub mod demo;
pub mod git;
pub mod http_client;
pub mod http_proxy;
pub mod in_place;
pub mod jsonrpc;
pub mod keep_awake;
pub mod mcp_headers;
pub mod metrics;
pub mod protocol_version;
pub mod signature;
pub mod sse;
pub mod state;
pub mod telemetry;
