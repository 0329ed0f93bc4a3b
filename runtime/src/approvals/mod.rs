//! Approvals: a call whose verdict is `approve` is held until a member of one of the rule's
//! `by` groups approves or denies it, or until it times out (denied). Pending approvals live
//! in `state.db`, so `mcpgate approvals` (another process) can decide them and they survive
//! a restart; the gateway notices decisions by polling the database's `data_version`.
//! See `docs/approvals.md`.
//!
//! Files: `approval.rs` (an approval and its status), `store.rs` (the table), `api.rs` (the
//! approvers' HTTP API), `events.rs`, `webhook.rs`.
//!
//! Owns the approvals store, decisions, events and webhooks. May use: `decision`, `audit`,
//! `vault` and the bottom layer; holding and relaying a call is `gateway::hold`'s job.

pub mod api;
pub mod approval;
pub mod events;
pub mod postgres;
pub mod store;
pub mod webhook;

use crate::vault::references::SecretResolver;
use approval::Approval;
use http::HeaderMap;
use mcpgate_compiler::Principal;
use mcpgate_compiler::config::ApprovalsConfig;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use store::Store;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the gateway looks for decisions made by another process.
pub const POLL_EVERY: Duration = Duration::from_millis(250);

/// Identifies the caller of the approvals HTTP API from its request headers.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The principal the headers prove, or why they prove none (answered with 401).
    ///
    /// # Errors
    /// A message for the caller: no credentials, or credentials that do not verify.
    fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, String>;
}

/// The authenticator of a gateway without an `identity` section: every approver is refused,
/// since an anonymous caller cannot prove group membership.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoIdentity;

impl Authenticator for NoIdentity {
    fn authenticate(&self, _headers: &HeaderMap) -> Result<Principal, String> {
        Err(
            "this gateway has no `identity` configured, so no approver can sign in; \
             decide with `mcpgate approvals approve ID` on the gateway host"
                .into(),
        )
    }
}

/// Who decides an approval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approver {
    /// The principal id (HTTP), or the CLI's `--as` (else the OS user).
    pub id: String,
    /// The approver's groups (from the token and the principals file).
    pub groups: Vec<String>,
    /// The OS user of a CLI decision: an operator with access to the state dir, who is not
    /// held to the groups (see `docs/approvals.md`).
    pub operator: Option<String>,
}

/// Why an approver may not decide an approval.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{0}` asked for this call and cannot approve or deny it; another member of {1} must")]
    OwnCall(String, String),
    #[error("`{0}` is not in {1}, the groups that may decide this call")]
    NotInGroup(String, String),
}

