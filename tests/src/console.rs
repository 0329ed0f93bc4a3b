//! The web console over plain HTTP, without a browser: sign in with a gateway token and
//! read what forms need (the session cookie, a page's CSRF token).

use crate::http::{Response, request};
use std::net::SocketAddr;

/// The `name=value` of a `Set-Cookie` header named `name`.
pub fn set_cookie(r: &Response, name: &str) -> String {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .filter_map(|(_, v)| v.split(';').next())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no `{name}` cookie: {r}"))
        .to_owned()
}

/// The CSRF token of the first form of a page.
pub fn csrf_of(page: &str) -> String {
    let re = regex::Regex::new(r#"name="csrf" value="([0-9a-f]+)""#).unwrap();
    re.captures(page)
        .unwrap_or_else(|| panic!("no CSRF field in {page}"))[1]
        .to_owned()
}

/// Signs in to the console at `addr` with `token`; returns the session cookie
/// (`mcpgate_console=...`).
pub fn sign_in(addr: SocketAddr, token: &str) -> String {
    let form = request(addr, "GET", "/console/login", &[], b"");
    let login_cookie = set_cookie(&form, "mcpgate_console_login");
    let body = format!("csrf={}&token={token}", csrf_of(&form.text()));
    let done = request(
        addr,
        "POST",
        "/console/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &login_cookie),
        ],
        body.as_bytes(),
    );
    assert_eq!(done.status, 303, "{done}");
    set_cookie(&done, "mcpgate_console")
}
