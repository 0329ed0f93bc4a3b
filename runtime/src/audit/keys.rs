//! The audit log's secrets, kept in the state dir (mode 0600): the Ed25519 key that signs
//! checkpoints, and the salt of the HMAC that stands in for sensitive arguments.

use crate::audit::record::{hex, unhex};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use hmac::Mac;
use hmac::digest::KeyInit;
use std::io::Write;
use std::path::Path;

/// File of the checkpoint signing key (hex of the 32-byte seed) in the state dir.
pub const SIGNING_KEY_FILE: &str = "audit-signing.key";
/// File of the HMAC salt (hex of 32 random bytes) in the state dir.
pub const SALT_FILE: &str = "audit-salt";
/// File of the public key (hex), written next to the log files for verifiers.
pub const PUBLIC_KEY_FILE: &str = "audit-signing.pub";

/// What a checkpoint signature covers.
pub fn checkpoint_message(seq: u64, hash: &str) -> Vec<u8> {
    format!("mcpgate-audit-checkpoint:v1:{seq}:{hash}").into_bytes()
}

/// Reads the 32-byte secret in `state/name`, creating it (0600) when absent.
fn load_or_create_secret(state: &Path, name: &str) -> std::io::Result<[u8; 32]> {
    let path = state.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => unhex(text.trim())
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                std::io::Error::other(format!("`{}` does not hold 32 hex bytes", path.display()))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = [0u8; 32];
            rand::fill(&mut secret[..]);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(&path)?;
            f.write_all(hex(&secret).as_bytes())?;
            f.sync_all()?;
            Ok(secret)
        }
        Err(e) => Err(e),
    }
}

/// The checkpoint signing key of the state dir, created on first use.
///
/// # Errors
/// When the key file cannot be read or written, or is damaged.
pub fn signing_key(state: &Path) -> std::io::Result<SigningKey> {
    Ok(SigningKey::from_bytes(&load_or_create_secret(
        state,
        SIGNING_KEY_FILE,
    )?))
}

/// The HMAC salt of the state dir, created on first use.
///
/// # Errors
/// When the salt file cannot be read or written, or is damaged.
pub fn salt(state: &Path) -> std::io::Result<[u8; 32]> {
    load_or_create_secret(state, SALT_FILE)
}

/// Reads the existing signing key of a state dir (never creates one).
pub fn existing_signing_key(state: &Path) -> Option<SigningKey> {
    let text = std::fs::read_to_string(state.join(SIGNING_KEY_FILE)).ok()?;
    let seed = <[u8; 32]>::try_from(unhex(text.trim())?).ok()?;
    Some(SigningKey::from_bytes(&seed))
}

/// A public key from hex (or the contents of a file holding it).
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    let bytes = <[u8; 32]>::try_from(unhex(text.trim())?).ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// Signs a checkpoint; returns the signature, hex.
pub fn sign(key: &SigningKey, seq: u64, hash: &str) -> String {
    hex(&key.sign(&checkpoint_message(seq, hash)).to_bytes())
}

/// Whether `sig` (hex) is `key`'s signature of the checkpoint (`seq`, `hash`).
pub fn verify(key: &VerifyingKey, seq: u64, hash: &str, sig: &str) -> bool {
    let Some(bytes) = unhex(sig).and_then(|b| <[u8; 64]>::try_from(b).ok()) else {
        return false;
    };
    key.verify(
        &checkpoint_message(seq, hash),
        &Signature::from_bytes(&bytes),
    )
    .is_ok()
}

/// HMAC-SHA256 of `data` under `salt`, hex.
pub fn hmac_hex(salt: &[u8; 32], data: &[u8]) -> String {
    // HMAC pads a short key with zeros to the block size: the same MAC, and no error path.
    let mut key = [0u8; 64];
    key[..32].copy_from_slice(salt);
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new(&key.into());
    mac.update(data);
    hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_owner_only_and_sign_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = signing_key(dir.path()).unwrap();
        let k2 = signing_key(dir.path()).unwrap();
        assert_eq!(k1.to_bytes(), k2.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SIGNING_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sig = sign(&k1, 7, "ab");
        let public = parse_public_key(&hex(&k1.verifying_key().to_bytes())).unwrap();
        assert!(verify(&public, 7, "ab", &sig));
        assert!(!verify(&public, 8, "ab", &sig));
        assert!(!verify(&public, 7, "ab", "00"));
        let s = salt(dir.path()).unwrap();
        assert_eq!(s, salt(dir.path()).unwrap());
        assert_ne!(hmac_hex(&s, b"x"), hmac_hex(&[0; 32], b"x"));
        std::fs::write(dir.path().join(SALT_FILE), "nothex").unwrap();
        assert!(salt(dir.path()).is_err());
    }
}
