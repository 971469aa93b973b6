//! `error_page CODE… URI` → `error_pages = { CODE = "FILE" }`. nginx's value is a URI served
//! by the location it matches; canaryd's is a file it reads at load. The URI is resolved here
//! through the `root` of that location (an exact `location = URI`, else the longest prefix one
//! that serves files, else the server's): FILE = root + URI. Only the statuses canaryd answers
//! itself are kept; the others, and URIs that do not resolve to a file, are untranslated.

use super::args::invalid;
use super::plan::Setting;
use super::{Level, LocKind, ServerBlock, Tx, Val};
use crate::parser::Directive;
use crate::ImportError;

/// The statuses canaryd generates itself (docs/configuration.md, `error_pages`).
const OWN_STATUSES: [&str; 5] = ["400", "408", "413", "502", "504"];

impl Tx<'_> {
    /// Collects an `error_page` of a level: its statuses canaryd generates, with the URI.
    pub(super) fn error_page(
        &mut self,
        d: &Directive,
        level: &mut Level,
    ) -> Result<(), ImportError> {
        let args = d.args();
        let Some((uri, codes)) = args.split_last().filter(|(_, c)| !c.is_empty()) else {
            return Err(invalid(d, "`error_page` expects CODE… URI"));
        };
        // nginx: a level with its own error_page ignores the inherited ones.
        let pages = level.error_pages.get_or_insert_with(Vec::new);
        if codes.iter().any(|c| c.value.starts_with('=')) {
            self.untranslated(
                d,
                "canaryd keeps the status of its own answers; `=CODE` (a changed status) has no equivalent",
            );
            return Ok(());
        }
        if !uri.value.starts_with('/') {
            self.untranslated(
                d,
                "canaryd's `error_pages` are files; a named location or a redirect has no equivalent",
            );
            return Ok(());
        }
        let mut others = Vec::new();
        for c in codes {
            if OWN_STATUSES.contains(&c.value.as_str()) {
                pages.push(Val {
                    value: (c.value.clone(), uri.value.clone()),
                    src: super::Src::of(d),
                });
            } else {
                others.push(c.value.as_str());
            }
        }
        if !others.is_empty() {
            self.untranslated(
                d,
                format!(
                    "canaryd generates only {} itself; the upstream's {} answers pass through untouched (its page is the upstream's)",
                    OWN_STATUSES.join(", "),
                    others.join(", ")
                ),
            );
        }
        Ok(())
    }

    /// A level's error pages as `error_pages` settings, each URI resolved to a file; those
    /// that do not resolve are untranslated (each directive once).
    pub(super) fn error_page_settings(
        &mut self,
        srv: &ServerBlock,
        srv_eff: &Level,
        eff: &[Level],
        level: &Level,
    ) -> Vec<Setting<(String, String)>> {
        let mut out = Vec::new();
        for v in level.error_pages.iter().flatten() {
            let (code, uri) = &v.value;
            match resolve(srv, srv_eff, eff, uri) {
                Ok(file) => out.push(Setting {
                    value: (code.clone(), file),
                    comment: v.src.cite(),
                }),
                Err(why) => {
                    let f = v.src.finding(format!(
                        "nginx's value is a URI, canaryd's a file: {why}; write `error_pages = {{ {code} = \"/path/to/page.html\" }}` by hand"
                    ));
                    if !self
                        .sink
                        .untranslated
                        .iter()
                        .any(|u| u.line == f.line && u.file == f.file && u.reason == f.reason)
                    {
                        self.sink.untranslated.push(f);
                    }
                }
            }
        }
        out
    }
}

/// The file nginx served for `uri`: the root of the location that matches it + `uri`.
fn resolve(srv: &ServerBlock, srv_eff: &Level, eff: &[Level], uri: &str) -> Result<String, String> {
    let exact = srv
        .locs
        .iter()
        .position(|l| l.exact.as_deref() == Some(uri));
    let prefix = srv
        .locs
        .iter()
        .enumerate()
        .filter(|(_, l)| matches!(&l.kind, LocKind::Prefix(p) if uri.starts_with(p.as_str())))
        .max_by_key(|(_, l)| match &l.kind {
            LocKind::Prefix(p) => p.len(),
            LocKind::Other => 0,
        })
        .map(|(i, _)| i);
    let (root, place) = match exact.or(prefix) {
        Some(i) if !srv.locs[i].targets.is_empty() => {
            return Err(format!(
                "`{uri}` is proxied by `{}`, not a file",
                srv.locs[i].src.text
            ))
        }
        Some(i) => (&eff[i].root, srv.locs[i].src.text.clone()),
        None => (&srv_eff.root, "the server".to_string()),
    };
    match root {
        Some(r) if r.value.starts_with('/') => {
            Ok(format!("{}{uri}", r.value.trim_end_matches('/')))
        }
        Some(r) => Err(format!(
            "`root {}` is relative to nginx's prefix, unknown here",
            r.value
        )),
        None => Err(format!("`{uri}` has no `root` in {place}")),
    }
}
