//! GitOps: the gateway follows a branch of a policy repository (or, in development, a
//! folder). Each new head is read through git, checked, compiled and tested; only a good
//! program is swapped in (arc-swap), saved in the state dir, and served after a restart
//! when the repository is out of reach. Without any good program every request is denied.
//!
//! Owns the policy source, builds and the live-program status. May use: `decision` and the
//! bottom layer; programs go to a [`ProgramSink`] (the gateway implements it).

pub mod admin;
pub mod build;
pub mod fetch;
pub mod store;
pub mod watch;

use crate::clock::now_secs;
use crate::decision::LoadedProgram;
use crate::metrics::{self, Metrics};
use crate::state::fanout::{Announce, Event};
use build::{Built, Rejected};
use fetch::{GitSource, Head};
use mcpgate_compiler::Program;
use mcpgate_compiler::config::Config;
use mcpgate_compiler::ir::Policy;
use mcpgate_compiler::lock::Lockfile;
use mcpgate_compiler::responders::ResponderSet;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

/// Folder of the bare mirror inside the state dir.
pub const MIRROR_DIR: &str = "policy-repo.git";

/// Where the policy comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A branch of a git repository, followed by polling and `/admin/sync`.
    Git(GitSource),
    /// A folder, watched for changes (development).
    Dir(PathBuf),
}

/// Where the live program came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Built from the repository or folder by this process.
    Built,
    /// Read back from the state dir (the repository was out of reach or its head bad).
    Saved,
    /// No good program: the empty program denies everything.
    None,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Built => "built",
            Origin::Saved => "state",
            Origin::None => "none",
        }
    }
}

#[derive(Clone, Debug)]
struct Live {
    /// SHA-256 of the live `mcpgate.lock` (empty without one).
    lock: String,
    /// How many responders are live, and their digest: a change to them alone is swapped in.
    responders: (usize, String),
    commit: Option<String>,
    commit_time: Option<i64>,
    hash: String,
    loaded_at: u64,
    origin: Origin,
    rules: usize,
}

#[derive(Clone, Debug)]
struct FetchInfo {
    at: u64,
    commit: Option<String>,
    error: Option<String>,
}

#[derive(Clone, Debug)]
struct Failure {
    commit: Option<String>,
    at: u64,
    rejected: Rejected,
}

#[derive(Debug)]
struct Status {
    live: Live,
    /// Why everything is denied, while there is no good program.
    fail_closed: Option<String>,
    last_fetch: Option<FetchInfo>,
    last_error: Option<Failure>,
    /// The live commit's `mcpgate.yaml` differs from the one the gateway started with.
    restart_required: bool,
    /// How long the last successful build took, from the fetched head to the swap.
    last_build_ms: Option<f64>,
    save_error: Option<String>,
}

/// What takes the programs the syncer builds: the gateway implements it, so the policy
/// follower never depends on the gateway.
pub trait ProgramSink: Send + Sync {
    /// Makes `loaded` the live program (with the lock of the same commit).
    fn swap(&self, loaded: LoadedProgram);
}

/// Follows the policy source and swaps good programs into the gateway.
#[derive(Debug)]
pub struct Syncer {
    source: Source,
    state: PathBuf,
    status: Mutex<Status>,
    /// One sync at a time.
    running: tokio::sync::Mutex<()>,
    /// Where good programs go (the gateway).
    sink: OnceLock<Weak<dyn ProgramSink>>,
    /// The config the gateway started with (servers and gateway settings are read once).
    config: Config,
    pub metrics: Metrics,
    pub admin: admin::AdminAuth,
    /// How often the repository is polled, once polling runs.
    poll: OnceLock<std::time::Duration>,
    /// Told of each commit that goes live (on the sync's blocking thread).
    announce: OnceLock<Announce>,
}

/// What the gateway starts with.
#[derive(Debug)]
pub struct Start {
    pub syncer: Arc<Syncer>,
    pub program: Program,
    pub config: Config,
    /// `mcpgate.lock` of the same commit.
    pub lock: Option<Lockfile>,
    /// `responders.yaml` of the same commit.
    pub responders: ResponderSet,
}

