//! The operator's web console under `/console` on the gateway's port: the approvals inbox
//! (live over SSE), the audit explorer, and the gateway's status with the signed-in person's
//! tokens. Server-rendered HTML (maud, which escapes what it interpolates), one small script
//! and one stylesheet compiled into the binary, a strict Content-Security-Policy, sessions
//! behind `HttpOnly` `SameSite=Strict` cookies and a CSRF token on every state change.
//! See `docs/console.md`.
//!
//! Files: `auth.rs` (sign-in and sessions), `sessions/` (where sessions are kept: memory, or
//! the fleet's PostgreSQL), `oidc.rs` (sign-in with the OIDC provider), `web.rs` (responses, forms), `layout.rs` (the
//! page frame), `inbox.rs`, `audit.rs`, `status.rs`, `who_can.rs`, `assets/`.
//!
//! Gateway level: uses `gateway` (which routes to it through [`crate::gateway::http::Mounted`]),
//! the services and `session`; only `cli` uses it.

pub mod audit;
pub mod auth;
pub mod inbox;
pub mod layout;
pub mod oidc;
pub mod sessions;
pub mod status;
pub mod web;
pub mod who_can;

use crate::approvals::Approver;
use crate::gateway::Gateway;
use crate::gateway::http::{Body, Mounted};
use auth::Sessions;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use layout::Viewer;
use maud::html;
use mcpgate_compiler::request::{Principal, PrincipalKind};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");
const ICON: &str = include_str!("assets/icon.svg");

/// The console, mounted on a gateway by `serve`.
#[derive(Debug, Clone, Default)]
pub struct Console {
    sessions: Sessions,
    oidc: Option<Arc<oidc::Flow>>,
}

impl Console {
    /// A console keeping its sessions in `sessions`; `oidc` adds sign-in with the identity
    /// provider.
    pub fn new(oidc: Option<oidc::Flow>, sessions: Sessions) -> Console {
        Console {
            sessions,
            oidc: oidc.map(Arc::new),
        }
    }
}

impl Mounted for Console {
    fn owns(&self, path: &str) -> bool {
        path == "/console" || path.starts_with("/console/")
    }

    fn handle(
        &self,
        gw: Arc<Gateway>,
        req: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        let this = self.clone();
        Box::pin(async move { this.route(gw, req).await })
    }
}

/// Who a request comes from: their console session and principal (with the groups
/// `principals.yaml` gives them).
struct Who {
    session: auth::Session,
    principal: Principal,
}

impl Who {
    fn viewer(&self) -> Viewer<'_> {
        Viewer {
            id: &self.principal.id,
            groups: &self.principal.groups,
            csrf: &self.session.csrf,
        }
    }

    fn approver(&self) -> Approver {
        Approver {
            id: self.principal.id.clone(),
            groups: self.principal.groups.clone(),
            operator: None,
        }
    }
}

fn not_found() -> Response<Body> {
    web::html(
        StatusCode::NOT_FOUND,
        layout::message("Not found", "There is no such console page."),
    )
}

fn refused(status: StatusCode, text: &str) -> Response<Body> {
    web::html(status, layout::message("Refused", text))
}

/// The session store does not answer: nobody is let in unchecked. The cause is logged, not
/// shown.
fn store_down(e: &sessions::SessionStoreError) -> Response<Body> {
    tracing::warn!(error = %e, "console request refused: its session cannot be checked");
    web::html(
        StatusCode::SERVICE_UNAVAILABLE,
        layout::message(
            "Unavailable",
            "Console sign-ins cannot be checked right now: the session store does not answer. Try again in a moment.",
        ),
    )
}

