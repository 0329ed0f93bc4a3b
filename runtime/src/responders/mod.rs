//! Responders: what the gateway does on its own when a caller misbehaves. The gateway
//! hands every decided call (and each refused approval, each call the lock holds) to
//! [`Responders::observe`] with the responders of the live program (`responders.yaml`);
//! counts live in a [`window::CounterStore`]; a pause is kept in `state.db` and checked by
//! [`Responders::paused`] before every decision; a notification goes to a named webhook.
//! Every action is an audit event (`responder.paused`, `responder.notified`,
//! `responder.refused`, `responder.unpaused`). See `docs/responders.md`.
//!
//! Files: `event.rs` (what the gateway reports, what a firing says), `window.rs`
//! (sliding-window counts), `pauses.rs` (the table), `notify.rs` (webhook bodies and
//! delivery).
//!
//! Owns the counts, the pauses and the notifications. May use: `audit`, `vault`, `state`
//! and the bottom layer; the gateway calls in, never the other way.

pub mod event;
pub mod notify;
pub mod pauses;
pub mod postgres;
pub mod redis;
pub mod window;

pub use event::{Event, EventKind, Fired};

use crate::audit::AuditLog;
use crate::delegation::Delegations;
use mcpgate_compiler::responders::{Action, By, PauseScope, Responder, ResponderSet, Trigger};
use pauses::{Pause, PauseStore, PauseTable, now_ms};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use window::{CounterStore, MemoryCounters};

/// How often the gateway looks for pauses lifted by another process.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Pauses known to this process (the database is the truth; see [`Responders::paused`]).
#[derive(Debug, Default)]
struct Live {
    principals: HashMap<String, Pause>,
    sessions: HashMap<String, Pause>,
    delegations: HashMap<String, Pause>,
}

impl Live {
    fn map(&mut self, scope: PauseScope) -> &mut HashMap<String, Pause> {
        match scope {
            PauseScope::Principal => &mut self.principals,
            PauseScope::Session => &mut self.sessions,
            PauseScope::Delegation => &mut self.delegations,
        }
    }

    fn is_empty(&self) -> bool {
        self.principals.is_empty() && self.sessions.is_empty() && self.delegations.is_empty()
    }
}

const SCOPES: [PauseScope; 3] = [
    PauseScope::Principal,
    PauseScope::Session,
    PauseScope::Delegation,
];

