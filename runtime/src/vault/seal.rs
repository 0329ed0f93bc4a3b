//! Sealing one value: XChaCha20-Poly1305 under the master key, a random 24-byte nonce per
//! value, and the secret's name bound as associated data, so a sealed value moved to another
//! name (or another purpose) does not open.
//!
//! A sealed value is `VERSION (1 byte) || nonce (24) || ciphertext and tag`.

use super::key::MasterKey;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;
/// Prefix of the associated data of a secret's value; the name follows.
const SECRET_AAD: &[u8] = b"mcpgate vault v1 secret\0";
/// Associated data of the key check, a sealed empty value that tells a wrong key apart.
const CHECK_AAD: &[u8] = b"mcpgate vault v1 key check";

/// Seals and opens vault values under one master key.
pub(crate) struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    pub(crate) fn new(key: &MasterKey) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.bytes().into()),
        }
    }

    fn seal(&self, plain: &[u8], aad: &[u8]) -> Result<Vec<u8>, ()> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let sealed = self
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plain, aad })
            .map_err(|_| ())?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION {
            return None;
        }
        let (nonce, body) = rest.split_at_checked(NONCE_LEN)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.cipher
            .decrypt(&XNonce::from(nonce), Payload { msg: body, aad })
            .ok()
            .map(Zeroizing::new)
    }

    /// Seals the value of secret `name`.
    pub(crate) fn seal_secret(&self, name: &str, value: &[u8]) -> Result<Vec<u8>, ()> {
        self.seal(value, &secret_aad(name))
    }

    /// Opens the value of secret `name`; `None` if the key is wrong, the bytes were altered,
    /// or they were sealed for another name.
    pub(crate) fn open_secret(&self, name: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.open(sealed, &secret_aad(name))
    }

    /// A fresh key check for this key.
    pub(crate) fn key_check(&self) -> Result<Vec<u8>, ()> {
        self.seal(&[], CHECK_AAD)
    }

    /// Whether `check` was made under this key.
    pub(crate) fn verify_key_check(&self, check: &[u8]) -> bool {
        self.open(check, CHECK_AAD).is_some()
    }
}

fn secret_aad(name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(SECRET_AAD.len() + name.len());
    aad.extend_from_slice(SECRET_AAD);
    aad.extend_from_slice(name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_open_only_under_their_key_and_name() {
        let a = Sealer::new(&MasterKey::generate());
        let b = Sealer::new(&MasterKey::generate());
        let sealed = a.seal_secret("API_KEY", b"s3cret-value").unwrap();
        assert_eq!(
            a.open_secret("API_KEY", &sealed).unwrap().as_slice(),
            b"s3cret-value"
        );
        assert!(
            b.open_secret("API_KEY", &sealed).is_none(),
            "wrong key opened"
        );
        assert!(
            a.open_secret("OTHER", &sealed).is_none(),
            "name swap opened"
        );
        assert!(
            a.open_secret("api_key", &sealed).is_none(),
            "names are case-sensitive"
        );
        // Two seals of one value differ (a fresh nonce each time).
        assert_ne!(sealed, a.seal_secret("API_KEY", b"s3cret-value").unwrap());
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(a.open_secret("API_KEY", &tampered).is_none());
        assert!(a.open_secret("API_KEY", &sealed[..10]).is_none());
        assert!(a.open_secret("API_KEY", &[]).is_none());
    }

    #[test]
    fn the_key_check_tells_keys_apart_and_is_not_a_secret_value() {
        let a = Sealer::new(&MasterKey::generate());
        let check = a.key_check().unwrap();
        assert!(a.verify_key_check(&check));
        assert!(!Sealer::new(&MasterKey::generate()).verify_key_check(&check));
        assert!(a.open_secret("", &check).is_none());
    }
}
