//! Console sessions in PostgreSQL (`state.postgres`): a browser signed in through one
//! replica is signed in on every replica, and signing out through any replica ends it on
//! all of them.
//!
//! A row holds nothing that signs anyone in by itself: the session id only as its SHA-256
//! (the cookie holds the id), and the credential the session re-checks on every request
//! sealed (XChaCha20-Poly1305) under a key derived from both `session.key` and the session
//! id, so opening it takes the browser's cookie as well as the fleet's key. The credential
//! itself is checked again on every request by the gateway's identity check (the shared
//! token table), so a revoked or expired token ends its sessions on every replica at once.

use super::{LIFETIME, SessionStore, SessionStoreError, Stored};
use crate::state::db::Migration;
use crate::state::postgres::Pg;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The shared session table.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "console.v1",
    sql: "CREATE TABLE mcpgate_console_sessions (
            id_sha256 TEXT PRIMARY KEY,
            sealed BYTEA NOT NULL,
            csrf TEXT NOT NULL,
            started BIGINT NOT NULL,
            expires BIGINT NOT NULL
          );
          CREATE INDEX mcpgate_console_sessions_by_expiry
            ON mcpgate_console_sessions (expires);
          CREATE INDEX mcpgate_console_sessions_by_age
            ON mcpgate_console_sessions (started);",
}];

/// The label of the key derived from `session.key` for console sessions.
pub const KEY_LABEL: &[u8] = b"mcpgate console sessions v1";
/// Binds a sealed credential to its purpose.
const AAD: &[u8] = b"mcpgate console session v1";
const NONCE_LEN: usize = 24;
/// Most sessions in the table; beyond it, the oldest end.
const MAX_SESSIONS: i64 = 10_000;

/// The console sessions of a fleet.
#[derive(Debug)]
pub struct PgSessions {
    pg: Arc<Pg>,
    seal: Seal,
}

/// Seals the credentials of sessions.
struct Seal {
    /// Derived from `session.key` ([`KEY_LABEL`]): every replica sharing the key opens the
    /// credentials any of them sealed.
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seal").finish_non_exhaustive()
    }
}

/// The hex SHA-256 of a session id: the row's key.
fn id_hash(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> i64 {
    i64::try_from(crate::clock::now_secs()).unwrap_or(i64::MAX)
}

impl PgSessions {
    /// Sessions in `pg` (opened with [`MIGRATIONS`]), credentials sealed under `key`.
    pub fn new(pg: Arc<Pg>, key: [u8; 32]) -> PgSessions {
        PgSessions {
            pg,
            seal: Seal {
                key: Zeroizing::new(key),
            },
        }
    }
}

impl Seal {
    /// The cipher of one session: its key is an HMAC of the session id under the fleet's
    /// derived key, so the row alone (which has only the id's hash) does not open.
    fn cipher(&self, id: &str) -> Result<XChaCha20Poly1305, SessionStoreError> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_slice())
            .map_err(|e| SessionStoreError(e.to_string()))?;
        mac.update(id.as_bytes());
        let key: Zeroizing<[u8; 32]> = Zeroizing::new(mac.finalize().into_bytes().into());
        Ok(XChaCha20Poly1305::new(&(*key).into()))
    }

    fn seal(&self, id: &str, token: &str) -> Result<Vec<u8>, SessionStoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce[..]);
        let payload = Payload {
            msg: token.as_bytes(),
            aad: AAD,
        };
        let sealed = self
            .cipher(id)?
            .encrypt(&XNonce::from(nonce), payload)
            .map_err(|_| SessionStoreError("cannot seal the session's credential".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The credential of a row, or `None` when it does not open (sealed under another
    /// `session.key`, or not this id's).
    fn open(&self, id: &str, sealed: &[u8]) -> Option<Zeroizing<String>> {
        let (nonce, body) = sealed.split_at_checked(NONCE_LEN)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let payload = Payload {
            msg: body,
            aad: AAD,
        };
        let plain = Zeroizing::new(
            self.cipher(id)
                .ok()?
                .decrypt(&XNonce::from(nonce), payload)
                .ok()?,
        );
        std::str::from_utf8(&plain)
            .ok()
            .map(|s| Zeroizing::new(s.to_owned()))
    }
}

impl SessionStore for PgSessions {
    fn start(&self, id: &str, token: &str, csrf: &str) -> Result<(), SessionStoreError> {
        let sealed = self.seal.seal(id, token)?;
        let hash = id_hash(id);
        let started = now();
        let expires = started.saturating_add(i64::try_from(LIFETIME.as_secs()).unwrap_or(0));
        self.pg.run(async |c| {
            let tx = c.transaction().await?;
            tx.execute(
                "DELETE FROM mcpgate_console_sessions WHERE expires <= $1",
                &[&started],
            )
            .await?;
            tx.execute(
                "INSERT INTO mcpgate_console_sessions (id_sha256, sealed, csrf, started, expires)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&hash, &sealed, &csrf, &started, &expires],
            )
            .await?;
            tx.execute(
                "DELETE FROM mcpgate_console_sessions WHERE id_sha256 IN (
                   SELECT id_sha256 FROM mcpgate_console_sessions
                   ORDER BY started DESC, id_sha256 OFFSET $1)",
                &[&MAX_SESSIONS],
            )
            .await?;
            tx.commit().await
        })?;
        Ok(())
    }

    fn find(&self, id: &str) -> Result<Option<Stored>, SessionStoreError> {
        let hash = id_hash(id);
        let at = now();
        let row = self.pg.run(async |c| {
            let found = c
                .query_opt(
                    "SELECT sealed, csrf FROM mcpgate_console_sessions
                     WHERE id_sha256 = $1 AND expires > $2",
                    &[&hash, &at],
                )
                .await?;
            found
                .map(|r| {
                    Ok::<_, tokio_postgres::Error>((
                        r.try_get::<_, Vec<u8>>(0)?,
                        r.try_get::<_, String>(1)?,
                    ))
                })
                .transpose()
        })?;
        let Some((sealed, csrf)) = row else {
            return Ok(None);
        };
        match self.seal.open(id, &sealed) {
            Some(token) => Ok(Some(Stored { token, csrf })),
            None => {
                // Left for the replicas that can open it: this one has another key.
                tracing::warn!(
                    "a console session does not open with this replica's session.key; give every replica the same key"
                );
                Ok(None)
            }
        }
    }

    fn end(&self, id: &str) -> Result<(), SessionStoreError> {
        let hash = id_hash(id);
        self.pg.run(async |c| {
            c.execute(
                "DELETE FROM mcpgate_console_sessions WHERE id_sha256 = $1",
                &[&hash],
            )
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_credential_opens_only_with_its_session_id_and_key() {
        let s = Seal {
            key: Zeroizing::new([7u8; 32]),
        };
        let sealed = s.seal("id-1", "mcpg_secret").unwrap();
        assert!(!sealed.windows(11).any(|w| w == b"mcpg_secret"));
        assert_eq!(s.open("id-1", &sealed).unwrap().as_str(), "mcpg_secret");
        assert!(s.open("id-2", &sealed).is_none());
        let other = Seal {
            key: Zeroizing::new([8u8; 32]),
        };
        assert!(other.open("id-1", &sealed).is_none());
        assert!(s.open("id-1", &sealed[..10]).is_none());
        assert_ne!(id_hash("id-1"), "id-1");
        assert_eq!(id_hash("id-1").len(), 64);
    }
}
