//! Wall-clock time as the gateway stores it: whole seconds since the Unix epoch.
//!
//! Bottom layer: uses nothing of the crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
