//! TLS to the fleet's stores (`rediss://`, PostgreSQL's `sslmode=require` and stronger):
//! rustls with ring, trusting what the gateway trusts for `https` upstreams (Mozilla's
//! roots and the platform's store) and the CA certificates of `state.ca_file`.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// The trusted roots, as certificates: Mozilla's, the platform's, then `ca_file`'s.
///
/// # Errors
/// When `ca_file` cannot be read or holds no usable certificate.
pub fn root_certs(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certs: Vec<CertificateDer<'static>> = webpki_root_certs::TLS_SERVER_ROOT_CERTS.to_vec();
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::debug!(target: "mcpgate::state", error = %e, "a platform root certificate was not read");
    }
    // A platform certificate rustls cannot use is skipped, as for upstreams.
    certs.extend(
        found
            .certs
            .into_iter()
            .filter(|c| RootCertStore::empty().add(c.clone()).is_ok()),
    );
    if let Some(path) = ca_file {
        let shown = path.display();
        let own: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("`state.ca_file` {shown}: {e}"))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("`state.ca_file` {shown}: {e}"))?;
        if own.is_empty() {
            return Err(format!("`state.ca_file` {shown} holds no PEM certificate"));
        }
        for c in &own {
            RootCertStore::empty()
                .add(c.clone())
                .map_err(|e| format!("`state.ca_file` {shown}: {e}"))?;
        }
        certs.extend(own);
    }
    Ok(certs)
}

/// The roots as PEM, the form the Redis client takes them in.
pub fn pem(certs: &[CertificateDer<'_>]) -> Vec<u8> {
    use base64::Engine as _;
    let mut out = String::new();
    for c in certs {
        let b64 = base64::engine::general_purpose::STANDARD.encode(c.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out.into_bytes()
}

/// What a TLS client checks of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// It chains to a trusted root; the host name is not compared (`verify-ca`).
    Chain,
    /// It chains to a trusted root and names the host connected to (`verify-full`).
    ChainAndHost,
}

/// A client configuration checking the server as `verify` says, against `certs`.
///
/// # Errors
/// When TLS cannot be set up.
pub fn client_config(
    certs: &[CertificateDer<'static>],
    verify: Verify,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    let _ = roots.add_parsable_certificates(certs.iter().cloned());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let config = match verify {
        Verify::ChainAndHost => builder.with_root_certificates(roots).with_no_client_auth(),
        Verify::Chain => {
            let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("cannot set up TLS: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(inner)))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// rustls's own verifier, with a certificate for another name accepted: the chain, the
/// validity dates and the handshake signatures are checked as usual (rustls compares the
/// name last, once the chain is verified).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Opens a TCP connection to `host:port` and completes a TLS handshake checking the
/// server's certificate against `certs` and `host`. `Ok(None)` when the server could not
/// be reached (a store may be down at start), `Ok(Some(()))` when the handshake succeeded.
///
/// # Errors
/// When the server answered and TLS failed (an untrusted certificate, no TLS).
pub fn handshake(
    host: &str,
    port: u16,
    certs: &[CertificateDer<'static>],
    timeout: std::time::Duration,
) -> Result<Option<()>, String> {
    use std::net::ToSocketAddrs;
    let config = Arc::new(client_config(certs, Verify::ChainAndHost)?);
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| format!("`{host}` is not a host name for TLS: {e}"))?;
    let Some(mut tcp) = (host, port)
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .find_map(|a| std::net::TcpStream::connect_timeout(&a, timeout).ok())
    else {
        return Ok(None);
    };
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let mut conn = rustls::ClientConnection::new(config, name)
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            return Err(
                match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(tls) => format!("TLS failed: {tls}"),
                    None => format!("TLS failed: {e}"),
                },
            );
        }
    }
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roots_are_mozillas_and_the_ca_files() {
        let base = root_certs(None).unwrap_or_default();
        assert!(base.len() >= webpki_root_certs::TLS_SERVER_ROOT_CERTS.len());
        let back: Vec<_> = CertificateDer::pem_slice_iter(&pem(&base))
            .collect::<Result<_, _>>()
            .unwrap_or_default();
        assert_eq!(back, base, "PEM round trip");

        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap_or_else(|e| panic!("{e}"));
        let e = root_certs(Some(&empty)).err().unwrap_or_default();
        assert!(
            e.contains("state.ca_file") && e.contains("no PEM certificate"),
            "{e}"
        );
        let missing = dir.path().join("missing.pem");
        let e = root_certs(Some(&missing)).err().unwrap_or_default();
        assert!(e.contains("missing.pem"), "{e}");
    }
}
