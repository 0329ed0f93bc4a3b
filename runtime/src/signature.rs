//! Webhook signatures: `sha256=HEX`, the HMAC-SHA256 of a body under a shared secret (what
//! GitHub sends and what the gateway's own webhooks carry).
//!
//! Bottom layer: uses nothing of the crate.

use hmac::Mac;
use sha2::Sha256;

/// Verifies `sha256=HEX` as the HMAC-SHA256 of `body` under `secret` (constant time).
pub fn verify_signature(secret: &[u8], header: &str, body: &[u8]) -> bool {
    let Some(hex) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// `sha256=HEX` for `body` under `secret` (what GitHub sends).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let mut out = String::from("sha256=");
    for b in bytes.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}
