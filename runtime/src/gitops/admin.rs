//! `POST /admin/sync`: an admin bearer token or a GitHub push webhook signed with
//! `X-Hub-Signature-256` triggers a sync now. Both are compared in constant time.

use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::ConstantTimeEq;

/// Environment variable holding the admin token.
pub const ADMIN_TOKEN_ENV: &str = "MCPGATE_ADMIN_TOKEN";
/// File in the state dir holding the admin token (when the variable is unset).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// Environment variable holding the webhook secret.
pub const WEBHOOK_SECRET_ENV: &str = "MCPGATE_WEBHOOK_SECRET";

/// The credentials `/admin/sync` accepts.
#[derive(Default)]
pub struct AdminAuth {
    token: Option<String>,
    webhook_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAuth")
            .field("token", &self.token.is_some())
            .field("webhook_secret", &self.webhook_secret.is_some())
            .finish()
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Neither a token nor a webhook secret is configured.
    NotConfigured,
    /// Wrong, missing or malformed credentials.
    Unauthorized,
}

impl AdminAuth {
    /// Reads the token (`MCPGATE_ADMIN_TOKEN`, else `admin.token` in the state dir) and the
    /// webhook secret (`MCPGATE_WEBHOOK_SECRET`). Empty values count as unset.
    pub fn from_env(state: &Path) -> AdminAuth {
        let token = std::env::var(ADMIN_TOKEN_ENV)
            .ok()
            .or_else(|| std::fs::read_to_string(state.join(ADMIN_TOKEN_FILE)).ok())
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        let webhook_secret = std::env::var(WEBHOOK_SECRET_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .map(String::into_bytes);
        AdminAuth {
            token,
            webhook_secret,
        }
    }

    /// Whether anything can authorize a sync.
    pub fn configured(&self) -> bool {
        self.token.is_some() || self.webhook_secret.is_some()
    }

    /// Checks a request: `X-Hub-Signature-256` over the body when present, else
    /// `Authorization: Bearer`.
    ///
    /// # Errors
    /// When nothing is configured or the credentials do not match.
    pub fn check(
        &self,
        authorization: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<(), Refusal> {
        if !self.configured() {
            return Err(Refusal::NotConfigured);
        }
        if let Some(sig) = signature {
            let Some(secret) = &self.webhook_secret else {
                return Err(Refusal::Unauthorized);
            };
            return verify_signature(secret, sig, body)
                .then_some(())
                .ok_or(Refusal::Unauthorized);
        }
        let (Some(token), Some(auth)) = (&self.token, authorization) else {
            return Err(Refusal::Unauthorized);
        };
        let Some(given) = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
        else {
            return Err(Refusal::Unauthorized);
        };
        // Hashing first makes the comparison independent of the lengths.
        let a = Sha256::digest(given.trim().as_bytes());
        let b = Sha256::digest(token.as_bytes());
        if bool::from(a[..].ct_eq(&b[..])) {
            Ok(())
        } else {
            Err(Refusal::Unauthorized)
        }
    }
}

pub use crate::signature::{sign, verify_signature};

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> AdminAuth {
        AdminAuth {
            token: Some("tok".into()),
            webhook_secret: Some(b"shh".to_vec()),
        }
    }

    #[test]
    fn bearer_token_must_match() {
        let a = auth();
        assert_eq!(a.check(Some("Bearer tok"), None, b""), Ok(()));
        assert_eq!(
            a.check(Some("Bearer tok2"), None, b""),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(a.check(None, None, b""), Err(Refusal::Unauthorized));
        assert_eq!(
            AdminAuth::default().check(Some("Bearer tok"), None, b""),
            Err(Refusal::NotConfigured)
        );
    }

    #[test]
    fn webhook_signature_covers_the_body() {
        let a = auth();
        let sig = sign(b"shh", b"{\"ref\":\"x\"}");
        assert_eq!(a.check(None, Some(&sig), b"{\"ref\":\"x\"}"), Ok(()));
        assert_eq!(
            a.check(None, Some(&sig), b"{\"ref\":\"y\"}"),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            a.check(Some("Bearer tok"), Some("sha256=zz"), b""),
            Err(Refusal::Unauthorized)
        );
    }
}
