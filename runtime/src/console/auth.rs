//! Console sign-in: a gateway token exchanged for a console session. The session is a random
//! id in an `HttpOnly`, `Secure`, `SameSite=Strict` cookie; the token stays on the server
//! (in this process's memory, or sealed in the fleet's PostgreSQL: [`super::sessions`]),
//! never in the browser after sign-in, and is checked again on every request, so a revoked
//! or expired token ends its console sessions at once. Every state change carries the
//! session's CSRF token.

use super::sessions::{MemorySessions, SessionStore, SessionStoreError};
use http::HeaderMap;
use http::header::{self, HeaderValue};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The session cookie.
pub const COOKIE: &str = "mcpgate_console";
/// The pre-session cookie of the sign-in form (its CSRF token, double-submitted).
pub const LOGIN_COOKIE: &str = "mcpgate_console_login";
/// The OIDC sign-in's `state`.
pub const OIDC_COOKIE: &str = "mcpgate_console_oidc";
/// How long a console session lasts, whatever happens in it.
pub use super::sessions::LIFETIME;

/// What a request's session cookie stands for.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// The bearer token, as `Authorization` headers for the gateway's own checks.
    pub headers: HeaderMap,
    pub csrf: String,
}

/// The console sessions, in the store `serve` chose (memory, or the fleet's PostgreSQL).
#[derive(Debug, Clone)]
pub struct Sessions {
    store: Arc<dyn SessionStore>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::over(Arc::new(MemorySessions::default()))
    }
}

/// 32 random bytes, hex.
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    rand::fill(&mut b[..]);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Constant-time comparison of two secrets (CSRF tokens).
pub fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && a.as_bytes().ct_eq(b.as_bytes()).into()
}

impl Sessions {
    /// Sessions kept in `store`.
    pub fn over(store: Arc<dyn SessionStore>) -> Sessions {
        Sessions { store }
    }

    /// Where the sessions are kept: `"memory"` or `"postgres"`.
    pub fn kind(&self) -> &'static str {
        self.store.kind()
    }

    /// Starts a session for `token` (already checked); returns its id.
    ///
    /// # Errors
    /// When the store cannot be written.
    pub fn start(&self, token: &str) -> Result<String, SessionStoreError> {
        let id = random_id();
        self.store.start(&id, token, &random_id())?;
        Ok(id)
    }

    /// The live session a request's cookie names.
    ///
    /// # Errors
    /// When the store cannot be read: the caller is refused, never let in unchecked.
    pub fn find(&self, headers: &HeaderMap) -> Result<Option<Session>, SessionStoreError> {
        // Only ids of the form `random_id` makes reach the store (no lookup for junk).
        let Some(id) = cookie(headers, COOKIE)
            .filter(|id| id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return Ok(None);
        };
        let Some(stored) = self.store.find(&id)? else {
            return Ok(None);
        };
        let mut h = HeaderMap::new();
        let bearer = Zeroizing::new(format!("Bearer {}", stored.token.as_str()));
        let Ok(mut value) = HeaderValue::from_str(&bearer) else {
            return Ok(None);
        };
        value.set_sensitive(true);
        h.insert(header::AUTHORIZATION, value);
        Ok(Some(Session {
            id,
            headers: h,
            csrf: stored.csrf,
        }))
    }

    /// Ends a session.
    ///
    /// # Errors
    /// When the store cannot be written.
    pub fn end(&self, id: &str) -> Result<(), SessionStoreError> {
        self.store.end(id)
    }
}

/// The value of cookie `name` in a request, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value for the console: `HttpOnly`, `Secure`, `SameSite=Strict`, scoped to
/// `/console`; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: Duration) -> Option<HeaderValue> {
    cookie_with(name, value, max_age, "Strict")
}

/// The OIDC sign-in's `state` cookie: `SameSite=Lax`, since the provider sends the browser
/// back with a top-level navigation from its own site (which a `Strict` cookie would miss).
/// It only binds the answer to the browser that started the sign-in.
pub fn set_state_cookie(value: &str, max_age: Duration) -> Option<HeaderValue> {
    cookie_with(OIDC_COOKIE, value, max_age, "Lax")
}

fn cookie_with(name: &str, value: &str, max_age: Duration, same_site: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; Secure; SameSite={same_site}; Max-Age={}",
        max_age.as_secs()
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_cookie_and_ended() {
        let s = Sessions::default();
        let id = s.start("mcpg_secret").unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={id}")).unwrap(),
        );
        let found = s.find(&h).unwrap().unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(found.id, id);
        assert_eq!(
            found.headers.get(header::AUTHORIZATION).unwrap(),
            "Bearer mcpg_secret"
        );
        assert!(same(&found.csrf, &found.csrf.clone()));
        assert!(!same(&found.csrf, "guess"));
        assert!(!same("", ""));
        s.end(&id).unwrap();
        assert!(s.find(&h).unwrap().is_none());
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("mcpgate_console=nope"),
        );
        assert!(s.find(&h).unwrap().is_none());
        assert_eq!(s.kind(), "memory");
    }

    #[test]
    fn cookies_are_strict() {
        let v = set_cookie(COOKIE, "abc", LIFETIME).unwrap();
        let v = v.to_str().unwrap();
        for part in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/console"] {
            assert!(v.contains(part), "{v}");
        }
    }
}
