//! The audit log: one hash-chained JSON record per decision, on disk before the call is
//! forwarded, with signed checkpoints; `mcpgate audit verify` re-derives every verdict.
//! The format and the guarantees are described in `docs/audit.md`.
//!
//! - [`record`]: the canonical encoding and the chain hash.
//! - [`body`]: a record built member by member in that encoding, as the gateway writes them.
//! - [`writer`]: the writer thread (group commit, rotation, checkpoints).
//! - [`space`]: the room ahead of the records in a log file (preallocated, zeroed ahead).
//! - [`syncers`]: the threads that sync the writer's batches under `durability: batched`.
//! - [`keys`]: the checkpoint signing key and the HMAC salt in the state dir.
//! - [`decision`]: the records the gateway writes for decisions, outcomes and lists.
//! - [`read`], [`verify`], [`query`]: reading the log back, for `mcpgate audit`.
//! - [`postgres`]: the log copied into PostgreSQL for queries (`audit export --to-postgres`).
//!
//! Owns the log on disk. May use: `decision` (records are written from a decision) and the
//! bottom layer.

pub mod body;
pub mod decision;
pub mod keys;
pub mod postgres;
pub mod query;
pub mod read;
pub mod record;
pub mod space;
pub mod syncers;
pub mod verify;
pub mod writer;

use body::{Body, Record};
use mcpgate_compiler::config::{AuditConfig, Durability};
use record::Fields;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use writer::{Export, Inline, Msg, Settings, Shared, Writer};

/// Folder of the log inside the state dir, when the config names none.
pub const DEFAULT_DIR: &str = "audit";
/// JSON-RPC error code of a call refused because its record could not be written.
pub const AUDIT_UNAVAILABLE: i64 = -32050;

/// A record could not be written: the call it describes must not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audit log cannot be written: {0}")]
pub struct AuditError(pub String);

/// The audit log of a running gateway.
#[derive(Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
    salt: [u8; 32],
    dir: PathBuf,
    /// In a fleet, the replica's name, written into every record as `replica` so the chains
    /// of several replicas can be told apart once merged; `None` on one gateway.
    replica: Option<String>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// The log folder `config` names, else `state/audit`.
pub fn log_dir(config: &AuditConfig, state: &Path) -> PathBuf {
    config
        .path
        .as_ref()
        .map_or_else(|| state.join(DEFAULT_DIR), PathBuf::from)
}

impl AuditLog {
    /// Opens (or continues) the log `config` describes; `None` when it is turned off.
    ///
    /// # Errors
    /// When the folder, the keys, the lock or the export file cannot be used.
    pub fn open(config: &AuditConfig, state: &Path) -> Result<Option<Arc<AuditLog>>, String> {
        AuditLog::open_as(config, state, None)
    }

