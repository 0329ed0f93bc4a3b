//! Pinned upstream definitions (`mcpgate.lock`) in the gateway: reading what upstreams
//! offer for `mcpgate lock`, and holding tools that changed since review.
//!
//! Owns what was observed of each tool, the held-tool metrics and, in a fleet, the held
//! tools the replicas share (`fleet`). May use: `decision` and
//! the bottom layer; the session-side check is `gateway::lock_gate`, reading an upstream's
//! inventory is `upstream::inventory`.

pub mod fleet;
pub mod gate;
