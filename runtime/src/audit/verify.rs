//! `mcpgate audit verify`: checks the hash chain and the signed checkpoints, says where the
//! log breaks (edited, deleted, reordered, truncated), and re-evaluates every decision with
//! the program of its recorded commit (or of a policy folder, matched by program hash).

use crate::audit::keys;
use crate::audit::read::{self, Line};
use crate::audit::record::{GENESIS, canonical, hash_hex};
use crate::audit::writer::CHECKPOINTS_FILE;
use ed25519_dalek::VerifyingKey;
use mcpgate_compiler::repo::check_files;
use mcpgate_compiler::{
    Principal, Program, Request, Target, ToolAnnotations, Verdict, evaluate, visible,
};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Most findings reported; the rest are counted.
const MAX_FINDINGS: usize = 200;

/// What to verify, and with what.
#[derive(Debug, Default)]
pub struct Options {
    /// A log folder, or one log file.
    pub log: PathBuf,
    /// The trusted checkpoint key; `None`: the key found next to the log.
    pub key: Option<VerifyingKey>,
    /// A git repository holding the recorded commits.
    pub repo: Option<PathBuf>,
    /// The policy folder inside the repository.
    pub policy_path: String,
    /// A policy folder, for records without a commit (matched by program hash).
    pub policy_dir: Option<PathBuf>,
}

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The log was changed, or a decision does not follow from its program.
    Error,
    /// Worth knowing, not a break (a torn last line after a crash; a record that cannot be
    /// re-evaluated).
    Note,
}

/// One thing verification found.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// `edited`, `deleted`, `reordered`, `duplicated`, `truncated`, `signature`,
    /// `verdict`, `policy`, `unverifiable`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    pub message: String,
}

/// The result of a verification.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub files: usize,
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub checkpoints: usize,
    pub checkpoints_valid: usize,
    pub decisions: u64,
    pub reevaluated: u64,
    pub findings: Vec<Finding>,
    /// Findings beyond the reported ones.
    pub more: usize,
}

impl Report {
    /// Whether the log verified: no error findings.
    pub fn ok(&self) -> bool {
        self.more == 0 && self.findings.iter().all(|f| f.severity != Severity::Error)
    }

    fn add(&mut self, f: Finding) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(f);
        } else {
            self.more += 1;
        }
    }
}

/// Why decisions of a program cannot be re-evaluated, and how bad that is.
#[derive(Clone, Debug)]
struct Unusable {
    severity: Severity,
    kind: &'static str,
    message: String,
}

impl Unusable {
    fn note(message: String) -> Unusable {
        Unusable {
            severity: Severity::Note,
            kind: "unverifiable",
            message,
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    seq: u64,
    hash: String,
    prev: String,
    file: usize,
    line: usize,
}

struct Ctx<'a> {
    names: Vec<String>,
    opts: &'a Options,
    programs: HashMap<String, Result<Program, Unusable>>,
    reported_policy: std::collections::HashSet<String>,
}

impl Ctx<'_> {
    fn at(&self, file: usize, line: usize) -> String {
        format!(
            "{}:{line}",
            self.names.get(file).map_or("?", String::as_str)
        )
    }

    fn finding(
        &self,
        severity: Severity,
        kind: &'static str,
        pos: Option<(usize, usize)>,
        seq: Option<u64>,
        message: String,
    ) -> Finding {
        Finding {
            severity,
            kind,
            file: pos.and_then(|(f, _)| self.names.get(f).cloned()),
            line: pos.map(|(_, l)| l),
            seq,
            message,
        }
    }
}