/// The gateway's responders service.
#[derive(Debug)]
pub struct Responders {
    counters: Arc<dyn CounterStore>,
    store: Option<Mutex<Box<dyn PauseTable>>>,
    live: Mutex<Live>,
    notifier: notify::Notifier,
    audit: OnceLock<Arc<AuditLog>>,
    /// Where `revoke: delegation` ends a delegation; unset without delegations.
    delegations: OnceLock<Arc<Delegations>>,
    /// Whether the last read of a shared table failed (its outage is logged once).
    unreadable: std::sync::atomic::AtomicBool,
    /// Told when this replica sets a pause (a fleet's fan-out: the others reread now).
    announce: OnceLock<crate::state::fanout::Announce>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic between two statements leaves nothing half-done that matters here.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Responders {
    /// Without a database: pauses last until the process ends (a gateway built without
    /// [`Responders::open`], as in unit tests).
    pub fn in_memory() -> Responders {
        Responders::with(None, Live::default(), notify::Notifier::new(None))
    }

    /// Pauses in `state`'s database, those still running loaded; secrets of webhooks from
    /// its vault.
    ///
    /// # Errors
    /// When the database cannot be opened or read (the gateway does not start rather than
    /// forget a pause).
    pub fn open(state: &Path) -> Result<Responders, String> {
        let store = PauseStore::open(state).map_err(|e| e.to_string())?;
        Responders::over(Box::new(store), state)
    }

    /// Pauses in the fleet's shared database (opened with [`postgres::MIGRATIONS`]); secrets
    /// of webhooks from `state`'s vault.
    ///
    /// # Errors
    /// When the table cannot be read.
    pub fn shared(
        pg: &Arc<crate::state::postgres::Pg>,
        state: &Path,
    ) -> Result<Responders, String> {
        Responders::over(Box::new(postgres::PgPauses::new(pg.clone())), state)
    }

    fn over(store: Box<dyn PauseTable>, state: &Path) -> Result<Responders, String> {
        let now = now_ms();
        let _ = store.purge(now);
        let pauses = store
            .active(now)
            .map_err(|e| format!("cannot read the pauses: {e}"))?;
        let mut live = Live::default();
        for p in pauses {
            // A scope this build does not know is kept as a principal pause: refusing a
            // subject too many is the safe side.
            let scope = PauseScope::parse(&p.scope).unwrap_or(PauseScope::Principal);
            live.map(scope).insert(p.subject.clone(), p);
        }
        Ok(Responders::with(
            Some(store),
            live,
            notify::Notifier::new(Some(state.to_owned())),
        ))
    }

    fn with(
        store: Option<Box<dyn PauseTable>>,
        live: Live,
        notifier: notify::Notifier,
    ) -> Responders {
        Responders {
            counters: Arc::new(MemoryCounters::default()),
            store: store.map(Mutex::new),
            live: Mutex::new(live),
            notifier,
            audit: OnceLock::new(),
            delegations: OnceLock::new(),
            unreadable: std::sync::atomic::AtomicBool::new(false),
            announce: OnceLock::new(),
        }
    }

    /// Lets `revoke: delegation` end delegations kept by `d`.
    pub fn set_delegations(&self, d: Arc<Delegations>) {
        let _ = self.delegations.set(d);
    }

    /// Tells `announce` of each pause this process sets (a fleet's replicas reread theirs).
    pub fn announce_with(&self, announce: crate::state::fanout::Announce) {
        let _ = self.announce.set(announce);
    }

    /// Keeps the trigger counts in `counters` (Redis in a fleet) instead of this process.
    #[must_use]
    pub fn with_counters(mut self, counters: Arc<dyn CounterStore>) -> Responders {
        self.counters = counters;
        self
    }

    /// Records every action in `log` from now on.
    pub fn set_audit(&self, log: Arc<AuditLog>) {
        let _ = self.audit.set(log);
    }

    /// Pauses in force, soonest end first (this process's view when there is no database).
    pub fn list(&self) -> Vec<Pause> {
        let now = now_ms();
        if let Some(s) = &self.store {
            return lock(s).active(now).unwrap_or_default();
        }
        let live = lock(&self.live);
        let mut all: Vec<Pause> = live
            .principals
            .values()
            .chain(live.sessions.values())
            .chain(live.delegations.values())
            .filter(|p| p.until_ms > now)
            .cloned()
            .collect();
        all.sort_by_key(|p| p.until_ms);
        all
    }

    /// Looks every `every` for pauses lifted by `mcpgate pauses unpause` (another process)
    /// or run out, so the audit records a lift even when the paused caller never comes
    /// back; until `shutdown`.
    pub fn spawn_sweep(
        self: &Arc<Self>,
        every: Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = shutdown.cancelled() => return,
                }
                let this = this.clone();
                let _ = tokio::task::spawn_blocking(move || this.sweep()).await;
            }
        });
    }

    /// Forgets pauses that ran out, and records those lifted elsewhere. In a fleet it also
    /// learns the pauses other replicas set: one read of the shared table per sweep.
    pub fn sweep(&self) {
        let mut live = lock(&self.live);
        if let Some(store) = &self.store
            && lock(store).shared()
        {
            self.reload(&mut live, store);
            return;
        }
        if live.is_empty() {
            return;
        }
        let now = now_ms();
        for scope in SCOPES {
            live.map(scope).retain(|_, p| p.until_ms > now);
            let Some(store) = &self.store else { continue };
            let known: Vec<(String, String)> = live
                .map(scope)
                .iter()
                .map(|(k, p)| (k.clone(), p.responder.clone()))
                .collect();
            for (subject, responder) in known {
                match lock(store).get(scope.as_str(), &subject, now) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        live.map(scope).remove(&subject);
                        self.lifted(scope, &subject, &responder);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the pauses");
                        return;
                    }
                }
            }
        }
    }

    /// Replaces the known pauses with those in force in the shared table, recording the
    /// ones lifted meanwhile. Called with `live` held, so a pause set here while the table
    /// is read is not mistaken for a lifted one.
    fn reload(&self, live: &mut Live, store: &Mutex<Box<dyn PauseTable>>) {
        let now = now_ms();
        let current = match lock(store).active(now) {
            Ok(p) => p,
            Err(e) => {
                // Known pauses still hold (and are confirmed at each call).
                if !self
                    .unreadable
                    .swap(true, std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!(error = %e, "cannot read the shared pauses; pauses set by other replicas are not seen until it answers");
                }
                return;
            }
        };
        if self
            .unreadable
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::info!("the shared pauses can be read again");
        }
        let mut fresh = Live::default();
        for p in current {
            let scope = PauseScope::parse(&p.scope).unwrap_or(PauseScope::Principal);
            fresh.map(scope).insert(p.subject.clone(), p);
        }
        for scope in SCOPES {
            for (subject, p) in live.map(scope).iter() {
                if p.until_ms > now && !fresh.map(scope).contains_key(subject) {
                    self.lifted(scope, subject, &p.responder);
                }
            }
        }
        *live = fresh;
    }

    fn lifted(&self, scope: PauseScope, subject: &str, responder: &str) {
        self.record(
            "responder.unpaused",
            json!({"scope": scope.as_str(), "subject": subject, "responder": responder}),
        );
        tracing::info!(scope = scope.as_str(), subject, "pause lifted");
    }

    /// The pause that stops a call of `principal` in `session`, if any. A pause this
    /// process knows of is confirmed in the database, so one lifted by `mcpgate pauses
    /// unpause` (another process) ends at once; with no pause known, nothing is read.
    pub fn paused(
        &self,
        principal: &str,
        session: &str,
        delegation: Option<&str>,
    ) -> Option<Pause> {
        let mut live = lock(&self.live);
        if live.is_empty() {
            return None;
        }
        let now = now_ms();
        for (scope, subject) in [
            (PauseScope::Principal, Some(principal)),
            (PauseScope::Session, Some(session)),
            (PauseScope::Delegation, delegation),
        ] {
            let Some(subject) = subject else { continue };
            let Some(p) = live.map(scope).get(subject).cloned() else {
                continue;
            };
            if p.until_ms <= now {
                live.map(scope).remove(subject);
                continue;
            }
            let Some(store) = &self.store else {
                return Some(p);
            };
            match lock(store).get(scope.as_str(), subject, now) {
                Ok(Some(current)) => return Some(current),
                Ok(None) => {
                    live.map(scope).remove(subject);
                    self.lifted(scope, subject, &p.responder);
                }
                // Fail closed: a pause that cannot be confirmed still holds.
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the pauses; the pause holds");
                    return Some(p);
                }
            }
        }
        None
    }

    /// The refusal text of a call stopped by `pause`.
    pub fn refusal(pause: &Pause) -> String {
        let until =
            crate::audit::record::rfc3339(u64::try_from(pause.until_ms / 1000).unwrap_or(0), 0);
        format!(
            "paused by responder `{}` until {until} ({}); an operator can lift it with `mcpgate pauses unpause {}`",
            pause.responder, pause.reason, pause.subject
        )
    }

    /// Records a call refused because of `pause` (not a decision: the program was not
    /// asked).
    pub fn record_refusal(&self, pause: &Pause, principal: &str, session: &str, target: &str) {
        self.record(
            "responder.refused",
            json!({
                "responder": pause.responder,
                "scope": pause.scope,
                "principal": principal,
                "session": session,
                "target": target,
            }),
        );
    }

    /// Counts `ev` for each responder of `set` it concerns, and acts for those that fire.
    pub fn observe(&self, set: &ResponderSet, ev: &Event<'_>) {
        if set.is_empty() {
            return;
        }
        let now = Instant::now();
        for r in &set.responders {
            if self.fires(r, ev, now) {
                self.act(set, r, ev);
            }
        }
    }

    fn fires(&self, r: &Responder, ev: &Event<'_>, now: Instant) -> bool {
        let by_key = |by: By| match by {
            By::Anyone => "",
            By::Principal => ev.principal,
            By::Session => ev.session,
        };
        let ms = Duration::from_millis;
        match (&r.trigger, ev.kind) {
            (
                Trigger::Denials {
                    count,
                    within_ms,
                    by,
                },
                EventKind::Decided { refused: true },
            ) => {
                let key = format!("{}\x1f{}\x1f{}", r.name, by.as_str(), by_key(*by));
                self.counters.hit(&key, *count, ms(*within_ms), now)
            }
            (
                Trigger::Calls {
                    count,
                    within_ms,
                    tool,
                    by,
                },
                EventKind::Decided { .. },
            ) => {
                let Some(called) = ev.tool else { return false };
                if tool.as_deref().is_some_and(|t| t != called) {
                    return false;
                }
                let key = format!(
                    "{}\x1f{}\x1f{}\x1f{called}",
                    r.name,
                    by.as_str(),
                    by_key(*by)
                );
                self.counters.hit(&key, *count, ms(*within_ms), now)
            }
            (Trigger::ApprovalDenials { count, within_ms }, EventKind::ApprovalDenied) => {
                let key = format!("{}\x1fprincipal\x1f{}", r.name, ev.principal);
                self.counters.hit(&key, *count, ms(*within_ms), now)
            }
            (Trigger::Held { tool, quiet_ms }, EventKind::Held) => {
                let Some(held) = ev.tool else { return false };
                if tool.as_deref().is_some_and(|t| t != held) {
                    return false;
                }
                let key = format!("{}\x1fheld\x1f{held}", r.name);
                self.counters.once_per(&key, ms(*quiet_ms), now)
            }
            _ => false,
        }
    }

    fn act(&self, set: &ResponderSet, r: &Responder, ev: &Event<'_>) {
        let mut fired = Fired {
            responder: r.name.clone(),
            source: r.source.clone(),
            trigger: r.trigger.describe(),
            principal: ev.principal.to_owned(),
            session: ev.session.to_owned(),
            delegation: ev.delegation.map(str::to_owned),
            tool: ev.tool.map(str::to_owned),
            actions: Vec::new(),
            time: crate::audit::record::now_rfc3339(),
        };
        tracing::warn!(
            target: "mcpgate::responders",
            responder = %r.name,
            trigger = %fired.trigger,
            principal = ev.principal,
            "responder fired"
        );
        // Pauses and revocations first, so the notification says what was done.
        for a in &r.actions {
            let text = match a {
                Action::Pause { scope, for_ms } => self.pause(r, &fired, *scope, *for_ms),
                Action::RevokeDelegation => self.revoke(r, &fired),
                Action::Notify { .. } => continue,
            };
            fired.actions.push(text);
        }
        for a in &r.actions {
            if let Action::Notify { target } = a {
                let Some(t) = set.notify.get(target) else {
                    continue;
                };
                self.notifier.send(target, t, &fired);
                self.record(
                    "responder.notified",
                    json!({
                        "responder": r.name,
                        "source": r.source,
                        "webhook": target,
                        "format": t.format,
                        "trigger": fired.trigger,
                        "principal": fired.principal,
                        "session": fired.session,
                        "tool": fired.tool,
                    }),
                );
            }
        }
    }

    fn pause(&self, r: &Responder, fired: &Fired, scope: PauseScope, for_ms: u64) -> String {
        let subject = match scope {
            PauseScope::Principal => fired.principal.clone(),
            PauseScope::Session => fired.session.clone(),
            PauseScope::Delegation => match &fired.delegation {
                Some(id) => id.clone(),
                None => return "no delegation to pause: the call was made for no one".into(),
            },
        };
        let now = now_ms();
        let p = Pause {
            scope: scope.as_str().to_owned(),
            subject: subject.clone(),
            responder: r.name.clone(),
            reason: fired.trigger.clone(),
            created_ms: now,
            until_ms: now.saturating_add(i64::try_from(for_ms).unwrap_or(i64::MAX)),
        };
        if let Some(store) = &self.store
            && let Err(e) = lock(store).put(&p)
        {
            // Still paused in this process: refusing is the safe side.
            tracing::error!(error = %e, "cannot save a pause; it holds until restart");
        }
        {
            let mut live = lock(&self.live);
            live.map(scope).retain(|_, x| x.until_ms > now);
            live.map(scope).insert(subject.clone(), p.clone());
        }
        if let Some(a) = self.announce.get() {
            (a.0)(crate::state::fanout::Event::Pauses);
        }
        let span = mcpgate_compiler::duration::format(Duration::from_millis(for_ms));
        self.record(
            "responder.paused",
            json!({
                "responder": r.name,
                "source": r.source,
                "trigger": fired.trigger,
                "scope": scope.as_str(),
                "subject": subject,
                "until_ms": p.until_ms,
                "for": span.to_string(),
                "tool": fired.tool,
            }),
        );
        format!("paused {} `{subject}` for {span}", scope.as_str())
    }

    /// Ends the delegation of the call that fired, for good.
    fn revoke(&self, r: &Responder, fired: &Fired) -> String {
        let Some(id) = &fired.delegation else {
            return "no delegation to revoke: the call was made for no one".into();
        };
        let Some(store) = self.delegations.get() else {
            return format!("cannot revoke delegation `{id}`: delegations are not kept here");
        };
        let now = crate::clock::now_secs();
        let text = match store.revoke(id, &format!("responder:{}", r.name), now) {
            Ok(true) => format!("revoked delegation `{id}`"),
            Ok(false) => format!("delegation `{id}` was already ended"),
            Err(e) => {
                // The pause actions of the same responder (if any) still hold.
                tracing::error!(error = %e, delegation = %id, "cannot revoke a delegation");
                format!("could not revoke delegation `{id}`: {e}")
            }
        };
        self.record(
            "responder.revoked",
            json!({
                "responder": r.name,
                "source": r.source,
                "trigger": fired.trigger,
                "delegation": id,
                "principal": fired.principal,
                "result": text,
            }),
        );
        text
    }

    fn record(&self, event: &str, data: Value) {
        if let Some(log) = self.audit.get() {
            log.append_nowait(crate::audit::event_fields(event, None, data));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgate_compiler::responders::NotifyTarget;

    fn set(trigger: Trigger, actions: Vec<Action>) -> ResponderSet {
        ResponderSet {
            responders: vec![Responder {
                name: "r".into(),
                source: "responders.yaml:2:5".into(),
                trigger,
                actions,
            }],
            notify: std::collections::BTreeMap::<String, NotifyTarget>::new(),
        }
    }

    fn ev(kind: EventKind, principal: &'static str) -> Event<'static> {
        Event {
            kind,
            principal,
            session: "s1",
            delegation: None,
            tool: Some("fx.delete_item"),
        }
    }

    const DENIED: EventKind = EventKind::Decided { refused: true };
    const PAUSE: Action = Action::Pause {
        scope: PauseScope::Principal,
        for_ms: 60_000,
    };

    #[test]
    fn denials_pause_the_principal_only() {
        let r = Responders::in_memory();
        let s = set(
            Trigger::Denials {
                count: 3,
                within_ms: 60_000,
                by: By::Principal,
            },
            vec![PAUSE],
        );
        for _ in 0..2 {
            r.observe(&s, &ev(DENIED, "bob"));
            r.observe(&s, &ev(DENIED, "carol"));
            // Allowed calls do not count as denials.
            r.observe(&s, &ev(EventKind::Decided { refused: false }, "bob"));
        }
        assert!(r.paused("bob", "s1", None).is_none());
        r.observe(&s, &ev(DENIED, "bob"));
        let p = r.paused("bob", "other-session", None).unwrap();
        assert_eq!(p.responder, "r");
        assert!(Responders::refusal(&p).contains("paused by responder `r`"));
        assert!(r.paused("carol", "s1", None).is_none());
        assert_eq!(r.list().len(), 1);
    }

    #[test]
    fn a_delegation_pause_stops_that_delegation_only() {
        let r = Responders::in_memory();
        let s = set(
            Trigger::Denials {
                count: 1,
                within_ms: 60_000,
                by: By::Session,
            },
            vec![
                Action::Pause {
                    scope: PauseScope::Delegation,
                    for_ms: 60_000,
                },
                // No delegation service here: the revocation is reported, not done.
                Action::RevokeDelegation,
            ],
        );
        // A call made for no one has no delegation to pause.
        r.observe(&s, &ev(DENIED, "agent"));
        assert!(r.list().is_empty());
        let mut delegated = ev(DENIED, "agent");
        delegated.delegation = Some("dlg_ada");
        r.observe(&s, &delegated);
        let p = r.paused("agent", "other", Some("dlg_ada")).unwrap();
        assert_eq!(
            (p.scope.as_str(), p.subject.as_str()),
            ("delegation", "dlg_ada")
        );
        assert!(r.paused("agent", "other", Some("dlg_carol")).is_none());
        assert!(r.paused("agent", "other", None).is_none());
    }

    #[test]
    fn a_pause_survives_a_restart_and_ends_when_lifted_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let s = set(
            Trigger::ApprovalDenials {
                count: 1,
                within_ms: 60_000,
            },
            vec![Action::Pause {
                scope: PauseScope::Session,
                for_ms: 60_000,
            }],
        );
        {
            let r = Responders::open(dir.path()).unwrap();
            r.observe(&s, &ev(EventKind::ApprovalDenied, "bob"));
            assert!(r.paused("anyone", "s1", None).is_some());
        }
        let r = Responders::open(dir.path()).unwrap();
        assert_eq!(r.paused("x", "s1", None).unwrap().scope, "session");
        // Another process (the CLI) lifts it; the sweep notices without a call.
        assert_eq!(
            PauseStore::open(dir.path()).unwrap().remove("s1").unwrap(),
            1
        );
        r.sweep();
        assert!(lock(&r.live).sessions.is_empty());
        assert!(r.paused("x", "s1", None).is_none());
    }

    #[test]
    fn spikes_count_per_tool_and_held_fires_once_per_quiet_period() {
        let r = Responders::in_memory();
        let s = set(
            Trigger::Calls {
                count: 2,
                within_ms: 60_000,
                tool: Some("fx.get_user".into()),
                by: By::Anyone,
            },
            vec![PAUSE],
        );
        let call = |p: &'static str, tool: &'static str| Event {
            kind: EventKind::Decided { refused: false },
            principal: p,
            session: "s",
            delegation: None,
            tool: Some(tool),
        };
        r.observe(&s, &call("a", "fx.other"));
        r.observe(&s, &call("a", "fx.other"));
        assert!(r.paused("a", "s", None).is_none());
        r.observe(&s, &call("a", "fx.get_user"));
        r.observe(&s, &call("b", "fx.get_user"));
        // By anyone: the call that made the count is paused.
        assert!(r.paused("b", "x", None).is_some());
        assert!(r.paused("a", "x", None).is_none());

        let held = set(
            Trigger::Held {
                tool: None,
                quiet_ms: 60_000,
            },
            vec![],
        );
        let now = Instant::now();
        assert!(r.fires(&held.responders[0], &ev(EventKind::Held, "a"), now));
        assert!(!r.fires(&held.responders[0], &ev(EventKind::Held, "b"), now));
        assert!(!r.fires(&held.responders[0], &ev(DENIED, "b"), now));
    }

    /// One table both "replicas" see, as the fleet's shared table is.
    #[derive(Debug)]
    struct SharedTable(Arc<Mutex<PauseStore>>);

    impl PauseTable for SharedTable {
        fn put(&self, p: &Pause) -> Result<(), String> {
            lock(&self.0).put(p)
        }
        fn get(&self, scope: &str, subject: &str, now_ms: i64) -> Result<Option<Pause>, String> {
            lock(&self.0).get(scope, subject, now_ms)
        }
        fn active(&self, now_ms: i64) -> Result<Vec<Pause>, String> {
            lock(&self.0).active(now_ms)
        }
        fn remove(&self, subject: &str) -> Result<usize, String> {
            lock(&self.0).remove(subject)
        }
        fn purge(&self, now_ms: i64) -> Result<usize, String> {
            lock(&self.0).purge(now_ms)
        }
        fn shared(&self) -> bool {
            true
        }
    }

    #[test]
    fn in_a_fleet_the_sweep_learns_pauses_set_elsewhere_and_lifted() {
        let dir = tempfile::tempdir().unwrap();
        let table = Arc::new(Mutex::new(PauseStore::in_memory().unwrap()));
        let a = Responders::over(Box::new(SharedTable(table.clone())), dir.path()).unwrap();
        let b = Responders::over(Box::new(SharedTable(table.clone())), dir.path()).unwrap();
        let s = set(
            Trigger::Denials {
                count: 1,
                within_ms: 60_000,
                by: By::Principal,
            },
            vec![PAUSE],
        );
        a.observe(&s, &ev(DENIED, "bob"));
        assert!(a.paused("bob", "s1", None).is_some());
        // B knows nothing until its sweep reads the shared table.
        assert!(b.paused("bob", "s2", None).is_none());
        b.sweep();
        assert_eq!(b.paused("bob", "s2", None).unwrap().responder, "r");
        assert!(b.paused("carol", "s2", None).is_none());
        // Lifted through the table: both let Bob through at his next call.
        assert_eq!(lock(&table).remove("bob").unwrap(), 1);
        assert!(a.paused("bob", "s1", None).is_none());
        assert!(b.paused("bob", "s2", None).is_none());
        b.sweep();
        assert!(lock(&b.live).is_empty());
    }

    #[test]
    fn a_pause_set_here_is_announced_and_a_denial_alone_is_not() {
        use crate::state::fanout::{Announce, Event};
        let r = Responders::in_memory();
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        r.announce_with(Announce(Box::new(move |e| lock(&sink).push(e))));
        let s = set(
            Trigger::Denials {
                count: 2,
                within_ms: 60_000,
                by: By::Principal,
            },
            vec![PAUSE],
        );
        r.observe(&s, &ev(DENIED, "bob"));
        assert!(lock(&told).is_empty());
        r.observe(&s, &ev(DENIED, "bob"));
        assert!(r.paused("bob", "s1", None).is_some());
        assert_eq!(*lock(&told), vec![Event::Pauses]);
    }
}
