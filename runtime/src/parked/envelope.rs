//! The internal request that carries a client's retry from the replica it reached to the
//! replica holding its call: the client's headers and body, the endpoint and the principal
//! the forwarding replica authenticated, in one JSON body signed with HMAC-SHA256 under a key
//! every replica shares (derived from the sealed-session key). The owner accepts only a body
//! whose signature checks and whose time is within a minute of its own clock, and then
//! authenticates the client again from the carried headers.

use serde::{Deserialize, Serialize};

/// The route replicas forward retries to.
pub const PATH: &str = "/fleet/v1/retry";
/// The header carrying the signature (`sha256=HEX`).
pub const SIGNATURE_HEADER: &str = "mcpgate-fleet-signature";
/// Largest difference between the sender's clock and the receiver's.
const MAX_SKEW_SECS: u64 = 60;
/// The envelope format.
const VERSION: u32 = 1;

/// A forwarded retry.
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub v: u32,
    /// Seconds since the epoch when it was sent.
    pub time: u64,
    /// The endpoint path the client posted to (`/mcp` or `/mcp/NAME`).
    pub endpoint: String,
    /// The principal id the forwarding replica authenticated.
    pub principal: String,
    /// The forwarding replica's name.
    pub from: String,
    /// The client's request headers (credentials included: the owner authenticates again).
    pub headers: Vec<(String, String)>,
    /// The client's request body as it came.
    pub body: String,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The headers hold the client's credential.
        f.debug_struct("Envelope")
            .field("endpoint", &self.endpoint)
            .field("principal", &self.principal)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// Why a forwarded request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no valid signature")]
    Signature,
    #[error("sent {0} s away from this replica's clock")]
    Skew(u64),
    #[error("not a forwarded retry: {0}")]
    Format(String),
}

impl Envelope {
    /// A new envelope sent at `now`.
    pub fn new(
        now: u64,
        endpoint: String,
        principal: String,
        from: String,
        headers: Vec<(String, String)>,
        body: String,
    ) -> Envelope {
        Envelope {
            v: VERSION,
            time: now,
            endpoint,
            principal,
            from,
            headers,
            body,
        }
    }

    /// The body to send and its signature header value.
    pub fn seal(&self, key: &[u8]) -> (Vec<u8>, String) {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        let signature = crate::signature::sign(key, &bytes);
        (bytes, signature)
    }

    /// Checks `signature` over `bytes` under `key`, then the time, then reads the envelope.
    ///
    /// # Errors
    /// A missing or wrong signature, a time too far from `now`, or an unreadable body.
    pub fn open(
        key: &[u8],
        bytes: &[u8],
        signature: Option<&str>,
        now: u64,
    ) -> Result<Envelope, Refused> {
        let ok = signature.is_some_and(|s| crate::signature::verify_signature(key, s, bytes));
        if !ok {
            return Err(Refused::Signature);
        }
        let env: Envelope =
            serde_json::from_slice(bytes).map_err(|e| Refused::Format(e.to_string()))?;
        if env.v != VERSION {
            return Err(Refused::Format(format!("version {}", env.v)));
        }
        let skew = now.abs_diff(env.time);
        if skew > MAX_SKEW_SECS {
            return Err(Refused::Skew(skew));
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Envelope {
        Envelope::new(
            1_000,
            "/mcp/demo".into(),
            "alice".into(),
            "gw-2".into(),
            vec![("authorization".into(), "Bearer mcpg_x".into())],
            "{\"jsonrpc\":\"2.0\"}".into(),
        )
    }

    #[test]
    fn only_a_signed_recent_envelope_opens() {
        let key = [7u8; 32];
        let (bytes, sig) = sample().seal(&key);
        assert_eq!(
            Envelope::open(&key, &bytes, Some(&sig), 1_030),
            Ok(sample())
        );
        assert_eq!(
            Envelope::open(&key, &bytes, None, 1_000),
            Err(Refused::Signature)
        );
        assert_eq!(
            Envelope::open(&[8u8; 32], &bytes, Some(&sig), 1_000),
            Err(Refused::Signature)
        );
        let mut tampered = bytes.clone();
        if let Some(b) = tampered.iter_mut().rev().nth(3) {
            *b ^= 1;
        }
        assert_eq!(
            Envelope::open(&key, &tampered, Some(&sig), 1_000),
            Err(Refused::Signature)
        );
        assert_eq!(
            Envelope::open(&key, &bytes, Some(&sig), 1_100),
            Err(Refused::Skew(100))
        );
        assert!(!format!("{:?}", sample()).contains("mcpg_x"));
    }
}
