//! TLS termination for the `[proxy.tls]` listeners: one rustls server configuration shared by
//! every worker — TLS 1.2 and 1.3 only (rustls offers nothing older), the aws-lc-rs provider's
//! cipher suites (AEAD with ECDHE only: AES-GCM and ChaCha20-Poly1305), ALPN `h2` and
//! `http/1.1`, session resumption by rotating tickets and a session-id cache — and the SNI
//! resolver whose certificates a reload swaps (`certs.rs`).
//!
//! The handshake runs on the worker that accepted the connection, inside its task, under
//! `client_header_timeout`; the request loop then reads and writes the decrypted stream.

use std::sync::Arc;

use canaryd_config::{CertificateConfig, TlsConfig};
use pingora_core::protocols::Stream;
use rustls::crypto::CryptoProvider;
use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;

use super::certs::{CertError, CertSet, SniResolver};
use super::stream::TlsStream;

/// Sessions remembered for resumption by session id (TLS 1.2 clients without tickets).
const SESSION_CACHE: usize = 20_000;

/// Why TLS termination cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Certificates(Vec<CertError>),
    #[error("proxy.tls: {0}")]
    Rustls(#[from] rustls::Error),
}

/// What every TLS listener of every worker shares.
pub struct Termination {
    acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<SniResolver>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for Termination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Termination")
            .field("resolver", &self.resolver)
            .finish_non_exhaustive()
    }
}

// === impl Termination ===

impl Termination {
    /// Loads the certificates and builds the server configuration.
    pub fn new(cfg: &TlsConfig) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let set = CertSet::load(&cfg.certificates, &provider).map_err(TlsError::Certificates)?;
        let resolver = Arc::new(SniResolver::new(set));
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
            ("TLSv1.2", &rustls::version::TLS12),
            ("TLSv1.3", &rustls::version::TLS13),
        ]
        .into_iter()
        .filter(|(name, _)| cfg.protocols.iter().any(|p| p == name))
        .map(|(_, v)| v)
        .collect();
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        server.alpn_protocols = if cfg.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        // Resumption: tickets (keys rotated every 6 h, kept in memory only) and a session-id
        // cache for clients without ticket support.
        server.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
        server.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        Ok(Self {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            resolver,
            provider,
        })
    }

    /// Reads `certificates` again (a reload), changing nothing yet.
    pub fn load(&self, certificates: &[CertificateConfig]) -> Result<CertSet, Vec<CertError>> {
        CertSet::load(certificates, &self.provider)
    }

    /// Serves `set` to new handshakes; connections already up keep what they were given.
    pub fn replace(&self, set: CertSet) {
        tracing::info!(names = ?set.names(), "TLS certificates in force");
        self.resolver.replace(set);
    }

    /// The TLS handshake over an accepted connection.
    pub async fn accept(&self, tcp: Stream) -> std::io::Result<TlsStream> {
        let tls = self.acceptor.accept(tcp).await?;
        Ok(TlsStream(tokio_rustls::TlsStream::Server(tls)))
    }
}

/// Checks `[proxy.tls]` certificates as a start or a reload would load them: every file read,
/// parsed, and each key matched to its certificate.
pub fn check_tls(cfg: &TlsConfig) -> Vec<CertError> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertSet::load(&cfg.certificates, &provider)
        .err()
        .unwrap_or_default()
}
