//! The mcpgate gateway: MCP transports, sessions, decisions, and the `mcpgate` command line.

pub mod cli;
pub mod upstream;
