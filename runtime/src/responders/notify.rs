//! Notifications: a responder's firing sent to a named webhook as a JSON `POST`, signed
//! like the approvals webhook (`X-Mcpgate-Signature: sha256=HEX`, HMAC-SHA256 of the body).
//! The body is mcpgate's event, a Slack-compatible `{"text": ...}`, or a PagerDuty Events
//! API v2 trigger. Delivery runs in the background and is retried a few times.

use super::Fired;
use crate::http_client::{self as client, HttpClient};
use crate::vault::references::{SecretResolver, resolve_references};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::Full;
use mcpgate_compiler::responders::{NotifyFormat, NotifyTarget};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// Delivery attempts per notification.
pub const ATTEMPTS: u32 = 4;
const FIRST_RETRY: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(10);

/// The event header of every notification.
pub const EVENT: &str = "responder.fired";

/// The body a target gets for `fired`. `routing_key` is PagerDuty's resolved key.
pub fn body(format: NotifyFormat, fired: &Fired, routing_key: Option<&str>) -> Value {
    let event = fired.to_json();
    match format {
        NotifyFormat::Json => {
            let mut e = event;
            if let Some(m) = e.as_object_mut() {
                m.insert("event".into(), Value::String(EVENT.into()));
            }
            e
        }
        NotifyFormat::Slack => json!({ "text": fired.summary() }),
        NotifyFormat::Pagerduty => json!({
            "routing_key": routing_key.unwrap_or_default(),
            "event_action": "trigger",
            // One open incident per responder and subject.
            "dedup_key": format!("mcpgate/{}/{}", fired.responder, fired.subject()),
            "payload": {
                "summary": fired.summary(),
                "source": "mcpgate",
                "severity": "warning",
                "component": fired.tool.clone().unwrap_or_default(),
                "class": "responder",
                "custom_details": event,
            },
        }),
    }
}

/// A resolved target, ready to send.
struct Ready {
    url: Uri,
    secret: Option<Vec<u8>>,
    body: Bytes,
}

/// Resolves the target's references (the vault of `state`, else the environment) and
/// builds the body.
fn prepare(
    target: &NotifyTarget,
    fired: &Fired,
    secrets: &dyn SecretResolver,
) -> Result<Ready, String> {
    let url = resolve_references(&target.url, secrets).map_err(|e| format!("url: {e}"))?;
    // A resolved URL may carry a credential (a Slack webhook's path): never in a message.
    let url = client::parse_resolved_url(&url.value, url.sensitive)?;
    let secret = match &target.secret {
        Some(s) => Some(
            resolve_references(s, secrets)
                .map_err(|e| format!("secret: {e}"))?
                .value
                .into_bytes(),
        ),
        None => None,
    };
    let routing_key = match &target.routing_key {
        Some(k) => Some(
            resolve_references(k, secrets)
                .map_err(|e| format!("routing_key: {e}"))?
                .value,
        ),
        None => None,
    };
    let body = body(target.format, fired, routing_key.as_deref());
    Ok(Ready {
        url,
        secret,
        body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
    })
}

/// Sends notifications; secrets are read from the state dir's vault at each delivery, so
/// the vault is not kept open.
#[derive(Debug, Clone)]
pub struct Notifier {
    state: Option<PathBuf>,
    client: Option<HttpClient>,
}

impl Notifier {
    /// A notifier reading secrets from the vault of `state` (else the environment only).
    pub fn new(state: Option<PathBuf>) -> Notifier {
        let client = match client::build_client() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "cannot build the responders' HTTP client; notifications are off");
                None
            }
        };
        Notifier { state, client }
    }

    /// Sends `fired` to `target` (named `name`) in the background.
    pub fn send(&self, name: &str, target: &NotifyTarget, fired: &Fired) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let (name, target, fired, state) = (
            name.to_owned(),
            target.clone(),
            fired.clone(),
            self.state.clone(),
        );
        tokio::spawn(async move {
            let prepared = tokio::task::spawn_blocking(move || {
                let vault = state
                    .as_deref()
                    .and_then(|s| crate::vault::VaultSecrets::open(s).ok());
                match &vault {
                    Some(v) => prepare(&target, &fired, v),
                    None => prepare(&target, &fired, &crate::vault::references::EnvSecrets),
                }
            })
            .await;
            match prepared {
                Ok(Ok(ready)) => deliver(&client, &name, ready).await,
                Ok(Err(e)) => {
                    tracing::error!(webhook = %name, error = %e, "cannot notify the responders' webhook");
                }
                Err(e) => tracing::error!(webhook = %name, error = %e, "notification task failed"),
            }
        });
    }
}

