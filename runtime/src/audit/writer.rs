//! The writer thread: gives each record its `seq` and `prev`, appends batches to the
//! current log file with one write, acknowledges each record once it is as durable as the
//! configured level asks (synced for `strict` and `batched`, written for `written`), rotates
//! files, and signs checkpoints.
//!
//! Group commit: everything waiting in the queue when the writer wakes goes into one write.
//! Under `batched`, the acknowledgements of a batch go to the syncer threads
//! ([`crate::audit::syncers`]), and the writer goes on with the next batch while the sync
//! is in flight (a syncer takes every batch queued when it starts, one sync for all). A lone
//! waiting record with no sync in flight is synced by the writer itself: a hop to a syncer
//! thread costs about as much as a quiet disk's sync.
//! Records nobody waits for (outcomes, lists) are written at once but add no fdatasync of
//! their own: they ride on the next batch's sync, or on the sync timer (`sync_interval`)
//! when no call follows. The current file is preallocated and zeroed ahead of its records
//! ([`crate::audit::space`]), so that a sync has neither a file size nor a block's
//! allocation to write; its tail is zeros until records fill it, which readers take as the
//! end of the log.
//! A file is cut to its records when the writer leaves it (rotation, shutdown, the next
//! start after a crash).
//!
//! While the gateway has one call in flight and nothing is queued, that call commits its
//! records itself, on its own thread ([`Shared::try_commit`]): the hand-offs to the writer
//! thread and back cost more than the work on an idle machine. The thread then keeps the
//! sync timer and the checkpoints.
//!
//! A failed write is rolled back (the file is cut back to its last complete record) and
//! every record of the batch is refused: the calls they describe are not forwarded. A
//! failed fdatasync cannot be retried safely (the kernel may have dropped the pages it could
//! not write): the writer refuses everything from then on.

use crate::audit::body::Body;
use crate::audit::keys;
use crate::audit::record::{GENESIS, canonical, hash_hex, hex, now_rfc3339};
use crate::audit::space::Space;
use crate::audit::syncers::Syncers;
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use std::fs::{File, OpenOptions};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;

/// File holding the signed checkpoints, one JSON line each, in the log dir.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";
/// Lock file that keeps two gateways from writing one log.
pub const LOCK_FILE: &str = ".lock";
/// Most records in one group commit.
const MAX_BATCH: usize = 1024;

/// The answer to one record: its `seq` once durable, or why it could not be written.
pub type Ack = oneshot::Sender<Result<u64, String>>;

/// What the writer thread is sent.
pub enum Msg {
    /// A record to append; the sender waits on the ack when there is one.
    Record(Body, Option<Ack>),
    /// A record was written by its caller and waits for the sync timer: look at the
    /// timer again.
    Wake,
    /// Sign a last checkpoint and stop; answered when done.
    Close(mpsc::Sender<()>),
}

/// Where exported lines go.
pub enum Export {
    Stdout,
    File(File),
}

/// When a record counts as durable, and so when its caller is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// One write and one fdatasync per record, each acknowledged after its own sync.
    Strict,
    /// Waiting records share one write and one fdatasync; acknowledged after the sync.
    Batched,
    /// Acknowledged once written to the file (a killed process loses nothing); synced on
    /// the timer, so a power loss can lose the last `sync_interval`.
    Written,
}

/// Settings of the writer.
pub struct Settings {
    pub dir: PathBuf,
    pub level: Level,
    /// Longest a written record waits for a sync when no later record brings one.
    pub sync_interval: Duration,
    pub rotate_bytes: u64,
    pub rotate_after: Duration,
    pub checkpoint_records: u64,
    pub checkpoint_after: Duration,
    pub key: SigningKey,
    pub export: Option<Export>,
}

/// The name of a log file whose first record is `seq`, started at `ms` since the epoch:
/// names sort in log order.
pub fn file_name(seq: u64, ms: u128) -> String {
    format!("audit-{seq:012}-{ms:013}.jsonl")
}

/// The log files of `dir`, in log order.
///
/// # Errors
/// When the folder cannot be read.
pub fn log_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The last complete record of the log in `dir`: (its seq, its hash).
///
/// # Errors
/// When a file cannot be read, or its last complete line is no record.
pub fn last_record(dir: &Path) -> Result<Option<(u64, String)>, String> {
    for path in log_files(dir).map_err(|e| e.to_string())?.iter().rev() {
        let bytes = std::fs::read(path).map_err(|e| format!("`{}`: {e}", path.display()))?;
        // Only newline-terminated lines are records; a torn tail is left where it is.
        let end = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(i) => i,
            None => continue,
        };
        let body = &bytes[..end];
        let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let line = &body[start..];
        let seq = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v.get("seq").and_then(Value::as_u64))
            .ok_or_else(|| {
                format!(
                    "the last record of `{}` cannot be read; run `mcpgate audit verify`",
                    path.display()
                )
            })?;
        return Ok(Some((seq, hash_hex(line))));
    }
    Ok(None)
}