/// Verifies the log `opts.log`.
///
/// # Errors
/// When the log cannot be read at all.
pub fn verify(opts: &Options) -> Result<Report, String> {
    let files = read::files(&opts.log)?;
    let dir = if opts.log.is_file() {
        opts.log.parent().map(Path::to_path_buf).unwrap_or_default()
    } else {
        opts.log.clone()
    };
    let mut ctx = Ctx {
        names: files.iter().map(|p| read::name(p)).collect(),
        opts,
        programs: HashMap::new(),
        reported_policy: Default::default(),
    };
    let mut report = Report {
        files: files.len(),
        ..Report::default()
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut lines_total = 0usize;
    read::for_each_line(&files, |l: Line| {
        lines_total += 1;
        check_line(&mut ctx, &mut report, &mut entries, l);
    })?;
    check_chain(&ctx, &mut report, &entries, opts.log.is_file());
    check_checkpoints(&ctx, &mut report, &entries, &dir, opts.key.as_ref());
    if opts.repo.is_none() && opts.policy_dir.is_none() && report.decisions > 0 {
        report.add(
            ctx.finding(
                Severity::Note,
                "unverifiable",
                None,
                None,
                "decisions were not re-evaluated: pass `--repo` (GitOps) or `--policy` (a folder)"
                    .into(),
            ),
        );
    }
    Ok(report)
}

fn check_line(ctx: &mut Ctx<'_>, report: &mut Report, entries: &mut Vec<Entry>, l: Line) {
    let pos = Some((l.file, l.line));
    if !l.complete {
        if !l.text.trim().is_empty() {
            report.add(ctx.finding(
                Severity::Note,
                "truncated",
                pos,
                None,
                "torn last line: a write cut short (a crash or a full disk); it was never acknowledged, so no call it describes was forwarded".into(),
            ));
        }
        return;
    }
    let record: Value = match serde_json::from_str(&l.text) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            report.add(ctx.finding(
                Severity::Error,
                "edited",
                pos,
                None,
                "the line is not a JSON record".into(),
            ));
            return;
        }
    };
    let seq = record.get("seq").and_then(Value::as_u64);
    let prev = record.get("prev").and_then(Value::as_str);
    let (Some(seq), Some(prev)) = (seq, prev) else {
        report.add(ctx.finding(
            Severity::Error,
            "edited",
            pos,
            seq,
            "the record has no `seq` or `prev`".into(),
        ));
        return;
    };
    if canonical(&record) != l.text {
        report.add(ctx.finding(
            Severity::Error,
            "edited",
            pos,
            Some(seq),
            "the record is not in its canonical encoding: it was rewritten".into(),
        ));
    }
    report.records += 1;
    entries.push(Entry {
        seq,
        hash: hash_hex(l.text.as_bytes()),
        prev: prev.to_owned(),
        file: l.file,
        line: l.line,
    });
    if record.get("type").and_then(Value::as_str) == Some("decision") {
        report.decisions += 1;
        reevaluate(ctx, report, &record, seq, pos);
    }
}

fn check_chain(ctx: &Ctx<'_>, report: &mut Report, entries: &[Entry], single_file: bool) {
    let Some(first) = entries.first() else {
        return;
    };
    let min = entries.iter().map(|e| e.seq).min().unwrap_or(0);
    let max = entries.iter().map(|e| e.seq).max().unwrap_or(0);
    report.first_seq = Some(first.seq);
    report.last_seq = entries.last().map(|e| e.seq);
    let mut by_seq: BTreeMap<u64, Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        by_seq.entry(e.seq).or_default().push(e);
    }
    // The head of the log.
    if min > 0 && !single_file {
        report.add(ctx.finding(
            Severity::Error,
            "deleted",
            Some((first.file, first.line)),
            Some(min),
            format!(
                "the log starts at seq {min}: records 0 to {} are missing",
                min - 1
            ),
        ));
    }
    if min == 0
        && let Some(e) = by_seq.get(&0).and_then(|v| v.first())
        && e.prev != GENESIS
    {
        report.add(ctx.finding(
            Severity::Error,
            "edited",
            Some((e.file, e.line)),
            Some(0),
            "the first record's `prev` is not the genesis value".into(),
        ));
    }
    // Order in the files.
    let mut high: Option<&Entry> = None;
    for e in entries {
        if let Some(h) = high
            && e.seq <= h.seq
        {
            let (kind, what) = if e.seq == h.seq {
                ("duplicated", "appears twice")
            } else {
                ("reordered", "is out of order")
            };
            report.add(ctx.finding(
                Severity::Error,
                kind,
                Some((e.file, e.line)),
                Some(e.seq),
                format!(
                    "{what}: it comes after seq {} ({})",
                    h.seq,
                    ctx.at(h.file, h.line)
                ),
            ));
            continue;
        }
        high = Some(e);
    }
    // Missing records, and links.
    let mut missing_from: Option<u64> = None;
    for seq in min..=max {
        let Some(here) = by_seq.get(&seq).and_then(|v| v.first()) else {
            missing_from.get_or_insert(seq);
            continue;
        };
        if let Some(from) = missing_from.take() {
            let before = by_seq
                .range(..from)
                .next_back()
                .and_then(|(_, v)| v.first());
            let between = before.map_or_else(String::new, |b| {
                format!(" between {} and", ctx.at(b.file, b.line))
            });
            let range = if from == seq - 1 {
                "missing".to_owned()
            } else {
                format!("missing, and so are the records up to seq {}", seq - 1)
            };
            report.add(ctx.finding(
                Severity::Error,
                "deleted",
                Some((here.file, here.line)),
                Some(from),
                format!(
                    "{range} (deleted){between} {}",
                    ctx.at(here.file, here.line)
                ),
            ));
            continue;
        }
        if seq == min {
            continue;
        }
        let Some(before) = by_seq.get(&(seq - 1)).and_then(|v| v.first()) else {
            continue;
        };
        if before.hash != here.prev {
            report.add(ctx.finding(
                Severity::Error,
                "edited",
                Some((before.file, before.line)),
                Some(seq - 1),
                format!(
                    "changed: its hash is not the `prev` that seq {seq} ({}) records",
                    ctx.at(here.file, here.line)
                ),
            ));
        }
    }
}

