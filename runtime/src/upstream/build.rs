//! An [`Upstream`] from reviewed config: the transport it names, its timeouts and era, and
//! its credentials resolved from `${secret:..}`/`${env:..}` references.

use super::{StdioProcesses, Upstream, UpstreamTransport, era, http, sse_legacy, stdio};
use crate::http_client as client;
use crate::vault::references::{self as secrets, SecretResolver};
use mcpgate_compiler::config::{GatewayConfig, Protocol, ServerConfig, Transport};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Per-request timeout when the config names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

impl Upstream {
    /// Builds the upstream from reviewed config. Header values with `${secret:..}`/`${env:..}`
    /// references are resolved here (`secrets`); the error names the missing reference only.
    /// Stdio processes count against the gateway-wide cap ([`StdioProcesses::global`]).
    ///
    /// # Errors
    /// Config that cannot work: neither or both of `url` and `command`, a bad URL or header,
    /// an unknown reference.
    pub fn from_config(
        name: &str,
        config: &ServerConfig,
        gateway: &GatewayConfig,
        secrets: &dyn SecretResolver,
    ) -> Result<Upstream, String> {
        let processes = StdioProcesses::global(gateway.max_stdio_processes);
        Upstream::from_config_with(name, config, gateway, secrets, &processes)
    }

    /// Like [`Upstream::from_config`], with stdio processes counted against `processes`.
    ///
    /// # Errors
    /// As [`Upstream::from_config`].
    pub fn from_config_with(
        name: &str,
        config: &ServerConfig,
        gateway: &GatewayConfig,
        secrets: &dyn SecretResolver,
        processes: &StdioProcesses,
    ) -> Result<Upstream, String> {
        let timeout = match config.timeout_secs {
            Some(0) => {
                return Err(format!(
                    "server `{name}`: `timeout_secs` must be at least 1"
                ));
            }
            Some(s) => Duration::from_secs(s),
            None => DEFAULT_TIMEOUT,
        };
        let protocol = config.protocol.unwrap_or_default();
        if protocol == Protocol::Stateless20260728 && config.transport == Some(Transport::Sse) {
            return Err(format!(
                "server `{name}`: `transport: sse` cannot speak protocol `2026-07-28`"
            ));
        }
        let probe_timeout = match config.probe_timeout_secs {
            Some(0) => {
                return Err(format!(
                    "server `{name}`: `probe_timeout_secs` must be at least 1"
                ));
            }
            Some(s) => Duration::from_secs(s),
            None if config.command.is_some() => era::PROBE_TIMEOUT_STDIO,
            None => era::PROBE_TIMEOUT,
        };
        let idle = Duration::from_secs(gateway.session_idle_secs.max(1));
        let transport = match (&config.url, &config.command) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "server `{name}` has both `url` and `command`; give one"
                ));
            }
            (None, None) => {
                return Err(format!("server `{name}` needs a `url` or a `command`"));
            }
            (Some(url), None) => {
                let uri = client::parse_url(url).map_err(|e| format!("server `{name}`: {e}"))?;
                let headers = resolve_headers(config, secrets)
                    .map_err(|e| format!("server `{name}`: {e}"))?;
                let client =
                    client::build_client_trusting(config.ca_file.as_deref().map(Path::new))
                        .map_err(|e| format!("server `{name}`: {e}"))?;
                match config.transport.unwrap_or(Transport::StreamableHttp) {
                    Transport::StreamableHttp => UpstreamTransport::Http(Arc::new(
                        http::HttpUpstream::new(name, uri, headers, timeout, client),
                    )),
                    Transport::Sse => UpstreamTransport::Sse(sse_legacy::LegacyUpstream::new(
                        name, uri, headers, timeout, idle, client,
                    )),
                }
            }
            (None, Some(command)) => {
                if config.transport.is_some()
                    || !config.headers.is_empty()
                    || config.ca_file.is_some()
                {
                    return Err(format!(
                        "server `{name}`: `transport`, `headers` and `ca_file` apply to `url` servers only"
                    ));
                }
                if command.trim().is_empty() {
                    return Err(format!("server `{name}`: `command` is empty"));
                }
                let mut env = Vec::with_capacity(config.env.len());
                for (key, value) in &config.env {
                    let v = secrets::resolve_references(value, secrets)
                        .map_err(|e| format!("server `{name}`: env `{key}`: {e}"))?;
                    env.push((key.clone(), v.value));
                }
                UpstreamTransport::Stdio(stdio::StdioUpstream::new(
                    name,
                    command.clone(),
                    config.args.clone(),
                    env,
                    config.cwd.as_ref().map(PathBuf::from),
                    timeout,
                    idle,
                    processes.clone(),
                ))
            }
        };
        let era = Arc::new(era::EraCache::default());
        if protocol == Protocol::Legacy {
            era.set(era::Era::Legacy);
        }
        Ok(Upstream {
            name: name.to_owned(),
            timeout,
            transport,
            era,
            protocol,
            probe_timeout,
        })
    }
}

fn resolve_headers(
    config: &ServerConfig,
    secrets: &dyn SecretResolver,
) -> Result<client::ConfiguredHeaders, String> {
    let mut headers = client::ConfiguredHeaders::default();
    for (name, value) in &config.headers {
        let resolved = secrets::resolve_references(value, secrets)
            .map_err(|e| format!("header `{name}`: {e}"))?;
        let (n, v) = client::header(name, &resolved.value, resolved.sensitive)?;
        headers.secrets.extend(resolved.substituted);
        headers.map.append(n, v);
    }
    Ok(headers)
}

#[cfg(test)]
mod secret_tests {
    use super::SecretResolver;

    #[test]
    fn debug_output_never_shows_resolved_credentials() {
        use mcpgate_compiler::config::{GatewayConfig, ServerConfig};
        struct Secret;
        impl SecretResolver for Secret {
            fn resolve(&self, _kind: &str, _name: &str) -> Option<String> {
                Some("hunter2-credential".into())
            }
        }
        let http = ServerConfig {
            url: Some("https://user:pw@example.com/mcp?token=abc".into()),
            headers: [("Authorization".into(), "Bearer ${secret:gh}".into())].into(),
            ..ServerConfig::default()
        };
        let stdio = ServerConfig {
            command: Some("server".into()),
            env: [("API_KEY".into(), "${secret:gh}".into())].into(),
            ..ServerConfig::default()
        };
        let gateway = GatewayConfig::default();
        let processes = super::StdioProcesses::new(1);
        for config in [http, stdio] {
            let up = super::Upstream::from_config_with("s", &config, &gateway, &Secret, &processes)
                .unwrap();
            let shown = format!("{up:?} {config:?}");
            for leak in ["hunter2", "Bearer", "pw@", "token=abc"] {
                assert!(!shown.contains(leak), "`{leak}` in {shown}");
            }
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }
}
