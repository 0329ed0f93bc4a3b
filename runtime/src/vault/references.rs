//! `${secret:NAME}` and `${env:NAME}` references in upstream config, and [`EnvSecrets`], the
//! resolver that reads secrets from the gateway's environment.

use zeroize::Zeroizing;

/// Resolves `${secret:NAME}` and `${env:NAME}` references in upstream config.
pub trait SecretResolver: Send + Sync {
    /// The value of the reference, or `None` if unknown.
    fn resolve(&self, kind: &str, name: &str) -> Option<String>;

    /// As [`SecretResolver::resolve`], for resolvers that can fail (a vault that cannot be
    /// opened): `Err` says why, never with a value. The value is wiped when dropped.
    ///
    /// # Errors
    /// When the reference exists but cannot be read.
    fn lookup(&self, kind: &str, name: &str) -> Result<Option<Zeroizing<String>>, String> {
        Ok(self.resolve(kind, name).map(Zeroizing::new))
    }
}

/// Prefix of the environment variables [`EnvSecrets`] reads secrets from.
pub const SECRET_ENV_PREFIX: &str = "MCPGATE_SECRET_";
/// Prefix of the gateway's own variables (settings, secrets, the master key): none of them
/// is passed on to a stdio server.
pub const GATEWAY_ENV_PREFIX: &str = "MCPGATE_";

/// Resolves `${secret:NAME}` from the environment variable `MCPGATE_SECRET_NAME` (the name
/// uppercased, `-` replaced by `_`) and `${env:NAME}` from the variable `NAME`.
#[derive(Clone, Copy, Debug, Default)]
pub struct EnvSecrets;

impl EnvSecrets {
    /// The environment variable that holds `${secret:name}`.
    pub fn variable_for(name: &str) -> String {
        format!(
            "{SECRET_ENV_PREFIX}{}",
            name.to_ascii_uppercase().replace('-', "_")
        )
    }
}

impl SecretResolver for EnvSecrets {
    fn resolve(&self, kind: &str, name: &str) -> Option<String> {
        match kind {
            "secret" => std::env::var(EnvSecrets::variable_for(name)).ok(),
            "env" => std::env::var(name).ok(),
            _ => None,
        }
    }
}

/// A config value with its references replaced.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    pub value: String,
    /// The value came (in part) from a reference: treat it as a credential.
    pub sensitive: bool,
    /// The values the references stood for, to scrub from anything reported.
    pub substituted: Vec<String>,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The value may be a credential.
        f.debug_struct("Resolved")
            .field("sensitive", &self.sensitive)
            .finish_non_exhaustive()
    }
}

/// Replaces every `${secret:NAME}` and `${env:NAME}` in `value`. A `$` not followed by `{`
/// is kept as is.
///
/// # Errors
/// A malformed or unknown reference; the message names the reference, never a value.
pub(crate) fn resolve_references(
    value: &str,
    secrets: &dyn SecretResolver,
) -> Result<Resolved, String> {
    let mut out = String::with_capacity(value.len());
    let mut substituted = Vec::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(rest.get(..start).unwrap_or_default());
        let after = rest.get(start + 2..).unwrap_or_default();
        let Some(end) = after.find('}') else {
            return Err("unterminated reference `${`".to_owned());
        };
        let reference = after.get(..end).unwrap_or_default();
        let Some((kind, name)) = reference.split_once(':') else {
            return Err(format!("malformed reference `${{{reference}}}`"));
        };
        if !matches!(kind, "secret" | "env")
            || name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(format!("malformed reference `${{{reference}}}`"));
        }
        let Some(resolved) = secrets.lookup(kind, name)? else {
            return Err(match kind {
                "secret" => format!(
                    "unknown secret `{name}`: not in the vault, and `{}` is not set",
                    EnvSecrets::variable_for(name)
                ),
                _ => format!("unknown env `{name}`: the variable is not set"),
            });
        };
        out.push_str(&resolved);
        substituted.push(resolved.as_str().to_owned());
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(Resolved {
        value: out,
        sensitive: !substituted.is_empty(),
        substituted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl SecretResolver for Fixed {
        fn resolve(&self, kind: &str, name: &str) -> Option<String> {
            (name == "gh").then(|| format!("{kind}-value"))
        }
    }

    #[test]
    fn replaces_references_and_marks_them_sensitive() {
        let r = resolve_references("Bearer ${secret:gh} $x ${env:gh}", &Fixed).unwrap();
        assert_eq!(r.value, "Bearer secret-value $x env-value");
        assert!(r.sensitive);
        let plain = resolve_references("plain", &Fixed).unwrap();
        assert!(!plain.sensitive);
    }

    #[test]
    fn errors_name_the_reference_only() {
        assert_eq!(
            resolve_references("${secret:nope}", &Fixed).unwrap_err(),
            "unknown secret `nope`: not in the vault, and `MCPGATE_SECRET_NOPE` is not set"
        );
        assert!(resolve_references("${vault:gh}", &Fixed).is_err());
        assert!(resolve_references("${secret:gh", &Fixed).is_err());
    }

    #[test]
    fn env_secret_variable_names() {
        assert_eq!(
            EnvSecrets::variable_for("git-hub"),
            "MCPGATE_SECRET_GIT_HUB"
        );
    }
}