/// Cuts the zeros a preallocated file ends with (left by a writer that stopped without
/// cutting them, as a crash does). Only zeros go: a torn last record stays for `verify`.
///
/// # Errors
/// When the file cannot be read or cut.
pub fn trim_zero_tail(path: &Path) -> std::io::Result<()> {
    let bytes = std::fs::read(path)?;
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    if end < bytes.len() {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(end as u64)?;
        file.sync_data()?;
    }
    Ok(())
}

fn open_new(dir: &Path, seq: u64) -> std::io::Result<(File, PathBuf)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut options = OpenOptions::new();
    // Written at explicit offsets (the preallocated tail is not the end of the records).
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // A file of this `seq` exists when the writer before stopped before its first record
    // was written (a failed write) and this one starts within the same millisecond: a
    // later millisecond names this one, so it sorts after that empty file.
    let mut later = 0;
    let (file, path) = loop {
        let path = dir.join(file_name(seq, now + later));
        match options.open(&path) {
            Ok(file) => break (file, path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && later < 1000 => {
                later += 1;
            }
            Err(e) => return Err(e),
        }
    };
    // The new name must survive a crash as well as the records in it.
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok((file, path))
}

/// The writer's state; runs on its own thread.
pub struct Writer {
    settings: Settings,
    file: File,
    path: PathBuf,
    /// Bytes of complete records in `file`.
    len: u64,
    /// The preallocated and zeroed room after the records of `file`.
    space: Space,
    /// When the oldest record written since the last sync was written.
    unsynced: Option<Instant>,
    /// fdatasyncs of log files so far (asked of the syncers included).
    syncs: u64,
    /// Under `batched`: the threads that sync the batches someone waits for, so the
    /// writer goes on with the next batch while a sync is in flight.
    syncers: Option<Syncers>,
    opened: Instant,
    next_seq: u64,
    prev: String,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    checkpoints: File,
    export_failed: bool,
    /// Set when a failed write could not be cut back: nothing more is written.
    broken: Option<String>,
    /// Lock held for the writer's life.
    _lock: File,
}

