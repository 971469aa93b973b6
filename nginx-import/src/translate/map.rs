//! `map $http_x_name $var { … }` and a `proxy_pass http://${var}_suffix`: the upstream each
//! map value selects (the default value's is the stable one) and the header override that
//! becomes `[routing]` (`header`, `canary_values`, `stable_values`).

use super::args::invalid;
use super::plan::{RoutingPlan, Setting};
use super::{MapDef, MapEntry, Member, Src, Tx, Val};
use crate::parser::Directive;
use crate::units;
use crate::ImportError;

impl Tx<'_> {
    pub(super) fn map(&mut self, d: &Directive, block: &[Directive]) -> Result<(), ImportError> {
        let [source, var] = d.args() else {
            return Err(invalid(
                d,
                format!(
                    "`map` expects a source and a variable, found {} argument(s)",
                    d.args().len()
                ),
            ));
        };
        let mut m = MapDef {
            source: source.value.clone(),
            var: var.value.trim_start_matches('$').to_string(),
            src: Src::of(d),
            default: None,
            entries: Vec::new(),
            extras: Vec::new(),
        };
        for c in block {
            match (c.name(), c.args(), &c.block) {
                ("hostnames" | "volatile", [], None) => m.extras.push(Src::of(c)),
                ("default", [v], None) => {
                    m.default = Some(Val {
                        value: v.value.clone(),
                        src: Src::of(c),
                    })
                }
                (key, [v], None) => m.entries.push(MapEntry {
                    key: key.to_string(),
                    value: v.value.clone(),
                    src: Src::of(c),
                }),
                _ => {
                    return Err(invalid(
                        c,
                        "a `map` entry is `VALUE RESULT;` (one key and one result)",
                    ))
                }
            }
        }
        self.maps.push(m);
        Ok(())
    }

    /// The default value's upstream, and `(map entry index, upstream)` for every entry.
    pub(super) fn map_upstreams(
        &mut self,
        map: usize,
        prefix: &str,
        suffix: &str,
    ) -> Result<(usize, Vec<(usize, usize)>), ImportError> {
        let Some(default) = self.maps[map].default.clone() else {
            return Err(ImportError::Invalid {
                at: self.maps[map].src.at(),
                message: format!(
                    "map `${}` has no `default`: canaryd needs the upstream that requests without the header go to (the stable one)",
                    self.maps[map].var
                ),
            });
        };
        let default_up = self.map_upstream(prefix, &default.value, suffix, &default.src)?;
        let entries: Vec<(String, Src)> = self.maps[map]
            .entries
            .iter()
            .map(|e| (e.value.clone(), e.src.clone()))
            .collect();
        let mut out = Vec::new();
        for (i, (value, src)) in entries.into_iter().enumerate() {
            let up = self.map_upstream(prefix, &value, suffix, &src)?;
            out.push((i, up));
        }
        Ok((default_up, out))
    }

    /// The upstream a map value selects: it must be defined (nginx would need a `resolver`
    /// and resolve the name per request otherwise).
    fn map_upstream(
        &self,
        prefix: &str,
        value: &str,
        suffix: &str,
        src: &Src,
    ) -> Result<usize, ImportError> {
        let name = format!("{prefix}{value}{suffix}");
        let known: Vec<String> = self
            .upstreams
            .iter()
            .filter(|u| u.src.is_some())
            .map(|u| format!("`{}`", u.name))
            .collect();
        self.upstreams
            .iter()
            .position(|u| u.name == name && u.src.is_some())
            .ok_or_else(|| ImportError::Invalid {
                at: src.at(),
                message: format!(
                    "the map value `{value}` selects upstream `{name}`, which is not defined (upstreams: {}; is it in an include that was not found?)",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            })
    }

    pub(super) fn routing(
        &mut self,
        map: usize,
        map_ups: &[(usize, usize)],
        members: &[Member],
        canary: &[usize],
    ) -> Option<RoutingPlan> {
        let m = &self.maps[map];
        let mut findings = Vec::new();
        for e in &m.extras {
            findings.push(e.finding("canaryd matches header values exactly (case-insensitive)"));
        }
        let header = units::header_of_variable(&m.source);
        let result = match header {
            None => {
                findings.push(m.src.finding(format!(
                    "canaryd routes on a request header only (`$http_…`), not on `{}`; the upstreams are translated, the routing is not",
                    m.source
                )));
                None
            }
            Some(header) => {
                let (mut canary_values, mut stable_values) = (Vec::new(), Vec::new());
                for &(entry, up) in map_ups {
                    let e = &m.entries[entry];
                    if e.key.starts_with('~') {
                        findings.push(e.src.finding(
                            "canaryd matches header values exactly; regular expressions have no equivalent",
                        ));
                        continue;
                    }
                    let sides: Vec<bool> = members
                        .iter()
                        .enumerate()
                        .filter(|(_, mm)| mm.upstream == up)
                        .map(|(i, _)| canary.contains(&i))
                        .collect();
                    if !sides.is_empty() && sides.iter().all(|&c| c) {
                        canary_values.push(e.key.clone());
                    } else if sides.iter().all(|&c| !c) {
                        stable_values.push(e.key.clone());
                    } else {
                        findings.push(e.src.finding(format!(
                            "upstream `{}` has both stable and canary servers; canaryd's override header picks one pool",
                            self.upstreams[up].name
                        )));
                    }
                }
                if canary_values.is_empty() && stable_values.is_empty() {
                    None
                } else {
                    Some(RoutingPlan {
                        header: Setting {
                            value: header,
                            comment: m.src.cite(),
                        },
                        canary_values,
                        stable_values,
                    })
                }
            }
        };
        self.sink.untranslated.extend(findings);
        result
    }
}
