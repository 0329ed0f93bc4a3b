//! The mcpgate gateway: MCP transports, sessions, decisions, and the `mcpgate` command line.

pub mod approvals;
pub mod audit;
pub mod cli;
pub mod demo;
pub mod gateway;
pub mod git;
pub mod gitops;
pub mod identity;
pub mod jsonrpc;
pub mod lock;
pub mod mcp_headers;
pub mod quota;
pub mod session;
pub mod sse;
pub mod state;
pub mod upstream;
pub mod vault;
