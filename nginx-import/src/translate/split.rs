//! The front's servers split into the stable and the canary pool: which servers are the
//! canary (`--canary`, the map's non-default upstreams, else the smaller of two weights), the
//! two `[backends]` pools, and the canary's share before any rollout (`initial_percent`).

use super::plan::{PoolPlan, ServerOut, Setting};
use super::{Key, Member, Src, Tx, MAX_WEIGHT, NGINX_FAIL_TIMEOUT, NGINX_MAX_FAILS};
use crate::units;
use crate::ImportError;

impl Tx<'_> {
    /// Indices into `members` of the canary servers.
    pub(super) fn canary_set(
        &self,
        members: &[Member],
        default_up: usize,
        map_ups: &[(usize, usize)],
        main_src: &Src,
    ) -> Result<Vec<usize>, ImportError> {
        let addrs: Vec<&str> = members
            .iter()
            .map(|m| self.server_of(m).addr.as_str())
            .collect();
        if !self.opts.canary.is_empty() {
            let mut out = Vec::new();
            for c in &self.opts.canary {
                let want = units::server_addr(c).unwrap_or_else(|| c.clone());
                match addrs.iter().position(|a| *a == want || *a == c) {
                    Some(i) => {
                        if !out.contains(&i) {
                            out.push(i)
                        }
                    }
                    None => {
                        let mut ups: Vec<&str> = Vec::new();
                        for m in members {
                            let n = self.upstreams[m.upstream].name.as_str();
                            if !ups.contains(&n) {
                                ups.push(n);
                            }
                        }
                        return Err(ImportError::UnknownCanary {
                            addr: c.clone(),
                            upstreams: ups
                                .iter()
                                .map(|u| format!("`{u}`"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            servers: addrs.join(", "),
                        });
                    }
                }
            }
            return Ok(out);
        }
        if !map_ups.is_empty() {
            let out: Vec<usize> = members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.upstream != default_up)
                .map(|(i, _)| i)
                .collect();
            if !out.is_empty() {
                return Ok(out);
            }
        }
        let in_default: Vec<usize> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.upstream == default_up)
            .map(|(i, _)| i)
            .collect();
        let up = &self.upstreams[default_up];
        let at = up.src.as_ref().unwrap_or(main_src).at();
        let list = in_default
            .iter()
            .map(|&i| {
                let s = self.server_of(&members[i]);
                format!("{} weight={}", s.addr, s.weight)
            })
            .collect::<Vec<_>>()
            .join(", ");
        match in_default.as_slice() {
            [_] => Err(ImportError::Invalid {
                at,
                message: format!(
                    "upstream `{}` has one server ({list}): nothing to split between stable and canary. Add the canary server to it (e.g. `server HOST:PORT weight=5;`) and import again",
                    up.name
                ),
            }),
            &[a, b] => {
                let (wa, wb) = (
                    self.server_of(&members[a]).weight,
                    self.server_of(&members[b]).weight,
                );
                if wa == wb {
                    Err(ImportError::NeedCanary {
                        at,
                        upstream: up.name.clone(),
                        why: format!("both servers have the same weight ({list})"),
                    })
                } else {
                    Ok(vec![if wa < wb { a } else { b }])
                }
            }
            _ => Err(ImportError::NeedCanary {
                at,
                upstream: up.name.clone(),
                why: format!("it has {} servers ({list})", in_default.len()),
            }),
        }
    }

    /// The stable and the canary pool (`canary`: indices into `members`); at least one server
    /// must stay on stable.
    pub(super) fn pools(
        &mut self,
        members: &[Member],
        canary: &[usize],
    ) -> Result<(PoolPlan, PoolPlan), ImportError> {
        let (mut stable_m, mut canary_m) = (Vec::new(), Vec::new());
        for (i, m) in members.iter().enumerate() {
            if canary.contains(&i) {
                canary_m.push(m);
            } else {
                stable_m.push(m);
            }
        }
        if stable_m.is_empty() {
            return Err(ImportError::NoStable {
                servers: members
                    .iter()
                    .map(|m| self.server_of(m).addr.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let stable = self.pool("stable", &stable_m);
        let canary_pool = self.pool("canary", &canary_m);
        Ok((stable, canary_pool))
    }

    pub(super) fn pool(&mut self, name: &str, members: &[&Member]) -> PoolPlan {
        let mut servers = Vec::new();
        let mut ups: Vec<String> = Vec::new();
        for m in members {
            let s = self.server_of(m);
            let weight = s.weight.min(MAX_WEIGHT);
            let src = s.src.clone();
            let addr = s.addr.clone();
            if s.weight > MAX_WEIGHT {
                self.sink.untranslated.push(src.finding(format!(
                    "canaryd's largest weight is {MAX_WEIGHT}; this server gets {MAX_WEIGHT}"
                )));
            }
            let u = self.upstreams[m.upstream].name.clone();
            if !ups.contains(&u) {
                ups.push(u);
            }
            servers.push(Setting {
                value: ServerOut { addr, weight },
                comment: src.cite(),
            });
        }
        let weighted = servers
            .windows(2)
            .any(|w| w[0].value.weight != w[1].value.weight);
        let first = members.first().map(|m| self.server_of(m));
        let max_fails = first.and_then(|s| s.max_fails);
        let fail_timeout = first.and_then(|s| s.fail_timeout);
        let first_at = first.map(|s| s.src.at()).unwrap_or_default();
        let mut differing = Vec::new();
        for m in members.iter().skip(1) {
            let s = self.server_of(m);
            if s.max_fails.unwrap_or(NGINX_MAX_FAILS) != max_fails.unwrap_or(NGINX_MAX_FAILS)
                || s.fail_timeout.unwrap_or(NGINX_FAIL_TIMEOUT)
                    != fail_timeout.unwrap_or(NGINX_FAIL_TIMEOUT)
            {
                differing.push(s.src.finding(format!(
                    "canaryd has one `max_fails` / `fail_timeout` per pool; the {name} pool uses those of {first_at}"
                )));
            }
        }
        self.sink.untranslated.extend(differing);
        PoolPlan {
            comment: format!(
                "from upstream {}",
                ups.iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            servers,
            weighted,
            max_fails: Setting {
                value: max_fails.unwrap_or(NGINX_MAX_FAILS),
                comment: match max_fails {
                    Some(n) => format!("nginx max_fails={n}"),
                    None => format!("nginx default max_fails={NGINX_MAX_FAILS}"),
                },
            },
            fail_timeout: Setting {
                value: fail_timeout.unwrap_or(NGINX_FAIL_TIMEOUT),
                comment: match fail_timeout {
                    Some(t) => format!("nginx fail_timeout={}", units::duration(t)),
                    None => "nginx default fail_timeout=10s".to_string(),
                },
            },
        }
    }

    pub(super) fn initial_percent(
        &self,
        default_up: usize,
        members: &[Member],
        canary: &[usize],
        key: &Key,
    ) -> Setting<f64> {
        let (mut total, mut on_canary) = (0u64, 0u64);
        for (i, m) in members.iter().enumerate() {
            if m.upstream == default_up {
                let w = u64::from(self.server_of(m).weight.min(MAX_WEIGHT));
                total += w;
                if canary.contains(&i) {
                    on_canary += w;
                }
            }
        }
        let pct = if total == 0 {
            0.0
        } else {
            (on_canary as f64 * 10_000.0 / total as f64).round() / 100.0
        };
        let up = &self.upstreams[default_up].name;
        let comment = match key {
            Key::Map { map, .. } => format!(
                "nginx sent requests without the header (map `${}` default) to `{up}`: {pct}% canary",
                self.maps[*map].var
            ),
            Key::Upstream(_) => format!(
                "nginx weights in upstream `{up}`: {on_canary} of {total} on the canary"
            ),
        };
        Setting {
            value: pct,
            comment,
        }
    }
}