impl Console {
    /// The caller's principal for `headers` (a bearer token), if the gateway's identity check
    /// accepts it and it is not anonymous.
    async fn principal(gw: &Gateway, headers: &HeaderMap) -> Result<Principal, String> {
        match gw.identity.authenticate(headers).await {
            Ok(a) if a.principal.kind != PrincipalKind::Anonymous => {
                Ok(gw.program.load().principal(&a.principal).into_owned())
            }
            Ok(_) => Err("this gateway has no `identity` section: nobody can sign in".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The signed-in caller; a session whose token no longer checks out is ended.
    ///
    /// # Errors
    /// When the session store does not answer.
    async fn who(
        &self,
        gw: &Gateway,
        headers: &HeaderMap,
    ) -> Result<Option<Who>, sessions::SessionStoreError> {
        let Some(session) = self.sessions.find(headers)? else {
            return Ok(None);
        };
        match Console::principal(gw, &session.headers).await {
            Ok(principal) => Ok(Some(Who { session, principal })),
            Err(e) => {
                tracing::info!(error = %e, "console session ended: its token no longer checks out");
                if let Err(e) = self.sessions.end(&session.id) {
                    // Refused all the same: every request checks the token again.
                    tracing::warn!(error = %e, "a console session whose token no longer checks out could not be removed");
                }
                Ok(None)
            }
        }
    }

    async fn route(&self, gw: Arc<Gateway>, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let method = req.method().clone();
        match (&method, path.as_str()) {
            (&Method::GET, "/console/assets/console.css") => {
                return cached(web::bytes(StatusCode::OK, "text/css; charset=utf-8", CSS));
            }
            (&Method::GET, "/console/assets/console.js") => {
                return cached(web::bytes(
                    StatusCode::OK,
                    "text/javascript; charset=utf-8",
                    JS,
                ));
            }
            (&Method::GET, "/console/assets/icon.svg") => {
                return cached(web::bytes(StatusCode::OK, "image/svg+xml", ICON));
            }
            (&Method::GET, "/console/login") => return self.login_form(&gw, None),
            (&Method::GET, "/console/login/oidc") => return self.oidc_begin(&gw, &req).await,
            (&Method::GET, "/console/login/callback") => {
                return self.oidc_callback(&gw, &req).await;
            }
            (&Method::POST, "/console/login") => return self.login(&gw, req).await,
            _ => {}
        }
        let who = match self.who(&gw, req.headers()).await {
            Ok(who) => who,
            Err(e) => return store_down(&e),
        };
        let Some(who) = who else {
            return if method == Method::GET && path != "/console/events" {
                web::redirect("/console/login")
            } else {
                refused(StatusCode::UNAUTHORIZED, "Sign in first.")
            };
        };
        if method == Method::POST {
            let (parts, body) = req.into_parts();
            let fields = match web::form(body).await {
                Ok(f) => f,
                Err(e) => return refused(StatusCode::PAYLOAD_TOO_LARGE, e),
            };
            if !web::field(&fields, "csrf").is_some_and(|t| auth::same(t, &who.session.csrf)) {
                tracing::warn!(principal = %who.principal.id, path = %parts.uri.path(), "console form refused: missing or wrong CSRF token");
                return refused(
                    StatusCode::FORBIDDEN,
                    "The form's CSRF token is missing or wrong; reload the page and try again.",
                );
            }
            return self.post(&gw, &who, &path, &fields).await;
        }
        if method != Method::GET {
            return refused(StatusCode::METHOD_NOT_ALLOWED, "Use GET or a form.");
        }
        let query = web::query(req.uri());
        match path.as_str() {
            "/console" => inbox_page(&gw, &who, &query).await,
            "/console/approvals" => match approvals_of(&gw, &who).await {
                Ok(items) => web::html(StatusCode::OK, inbox::list(&items, &who.session.csrf)),
                Err(e) => refused(StatusCode::SERVICE_UNAVAILABLE, &e),
            },
            "/console/events" => match gw.approvals.get() {
                Some(a) => inbox::events(&gw, a),
                None => not_found(),
            },
            "/console/audit" => audit_page(&gw, &who, query).await,
            "/console/status" => status_page(&gw, &who, &query).await,
            "/console/who-can" => who_can_page(&gw, &who, &query).await,
            p => match p.strip_prefix("/console/audit/").map(str::parse::<u64>) {
                Some(Ok(seq)) => record_page(&gw, &who, seq).await,
                _ => not_found(),
            },
        }
    }

    async fn login(&self, gw: &Gateway, req: Request<Incoming>) -> Response<Body> {
        let expected = auth::cookie(req.headers(), auth::LOGIN_COOKIE);
        let fields = match web::form(req.into_body()).await {
            Ok(f) => f,
            Err(e) => return refused(StatusCode::PAYLOAD_TOO_LARGE, e),
        };
        let csrf_ok = matches!((web::field(&fields, "csrf"), &expected), (Some(given), Some(want)) if auth::same(given, want));
        if !csrf_ok {
            return refused(
                StatusCode::FORBIDDEN,
                "The sign-in form's CSRF token is missing or wrong; reload the page and try again.",
            );
        }
        let Some(token) = web::field(&fields, "token") else {
            return self.login_form(gw, Some("Paste a gateway token."));
        };
        let mut headers = HeaderMap::new();
        let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {token}")) else {
            return self.login_form(gw, Some("That is not a token."));
        };
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
        match Console::principal(gw, &headers).await {
            Ok(p) => {
                tracing::info!(principal = %p.id, "console sign-in");
                self.signed_in(token)
            }
            Err(e) => {
                tracing::info!(error = %e, "console sign-in refused");
                self.login_form(gw, Some(&format!("Sign-in refused: {e}.")))
            }
        }
    }

    fn login_form(&self, gw: &Gateway, error: Option<&str>) -> Response<Body> {
        let csrf = auth::random_id();
        let body = html! {
            h1 { "Sign in" }
            @if !gw.identity.enabled() {
                p.error role="alert" { "This gateway has no " code { "identity" } " section, so nobody can sign in. Configure identity with gateway tokens (see docs/identity.md)." }
            }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.login method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(csrf);
                label { "Gateway token "
                    input type="password" name="token" autocomplete="off" required placeholder="mcpg_..."; }
                button type="submit" { "Sign in" }
            }
            p.hint { "Issue one with " code { "mcpgate token issue --subject you@example.com --kind human" } "." }
            @if let Some(flow) = &self.oidc {
                p.oidc { a.button href="/console/login/oidc" { "Sign in with " (flow.issuer()) } }
            }
        };
        let mut r = web::html(
            if error.is_some() {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            },
            layout::page("Sign in", "", None, &body),
        );
        if let Some(c) = auth::set_cookie(
            auth::LOGIN_COOKIE,
            &csrf,
            std::time::Duration::from_secs(3600),
        ) {
            r.headers_mut().append(header::SET_COOKIE, c);
        }
        r
    }

    /// A new session for `token` (already checked): the cookie, and the inbox.
    fn signed_in(&self, token: &str) -> Response<Body> {
        let id = match self.sessions.start(token) {
            Ok(id) => id,
            Err(e) => return store_down(&e),
        };
        let mut r = web::redirect("/console");
        let h = r.headers_mut();
        if let Some(c) = auth::set_cookie(auth::COOKIE, &id, auth::LIFETIME) {
            h.append(header::SET_COOKIE, c);
        }
        for gone in [auth::LOGIN_COOKIE, auth::OIDC_COOKIE] {
            if let Some(c) = auth::set_cookie(gone, "", std::time::Duration::ZERO) {
                h.append(header::SET_COOKIE, c);
            }
        }
        r
    }

    /// `GET /console/login/oidc`: to the provider, with PKCE.
    async fn oidc_begin(&self, gw: &Gateway, req: &Request<Incoming>) -> Response<Body> {
        let Some(flow) = &self.oidc else {
            return not_found();
        };
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        match flow.begin(host).await {
            Ok((location, state)) => {
                let mut r = web::redirect(&location);
                if let Some(c) = auth::set_state_cookie(&state, oidc::PENDING_FOR) {
                    r.headers_mut().append(header::SET_COOKIE, c);
                }
                r
            }
            Err(e) => {
                tracing::warn!(error = %e, "console OIDC sign-in cannot start");
                self.login_form(gw, Some(&format!("Sign-in with the provider failed: {e}.")))
            }
        }
    }

    /// `GET /console/login/callback`: the provider's answer. The state must be the one this
    /// browser started with, the ID token must pass the gateway's identity check and carry
    /// this sign-in's nonce.
    async fn oidc_callback(&self, gw: &Gateway, req: &Request<Incoming>) -> Response<Body> {
        let Some(flow) = &self.oidc else {
            return not_found();
        };
        let q = web::query(req.uri());
        if let Some(e) = web::field(&q, "error") {
            return self.login_form(gw, Some(&format!("The provider refused the sign-in: {e}.")));
        }
        let (Some(state), Some(code)) = (web::field(&q, "state"), web::field(&q, "code")) else {
            return refused(
                StatusCode::BAD_REQUEST,
                "The provider's answer has no code or state.",
            );
        };
        let ours = auth::cookie(req.headers(), auth::OIDC_COOKIE);
        if !ours.as_deref().is_some_and(|c| auth::same(c, state)) {
            tracing::warn!("console OIDC callback refused: the state is not this browser's");
            return refused(
                StatusCode::FORBIDDEN,
                "This sign-in was not started in this browser; start again.",
            );
        }
        let (id_token, nonce) = match flow.finish(state, code).await {
            Ok(x) => x,
            Err(e) => {
                tracing::info!(error = %e, "console OIDC sign-in refused");
                return self.login_form(gw, Some(&format!("Sign-in refused: {e}.")));
            }
        };
        let mut headers = HeaderMap::new();
        let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {id_token}")) else {
            return self.login_form(gw, Some("The provider returned an unusable token."));
        };
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
        let principal = match Console::principal(gw, &headers).await {
            Ok(p) => p,
            Err(e) => {
                tracing::info!(error = %e, "console OIDC sign-in refused");
                return self.login_form(gw, Some(&format!("Sign-in refused: {e}.")));
            }
        };
        if !oidc::nonce_of(&id_token).is_some_and(|n| auth::same(&n, &nonce)) {
            tracing::warn!(principal = %principal.id, "console OIDC sign-in refused: the ID token's nonce is not this sign-in's");
            return refused(
                StatusCode::FORBIDDEN,
                "The ID token is not for this sign-in.",
            );
        }
        tracing::info!(principal = %principal.id, "console sign-in (OIDC)");
        self.signed_in(&id_token)
    }