    /// As [`AuditLog::open`], every record naming `replica` (a fleet's replica) when given.
    ///
    /// # Errors
    /// As [`AuditLog::open`].
    pub fn open_as(
        config: &AuditConfig,
        state: &Path,
        replica: Option<String>,
    ) -> Result<Option<Arc<AuditLog>>, String> {
        if !config.enabled {
            return Ok(None);
        }
        let dir = log_dir(config, state);
        let key = keys::signing_key(state)
            .map_err(|e| format!("cannot read or create the audit signing key: {e}"))?;
        let salt =
            keys::salt(state).map_err(|e| format!("cannot read or create the audit salt: {e}"))?;
        let export = match config.export.as_deref() {
            None => None,
            Some("stdout") => Some(Export::Stdout),
            Some(path) => Some(Export::File(
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)
                    .map_err(|e| format!("cannot open the audit export `{path}`: {e}"))?,
            )),
        };
        let settings = Settings {
            dir: dir.clone(),
            level: match config.durability {
                Durability::Strict => writer::Level::Strict,
                Durability::Batched => writer::Level::Batched,
                Durability::Written => writer::Level::Written,
            },
            sync_interval: Duration::from_millis(config.sync_ms.clamp(1, 60_000)),
            rotate_bytes: config.rotate_bytes.max(4096),
            rotate_after: Duration::from_secs(config.rotate_secs.max(1)),
            checkpoint_records: config.checkpoint_records.max(1),
            checkpoint_after: Duration::from_secs(config.checkpoint_secs.max(1)),
            key,
            export,
        };
        let shared = Arc::new(Shared::new(Writer::open(settings)?));
        let (tx, rx) = mpsc::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mcpgate-audit".into())
            .spawn(move || thread_shared.run(&rx))
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok(Some(Arc::new(AuditLog {
            tx,
            shared,
            salt,
            dir,
            replica,
            thread: Mutex::new(Some(thread)),
        })))
    }

    /// The folder the log files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends a record and waits until it is durable (synced, or written under
    /// `durability: written`); returns its `seq`. The record must hold `type`; the writer
    /// sets `seq` and `prev` (given ones are left out).
    ///
    /// # Errors
    /// When the record could not be written: whatever it describes must not go ahead.
    pub async fn append(&self, record: impl Into<Record>) -> Result<u64, AuditError> {
        let (ack, mut done) = tokio::sync::oneshot::channel();
        if let Some((body, ack)) = self.try_commit(self.seal(record.into()), Some(ack)) {
            self.send(Msg::Record(body, ack))
                .map_err(|()| AuditError("the audit writer has stopped".into()))?;
        }
        // Not answered yet: poll for the answer rather than sleep until it comes.
        let answer = match crate::busy_poll::poll(1, || match done.try_recv() {
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => None,
            Ok(a) => Some(Ok(a)),
            Err(_) => Some(Err(())),
        }) {
            Some(a) => a,
            None => done.await.map_err(|_| ()),
        };
        match answer {
            Ok(Ok(seq)) => Ok(seq),
            Ok(Err(e)) => Err(AuditError(e)),
            Err(_) => Err(AuditError("the audit writer has stopped".into())),
        }
    }

    /// Appends a record without waiting (for what happened after a call was forwarded). It
    /// is written at once and synced with the next record someone waits for, or by the
    /// sync timer: it never adds an fdatasync of its own.
    pub fn append_nowait(&self, record: impl Into<Record>) {
        let Some((body, _)) = self.try_commit(self.seal(record.into()), None) else {
            return;
        };
        if self.send(Msg::Record(body, None)).is_err() {
            tracing::error!("the audit writer has stopped: a record is lost");
        }
    }

    /// When this is the only call in flight and the writer is free, commits the record
    /// here (written, and synced when waited for and no sync is in flight), sparing it the
    /// hand-off to the writer thread and back: this thread has nothing else to do
    /// meanwhile. Gives the record back otherwise, to be sent to the thread.
    fn try_commit(
        &self,
        body: Body,
        ack: Option<writer::Ack>,
    ) -> Option<(Body, Option<writer::Ack>)> {
        if !crate::busy_poll::alone() {
            return Some((body, ack));
        }
        match self.shared.try_commit(body, ack) {
            Inline::Done => None,
            Inline::Wake => {
                let _ = self.tx.send(Msg::Wake);
                None
            }
            Inline::Declined(f, a) => Some((f, a)),
        }
    }

    /// The record as the writer takes it: with this replica's name (in a fleet), in
    /// canonical order.
    fn seal(&self, mut record: Record) -> Body {
        if let Some(r) = &self.replica
            && !record.has("replica")
        {
            record.str("replica", r);
        }
        record.finish()
    }

    /// Sends a record to the writer thread, counted as queued until committed.
    fn send(&self, msg: Msg) -> Result<(), ()> {
        self.shared.queue();
        self.tx.send(msg).map_err(|_| self.shared.unqueue())
    }

    /// Records an event that is no decision (an approval step, an operator action), linked
    /// to a request when `request_id` is given, and waits until it is on disk. `event` is a
    /// dotted name (`approval.granted`); `data` is any JSON object.
    ///
    /// # Errors
    /// When the record could not be written.
    pub async fn record_event(
        &self,
        event: &str,
        request_id: Option<&str>,
        data: Value,
    ) -> Result<u64, AuditError> {
        self.append(event_fields(event, request_id, data)).await
    }

    /// HMAC-SHA256 of a value's canonical encoding under this log's salt, as it replaces a
    /// sensitive argument: `hmac-sha256:HEX`.
    pub fn seal_value(&self, value: &Value) -> String {
        format!(
            "hmac-sha256:{}",
            keys::hmac_hex(&self.salt, record::canonical(value).as_bytes())
        )
    }

    /// Signs a last checkpoint and stops the writer (on shutdown). Records appended later
    /// are refused.
    pub fn close(&self) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Close(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(5));
        }
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

/// The fields of an event record.
pub fn event_fields(event: &str, request_id: Option<&str>, data: Value) -> Fields {
    let mut f = Fields::new();
    f.insert("type".into(), Value::String("event".into()));
    f.insert("time".into(), Value::String(record::now_rfc3339()));
    f.insert("event".into(), Value::String(event.to_owned()));
    if let Some(id) = request_id {
        f.insert("request_id".into(), Value::String(id.to_owned()));
    }
    f.insert("data".into(), data);
    f
}

/// Records that a gateway started writing this log: its version, process and live policy.
///
/// # Errors
/// When the record cannot be written.
pub async fn record_start(
    log: &AuditLog,
    listen: std::net::SocketAddr,
    loaded: &crate::decision::LoadedProgram,
) -> Result<u64, AuditError> {
    let data = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "listen": listen.to_string(),
        "policy": {"hash": loaded.hash, "commit": loaded.program.commit()},
    });
    log.record_event("gateway.start", None, data).await
}
