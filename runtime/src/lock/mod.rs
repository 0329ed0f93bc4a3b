//! Pinned upstream definitions (`mcpgate.lock`) in the gateway: reading what upstreams
//! offer for `mcpgate lock`, and holding tools that changed since review.
//!
//! Owns what was observed of each tool and the held-tool metrics. May use: `decision` and
//! the bottom layer; the session-side check is `gateway::lock_gate`, reading an upstream's
//! inventory is `upstream::inventory`.

pub mod gate;
