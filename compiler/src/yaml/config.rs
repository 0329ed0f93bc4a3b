//! `mcpgate.yaml`: schema validation, the typed config, and the config checks.

use super::node;
use super::validate::{self, Schema};
use crate::check::{config as checks, syntax};
use crate::config::Config;
use crate::diag::Diagnostic;
use crate::source::FileId;
use mcpgate_grammar::Span;
use std::sync::OnceLock;

/// The JSON Schema of `mcpgate.yaml`, generated from its serde model: what `mcpgate schema`
/// prints and what the file is validated against.
pub fn json_schema() -> serde_json::Value {
    schemars::schema_for!(crate::config::Config).to_value()
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| Schema::new(&json_schema()))
}

/// Loads and checks `mcpgate.yaml`; `None` when it has errors.
pub fn load(file: FileId, src: &str, out: &mut Vec<Diagnostic>) -> Option<Config> {
    let mut root = match node::parse(src) {
        Ok(n) => n,
        Err(e) => {
            out.push(validate::syntax_error(&e, file, src));
            return None;
        }
    };
    if matches!(root.kind, node::Kind::Null) {
        return Some(Config::default());
    }
    let before = out.len();
    validate::validate(schema(), &mut root, src, file, out);
    checks::check_config(&root, file, out);
    if out.len() > before {
        return None;
    }
    match serde_json::from_value::<Config>(root.to_json()) {
        Ok(mut c) => {
            c.fold_durations();
            Some(c)
        }
        Err(e) => {
            out.push(syntax::E0003.at(
                format!("invalid configuration: {e}"),
                file,
                Span::new(0, 0),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(out: &[Diagnostic]) -> Vec<&str> {
        out.iter().map(|d| d.code).collect()
    }

    #[test]
    fn durations_fold_into_their_seconds_keys() {
        let src = "servers:\n  a:\n    command: x\n    timeout: 1m 30s\n    probe_timeout: 500ms\n\
                   gateway:\n  session_idle: 2h\naudit:\n  rotate: 1d\n  checkpoint_secs: 5\n\
                   identity:\n  oidc:\n    issuer: https://idp.example.com\n    audience: x\n\
                   \x20   jwks_url: https://idp.example.com/jwks\n    leeway: 2m\n";
        let mut out = Vec::new();
        let c = load(FileId(0), src, &mut out).unwrap_or_else(|| panic!("{out:?}"));
        assert_eq!(c.servers["a"].timeout_secs, Some(90));
        // Rounded up to whole seconds.
        assert_eq!(c.servers["a"].probe_timeout_secs, Some(1));
        assert_eq!(c.gateway.session_idle_secs, 7200);
        let audit = c.audit.unwrap_or_default();
        assert_eq!((audit.rotate_secs, audit.checkpoint_secs), (86_400, 5));
        let oidc = c.identity.and_then(|i| i.oidc).map(|o| o.leeway_secs);
        assert_eq!(oidc, Some(120));
    }

    #[test]
    fn a_duration_given_twice_or_unreadable_is_an_error() {
        let mut out = Vec::new();
        let src = "servers:\n  a:\n    command: x\n    timeout: 1m\n    timeout_secs: 30\n";
        assert!(load(FileId(0), src, &mut out).is_none());
        assert_eq!(codes(&out), ["E0608"], "{out:?}");
        assert!(out[0].message.contains("`timeout` and `timeout_secs`"));

        let mut out = Vec::new();
        let src = "gateway:\n  session_idle: soon\n";
        assert!(load(FileId(0), src, &mut out).is_none());
        assert!(!out.is_empty());
    }

    #[test]
    fn the_state_section_takes_references_not_passwords() {
        let mut out = Vec::new();
        let src = "state:\n  redis: \"${env:MCPGATE_REDIS_URL}\"\n  replica_id: gw-1\n";
        let c = load(FileId(0), src, &mut out).unwrap_or_else(|| panic!("{out:?}"));
        let state = c.state.unwrap_or_default();
        assert_eq!(state.redis.as_deref(), Some("${env:MCPGATE_REDIS_URL}"));
        assert_eq!(state.replica_id.as_deref(), Some("gw-1"));

        let mut out = Vec::new();
        let src = "state:\n  redis: redis://:hunter2hunter2@cache:6379/0\n";
        assert!(load(FileId(0), src, &mut out).is_none());
        assert_eq!(codes(&out), ["E0604"], "{out:?}");

        let mut out = Vec::new();
        let src = "state:\n  redis: cache:6379\n  postgres: db:5432\n  replica_id: \"a b\"\n  advertise: 10.0.0.1:8080\n";
        assert!(load(FileId(0), src, &mut out).is_none());
        assert_eq!(codes(&out), ["E0609", "E0609", "E0609", "E0609"], "{out:?}");

        let mut out = Vec::new();
        let src = "state:\n  advertise: \"http://${env:POD_IP}:8080\"\n";
        let c = load(FileId(0), src, &mut out).unwrap_or_else(|| panic!("{out:?}"));
        assert_eq!(
            c.state.unwrap_or_default().advertise.as_deref(),
            Some("http://${env:POD_IP}:8080")
        );
        let mut out = Vec::new();
        let src = "state:\n  advertise: \"${env:MCPGATE_URL}\"\n";
        assert!(load(FileId(0), src, &mut out).is_some(), "{out:?}");

        // TLS to both stores, with a private CA.
        let mut out = Vec::new();
        let src = "state:\n  redis: rediss://cache:6380/0\n  postgres: \"postgres://gw@db/mcpgate?sslmode=verify-full\"\n  ca_file: /etc/mcpgate/ca.pem\n";
        let c = load(FileId(0), src, &mut out).unwrap_or_else(|| panic!("{out:?}"));
        assert_eq!(
            c.state.unwrap_or_default().ca_file.as_deref(),
            Some("/etc/mcpgate/ca.pem")
        );
        let mut out = Vec::new();
        let src = "state:\n  ca_file: \"\"\n";
        assert!(load(FileId(0), src, &mut out).is_none());
        assert_eq!(codes(&out), ["E0609"], "{out:?}");

        // How long a check may be served from memory during an outage: a duration.
        let mut out = Vec::new();
        let src = "state:\n  outage_grace: 30s\n";
        let c = load(FileId(0), src, &mut out).unwrap_or_else(|| panic!("{out:?}"));
        assert_eq!(
            c.state.unwrap_or_default().outage_grace.as_deref(),
            Some("30s")
        );
        let mut out = Vec::new();
        let src = "state:\n  outage_grace: a while\n";
        assert!(load(FileId(0), src, &mut out).is_none());
        assert_eq!(codes(&out), ["E0609"], "{out:?}");

        let mut out = Vec::new();
        let src = "state:\n  postgres: postgres://gw:s3cretpass@db/mcpgate\n";
        assert!(load(FileId(0), src, &mut out).is_none());
        assert_eq!(codes(&out), ["E0604"], "{out:?}");

        // A store the gateway does not have is an error, never ignored.
        let mut out = Vec::new();
        let src = "state:\n  mysql: x\n";
        assert!(load(FileId(0), src, &mut out).is_none());
        assert!(!out.is_empty());
        // A password-less URL is accepted as written.
        let mut out = Vec::new();
        let src = "state:\n  redis: redis://cache:6379/2\n";
        assert!(load(FileId(0), src, &mut out).is_some(), "{out:?}");
    }
}