impl Writer {
    /// Opens the log in `settings.dir`: takes its lock, finds the last record, and starts
    /// a new file that continues the chain.
    ///
    /// # Errors
    /// When the folder, the lock or the files cannot be used (the message says which).
    pub fn open(settings: Settings) -> Result<Writer, String> {
        let dir = settings.dir.clone();
        crate::state::prepare_dir(&dir)
            .map_err(|e| format!("cannot create the audit folder `{}`: {e}", dir.display()))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| format!("cannot open `{}`: {e}", dir.join(LOCK_FILE).display()))?;
        if lock.try_lock().is_err() {
            return Err(format!(
                "another gateway writes the audit log in `{}`",
                dir.display()
            ));
        }
        // A writer that was killed left its file's preallocated zeros: cut them.
        if let Some(last) = log_files(&dir)
            .map_err(|e| format!("cannot read the audit folder `{}`: {e}", dir.display()))?
            .last()
        {
            trim_zero_tail(last)
                .map_err(|e| format!("cannot cut the tail of `{}`: {e}", last.display()))?;
        }
        let public = hex(&settings.key.verifying_key().to_bytes());
        std::fs::write(dir.join(keys::PUBLIC_KEY_FILE), format!("{public}\n"))
            .map_err(|e| format!("cannot write the audit public key: {e}"))?;
        let (next_seq, prev) = match last_record(&dir)? {
            Some((seq, hash)) => (seq + 1, hash),
            None => (0, GENESIS.to_owned()),
        };
        let (file, path) = open_new(&dir, next_seq).map_err(|e| {
            format!(
                "cannot create an audit log file in `{}`: {e}",
                dir.display()
            )
        })?;
        let checkpoints = OpenOptions::new()
            .append(true)
            .create(true)
            .open(dir.join(CHECKPOINTS_FILE))
            .map_err(|e| format!("cannot open `{CHECKPOINTS_FILE}`: {e}"))?;
        let syncers = match settings.level {
            Level::Batched => Some(
                Syncers::start(&path)
                    .map_err(|e| format!("cannot start the audit log syncers: {e}"))?,
            ),
            Level::Strict | Level::Written => None,
        };
        let space = Space::new(&file);
        Ok(Writer {
            settings,
            file,
            path,
            len: 0,
            space,
            unsynced: None,
            syncs: 0,
            syncers,
            opened: Instant::now(),
            next_seq,
            prev,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            checkpoints,
            export_failed: false,
            broken: None,
            _lock: lock,
        })
    }

    /// The seq the next record gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Serves `rx` until it closes or a `Close` arrives.
    pub fn run(self, rx: &mpsc::Receiver<Msg>) {
        Shared::new(self).run(rx);
    }

    /// When the writer thread next has something to do on its own: a written record's
    /// sync, else the checkpoint tick.
    fn next_wake(&self) -> Instant {
        let tick = self
            .settings
            .checkpoint_after
            .max(Duration::from_millis(100));
        self.unsynced.map_or_else(
            || Instant::now() + tick,
            |since| since + self.settings.sync_interval,
        )
    }

    fn commit(&mut self, batch: Vec<(Body, Option<Ack>)>) {
        if self.broken.is_none()
            && let Some(why) = self.syncers.as_ref().and_then(Syncers::broken)
        {
            self.broken = Some(why);
        }
        if let Some(why) = &self.broken {
            for (_, ack) in batch {
                if let Some(a) = ack {
                    let _ = a.send(Err(why.clone()));
                }
            }
            return;
        }
        let mut buf = Vec::with_capacity(batch.len() * 512);
        let mut seq = self.next_seq;
        let mut prev = self.prev.clone();
        let mut acks = Vec::with_capacity(batch.len());
        for (body, ack) in batch {
            let start = buf.len();
            body.line_into(seq, &prev, &mut buf);
            prev = hash_hex(&buf[start..]);
            buf.push(b'\n');
            acks.push((seq, ack));
            seq += 1;
        }
        if let Err(e) = self.rotate_if_due(buf.len() as u64) {
            tracing::error!(error = %e, "cannot start a new audit log file");
        }
        if let Err(e) = self.write(&buf) {
            // Cut back a partial write so the file ends with a complete record.
            let cut = self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data());
            tracing::error!(error = %e, file = %self.path.display(), cut_back = cut.is_ok(), "audit log write failed: the calls are refused");
            let why = e.to_string();
            match cut {
                Ok(()) => self.space.cut(self.len),
                Err(c) => {
                    self.broken = Some(format!("{why}; the log file could not be cut back: {c}"));
                }
            }
            let mut lost = 0;
            for (_, ack) in acks {
                match ack {
                    Some(a) => {
                        let _ = a.send(Err(why.clone()));
                    }
                    None => lost += 1,
                }
            }
            if lost > 0 {
                tracing::error!(lost, "audit records of calls already forwarded are lost");
            }
            return;
        }
        self.len += buf.len() as u64;
        self.next_seq = seq;
        self.prev = prev;
        self.since_checkpoint += acks.len() as u64;
        self.unsynced.get_or_insert_with(Instant::now);
        // Under `batched`, the records someone waits for go to a syncer, whose sync (it
        // starts after this write) covers everything written so far; the writer goes on.
        if let Some(syncers) = &self.syncers {
            let waiting: Vec<(u64, Ack)> = acks
                .into_iter()
                .filter_map(|(s, a)| a.map(|a| (s, a)))
                .collect();
            // A lone caller with no sync in flight: the writer syncs itself, sparing the
            // call a hop to a syncer thread (its wake-up is most of a quiet disk's cost);
            // nobody else waits meanwhile. Otherwise the syncers overlap syncs with the
            // next writes.
            if waiting.len() == 1 && syncers.idle() {
                let ok = self.sync_waited();
                let why = self.broken.clone().unwrap_or_default();
                for (s, a) in waiting {
                    let _ = a.send(if ok { Ok(s) } else { Err(why.clone()) });
                }
            } else if !waiting.is_empty() {
                self.syncs += 1;
                self.unsynced = None;
                syncers.sync(waiting);
            }
            self.export(&buf);
            return;
        }
        // A record someone waits for is synced now, unless written is durable enough;
        // strict syncs every record.
        let sync_now = match self.settings.level {
            Level::Strict => true,
            Level::Batched => acks.iter().any(|(_, a)| a.is_some()),
            Level::Written => false,
        };
        if sync_now && !self.sync_waited() {
            let why = self.broken.clone().unwrap_or_default();
            for (_, ack) in acks {
                if let Some(a) = ack {
                    let _ = a.send(Err(why.clone()));
                }
            }
            return;
        }
        for (s, ack) in acks {
            if let Some(a) = ack {
                let _ = a.send(Ok(s));
            }
        }
        self.export(&buf);
    }

    /// Writes `buf` after the records of the current file, in the room [`Space`] keeps
    /// ahead of them.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let end = self.len + buf.len() as u64;
        let limit = self.settings.rotate_bytes;
        self.space.reserve(&self.file, end, limit);
        #[cfg(unix)]
        self.file.write_all_at(buf, self.len)?;
        #[cfg(not(unix))]
        self.file.write_all(buf)?;
        self.space.written(&self.file, end, limit);
        Ok(())
    }

    /// [`Writer::sync`] for records a call waits for: the core is kept awake meanwhile
    /// when the call is alone ([`crate::keep_awake`]).
    fn sync_waited(&mut self) -> bool {
        crate::keep_awake::awake_while(|| self.sync())
    }

    /// fdatasyncs the current file; `false` (and the writer broken) when that fails.
    fn sync(&mut self) -> bool {
        if self.broken.is_some() {
            // Nothing more will be synced: no timer either.
            self.unsynced = None;
            return false;
        }
        self.syncs += 1;
        match self.file.sync_data() {
            Ok(()) => {
                self.unsynced = None;
                true
            }
            Err(e) => {
                self.unsynced = None;
                tracing::error!(error = %e, file = %self.path.display(), "audit log sync failed: every call is refused from now on");
                self.broken = Some(format!("the audit log could not be synced: {e}"));
                false
            }
        }
    }

    /// Waits for the syncs in flight, leaves the file, signs a last checkpoint.
    fn stop(&mut self) {
        if let Some(syncers) = self.syncers.take() {
            syncers.join();
        }
        self.leave_file();
        self.checkpoint();
    }

    /// Leaves the current file with its records only, synced (before a rotation or a stop).
    fn leave_file(&mut self) {
        if self.broken.is_some() {
            return;
        }
        if self.space.allocated > self.len {
            match self.file.set_len(self.len) {
                Ok(()) => self.space.cut(self.len),
                Err(e) => tracing::warn!(error = %e, "cannot cut the preallocated audit log tail"),
            }
            self.unsynced.get_or_insert_with(Instant::now);
        }
        if self.unsynced.is_some() {
            self.sync();
        }
    }

    fn rotate_if_due(&mut self, adding: u64) -> std::io::Result<()> {
        let full = self.len > 0 && self.len + adding > self.settings.rotate_bytes;
        let old = self.len > 0 && self.opened.elapsed() >= self.settings.rotate_after;
        if !(full || old) {
            return Ok(());
        }
        self.leave_file();
        let (file, path) = open_new(&self.settings.dir, self.next_seq)?;
        tracing::info!(file = %path.display(), seq = self.next_seq, "audit log rotated");
        if let Some(syncers) = &mut self.syncers {
            syncers.follow(&path)?;
        }
        self.file = file;
        self.path = path;
        self.len = 0;
        self.space.renew();
        self.opened = Instant::now();
        Ok(())
    }

    fn export(&mut self, buf: &[u8]) {
        let result = match &mut self.settings.export {
            None => return,
            Some(Export::Stdout) => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf).and_then(|()| out.flush())
            }
            Some(Export::File(f)) => f.write_all(buf),
        };
        match result {
            Ok(()) => self.export_failed = false,
            Err(e) if !self.export_failed => {
                self.export_failed = true;
                tracing::warn!(error = %e, "cannot write the audit export (the log itself is intact)");
            }
            Err(_) => {}
        }
    }

    fn maybe_checkpoint(&mut self) {
        let due = self.since_checkpoint >= self.settings.checkpoint_records
            || (self.since_checkpoint > 0
                && self.last_checkpoint.elapsed() >= self.settings.checkpoint_after);
        if due {
            // A checkpoint names records that are on disk (the syncers' may be in flight).
            if (self.unsynced.is_some() || self.syncers.is_some()) && !self.sync() {
                return;
            }
            self.checkpoint();
        }
    }

    /// Signs the head of the chain (when anything was written since the last checkpoint).
    fn checkpoint(&mut self) {
        if self.since_checkpoint == 0 || self.next_seq == 0 || self.broken.is_some() {
            return;
        }
        let seq = self.next_seq - 1;
        let line = canonical(&json!({
            "seq": seq,
            "hash": self.prev,
            "file": self.path.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
            "time": now_rfc3339(),
            "key": hex(&self.settings.key.verifying_key().to_bytes()),
            "sig": keys::sign(&self.settings.key, seq, &self.prev),
        }));
        let written = self
            .checkpoints
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| self.checkpoints.sync_data());
        match written {
            Ok(()) => {
                self.since_checkpoint = 0;
                self.last_checkpoint = Instant::now();
            }
            Err(e) => tracing::error!(error = %e, "cannot write an audit checkpoint"),
        }
    }
}

