//! Walkthroughs run from the documents themselves: the fenced blocks of README.md and docs/
//! that an HTML comment marks (`<!-- walkthrough: NAME ... -->`) are read, run in order in a
//! scratch folder with the built binary, and what the text shows is checked. The marker
//! syntax is documented in `docs/walkthroughs.md`.
//!
//! Every failure names the document and the line of the block (`README.md:12: ...`), so a
//! broken walkthrough is fixed where a reader finds it.

use crate::gateway::parse_listening;
use crate::paths;
use crate::peers::{self, HttpPeer};
use crate::process::{self, Proc};
use regex::Regex;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Deadline of one command of a walkthrough.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a gateway may take to listen and answer `/healthz`.
const STARTUP: Duration = Duration::from_secs(60);
/// How long a `retry` step keeps trying before it fails.
const RETRY_FOR: Duration = Duration::from_secs(30);
/// The address the documents give the gateway; replaced by the address it really got.
const DOC_ADDR: &str = "127.0.0.1:8080";

/// One `key: value` line of a marker.
#[derive(Clone, Debug)]
pub struct Directive {
    pub key: String,
    pub value: String,
    /// 1-based line in the document.
    pub line: usize,
}

/// A marked fenced block.
#[derive(Clone, Debug)]
pub struct Block {
    pub doc: String,
    pub walkthrough: String,
    /// 1-based line of the opening fence.
    pub line: usize,
    /// The fence's info string (`sh`, `yaml`, ...), empty when none.
    pub lang: String,
    /// The block's lines, with their 1-based document lines.
    pub lines: Vec<(usize, String)>,
    pub directives: Vec<Directive>,
}

const KEYS: &[&str] = &[
    "from",
    "file",
    "in",
    "check",
    "replace",
    "not-run",
    "client",
    "expect",
    "expect-gateway",
    "exit",
    "retry",
    "setup",
    "upstream",
    "upstream-has",
    "upstream-lacks",
    "vary",
];

impl Block {
    /// `doc:line:` of the block, for messages.
    pub fn at(&self) -> String {
        format!("{}:{}", self.doc, self.line)
    }

    fn text(&self) -> String {
        let mut text: String = self
            .lines
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        text.push('\n');
        text
    }

    fn all(&self, key: &str) -> impl Iterator<Item = &Directive> {
        self.directives.iter().filter(move |d| d.key == key)
    }

    fn get(&self, key: &str) -> Option<&Directive> {
        self.all(key).next()
    }

    fn fail(&self, message: impl std::fmt::Display) -> ! {
        panic!(
            "{}: walkthrough `{}`: {message}",
            self.at(),
            self.walkthrough
        )
    }
}

