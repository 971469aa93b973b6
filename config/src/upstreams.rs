//! Named upstreams outside the split (`[upstreams.NAME]`) and what routes need of them: the
//! `upstream = "NAME"` a route names and the `hosts` it matches (`server_name` style: exact
//! names and `*.example.com`).
//!
//! A named upstream has the pool keys of `[backends.stable]` (the same [`PoolConfig`]), so
//! everything a pool can do — weights, health checks, `max_fails`, `keepalive` — works the same
//! on both sides. Routes without `upstream` go through the split.

use std::collections::BTreeMap;

use crate::problem::Invalid;
use crate::proxy::{check_pool, PoolConfig, RouteConfig};

/// `[upstreams]`: pools by name.
pub type UpstreamsConfig = BTreeMap<String, PoolConfig>;

/// Checks the named pools and the routes' references to them and their hosts.
pub fn check_upstreams(upstreams: &UpstreamsConfig, routes: &[RouteConfig]) -> Vec<Invalid> {
    let mut out = Vec::new();
    for (name, pool) in upstreams {
        if !is_name(name) {
            out.push(Invalid {
                key: format!("upstreams.{name}"),
                message: format!("expected a name of letters, digits, '_' or '-', found {name:?}"),
            });
        }
        check_pool(&format!("upstreams.{name}"), pool, &mut out);
    }
    for (i, r) in routes.iter().enumerate() {
        if let Some(u) = &r.upstream {
            if !upstreams.contains_key(u) {
                let known = upstreams
                    .keys()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push(Invalid {
                    key: format!("proxy.routes[{i}].upstream"),
                    message: if known.is_empty() {
                        format!("expected the name of an [upstreams.NAME] section, found {u:?} and there is none")
                    } else {
                        format!("expected one of the [upstreams] names ({known}), found {u:?}")
                    },
                });
            }
        }
        for (j, h) in r.hosts.iter().enumerate() {
            if !is_host_pattern(h) {
                out.push(Invalid {
                    key: format!("proxy.routes[{i}].hosts[{j}]"),
                    message: format!(
                        "expected a host name like \"app.example.com\" or \"*.example.com\" (no port, no scheme), found {h:?}"
                    ),
                });
            }
        }
    }
    out
}

/// An upstream name: it is a metric label and a TOML key.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `app.example.com`, `*.example.com` or an IP address: letters, digits, '-' and '.', a
/// leading `*.` at most.
pub fn is_host_pattern(h: &str) -> bool {
    let name = h.strip_prefix("*.").unwrap_or(h);
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests;