fn request(r: &Ready) -> Option<Request<Full<Bytes>>> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(r.url.clone())
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header("x-mcpgate-event", EVENT)
        .header("user-agent", concat!("mcpgate/", env!("CARGO_PKG_VERSION")));
    if let Some(secret) = &r.secret {
        req = req.header(
            "x-mcpgate-signature",
            crate::signature::sign(secret, &r.body),
        );
    }
    req.body(Full::new(r.body.clone())).ok()
}

async fn deliver(client: &HttpClient, name: &str, ready: Ready) {
    let mut wait = FIRST_RETRY;
    for attempt in 1..=ATTEMPTS {
        let Some(req) = request(&ready) else {
            tracing::warn!(webhook = %name, "cannot build the notification request");
            return;
        };
        let outcome = match client::send(client, req, TIMEOUT).await {
            Ok(resp) if resp.status().is_success() => Ok(()),
            Ok(resp) => Err(format!("answered {}", resp.status())),
            Err(e) => Err(e.to_string()),
        };
        match outcome {
            Ok(()) => {
                tracing::info!(webhook = %name, attempt, "responder notification delivered");
                return;
            }
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(webhook = %name, attempt, error = %e, "responder notification failed; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(webhook = %name, attempts = ATTEMPTS, error = %e, "responder notification gave up");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired() -> Fired {
        Fired {
            responder: "too-many-denials".into(),
            source: "responders.yaml:2:5".into(),
            trigger: "5 denials within 1m by principal".into(),
            principal: "bob@example.com".into(),
            session: "s1".into(),
            delegation: None,
            tool: Some("fx.delete_item".into()),
            actions: vec!["paused principal `bob@example.com` for 15m".into()],
            time: "2026-01-01T00:00:00.000000Z".into(),
        }
    }

    #[test]
    fn bodies_by_format() {
        let f = fired();
        let j = body(NotifyFormat::Json, &f, None);
        assert_eq!(j["event"], EVENT);
        assert_eq!(j["responder"], "too-many-denials");
        assert_eq!(j["principal"], "bob@example.com");
        let s = body(NotifyFormat::Slack, &f, None);
        let text = s["text"].as_str().unwrap();
        assert!(text.contains("too-many-denials") && text.contains("bob@example.com"));
        assert_eq!(s.as_object().unwrap().len(), 1);
        let p = body(NotifyFormat::Pagerduty, &f, Some("pd-key"));
        assert_eq!(p["routing_key"], "pd-key");
        assert_eq!(p["event_action"], "trigger");
        assert_eq!(p["payload"]["source"], "mcpgate");
        assert_eq!(p["payload"]["severity"], "warning");
        assert!(
            p["payload"]["summary"]
                .as_str()
                .unwrap()
                .contains("5 denials")
        );
        assert_eq!(
            p["dedup_key"],
            "mcpgate/too-many-denials/principal:bob@example.com"
        );
    }

    #[test]
    fn the_signature_is_the_hmac_of_the_body() {
        let target = NotifyTarget {
            url: "http://127.0.0.1:9/hook".into(),
            secret: Some("${env:MCPGATE_TEST_RESPONDER_HOOK_UNSET_3f1}".into()),
            format: NotifyFormat::Json,
            routing_key: None,
        };
        // An unknown reference is an error naming it, never a silent unsigned send.
        let err = prepare(&target, &fired(), &crate::vault::references::EnvSecrets)
            .err()
            .unwrap();
        assert!(
            err.contains("MCPGATE_TEST_RESPONDER_HOOK_UNSET_3f1"),
            "{err}"
        );
        let target = NotifyTarget {
            secret: None,
            ..target
        };
        let ready = prepare(&target, &fired(), &crate::vault::references::EnvSecrets).unwrap();
        assert_eq!(ready.url.port_u16(), Some(9));
        let req = request(&Ready {
            secret: Some(b"k".to_vec()),
            ..ready
        })
        .unwrap();
        let sig = req.headers()["x-mcpgate-signature"]
            .to_str()
            .unwrap()
            .to_owned();
        let body = req.body().clone();
        let bytes = futures_body(body);
        assert!(crate::signature::verify_signature(b"k", &sig, &bytes));
    }

    struct Fixed;

    impl SecretResolver for Fixed {
        fn resolve(&self, _kind: &str, _name: &str) -> Option<String> {
            Some("hooks example com/T0/B0/secret-path-123".into())
        }
    }

    #[test]
    fn a_bad_resolved_url_is_reported_without_its_value() {
        let target = NotifyTarget {
            url: "https://${secret:slack-path}".into(),
            secret: None,
            format: NotifyFormat::Slack,
            routing_key: None,
        };
        let err = prepare(&target, &fired(), &Fixed).err().unwrap();
        assert!(!err.contains("secret-path-123"), "{err}");
        assert!(err.contains("url"), "{err}");
    }

    fn futures_body(b: Full<Bytes>) -> Vec<u8> {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async { b.collect().await.unwrap().to_bytes().to_vec() })
    }
}
