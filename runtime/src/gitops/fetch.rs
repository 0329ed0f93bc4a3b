//! Following a branch: a bare mirror in the state dir, fetched with libgit2 over a local
//! path, `file://`, `https://` (token) or `ssh://` (key file).

use crate::git::GitError;
use std::path::{Path, PathBuf};

/// Where the policy comes from and how to authenticate.
#[derive(Clone)]
pub struct GitSource {
    pub url: String,
    pub branch: String,
    /// The policy folder inside the repository (empty: the root).
    pub subdir: String,
    /// HTTPS token (sent as the password of `user`).
    pub token: Option<String>,
    /// HTTPS user name for the token.
    pub user: String,
    /// SSH private key file.
    pub ssh_key: Option<PathBuf>,
    pub ssh_passphrase: Option<String>,
}

impl std::fmt::Debug for GitSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token or the passphrase.
        f.debug_struct("GitSource")
            .field("url", &redact_url(&self.url))
            .field("branch", &self.branch)
            .field("subdir", &self.subdir)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("ssh_key", &self.ssh_key)
            .finish_non_exhaustive()
    }
}

/// The fetched head of the branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Commit id (hex).
    pub commit: String,
    /// Committer time, seconds since the epoch.
    pub time: i64,
}

/// The URL without any user info (`https://user:secret@host/` becomes `https://host/`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let host_end = rest.find('/').unwrap_or(rest.len());
    match rest[..host_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Fetches `branch` from the source into the bare mirror at `mirror` (created on first
/// use) and returns the commit the branch points at now. Force-pushes are followed: the
/// remote branch is the truth.
///
/// # Errors
/// When the mirror cannot be opened, the remote cannot be reached or authenticated, or
/// the branch does not exist there.
pub fn fetch(src: &GitSource, mirror: &Path) -> Result<Head, GitError> {
    let repo = match git2::Repository::open_bare(mirror) {
        Ok(r) => r,
        Err(_) => git2::Repository::init_bare(mirror)?,
    };
    let url = absolute_url(&src.url);
    let mut remote = repo.remote_anonymous(&url)?;
    let mut callbacks = git2::RemoteCallbacks::new();
    let mut attempts = 0u32;
    callbacks.credentials(|_url, user_from_url, allowed| {
        // libgit2 asks again after a refusal: give each credential one chance.
        attempts += 1;
        if attempts > 2 {
            return Err(git2::Error::from_str("authentication failed"));
        }
        if allowed.contains(git2::CredentialType::USERNAME) {
            return git2::Cred::username(user_from_url.unwrap_or("git"));
        }
        if allowed.contains(git2::CredentialType::SSH_KEY)
            && let Some(key) = &src.ssh_key
        {
            return git2::Cred::ssh_key(
                user_from_url.unwrap_or("git"),
                None,
                key,
                src.ssh_passphrase.as_deref(),
            );
        }
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT)
            && let Some(token) = &src.token
        {
            return git2::Cred::userpass_plaintext(&src.user, token);
        }
        Err(git2::Error::from_str(
            "the remote asks for credentials and none are configured",
        ))
    });
    let mut options = git2::FetchOptions::new();
    options.remote_callbacks(callbacks);
    options.download_tags(git2::AutotagOption::None);
    let tracking = format!("refs/remotes/origin/{}", src.branch);
    let refspec = format!("+refs/heads/{}:{tracking}", src.branch);
    remote
        .fetch(&[refspec.as_str()], Some(&mut options), None)
        .map_err(|e| scrub(e, src))?;
    let wanted = format!("refs/heads/{}", src.branch);
    let listed = remote
        .list()?
        .iter()
        .find(|h| h.name() == wanted)
        .map(git2::RemoteHead::oid);
    let Some(oid) = listed else {
        return Err(GitError::new(format!(
            "branch `{}` not found in `{}`",
            src.branch,
            redact_url(&src.url)
        )));
    };
    let commit = repo.find_commit(oid)?;
    Ok(Head {
        commit: oid.to_string(),
        time: commit.time().seconds(),
    })
}

/// Local paths are made absolute so the mirror does not depend on the working directory.
fn absolute_url(url: &str) -> String {
    if url.contains("://") || url.starts_with("git@") {
        return url.to_owned();
    }
    std::path::absolute(url).map_or_else(|_| url.to_owned(), |p| p.display().to_string())
}

/// libgit2 errors may repeat the URL: drop any user info and the token.
fn scrub(e: git2::Error, src: &GitSource) -> GitError {
    let mut text = e.message().replace(&src.url, &redact_url(&src.url));
    if let Some(token) = src.token.as_deref().filter(|t| !t.is_empty()) {
        text = text.replace(token, "***");
    }
    GitError::new(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_user_info() {
        assert_eq!(
            redact_url("https://user:s3cret@example.com/a/b.git"),
            "https://example.com/a/b.git"
        );
        assert_eq!(redact_url("ssh://git@host/x.git"), "ssh://host/x.git");
        assert_eq!(redact_url("/srv/policy"), "/srv/policy");
        assert_eq!(
            redact_url("https://example.com/a@b"),
            "https://example.com/a@b"
        );
    }
}
