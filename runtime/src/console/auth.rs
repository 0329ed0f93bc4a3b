//! Console sign-in: a gateway token exchanged for a console session. The session is a random
//! id in an `HttpOnly`, `Secure`, `SameSite=Strict` cookie; the token stays in this process's
//! memory (never in the browser after sign-in) and is checked again on every request, so a
//! revoked or expired token ends its console sessions at once. Every state change carries the
//! session's CSRF token.

use http::HeaderMap;
use http::header::{self, HeaderValue};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The session cookie.
pub const COOKIE: &str = "mcpgate_console";
/// The pre-session cookie of the sign-in form (its CSRF token, double-submitted).
pub const LOGIN_COOKIE: &str = "mcpgate_console_login";
/// The OIDC sign-in's `state`.
pub const OIDC_COOKIE: &str = "mcpgate_console_oidc";
/// How long a console session lasts, whatever happens in it.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// Most console sessions kept; the oldest goes first beyond it.
const MAX_SESSIONS: usize = 1000;

/// One signed-in browser.
#[derive(Debug)]
struct Entry {
    token: Zeroizing<String>,
    csrf: String,
    started: Instant,
}

/// What a request's session cookie stands for.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: String,
    /// The bearer token, as `Authorization` headers for the gateway's own checks.
    pub headers: HeaderMap,
    pub csrf: String,
}

/// The console sessions of this process.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Entry>>,
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
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned map only means a request panicked while holding it; the map is whole.
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session for `token` (already checked); returns its id.
    pub fn start(&self, token: &str) -> String {
        let id = random_id();
        let mut map = self.lock();
        map.retain(|_, e| e.started.elapsed() < LIFETIME);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.started)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(
            id.clone(),
            Entry {
                token: Zeroizing::new(token.to_owned()),
                csrf: random_id(),
                started: Instant::now(),
            },
        );
        id
    }

    /// The live session a request's cookie names.
    pub fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, COOKIE)?;
        let mut map = self.lock();
        let entry = map.get(&id)?;
        if entry.started.elapsed() >= LIFETIME {
            map.remove(&id);
            return None;
        }
        let mut h = HeaderMap::new();
        let bearer = Zeroizing::new(format!("Bearer {}", entry.token.as_str()));
        let mut value = HeaderValue::from_str(&bearer).ok()?;
        value.set_sensitive(true);
        h.insert(header::AUTHORIZATION, value);
        Some(Session {
            id,
            headers: h,
            csrf: entry.csrf.clone(),
        })
    }

    /// Ends a session.
    pub fn end(&self, id: &str) {
        self.lock().remove(id);
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
        let id = s.start("mcpg_secret");
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {COOKIE}={id}")).unwrap(),
        );
        let found = s.find(&h).unwrap();
        assert_eq!(found.id, id);
        assert_eq!(
            found.headers.get(header::AUTHORIZATION).unwrap(),
            "Bearer mcpg_secret"
        );
        assert!(same(&found.csrf, &found.csrf.clone()));
        assert!(!same(&found.csrf, "guess"));
        assert!(!same("", ""));
        s.end(&id);
        assert!(s.find(&h).is_none());
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("mcpgate_console=nope"),
        );
        assert!(s.find(&h).is_none());
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