#[derive(serde::Deserialize)]
struct Checkpoint {
    seq: u64,
    hash: String,
    sig: String,
    #[serde(default)]
    key: String,
}

fn check_checkpoints(
    ctx: &Ctx<'_>,
    report: &mut Report,
    entries: &[Entry],
    dir: &Path,
    key: Option<&VerifyingKey>,
) {
    let Ok(text) = std::fs::read_to_string(dir.join(CHECKPOINTS_FILE)) else {
        return;
    };
    let trusted = key.copied().or_else(|| {
        std::fs::read_to_string(dir.join(keys::PUBLIC_KEY_FILE))
            .ok()
            .and_then(|t| keys::parse_public_key(&t))
    });
    let hashes: HashMap<u64, &Entry> = entries.iter().map(|e| (e.seq, e)).collect();
    let last = entries.iter().map(|e| e.seq).max();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{CHECKPOINTS_FILE}:{}", i + 1);
        report.checkpoints += 1;
        let cp: Checkpoint = match serde_json::from_str(line) {
            Ok(c) => c,
            Err(_) => {
                report.add(Finding {
                    severity: Severity::Error,
                    kind: "signature",
                    file: Some(CHECKPOINTS_FILE.into()),
                    line: Some(i + 1),
                    seq: None,
                    message: format!("{at} is not a checkpoint"),
                });
                continue;
            }
        };
        let signer = trusted.or_else(|| keys::parse_public_key(&cp.key));
        let good = signer.is_some_and(|k| keys::verify(&k, cp.seq, &cp.hash, &cp.sig));
        if !good {
            report.add(Finding {
                severity: Severity::Error,
                kind: "signature",
                file: Some(CHECKPOINTS_FILE.into()),
                line: Some(i + 1),
                seq: Some(cp.seq),
                message: format!(
                    "the checkpoint of seq {} is not signed by the audit key",
                    cp.seq
                ),
            });
            continue;
        }
        report.checkpoints_valid += 1;
        match hashes.get(&cp.seq) {
            Some(e) if e.hash == cp.hash => {}
            Some(e) => report.add(ctx.finding(
                Severity::Error,
                "edited",
                Some((e.file, e.line)),
                Some(cp.seq),
                format!(
                    "seq {} does not match the signed checkpoint at {at}: it (or the chain before it) was rewritten",
                    cp.seq
                ),
            )),
            None if last.is_none_or(|l| cp.seq > l) => report.add(Finding {
                severity: Severity::Error,
                kind: "truncated",
                file: None,
                line: None,
                seq: Some(cp.seq),
                message: format!(
                    "the log ends at seq {} but {at} signs seq {}: records were cut off the end",
                    last.map_or_else(|| "-".into(), |l| l.to_string()),
                    cp.seq
                ),
            }),
            None => {} // Reported as deleted by the chain check.
        }
    }
}

fn reevaluate(
    ctx: &mut Ctx<'_>,
    report: &mut Report,
    record: &Value,
    seq: u64,
    pos: Option<(usize, usize)>,
) {
    if ctx.opts.repo.is_none() && ctx.opts.policy_dir.is_none() {
        return;
    }
    let hash = record
        .pointer("/policy/hash")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let commit = record
        .pointer("/policy/commit")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let program = ctx
        .programs
        .entry(hash.clone())
        .or_insert_with(|| load_program(ctx.opts, commit.as_deref(), &hash));
    let program = match program {
        Ok(p) => p,
        Err(why) => {
            let why = why.clone();
            if ctx.reported_policy.insert(hash.clone()) {
                report.add(ctx.finding(why.severity, why.kind, pos, Some(seq), why.message));
            }
            return;
        }
    };
    let Some(mismatch) = check_decision(program, record) else {
        report.reevaluated += 1;
        return;
    };
    report.reevaluated += 1;
    let redacted = record
        .get("redacted")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let (severity, kind, tail) = if redacted {
        (
            Severity::Note,
            "unverifiable",
            " (some arguments are stored as salted hashes, so the re-evaluation may differ)",
        )
    } else {
        (Severity::Error, "verdict", "")
    };
    let f = ctx.finding(severity, kind, pos, Some(seq), format!("{mismatch}{tail}"));
    report.add(f);
}