/// Reads the marked blocks of `text` (the document `doc`), in document order. A marker not
/// followed by a fenced block, an unclosed marker or fence, or an unknown directive is an
/// error naming its line.
pub fn parse(doc: &str, text: &str) -> Result<Vec<Block>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        // A marker shown inside a fenced block (an example of the syntax) is not one.
        if let Some(fence) = ["```", "~~~"].into_iter().find(|f| trimmed.starts_with(f)) {
            i += 1;
            while lines
                .get(i)
                .is_some_and(|l| !l.trim_start().starts_with(fence))
            {
                i += 1;
            }
            i += 1;
            continue;
        }
        let Some(rest) = trimmed.strip_prefix("<!-- walkthrough:") else {
            i += 1;
            continue;
        };
        let marker_line = i + 1;
        // The marker: its first line names the walkthrough; further lines are directives.
        let mut body = vec![(i + 1, rest.to_owned())];
        while !body.last().is_some_and(|(_, l)| l.contains("-->")) {
            i += 1;
            let Some(line) = lines.get(i) else {
                return Err(format!(
                    "{doc}:{marker_line}: walkthrough marker is not closed"
                ));
            };
            body.push((i + 1, (*line).to_owned()));
        }
        if let Some((_, last)) = body.last_mut() {
            let end = last.find("-->").unwrap_or(last.len());
            last.truncate(end);
        }
        let name = body[0].1.trim().to_owned();
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!(
                "{doc}:{marker_line}: a walkthrough marker starts with `walkthrough: NAME` (one word), found `{name}`"
            ));
        }
        let mut directives = Vec::new();
        for (line, text) in &body[1..] {
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let (key, value) = text.split_once(':').unwrap_or((text, ""));
            let key = key.trim();
            if !KEYS.contains(&key) {
                return Err(format!(
                    "{doc}:{line}: unknown walkthrough directive `{key}` (known: {})",
                    KEYS.join(", ")
                ));
            }
            directives.push(Directive {
                key: key.to_owned(),
                value: value.trim().to_owned(),
                line: *line,
            });
        }
        // The block: the next non-blank line opens a fence.
        i += 1;
        while lines.get(i).is_some_and(|l| l.trim().is_empty()) {
            i += 1;
        }
        let Some(fence) = lines.get(i).map(|l| l.trim_start()) else {
            return Err(format!(
                "{doc}:{marker_line}: walkthrough marker is not followed by a fenced block"
            ));
        };
        if !fence.starts_with("```") {
            return Err(format!(
                "{doc}:{marker_line}: walkthrough marker is not followed by a fenced block (found `{fence}` at line {})",
                i + 1
            ));
        }
        let fence_line = i + 1;
        let lang = fence.trim_start_matches('`').trim().to_owned();
        let mut block_lines = Vec::new();
        loop {
            i += 1;
            let Some(line) = lines.get(i) else {
                return Err(format!("{doc}:{fence_line}: fenced block is not closed"));
            };
            if line.trim_start().starts_with("```") {
                break;
            }
            block_lines.push((i + 1, (*line).to_owned()));
        }
        blocks.push(Block {
            doc: doc.to_owned(),
            walkthrough: name,
            line: fence_line,
            lang,
            lines: block_lines,
            directives,
        });
        i += 1;
    }
    Ok(blocks)
}

/// The marked blocks of a document of the workspace (`README.md`, `docs/lock.md`).
pub fn blocks_of(doc: &str) -> Vec<Block> {
    let path = paths::workspace_root().join(doc);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {doc}: {e}"));
    parse(doc, &text).unwrap_or_else(|e| panic!("{e}"))
}

/// The names of the walkthroughs marked in `doc`, in order of first appearance.
pub fn names(doc: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for block in blocks_of(doc) {
        if !names.contains(&block.walkthrough) {
            names.push(block.walkthrough);
        }
    }
    names
}

/// Runs the walkthrough `name` of `doc`: every block marked with that name, in order.
/// Panics with `doc:line: ...` at the first step that does not do what the text says.
pub fn run(doc: &str, name: &str) {
    let blocks: Vec<Block> = blocks_of(doc)
        .into_iter()
        .filter(|b| b.walkthrough == name)
        .collect();
    assert!(
        !blocks.is_empty(),
        "{doc}: no block is marked `<!-- walkthrough: {name} -->`"
    );
    let mut walk = Walk::new();
    for block in &blocks {
        walk.run_block(block);
    }
    walk.finish();
}

/// A command of a block, with its document line and the output the text shows after it.
struct Step {
    line: usize,
    command: String,
    expected: Vec<String>,
}

/// A client call running while later blocks run (one a person must approve, say).
struct Background {
    block: Block,
    spec: String,
    expected: Option<String>,
    thread: std::thread::JoinHandle<Result<String, String>>,
}

/// The state a reader's shell would keep between the commands of a walkthrough.
struct Walk {
    root: tempfile::TempDir,
    /// Holds the `mcpgate` link put first on `PATH`.
    _bin: tempfile::TempDir,
    cwd: PathBuf,
    env: BTreeMap<String, String>,
    gateways: Vec<(Proc, SocketAddr)>,
    recorder: Option<(HttpPeer, PathBuf)>,
    /// Replacements for the rest of the walkthrough (a stand-in upstream's URL).
    replacements: Vec<(String, String)>,
    /// Sample values the text shows (`vary:`), bound to what the run printed.
    bound: BTreeMap<String, String>,
    /// The sample values of every `vary:` seen so far.
    vary: Vec<String>,
    background: Vec<Background>,
}