/// The writer, shared by its thread and by the callers that commit their own record when
/// nothing else is in the way ([`Shared::try_commit`]): such a record costs no hand-off to
/// the writer thread and back, two thread wake-ups that on an idle machine cost about as
/// much as a quiet disk's sync.
pub struct Shared {
    writer: Mutex<Writer>,
    /// Records sent to the writer thread and not committed yet.
    queued: AtomicUsize,
    /// Set once the log is closed: nothing more is committed.
    closed: std::sync::atomic::AtomicBool,
    /// Whether a caller may commit on its own thread (not with an export, whose writes to
    /// a pipe may block for as long as its reader likes).
    inline: bool,
    /// When the writer thread wakes next on its own, in nanoseconds since `base`.
    wakes_at: std::sync::atomic::AtomicU64,
    base: Instant,
}

/// What [`Shared::try_commit`] did.
pub enum Inline {
    /// Committed: the ack was answered, or handed to a syncer.
    Done,
    /// Committed, and written records now wait for a sync the writer thread is not due to
    /// make in time: send it a [`Msg::Wake`].
    Wake,
    /// Not committed (the writer is busy or has queued records): send it to the thread.
    Declined(Body, Option<Ack>),
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("queued", &self.queued)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub fn new(writer: Writer) -> Shared {
        Shared {
            inline: writer.settings.export.is_none(),
            writer: Mutex::new(writer),
            queued: AtomicUsize::new(0),
            closed: std::sync::atomic::AtomicBool::new(false),
            wakes_at: std::sync::atomic::AtomicU64::new(u64::MAX),
            base: Instant::now(),
        }
    }