fn load_program(opts: &Options, commit: Option<&str>, hash: &str) -> Result<Program, Unusable> {
    let (files, what) = match (commit, &opts.repo, &opts.policy_dir) {
        (Some(c), Some(repo), _) => (
            crate::git::read_tree(repo, c, &opts.policy_path).map_err(|e| {
                Unusable::note(format!(
                    "cannot read commit `{c}` from `{}`: {e}",
                    repo.display()
                ))
            })?,
            format!("commit `{c}`"),
        ),
        (None, _, Some(dir)) => (
            mcpgate_compiler::repo::read_dir(dir)
                .map_err(|e| Unusable::note(format!("cannot read `{}`: {e}", dir.display())))?,
            format!("the folder `{}`", dir.display()),
        ),
        (Some(c), None, _) => {
            return Err(Unusable::note(format!(
                "decisions of commit `{c}` were not re-evaluated: pass `--repo`"
            )));
        }
        (None, _, None) => {
            return Err(Unusable::note(format!(
                "decisions of program `{hash}` (no commit) were not re-evaluated: pass `--policy DIR`"
            )));
        }
    };
    let checked = check_files(files);
    if checked.has_errors() {
        return Err(Unusable::note(format!("{what} does not compile")));
    }
    // With the folder's `principals.yaml` groups, as the gateway compiled it.
    let program = checked.program(commit);
    if program.hash_hex() != hash {
        let message = format!(
            "the program of {what} hashes to `{}`, not the recorded `{hash}`",
            program.hash_hex()
        );
        // A commit names one policy: another program means the record lies about it. A
        // folder changes over time: its decisions from another version cannot be checked.
        return Err(match commit {
            Some(_) => Unusable {
                severity: Severity::Error,
                kind: "policy",
                message,
            },
            None => Unusable::note(format!(
                "{message}: these decisions were made by another version of the folder"
            )),
        });
    }
    Ok(program)
}

/// Re-evaluates one decision record with `program`; `Some` says how it differs.
pub fn check_decision(program: &Program, record: &Value) -> Option<String> {
    let principal: Principal = match record.get("principal").cloned().map(serde_json::from_value) {
        Some(Ok(p)) => p,
        _ => return Some("the record's `principal` cannot be read".into()),
    };
    let s = |p: &str| record.pointer(p).and_then(Value::as_str);
    let server = s("/server").unwrap_or_default();
    let name = s("/target/name").unwrap_or_default();
    let target = match s("/target/kind") {
        Some("tool") => Target::Tool { server, tool: name },
        Some("prompt") => Target::Prompt { server, name },
        Some("resource") => Target::Resource { server, uri: name },
        _ => return Some("the record's `target` cannot be read".into()),
    };
    let flag = |k: &str| {
        record
            .get("annotations")
            .and_then(|a| a.get(k))
            .and_then(Value::as_bool)
    };
    let null = Value::Null;
    let request = Request {
        principal: &principal,
        agent: s("/agent"),
        client_name: s("/client/name"),
        client_version: s("/client/version"),
        target,
        args: record.get("arguments").unwrap_or(&null),
        annotations: ToolAnnotations {
            read_only: flag("read_only"),
            destructive: flag("destructive"),
            idempotent: flag("idempotent"),
            open_world: flag("open_world"),
        },
    };
    let decision = evaluate(program, &request);
    let listed = visible(program, &principal, target);
    let rule = program.rule_id(decision.rule);
    let recorded_verdict = s("/verdict").unwrap_or_default();
    let recorded_rule = s("/rule").unwrap_or_default();
    let recorded_listed = record.get("listed").and_then(Value::as_bool);
    if recorded_verdict != decision.verdict.as_str() || recorded_rule != rule {
        return Some(format!(
            "recorded verdict `{recorded_verdict}` by rule `{recorded_rule}`, but the program decides `{}` by rule `{rule}`",
            decision.verdict
        ));
    }
    if recorded_listed != Some(listed) {
        return Some(format!(
            "recorded `listed: {}`, but the program says {listed}",
            recorded_listed.map_or_else(|| "-".into(), |b| b.to_string())
        ));
    }
    // A delegated call also needs its delegation's scope and its person's own verdict.
    let gate = (matches!(decision.verdict, Verdict::Allow | Verdict::Approve) && listed)
        .then(|| crate::decision::delegation::refusal(program, &request, decision.verdict))
        .flatten();
    let recorded_gate = s("/gate");
    if recorded_gate == Some(crate::decision::delegation::RULE_DELEGATION) && gate.is_none() {
        return Some(
            "recorded a refusal by the delegation, but the delegation allows the call".into(),
        );
    }
    if let Some(g) = &gate
        && s("/action") == Some("forward")
    {
        return Some(format!("the call was forwarded, but {}", g.message));
    }
    // An approved call goes ahead too; its approval is recorded as an event.
    let may_forward = matches!(decision.verdict, Verdict::Allow | Verdict::Approve) && listed;
    if s("/action") == Some("forward") && !may_forward {
        return Some(format!(
            "the call was forwarded, but the program decides `{}`",
            decision.verdict
        ));
    }
    None
}
