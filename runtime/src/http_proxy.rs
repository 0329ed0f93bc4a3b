//! Outbound proxies for the gateway's HTTP client: an `https` destination that
//! `HTTPS_PROXY` (or `ALL_PROXY`) names a proxy for, and `NO_PROXY` does not exempt, is
//! reached through an HTTP `CONNECT` tunnel; TLS then runs end to end through it, so the proxy
//! sees neither credentials nor calls. Plain `http` destinations are connected directly (a
//! proxy would need requests in absolute form).
//!
//! Bottom layer: uses only `busy_poll` (the connections it makes poll while nearly idle).

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::net::TcpStream;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A TCP connector that tunnels through the environment's proxy where it applies.
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    direct: HttpConnector,
    proxies: Arc<Matcher>,
}

impl std::fmt::Debug for ProxyConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The matcher's proxy URIs may carry credentials.
        f.write_str("ProxyConnector")
    }
}

impl ProxyConnector {
    /// Proxies from `HTTPS_PROXY`/`ALL_PROXY` and `NO_PROXY` (as curl reads them).
    pub(crate) fn from_env(direct: HttpConnector) -> ProxyConnector {
        ProxyConnector {
            direct,
            proxies: Arc::new(Matcher::from_env()),
        }
    }
}

impl Service<Uri> for ProxyConnector {
    type Response = TokioIo<crate::busy_poll::Stream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let through = (dst.scheme_str() == Some("https"))
            .then(|| self.proxies.intercept(&dst))
            .flatten();
        match through {
            Some(proxy) => {
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.direct.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move {
                    let io = tunnel.call(dst).await.map_err(BoxError::from)?;
                    Ok(upstream_stream(io))
                })
            }
            None => {
                let mut direct = self.direct.clone();
                Box::pin(async move {
                    let io = direct.call(dst).await.map_err(BoxError::from)?;
                    Ok(upstream_stream(io))
                })
            }
        }
    }
}

/// An upstream connection: its reads poll while the call waiting for them is the only one.
fn upstream_stream(io: TokioIo<TcpStream>) -> TokioIo<crate::busy_poll::Stream> {
    TokioIo::new(crate::busy_poll::Stream::new(io.into_inner(), 1))
}
