//! Sealed session ids: the `Mcp-Session-Id` a client holds is the session's state encrypted
//! and authenticated (ChaCha20-Poly1305) under a key in the state dir, so any replica with
//! the same key can serve the session without a shared store.

use crate::upstream::SessionState;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

const NONCE_LEN: usize = 12;
/// Binds a token to its purpose: a ciphertext made for something else never opens here.
const AAD: &[u8] = b"mcpgate session v1";
/// Tokens longer than this are refused before decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// File name of the key in the state dir.
pub const KEY_FILE: &str = "session.key";

/// What a session id carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The gateway's own session id (random, hex).
    pub sid: String,
    /// The endpoint the session belongs to: `""` for `/mcp`, else the server name.
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
    /// The protocol version agreed with the client.
    pub protocol_version: String,
    pub principal: String,
    /// `Credential::binding` of the credential that opened the session (empty: anonymous).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub credential: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Each connected upstream's state, by server name.
    pub upstreams: BTreeMap<String, SessionState>,
}

/// Seals and unseals session ids.
pub struct Sealer {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// A sealer under a given 256-bit key.
    pub fn from_key(key: &[u8; 32]) -> Sealer {
        Sealer {
            cipher: ChaCha20Poly1305::new(key.into()),
        }
    }

    /// Reads `session.key` from `state_dir`, creating it (mode 0600) with a random key on
    /// first start.
    ///
    /// # Errors
    /// When the file cannot be read or written, or does not hold exactly 32 bytes.
    pub fn load_or_create(state_dir: &Path) -> io::Result<Sealer> {
        let path = state_dir.join(KEY_FILE);
        let mut key = [0u8; 32];
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)?;
                if bytes.len() != key.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "`{}` must hold exactly 32 bytes, it holds {}",
                            path.display(),
                            bytes.len()
                        ),
                    ));
                }
                key.copy_from_slice(&bytes);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                rand::fill(&mut key[..]);
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut f = options.open(&path)?;
                f.write_all(&key)?;
                f.sync_all()?;
            }
            Err(e) => return Err(e),
        }
        Ok(Sealer::from_key(&key))
    }

    /// Seals claims into a URL-safe token (visible ASCII, as `Mcp-Session-Id` requires).
    pub fn seal(&self, claims: &Claims) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let plain = serde_json::to_vec(claims).unwrap_or_default();
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: AAD,
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a token; `None` when it is garbled, forged, sealed under another key, or older
    /// than `max_age_secs` at `now` (seconds since the epoch).
    pub fn unseal(&self, token: &str, now: u64, max_age_secs: u64) -> Option<Claims> {
        if token.len() > MAX_TOKEN_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        let (nonce, sealed) = bytes.split_at_checked(NONCE_LEN)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: AAD,
                },
            )
            .ok()?;
        let claims: Claims = serde_json::from_slice(&plain).ok()?;
        if claims.created > now.saturating_add(300)
            || now.saturating_sub(claims.created) > max_age_secs
        {
            return None;
        }
        Some(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        let mut upstreams = BTreeMap::new();
        upstreams.insert(
            "demo".to_owned(),
            SessionState {
                session_id: Some("abc".into()),
                protocol_version: "2025-06-18".into(),
                client_capabilities: None,
            },
        );
        Claims {
            sid: "0123".into(),
            endpoint: "demo".into(),
            client_name: Some("client".into()),
            client_version: Some("1.0".into()),
            protocol_version: "2025-06-18".into(),
            principal: "anonymous".into(),
            credential: String::new(),
            created: 1_000,
            upstreams,
        }
    }

    #[test]
    fn round_trips() {
        let s = Sealer::from_key(&[7; 32]);
        let t = s.seal(&claims());
        assert!(t.bytes().all(|b| b.is_ascii_graphic()));
        assert_eq!(s.unseal(&t, 1_010, 3600), Some(claims()));
    }

    #[test]
    fn refuses_other_key_tampering_forgery_and_age() {
        let s = Sealer::from_key(&[7; 32]);
        let t = s.seal(&claims());
        assert_eq!(Sealer::from_key(&[8; 32]).unseal(&t, 1_010, 3600), None);
        let mut bytes = URL_SAFE_NO_PAD.decode(&t).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(s.unseal(&URL_SAFE_NO_PAD.encode(&bytes), 1_010, 3600), None);
        bytes[last] ^= 1;
        bytes[NONCE_LEN + 2] ^= 0x40;
        assert_eq!(s.unseal(&URL_SAFE_NO_PAD.encode(&bytes), 1_010, 3600), None);
        assert_eq!(s.unseal("not-a-token", 1_010, 3600), None);
        assert_eq!(s.unseal("", 1_010, 3600), None);
        assert_eq!(s.unseal("AAAA", 1_010, 3600), None);
        assert_eq!(s.unseal(&t, 1_000 + 3601, 3600), None);
        assert_eq!(s.unseal(&t, 0, 3600), None);
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = std::env::temp_dir().join(format!("mcpgate-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let a = Sealer::load_or_create(&dir).unwrap();
        let t = a.seal(&claims());
        let b = Sealer::load_or_create(&dir).unwrap();
        assert_eq!(b.unseal(&t, 1_010, 3600), Some(claims()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(dir.join(KEY_FILE), b"short").unwrap();
        assert!(Sealer::load_or_create(&dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
