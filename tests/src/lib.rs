//! End-to-end test support: runs the real `mcpgate` binary against real MCP clients and
//! servers (the Python SDK, the npm reference servers, the Inspector, the conformance suite).
//!
//! - [`paths`] finds the binary and the installed peers (`scripts/install-peers`).
//! - [`repo::PolicyRepo`] writes a policy repository into a temporary folder.
//! - [`gateway::Gateway`] runs `mcpgate serve` on `127.0.0.1:0` and stops it on drop.
//! - [`peers`] starts MCP servers and drives the Python client, the Inspector and the
//!   conformance suite.
//! - [`http`] is a raw HTTP/1.1 client for requests no well-behaved client would send.
//! - [`cli`] runs other `mcpgate` subcommands; [`audit_log`] reads the audit records.
//! - [`console`] signs in to the web console over plain HTTP.
//! - [`webhook`] receives the gateway's signed webhook posts.
//! - [`stores`] runs the shared stores of a fleet (Redis, PostgreSQL) for the fleet tests;
//!   [`certs`] makes the private CA and certificates of TLS peers and stores.
//!
//! Everything is bounded: each process has a deadline, and a missing prerequisite fails the
//! test with a message saying how to install it, never skips it.

// A test harness reports failure by panicking, with a message that says what went wrong.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod audit_log;
pub mod certs;
pub mod cli;
pub mod console;
pub mod demo;
pub mod gateway;
pub mod http;
pub mod paths;
pub mod peers;
pub mod process;
pub mod repo;
pub mod stores;
pub mod tasks;
pub mod walkthrough;
pub mod webhook;

pub use gateway::Gateway;
pub use repo::PolicyRepo;
