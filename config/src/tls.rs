//! TLS in `canaryd.toml`: the `[proxy.tls]` section (listeners that terminate TLS, their
//! certificates, protocols, ALPN), the `[proxy] https_redirect` keys of the plain listeners,
//! and the `ca_file` of a pool whose servers are `https://`.
//!
//! Only what can be checked without a TLS library lives here: addresses parse, files are
//! readable and look like PEM. Parsing the certificates and matching each key to its
//! certificate is the proxy crate's (`canaryd_proxy::check_tls`), which reports with the same
//! dotted keys so the loader can locate them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::problem::Invalid;

/// `[proxy.tls]`: listeners that terminate TLS and the certificates they serve.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `"ip:port"` addresses (nginx `listen 443 ssl`).
    pub listen: Vec<String>,
    /// PEM chain + key pairs; the one whose names match the client's SNI is served, the first
    /// is the default (no SNI, or no name matches). Files are read at start and on SIGHUP.
    pub certificates: Vec<CertificateConfig>,
    /// Protocol versions offered: `"TLSv1.2"`, `"TLSv1.3"` (nginx `ssl_protocols`).
    #[serde(default = "default_protocols")]
    pub protocols: Vec<String>,
    /// Offer HTTP/2 through ALPN (nginx `http2 on` / `listen … http2`).
    #[serde(default = "default_true")]
    pub http2: bool,
}

/// `{ cert = "fullchain.pem", key = "privkey.pem" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM: the certificate first, then its intermediates (Let's Encrypt's `fullchain.pem`).
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
}

/// The protocol versions canaryd can offer.
pub const TLS_PROTOCOLS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];

/// `https_redirect_except` when not set: ACME http-01 challenges stay on plain HTTP.
pub fn default_redirect_except() -> Vec<String> {
    vec!["/.well-known/acme-challenge/".to_string()]
}

fn default_protocols() -> Vec<String> {
    TLS_PROTOCOLS.iter().map(|p| p.to_string()).collect()
}

fn default_true() -> bool {
    true
}

/// A backend server written `https://host:port`: its `host:port` and whether it speaks TLS.
pub fn server_target(addr: &str) -> (bool, &str) {
    match addr.strip_prefix("https://") {
        Some(rest) => (true, rest.trim_end_matches('/')),
        None => (false, addr.strip_prefix("http://").unwrap_or(addr)),
    }
}

// === impl TlsConfig ===

impl TlsConfig {
    /// Checks addresses, protocol names and that every file is a readable PEM file of the
    /// right kind; `plain` are the plain listeners (an address is one or the other).
    pub fn validate(&self, plain: &[String], out: &mut Vec<Invalid>) {
        let mut bad = |key: String, message: String| out.push(Invalid { key, message });
        if self.listen.is_empty() {
            bad(
                "proxy.tls.listen".into(),
                "expected at least one \"ip:port\" address like \"0.0.0.0:443\"".into(),
            );
        }
        for (i, l) in self.listen.iter().enumerate() {
            if l.parse::<SocketAddr>().is_err() {
                bad(
                    format!("proxy.tls.listen[{i}]"),
                    format!("expected \"ip:port\" like \"0.0.0.0:443\", found {l:?}"),
                );
            } else if plain.contains(l) {
                bad(
                    format!("proxy.tls.listen[{i}]"),
                    format!("expected an address that is not also in proxy.listen, found {l:?}"),
                );
            }
        }
        if self.certificates.is_empty() {
            bad(
                "proxy.tls.certificates".into(),
                "expected at least one { cert = \"fullchain.pem\", key = \"privkey.pem\" }".into(),
            );
        }
        for (i, c) in self.certificates.iter().enumerate() {
            if let Err(e) = pem_file(&c.cert, "CERTIFICATE") {
                bad(format!("proxy.tls.certificates[{i}].cert"), e);
            }
            if let Err(e) = pem_file(&c.key, "PRIVATE KEY") {
                bad(format!("proxy.tls.certificates[{i}].key"), e);
            }
        }
        if self.protocols.is_empty() {
            bad(
                "proxy.tls.protocols".into(),
                "expected one or both of \"TLSv1.2\", \"TLSv1.3\"".into(),
            );
        }
        for (i, p) in self.protocols.iter().enumerate() {
            if !TLS_PROTOCOLS.contains(&p.as_str()) {
                bad(
                    format!("proxy.tls.protocols[{i}]"),
                    format!("expected \"TLSv1.2\" or \"TLSv1.3\" (older versions are not offered), found {p:?}"),
                );
            }
        }
    }
}

/// Checks that `path` can be read and holds a PEM block whose label ends with `label`.
pub fn pem_file(path: &Path, label: &str) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&text);
    let found = text.lines().any(|l| {
        l.strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
            .is_some_and(|l| l.ends_with(label))
    });
    if found {
        Ok(())
    } else {
        Err(format!(
            "expected a PEM file with a \"{label}\" block, found none in {}",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests;
