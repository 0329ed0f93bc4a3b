//! A policy repository as a set of files: read from a folder (or, later, a git tree),
//! then parsed, lowered and checked in one pass.

use crate::check::{self, policy_tests, rules, shadow};
use crate::config::Config;
use crate::diag::{self, Diagnostic, Format, Severity};
use crate::ir;
use crate::lock::Lockfile;
use crate::lower::{self, SourceRule};
use crate::source::{FileId, SourceMap};
use crate::testing::{PolicyTest, TestReport};
use crate::yaml;
use std::path::Path;

/// Largest file read, in bytes: spans are 32-bit, and no policy file comes near this.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One file of the repository. `path` is repo-relative with `/` separators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// What a repository file is, by its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Config,
    Lock,
    DslPolicy,
    YamlPolicy,
    Tests,
    /// `principals.yaml`: group membership.
    Principals,
    /// `responders.yaml`: what the gateway does when callers misbehave.
    Responders,
    Other,
}

impl FileKind {
    /// Classifies a repo-relative path.
    pub fn of(path: &str) -> FileKind {
        let yaml = path.ends_with(".yaml") || path.ends_with(".yml");
        match path {
            "mcpgate.yaml" | "mcpgate.yml" => FileKind::Config,
            "mcpgate.lock" => FileKind::Lock,
            "principals.yaml" | "principals.yml" => FileKind::Principals,
            "responders.yaml" | "responders.yml" => FileKind::Responders,
            p if p.starts_with("policies/") && p.ends_with(".mcpg") => FileKind::DslPolicy,
            p if p.starts_with("policies/") && yaml => FileKind::YamlPolicy,
            p if p.starts_with("tests/") && yaml => FileKind::Tests,
            _ => FileKind::Other,
        }
    }
}

/// Reads `mcpgate.yaml`, `mcpgate.lock`, `principals.yaml`, `responders.yaml`,
/// `policies/**/*.{mcpg,yaml,yml}` and
/// `tests/**/*.{yaml,yml}` below `dir`, sorted by path.
///
/// # Errors
/// When `dir` or a file in it cannot be read, or a file is not UTF-8 or too large.
/// The files a policy folder is read from at its top.
pub const ROOT_FILES: [&str; 7] = [
    "mcpgate.yaml",
    "mcpgate.yml",
    "mcpgate.lock",
    "principals.yaml",
    "principals.yml",
    "responders.yaml",
    "responders.yml",
];

/// The folders whose files (hidden ones aside) a policy folder is read from.
pub const SOURCE_DIRS: [&str; 2] = ["policies", "tests"];

/// Whether `rel`, a path inside a policy folder, is one [`read_dir`] reads (or a folder
/// holding such files): a change anywhere else cannot change the policy.
pub fn is_source_path(rel: &Path) -> bool {
    let mut parts = rel.components().map(|c| c.as_os_str().to_string_lossy());
    let Some(first) = parts.next() else {
        return false;
    };
    if rel
        .components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
    {
        return false;
    }
    if SOURCE_DIRS.contains(&first.as_ref()) {
        return true;
    }
    parts.next().is_none() && ROOT_FILES.contains(&first.as_ref())
}

pub fn read_dir(dir: &Path) -> std::io::Result<Vec<SourceFile>> {
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            format!("`{}` is not a directory", dir.display()),
        ));
    }
    let mut files = Vec::new();
    for name in ROOT_FILES {
        let p = dir.join(name);
        if p.is_file() {
            files.push(read_one(&p, name.to_owned())?);
        }
    }
    for sub in SOURCE_DIRS {
        let root = dir.join(sub);
        if root.is_dir() {
            walk(&root, sub, &mut files)?;
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(dir: &Path, rel: &str, out: &mut Vec<SourceFile>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let rel_path = format!("{rel}/{name}");
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(&entry.path(), &rel_path, out)?;
        } else if FileKind::of(&rel_path) != FileKind::Other {
            out.push(read_one(&entry.path(), rel_path)?);
        }
    }
    Ok(())
}

