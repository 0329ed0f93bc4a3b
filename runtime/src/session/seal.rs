//! Sealed session ids: the `Mcp-Session-Id` a client holds is the session's state encrypted
//! and authenticated under a key in the state dir, so any replica with the same key can
//! serve the session without a shared store.
//!
//! A token is `VERSION (1 byte, 2) || nonce (24) || ciphertext and tag`, sealed with
//! XChaCha20-Poly1305: a random 192-bit nonce never repeats in practice under a long-lived
//! key, where a 96-bit one allows only about 2^32 tokens per key. Tokens of the first format
//! (`nonce (12) || ciphertext`, ChaCha20-Poly1305, no version) still open until they age
//! out. Two keys may be in use during a rotation: `session.key` seals and opens,
//! `session.key.previous` only opens (see `docs/gateway.md`).

use crate::upstream::SessionState;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

/// The format byte of tokens sealed now.
const VERSION: u8 = 2;
const NONCE_LEN: usize = 24;
/// Binds a token to its purpose and format: a ciphertext made for something else never
/// opens here.
const AAD: &[u8] = b"mcpgate session v2";
/// The first format: no version byte, a 96-bit nonce.
const V1_NONCE_LEN: usize = 12;
const V1_AAD: &[u8] = b"mcpgate session v1";
/// Tokens longer than this are refused before decoding.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// File name of the key in the state dir.
pub const KEY_FILE: &str = "session.key";
/// File name of the key that sealed before the last rotation: it still opens tokens.
pub const PREVIOUS_KEY_FILE: &str = "session.key.previous";

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

/// One key, in both formats' ciphers.
struct Key {
    v2: XChaCha20Poly1305,
    v1: ChaCha20Poly1305,
}

impl Key {
    fn new(key: &[u8; 32]) -> Key {
        Key {
            v2: XChaCha20Poly1305::new(key.into()),
            v1: ChaCha20Poly1305::new(key.into()),
        }
    }

    fn open(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let v2 = bytes.split_first().and_then(|(version, rest)| {
            if *version != VERSION {
                return None;
            }
            let (nonce, sealed) = rest.split_at_checked(NONCE_LEN)?;
            let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
            let payload = Payload {
                msg: sealed,
                aad: AAD,
            };
            self.v2.decrypt(&XNonce::from(nonce), payload).ok()
        });
        // A first-format token starts with a random nonce byte, which may equal VERSION.
        v2.or_else(|| {
            let (nonce, sealed) = bytes.split_at_checked(V1_NONCE_LEN)?;
            let nonce: [u8; V1_NONCE_LEN] = nonce.try_into().ok()?;
            let payload = Payload {
                msg: sealed,
                aad: V1_AAD,
            };
            self.v1.decrypt(&Nonce::from(nonce), payload).ok()
        })
    }
}

/// Seals and unseals session ids.
pub struct Sealer {
    current: Key,
    previous: Option<Key>,
    /// The current key, from which keys for other uses are derived ([`Sealer::derive`]).
    raw: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("previous_key", &self.previous.is_some())
            .finish_non_exhaustive()
    }
}

