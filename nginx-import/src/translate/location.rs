//! `location` blocks (prefix, exact, regex, named; nested) and their `proxy_pass` targets:
//! `http://UPSTREAM[/uri]` or `http://${var}_suffix`, resolved in the second pass to an
//! upstream or a map ([`Key`]).

use super::args::{invalid, one_arg};
use super::{Host, Key, Level, Loc, LocKind, Src, Target, Tx};
use crate::parser::Directive;
use crate::ImportError;

impl Tx<'_> {
    pub(super) fn location(
        &mut self,
        d: &Directive,
        parent: Option<usize>,
        out: &mut Vec<Loc>,
    ) -> Result<(), ImportError> {
        let kind = match d.args() {
            [p] if p.value.starts_with('@') => {
                self.verdict(d);
                return Ok(());
            }
            [p] if p.value.starts_with(['=', '~']) => LocKind::Other,
            [p] => LocKind::Prefix(p.value.clone()),
            [m, p] if m.value == "^~" => LocKind::Prefix(p.value.clone()),
            [m, _] if ["=", "~", "~*"].contains(&m.value.as_str()) => LocKind::Other,
            _ => {
                return Err(invalid(
                    d,
                    "`location` expects [= | ~ | ~* | ^~] URI, or @name",
                ))
            }
        };
        let exact = match d.args() {
            [p] => p.value.strip_prefix('=').filter(|u| !u.is_empty()),
            [m, p] if m.value == "=" => Some(p.value.as_str()),
            _ => None,
        };
        let mut loc = Loc {
            src: Src::of(d),
            kind,
            exact: exact.map(str::to_string),
            own: Level::default(),
            parent,
            targets: Vec::new(),
        };
        let mut nested = Vec::new();
        for c in d.block.as_deref().unwrap_or(&[]) {
            match (c.name(), &c.block) {
                ("proxy_pass", None) => {
                    if let Some(t) = self.target(c, &loc.kind)? {
                        loc.targets.push(t);
                    }
                }
                ("location", Some(_)) => nested.push(c),
                _ => self.setting(c, &mut loc.own, None)?,
            }
        }
        let index = out.len();
        out.push(loc);
        for c in nested {
            self.location(c, Some(index), out)?;
        }
        Ok(())
    }

    /// `proxy_pass http://HOST[/URI]`; `HOST` may hold one `$var` / `${var}`.
    fn target(&mut self, d: &Directive, kind: &LocKind) -> Result<Option<Target>, ImportError> {
        let url = one_arg(d)?;
        let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(r), _) => (false, r),
            (None, Some(r)) => (true, r),
            _ => {
                self.untranslated(
                    d,
                    "canaryd can translate `proxy_pass http://UPSTREAM[/path]` or `http://${var}_suffix` with a `map`, not this form",
                );
                return Ok(None);
            }
        };
        if https {
            self.untranslated(
                d,
                "canaryd connects to upstreams over plain HTTP; the servers are translated, TLS to them is not",
            );
        }
        let (host, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        match (uri, kind) {
            (None | Some("$request_uri"), _) => {}
            (Some(u), LocKind::Prefix(p)) if u == p => self.handled(
                d,
                "the URI equals the location prefix, so the path is forwarded unchanged, as canaryd does",
            ),
            (Some(u), _) => self.untranslated(
                d,
                format!("canaryd forwards the path unchanged; nginx replaced the matched location with `{u}`. The upstream is translated"),
            ),
        }
        let host = match host.find('$') {
            None => Host::Name(host.to_string()),
            Some(i) => {
                let after = &host[i + 1..];
                let (var, suffix) = if let Some(braced) = after.strip_prefix('{') {
                    match braced.split_once('}') {
                        Some((v, s)) => (v, s),
                        None => return Err(invalid(d, "`${` without a closing `}`")),
                    }
                } else {
                    let end = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    after.split_at(end)
                };
                if var.is_empty() || suffix.contains('$') {
                    self.untranslated(
                        d,
                        "canaryd can translate one variable set by a `map` in the upstream name, not this form",
                    );
                    return Ok(None);
                }
                Host::Var {
                    var: var.to_string(),
                    prefix: host[..i].to_string(),
                    suffix: suffix.to_string(),
                }
            }
        };
        Ok(Some(Target {
            src: Src::of(d),
            host,
        }))
    }

    /// Resolves a `proxy_pass` host to an upstream (creating the one-server group of a plain
    /// address) or a map.
    pub(super) fn key(&mut self, t: &Target) -> Result<Key, ImportError> {
        match &t.host {
            Host::Name(name) => self.upstream_named(name, &t.src).map(Key::Upstream),
            Host::Var {
                var,
                prefix,
                suffix,
            } => {
                let Some(map) = self.maps.iter().position(|m| &m.var == var) else {
                    return Err(ImportError::Invalid {
                        at: t.src.at(),
                        message: format!(
                            "`${var}` is not set by a `map`; canaryd can translate a variable upstream name only when a `map` on a request header sets it"
                        ),
                    });
                };
                Ok(Key::Map {
                    map,
                    prefix: prefix.clone(),
                    suffix: suffix.clone(),
                })
            }
        }
    }

    pub(super) fn describe(&self, key: &Key) -> String {
        match key {
            Key::Upstream(i) => self.upstreams[*i].name.clone(),
            Key::Map {
                map,
                prefix,
                suffix,
            } => format!("{prefix}${{{}}}{suffix}", self.maps[*map].var),
        }
    }
}