fn read_one(path: &Path, rel: String) -> std::io::Result<SourceFile> {
    let len = std::fs::metadata(path)?.len();
    if len > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("`{rel}` is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("`{rel}` is not valid UTF-8"),
        )
    })?;
    Ok(SourceFile { path: rel, text })
}

/// The result of checking a repository: what could be understood, and every diagnostic.
#[derive(Debug, Default)]
pub struct Checked {
    /// `mcpgate.yaml`, if present and valid.
    pub config: Option<Config>,
    /// `mcpgate.lock`, if present and valid.
    pub lock: Option<Lockfile>,
    /// The rules that lowered cleanly (all of them when there are no errors).
    pub policy: ir::Policy,
    pub tests: Vec<PolicyTest>,
    /// Group membership from `principals.yaml`: principal id to groups.
    pub memberships: crate::vm::Memberships,
    /// `responders.yaml`, the responders without errors.
    pub responders: crate::responders::ResponderSet,
    pub errors: usize,
    pub warnings: usize,
    /// Rendered for a terminal (rustc style, with source lines and carets).
    pub rendered: String,
    /// Every diagnostic, by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// The files, for rendering.
    pub sources: SourceMap,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// Compiles the checked policy with its group membership: what every consumer (serve,
    /// test, explain, check) evaluates.
    pub fn program(&self, commit: Option<&str>) -> crate::Program {
        crate::Program::compile(&self.policy, commit).with_memberships(&self.memberships)
    }

    /// Renders the diagnostics as `human`, `github` or `json`.
    pub fn render(&self, format: Format) -> String {
        diag::render(&self.diagnostics, &self.sources, format)
    }

    /// Adds the results of running the tests: an error per failed test and a warning per
    /// rule that no test exercises.
    pub fn add_test_report(&mut self, report: &TestReport) {
        let mut new = policy_tests::report_diagnostics(report, &self.sources);
        self.diagnostics.append(&mut new);
        self.finish();
    }

    /// Adds diagnostics found by a later stage, keeping counts and `rendered` current.
    pub fn extend(&mut self, diags: impl IntoIterator<Item = Diagnostic>) {
        self.diagnostics.extend(diags);
        self.finish();
    }

    fn finish(&mut self) {
        let sources = &self.sources;
        self.diagnostics.sort_by(|a, b| {
            (sources.path(a.primary.file), a.primary.span.start, a.code).cmp(&(
                sources.path(b.primary.file),
                b.primary.span.start,
                b.code,
            ))
        });
        self.diagnostics.dedup();
        self.errors = self
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        self.warnings = self.diagnostics.len() - self.errors;
        self.rendered = diag::render_human(&self.diagnostics, &self.sources);
    }
}

