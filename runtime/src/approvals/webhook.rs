//! Announces each pending approval to a chat or paging tool: a JSON `POST` whose body is
//! signed with HMAC-SHA256 (`X-Mcpgate-Signature: sha256=HEX`). Delivery runs in the
//! background and is retried a few times; a failure is logged and never holds up a decision.

use super::approval::Approval;
use crate::http_client::{self as client, HttpClient};
use crate::vault::references::SecretResolver;
use crate::vault::references::resolve_references;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::Full;
use mcpgate_compiler::config::WebhookConfig;
use serde_json::json;
use std::time::Duration;

/// Delivery attempts per approval.
pub const ATTEMPTS: u32 = 4;
/// Wait before the first retry; doubled each time.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait for the receiver's answer.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The configured receiver.
#[derive(Clone)]
pub struct Webhook {
    url: Uri,
    secret: Option<Vec<u8>>,
    client: HttpClient,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never shown.
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    /// Resolves the URL and the secret reference.
    ///
    /// # Errors
    /// A bad URL, or a secret reference that does not resolve (named, never shown).
    pub fn new(config: &WebhookConfig, secrets: &dyn SecretResolver) -> Result<Webhook, String> {
        let url = resolve_references(&config.url, secrets)
            .map_err(|e| format!("approvals webhook url: {e}"))?;
        // A resolved URL may carry a credential: the error repeats it only when it does not.
        let url = client::parse_resolved_url(&url.value, url.sensitive)
            .map_err(|e| format!("approvals webhook: {e}"))?;
        let secret = match &config.secret {
            Some(s) => Some(
                resolve_references(s, secrets)
                    .map_err(|e| format!("approvals webhook secret: {e}"))?
                    .value
                    .into_bytes(),
            ),
            None => None,
        };
        let client = client::build_client()?;
        Ok(Webhook {
            url,
            secret,
            client,
        })
    }

    /// Sends the announcement of `approval` in the background.
    pub fn announce(&self, approval: &Approval) {
        let body = json!({
            "event": "approval.requested",
            "approval": approval,
            "approve": format!("mcpgate approvals approve {}", approval.id),
            "deny": format!("mcpgate approvals deny {} --reason TEXT", approval.id),
            "paths": {
                "approve": format!("/approvals/{}/approve", approval.id),
                "deny": format!("/approvals/{}/deny", approval.id),
            },
        });
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let this = self.clone();
        let id = approval.id.clone();
        tokio::spawn(async move { this.deliver(&id, body).await });
    }

    fn request(&self, id: &str, body: &Bytes) -> Option<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("x-mcpgate-event", "approval.requested")
            .header("x-mcpgate-delivery", id)
            .header("user-agent", concat!("mcpgate/", env!("CARGO_PKG_VERSION")));
        if let Some(secret) = &self.secret {
            req = req.header("x-mcpgate-signature", crate::signature::sign(secret, body));
        }
        req.body(Full::new(body.clone())).ok()
    }

    async fn deliver(&self, id: &str, body: Bytes) {
        let mut wait = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            let Some(req) = self.request(id, &body) else {
                tracing::warn!(approval = %id, "cannot build the approvals webhook request");
                return;
            };
            let outcome = match client::send(&self.client, req, TIMEOUT).await {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(format!("answered {}", resp.status())),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => {
                    tracing::info!(approval = %id, attempt, "approvals webhook delivered");
                    return;
                }
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(approval = %id, attempt, error = %e, "approvals webhook failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(e) => {
                    tracing::error!(approval = %id, attempts = ATTEMPTS, error = %e, "approvals webhook gave up");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl SecretResolver for Fixed {
        fn resolve(&self, _kind: &str, name: &str) -> Option<String> {
            (name == "hook").then(|| "hooks.example/T0/B0/s3cr3t".to_owned())
        }
    }

    #[test]
    fn a_bad_url_is_repeated_in_the_error_only_when_no_secret_went_into_it() {
        let config = |url: &str| WebhookConfig {
            url: url.into(),
            secret: None,
        };
        let e = Webhook::new(&config("${secret:hook}"), &Fixed).unwrap_err();
        assert!(e.starts_with("approvals webhook: "), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        let e = Webhook::new(&config("ftp://plain.example/x"), &Fixed).unwrap_err();
        assert!(e.contains("ftp://plain.example/x"), "{e}");
    }
}
