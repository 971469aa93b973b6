//! Routes (`[[proxy.routes]]`): which settings and which upstream serve a request, by host
//! then path. Index 0 is the default route (`[proxy]`'s settings, the split).
//!
//! Matching, like nginx's `server_name` then `location` prefix: the routes listing the
//! request's host exactly are tried first, then those of the longest `*.suffix` wildcard that
//! matches it, then the routes without `hosts`; within each, the longest matching prefix wins,
//! and a group with no matching prefix falls through to the next. Everything is compiled when
//! the configuration is loaded; matching walks short sorted lists without allocating.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use canaryd_config::{ErrorPage, ProxyConfig, RouteConfig};

use crate::header_rules::HeaderRules;
use crate::route_metrics::RouteStats;

/// Upstream timeouts in force for one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
}

/// Who serves a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The rollout's split between stable and canary.
    Split,
    /// A named upstream: index into `Upstreams::named`.
    Upstream(usize),
}

/// One route: its metric label and everything it decides.
#[derive(Debug)]
pub struct Route {
    /// Label in `canaryd_requests_total{route}`: "default", the prefix, or host and prefix.
    pub label: String,
    pub timeouts: Timeouts,
    pub target: Target,
    pub headers: HeaderRules,
    /// Largest request body; 0: no limit.
    pub max_body_size: u64,
    pub error_pages: ErrorPages,
    pub stats: Arc<RouteStats>,
}

/// Pages for the answers canaryd generates, by status.
#[derive(Debug, Clone, Default)]
pub struct ErrorPages(Vec<(u16, Bytes)>);

/// Prefixes of one host group, longest first: (prefix, route index).
type Prefixes = Vec<(Box<[u8]>, usize)>;

/// All routes, compiled; `all()[0]` is the default.
#[derive(Debug)]
pub struct Routes {
    routes: Vec<Route>,
    /// Routes listing a host exactly: (host, lower case; its prefixes).
    exact: Vec<(Box<[u8]>, Prefixes)>,
    /// Routes listing `*.suffix`: (".suffix", lower case; its prefixes), longest first.
    wildcard: Vec<(Box<[u8]>, Prefixes)>,
    /// Routes without `hosts`.
    any_host: Prefixes,
}

// === impl Routes ===

