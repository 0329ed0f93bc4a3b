//! The credential vault: upstream secrets (API keys, tokens) stored in the state database,
//! each value sealed with XChaCha20-Poly1305 under the master key ([`key`]) with its name as
//! associated data. Names and dates are stored in clear so that `mcpgate secret list` and
//! `rm` work without the key; values never leave the vault except to be injected into
//! upstream requests ([`VaultSecrets`]).
//!
//! Owns secrets at rest and the [`references::SecretResolver`] trait every `${secret:…}`
//! goes through. May use: the bottom layer.

pub mod key;
pub mod references;
mod resolver;
mod seal;

pub use key::{KeySource, MasterKey};
pub use resolver::VaultSecrets;

use crate::state::db::{self, DbError, Migration};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use seal::Sealer;
use std::path::Path;
use zeroize::Zeroizing;

/// The vault's schema in `state.db`.
pub const MIGRATION: Migration = Migration {
    name: "vault.v1",
    sql: "CREATE TABLE vault_secrets (
            name TEXT PRIMARY KEY NOT NULL,
            sealed BLOB NOT NULL,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
          );
          CREATE TABLE vault_key_check (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            sealed BLOB NOT NULL,
            created_at INTEGER NOT NULL
          );",
};

/// Longest secret name.
pub const MAX_NAME_LEN: usize = 128;
/// Largest secret value, in bytes.
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// What went wrong with the vault. Messages name secrets and files, never values or keys.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot use the vault: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A key that is there but cannot be used (malformed, unreadable).
    #[error("master key: {0}")]
    Key(String),
    #[error("no master key: `MCPGATE_MASTER_KEY` is not set and `{0}` does not exist")]
    NoKey(String),
    #[error("the master key from {0} does not open this vault")]
    WrongKey(KeySource),
    #[error(
        "secret `{0}` cannot be decrypted: its stored value was altered or sealed for another name"
    )]
    Corrupt(String),
    #[error("invalid secret name `{0}`")]
    BadName(String),
    #[error("invalid value for secret `{name}`: {reason}")]
    BadValue { name: String, reason: &'static str },
    #[error("cannot seal the value of `{0}`")]
    Seal(String),
}

impl VaultError {
    /// Advice for the user, printed on a `help:` line.
    pub fn help(&self) -> Option<String> {
        match self {
            VaultError::NoKey(_) => Some(
                "run `mcpgate init` to create one, or set `MCPGATE_MASTER_KEY` to the key the secrets were stored with".into(),
            ),
            VaultError::WrongKey(_) => Some(
                "use the master key the secrets were stored with (`MCPGATE_MASTER_KEY` takes precedence over `master.key`)".into(),
            ),
            VaultError::Key(_) => Some(
                "`MCPGATE_MASTER_KEY` is 64 hex digits or the base64 of 32 bytes; a key file holds the 32 raw bytes".into(),
            ),
            VaultError::Corrupt(name) => {
                Some(format!("store it again with `mcpgate secret set {name}`"))
            }
            VaultError::BadName(_) => {
                Some("a secret name is letters, digits and `_` (`GITHUB_TOKEN`)".into())
            }
            _ => None,
        }
    }
}

/// A stored secret as `list` shows it: no value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SecretInfo {
    pub name: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// Seconds since the Unix epoch.
    pub updated_at: i64,
}

/// What `set` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetOutcome {
    Created,
    Updated,
}

/// Checks a secret name: `[A-Za-z0-9_]+`, at most [`MAX_NAME_LEN`] bytes.
///
/// # Errors
/// [`VaultError::BadName`].
pub fn validate_name(name: &str) -> Result<(), VaultError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(VaultError::BadName(printable(name)))
    }
}

/// A name as it may appear in a message: cut short, control characters replaced.
fn printable(name: &str) -> String {
    name.chars()
        .take(MAX_NAME_LEN)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The sealed key check, if the vault ever held a secret.
fn key_check_of(conn: &Connection) -> rusqlite::Result<Option<Vec<u8>>> {
    conn.query_row("SELECT sealed FROM vault_key_check WHERE id = 1", [], |r| {
        r.get(0)
    })
    .optional()
}

/// The vault in one state database.
pub struct Vault {
    conn: Connection,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault")
    }
}

impl Vault {
    /// Opens the vault in `state_dir/state.db` (creating its tables). No key is needed for
    /// listing and removing.
    ///
    /// # Errors
    /// When the database cannot be opened or migrated.
    pub fn open(state_dir: &Path) -> Result<Vault, VaultError> {
        Ok(Vault {
            conn: db::open(state_dir, &[MIGRATION])?,
        })
    }

