//! The assertion signing keys: Ed25519 seeds kept in the vault (sealed under the master
//! key like any upstream secret), one vault entry per key, named
//! `MCPGATE_ASSERTION_KEY_<kid>`. The newest key not retired signs; a retired key stays
//! published in the JWKS until its `until` time, so upstreams still verify what it signed.

use crate::vault::{KeySource, MasterKey, Vault, VaultError};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::path::Path;
use zeroize::Zeroizing;

/// Vault names of signing keys start with this.
pub const NAME_PREFIX: &str = "MCPGATE_ASSERTION_KEY_";

/// How long a replaced key stays published unless `rotate-key --grace` says otherwise.
pub const DEFAULT_GRACE_SECS: u64 = 3600;

/// What the vault holds for one key (as JSON text).
#[derive(Serialize, Deserialize)]
struct Stored {
    /// The Ed25519 seed, hex.
    seed: String,
    created: u64,
    /// When it was replaced: it signs no more.
    #[serde(default)]
    retired: Option<u64>,
    /// Published in the JWKS until then (after it was replaced).
    #[serde(default)]
    until: Option<u64>,
}

/// One signing key.
pub struct Key {
    pub kid: String,
    signing: SigningKey,
    pub created: u64,
    pub retired: Option<u64>,
    pub until: Option<u64>,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("created", &self.created)
            .field("retired", &self.retired)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// The private key as PKCS#8 DER, as `jsonwebtoken` takes it.
    ///
    /// # Errors
    /// When the key cannot be encoded.
    pub fn pkcs8(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        self.signing
            .to_pkcs8_der()
            .map(|d| Zeroizing::new(d.as_bytes().to_vec()))
            .map_err(|e| format!("cannot encode signing key `{}`: {e}", self.kid))
    }

    /// The public key as a JWK (RFC 8037: `kty: OKP`, `crv: Ed25519`).
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": URL_SAFE_NO_PAD.encode(self.signing.verifying_key().as_bytes()),
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// Whether the JWKS shows it at `now`.
    pub fn published(&self, now: u64) -> bool {
        self.until.is_none_or(|u| now < u)
    }
}

/// Every signing key of a vault, newest first.
#[derive(Debug, Default)]
pub struct Keyring {
    pub keys: Vec<Key>,
}

fn hex(bytes: &[u8]) -> String {
    crate::audit::record::hex(bytes)
}

fn parse(name: &str, text: &str) -> Option<Key> {
    let kid = name.strip_prefix(NAME_PREFIX)?.to_ascii_lowercase();
    let stored: Stored = serde_json::from_str(text).ok()?;
    let bytes = Zeroizing::new(crate::audit::record::unhex(&stored.seed)?);
    let seed: &[u8; 32] = bytes.as_slice().try_into().ok()?;
    Some(Key {
        kid,
        signing: SigningKey::from_bytes(seed),
        created: stored.created,
        retired: stored.retired,
        until: stored.until,
    })
}

impl Keyring {
    /// Reads every key from `vault`.
    ///
    /// # Errors
    /// When the vault cannot be read or a key entry cannot be decrypted or parsed.
    pub fn load(vault: &Vault, key: &MasterKey, source: &KeySource) -> Result<Keyring, String> {
        let mut keys = Vec::new();
        for info in vault.list().map_err(|e| e.to_string())? {
            if !info.name.starts_with(NAME_PREFIX) {
                continue;
            }
            let text = vault
                .get(key, source, &info.name)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("signing key `{}` vanished while read", info.name))?;
            let parsed = parse(&info.name, &text)
                .ok_or_else(|| format!("vault entry `{}` is not a signing key", info.name))?;
            keys.push(parsed);
        }
        keys.sort_by(|a, b| b.created.cmp(&a.created).then(b.kid.cmp(&a.kid)));
        Ok(Keyring { keys })
    }

    /// The key that signs: the newest one not retired.
    pub fn active(&self) -> Option<&Key> {
        self.keys.iter().find(|k| k.retired.is_none())
    }

    /// The JWKS document of the keys published at `now`.
    pub fn jwks(&self, now: u64) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|k| k.published(now))
            .map(Key::jwk)
            .collect();
        json!({ "keys": keys })
    }
}

