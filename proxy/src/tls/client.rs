//! TLS to upstream servers written `https://host:port`: the server name is sent as SNI and the
//! certificate verified against the system's roots, or only against the pool's `ca_file` when
//! it is set. ALPN offers `http/1.1` (upstreams speak HTTP/1.1). One client configuration per
//! pool, so its session cache resumes sessions on new connections to the same server.

use std::path::Path;
use std::sync::Arc;

use pingora_core::protocols::Stream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};

use super::stream::TlsStream;

/// How to speak TLS to one upstream server.
pub struct UpstreamTls {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The client configuration of a pool with `https://` servers.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err(format!(
                    "no usable CA certificate in the system's trust store ({} error(s)); set ca_file",
                    native.errors.len()
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

// === impl UpstreamTls ===

impl UpstreamTls {
    /// For the server `host:port` (its host is the SNI name and the name verified).
    pub fn new(config: Arc<ClientConfig>, host_port: &str) -> Result<Self, String> {
        let host = host_port
            .rsplit_once(':')
            .map_or(host_port, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host:?} is not a server name: {e}"))?;
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(config),
            name,
        })
    }

    /// The handshake over a connected stream, as a pingora-core stream.
    pub async fn connect(&self, tcp: Stream) -> std::io::Result<Stream> {
        let tls = self.connector.connect(self.name.clone(), tcp).await?;
        Ok(Box::new(TlsStream(tokio_rustls::TlsStream::Client(tls))))
    }

    /// The handshake over any stream (the health checks' plain tokio socket).
    pub async fn wrap<IO: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: IO,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<IO>> {
        self.connector.connect(self.name.clone(), io).await
    }
}
