//! MCP protocol versions the gateway knows, and how it treats the ones it does not.
//!
//! Bottom layer: uses nothing of the crate.

/// Legacy-era versions, oldest first.
pub const KNOWN: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The newest version the gateway knows.
pub const LATEST: &str = "2025-11-25";
/// What an absent `MCP-Protocol-Version` header means.
pub const DEFAULT: &str = "2025-03-26";

/// Whether `v` has the `YYYY-MM-DD` shape of an MCP version.
pub fn is_version_shaped(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// Whether a client's `MCP-Protocol-Version` is acceptable: a known version, or one newer
/// than any known (passed through to upstreams, which may know it).
pub fn acceptable(v: &str) -> bool {
    KNOWN.contains(&v) || (is_version_shaped(v) && v > LATEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_known_and_newer_versions() {
        assert!(acceptable("2025-06-18"));
        assert!(acceptable("2026-07-28"));
        assert!(!acceptable("2025-01-01"));
        assert!(!acceptable("latest"));
        assert!(!acceptable("2030-1-01"));
    }
}