    fn nanos_since_base(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a record sent to the writer thread (before it is sent, so that a caller
    /// committing its own record never goes ahead of it).
    pub fn queue(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// Takes back [`Shared::queue`] for a record that could not be sent.
    pub fn unqueue(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// Commits one record on the caller's thread when no record is queued for the writer
    /// thread and nobody holds the writer; a lone record someone waits for, with no sync
    /// in flight, is then synced here too. Blocks for one write and (for a record waited
    /// for, under `batched` and `strict`) one fdatasync: the caller only asks when it is
    /// the only call in flight.
    pub fn try_commit(&self, body: Body, ack: Option<Ack>) -> Inline {
        if !self.inline
            || self.closed.load(Ordering::Acquire)
            || self.queued.load(Ordering::Acquire) != 0
        {
            return Inline::Declined(body, ack);
        }
        let Ok(mut w) = self.writer.try_lock() else {
            return Inline::Declined(body, ack);
        };
        // Rechecked under the lock: the thread counts a batch off only once committed.
        if self.queued.load(Ordering::Acquire) != 0 || self.closed.load(Ordering::Acquire) {
            return Inline::Declined(body, ack);
        }
        w.commit(vec![(body, ack)]);
        w.maybe_checkpoint();
        // Written records wait for the timer: wake the thread if it sleeps past their sync.
        let due = w
            .unsynced
            .map(|since| self.nanos_since_base(since + w.settings.sync_interval));
        match due {
            Some(due) if self.wakes_at.load(Ordering::Acquire) > due => Inline::Wake,
            _ => Inline::Done,
        }
    }

    /// The writer thread: serves `rx` until it closes or a `Close` arrives.
    pub fn run(&self, rx: &mpsc::Receiver<Msg>) {
        let max = if self.lock().settings.level == Level::Strict {
            1
        } else {
            MAX_BATCH
        };
        loop {
            // Written records wait at most `sync_interval` for their sync.
            // The deadline itself is published, not the time it is computed plus the wait:
            // a caller whose record is due at that very deadline must not wake the thread.
            let at = self.lock().next_wake();
            self.wakes_at
                .store(self.nanos_since_base(at), Ordering::Release);
            let wait = at.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let mut w = self.lock();
                    // Records written by callers since the wait began have later deadlines.
                    if w.unsynced
                        .is_some_and(|since| since.elapsed() >= w.settings.sync_interval)
                    {
                        w.sync();
                    }
                    w.maybe_checkpoint();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.closed.store(true, Ordering::Release);
                    self.lock().stop();
                    return;
                }
            };
            let mut batch = Vec::new();
            let mut close = None;
            match first {
                Msg::Record(f, a) => batch.push((f, a)),
                Msg::Wake => {}
                Msg::Close(done) => close = Some(done),
            }
            // Group commit: everything already waiting goes into this write.
            while close.is_none() && batch.len() < max {
                match rx.try_recv() {
                    Ok(Msg::Record(f, a)) => batch.push((f, a)),
                    Ok(Msg::Wake) => {}
                    Ok(Msg::Close(done)) => close = Some(done),
                    Err(_) => break,
                }
            }
            let mut w = self.lock();
            if !batch.is_empty() {
                let n = batch.len();
                w.commit(batch);
                self.queued.fetch_sub(n, Ordering::AcqRel);
                // Under a steady load the timer never fires: sync when it would have.
                if w.unsynced
                    .is_some_and(|since| since.elapsed() >= w.settings.sync_interval)
                {
                    w.sync();
                }
                w.maybe_checkpoint();
            }
            if let Some(done) = close {
                self.closed.store(true, Ordering::Release);
                w.stop();
                drop(w);
                let _ = done.send(());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::body::Record;
    use crate::audit::verify::{Options, verify};
    use std::sync::Arc;

    fn settings(dir: &Path, rotate_bytes: u64) -> Settings {
        Settings {
            dir: dir.to_owned(),
            level: Level::Batched,
            sync_interval: Duration::from_millis(50),
            rotate_bytes,
            rotate_after: Duration::from_secs(3600),
            checkpoint_records: 10,
            checkpoint_after: Duration::from_secs(3600),
            key: SigningKey::from_bytes(&[7; 32]),
            export: None,
        }
    }

    fn record(n: u64) -> Body {
        let mut r = Record::of_type("event");
        r.str("event", "test")
            .value("data", &json!({"n": n, "pad": "x".repeat(100)}));
        r.finish()
    }

    /// Runs a writer over `records`; returns each record's ack.
    fn write_all(writer: Writer, records: Vec<Body>) -> Vec<Result<u64, String>> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || writer.run(&rx));
        let mut waits = Vec::new();
        for r in records {
            let (ack, wait) = oneshot::channel();
            tx.send(Msg::Record(r, Some(ack))).unwrap();
            waits.push(wait);
        }
        let acks = waits
            .into_iter()
            .map(|w| w.blocking_recv().unwrap_or(Err("dropped".into())))
            .collect();
        let (done, closed) = mpsc::channel();
        tx.send(Msg::Close(done)).unwrap();
        closed.recv().unwrap();
        thread.join().unwrap();
        acks
    }

    #[test]
    fn the_chain_continues_across_rotation_and_restart() {
        let dir = tempfile::tempdir().unwrap();
        // Strict: one record per write, so files rotate between records.
        let strict = |d: &Path| Settings {
            level: Level::Strict,
            ..settings(d, 1000)
        };
        let w = Writer::open(strict(dir.path())).unwrap();
        assert_eq!(w.next_seq(), 0);
        let acks = write_all(w, (0..30).map(record).collect());
        assert_eq!(acks.last(), Some(&Ok(29)));
        // A second gateway cannot write the same log while one holds it.
        let held = Writer::open(settings(dir.path(), 1000)).unwrap();
        let Err(e) = Writer::open(settings(dir.path(), 1000)) else {
            panic!("two writers on one log");
        };
        assert!(e.contains("another gateway"), "{e}");
        assert_eq!(held.next_seq(), 30);
        let acks = write_all(held, (30..35).map(record).collect());
        assert_eq!(acks.last(), Some(&Ok(34)));
        let files = log_files(dir.path()).unwrap();
        assert!(files.len() > 3, "{files:?}");
        let report = verify(&Options {
            log: dir.path().to_owned(),
            ..Options::default()
        })
        .unwrap();
        assert!(report.ok(), "{:?}", report.findings);
        assert_eq!((report.records, report.last_seq), (35, Some(34)));
        assert!(report.checkpoints >= 4 && report.checkpoints == report.checkpoints_valid);
    }

    #[test]
    fn a_second_file_of_one_seq_in_one_millisecond_gets_a_later_name() {
        let dir = tempfile::tempdir().unwrap();
        let (_, first) = open_new(dir.path(), 7).unwrap();
        let (_, second) = open_new(dir.path(), 7).unwrap();
        assert_ne!(first, second);
        assert_eq!(log_files(dir.path()).unwrap(), vec![first, second]);
    }

    #[test]
    fn a_failed_write_refuses_its_records_and_leaves_no_partial_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(settings(dir.path(), 1 << 20)).unwrap();
        // Swap in a handle that cannot be written, as a full disk would refuse the write.
        w.file = File::open(&w.path).unwrap();
        let acks = write_all(w, vec![record(0), record(1)]);
        assert!(acks.iter().all(Result::is_err), "{acks:?}");
        let bytes: Vec<u8> = log_files(dir.path())
            .unwrap()
            .iter()
            .flat_map(|p| std::fs::read(p).unwrap())
            .collect();
        assert!(bytes.is_empty());
        // The next gateway starts the chain where the last good record left it.
        let w = Writer::open(settings(dir.path(), 1 << 20)).unwrap();
        assert_eq!(w.next_seq(), 0);
    }

    /// Appends `records` without waiting for them, as outcome records are, and drops the
    /// writer without stopping it, as a killed gateway does.
    fn write_and_crash(mut writer: Writer, records: Vec<Body>) {
        writer.commit(records.into_iter().map(|r| (r, None)).collect());
    }

    /// Verifies the log in `dir`: no finding at all, `records` records, the last one's
    /// seq `records - 1`.
    fn assert_clean(dir: &Path, records: u64) {
        let report = verified(dir);
        assert!(
            report.ok() && report.findings.is_empty(),
            "{:?}",
            report.findings
        );
        assert_eq!(
            (report.records, report.last_seq),
            (records, records.checked_sub(1))
        );
    }

    fn verified(dir: &Path) -> crate::audit::verify::Report {
        verify(&Options {
            log: dir.to_owned(),
            ..Options::default()
        })
        .unwrap()
    }

    #[test]
    fn a_preallocated_tail_reads_as_the_end_of_the_log_and_is_cut_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::open(settings(dir.path(), 1 << 30)).unwrap();
        write_and_crash(w, (0..5).map(record).collect());
        let files = log_files(dir.path()).unwrap();
        let bytes = std::fs::read(&files[0]).unwrap();
        let records = bytes.iter().rposition(|b| *b == b'\n').unwrap() + 1;
        if cfg!(target_os = "linux") {
            assert_eq!(
                bytes.len() as u64,
                crate::audit::space::PREALLOCATE,
                "preallocated"
            );
            assert!(bytes[records..].iter().all(|b| *b == 0));
        }
        // Zeros after the records are the end of the log, not a torn record.
        assert_clean(dir.path(), 5);
        assert_eq!(last_record(dir.path()).unwrap().map(|r| r.0), Some(4));
        // The next writer cuts the zeros and continues the chain in a new file.
        let w = Writer::open(settings(dir.path(), 1 << 30)).unwrap();
        assert_eq!(w.next_seq(), 5);
        assert_eq!(std::fs::read(&files[0]).unwrap().len(), records);
        let acks = write_all(w, (5..8).map(record).collect());
        assert_eq!(acks.last(), Some(&Ok(7)));
        // A stopped writer leaves its file with its records only.
        let last = log_files(dir.path()).unwrap().pop().unwrap();
        assert_eq!(std::fs::read(&last).unwrap().last(), Some(&b'\n'));
        assert_clean(dir.path(), 8);
    }

    #[test]
    fn a_torn_record_before_the_zeros_is_a_note_and_stays() {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::open(settings(dir.path(), 1 << 30)).unwrap();
        write_and_crash(w, (0..2).map(record).collect());
        let path = log_files(dir.path()).unwrap().remove(0);
        let mut bytes = std::fs::read(&path).unwrap();
        let end = bytes.iter().rposition(|b| *b == b'\n').unwrap() + 1;
        bytes.splice(end..end + 5, *b"{\"seq");
        std::fs::write(&path, &bytes).unwrap();
        let report = verified(dir.path());
        assert!(report.ok(), "{:?}", report.findings);
        assert_eq!(report.findings.len(), 1, "{:?}", report.findings);
        let w = Writer::open(settings(dir.path(), 1 << 30)).unwrap();
        assert_eq!(w.next_seq(), 2);
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap().len(), end + 5);
    }

