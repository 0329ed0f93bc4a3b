//! The last good program, kept in the state dir so a restart while the repository is out of
//! reach serves it: one JSON file, written to a temp file, synced, and renamed over.

use base64::Engine;
use mcpgate_compiler::Program;
use mcpgate_compiler::config::Config;
use mcpgate_compiler::responders::ResponderSet;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the last good program inside the state dir.
pub const LAST_GOOD: &str = "policy-last-good.json";

/// What is saved with the program.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Saved {
    /// The commit the program was compiled from (none for a folder).
    pub commit: Option<String>,
    /// Committer time of `commit`, seconds since the epoch.
    pub commit_time: Option<i64>,
    /// `Program::hash_hex` of the program.
    pub hash: String,
    /// When the program went live, seconds since the epoch.
    pub loaded_at: u64,
    /// The gateway config of the same commit (`mcpgate.yaml`).
    pub config: Config,
    /// `Program::encode`, base64.
    pub program: String,
    /// `mcpgate.lock` of the same commit, as written by `mcpgate lock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// `responders.yaml` of the same commit, as compiled.
    #[serde(default, skip_serializing_if = "ResponderSet::is_empty")]
    pub responders: ResponderSet,
}

/// The path of the saved program in `state`.
pub fn path(state: &Path) -> PathBuf {
    state.join(LAST_GOOD)
}

/// Saves `program` and what goes with it, atomically.
///
/// # Errors
/// When the file cannot be written.
pub fn save(state: &Path, mut saved: Saved, program: &Program) -> std::io::Result<()> {
    saved.program = base64::engine::general_purpose::STANDARD.encode(program.encode());
    saved.hash = program.hash_hex();
    let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
    let target = path(state);
    let temp = state.join(format!("{LAST_GOOD}.tmp"));
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&temp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&temp, &target)?;
    // The rename itself is durable once the directory is synced.
    #[cfg(unix)]
    std::fs::File::open(state)?.sync_all()?;
    Ok(())
}

/// Reads the saved program, if there is one.
///
/// # Errors
/// When the file exists but cannot be read or does not hold a valid program (the message
/// says which).
pub fn load(state: &Path) -> Result<Option<(Saved, Program)>, String> {
    let bytes = match std::fs::read(path(state)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read `{LAST_GOOD}`: {e}")),
    };
    let saved: Saved =
        serde_json::from_slice(&bytes).map_err(|e| format!("`{LAST_GOOD}` is damaged: {e}"))?;
    let code = base64::engine::general_purpose::STANDARD
        .decode(saved.program.as_bytes())
        .map_err(|e| format!("`{LAST_GOOD}` is damaged: {e}"))?;
    let program =
        Program::decode(&code).map_err(|e| format!("`{LAST_GOOD}` holds no valid program: {e}"))?;
    if program.hash_hex() != saved.hash || program.commit() != saved.commit.as_deref() {
        return Err(format!(
            "`{LAST_GOOD}` is damaged: the program does not match its hash or commit"
        ));
    }
    Ok(Some((saved, program)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcpgate_compiler::ir::Policy;

    fn saved() -> Saved {
        Saved {
            commit: Some("abc".into()),
            commit_time: Some(1),
            hash: String::new(),
            loaded_at: 2,
            config: Config::default(),
            program: String::new(),
            lock: None,
            responders: ResponderSet::default(),
        }
    }

    #[test]
    fn saves_and_loads_the_program_and_rejects_a_damaged_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let program = Program::compile(&Policy::default(), Some("abc"));
        save(dir.path(), saved(), &program).unwrap();
        let (s, back) = load(dir.path()).unwrap().unwrap();
        assert_eq!(s.commit.as_deref(), Some("abc"));
        assert_eq!(back.hash_hex(), program.hash_hex());
        assert!(!dir.path().join(format!("{LAST_GOOD}.tmp")).exists());

        // The responders of the same commit come back with it.
        let mut with = saved();
        with.responders = mcpgate_compiler::repo::check_files(vec![
            mcpgate_compiler::repo::SourceFile {
                path: "responders.yaml".into(),
                text: "responders:\n  - name: r\n    when: { held: any }\n    do: [{ pause: session, for: 1m }]\n".into(),
            },
        ])
        .responders;
        assert_eq!(with.responders.responders.len(), 1);
        save(dir.path(), with.clone(), &program).unwrap();
        let (s, _) = load(dir.path()).unwrap().unwrap();
        assert_eq!(s.responders, with.responders);

        // A program that does not match its recorded commit is refused.
        let mut other = saved();
        other.commit = Some("def".into());
        save(dir.path(), other, &program).unwrap();
        assert!(load(dir.path()).is_err());
        std::fs::write(path(dir.path()), b"{not json").unwrap();
        assert!(load(dir.path()).unwrap_err().contains("damaged"));
    }
}