impl Walk {
    fn new() -> Walk {
        let root = tempfile::Builder::new()
            .prefix("mcpgate-walkthrough-")
            .tempdir()
            .expect("create a scratch folder");
        // `mcpgate` on PATH is the binary under test, whatever its file is called.
        let bin = tempfile::Builder::new()
            .prefix("mcpgate-bin-")
            .tempdir()
            .expect("create a bin folder");
        #[cfg(unix)]
        std::os::unix::fs::symlink(paths::mcpgate_bin(), bin.path().join("mcpgate"))
            .expect("link the mcpgate binary");
        let mut env: BTreeMap<String, String> = std::env::vars().collect();
        let path = env.get("PATH").cloned().unwrap_or_default();
        // Then the peers' Python (it has the MCP SDK), for stand-in servers in Python.
        let venv = paths::peers_dir().join("venv").join("bin");
        env.insert(
            "PATH".into(),
            format!(
                "{}:{}:{path}",
                bin.path().to_string_lossy(),
                venv.to_string_lossy()
            ),
        );
        env.insert("NO_COLOR".into(), "1".into());
        // A reader's shell: the gateway logs at its default level, in its default state dir.
        env.remove("RUST_LOG");
        env.remove("MCPGATE_STATE");
        // Commits in a scratch repository need an author, which a CI machine may not have.
        for (k, v) in [
            ("GIT_AUTHOR_NAME", "Walkthrough"),
            ("GIT_AUTHOR_EMAIL", "walkthrough@example.com"),
            ("GIT_COMMITTER_NAME", "Walkthrough"),
            ("GIT_COMMITTER_EMAIL", "walkthrough@example.com"),
        ] {
            env.insert(k.into(), v.into());
        }
        let cwd = root.path().to_owned();
        Walk {
            root,
            _bin: bin,
            cwd,
            env,
            gateways: Vec::new(),
            recorder: None,
            replacements: Vec::new(),
            bound: BTreeMap::new(),
            vary: Vec::new(),
            background: Vec::new(),
        }
    }