/// Parses, lowers and checks every file.
pub fn check_files(mut files: Vec<SourceFile>) -> Checked {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut sources = SourceMap::new();
    let mut out: Vec<Diagnostic> = Vec::new();
    let mut source_rules: Vec<SourceRule> = Vec::new();
    let mut test_cases: Vec<yaml::tests::TestCase> = Vec::new();
    let mut config = None;
    let mut memberships = crate::vm::Memberships::new();
    let mut responders = crate::responders::ResponderSet::default();
    let mut config_file = None;
    let mut lock = None;
    let mut lock_file = None;
    for f in files {
        let kind = FileKind::of(&f.path);
        let id = sources.add(f.path, f.text);
        let text = sources.text(id);
        match kind {
            FileKind::DslPolicy => source_rules.extend(parse_dsl(id, text, &mut out)),
            FileKind::YamlPolicy => source_rules.extend(yaml::policy::load(id, text, &mut out)),
            FileKind::Tests => {
                let path = sources.path(id);
                test_cases.extend(yaml::tests::load(id, text, &mut out).into_iter().map(
                    |mut c| {
                        c.test.source.file = path.to_owned();
                        c
                    },
                ));
            }
            FileKind::Config => {
                config = yaml::config::load(id, text, &mut out);
                config_file = Some(id);
            }
            FileKind::Principals => {
                yaml::principals::load(id, text, &mut memberships, &mut out);
            }
            FileKind::Responders => {
                responders = yaml::responders::load(id, sources.path(id), text, &mut out);
            }
            FileKind::Lock => {
                lock = check::lock::load(id, text, &mut out);
                lock_file = Some(id);
            }
            FileKind::Other => {}
        }
    }

    // Per-rule checks, then lowering.
    let mut policy = ir::Policy::default();
    let mut sites = Vec::new();
    let mut ids = Vec::new();
    for sr in &source_rules {
        let path = sources.path(sr.file);
        let text = sources.text(sr.file);
        let before = out.iter().filter(|d| d.severity == Severity::Error).count();
        rules::check_rule(&sr.rule, sr.file, &mut out);
        if let Some(w) = &sr.rule.when {
            check::types::check_condition(w, text, sr.file, &mut out);
        }
        if let Some(lock) = &lock {
            check::lock::check_targets(&sr.rule, lock, sr.file, &mut out);
            check::lock::check_condition(&sr.rule, lock, text, sr.file, &mut out);
        }
        let checked_ok = out.iter().filter(|d| d.severity == Severity::Error).count() == before;
        ids.push(rules::IdSite {
            id: lower::rule_id(sr, path),
            file: sr.file,
            span: sr.rule.id.as_ref().map_or(sr.rule.effect.span, |i| i.span),
        });
        let loc = sources.loc(sr.file, sr.rule.span);
        if let Some(rule) = lower::lower_rule(sr, path, loc, &mut out)
            && checked_ok
        {
            policy.rules.push(rule);
            sites.push(shadow::Site {
                file: sr.file,
                span: sr.rule.span,
            });
        }
    }
    rules::check_duplicate_ids(&ids, &mut out);
    shadow::check_shadowed(&policy.rules, &sites, &mut out);

    if let (Some(c), Some(f)) = (&config, config_file) {
        let lock = lock
            .as_ref()
            .zip(lock_file)
            .map(|(l, lf)| (l, lf, sources.text(lf)));
        check::lock::check_config(lock, c, f, sources.text(f), &mut out);
    }

    let rule_ids: Vec<&str> = ids.iter().map(|s| s.id.as_str()).collect();
    let mut tests = policy_tests::check_rule_refs(test_cases, &rule_ids, &mut out);
    // Tests see the pinned annotations, as the gateway does.
    if let Some(lock) = &lock {
        for t in &mut tests {
            if let crate::testing::Call::Tool { server, tool } = &t.call
                && let Some(p) = lock.server(server).and_then(|s| s.tools.get(tool))
            {
                t.annotations = crate::lock::annotations_of(p.annotations());
            }
        }
    }

    let mut checked = Checked {
        config,
        lock,
        policy,
        tests,
        memberships,
        responders,
        diagnostics: out,
        sources,
        ..Checked::default()
    };
    checked.finish();
    checked
}

fn parse_dsl(file: FileId, text: &str, out: &mut Vec<Diagnostic>) -> Vec<SourceRule> {
    let (ast, errors) = mcpgate_grammar::parse_file(text);
    for e in errors {
        out.push(
            check::syntax::E0001
                .at(e.message, file, e.span)
                .with_help_opt(e.help),
        );
    }
    ast.rules
        .into_iter()
        .enumerate()
        .map(|(i, rule)| SourceRule {
            file,
            ordinal: i + 1,
            rule,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::is_source_path;
    use std::path::Path;

    #[test]
    fn only_the_files_a_policy_is_read_from_count_as_its_sources() {
        for p in [
            "mcpgate.yaml",
            "principals.yml",
            "mcpgate.lock",
            "policies",
            "policies/main.mcpg",
            "policies/teams/a.yaml",
            "tests/calls.yaml",
        ] {
            assert!(is_source_path(Path::new(p)), "{p}");
        }
        for p in [
            "",
            "gateway.log",
            "README.md",
            "notes/mcpgate.yaml",
            ".mcpgate-state/audit/audit-1.jsonl",
            ".git/index",
            "policies/.main.mcpg.swp",
            "mcpgate.yaml/x",
        ] {
            assert!(!is_source_path(Path::new(p)), "{p}");
        }
    }
}
