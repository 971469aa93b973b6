//! `upstream` blocks: their servers (weight, `max_fails`, `fail_timeout`, `backup`/`down`),
//! `keepalive` and its idle timeout; the one-server group a `proxy_pass http://ADDR` names;
//! and the servers of the upstreams the front uses, each address once.

use super::args::{invalid, number, one_arg, time_arg};
use super::{Member, Sink, Src, Tx, UpServer, Upstream, Val};
use crate::parser::Directive;
use crate::units;
use crate::ImportError;

impl Tx<'_> {
    pub(super) fn upstream(
        &mut self,
        d: &Directive,
        block: &[Directive],
    ) -> Result<(), ImportError> {
        let name = one_arg(d)?.to_string();
        if let Some(prev) = self.upstreams.iter().find(|u| u.name == name) {
            let first = prev.src.as_ref().map(Src::at).unwrap_or_default();
            return Err(invalid(
                d,
                format!("duplicate upstream `{name}` (first defined at {first})"),
            ));
        }
        let outer = std::mem::take(&mut self.sink);
        let mut up = Upstream {
            name,
            src: Some(Src::of(d)),
            servers: Vec::new(),
            keepalive: None,
            idle_timeout: None,
            sink: Sink::default(),
        };
        let mut result = Ok(());
        for c in block {
            let r = match (c.name(), &c.block) {
                ("server", None) => self.up_server(c).map(|s| up.servers.extend(s)),
                ("keepalive", None) => one_arg(c)
                    .and_then(|a| number(c, "number of connections", a))
                    .map(|n| {
                        up.keepalive = Some(Val {
                            value: n,
                            src: Src::of(c),
                        })
                    }),
                ("keepalive_timeout", None) => one_arg(c).and_then(|a| time_arg(c, a)).map(|ms| {
                    up.idle_timeout = Some(Val {
                        value: ms,
                        src: Src::of(c),
                    })
                }),
                ("keepalive_requests", None) => {
                    self.untranslated(
                        c,
                        "canaryd has no limit on the requests sent over one upstream connection",
                    );
                    Ok(())
                }
                _ => {
                    self.verdict(c);
                    Ok(())
                }
            };
            if r.is_err() {
                result = r;
                break;
            }
        }
        up.sink = std::mem::replace(&mut self.sink, outer);
        result?;
        self.upstreams.push(up);
        Ok(())
    }

    /// `server ADDR [weight=N] [max_fails=N] [fail_timeout=T] [backup] [down] …`.
    fn up_server(&mut self, d: &Directive) -> Result<Option<UpServer>, ImportError> {
        let Some(raw) = d.arg(0) else {
            return Err(invalid(d, "`server` expects an address"));
        };
        let Some(addr) = units::server_addr(raw) else {
            self.untranslated(
                d,
                "canaryd connects to upstream servers by \"host:port\" only (no unix sockets); this server is left out",
            );
            return Ok(None);
        };
        let mut s = UpServer {
            addr,
            weight: 1,
            max_fails: None,
            fail_timeout: None,
            src: Src::of(d),
            excluded: false,
        };
        for p in &d.args()[1..] {
            let p = p.value.as_str();
            if let Some(w) = p.strip_prefix("weight=") {
                s.weight = number(d, "weight", w)?;
                if s.weight == 0 {
                    return Err(invalid(d, "`weight` must be at least 1"));
                }
            } else if let Some(n) = p.strip_prefix("max_fails=") {
                s.max_fails = Some(number(d, "max_fails", n)?);
            } else if let Some(t) = p.strip_prefix("fail_timeout=") {
                s.fail_timeout = Some(time_arg(d, t)?);
            } else if p == "backup" {
                s.excluded = true;
                self.untranslated(
                    d,
                    "canaryd has no backup servers (when a pool has no available server, its requests go to the other pool); this server is left out",
                );
            } else if p == "down" {
                s.excluded = true;
                self.untranslated(
                    d,
                    "server marked `down`: left out of the pools; add it to `servers` when it is back",
                );
            } else {
                self.untranslated(
                    d,
                    format!("parameter `{p}`: canaryd has no such per-server setting; the rest of the line is translated"),
                );
            }
        }
        Ok(Some(s))
    }

    pub(super) fn upstream_named(&mut self, name: &str, src: &Src) -> Result<usize, ImportError> {
        if let Some(i) = self.upstreams.iter().position(|u| u.name == name) {
            return Ok(i);
        }
        let Some(addr) = units::server_addr(name) else {
            return Err(ImportError::Invalid {
                at: src.at(),
                message: format!("`{name}` is neither an upstream nor a \"host:port\" address"),
            });
        };
        if let Some(i) = self.upstreams.iter().position(|u| u.name == addr) {
            return Ok(i);
        }
        self.upstreams.push(Upstream {
            name: addr.clone(),
            src: None,
            servers: vec![UpServer {
                addr,
                weight: 1,
                max_fails: None,
                fail_timeout: None,
                src: src.clone(),
                excluded: false,
            }],
            keepalive: None,
            idle_timeout: None,
            sink: Sink::default(),
        });
        Ok(self.upstreams.len() - 1)
    }

    /// The servers of `used` (in order, without `backup`/`down`, each address once).
    pub(super) fn members(&mut self, used: &[usize]) -> Result<Vec<Member>, ImportError> {
        let mut out: Vec<Member> = Vec::new();
        for &u in used {
            for (s, server) in self.upstreams[u].servers.iter().enumerate() {
                if server.excluded || out.iter().any(|m| self.server_of(m).addr == server.addr) {
                    continue;
                }
                out.push(Member {
                    upstream: u,
                    server: s,
                });
            }
        }
        if out.is_empty() {
            let up = &self.upstreams[used[0]];
            return Err(ImportError::Invalid {
                at: up.src.as_ref().map(Src::at).unwrap_or_default(),
                message: format!("upstream `{}` has no server canaryd can use", up.name),
            });
        }
        Ok(out)
    }

    pub(super) fn server_of(&self, m: &Member) -> &UpServer {
        &self.upstreams[m.upstream].servers[m.server]
    }
}
