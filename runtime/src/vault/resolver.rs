//! [`VaultSecrets`]: the resolver `mcpgate serve` uses for `${secret:NAME}` and
//! `${env:NAME}` in upstream config. A secret comes from the vault first, then from the
//! environment variable `MCPGATE_SECRET_NAME` (see [`EnvSecrets`]).

use super::key::{KEY_FILE, KeySource, MasterKey};
use super::{Vault, VaultError};
use crate::vault::references::{EnvSecrets, SecretResolver};
use std::path::Path;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// Resolves references from the vault in a state dir, falling back to the environment.
pub struct VaultSecrets {
    vault: Mutex<Vault>,
    /// `None`: no key anywhere; fine as long as no secret in the vault is referenced.
    key: Option<(MasterKey, KeySource)>,
    key_file: String,
}

impl std::fmt::Debug for VaultSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSecrets")
            .field("key", &self.key.as_ref().map(|(_, source)| source))
            .finish_non_exhaustive()
    }
}

impl VaultSecrets {
    /// Opens the vault of `state_dir` and locates the master key. A missing key is not an
    /// error here (a gateway whose config references no stored secret needs none).
    ///
    /// # Errors
    /// The database cannot be opened, or a key is there but malformed or does not open the
    /// vault.
    pub fn open(state_dir: &Path) -> Result<VaultSecrets, VaultError> {
        let vault = Vault::open(state_dir)?;
        let key = MasterKey::locate(state_dir)?;
        if let Some((key, source)) = &key {
            vault.check_key(key, source)?;
        }
        Ok(VaultSecrets {
            vault: Mutex::new(vault),
            key,
            key_file: state_dir.join(KEY_FILE).display().to_string(),
        })
    }

    fn stored(&self, name: &str) -> Result<Option<Zeroizing<String>>, VaultError> {
        if super::validate_name(name).is_err() {
            // Names with `-` or `.` cannot be stored; only the environment can hold them.
            return Ok(None);
        }
        let vault = self
            .vault
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !vault.contains(name)? {
            return Ok(None);
        }
        let Some((key, source)) = &self.key else {
            return Err(VaultError::NoKey(self.key_file.clone()));
        };
        vault.get(key, source, name)
    }
}

impl SecretResolver for VaultSecrets {
    fn resolve(&self, kind: &str, name: &str) -> Option<String> {
        self.lookup(kind, name)
            .ok()
            .flatten()
            .map(|v| v.as_str().to_owned())
    }

    fn lookup(&self, kind: &str, name: &str) -> Result<Option<Zeroizing<String>>, String> {
        if kind == "secret" {
            match self.stored(name) {
                Ok(Some(value)) => return Ok(Some(value)),
                Ok(None) => {}
                Err(e) => {
                    let help = e.help().map(|h| format!(" ({h})")).unwrap_or_default();
                    return Err(format!("secret `{name}`: {e}{help}"));
                }
            }
        }
        EnvSecrets.lookup(kind, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vault_comes_first_and_a_missing_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate();
        key.write_new(&dir.path().join(KEY_FILE)).unwrap();
        let source = KeySource::File(dir.path().join(KEY_FILE));
        Vault::open(dir.path())
            .unwrap()
            .set(&key, &source, "VAULT_ONLY", b"from-the-vault")
            .unwrap();
        let secrets = VaultSecrets::open(dir.path()).unwrap();
        assert_eq!(
            secrets
                .lookup("secret", "VAULT_ONLY")
                .unwrap()
                .unwrap()
                .as_str(),
            "from-the-vault"
        );
        assert!(
            secrets
                .lookup("secret", "NOT_STORED_ANYWHERE_3e9")
                .unwrap()
                .is_none()
        );
        assert!(!format!("{secrets:?}").contains("from-the-vault"));

        // Without the key, a stored secret is an error that says what to do, not a miss.
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let keyless = VaultSecrets::open(dir.path()).unwrap();
        let err = keyless.lookup("secret", "VAULT_ONLY").unwrap_err();
        assert!(err.contains("no master key"), "{err}");
        assert!(err.contains("mcpgate init"), "{err}");
        assert!(!err.contains("from-the-vault"), "{err}");
    }

    #[test]
    fn a_key_that_does_not_open_the_vault_fails_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate();
        let source = KeySource::File(dir.path().join(KEY_FILE));
        Vault::open(dir.path())
            .unwrap()
            .set(&key, &source, "S", b"v")
            .unwrap();
        MasterKey::generate()
            .write_new(&dir.path().join(KEY_FILE))
            .unwrap();
        let err = VaultSecrets::open(dir.path()).unwrap_err();
        assert!(matches!(err, VaultError::WrongKey(_)), "{err}");
    }
}
