//! The TLS side of a front: `listen … ssl [http2]`, `ssl_certificate`/`ssl_certificate_key`,
//! `ssl_protocols` and `http2 on|off` → `[proxy.tls]`; and the server block whose only job is
//! `return 301 https://$host$request_uri` → `[proxy] https_redirect = true` on its listeners.
//!
//! nginx inherits these http → server like the client-connection settings ([`TlsWide`] sits
//! in [`Wide`]); certificates and keys are paired in order, as nginx pairs them.

use super::args::invalid;
use super::plan::{Setting, TlsPlan};
use super::{Loc, ServerBlock, Src, Tx, Val, Wide};
use crate::parser::Directive;
use crate::ImportError;

/// The protocol versions canaryd offers.
const PROTOCOLS: [&str; 2] = ["TLSv1.2", "TLSv1.3"];

/// TLS settings of the http or server level.
#[derive(Debug, Clone, Default)]
pub(super) struct TlsWide {
    certs: Vec<Val<String>>,
    keys: Vec<Val<String>>,
    protocols: Option<Val<Vec<String>>>,
    http2: Option<Val<bool>>,
}

impl TlsWide {
    pub(super) fn under(&self, parent: &TlsWide) -> TlsWide {
        let pick = |own: &Vec<Val<String>>, up: &Vec<Val<String>>| {
            if own.is_empty() {
                up.clone()
            } else {
                own.clone()
            }
        };
        TlsWide {
            certs: pick(&self.certs, &parent.certs),
            keys: pick(&self.keys, &parent.keys),
            protocols: self.protocols.clone().or_else(|| parent.protocols.clone()),
            http2: self.http2.clone().or_else(|| parent.http2.clone()),
        }
    }
}

/// `return 301 https://$host$request_uri` (or `$server_name`, 302/307/308): the redirect
/// canaryd's `https_redirect` answers.
pub(super) fn is_https_redirect(d: &Directive) -> bool {
    let (Some(code), Some(url)) = (d.arg(0), d.arg(1)) else {
        return false;
    };
    matches!(code, "301" | "302" | "307" | "308")
        && d.args().len() == 2
        && [
            "https://$host$request_uri",
            "https://$server_name$request_uri",
        ]
        .contains(&url)
}