    async fn post(
        &self,
        gw: &Gateway,
        who: &Who,
        path: &str,
        fields: &HashMap<String, String>,
    ) -> Response<Body> {
        if path == "/console/logout" {
            if let Err(e) = self.sessions.end(&who.session.id) {
                return store_down(&e);
            }
            let mut r = web::redirect("/console/login");
            if let Some(c) = auth::set_cookie(auth::COOKIE, "", std::time::Duration::ZERO) {
                r.headers_mut().append(header::SET_COOKIE, c);
            }
            return r;
        }
        let parts: Vec<&str> = path.split('/').skip(2).collect();
        match parts.as_slice() {
            ["approvals", id, action @ ("approve" | "deny")] => {
                let Some(approvals) = gw.approvals.get() else {
                    return not_found();
                };
                let approve = *action == "approve";
                match inbox::decide(approvals, &who.approver(), id, approve, fields).await {
                    Ok(_) => web::redirect(&format!("/console?decided={action}&id={id}")),
                    Err((status, text)) => refused(status, &text),
                }
            }
            ["tokens", id, "revoke"] => revoke(gw, who, id).await,
            ["delegations", id, "revoke"] => revoke_delegation(gw, who, id).await,
            _ => not_found(),
        }
    }
}

/// Long-lived caching for the embedded assets (they change only with the binary).
fn cached(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=300"),
    );
    r
}

