//! Reading policy repositories through git (libgit2): a commit's files without a checkout.
//!
//! Bottom layer: uses nothing of the crate.

use mcpgate_compiler::repo::{FileKind, SourceFile};
use std::path::Path;

/// A git failure, with libgit2's message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GitError(String);

impl GitError {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> GitError {
        GitError(message.into())
    }
}

impl From<git2::Error> for GitError {
    fn from(e: git2::Error) -> Self {
        GitError(e.message().to_owned())
    }
}

/// The commit id (hex) that `rev` names in the repository at (or above) `repo`.
///
/// # Errors
/// When there is no repository or `rev` names no commit.
pub fn resolve(repo: &Path, rev: &str) -> Result<String, GitError> {
    let repo = git2::Repository::discover(repo)?;
    let commit = repo.revparse_single(rev)?.peel_to_commit()?;
    Ok(commit.id().to_string())
}

/// The policy files of the commit `rev`, as `repo::read_dir` would read them from a
/// checkout of that commit. `subdir` is the policy folder's path inside the repository
/// (empty for the root).
///
/// # Errors
/// When the repository, the revision or `subdir` cannot be read.
pub fn read_tree(repo: &Path, rev: &str, subdir: &str) -> Result<Vec<SourceFile>, GitError> {
    let repo = git2::Repository::discover(repo)?;
    let commit = repo.revparse_single(rev)?.peel_to_commit()?;
    let mut tree = commit.tree()?;
    let subdir = subdir.trim_matches('/');
    if !subdir.is_empty() {
        let entry = tree.get_path(Path::new(subdir))?;
        tree = entry.to_object(&repo)?.peel_to_tree()?;
    }
    let mut files = Vec::new();
    let mut failure = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        let name = entry.name().unwrap_or_default();
        let path = format!("{dir}{name}");
        if entry.kind() != Some(git2::ObjectType::Blob) || !is_policy_file(&path) {
            return git2::TreeWalkResult::Ok;
        }
        let text = entry
            .to_object(&repo)
            .ok()
            .and_then(|o| o.peel_to_blob().ok())
            .map(|b| String::from_utf8(b.content().to_vec()));
        match text {
            Some(Ok(text)) => files.push(SourceFile { path, text }),
            _ => {
                failure = Some(GitError(format!("`{path}` is not UTF-8 text")));
                return git2::TreeWalkResult::Abort;
            }
        }
        git2::TreeWalkResult::Ok
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The same selection as `repo::read_dir`, and no hidden files.
fn is_policy_file(path: &str) -> bool {
    !path.split('/').any(|part| part.starts_with('.')) && FileKind::of(path) != FileKind::Other
}