fn store(
    vault: &mut Vault,
    key: &MasterKey,
    source: &KeySource,
    kid: &str,
    stored: &Stored,
) -> Result<(), VaultError> {
    let text = Zeroizing::new(serde_json::to_string(stored).unwrap_or_default());
    vault.set(key, source, &format!("{NAME_PREFIX}{kid}"), text.as_bytes())?;
    Ok(())
}

/// Adds a fresh signing key; retires the active one, published `grace_secs` longer, and
/// removes keys whose publication ended. Returns the new key id.
///
/// # Errors
/// When the vault cannot be read or written.
pub fn rotate(
    vault: &mut Vault,
    key: &MasterKey,
    source: &KeySource,
    now: u64,
    grace_secs: u64,
) -> Result<String, String> {
    let ring = Keyring::load(vault, key, source)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::fill(&mut seed[..]);
    let mut id = [0u8; 8];
    rand::fill(&mut id[..]);
    let kid = hex(&id);
    let new = Stored {
        seed: hex(&seed[..]),
        created: now,
        retired: None,
        until: None,
    };
    store(vault, key, source, &kid, &new).map_err(|e| e.to_string())?;
    for old in &ring.keys {
        let name = format!("{NAME_PREFIX}{}", old.kid);
        if !old.published(now) {
            vault.remove(&name).map_err(|e| e.to_string())?;
            continue;
        }
        if old.retired.is_none() {
            let retired = Stored {
                seed: hex(old.signing.as_bytes()),
                created: old.created,
                retired: Some(now),
                until: Some(now.saturating_add(grace_secs)),
            };
            store(vault, key, source, &old.kid, &retired).map_err(|e| e.to_string())?;
        }
    }
    Ok(kid)
}

/// Makes sure the vault of `state_dir` has a signing key (creating the first one); returns
/// the keyring.
///
/// # Errors
/// Without a master key, or when the vault cannot be used.
pub fn ensure(state_dir: &Path, now: u64) -> Result<Keyring, String> {
    let (key, source) = MasterKey::locate(state_dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            "signed assertions need the vault's master key: run `mcpgate init`, or set \
             `MCPGATE_MASTER_KEY`"
                .to_owned()
        })?;
    let mut vault = Vault::open(state_dir).map_err(|e| e.to_string())?;
    let ring = Keyring::load(&vault, &key, &source)?;
    if ring.active().is_some() {
        return Ok(ring);
    }
    rotate(&mut vault, &key, &source, now, DEFAULT_GRACE_SECS)?;
    Keyring::load(&vault, &key, &source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_previous_key_published_for_its_grace_then_drops_it() {
        let key = MasterKey::generate();
        let source = KeySource::Env;
        let mut vault = Vault::open_in_memory().unwrap();
        let first = rotate(&mut vault, &key, &source, 1000, 100).unwrap();
        let ring = Keyring::load(&vault, &key, &source).unwrap();
        assert_eq!(ring.active().unwrap().kid, first);
        let second = rotate(&mut vault, &key, &source, 2000, 100).unwrap();
        let ring = Keyring::load(&vault, &key, &source).unwrap();
        assert_eq!(ring.active().unwrap().kid, second);
        let kids = |now| -> Vec<String> {
            ring.jwks(now)["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kids(2050), [second.clone(), first.clone()]);
        assert_eq!(kids(2100), std::slice::from_ref(&second));
        let third = rotate(&mut vault, &key, &source, 3000, 100).unwrap();
        let ring = Keyring::load(&vault, &key, &source).unwrap();
        let names: Vec<&str> = ring.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(
            names,
            [third.as_str(), second.as_str()],
            "the first key is gone"
        );
        // The vault holds the seed sealed; the JWKS shows only public keys.
        let jwks = ring.jwks(3000).to_string();
        assert!(!jwks.contains("seed") && !jwks.contains("\"d\""), "{jwks}");
    }
}
