//! `server` blocks: their listeners (as canaryd `"ip:port"` addresses, plain or TLS), their own
//! settings and their locations, with findings kept per block until the front is known.

use super::args::invalid;
use super::{Level, ServerBlock, Sink, Src, Tx, Val, Wide};
use crate::catalog;
use crate::parser::Directive;
use crate::ImportError;

impl Tx<'_> {
    pub(super) fn server(&mut self, d: &Directive, block: &[Directive]) -> Result<(), ImportError> {
        let outer = std::mem::take(&mut self.sink);
        let r = self.server_body(d, block);
        let sink = std::mem::replace(&mut self.sink, outer);
        let mut srv = r?;
        srv.sink = sink;
        self.servers.push(srv);
        Ok(())
    }

    fn server_body(
        &mut self,
        d: &Directive,
        block: &[Directive],
    ) -> Result<ServerBlock, ImportError> {
        let mut srv = ServerBlock {
            src: Src::of(d),
            listens: Vec::new(),
            tls_listens: Vec::new(),
            listen_http2: None,
            redirect: None,
            own: Level::default(),
            wide: Wide::default(),
            locs: Vec::new(),
            sink: Sink::default(),
            names: Vec::new(),
            catch_all: false,
        };
        let mut locations = Vec::new();
        for c in block {
            match (c.name(), &c.block) {
                ("listen", None) => self.listen(c, &mut srv)?,
                ("server_name", None) => self.server_name(c, &mut srv),
                ("return", None) if super::tls::is_https_redirect(c) => {
                    srv.redirect = Some(Src::of(c));
                }
                ("location", Some(_)) => locations.push(c),
                _ => self.setting(c, &mut srv.own, Some(&mut srv.wide))?,
            }
        }
        for c in locations {
            self.location(c, None, &mut srv.locs)?;
        }
        Ok(srv)
    }

    /// `server_name`: exact names and `*.suffix` (`.suffix` is both) become `hosts`; `_` and
    /// `""` make the server a catch-all; regular expressions and other wildcards are
    /// untranslated.
    fn server_name(&mut self, d: &Directive, srv: &mut ServerBlock) {
        let mut left = Vec::new();
        for p in d.args() {
            let name = p.value.to_ascii_lowercase();
            match name.as_str() {
                "_" | "" => srv.catch_all = true,
                n if n.starts_with('~') => left.push(format!("`{n}` (a regular expression)")),
                n if n.contains('$') => left.push(format!("`{n}` (a variable)")),
                n if n.starts_with('.') => {
                    srv.names.push(n[1..].to_string());
                    srv.names.push(format!("*{n}"));
                }
                n if n.starts_with("*.") && !n[2..].contains('*') => srv.names.push(n.into()),
                n if n.contains('*') => {
                    left.push(format!("`{n}` (canaryd's wildcard is a leading `*.` only)"))
                }
                n => srv.names.push(n.into()),
            }
        }
        if left.is_empty() {
            self.handled(
                d,
                "translated as `hosts` on the routes of this server (none for nginx's default server, which answers any Host)",
            );
        } else {
            self.untranslated(
                d,
                format!(
                    "canaryd's `hosts` match exact names and `*.suffix` only, not {}; the other names are translated",
                    left.join(", ")
                ),
            );
        }
    }

    fn listen(&mut self, d: &Directive, srv: &mut ServerBlock) -> Result<(), ImportError> {
        let Some(raw) = d.arg(0) else {
            return Err(invalid(d, "`listen` expects an address or a port"));
        };
        let ssl = d.args()[1..].iter().any(|p| p.value == "ssl");
        for p in &d.args()[1..] {
            match p.value.as_str() {
                "default_server" | "default" => srv.catch_all = true,
                "ssl" => {}
                "quic" => {
                    self.untranslated(d, catalog::QUIC);
                    return Ok(());
                }
                "proxy_protocol" => {
                    self.untranslated(
                        d,
                        "canaryd does not read the PROXY protocol; this listener is left out",
                    );
                    return Ok(());
                }
                "http2" if ssl => srv.listen_http2 = Some(Src::of(d)),
                "http2" => self.handled(
                    d,
                    "canaryd serves prior-knowledge HTTP/2 (h2c) on every plain listener",
                ),
                other => self.untranslated(
                    d,
                    format!("parameter `{other}`: canaryd sets no listener socket options; the address is translated"),
                ),
            }
        }
        let addr = if raw.bytes().all(|b| b.is_ascii_digit()) {
            Some(format!("0.0.0.0:{raw}"))
        } else if let Some(port) = raw.strip_prefix("*:") {
            Some(format!("0.0.0.0:{port}"))
        } else if let Some(port) = raw.strip_prefix("localhost:") {
            Some(format!("127.0.0.1:{port}"))
        } else if raw.parse::<std::net::SocketAddr>().is_ok() {
            Some(raw.to_string())
        } else if raw.parse::<std::net::Ipv4Addr>().is_ok()
            || (raw.starts_with('[') && raw.ends_with(']'))
        {
            Some(format!("{raw}:{}", if ssl { 443 } else { 80 }))
        } else {
            None
        };
        let out = if ssl {
            &mut srv.tls_listens
        } else {
            &mut srv.listens
        };
        match addr.filter(|a| a.parse::<std::net::SocketAddr>().is_ok()) {
            Some(value) => out.push(Val {
                value,
                src: Src::of(d),
            }),
            None => self.untranslated(
                d,
                "canaryd listens on \"ip:port\" addresses only (no unix sockets or host names)",
            ),
        }
        Ok(())
    }
}
