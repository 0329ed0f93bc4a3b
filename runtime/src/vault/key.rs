//! The vault's master key: 32 random bytes, from `MCPGATE_MASTER_KEY` (64 hex digits or
//! standard base64), from the file `MCPGATE_MASTER_KEY_FILE` names, or from `master.key` in
//! the state dir (written by `mcpgate init`).

use super::VaultError;
use base64::Engine as _;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

/// The environment variable holding the key itself (64 hex digits or base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "MCPGATE_MASTER_KEY";
/// The environment variable naming a key file (raw 32 bytes) outside the state dir.
pub const MASTER_KEY_FILE_ENV: &str = "MCPGATE_MASTER_KEY_FILE";
/// The key file in the state dir.
pub const KEY_FILE: &str = "master.key";
/// Length of the key in bytes.
pub const KEY_LEN: usize = 32;

/// A 256-bit key, wiped from memory when dropped; `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Where a key came from, for messages (never the key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `MCPGATE_MASTER_KEY`.
    Env,
    /// A key file: `MCPGATE_MASTER_KEY_FILE` or the state dir's `master.key`.
    File(PathBuf),
}

impl std::fmt::Display for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env => write!(f, "`{MASTER_KEY_ENV}`"),
            KeySource::File(p) => write!(f, "`{}`", p.display()),
        }
    }
}

impl MasterKey {
    /// A key from raw bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> MasterKey {
        MasterKey(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> MasterKey {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::fill(&mut key[..]);
        MasterKey(key)
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Parses the text form of `MCPGATE_MASTER_KEY`: 64 hex digits, or standard base64 (with
    /// or without padding) of 32 bytes. Surrounding whitespace is ignored.
    ///
    /// # Errors
    /// When the text is neither; the message never repeats the text.
    pub fn parse(text: &str) -> Result<MasterKey, String> {
        let text = text.trim();
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            for (i, out) in bytes.iter_mut().enumerate() {
                let pair = text.get(2 * i..2 * i + 2).unwrap_or_default();
                *out = u8::from_str_radix(pair, 16).map_err(|_| bad_text())?;
            }
            return Ok(MasterKey(bytes));
        }
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let mut decoded = Zeroizing::new(engine.decode(text).map_err(|_| bad_text())?);
        if decoded.len() != KEY_LEN {
            decoded.zeroize();
            return Err(bad_text());
        }
        bytes.copy_from_slice(&decoded);
        Ok(MasterKey(bytes))
    }

    /// Reads a key file: exactly 32 raw bytes.
    ///
    /// # Errors
    /// When the file cannot be read or holds anything else.
    pub fn read_file(path: &Path) -> Result<MasterKey, VaultError> {
        let bad = |reason: String| VaultError::Key(format!("`{}` {reason}", path.display()));
        let mut file =
            std::fs::File::open(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
        let mut buf = Zeroizing::new(Vec::with_capacity(KEY_LEN));
        // One byte more than a key, to tell a longer file apart without reading it all.
        std::io::Read::by_ref(&mut file)
            .take(KEY_LEN as u64 + 1)
            .read_to_end(&mut buf)
            .map_err(|e| bad(format!("cannot be read: {e}")))?;
        if buf.len() != KEY_LEN {
            return Err(bad(format!(
                "is not a master key: it must hold exactly {KEY_LEN} bytes"
            )));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&buf);
        Ok(MasterKey(bytes))
    }

    /// Writes the key to a new file, mode 0600; an existing file is never replaced.
    ///
    /// # Errors
    /// When the file exists or cannot be written.
    pub fn write_new(&self, path: &Path) -> io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        let written = file.write_all(&self.0[..]).and_then(|()| file.sync_all());
        if written.is_err() {
            // A half-written key would lock the vault later: leave no file behind.
            let _ = std::fs::remove_file(path);
        }
        written
    }

    /// The key for the vault in `state_dir`: `MCPGATE_MASTER_KEY`, else the file named by
    /// `MCPGATE_MASTER_KEY_FILE`, else `STATE/master.key`. `Ok(None)` when none of them is
    /// there.
    ///
    /// # Errors
    /// A key that is there but malformed or unreadable.
    pub fn locate(state_dir: &Path) -> Result<Option<(MasterKey, KeySource)>, VaultError> {
        if let Some(text) = std::env::var_os(MASTER_KEY_ENV) {
            let text = Zeroizing::new(text.to_string_lossy().into_owned());
            if !text.trim().is_empty() {
                let key = MasterKey::parse(&text).map_err(VaultError::Key)?;
                return Ok(Some((key, KeySource::Env)));
            }
        }
        if let Some(path) = std::env::var_os(MASTER_KEY_FILE_ENV).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            let key = MasterKey::read_file(&path)?;
            return Ok(Some((key, KeySource::File(path))));
        }
        let path = state_dir.join(KEY_FILE);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => {
                let key = MasterKey::read_file(&path)?;
                Ok(Some((key, KeySource::File(path))))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(VaultError::Key(format!(
                "`{}` cannot be read: {e}",
                path.display()
            ))),
        }
    }
}

fn bad_text() -> String {
    format!("`{MASTER_KEY_ENV}` must be 64 hex digits or the base64 of {KEY_LEN} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base64_forms_give_the_same_key() {
        let raw: [u8; KEY_LEN] = std::array::from_fn(|i| i as u8 * 7);
        let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(MasterKey::parse(&hex).unwrap().bytes(), &raw);
        assert_eq!(MasterKey::parse(&hex.to_uppercase()).unwrap().bytes(), &raw);
        assert_eq!(
            MasterKey::parse(&format!(" {b64}\n")).unwrap().bytes(),
            &raw
        );
        assert_eq!(
            MasterKey::parse(b64.trim_end_matches('=')).unwrap().bytes(),
            &raw
        );
    }

    #[test]
    fn malformed_keys_are_refused_without_echoing_them() {
        for text in [
            "",
            "abcd",
            "not a key at all but long enough to be one, maybe",
            &"0".repeat(66),
        ] {
            let err = MasterKey::parse(text).unwrap_err();
            assert!(err.contains("64 hex digits"), "{err}");
            if !text.is_empty() {
                assert!(!err.contains(text), "{err}");
            }
        }
        let sixteen = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        assert!(MasterKey::parse(&sixteen).is_err());
    }

    #[test]
    fn key_files_are_new_owner_only_and_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let key = MasterKey::generate();
        key.write_new(&path).unwrap();
        assert!(
            key.write_new(&path).is_err(),
            "an existing key was replaced"
        );
        assert_eq!(MasterKey::read_file(&path).unwrap().bytes(), key.bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, b"short").unwrap();
        let err = MasterKey::read_file(&path).unwrap_err().to_string();
        assert!(err.contains("exactly 32 bytes"), "{err}");
        assert!(format!("{key:?}").contains("redacted"));
    }
}