impl Tx<'_> {
    /// `ssl_certificate`, `ssl_certificate_key`, `ssl_protocols`, `http2` at http or server
    /// level (`wide`); nginx allows them nowhere else.
    pub(super) fn tls_setting(
        &mut self,
        d: &Directive,
        wide: Option<&mut Wide>,
    ) -> Result<(), ImportError> {
        let Some(wide) = wide else {
            return Err(invalid(d, "not allowed in a location"));
        };
        let tls = &mut wide.tls;
        let src = Src::of(d);
        match d.name() {
            "ssl_certificate" | "ssl_certificate_key" => {
                let Some(path) = d.arg(0) else {
                    return Err(invalid(d, "expects a file"));
                };
                if path.starts_with("data:") || path.starts_with("engine:") || path.contains('$') {
                    self.untranslated(
                        d,
                        "canaryd reads certificates and keys from files named in the configuration (no `data:`, `engine:` or variables)",
                    );
                    return Ok(());
                }
                let v = Val {
                    value: path.to_string(),
                    src,
                };
                if d.name() == "ssl_certificate" {
                    tls.certs.push(v);
                } else {
                    tls.keys.push(v);
                }
            }
            "ssl_protocols" => {
                tls.protocols = Some(Val {
                    value: d.args().iter().map(|a| a.value.clone()).collect(),
                    src,
                });
            }
            _ => {
                // `http2 on|off` (nginx 1.25.1+).
                let on = match d.arg(0) {
                    Some("on") => true,
                    Some("off") => false,
                    _ => return Err(invalid(d, "`http2` expects `on` or `off`")),
                };
                tls.http2 = Some(Val { value: on, src });
            }
        }
        Ok(())
    }

    /// `[proxy.tls]` for the front's TLS listeners, with the TLS settings in force there.
    pub(super) fn tls_plan(&mut self, srv: &ServerBlock) -> Option<TlsPlan> {
        if srv.tls_listens.is_empty() {
            return None;
        }
        let wide = srv.wide.tls.under(&self.http_wide.tls);
        let mut listen: Vec<Setting<String>> = Vec::new();
        for l in &srv.tls_listens {
            if !listen.iter().any(|s| s.value == l.value) {
                listen.push(Setting {
                    value: l.value.clone(),
                    comment: l.src.cite(),
                });
            }
        }
        let mut certificates = Vec::new();
        for (i, cert) in wide.certs.iter().enumerate() {
            match wide.keys.get(i) {
                Some(key) if i == 0 => certificates.push((setting(cert), setting(key))),
                // nginx's several certificates of one server are for different key types of
                // the same names (RSA and ECDSA).
                Some(_) => self.sink.untranslated.push(cert.src.finding(
                    "canaryd chooses a certificate by name only: the server's first certificate is served (no second key type for the same names)",
                )),
                None => self.sink.untranslated.push(cert.src.finding(
                    "no `ssl_certificate_key` pairs with this certificate; nginx would refuse it",
                )),
            }
        }
        for key in wide.keys.iter().skip(wide.certs.len()) {
            self.sink.untranslated.push(
                key.src
                    .finding("no `ssl_certificate` pairs with this key; nginx would refuse it"),
            );
        }
        let protocols = wide.protocols.as_ref().and_then(|p| {
            let kept: Vec<String> = p
                .value
                .iter()
                .filter(|v| PROTOCOLS.contains(&v.as_str()))
                .cloned()
                .collect();
            let dropped: Vec<&str> = p
                .value
                .iter()
                .filter(|v| !PROTOCOLS.contains(&v.as_str()))
                .map(String::as_str)
                .collect();
            if kept.is_empty() {
                self.sink.untranslated.push(p.src.finding(
                    "canaryd offers TLSv1.2 and TLSv1.3 only; none of these is one of them",
                ));
                return None;
            }
            let mut comment = p.src.cite();
            if !dropped.is_empty() {
                comment.push_str(&format!(
                    " ({} dropped: canaryd offers TLS 1.2 and 1.3 only)",
                    dropped.join(", ")
                ));
            }
            Some(Setting {
                value: kept,
                comment,
            })
        });
        let http2 = match (&wide.http2, &srv.listen_http2) {
            (Some(v), _) => Setting {
                value: v.value,
                comment: v.src.cite(),
            },
            (None, Some(src)) => Setting {
                value: true,
                comment: src.cite(),
            },
            (None, None) => Setting {
                value: false,
                comment: "nginx default: HTTP/2 off (`http2 on` or `listen … http2` turns it on)"
                    .into(),
            },
        };
        if certificates.is_empty() {
            self.notes.push(
                "REVIEW: the TLS listeners have no certificate that could be translated; add `[proxy.tls] certificates`".into(),
            );
        }
        Some(TlsPlan {
            listen,
            certificates,
            protocols,
            http2,
        })
    }
}

impl Tx<'_> {
    /// A server block that only redirects to https: its listeners become plain canaryd
    /// listeners with `https_redirect`; what its locations do (an ACME webroot, typically) is
    /// not translated — canaryd proxies those paths (`https_redirect_except`).
    pub(super) fn redirect_server(
        &mut self,
        server: Src,
        ret: Src,
        listens: Vec<Val<String>>,
        locs: &[Loc],
    ) {
        self.sink.handled.push(ret.finding(
            "`[proxy] https_redirect = true`: canaryd's plain listeners answer `301 https://$host$request_uri`",
        ));
        for loc in locs.iter().filter(|l| l.parent.is_none()) {
            self.sink.untranslated.push(loc.src.finding(
                "in the redirecting server: canaryd proxies paths under `https_redirect_except` (default `/.well-known/acme-challenge/`) to the backends and redirects the rest; it serves no files",
            ));
        }
        if listens.is_empty() {
            self.sink
                .untranslated
                .push(server.finding("this redirecting server has no listener canaryd can take"));
        }
        self.redirect_listens.extend(listens);
    }
}

fn setting(v: &Val<String>) -> Setting<String> {
    let mut comment = v.src.cite();
    if !v.value.starts_with('/') {
        comment.push_str(
            " (REVIEW: relative to nginx's prefix; canaryd reads it from its working directory: write it absolute)",
        );
    }
    Setting {
        value: v.value.clone(),
        comment,
    }
}
