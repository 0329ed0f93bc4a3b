//! The writer thread: gives each record its `seq` and `prev`, appends batches to the
//! current log file with one write and one fdatasync, acknowledges each record once it is
//! on disk, rotates files, and signs checkpoints.
//!
//! A failed write is rolled back (the file is cut back to its last complete record) and
//! every record of the batch is refused: the calls they describe are not forwarded.

use crate::audit::keys;
use crate::audit::record::{Fields, GENESIS, canonical, hash_hex, hex, now_rfc3339};
use ed25519_dalek::SigningKey;
use serde_json::{Value, json};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
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
    Record(Fields, Option<Ack>),
    /// Sign a last checkpoint and stop; answered when done.
    Close(mpsc::Sender<()>),
}

/// Where exported lines go.
pub enum Export {
    Stdout,
    File(File),
}

/// Settings of the writer.
pub struct Settings {
    pub dir: PathBuf,
    /// One record per write and fdatasync.
    pub strict: bool,
    pub rotate_bytes: u64,
    pub rotate_after: Duration,
    pub checkpoint_records: u64,
    pub checkpoint_after: Duration,
    pub key: SigningKey,
    pub export: Option<Export>,
}

/// The name of a log file whose first record is `seq`: names sort in log order.
pub fn file_name(seq: u64) -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
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

fn open_new(dir: &Path, seq: u64) -> std::io::Result<(File, PathBuf)> {
    let path = dir.join(file_name(seq));
    let mut options = OpenOptions::new();
    options.append(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(&path)?;
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
        Ok(Writer {
            settings,
            file,
            path,
            len: 0,
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
    pub fn run(mut self, rx: &mpsc::Receiver<Msg>) {
        let max = if self.settings.strict { 1 } else { MAX_BATCH };
        let tick = self
            .settings
            .checkpoint_after
            .max(Duration::from_millis(100));
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.maybe_checkpoint();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.checkpoint();
                    return;
                }
            };
            let mut batch = Vec::new();
            let mut close = None;
            match first {
                Msg::Record(f, a) => batch.push((f, a)),
                Msg::Close(done) => close = Some(done),
            }
            // Group commit: everything already waiting goes into this write.
            while close.is_none() && batch.len() < max {
                match rx.try_recv() {
                    Ok(Msg::Record(f, a)) => batch.push((f, a)),
                    Ok(Msg::Close(done)) => close = Some(done),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.commit(batch);
                self.maybe_checkpoint();
            }
            if let Some(done) = close {
                self.checkpoint();
                let _ = done.send(());
                return;
            }
        }
    }

    fn commit(&mut self, batch: Vec<(Fields, Option<Ack>)>) {
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
        for (mut fields, ack) in batch {
            fields.insert("seq".into(), json!(seq));
            fields.insert("prev".into(), Value::String(prev));
            let line = canonical(&Value::Object(fields));
            prev = hash_hex(line.as_bytes());
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            acks.push((seq, ack));
            seq += 1;
        }
        if let Err(e) = self.rotate_if_due(buf.len() as u64) {
            tracing::error!(error = %e, "cannot start a new audit log file");
        }
        let written = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += buf.len() as u64;
                self.next_seq = seq;
                self.prev = prev;
                self.since_checkpoint += acks.len() as u64;
                for (s, ack) in acks {
                    if let Some(a) = ack {
                        let _ = a.send(Ok(s));
                    }
                }
                self.export(&buf);
            }
            Err(e) => {
                // Cut back a partial write so the file ends with a complete record.
                let cut = self
                    .file
                    .set_len(self.len)
                    .and_then(|()| self.file.sync_data());
                tracing::error!(error = %e, file = %self.path.display(), cut_back = cut.is_ok(), "audit log write failed: the calls are refused");
                let why = e.to_string();
                if let Err(c) = cut {
                    self.broken = Some(format!("{why}; the log file could not be cut back: {c}"));
                }
                for (_, ack) in acks {
                    if let Some(a) = ack {
                        let _ = a.send(Err(why.clone()));
                    }
                }
            }
        }
    }

    fn rotate_if_due(&mut self, adding: u64) -> std::io::Result<()> {
        let full = self.len > 0 && self.len + adding > self.settings.rotate_bytes;
        let old = self.len > 0 && self.opened.elapsed() >= self.settings.rotate_after;
        if !(full || old) {
            return Ok(());
        }
        let (file, path) = open_new(&self.settings.dir, self.next_seq)?;
        tracing::info!(file = %path.display(), seq = self.next_seq, "audit log rotated");
        self.file = file;
        self.path = path;
        self.len = 0;
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
            self.checkpoint();
        }
    }

    /// Signs the head of the chain (when anything was written since the last checkpoint).
    fn checkpoint(&mut self) {
        if self.since_checkpoint == 0 || self.next_seq == 0 {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verify::{Options, verify};

    fn settings(dir: &Path, rotate_bytes: u64) -> Settings {
        Settings {
            dir: dir.to_owned(),
            strict: false,
            rotate_bytes,
            rotate_after: Duration::from_secs(3600),
            checkpoint_records: 10,
            checkpoint_after: Duration::from_secs(3600),
            key: SigningKey::from_bytes(&[7; 32]),
            export: None,
        }
    }

    fn record(n: u64) -> Fields {
        let mut f = Fields::new();
        f.insert("type".into(), json!("event"));
        f.insert("event".into(), json!("test"));
        f.insert("data".into(), json!({"n": n, "pad": "x".repeat(100)}));
        f
    }

    /// Runs a writer over `records`; returns each record's ack.
    fn write_all(writer: Writer, records: Vec<Fields>) -> Vec<Result<u64, String>> {
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
            strict: true,
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
}