impl Routes {
    /// Compiles `cfg`'s routes. `upstreams` are the named upstreams' names in the order of
    /// `Upstreams::named`; `previous` the running routes' counters, carried by label.
    pub fn new(cfg: &ProxyConfig, upstreams: &[String], previous: &[Arc<RouteStats>]) -> Self {
        let default = Timeouts {
            connect: cfg.connect_timeout,
            read: cfg.read_timeout,
            write: cfg.write_timeout,
        };
        let mut routes = vec![Route {
            label: "default".to_string(),
            timeouts: default,
            target: Target::Split,
            headers: HeaderRules::compile(cfg, None::<&RouteConfig>),
            max_body_size: cfg.max_body_size,
            error_pages: ErrorPages::new(&cfg.error_pages, None),
            stats: RouteStats::carried("default".into(), None, previous),
        }];
        let mut me = Self {
            routes: Vec::new(),
            exact: Vec::new(),
            wildcard: Vec::new(),
            any_host: Vec::new(),
        };
        for r in &cfg.routes {
            let index = routes.len();
            let prefix: Box<[u8]> = r.prefix.as_bytes().into();
            if r.hosts.is_empty() {
                me.any_host.push((prefix.clone(), index));
            }
            for h in &r.hosts {
                let host = h.to_ascii_lowercase();
                let (group, key) = match host.strip_prefix('*') {
                    Some(suffix) => (&mut me.wildcard, suffix.as_bytes().into()),
                    None => (&mut me.exact, host.as_bytes().into()),
                };
                match group.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, list)) => list.push((prefix.clone(), index)),
                    None => group.push((key, vec![(prefix.clone(), index)])),
                }
            }
            let target = r
                .upstream
                .as_ref()
                .and_then(|u| upstreams.iter().position(|n| n == u))
                .map_or(Target::Split, Target::Upstream);
            let label = r.label();
            routes.push(Route {
                timeouts: Timeouts {
                    connect: r.connect_timeout.unwrap_or(default.connect),
                    read: r.read_timeout.unwrap_or(default.read),
                    write: r.write_timeout.unwrap_or(default.write),
                },
                target,
                headers: HeaderRules::compile(cfg, Some(r)),
                max_body_size: r.max_body_size.unwrap_or(cfg.max_body_size),
                error_pages: ErrorPages::new(&cfg.error_pages, Some(&r.error_pages)),
                stats: RouteStats::carried(label.clone(), r.upstream.clone(), previous),
                label,
            });
        }
        let longest_first = |p: &mut Prefixes| p.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        longest_first(&mut me.any_host);
        for (_, list) in me.exact.iter_mut().chain(me.wildcard.iter_mut()) {
            longest_first(list);
        }
        me.wildcard
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        me.routes = routes;
        me
    }

    /// Index of the route serving `path` on `host` (no port; any case).
    pub fn match_request(&self, host: &[u8], path: &[u8]) -> usize {
        let longest = |list: &Prefixes| {
            list.iter()
                .find(|(p, _)| path.starts_with(p))
                .map(|&(_, i)| i)
        };
        if !host.is_empty() {
            let exact = self
                .exact
                .iter()
                .find(|(h, _)| h.eq_ignore_ascii_case(host))
                .and_then(|(_, list)| longest(list));
            if let Some(i) = exact {
                return i;
            }
            let wildcard = self
                .wildcard
                .iter()
                .find(|(suffix, _)| {
                    host.len() > suffix.len()
                        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                })
                .and_then(|(_, list)| longest(list));
            if let Some(i) = wildcard {
                return i;
            }
        }
        longest(&self.any_host).unwrap_or(0)
    }

    /// Index of the route serving `path` on any host.
    pub fn match_path(&self, path: &[u8]) -> usize {
        self.match_request(b"", path)
    }

    pub fn all(&self) -> &[Route] {
        &self.routes
    }

    /// The route at `index`, or the default one.
    pub fn get(&self, index: usize) -> &Route {
        self.routes.get(index).unwrap_or(&self.routes[0])
    }

    /// Every route's counters, for rendering and for the next generation.
    pub fn stats(&self) -> Vec<Arc<RouteStats>> {
        self.routes.iter().map(|r| r.stats.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

/// The host a request is for: its `Host` header, or the authority of its target (HTTP/2,
/// absolute form), without the port.
pub fn request_host(req: &http::request::Parts) -> &[u8] {
    let raw = req
        .headers
        .get(http::header::HOST)
        .map(|v| v.as_bytes())
        .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()))
        .unwrap_or_default();
    strip_port(raw)
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
pub(crate) fn strip_port(host: &[u8]) -> &[u8] {
    match host.iter().rposition(|&b| b == b':') {
        Some(i) if !host[i..].contains(&b']') => &host[..i],
        _ => host,
    }
}

// === impl ErrorPages ===

impl ErrorPages {
    fn new(
        base: &std::collections::BTreeMap<String, ErrorPage>,
        over: Option<&std::collections::BTreeMap<String, ErrorPage>>,
    ) -> Self {
        let mut pages: Vec<(u16, Bytes)> = Vec::new();
        for (status, page) in base.iter().chain(over.into_iter().flatten()) {
            let Ok(status) = status.parse::<u16>() else {
                continue;
            };
            pages.retain(|(s, _)| *s != status);
            pages.push((status, Bytes::copy_from_slice(&page.body)));
        }
        Self(pages)
    }

    /// The page for `status`, if one is configured.
    pub fn get(&self, status: u16) -> Option<&Bytes> {
        self.0.iter().find(|(s, _)| *s == status).map(|(_, b)| b)
    }
}

#[cfg(test)]
mod tests;