    /// An in-memory vault, for tests.
    ///
    /// # Errors
    /// When the schema cannot be created.
    pub fn open_in_memory() -> Result<Vault, VaultError> {
        Ok(Vault {
            conn: db::open_in_memory(&[MIGRATION])?,
        })
    }

    /// Checks that `key` is the key this vault's secrets are sealed under (any key fits a
    /// vault that never held a secret).
    ///
    /// # Errors
    /// [`VaultError::WrongKey`] (with `source` named), or a database error.
    pub fn check_key(&self, key: &MasterKey, source: &KeySource) -> Result<(), VaultError> {
        let check: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT sealed FROM vault_key_check WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?;
        match check {
            Some(check) if !Sealer::new(key).verify_key_check(&check) => {
                Err(VaultError::WrongKey(source.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Stores `value` as secret `name`, replacing any earlier value.
    ///
    /// # Errors
    /// A bad name or value, a key that does not open this vault, a database error.
    pub fn set(
        &mut self,
        key: &MasterKey,
        source: &KeySource,
        name: &str,
        value: &[u8],
    ) -> Result<SetOutcome, VaultError> {
        validate_name(name)?;
        let bad = |reason| VaultError::BadValue {
            name: name.to_owned(),
            reason,
        };
        if value.is_empty() {
            return Err(bad("it is empty"));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(bad("it is longer than 64 KiB"));
        }
        if std::str::from_utf8(value).is_err() {
            return Err(bad("it is not UTF-8 text"));
        }
        if value.contains(&0) {
            return Err(bad("it contains a NUL byte"));
        }
        let sealer = Sealer::new(key);
        let sealed = sealer
            .seal_secret(name, value)
            .map_err(|()| VaultError::Seal(name.to_owned()))?;
        // One write transaction: the key check and the value agree even with a concurrent
        // `set` under another key.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let check = key_check_of(&tx)?;
        match check {
            Some(check) => {
                if !sealer.verify_key_check(&check) {
                    return Err(VaultError::WrongKey(source.clone()));
                }
            }
            None => {
                let check = sealer
                    .key_check()
                    .map_err(|()| VaultError::Seal(name.to_owned()))?;
                tx.execute(
                    "INSERT INTO vault_key_check (id, sealed, created_at) VALUES (1, ?1, unixepoch())",
                    [check],
                )?;
            }
        }
        let existed: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM vault_secrets WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO vault_secrets (name, sealed, created_at, updated_at)
             VALUES (?1, ?2, unixepoch(), unixepoch())
             ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = unixepoch()",
            rusqlite::params![name, sealed],
        )?;
        tx.commit()?;
        Ok(if existed {
            SetOutcome::Updated
        } else {
            SetOutcome::Created
        })
    }

    /// Seals every secret, and the key check, under `new` instead of `old`, in one write
    /// transaction: either all move to the new key or none does. Returns how many secrets
    /// were sealed again.
    ///
    /// # Errors
    /// `old` does not open this vault, a value that was altered, a database error.
    pub fn rekey(
        &mut self,
        old: &MasterKey,
        source: &KeySource,
        new: &MasterKey,
    ) -> Result<usize, VaultError> {
        let (from, to) = (Sealer::new(old), Sealer::new(new));
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(check) = &key_check_of(&tx)?
            && !from.verify_key_check(check)
        {
            return Err(VaultError::WrongKey(source.clone()));
        }
        let rows: Vec<(String, Vec<u8>)> = {
            let mut stmt = tx.prepare("SELECT name, sealed FROM vault_secrets ORDER BY name")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (name, sealed) in &rows {
            let plain = from
                .open_secret(name, sealed)
                .ok_or_else(|| VaultError::Corrupt(name.clone()))?;
            let again = to
                .seal_secret(name, &plain)
                .map_err(|()| VaultError::Seal(name.clone()))?;
            tx.execute(
                "UPDATE vault_secrets SET sealed = ?2 WHERE name = ?1",
                rusqlite::params![name, again],
            )?;
        }
        let new_check = to
            .key_check()
            .map_err(|()| VaultError::Seal("the key check".to_owned()))?;
        tx.execute(
            "INSERT INTO vault_key_check (id, sealed, created_at) VALUES (1, ?1, unixepoch())
             ON CONFLICT (id) DO UPDATE SET sealed = excluded.sealed, created_at = unixepoch()",
            [new_check],
        )?;
        tx.commit()?;
        Ok(rows.len())
    }

    /// The value of secret `name`, or `None` if the vault has no such secret.
    ///
    /// # Errors
    /// A key that does not open this vault, a value that was altered, a database error.
    pub fn get(
        &self,
        key: &MasterKey,
        source: &KeySource,
        name: &str,
    ) -> Result<Option<Zeroizing<String>>, VaultError> {
        validate_name(name)?;
        let Some(sealed) = self.sealed(name)? else {
            return Ok(None);
        };
        self.check_key(key, source)?;
        let plain = Sealer::new(key)
            .open_secret(name, &sealed)
            .ok_or_else(|| VaultError::Corrupt(name.to_owned()))?;
        let text = std::str::from_utf8(&plain).map_err(|_| VaultError::Corrupt(name.to_owned()))?;
        Ok(Some(Zeroizing::new(text.to_owned())))
    }

    fn sealed(&self, name: &str) -> Result<Option<Vec<u8>>, VaultError> {
        Ok(self
            .conn
            .query_row(
                "SELECT sealed FROM vault_secrets WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Whether the vault holds secret `name` (no key needed).
    ///
    /// # Errors
    /// A database error.
    pub fn contains(&self, name: &str) -> Result<bool, VaultError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM vault_secrets WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )?)
    }

    /// Every secret's name and dates, by name; never a value.
    ///
    /// # Errors
    /// A database error.
    pub fn list(&self) -> Result<Vec<SecretInfo>, VaultError> {
        let mut stmt = self
            .conn
            .prepare("SELECT name, created_at, updated_at FROM vault_secrets ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok(SecretInfo {
                name: r.get(0)?,
                created_at: r.get(1)?,
                updated_at: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// SQLite's `PRAGMA data_version` of this connection: it changes when another
    /// connection (an operator command) commits, so a reader knows to read again.
    ///
    /// # Errors
    /// A database error.
    pub fn data_version(&self) -> Result<i64, VaultError> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Removes secret `name`; `false` when there was none.
    ///
    /// # Errors
    /// A bad name, a database error.
    pub fn remove(&self, name: &str) -> Result<bool, VaultError> {
        validate_name(name)?;
        let n = self
            .conn
            .execute("DELETE FROM vault_secrets WHERE name = ?1", [name])?;
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> KeySource {
        KeySource::Env
    }

    #[test]
    fn rekeying_moves_every_secret_to_the_new_key() {
        let mut vault = Vault::open_in_memory().unwrap();
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        vault.set(&old, &env(), "A", b"alpha").unwrap();
        vault.set(&old, &env(), "B", b"beta").unwrap();
        // The wrong key moves nothing.
        assert!(matches!(
            vault.rekey(&new, &env(), &old),
            Err(VaultError::WrongKey(_))
        ));
        assert_eq!(vault.rekey(&old, &env(), &new).unwrap(), 2);
        assert_eq!(
            vault.get(&new, &env(), "A").unwrap().unwrap().as_str(),
            "alpha"
        );
        assert_eq!(
            vault.get(&new, &env(), "B").unwrap().unwrap().as_str(),
            "beta"
        );
        assert!(matches!(
            vault.get(&old, &env(), "A"),
            Err(VaultError::WrongKey(_))
        ));
        assert!(matches!(
            vault.set(&old, &env(), "C", b"x"),
            Err(VaultError::WrongKey(_))
        ));
    }

    #[test]
    fn a_secret_round_trips_and_updates() {
        let mut vault = Vault::open_in_memory().unwrap();
        let key = MasterKey::generate();
        assert_eq!(
            vault.set(&key, &env(), "API_KEY", b"first").unwrap(),
            SetOutcome::Created
        );
        assert_eq!(
            vault
                .get(&key, &env(), "API_KEY")
                .unwrap()
                .unwrap()
                .as_str(),
            "first"
        );
        assert_eq!(
            vault.set(&key, &env(), "API_KEY", b"second").unwrap(),
            SetOutcome::Updated
        );
        assert_eq!(
            vault
                .get(&key, &env(), "API_KEY")
                .unwrap()
                .unwrap()
                .as_str(),
            "second"
        );
        assert!(vault.get(&key, &env(), "api_key").unwrap().is_none());
        assert!(vault.get(&key, &env(), "MISSING").unwrap().is_none());
    }

    #[test]
    fn the_value_is_not_stored_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate();
        let mut vault = Vault::open(dir.path()).unwrap();
        vault
            .set(&key, &env(), "TOKEN", b"plain-text-marker-6f1c")
            .unwrap();
        drop(vault);
        let mut raw = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            raw.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        let needle = b"plain-text-marker-6f1c";
        assert!(!raw.windows(needle.len()).any(|w| w == needle));
    }

    #[test]
    fn a_wrong_key_is_refused_clearly() {
        let mut vault = Vault::open_in_memory().unwrap();
        let key = MasterKey::generate();
        let other = MasterKey::generate();
        vault.set(&key, &env(), "API_KEY", b"value").unwrap();
        let source = KeySource::File("elsewhere/master.key".into());
        let err = vault.get(&other, &source, "API_KEY").unwrap_err();
        assert!(matches!(err, VaultError::WrongKey(_)), "{err}");
        assert!(err.to_string().contains("elsewhere/master.key"), "{err}");
        assert!(err.help().is_some());
        // Nor can another key add secrets to the vault.
        let err = vault.set(&other, &env(), "SECOND", b"value").unwrap_err();
        assert!(matches!(err, VaultError::WrongKey(_)), "{err}");
        assert!(vault.check_key(&other, &env()).is_err());
        assert!(vault.check_key(&key, &env()).is_ok());
        assert!(!vault.contains("SECOND").unwrap());
    }

    #[test]
    fn tampered_and_swapped_values_do_not_open() {
        let mut vault = Vault::open_in_memory().unwrap();
        let key = MasterKey::generate();
        vault.set(&key, &env(), "A", b"value of a").unwrap();
        vault.set(&key, &env(), "B", b"value of b").unwrap();
        // B's row now holds A's sealed value: the name is bound, so it must not open.
        vault
            .conn
            .execute(
                "UPDATE vault_secrets SET sealed = (SELECT sealed FROM vault_secrets WHERE name = 'A') WHERE name = 'B'",
                [],
            )
            .unwrap();
        let err = vault.get(&key, &env(), "B").unwrap_err();
        assert!(
            matches!(err, VaultError::Corrupt(ref n) if n == "B"),
            "{err}"
        );
        // One flipped bit in A's ciphertext.
        let mut sealed = vault.sealed("A").unwrap().unwrap();
        let at = sealed.len() / 2;
        sealed[at] ^= 0x40;
        vault
            .conn
            .execute(
                "UPDATE vault_secrets SET sealed = ?1 WHERE name = 'A'",
                [sealed],
            )
            .unwrap();
        let err = vault.get(&key, &env(), "A").unwrap_err();
        assert!(matches!(err, VaultError::Corrupt(_)), "{err}");
        assert!(!err.to_string().contains("value of"), "{err}");
    }

    #[test]
    fn list_shows_names_and_dates_only_and_rm_removes() {
        let mut vault = Vault::open_in_memory().unwrap();
        let key = MasterKey::generate();
        vault.set(&key, &env(), "ZED", b"zed-secret-value").unwrap();
        vault
            .set(&key, &env(), "ALPHA", b"alpha-secret-value")
            .unwrap();
        let list = vault.list().unwrap();
        let names: Vec<&str> = list.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ALPHA", "ZED"]);
        assert!(
            list.iter()
                .all(|s| s.created_at > 0 && s.updated_at >= s.created_at)
        );
        let json = serde_json::to_string(&list).unwrap();
        assert!(!json.contains("secret-value"), "{json}");
        assert!(vault.remove("ZED").unwrap());
        assert!(!vault.remove("ZED").unwrap());
        assert!(vault.get(&key, &env(), "ZED").unwrap().is_none());
        assert_eq!(vault.list().unwrap().len(), 1);
    }

    #[test]
    fn names_and_values_are_checked() {
        let mut vault = Vault::open_in_memory().unwrap();
        let key = MasterKey::generate();
        for bad in [
            "",
            "has-dash",
            "dotted.name",
            "spa ce",
            "ünï",
            &"x".repeat(129),
        ] {
            let err = vault.set(&key, &env(), bad, b"v").unwrap_err();
            assert!(matches!(err, VaultError::BadName(_)), "{bad}: {err}");
        }
        assert!(vault.set(&key, &env(), "lower_Case_9", b"v").is_ok());
        let empty = vault.set(&key, &env(), "E", b"").unwrap_err();
        assert!(empty.to_string().contains("empty"), "{empty}");
        assert!(vault.set(&key, &env(), "E", b"a\0b").is_err());
        assert!(vault.set(&key, &env(), "E", &[0xff, 0xfe]).is_err());
        assert!(!vault.contains("E").unwrap());
    }
}