    fn run_block(&mut self, block: &Block) {
        for d in block.all("from") {
            self.copy_from(block, &d.value);
        }
        for d in block.all("vary") {
            self.vary
                .extend(d.value.split_whitespace().map(str::to_owned));
        }
        if let Some(d) = block.get("upstream") {
            self.start_upstream(block, &d.value);
        }
        for d in block.all("setup") {
            let (code, output) = self.shell(block, d.line, &d.value);
            if code != 0 {
                block.fail(format!(
                    "line {}: setup `{}` exited {code}:\n{output}",
                    d.line, d.value
                ));
            }
        }
        let replaced = self.replace(block, &block.text(), true);
        if let Some(d) = block.get("in") {
            let path = paths::workspace_root().join(&d.value);
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|e| block.fail(format!("`in: {}`: {e}", d.value)));
            if !text.contains(block.text().trim_end()) {
                block.fail(format!(
                    "the block is not in `{}` as shown; the file has:\n{text}",
                    d.value
                ));
            }
        }
        if let Some(d) = block.get("file") {
            let path = self.cwd.join(&d.value);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent)
                    .unwrap_or_else(|e| block.fail(format!("create {}: {e}", parent.display())));
            }
            fs::write(&path, &replaced)
                .unwrap_or_else(|e| block.fail(format!("write {}: {e}", path.display())));
        }
        let mut output = String::new();
        // Clients talk to the gateway as soon as the block has started it, so that the
        // commands after `mcpgate serve` see what the calls did.
        let mut clients_done = false;
        if block.get("file").is_none() && block.get("in").is_none() {
            for step in self.steps(block) {
                let started = self.gateways.len();
                output.push_str(&self.run_step(block, &step));
                if !clients_done && self.gateways.len() > started {
                    for d in block.all("client") {
                        output.push_str(&self.client(block, d));
                    }
                    clients_done = true;
                }
            }
        }
        if block.get("check").is_some() {
            output.push_str(&self.check(block));
        }
        for d in block.all("expect-gateway") {
            self.expect_gateway(block, d);
        }
        if !clients_done {
            for d in block.all("client") {
                output.push_str(&self.client(block, d));
            }
        }
        for d in block.all("expect") {
            let want = self.expand(&d.value);
            if !output.contains(&want) {
                block.fail(format!(
                    "line {}: expected `{want}` in the output, which is:\n{output}",
                    d.line
                ));
            }
        }
        self.check_upstream(block);
    }

    /// Copies a workspace path into the scratch folder at the same relative path, so the
    /// commands of the text work as written.
    /// `from: SRC => DEST` copies it to DEST in the current folder instead.
    fn copy_from(&self, block: &Block, value: &str) {
        let (rel, dst) = match value.split_once("=>") {
            Some((src, dst)) => (src.trim(), self.cwd.join(dst.trim())),
            None => (value, self.root.path().join(value)),
        };
        let src = paths::workspace_root().join(rel);
        if !src.exists() {
            block.fail(format!("`from: {rel}`: no such path in the workspace"));
        }
        copy_tree(&src, &dst).unwrap_or_else(|e| block.fail(format!("copy {rel}: {e}")));
    }

    /// `upstream: recorder URL`: a stand-in MCP server that records what reaches it, used
    /// wherever the text says URL.
    fn start_upstream(&mut self, block: &Block, value: &str) {
        let (kind, url) = value.split_once(' ').unwrap_or((value, ""));
        if kind != "recorder" || url.trim().is_empty() {
            block.fail(format!(
                "`upstream: {value}`: expected `upstream: recorder URL`"
            ));
        }
        let record = self.root.path().join(".walkthrough-upstream.jsonl");
        let peer = HttpPeer::header_recorder(&record);
        self.replacements
            .push((url.trim().to_owned(), peer.url.clone()));
        self.recorder = Some((peer, record));
    }

    fn check_upstream(&self, block: &Block) {
        let has: Vec<&Directive> = block.all("upstream-has").collect();
        let lacks: Vec<&Directive> = block.all("upstream-lacks").collect();
        if has.is_empty() && lacks.is_empty() {
            return;
        }
        let Some((_, record)) = &self.recorder else {
            block.fail("`upstream-has`/`upstream-lacks` without an `upstream:` stand-in");
        };
        let seen = fs::read_to_string(record).unwrap_or_default();
        for d in has {
            let want = self.expand(&d.value);
            if !seen.contains(&want) {
                block.fail(format!(
                    "line {}: the upstream never received `{want}`; it received:\n{seen}",
                    d.line
                ));
            }
        }
        for d in lacks {
            let unwanted = self.expand(&d.value);
            if unwanted.is_empty() || seen.contains(&unwanted) {
                block.fail(format!(
                    "line {}: the upstream received `{unwanted}`, which must not leave the gateway",
                    d.line
                ));
            }
        }
    }

    /// Applies the block's `replace:` directives and the walkthrough's replacements.
    /// With `strict`, each `replace:` must find its text (checked once, on the whole block).
    fn replace(&self, block: &Block, text: &str, strict: bool) -> String {
        let mut text = text.to_owned();
        for d in block.all("replace") {
            let Some((old, new)) = d.value.split_once("=>") else {
                block.fail(format!("line {}: expected `replace: OLD => NEW`", d.line));
            };
            let old = old.trim();
            if strict && !text.contains(old) {
                block.fail(format!(
                    "line {}: `replace: {old}` but the block does not say `{old}`",
                    d.line
                ));
            }
            text = text.replace(old, new.trim());
        }
        for (old, new) in &self.replacements {
            text = text.replace(old, new);
        }
        text
    }

    /// `$NAME` from the walkthrough's environment (what an `export` set).
    fn expand(&self, text: &str) -> String {
        let var = Regex::new(r"\$([A-Z_][A-Z0-9_]*)").expect("valid regex");
        var.replace_all(text, |c: &regex::Captures| {
            self.env.get(&c[1]).cloned().unwrap_or_default()
        })
        .into_owned()
    }

    /// The commands of a block: `$ ` lines followed by the output the text shows, or else
    /// every line that is not blank or a comment (`\` continues a line).
    fn steps(&self, block: &Block) -> Vec<Step> {
        let prompted = block.lines.iter().any(|(_, l)| l.starts_with("$ "));
        let mut steps: Vec<Step> = Vec::new();
        let mut pending: Option<Step> = None;
        for (line, text) in &block.lines {
            if prompted {
                if let Some(cmd) = text.strip_prefix("$ ") {
                    steps.extend(pending.take());
                    pending = Some(Step {
                        line: *line,
                        command: cmd.to_owned(),
                        expected: Vec::new(),
                    });
                } else if let Some(step) = pending.as_mut()
                    && !text.trim().is_empty()
                {
                    step.expected.push(text.clone());
                }
                continue;
            }
            if let Some(step) = pending.as_mut() {
                step.command.push('\n');
                step.command.push_str(text);
                if !text.trim_end().ends_with('\\') {
                    steps.extend(pending.take());
                }
                continue;
            }
            let trimmed = text.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let step = Step {
                line: *line,
                command: text.clone(),
                expected: Vec::new(),
            };
            if trimmed.ends_with('\\') {
                pending = Some(step);
            } else {
                steps.push(step);
            }
        }
        steps.extend(pending);
        steps
    }

    fn run_step(&mut self, block: &Block, step: &Step) -> String {
        // The README builds and runs in one go; the runner uses the binary already built.
        let mut command = step
            .command
            .replace("cargo run --release -p mcpgate --", "mcpgate")
            .replace("cargo run -p mcpgate --", "mcpgate");
        command = self.replace(block, &command, false);
        for (sample, actual) in &self.bound {
            let word = Regex::new(&format!(r"\b{}\b", regex::escape(sample)))
                .expect("an escaped sample is a valid regex");
            command = word.replace_all(&command, actual.as_str()).into_owned();
        }
        if let Some(addr) = self.gateways.last().map(|(_, a)| a.to_string()) {
            command = command.replace(DOC_ADDR, &addr);
        }
        for d in block.all("not-run") {
            if command.trim_start().starts_with(d.value.as_str()) {
                // Not run (it would run this very test, say), but what it names must exist.
                let program = d.value.split_whitespace().next().unwrap_or_default();
                let path = paths::workspace_root().join(program);
                if !is_executable(&path) {
                    block.fail(format!(
                        "line {}: `{program}` is not an executable file of the workspace",
                        step.line
                    ));
                }
                return String::new();
            }
        }
        if command.trim_start().starts_with("mcpgate serve") {
            return self.serve(block, step.line, &command);
        }
        let exit: i32 = match block.get("exit") {
            Some(d) => d
                .value
                .parse()
                .unwrap_or_else(|_| block.fail(format!("line {}: `exit: N`", d.line))),
            None => 0,
        };
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let (code, output) = self.shell(block, step.line, &command);
            let verdict = if code != exit {
                Err(format!("exited {code}, not {exit}"))
            } else {
                self.match_expected(&step.expected, &output)
            };
            match verdict {
                Ok(bound) => {
                    self.bound.extend(bound);
                    return output;
                }
                Err(why) if block.get("retry").is_none() || Instant::now() >= deadline => {
                    block.fail(format!(
                        "line {}: `{}` {why}; its output:\n{output}",
                        step.line, step.command
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }

    /// Runs one command line with bash in the walkthrough's folder and environment, and keeps
    /// the folder and the exported variables it leaves for the next command.
    fn shell(&mut self, block: &Block, line: usize, command: &str) -> (i32, String) {
        let state = self.root.path().join(".walkthrough-shell");
        fs::create_dir_all(&state).expect("create the shell state folder");
        let script = format!(
            "set -o pipefail\ncd \"$WALKTHROUGH_CWD\" || exit 97\n{command}\n__rc=$?\n\
             pwd > \"$WALKTHROUGH_STATE/cwd\"\nenv -0 > \"$WALKTHROUGH_STATE/env\"\nexit $__rc\n"
        );
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .env_clear()
            .envs(&self.env)
            .env("WALKTHROUGH_CWD", &self.cwd)
            .env("WALKTHROUGH_STATE", &state);
        let done = process::run(
            &format!("{}:{line}", block.doc),
            &mut cmd,
            b"",
            COMMAND_TIMEOUT,
        );
        if let Ok(cwd) = fs::read_to_string(state.join("cwd")) {
            self.cwd = PathBuf::from(cwd.trim_end_matches('\n'));
        }
        if let Ok(env) = fs::read(state.join("env")) {
            let env = String::from_utf8_lossy(&env);
            self.env = env
                .split('\0')
                .filter_map(|kv| kv.split_once('='))
                .filter(|(k, _)| {
                    !k.is_empty()
                        && !k.starts_with("WALKTHROUGH_")
                        && !matches!(*k, "_" | "SHLVL" | "PWD" | "OLDPWD")
                })
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        }
        (done.code(), format!("{}{}", done.stdout, done.stderr))
    }

    /// Each expected line must be in the output, in order; `vary:` samples match whatever
    /// the run printed there, and are bound to it for the later commands.
    fn match_expected(
        &self,
        expected: &[String],
        output: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut bound = self.bound.clone();
        let mut fresh = BTreeMap::new();
        let mut lines = output.lines();
        'expected: for want in expected {
            let samples: Vec<&String> = self.vary.iter().collect();
            let mut pattern = String::new();
            let mut names = Vec::new();
            let mut rest = want.as_str();
            // A sample stands for a value only as a whole word: `5` in `seq 0 to 5`, not
            // in `1795`.
            let mut after_word = false;
            'text: while !rest.is_empty() {
                for sample in &samples {
                    if let Some(tail) = rest.strip_prefix(sample.as_str())
                        && !after_word
                        && !tail.starts_with(|c: char| c.is_ascii_alphanumeric())
                    {
                        after_word = true;
                        if let Some(value) = bound.get(*sample) {
                            pattern.push_str(&regex::escape(value));
                        } else {
                            pattern.push_str(r"([A-Za-z0-9_.:@-]+?)");
                            names.push((*sample).clone());
                        }
                        rest = tail;
                        continue 'text;
                    }
                }
                let c = rest.chars().next().expect("rest is not empty");
                after_word = c.is_ascii_alphanumeric();
                pattern.push_str(&regex::escape(&c.to_string()));
                rest = &rest[c.len_utf8()..];
            }
            let re = Regex::new(&format!("^{pattern}$")).map_err(|e| e.to_string())?;
            for line in lines.by_ref() {
                if let Some(caps) = re.captures(line.trim_end()) {
                    for (i, name) in names.iter().enumerate() {
                        let value = caps[i + 1].to_owned();
                        bound.insert(name.clone(), value.clone());
                        fresh.insert(name.clone(), value);
                    }
                    continue 'expected;
                }
            }
            return Err(format!("did not print `{want}` (as the text shows)"));
        }
        Ok(fresh)
    }

    /// `mcpgate serve ...` runs in the background on a free loopback port; the runner waits
    /// until it answers `/healthz`.
    fn serve(&mut self, block: &Block, line: usize, command: &str) -> String {
        let mut command = command.to_owned();
        if let Some(comment) = command.find(" #") {
            command.truncate(comment);
        }
        let listen = Regex::new(r"--listen[ =]\S+").expect("valid regex");
        let command = if listen.is_match(&command) {
            listen
                .replace(&command, "--listen 127.0.0.1:0")
                .into_owned()
        } else {
            format!("{} --listen 127.0.0.1:0", command.trim_end())
        };
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(format!("cd \"$WALKTHROUGH_CWD\" && exec {command}"))
            .env_clear()
            .envs(&self.env)
            .env("WALKTHROUGH_CWD", &self.cwd);
        let mut proc = Proc::spawn(&format!("{}:{line} (mcpgate serve)", block.doc), &mut cmd);
        let addr = proc.output.wait_for(STARTUP, parse_listening);
        let Some(addr) = addr else {
            proc.kill();
            block.fail(format!(
                "line {line}: `{command}` did not start listening; its output:\n{}",
                proc.output.text()
            ));
        };
        if !healthy(addr, STARTUP) {
            block.fail(format!(
                "line {line}: the gateway on {addr} does not answer /healthz; its output:\n{}",
                proc.output.text()
            ));
        }
        self.gateways.push((proc, addr));
        String::new()
    }

    /// `mcpgate check .` in the current folder: clean, or (`check: CODE`) failing with it.
    fn check(&mut self, block: &Block) -> String {
        let d = block.get("check").expect("a check directive");
        if !d.value.is_empty() && !block.text().contains(&d.value) {
            block.fail(format!(
                "line {}: the block is marked as error {} but does not say so",
                d.line, d.value
            ));
        }
        let (code, output) = self.shell(block, d.line, "mcpgate check .");
        if d.value.is_empty() {
            if code != 0 {
                block.fail(format!("`mcpgate check` fails on the block:\n{output}"));
            }
        } else if code != 1 || !output.contains(&format!("[{}]", d.value)) {
            block.fail(format!(
                "the block is marked as error {} but `mcpgate check` exited {code}:\n{output}",
                d.value
            ));
        }
        output
    }

    /// `client: [background] PATH [bearer TOKEN] list|call TOOL [JSON] [=> TEXT]`: the
    /// Python SDK client against the last gateway started. `=> TEXT` must be in what it
    /// printed (`=> !TEXT`: must not be); with `retry` on the block, it is tried again
    /// until it is.
    fn client(&mut self, block: &Block, d: &Directive) -> String {
        let (spec, expected) = match d.value.split_once("=>") {
            Some((s, e)) => (s.trim().to_owned(), Some(self.expand(e.trim()))),
            None => (d.value.clone(), None),
        };
        let background = spec.starts_with("background ");
        let spec = spec.trim_start_matches("background ").to_owned();
        let Some((_, addr)) = self.gateways.last() else {
            block.fail(format!(
                "line {}: `client:` but no gateway was started",
                d.line
            ));
        };
        let scenario = self
            .scenario(&spec, *addr)
            .unwrap_or_else(|e| block.fail(format!("line {}: {e}", d.line)));
        if background {
            let thread = std::thread::spawn(move || run_client(&scenario));
            self.background.push(Background {
                block: block.clone(),
                spec,
                expected,
                thread,
            });
            return String::new();
        }
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let printed = run_client(&scenario);
            let verdict = match (&printed, &expected) {
                (Err(e), _) => Err(e.clone()),
                (Ok(text), Some(want)) if !satisfies(text, want) => {
                    Err(format!("expected `{want}`, it printed:\n{text}"))
                }
                (Ok(text), _) => Ok(text.clone()),
            };
            match verdict {
                Ok(text) => return text,
                Err(why) if block.get("retry").is_none() || Instant::now() >= deadline => {
                    block.fail(format!("line {}: client `{spec}`: {why}", d.line))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(300)),
            }
        }
    }

    fn scenario(&self, spec: &str, addr: SocketAddr) -> Result<Value, String> {
        let mut words = spec.splitn(2, ' ');
        let path = words.next().unwrap_or_default();
        let mut rest = words.next().unwrap_or_default().trim().to_owned();
        if !path.starts_with('/') {
            return Err(format!(
                "client `{spec}`: expected a path such as /mcp/demo"
            ));
        }
        let mut target = json!({"url": format!("http://{addr}{path}")});
        if let Some(after) = rest.strip_prefix("bearer ") {
            let (token, tail) = after.split_once(' ').unwrap_or((after, ""));
            target["headers"] = json!({"Authorization": format!("Bearer {}", self.expand(token))});
            rest = tail.trim().to_owned();
        }
        let step = if rest == "list" {
            json!({"op": "list_tools"})
        } else if let Some(call) = rest.strip_prefix("call ") {
            let (name, args) = call.split_once(' ').unwrap_or((call, "{}"));
            let args: Value = serde_json::from_str(args)
                .map_err(|e| format!("client `{spec}`: arguments are not JSON: {e}"))?;
            json!({"op": "call_tool", "name": name, "arguments": args})
        } else {
            return Err(format!(
                "client `{spec}`: expected `list` or `call TOOL JSON`"
            ));
        };
        Ok(json!({"target": target, "mode": "legacy", "steps": [step]}))
    }

    fn expect_gateway(&self, block: &Block, d: &Directive) {
        let Some((proc, _)) = self.gateways.last() else {
            block.fail(format!(
                "line {}: `expect-gateway:` but no gateway was started",
                d.line
            ));
        };
        let want = self.expand(&d.value);
        let found = proc
            .output
            .wait_for(RETRY_FOR, |l| l.contains(&want).then_some(()));
        if found.is_none() {
            block.fail(format!(
                "line {}: the gateway never logged `{want}`; its output:\n{}",
                d.line,
                proc.output.text()
            ));
        }
    }

    /// Joins the calls still running and stops the gateways.
    fn finish(mut self) {
        for bg in self.background.drain(..) {
            let printed = bg
                .thread
                .join()
                .unwrap_or_else(|_| Err("the client thread panicked".to_owned()));
            match (printed, bg.expected) {
                (Err(e), _) => bg.block.fail(format!("client `{}`: {e}", bg.spec)),
                (Ok(text), Some(want)) if !satisfies(&text, &want) => bg.block.fail(format!(
                    "client `{}`: expected `{want}`, it printed:\n{text}",
                    bg.spec
                )),
                _ => {}
            }
        }
        for (mut proc, _) in self.gateways.drain(..) {
            proc.kill();
        }
    }
}