/// The `by` groups as a message names them: `"finance"` or `"finance" or "leads"`.
pub fn group_list(groups: &[String]) -> String {
    if groups.is_empty() {
        return "no group".into();
    }
    groups
        .iter()
        .map(|g| format!("`{g}`"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Whether `approver` may decide `approval`: never their own call; over HTTP only as a
/// member of one of the rule's `by` groups.
///
/// # Errors
/// The [`Refusal`], answered with 403.
pub fn authorize(approval: &Approval, approver: &Approver) -> Result<(), Refusal> {
    let groups = group_list(&approval.approvers);
    // An agent's call under a delegation is its person's own call.
    if approver.id == approval.principal.id
        || approval.on_behalf_of.as_deref() == Some(approver.id.as_str())
    {
        return Err(Refusal::OwnCall(approver.id.clone(), groups));
    }
    if approver.operator.is_none()
        && !approver
            .groups
            .iter()
            .any(|g| approval.approvers.contains(g))
    {
        return Err(Refusal::NotInGroup(approver.id.clone(), groups));
    }
    Ok(())
}

/// The gateway's approvals service: the store, the change signal, the webhook.
#[derive(Debug)]
pub struct Approvals {
    store: Arc<Mutex<Store>>,
    /// A second connection, only for `PRAGMA data_version` (which counts commits made by
    /// *other* connections, the gateway's own included).
    watcher: Arc<Mutex<Store>>,
    changed: watch::Sender<u64>,
    pub timeout: Duration,
    pub grant: Duration,
    webhook: Option<webhook::Webhook>,
    authenticator: Box<dyn Authenticator>,
    listener: std::sync::OnceLock<StepListener>,
}

/// Told of each step of an approval as it is recorded, whoever decided (the gateway hands
/// refused approvals to its responders).
pub struct StepListener(pub Box<OnStep>);

/// What a [`StepListener`] runs.
pub type OnStep = dyn Fn(events::Step, &Approval) + Send + Sync;

impl std::fmt::Debug for StepListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepListener")
    }
}

fn lock(m: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    // A poisoned lock only means a task panicked between statements; the connection is fine.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Approvals {
    /// Opens the approvals in `state_dir`'s database with the `approvals` settings.
    ///
    /// # Errors
    /// When the database cannot be opened, or the webhook's URL or secret cannot be used.
    pub fn open(
        state_dir: &Path,
        config: &ApprovalsConfig,
        secrets: &dyn SecretResolver,
        authenticator: Box<dyn Authenticator>,
    ) -> Result<Approvals, String> {
        let store = Store::open(state_dir).map_err(|e| e.to_string())?;
        let watcher = Store::open(state_dir).map_err(|e| e.to_string())?;
        Approvals::over(store, watcher, config, secrets, authenticator)
    }

    /// The approvals of a fleet, in PostgreSQL (opened with [`postgres::MIGRATIONS`]).
    ///
    /// # Errors
    /// When the webhook's URL or secret cannot be used.
    pub fn shared(
        pg: &Arc<crate::state::postgres::Pg>,
        config: &ApprovalsConfig,
        secrets: &dyn SecretResolver,
        authenticator: Box<dyn Authenticator>,
    ) -> Result<Approvals, String> {
        let table = || Store::over(Box::new(postgres::PgApprovals::new(pg.clone())));
        Approvals::over(table(), table(), config, secrets, authenticator)
    }

    fn over(
        store: Store,
        watcher: Store,
        config: &ApprovalsConfig,
        secrets: &dyn SecretResolver,
        authenticator: Box<dyn Authenticator>,
    ) -> Result<Approvals, String> {
        let webhook = match &config.webhook {
            Some(w) => Some(webhook::Webhook::new(w, secrets)?),
            None => None,
        };
        Ok(Approvals {
            store: Arc::new(Mutex::new(store)),
            watcher: Arc::new(Mutex::new(watcher)),
            changed: watch::channel(0).0,
            timeout: config.timeout(),
            grant: config.grant(),
            webhook,
            authenticator,
            listener: std::sync::OnceLock::new(),
        })
    }

    /// Runs `f` on the store off the async threads (a write may wait for the CLI's lock).
    pub async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Option<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&lock(&store)))
            .await
            .ok()
    }

    /// `state.db` or `postgres`.
    pub fn kind(&self) -> &'static str {
        lock(&self.store).kind()
    }

    /// Why the table cannot be read, if it cannot (one read of the change marker, on the
    /// watcher's connection, never waiting behind a held call's write).
    pub fn probe(&self) -> Option<String> {
        let watcher = self.watcher.clone();
        crate::state::blocking(move || lock(&watcher).data_version().err()).map(|e| e.to_string())
    }

    /// A receiver that wakes whenever the database may have changed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Wakes every held call to look at its approval again.
    pub fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Calls `listener` with every step recorded from now on.
    pub fn on_step(&self, listener: StepListener) {
        let _ = self.listener.set(listener);
    }

    /// Who is calling the HTTP API.
    ///
    /// # Errors
    /// The authenticator's message.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, String> {
        self.authenticator.authenticate(headers)
    }

    /// Announces a new pending approval (in the background; never blocks the call).
    pub fn announce(&self, approval: &Approval) {
        if let Some(w) = &self.webhook {
            w.announce(approval);
        }
    }

    /// Polls the database for changes made elsewhere, times out approvals nobody waits
    /// for (their callers left, or the gateway restarted), and records every step in the
    /// audit log, until `shutdown`.
    pub fn spawn_watch(
        self: &Arc<Self>,
        shutdown: CancellationToken,
        audit: Option<Arc<crate::audit::AuditLog>>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut last: Option<i64> = None;
            let mut tick = tokio::time::interval(POLL_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut round: u32 = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.cancelled() => return,
                }
                round = round.wrapping_add(1);
                let sweep = round.is_multiple_of(4);
                let Some(polled) = this
                    .watch(move |s| -> store::Result<i64> {
                        let version = s.data_version()?;
                        if sweep {
                            s.expire_overdue(approval::now_ms())?;
                        }
                        Ok(version)
                    })
                    .await
                else {
                    continue;
                };
                match polled {
                    Ok(v) if last != Some(v) => {
                        if last.is_some() {
                            this.notify();
                        }
                        last = Some(v);
                        this.record_steps(audit.as_deref()).await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot poll the state database"),
                }
            }
        });
    }

    /// Runs `f` on the watcher's connection off the async threads.
    async fn watch<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> T + Send + 'static,
    ) -> Option<T> {
        let watcher = self.watcher.clone();
        tokio::task::spawn_blocking(move || f(&lock(&watcher)))
            .await
            .ok()
    }

    /// Writes the steps not yet recorded; a step whose record fails stays due and is tried
    /// again on the next change.
    async fn record_steps(&self, audit: Option<&crate::audit::AuditLog>) {
        let Some(Ok(due)) = self.watch(|s| s.unlogged(100)).await else {
            return;
        };
        for a in due {
            let mut ok = true;
            for step in events::steps(a.logged, a.status) {
                events::log(step, &a);
                if let Some(l) = self.listener.get() {
                    (l.0)(step, &a);
                }
                if let Some(log) = audit
                    && let Err(e) = log
                        .record_event(
                            step.as_str(),
                            a.request_id.as_deref(),
                            events::data(step, &a),
                        )
                        .await
                {
                    tracing::error!(approval = %a.id, error = %e, "cannot record an approval step");
                    ok = false;
                    break;
                }
            }
            if ok {
                let (id, status) = (a.id.clone(), a.status);
                let _ = self.watch(move |s| s.mark_logged(&id, status)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approval::NewApproval;
    use serde_json::json;

    fn approval() -> Approval {
        let s = Store::in_memory().unwrap();
        s.create(
            &NewApproval {
                server: "demo".into(),
                tool: "send_payment".into(),
                arguments: json!({}),
                principal: Principal {
                    id: "bob@example.com".into(),
                    groups: vec!["finance".into()],
                    ..Default::default()
                },
                agent: None,
                client: None,
                session: "s".into(),
                rule: "r".into(),
                rule_source: "p.mcpg:1:1".into(),
                reason: None,
                approvers: vec!["finance".into(), "leads".into()],
                program: "h".into(),
                timeout: Duration::from_secs(60),
                grant: Duration::from_secs(60),
                request_id: None,
                on_behalf_of: None,
            },
            1,
        )
        .unwrap()
    }

    fn who(id: &str, groups: &[&str], operator: Option<&str>) -> Approver {
        Approver {
            id: id.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            operator: operator.map(str::to_owned),
        }
    }

    #[test]
    fn a_group_member_may_decide_others_calls() {
        let a = approval();
        assert_eq!(
            authorize(&a, &who("alice@example.com", &["leads"], None)),
            Ok(())
        );
    }

    #[test]
    fn nobody_decides_their_own_call() {
        let a = approval();
        let err = authorize(&a, &who("bob@example.com", &["finance"], None)).unwrap_err();
        assert!(matches!(err, Refusal::OwnCall(..)));
        assert!(err.to_string().contains("`finance` or `leads`"), "{err}");
        // Not even an operator on the CLI.
        let err = authorize(&a, &who("bob@example.com", &[], Some("root"))).unwrap_err();
        assert!(matches!(err, Refusal::OwnCall(..)));
    }

    #[test]
    fn a_person_does_not_decide_their_agents_call() {
        let mut a = approval();
        a.principal.id = "claude-code".into();
        a.on_behalf_of = Some("ada@example.com".into());
        let err = authorize(&a, &who("ada@example.com", &["finance"], None)).unwrap_err();
        assert!(matches!(err, Refusal::OwnCall(..)), "{err}");
        let err = authorize(&a, &who("ada@example.com", &[], Some("root"))).unwrap_err();
        assert!(matches!(err, Refusal::OwnCall(..)), "{err}");
        assert_eq!(
            authorize(&a, &who("alice@example.com", &["finance"], None)),
            Ok(())
        );
    }

    #[test]
    fn outsiders_are_refused_over_http_but_operators_are_not() {
        let a = approval();
        let err = authorize(&a, &who("eve@example.com", &["engineering"], None)).unwrap_err();
        assert!(matches!(err, Refusal::NotInGroup(..)), "{err}");
        assert_eq!(authorize(&a, &who("ops", &[], Some("root"))), Ok(()));
    }
}
