//! `server` blocks: their listeners (as canaryd `"ip:port"` addresses), their own settings and
//! their locations, with findings kept per block until the front is known.

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
            own: Level::default(),
            wide: Wide::default(),
            locs: Vec::new(),
            sink: Sink::default(),
        };
        let mut locations = Vec::new();
        for c in block {
            match (c.name(), &c.block) {
                ("listen", None) => self.listen(c, &mut srv.listens)?,
                ("location", Some(_)) => locations.push(c),
                _ => self.setting(c, &mut srv.own, Some(&mut srv.wide))?,
            }
        }
        for c in locations {
            self.location(c, None, &mut srv.locs)?;
        }
        Ok(srv)
    }

    fn listen(&mut self, d: &Directive, out: &mut Vec<Val<String>>) -> Result<(), ImportError> {
        let Some(raw) = d.arg(0) else {
            return Err(invalid(d, "`listen` expects an address or a port"));
        };
        for p in &d.args()[1..] {
            match p.value.as_str() {
                "default_server" | "default" => {}
                "ssl" | "quic" => {
                    self.untranslated(d, catalog::TLS);
                    return Ok(());
                }
                "proxy_protocol" => {
                    self.untranslated(
                        d,
                        "canaryd does not read the PROXY protocol; this listener is left out",
                    );
                    return Ok(());
                }
                "http2" | "spdy" => self.untranslated(
                    d,
                    "canaryd serves clients HTTP/1.1 (`http2` is dropped; the address is translated)",
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
            Some(format!("{raw}:80"))
        } else {
            None
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