/// Reads a 32-byte key file; `None` when it does not exist.
fn read_key(path: &Path) -> io::Result<Option<[u8; 32]>> {
    let mut key = [0u8; 32];
    match std::fs::File::open(path) {
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
            Ok(Some(key))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a new random key to `path` (mode 0600); fails if the file exists.
fn create_key(path: &Path) -> io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    rand::fill(&mut key[..]);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    f.write_all(&key)?;
    f.sync_all()?;
    Ok(key)
}

impl Sealer {
    /// A sealer under a given 256-bit key.
    pub fn from_key(key: &[u8; 32]) -> Sealer {
        Sealer {
            current: Key::new(key),
            previous: None,
            raw: *key,
        }
    }

    /// A sealer that seals under `current` and also opens tokens sealed under `previous`.
    pub fn rotating(current: &[u8; 32], previous: &[u8; 32]) -> Sealer {
        Sealer {
            current: Key::new(current),
            previous: Some(Key::new(previous)),
            raw: *current,
        }
    }

    /// Reads `session.key` from `state_dir`, creating it (mode 0600) with a random key on
    /// first start, and `session.key.previous` when it is there.
    ///
    /// # Errors
    /// When a file cannot be read or written, or does not hold exactly 32 bytes.
    pub fn load_or_create(state_dir: &Path) -> io::Result<Sealer> {
        let path = state_dir.join(KEY_FILE);
        let current = match read_key(&path)? {
            Some(key) => key,
            None => create_key(&path)?,
        };
        let previous = read_key(&state_dir.join(PREVIOUS_KEY_FILE))?;
        Ok(Sealer {
            current: Key::new(&current),
            previous: previous.as_ref().map(Key::new),
            raw: current,
        })
    }

    /// A key for another use, the HMAC-SHA256 of `label` under the current session key:
    /// replicas given the same `session.key` derive the same key, and it reveals nothing
    /// of the session key.
    pub fn derive(&self, label: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.raw) else {
            return [0u8; 32];
        };
        mac.update(label);
        mac.finalize().into_bytes().into()
    }

    /// Rotates the keys in `state_dir`: `session.key` becomes `session.key.previous`
    /// (replacing an older one) and a new `session.key` is made. Sessions sealed under the
    /// old key keep working until they age out or the next rotation.
    ///
    /// # Errors
    /// When the files cannot be read, renamed or written.
    pub fn rotate(state_dir: &Path) -> io::Result<()> {
        let path = state_dir.join(KEY_FILE);
        if read_key(&path)?.is_some() {
            std::fs::rename(&path, state_dir.join(PREVIOUS_KEY_FILE))?;
        }
        create_key(&path)?;
        Ok(())
    }

    /// Seals claims into a URL-safe token (visible ASCII, as `Mcp-Session-Id` requires).
    pub fn seal(&self, claims: &Claims) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let plain = serde_json::to_vec(claims).unwrap_or_default();
        let payload = Payload {
            msg: &plain,
            aad: AAD,
        };
        let sealed = self
            .current
            .v2
            .encrypt(&XNonce::from(nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
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
        let plain = self
            .current
            .open(&bytes)
            .or_else(|| self.previous.as_ref()?.open(&bytes))?;
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

    #[test]
    fn derived_keys_follow_the_session_key_and_the_label() {
        let a = Sealer::from_key(&[1u8; 32]);
        let same = Sealer::rotating(&[1u8; 32], &[2u8; 32]);
        let other = Sealer::from_key(&[2u8; 32]);
        assert_eq!(a.derive(b"x"), same.derive(b"x"));
        assert_ne!(a.derive(b"x"), a.derive(b"y"));
        assert_ne!(a.derive(b"x"), other.derive(b"x"));
        assert_ne!(a.derive(b"x"), [1u8; 32]);
    }

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

    /// A token of the first format, sealed as the gateway sealed them before the version.
    fn v1_token(key: &[u8; 32], claims: &Claims) -> String {
        let nonce = [9u8; V1_NONCE_LEN];
        let plain = serde_json::to_vec(claims).unwrap();
        let payload = Payload {
            msg: &plain,
            aad: V1_AAD,
        };
        let sealed = ChaCha20Poly1305::new(key.into())
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap();
        URL_SAFE_NO_PAD.encode([&nonce[..], &sealed[..]].concat())
    }

    #[test]
    fn tokens_carry_a_version_and_an_extended_nonce() {
        let s = Sealer::from_key(&[7; 32]);
        let bytes = URL_SAFE_NO_PAD.decode(s.seal(&claims())).unwrap();
        assert_eq!(bytes[0], VERSION);
        let plain_len = serde_json::to_vec(&claims()).unwrap().len();
        assert_eq!(bytes.len(), 1 + 24 + plain_len + 16);
        // Another version byte is refused, not read as something else.
        let mut other = bytes.clone();
        other[0] = 3;
        assert_eq!(s.unseal(&URL_SAFE_NO_PAD.encode(&other), 1_010, 3600), None);
    }

    #[test]
    fn first_format_tokens_open_until_they_age_out() {
        let s = Sealer::from_key(&[7; 32]);
        let old = v1_token(&[7; 32], &claims());
        assert_eq!(s.unseal(&old, 1_010, 3600), Some(claims()));
        assert_eq!(s.unseal(&old, 1_000 + 3601, 3600), None);
        assert_eq!(Sealer::from_key(&[8; 32]).unseal(&old, 1_010, 3600), None);
    }

    #[test]
    fn during_a_rotation_the_previous_key_opens_but_never_seals() {
        let old = Sealer::from_key(&[7; 32]);
        let before = old.seal(&claims());
        let before_v1 = v1_token(&[7; 32], &claims());
        let s = Sealer::rotating(&[8; 32], &[7; 32]);
        assert_eq!(s.unseal(&before, 1_010, 3600), Some(claims()));
        assert_eq!(s.unseal(&before_v1, 1_010, 3600), Some(claims()));
        let after = s.seal(&claims());
        assert_eq!(old.unseal(&after, 1_010, 3600), None);
        assert_eq!(
            Sealer::from_key(&[8; 32]).unseal(&after, 1_010, 3600),
            Some(claims())
        );
    }

    #[test]
    fn rotate_moves_the_key_aside_and_makes_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = Sealer::load_or_create(dir.path()).unwrap();
        let t = first.seal(&claims());
        Sealer::rotate(dir.path()).unwrap();
        let second = Sealer::load_or_create(dir.path()).unwrap();
        assert_eq!(second.unseal(&t, 1_010, 3600), Some(claims()));
        let t2 = second.seal(&claims());
        assert_eq!(first.unseal(&t2, 1_010, 3600), None);
        // A second rotation retires the first key.
        Sealer::rotate(dir.path()).unwrap();
        let third = Sealer::load_or_create(dir.path()).unwrap();
        assert_eq!(third.unseal(&t, 1_010, 3600), None);
        assert_eq!(third.unseal(&t2, 1_010, 3600), Some(claims()));
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
