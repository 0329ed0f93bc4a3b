//! `mcpgate fmt`: rewrites `.mcpg` files in their canonical layout, or with `--check` lists
//! the files that are not.
//!
//! Exit codes: 0 all formatted, 1 a file would change (`--check`) or has syntax errors,
//! 2 an I/O error.

use mcpgate_compiler::format::format_source;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Change nothing; list the files that would change and exit 1 if there are any.
    #[arg(long)]
    pub check: bool,
    /// Files or folders to format; folders are searched for `*.mcpg` recursively.
    #[arg(default_value = ".")]
    pub paths: Vec<PathBuf>,
}

/// Folders never searched: build output, version control, dependencies.
const SKIPPED_DIRS: [&str; 3] = ["target", ".git", "node_modules"];

pub fn run(args: Args) -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = fmt(&args, &mut stdout.lock(), &mut stderr.lock());
    ExitCode::from(code)
}

/// Runs the command, writing the changed files' names to `out` and errors to `err`;
/// returns the exit code.
pub fn fmt(args: &Args, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut io_error = false;
    let mut failed = false;
    let mut files = Vec::new();
    for path in &args.paths {
        if let Err(e) = collect(path, true, &mut files) {
            let _ = writeln!(err, "error: cannot read `{}`: {e}", path.display());
            io_error = true;
        }
    }
    for file in files {
        let src = match std::fs::read_to_string(&file) {
            Ok(src) => src,
            Err(e) => {
                let _ = writeln!(err, "error: cannot read `{}`: {e}", file.display());
                io_error = true;
                continue;
            }
        };
        let formatted = match format_source(&src) {
            Ok(formatted) => formatted,
            Err(errors) => {
                for e in errors {
                    let (line, col) = line_col(&src, e.span.start as usize);
                    let _ = writeln!(err, "{}:{line}:{col}: error: {}", file.display(), e.message);
                    if let Some(help) = e.help {
                        let _ = writeln!(err, "  help: {help}");
                    }
                }
                failed = true;
                continue;
            }
        };
        if formatted == src {
            continue;
        }
        if args.check {
            let _ = writeln!(out, "{}", file.display());
            failed = true;
        } else if let Err(e) = replace(&file, &formatted) {
            let _ = writeln!(err, "error: cannot write `{}`: {e}", file.display());
            io_error = true;
        }
    }
    if io_error { 2 } else { u8::from(failed) }
}

/// Adds `path` if it is a file (named explicitly, any extension) or the `*.mcpg` files under
/// it, in a stable order. Symbolic links met while walking are not followed.
fn collect(path: &Path, explicit: bool, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let meta = if explicit {
        std::fs::metadata(path)?
    } else {
        std::fs::symlink_metadata(path)?
    };
    if meta.is_file() {
        if explicit || path.extension().is_some_and(|e| e == "mcpg") {
            files.push(path.to_path_buf());
        }
        return Ok(());
    }
    if !meta.is_dir() {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for entry in entries {
        let skipped = entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| SKIPPED_DIRS.contains(&n));
        if skipped && entry.is_dir() {
            continue;
        }
        collect(&entry, false, files)?;
    }
    Ok(())
}

/// Writes `contents` next to `file` and renames it over, so a crash never leaves a
/// half-written policy; the file keeps its permissions, a link stays a link.
fn replace(file: &Path, contents: &str) -> std::io::Result<()> {
    // Through a symbolic link, rewrite the file it points to and keep the link.
    let file = &std::fs::canonicalize(file)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = file.with_file_name(format!(".{name}.mcpgate-fmt.tmp"));
    let permissions = std::fs::metadata(file)?.permissions();
    std::fs::write(&tmp, contents)?;
    let result =
        std::fs::set_permissions(&tmp, permissions).and_then(|()| std::fs::rename(&tmp, file));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// 1-based line and column (counted in characters) of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = src.get(..offset.min(src.len())).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "mcpgate-fmt-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn run_fmt(check: bool, paths: Vec<PathBuf>) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = fmt(&Args { check, paths }, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    const UGLY: &str = "allow   a.b ;\n";
    const PRETTY: &str = "allow a.b;\n";

    #[test]
    fn check_lists_changed_files_and_changes_nothing() {
        let dir = TempDir::new();
        let ugly = dir.0.join("ugly.mcpg");
        std::fs::write(&ugly, UGLY).unwrap();
        std::fs::write(dir.0.join("pretty.mcpg"), PRETTY).unwrap();
        let (code, out, err) = run_fmt(true, vec![dir.0.clone()]);
        assert_eq!(code, 1, "{err}");
        assert_eq!(out.trim(), ugly.display().to_string());
        assert_eq!(std::fs::read_to_string(&ugly).unwrap(), UGLY);
    }

    #[test]
    fn rewrites_in_place_then_checks_clean() {
        let dir = TempDir::new();
        let nested = dir.0.join("policies/team");
        std::fs::create_dir_all(&nested).unwrap();
        let file = nested.join("a.mcpg");
        std::fs::write(&file, UGLY).unwrap();
        let (code, _, err) = run_fmt(false, vec![dir.0.clone()]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), PRETTY);
        let (code, out, _) = run_fmt(true, vec![dir.0.clone()]);
        assert_eq!((code, out.as_str()), (0, ""));
    }

    #[test]
    fn skips_build_and_vcs_folders_and_other_files() {
        let dir = TempDir::new();
        for skipped in ["target", ".git", "node_modules"] {
            std::fs::create_dir_all(dir.0.join(skipped)).unwrap();
            std::fs::write(dir.0.join(skipped).join("x.mcpg"), UGLY).unwrap();
        }
        std::fs::write(dir.0.join("notes.txt"), UGLY).unwrap();
        let (code, out, _) = run_fmt(true, vec![dir.0.clone()]);
        assert_eq!((code, out.as_str()), (0, ""));
    }

    #[test]
    fn syntax_errors_are_reported_with_positions() {
        let dir = TempDir::new();
        let file = dir.0.join("bad.mcpg");
        std::fs::write(&file, "allow a.b;\nalow c.d;\n").unwrap();
        let (code, _, err) = run_fmt(false, vec![file.clone()]);
        assert_eq!(code, 1);
        assert!(
            err.contains(&format!(
                "{}:2:1: error: unknown effect `alow`",
                file.display()
            )),
            "{err}"
        );
        assert!(err.contains("help: did you mean `allow`?"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "allow a.b;\nalow c.d;\n"
        );
    }

    #[test]
    fn missing_path_is_an_io_error() {
        let dir = TempDir::new();
        let (code, _, err) = run_fmt(false, vec![dir.0.join("nope")]);
        assert_eq!(code, 2);
        assert!(err.starts_with("error: cannot read"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_file_is_rewritten_and_the_link_kept() {
        let dir = TempDir::new();
        let real = dir.0.join("real.mcpg");
        let link = dir.0.join("link.mcpg");
        std::fs::write(&real, UGLY).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let (code, _, err) = run_fmt(false, vec![link.clone()]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(std::fs::read_to_string(&real).unwrap(), PRETTY);
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