/// `want` is in `text`, or with a leading `!`, is not.
fn satisfies(text: &str, want: &str) -> bool {
    match want.strip_prefix('!') {
        Some(absent) => !text.contains(absent),
        None => text.contains(want),
    }
}

/// Runs the Python client; renders what it got as text: `tools: a, b` for a list, the
/// result's text for a call (prefixed `isError: ` when it is one), `error: ...` for a
/// JSON-RPC error.
fn run_client(scenario: &Value) -> Result<String, String> {
    // The harness panics on a client that cannot run at all; the caller names the block.
    let scenario = scenario.clone();
    let report =
        std::panic::catch_unwind(move || peers::py_client_scenario(scenario)).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "the python client failed".to_owned())
        })?;
    if let Some(e) = report.get("connect_error") {
        return Err(format!("could not connect: {e}"));
    }
    let step = &report["results"][0];
    if let Some(e) = step.get("error") {
        return Ok(format!("error: {e}"));
    }
    let ok = &step["ok"];
    if ok.get("tools").is_some() {
        return Ok(format!("tools: {}", peers::tool_names(ok).join(", ")));
    }
    let text = peers::result_text(ok);
    Ok(if ok["isError"] == true {
        format!("isError: {text}")
    } else {
        text
    })
}

/// Polls `GET /healthz` until it answers 200 or the deadline passes.
fn healthy(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let request =
                format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            if stream.write_all(request.as_bytes()).is_ok()
                && stream.read_to_string(&mut answer).is_ok()
                && answer.starts_with("HTTP/1.1 200")
            {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    if src.is_dir() {
        fs::create_dir_all(dst)?;
        for entry in fs::read_dir(src)? {
            let entry = entry?;
            copy_tree(&entry.path(), &dst.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(src, dst).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_markers_directives_and_block_lines() {
        let doc = "intro\n<!-- walkthrough: demo\n  from: examples/quickstart\n  expect: ok\n-->\n\n```sh\nmcpgate check examples/quickstart\n```\n\n```sh\nnot marked\n```\n";
        let blocks = parse("X.md", doc).expect("parses");
        assert_eq!(blocks.len(), 1);
        let b = &blocks[0];
        assert_eq!(
            (b.walkthrough.as_str(), b.line, b.lang.as_str()),
            ("demo", 7, "sh")
        );
        assert_eq!(
            b.lines,
            vec![(8, "mcpgate check examples/quickstart".to_owned())]
        );
        let keys: Vec<_> = b
            .directives
            .iter()
            .map(|d| (d.key.as_str(), d.line))
            .collect();
        assert_eq!(keys, [("from", 3), ("expect", 4)]);
    }

    #[test]
    fn a_bad_marker_names_its_line() {
        let unknown = parse(
            "X.md",
            "a\n<!-- walkthrough: w\nfrmo: x -->\n```sh\nls\n```\n",
        );
        assert_eq!(
            unknown
                .err()
                .map(|e| e.starts_with("X.md:3: unknown walkthrough directive `frmo`")),
            Some(true)
        );
        let shown = parse(
            "X.md",
            "~~~md\n<!-- walkthrough: w -->\n```sh\nls\n```\n~~~\n",
        );
        assert_eq!(
            shown.map(|b| b.len()),
            Ok(0),
            "a marker inside a fence is an example"
        );
        let no_block = parse("X.md", "<!-- walkthrough: w -->\ntext\n");
        assert_eq!(
            no_block
                .err()
                .map(|e| e.starts_with("X.md:1: walkthrough marker is not followed")),
            Some(true)
        );
    }
}
