//! Pinned upstream definitions (`mcpgate.lock`) in the gateway: reading what upstreams
//! offer for `mcpgate lock`, and holding tools that changed since review.

pub mod gate;