impl Syncer {
    /// Start-up for a repository: fetch and build the head; when that fails, serve the
    /// saved program; when there is none, the empty program (deny everything). Never fails:
    /// the reasons are logged and shown in `/status`.
    pub fn start_git(src: GitSource, state: &Path, admin: admin::AdminAuth) -> Start {
        let saved = match store::load(state) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "the saved program cannot be used");
                None
            }
        };
        let mut status = Status {
            live: Live {
                lock: String::new(),
                responders: (0, String::new()),
                commit: None,
                commit_time: None,
                hash: String::new(),
                loaded_at: now_secs(),
                origin: Origin::None,
                rules: 0,
            },
            fail_closed: None,
            last_fetch: None,
            last_error: None,
            restart_required: false,
            last_build_ms: None,
            save_error: None,
        };
        let metrics = Metrics::default();
        let mirror = state.join(MIRROR_DIR);
        let started = Instant::now();
        let mut built: Option<(Head, Built)> = None;
        let mut why_not = String::new();
        match fetch::fetch(&src, &mirror) {
            Ok(head) => {
                status.last_fetch = Some(FetchInfo {
                    at: now_secs(),
                    commit: Some(head.commit.clone()),
                    error: None,
                });
                match read_and_build(&mirror, &src.subdir, &head.commit) {
                    Ok(b) => {
                        metrics.syncs_ok.fetch_add(1, Ordering::Relaxed);
                        built = Some((head, b));
                    }
                    Err(rejected) => {
                        metrics.syncs_failed.fetch_add(1, Ordering::Relaxed);
                        metrics.rejected.fetch_add(1, Ordering::Relaxed);
                        log_rejected(Some(&head.commit), &rejected);
                        why_not = format!(
                            "the head commit `{}` has {} error(s)",
                            head.commit, rejected.errors
                        );
                        status.last_error = Some(Failure {
                            commit: Some(head.commit),
                            at: now_secs(),
                            rejected,
                        });
                    }
                }
            }
            Err(e) => {
                metrics.syncs_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(url = %fetch::redact_url(&src.url), error = %e, "cannot fetch the policy repository");
                why_not = format!("cannot fetch the policy repository: {e}");
                status.last_fetch = Some(FetchInfo {
                    at: now_secs(),
                    commit: None,
                    error: Some(e.to_string()),
                });
            }
        }
        let (program, config, lock, responders) = if let Some((head, b)) = built {
            status.last_build_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
            status.live = Live {
                lock: lock_hash(b.lock.as_ref()),
                responders: responders_of(&b.responders),
                commit: Some(head.commit.clone()),
                commit_time: Some(head.time),
                hash: b.program.hash_hex(),
                loaded_at: now_secs(),
                origin: Origin::Built,
                rules: b.program.rules().len(),
            };
            status.save_error = save(state, &status.live, &b);
            tracing::info!(commit = %head.commit, program = %status.live.hash, tests = b.tests, "policy built from the repository head");
            (b.program, b.config, b.lock, b.responders)
        } else if let Some((s, program)) = saved {
            let lock = match s.lock.as_deref().map(Lockfile::parse).transpose() {
                Ok(l) => l,
                Err(e) => {
                    // The saved lock was good when saved; without it, pinned servers would
                    // run unchecked, so every tool of a server with `lock` set is held.
                    tracing::error!(error = %e, "the saved mcpgate.lock cannot be read");
                    Some(Lockfile::default())
                }
            };
            tracing::warn!(commit = ?s.commit, program = %s.hash, reason = %why_not, "serving the last good program from the state dir");
            status.live = Live {
                lock: lock_hash(lock.as_ref()),
                responders: responders_of(&s.responders),
                commit: s.commit,
                commit_time: s.commit_time,
                hash: s.hash,
                loaded_at: now_secs(),
                origin: Origin::Saved,
                rules: program.rules().len(),
            };
            (program, s.config, lock, s.responders)
        } else {
            let reason = format!("no good policy yet ({why_not}); every request is denied");
            tracing::error!("{reason}");
            status.fail_closed = Some(reason);
            let program = Program::compile(&Policy::default(), None);
            status.live.hash = program.hash_hex();
            status.live.rules = program.rules().len();
            (program, Config::default(), None, ResponderSet::default())
        };
        let syncer = Arc::new(Syncer {
            source: Source::Git(src),
            state: state.to_owned(),
            status: Mutex::new(status),
            running: tokio::sync::Mutex::new(()),
            sink: OnceLock::new(),
            config: config.clone(),
            metrics,
            admin,
            poll: OnceLock::new(),
            announce: OnceLock::new(),
        });
        Start {
            syncer,
            program,
            config,
            lock,
            responders,
        }
    }

    /// Start-up for a folder (development): the folder must check without errors; its
    /// tests are run on every later change.
    ///
    /// # Errors
    /// The rejection, when the folder cannot be read or has errors.
    pub fn start_dir(dir: &Path, state: &Path, admin: admin::AdminAuth) -> Result<Start, String> {
        let files = mcpgate_compiler::repo::read_dir(dir)
            .map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
        let b = build::build_untested(files).map_err(|r| {
            format!(
                "{}error: the policy in `{}` has {} error(s); the gateway does not start",
                r.rendered,
                dir.display(),
                r.errors
            )
        })?;
        let (program, config, lock, responders) = (b.program, b.config, b.lock, b.responders);
        let status = Status {
            live: Live {
                lock: lock_hash(lock.as_ref()),
                responders: responders_of(&responders),
                commit: None,
                commit_time: None,
                hash: program.hash_hex(),
                loaded_at: now_secs(),
                origin: Origin::Built,
                rules: program.rules().len(),
            },
            fail_closed: None,
            last_fetch: None,
            last_error: None,
            restart_required: false,
            last_build_ms: None,
            save_error: None,
        };
        let syncer = Arc::new(Syncer {
            source: Source::Dir(dir.to_owned()),
            state: state.to_owned(),
            status: Mutex::new(status),
            running: tokio::sync::Mutex::new(()),
            sink: OnceLock::new(),
            config: config.clone(),
            metrics: Metrics::default(),
            admin,
            poll: OnceLock::new(),
            announce: OnceLock::new(),
        });
        Ok(Start {
            syncer,
            program,
            config,
            lock,
            responders,
        })
    }

    /// Connects the syncer to the gateway whose program it replaces.
    pub fn attach<S: ProgramSink + 'static>(&self, sink: &Arc<S>) {
        let weak: Weak<dyn ProgramSink> = Arc::downgrade(sink) as Weak<dyn ProgramSink>;
        let _ = self.sink.set(weak);
    }

    /// The policy source.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// How long the live program stays at least: the repository poll interval (`None` for
    /// a watched folder, which may change at any time).
    pub fn poll_interval(&self) -> Option<std::time::Duration> {
        match self.source {
            Source::Git(_) => self.poll.get().copied(),
            Source::Dir(_) => None,
        }
    }

    /// Fetches (or rereads the folder), builds a new head and swaps it in when it is good.
    /// Returns the policy status afterwards.
    pub async fn sync(self: &Arc<Self>) -> Value {
        {
            let _one = self.running.lock().await;
            let me = self.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || me.sync_blocking()).await {
                tracing::error!(error = %e, "policy sync stopped unexpectedly");
                self.metrics.syncs_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.status_json()
    }

    /// Tells `announce` of every commit that goes live from the repository from now on.
    pub fn announce_with(&self, announce: Announce) {
        let _ = self.announce.set(announce);
    }

    /// The commit being served, when it came from a repository.
    pub fn live_commit(&self) -> Option<String> {
        self.lock().live.commit.clone()
    }

    /// Syncs every `every` until the runtime ends.
    pub fn spawn_poll(self: &Arc<Self>, every: std::time::Duration) {
        let _ = self.poll.set(every);
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                me.sync().await;
            }
        });
    }

    fn sync_blocking(&self) {
        let started = Instant::now();
        let (head, result) = match &self.source {
            Source::Git(src) => {
                let mirror = self.state.join(MIRROR_DIR);
                let head = match fetch::fetch(src, &mirror) {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!(url = %fetch::redact_url(&src.url), error = %e, "cannot fetch the policy repository");
                        self.metrics.syncs_failed.fetch_add(1, Ordering::Relaxed);
                        self.lock().last_fetch = Some(FetchInfo {
                            at: now_secs(),
                            commit: None,
                            error: Some(e.to_string()),
                        });
                        return;
                    }
                };
                {
                    let mut st = self.lock();
                    st.last_fetch = Some(FetchInfo {
                        at: now_secs(),
                        commit: Some(head.commit.clone()),
                        error: None,
                    });
                    if st.live.commit.as_deref() == Some(head.commit.as_str())
                        && st.live.origin != Origin::None
                    {
                        // Nothing new; an error about another commit is no longer current.
                        st.last_error = None;
                        drop(st);
                        self.metrics.syncs_ok.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    if st
                        .last_error
                        .as_ref()
                        .is_some_and(|f| f.commit.as_deref() == Some(head.commit.as_str()))
                    {
                        // Already rejected: a commit's verdict does not change.
                        drop(st);
                        self.metrics.syncs_failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
                let result = read_and_build(&mirror, &src.subdir, &head.commit);
                (Some(head), result)
            }
            Source::Dir(dir) => {
                let result = match mcpgate_compiler::repo::read_dir(dir) {
                    Ok(files) => build::build(files, None),
                    Err(e) => Err(Rejected {
                        errors: 1,
                        diagnostics: vec![format!("error: cannot read `{}`: {e}", dir.display())],
                        rendered: String::new(),
                    }),
                };
                (None, result)
            }
        };
        let commit = head.as_ref().map(|h| h.commit.clone());
        match result {
            Ok(b) => {
                self.metrics.syncs_ok.fetch_add(1, Ordering::Relaxed);
                self.install(head, b, started);
            }
            Err(rejected) => {
                self.metrics.syncs_failed.fetch_add(1, Ordering::Relaxed);
                self.metrics.rejected.fetch_add(1, Ordering::Relaxed);
                log_rejected(commit.as_deref(), &rejected);
                self.lock().last_error = Some(Failure {
                    commit,
                    at: now_secs(),
                    rejected,
                });
            }
        }
    }

    fn install(&self, head: Option<Head>, b: Built, started: Instant) {
        let hash = b.program.hash_hex();
        let lock = lock_hash(b.lock.as_ref());
        let responders = responders_of(&b.responders);
        let mut st = self.lock();
        st.last_error = None;
        if st.live.hash == hash
            && st.live.lock == lock
            && st.live.responders == responders
            && st.live.origin != Origin::None
        {
            // Same program (a commit that changed nothing the program holds).
            if let Some(h) = head {
                st.live.commit = Some(h.commit.clone());
                st.live.commit_time = Some(h.time);
                drop(st);
                self.announce(&h.commit);
            }
            return;
        }
        let Some(gw) = self.sink.get().and_then(Weak::upgrade) else {
            return;
        };
        let live = Live {
            lock,
            responders,
            commit: head.as_ref().map(|h| h.commit.clone()),
            commit_time: head.as_ref().map(|h| h.time),
            hash: hash.clone(),
            loaded_at: now_secs(),
            origin: Origin::Built,
            rules: b.program.rules().len(),
        };
        if matches!(self.source, Source::Git(_)) {
            st.save_error = save(&self.state, &live, &b);
        }
        st.restart_required = restart_relevant(&b.config) != restart_relevant(&self.config);
        if st.restart_required {
            tracing::warn!(
                "`mcpgate.yaml` changed: servers and gateway settings take effect on restart"
            );
        }
        gw.swap(
            LoadedProgram::with_lock(b.program, b.lock.as_ref(), Some(&b.config))
                .with_responders(b.responders),
        );
        self.metrics.swaps.fetch_add(1, Ordering::Relaxed);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        st.last_build_ms = Some(ms);
        st.fail_closed = None;
        tracing::info!(commit = ?live.commit, program = %hash, tests = b.tests, build_ms = ms, "policy swapped in");
        let commit = live.commit.clone();
        st.live = live;
        drop(st);
        if let Some(c) = commit {
            self.announce(&c);
        }
    }

    fn announce(&self, commit: &str) {
        if let Some(a) = self.announce.get() {
            (a.0)(Event::Policy {
                commit: commit.to_owned(),
            });
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        // A panic while holding the lock cannot leave the status half-written in a way
        // that matters: keep serving it.
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The policy part of `/status`.
    pub fn status_json(&self) -> Value {
        let st = self.lock();
        let source = match &self.source {
            Source::Git(g) => json!({
                "kind": "git",
                "url": fetch::redact_url(&g.url),
                "branch": g.branch,
                "path": g.subdir,
            }),
            Source::Dir(d) => json!({"kind": "dir", "path": d.display().to_string()}),
        };
        json!({
            "source": source,
            "live": {
                "commit": st.live.commit,
                "commit_time": st.live.commit_time,
                "hash": st.live.hash,
                "lock": (!st.live.lock.is_empty()).then_some(&st.live.lock),
                "rules": st.live.rules,
                "responders": st.live.responders.0,
                "loaded_at": st.live.loaded_at,
                "from": st.live.origin.as_str(),
            },
            "fail_closed": st.fail_closed,
            "last_fetch": st.last_fetch.as_ref().map(|f| json!({
                "at": f.at,
                "ok": f.error.is_none(),
                "commit": f.commit,
                "error": f.error,
            })),
            "last_error": st.last_error.as_ref().map(|f| json!({
                "commit": f.commit,
                "at": f.at,
                "errors": f.rejected.errors,
                "diagnostics": f.rejected.diagnostics,
            })),
            "last_build_ms": st.last_build_ms,
            "restart_required": st.restart_required,
            "save_error": st.save_error,
        })
    }

    /// The gauges for `/metrics`.
    pub fn gauges(&self) -> metrics::Gauges {
        let st = self.lock();
        metrics::Gauges {
            commit_time: st.live.commit_time,
            loaded_at: Some(st.live.loaded_at),
            fail_closed: st.fail_closed.is_some(),
            now: now_secs(),
        }
    }
}

fn read_and_build(mirror: &Path, subdir: &str, commit: &str) -> Result<Built, Rejected> {
    match crate::git::read_tree(mirror, commit, subdir) {
        Ok(files) => build::build(files, Some(commit)),
        Err(e) => Err(Rejected {
            errors: 1,
            diagnostics: vec![format!("error: cannot read commit `{commit}`: {e}")],
            rendered: String::new(),
        }),
    }
}

fn log_rejected(commit: Option<&str>, r: &Rejected) {
    tracing::error!(
        commit = ?commit,
        errors = r.errors,
        diagnostics = %r.rendered.trim_end(),
        first = ?r.diagnostics.first(),
        "policy rejected: the last good program stays live"
    );
}

/// SHA-256 of the rendered lock, hex (empty without one).
fn lock_hash(lock: Option<&Lockfile>) -> String {
    lock.map_or_else(String::new, Lockfile::hash_hex)
}

fn responders_of(set: &ResponderSet) -> (usize, String) {
    (set.responders.len(), set.digest())
}

/// The config without what a swap applies live (lock modes, argument validation).
fn restart_relevant(c: &Config) -> Config {
    let mut c = c.clone();
    for s in c.servers.values_mut() {
        s.lock = None;
        s.validate_arguments = false;
    }
    c
}

fn save(state: &Path, live: &Live, b: &Built) -> Option<String> {
    let saved = store::Saved {
        commit: live.commit.clone(),
        commit_time: live.commit_time,
        hash: live.hash.clone(),
        loaded_at: live.loaded_at,
        config: b.config.clone(),
        program: String::new(),
        lock: b.lock.as_ref().map(Lockfile::render),
        responders: b.responders.clone(),
    };
    match store::save(state, saved, &b.program) {
        Ok(()) => None,
        Err(e) => {
            tracing::error!(error = %e, "cannot save the program in the state dir");
            Some(e.to_string())
        }
    }
}