async fn approvals_of(
    gw: &Gateway,
    who: &Who,
) -> Result<Vec<crate::approvals::approval::Approval>, String> {
    match gw.approvals.get() {
        Some(a) => inbox::pending(a, &who.approver()).await,
        None => Ok(Vec::new()),
    }
}

/// A short confirmation from a redirect's query (`decided=approve&id=...`), or none.
fn decided_flash(query: &HashMap<String, String>) -> Option<String> {
    let id = web::field(query, "id")?;
    let what = match web::field(query, "decided")? {
        "approve" => "Approved",
        "deny" => "Denied",
        "revoke" => "Revoked",
        _ => return None,
    };
    Some(format!("{what} {id}."))
}

async fn inbox_page(gw: &Gateway, who: &Who, query: &HashMap<String, String>) -> Response<Body> {
    match approvals_of(gw, who).await {
        Ok(items) => web::html(
            StatusCode::OK,
            inbox::page(&who.viewer(), &items, decided_flash(query).as_deref()),
        ),
        Err(e) => refused(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

/// The audit log and the status name every caller's calls: `gateway.status_access` decides
/// who may read them, as it does for `/status`.
async fn may_read_status(gw: &Gateway, who: &Who, path: &str) -> Result<(), Response<Body>> {
    crate::gateway::status_access::check(gw, &who.session.headers, path)
        .await
        .map_err(|_| {
            refused(
                StatusCode::FORBIDDEN,
                "Reading this page needs membership of a `gateway.status_groups` group.",
            )
        })
}

async fn audit_page(gw: &Gateway, who: &Who, query: HashMap<String, String>) -> Response<Body> {
    if let Err(r) = may_read_status(gw, who, "/console/audit").await {
        return r;
    }
    let Some(log) = gw.audit.get() else {
        return refused(StatusCode::NOT_FOUND, "This gateway writes no audit log.");
    };
    let (search, result) = match audit::Search::from_query(query.clone(), crate::clock::now_secs())
    {
        Ok(search) => {
            let dir = log.dir().to_owned();
            let s = search.clone();
            let found = tokio::task::spawn_blocking(move || audit::find(&dir, &s))
                .await
                .unwrap_or_else(|_| Err("the search failed".into()));
            (search, found)
        }
        Err(e) => (
            audit::Search {
                fields: query,
                ..audit::Search::default()
            },
            Err(e),
        ),
    };
    web::html(StatusCode::OK, audit::page(&who.viewer(), &search, &result))
}

async fn record_page(gw: &Gateway, who: &Who, seq: u64) -> Response<Body> {
    if let Err(r) = may_read_status(gw, who, "/console/audit").await {
        return r;
    }
    let Some(log) = gw.audit.get() else {
        return refused(StatusCode::NOT_FOUND, "This gateway writes no audit log.");
    };
    let dir = log.dir().to_owned();
    let found = tokio::task::spawn_blocking(move || audit::record(&dir, seq))
        .await
        .unwrap_or_else(|_| Err("the search failed".into()));
    match found {
        Ok(Some(f)) => {
            let check = audit::rederive(&gw.program.load_full(), &f.record);
            web::html(
                StatusCode::OK,
                audit::record_page(&who.viewer(), seq, &f, check.as_ref()),
            )
        }
        Ok(None) => not_found(),
        Err(e) => refused(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

async fn status_page(gw: &Gateway, who: &Who, query: &HashMap<String, String>) -> Response<Body> {
    if let Err(r) = may_read_status(gw, who, "/console/status").await {
        return r;
    }
    let tokens = match gw.identity.tokens() {
        Some(store) => status::own_tokens(store, &who.principal.id),
        None => Ok(Vec::new()),
    };
    // An agent signed in with its delegated token gave no delegation (it cannot delegate).
    let delegations = match &gw.delegations {
        Some(d) if who.principal.on_behalf_of().is_none() => {
            status::own_delegations(d, &who.principal.id, crate::clock::now_secs())
        }
        _ => Ok(Vec::new()),
    };
    web::html(
        StatusCode::OK,
        status::page(
            gw,
            &who.viewer(),
            &tokens,
            &delegations,
            decided_flash(query).as_deref(),
        ),
    )
}

async fn who_can_page(gw: &Gateway, who: &Who, query: &HashMap<String, String>) -> Response<Body> {
    if let Err(r) = may_read_status(gw, who, "/console/who-can").await {
        return r;
    }
    let target = web::field(query, "target").unwrap_or_default().to_owned();
    let result = if target.is_empty() {
        None
    } else {
        let folder = gw
            .policy
            .get()
            .and_then(|p| who_can::folder(p.source()).map(std::path::Path::to_path_buf));
        Some(match folder {
            None => Err(
                "This gateway follows a repository: run `mcpgate who-can TARGET` in a checkout of the live commit."
                    .to_owned(),
            ),
            Some(dir) => {
                let (t, live) = (target.clone(), gw.program.load().hash.clone());
                tokio::task::spawn_blocking(move || who_can::answer(&dir, &t, &live))
                    .await
                    .unwrap_or_else(|_| Err("the analysis failed".into()))
            }
        })
    };
    web::html(
        StatusCode::OK,
        who_can::page(&who.viewer(), &target, result.as_ref()),
    )
}

/// Revokes one of the signed-in person's own tokens.
async fn revoke(gw: &Gateway, who: &Who, id: &str) -> Response<Body> {
    let Some(store) = gw.identity.tokens() else {
        return not_found();
    };
    let mine = match status::own_tokens(store, &who.principal.id) {
        Ok(t) => t.iter().any(|t| t.id == id),
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e),
    };
    if !mine {
        return refused(
            StatusCode::FORBIDDEN,
            "You can revoke only your own tokens.",
        );
    }
    match store.revoke(id, &who.principal.id, crate::clock::now_secs()) {
        Ok(_) => {
            tracing::info!(principal = %who.principal.id, token = %id, "token revoked from the console");
            web::redirect(&format!("/console/status?decided=revoke&id={id}"))
        }
        Err(e) => refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}

/// Revokes one of the delegations the signed-in person gave: the agent's next request gets
/// 401. An agent signed in with its delegated token cannot revoke (nor see) its person's.
async fn revoke_delegation(gw: &Gateway, who: &Who, id: &str) -> Response<Body> {
    let Some(delegations) = &gw.delegations else {
        return not_found();
    };
    let mine = match delegations.get(id) {
        Ok(Some(d)) => d.person == who.principal.id && who.principal.on_behalf_of().is_none(),
        Ok(None) => false,
        Err(e) => return refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    if !mine {
        return refused(
            StatusCode::FORBIDDEN,
            "You can revoke only the delegations you gave.",
        );
    }
    match delegations.revoke(id, &who.principal.id, crate::clock::now_secs()) {
        Ok(_) => {
            let event =
                serde_json::json!({"delegation": id, "by": who.principal.id, "via": "console"});
            if let Err(e) =
                crate::gateway::delegations::record(gw, "delegation.revoked", event).await
            {
                // Revoked all the same: the store is what the gateway checks.
                tracing::error!(error = %e, "delegation revoked, its audit event lost");
            }
            tracing::info!(principal = %who.principal.id, delegation = %id, "delegation revoked from the console");
            web::redirect(&format!("/console/status?decided=revoke&id={id}"))
        }
        Err(e) => refused(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    }
}
