//! The certificates a TLS listener serves, and the SNI choice between them.
//!
//! Each `[proxy.tls] certificates` entry is read (PEM chain + key), its key matched against
//! its certificate, and its DNS names (subject alternative names, `*.example.com` included)
//! taken for SNI. A handshake gets the certificate whose name matches the client's SNI — an
//! exact name first, then a wildcard — and the first certificate otherwise (no SNI, an IP, an
//! unknown name), as nginx's default server does.
//!
//! The set sits behind an `ArcSwap` in the resolver the rustls server configuration holds, so
//! SIGHUP swaps certificates without touching the listeners, the session ticket keys or any
//! connection: handshakes after the swap get the new set, connections already up keep theirs.

use std::sync::Arc;

use arc_swap::ArcSwap;
use canaryd_config::CertificateConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate that cannot be served: which entry, which file, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {file}: {reason}")]
pub struct CertError {
    /// The dotted key of the entry's file, e.g. `proxy.tls.certificates[1].key`.
    pub key: String,
    pub file: String,
    pub reason: String,
}

/// One loaded certificate and the names it answers for (lowercase; `*.` kept for wildcards).
#[derive(Debug)]
struct Entry {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
}

/// Every certificate of the listeners; the first is the default.
#[derive(Debug)]
pub struct CertSet {
    entries: Vec<Entry>,
}

/// rustls' view of the certificates: the current [`CertSet`], swapped whole on reload.
#[derive(Debug)]
pub struct SniResolver {
    set: ArcSwap<CertSet>,
}

// === impl CertSet ===

impl CertSet {
    /// Reads and checks every entry; returns every entry's problem, not just the first.
    pub fn load(
        certificates: &[CertificateConfig],
        provider: &CryptoProvider,
    ) -> Result<Self, Vec<CertError>> {
        let mut entries = Vec::with_capacity(certificates.len());
        let mut errors = Vec::new();
        for (i, c) in certificates.iter().enumerate() {
            match load_one(i, c, provider) {
                Ok(e) => entries.push(e),
                Err(e) => errors.push(e),
            }
        }
        if entries.is_empty() && errors.is_empty() {
            errors.push(CertError {
                key: "proxy.tls.certificates".into(),
                file: String::new(),
                reason: "expected at least one certificate".into(),
            });
        }
        if errors.is_empty() {
            Ok(Self { entries })
        } else {
            Err(errors)
        }
    }

    /// The certificate for `sni`: an exact name, then a wildcard one label up, then the first.
    fn pick(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        if let Some(sni) = sni {
            let exact = self
                .entries
                .iter()
                .find(|e| e.names.iter().any(|n| n.eq_ignore_ascii_case(sni)));
            if let Some(e) = exact {
                return Some(&e.key);
            }
            if let Some((_, parent)) = sni.split_once('.') {
                let wildcard = self.entries.iter().find(|e| {
                    e.names.iter().any(|n| {
                        n.strip_prefix("*.")
                            .is_some_and(|w| w.eq_ignore_ascii_case(parent))
                    })
                });
                if let Some(e) = wildcard {
                    return Some(&e.key);
                }
            }
        }
        self.entries.first().map(|e| &e.key)
    }

    /// The names of each certificate, in configuration order (for the log).
    pub fn names(&self) -> Vec<&[String]> {
        self.entries.iter().map(|e| e.names.as_slice()).collect()
    }
}

fn load_one(
    i: usize,
    c: &CertificateConfig,
    provider: &CryptoProvider,
) -> Result<Entry, CertError> {
    let err = |part: &str, file: &std::path::Path, reason: String| CertError {
        key: format!("proxy.tls.certificates[{i}].{part}"),
        file: file.display().to_string(),
        reason,
    };
    let cert_pem = std::fs::read(&c.cert).map_err(|e| err("cert", &c.cert, e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err("cert", &c.cert, format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(err("cert", &c.cert, "no CERTIFICATE block".into()));
    };
    let names = match webpki::EndEntityCert::try_from(leaf) {
        Ok(ee) => ee
            .valid_dns_names()
            .map(|n| n.to_ascii_lowercase())
            .collect::<Vec<_>>(),
        Err(e) => {
            return Err(err(
                "cert",
                &c.cert,
                format!("unreadable certificate: {e:?}"),
            ))
        }
    };
    let key_pem = std::fs::read(&c.key).map_err(|e| err("key", &c.key, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| err("key", &c.key, format!("not a PEM private key: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| err("key", &c.key, format!("unusable private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(err(
                "key",
                &c.key,
                format!("does not match the certificate {}: {e}", c.cert.display()),
            ))
        }
    }
    Ok(Entry {
        names,
        key: Arc::new(certified),
    })
}

// === impl SniResolver ===

impl SniResolver {
    pub fn new(set: CertSet) -> Self {
        Self {
            set: ArcSwap::from_pointee(set),
        }
    }

    /// New handshakes get `set`; connections already up keep what they were given.
    pub fn replace(&self, set: CertSet) {
        self.set.store(Arc::new(set));
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.set.load().pick(hello.server_name()).cloned()
    }
}
