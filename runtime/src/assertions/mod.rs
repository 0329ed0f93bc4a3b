//! Signed downstream assertions: on an allowed call to a server configured with
//! `assertion`, the gateway sends a short-lived JWT (EdDSA over Ed25519) naming the caller,
//! the person an agent acts for, the tool, a hash of the arguments, the deciding rule and
//! the policy, so the upstream can check for itself that the gateway let this very call
//! through. The public keys are served at `/.well-known/jwks.json`; the private keys live
//! in the vault and rotate (`mcpgate assertions rotate-key`).
//!
//! May use: `vault`, `audit::record` (canonical JSON, hex), `state`, the bottom layer.

pub mod claims;
pub mod keys;

pub use claims::{Claims, args_sha256};
pub use keys::Keyring;

use crate::vault::{KeySource, MasterKey, Vault};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Signs assertions with the vault's active key and serves the published keys. Notices a
/// rotation by another process (`PRAGMA data_version`) on its next use.
pub struct Assertions {
    vault: Mutex<Vault>,
    master: (MasterKey, KeySource),
    ring: Mutex<(i64, Arc<Keyring>)>,
}

impl std::fmt::Debug for Assertions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Assertions").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Assertions {
    /// Opens the keys of `state_dir`'s vault, creating the first signing key if there is
    /// none.
    ///
    /// # Errors
    /// Without a master key, or when the vault cannot be used.
    pub fn open(state_dir: &Path, now: u64) -> Result<Assertions, String> {
        let ring = keys::ensure(state_dir, now)?;
        let master = MasterKey::locate(state_dir)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "the master key went missing".to_owned())?;
        let vault = Vault::open(state_dir).map_err(|e| e.to_string())?;
        let version = vault.data_version().map_err(|e| e.to_string())?;
        Ok(Assertions {
            vault: Mutex::new(vault),
            master,
            ring: Mutex::new((version, Arc::new(ring))),
        })
    }

    /// The keys as the vault holds them now.
    ///
    /// # Errors
    /// When the vault cannot be read.
    pub fn keyring(&self) -> Result<Arc<Keyring>, String> {
        let vault = lock(&self.vault);
        let version = vault.data_version().map_err(|e| e.to_string())?;
        let mut ring = lock(&self.ring);
        if ring.0 != version {
            let (key, source) = &self.master;
            *ring = (version, Arc::new(Keyring::load(&vault, key, source)?));
        }
        Ok(ring.1.clone())
    }

    /// Signs `claims` with the active key.
    ///
    /// # Errors
    /// When there is no active key or signing fails (the call is then not forwarded).
    pub fn sign(&self, claims: &Claims<'_>) -> Result<String, String> {
        let ring = self.keyring()?;
        let key = ring
            .active()
            .ok_or_else(|| "no active assertion signing key".to_owned())?;
        let der = key.pkcs8()?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&der))
            .map_err(|e| format!("cannot sign the assertion: {e}"))
    }

    /// The JWKS document of the keys published at `now`.
    ///
    /// # Errors
    /// When the vault cannot be read.
    pub fn jwks(&self, now: u64) -> Result<serde_json::Value, String> {
        Ok(self.keyring()?.jwks(now))
    }
}