    #[test]
    fn written_records_and_records_nobody_waits_for_keep_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let written = Settings {
            level: Level::Written,
            sync_interval: Duration::from_millis(1),
            ..settings(dir.path(), 4096)
        };
        let w = Writer::open(written).unwrap();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || w.run(&rx));
        let mut waits = Vec::new();
        for n in 0..40 {
            if n % 2 == 0 {
                let (ack, wait) = oneshot::channel();
                tx.send(Msg::Record(record(n), Some(ack))).unwrap();
                waits.push(wait);
            } else {
                tx.send(Msg::Record(record(n), None)).unwrap();
                // Let the sync timer run now and then.
                std::thread::sleep(Duration::from_millis(n % 3));
            }
        }
        for w in waits {
            assert!(w.blocking_recv().unwrap().is_ok());
        }
        let (done, closed) = mpsc::channel();
        tx.send(Msg::Close(done)).unwrap();
        closed.recv().unwrap();
        thread.join().unwrap();
        assert_clean(dir.path(), 40);
        assert!(log_files(dir.path()).unwrap().len() > 1, "rotated");
    }

    #[test]
    fn an_outcome_record_rides_on_the_next_decisions_sync() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(settings(dir.path(), 1 << 30)).unwrap();
        let waited = |w: &mut Writer, n: u64| {
            let (ack, wait) = oneshot::channel();
            w.commit(vec![(record(n), Some(ack))]);
            wait.blocking_recv().unwrap()
        };
        // A decision (someone waits), its outcome (nobody waits), the next decision.
        assert_eq!(waited(&mut w, 0), Ok(0));
        assert_eq!(w.syncs, 1);
        w.commit(vec![(record(1), None)]);
        assert_eq!(w.syncs, 1, "the outcome has no sync of its own");
        assert!(w.unsynced.is_some());
        assert_eq!(waited(&mut w, 2), Ok(2));
        assert_eq!(w.syncs, 2, "one sync for the outcome and the next decision");
        assert!(w.unsynced.is_none());
        // `written`: acknowledged when written; the timer syncs.
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(Settings {
            level: Level::Written,
            ..settings(dir.path(), 1 << 30)
        })
        .unwrap();
        assert_eq!(waited(&mut w, 0), Ok(0));
        assert_eq!(w.syncs, 0);
        // Strict syncs every record, outcomes too.
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(Settings {
            level: Level::Strict,
            ..settings(dir.path(), 1 << 30)
        })
        .unwrap();
        assert_eq!(waited(&mut w, 0), Ok(0));
        w.commit(vec![(record(1), None)]);
        assert_eq!(w.syncs, 2);
    }

    #[test]
    fn a_caller_commits_its_own_record_only_when_nothing_is_queued_or_closed() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(Shared::new(
            Writer::open(settings(dir.path(), 1 << 30)).unwrap(),
        ));
        let inline = |n: u64| {
            let (ack, mut wait) = oneshot::channel();
            match shared.try_commit(record(n), Some(ack)) {
                Inline::Done => Some(wait.try_recv().unwrap()),
                Inline::Wake => panic!("a synced record needs no timer"),
                Inline::Declined(..) => None,
            }
        };
        // Nothing queued: committed and synced on the caller's thread, answered at once.
        assert_eq!(inline(0), Some(Ok(0)));
        assert_eq!(shared.lock().syncs, 1);
        assert!(shared.lock().unsynced.is_none());
        // A record on its way to the thread goes first: the caller's is declined.
        shared.queue();
        assert_eq!(inline(1), None);
        shared.unqueue();
        // So is one while the thread holds the writer.
        {
            let _held = shared.lock();
            assert_eq!(inline(1), None);
        }
        // The thread, started now, takes what is sent; a Close ends inline commits too.
        let (tx, rx) = mpsc::channel();
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || shared.run(&rx))
        };
        let (ack, wait) = oneshot::channel();
        shared.queue();
        tx.send(Msg::Record(record(1), Some(ack))).unwrap();
        assert_eq!(wait.blocking_recv().unwrap(), Ok(1));
        // (The thread counts its batch off just after answering it.)
        while shared.queued.load(Ordering::Acquire) != 0 {
            std::thread::yield_now();
        }
        assert_eq!(inline(2), Some(Ok(2)));
        let (done, closed) = mpsc::channel();
        tx.send(Msg::Close(done)).unwrap();
        closed.recv().unwrap();
        thread.join().unwrap();
        assert_eq!(inline(3), None, "closed");
        assert_clean(dir.path(), 3);
    }

    #[test]
    fn a_record_written_by_its_caller_is_synced_by_the_thread_within_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Arc::new(Shared::new(
            Writer::open(Settings {
                level: Level::Written,
                sync_interval: Duration::from_millis(20),
                ..settings(dir.path(), 1 << 30)
            })
            .unwrap(),
        ));
        let (tx, rx) = mpsc::channel();
        let thread = {
            let shared = shared.clone();
            std::thread::spawn(move || shared.run(&rx))
        };
        // Let the thread settle into its long wait (nothing unsynced).
        while shared.wakes_at.load(Ordering::Acquire) == u64::MAX {
            std::thread::yield_now();
        }
        // Written, not synced: the thread sleeps past its sync, so the caller must wake it.
        let (ack, mut wait) = oneshot::channel();
        assert!(matches!(
            shared.try_commit(record(0), Some(ack)),
            Inline::Wake
        ));
        assert_eq!(wait.try_recv().unwrap(), Ok(0));
        // Woken, the thread waits for that record's deadline: a record written meanwhile is
        // due no later (the oldest unsynced record sets it), so it wakes nobody.
        let long = shared.wakes_at.load(Ordering::Acquire);
        tx.send(Msg::Wake).unwrap();
        while shared.wakes_at.load(Ordering::Acquire) == long {
            std::thread::yield_now();
        }
        let (ack, mut wait) = oneshot::channel();
        assert!(matches!(
            shared.try_commit(record(1), Some(ack)),
            Inline::Done
        ));
        assert_eq!(wait.try_recv().unwrap(), Ok(1));
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.lock().unsynced.is_some() {
            assert!(Instant::now() < deadline, "never synced");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(shared.lock().syncs, 1);
        // A failed write refuses the record committed by its caller too.
        {
            let mut w = shared.lock();
            w.file = File::open(&w.path).unwrap();
        }
        let (ack, mut wait) = oneshot::channel();
        assert!(matches!(
            shared.try_commit(record(2), Some(ack)),
            Inline::Done
        ));
        assert!(wait.try_recv().unwrap().is_err());
        drop(tx);
        thread.join().unwrap();
    }
}
