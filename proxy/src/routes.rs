//! Per-path settings (`[[proxy.routes]]`): the longest matching prefix wins; index 0 is the
//! default route. Matching walks a short list sorted longest-first, without allocating.

use std::time::Duration;

use canaryd_config::ProxyConfig;

/// Upstream timeouts in force for one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
}

/// One route: its metric label and timeouts.
#[derive(Debug, Clone)]
pub struct Route {
    /// Label in `canaryd_requests_total{route}`: the prefix, or "default".
    pub label: String,
    pub timeouts: Timeouts,
}

/// All routes; `all()[0]` is the default.
#[derive(Debug, Clone)]
pub struct Routes {
    routes: Vec<Route>,
    /// (prefix, index into `routes`), longest prefix first.
    by_prefix: Vec<(Box<[u8]>, usize)>,
}

impl Routes {
    pub fn new(cfg: &ProxyConfig) -> Self {
        let default = Timeouts {
            connect: cfg.connect_timeout,
            read: cfg.read_timeout,
            write: cfg.write_timeout,
        };
        let mut routes = vec![Route {
            label: "default".to_string(),
            timeouts: default,
        }];
        let mut by_prefix = Vec::new();
        for r in &cfg.routes {
            by_prefix.push((
                r.prefix.clone().into_bytes().into_boxed_slice(),
                routes.len(),
            ));
            routes.push(Route {
                label: r.prefix.clone(),
                timeouts: Timeouts {
                    connect: r.connect_timeout.unwrap_or(default.connect),
                    read: r.read_timeout.unwrap_or(default.read),
                    write: r.write_timeout.unwrap_or(default.write),
                },
            });
        }
        by_prefix.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
        Self { routes, by_prefix }
    }

    /// Index of the route serving `path`.
    pub fn match_path(&self, path: &[u8]) -> usize {
        self.by_prefix
            .iter()
            .find(|(p, _)| path.starts_with(p))
            .map_or(0, |&(_, i)| i)
    }

    pub fn all(&self) -> &[Route] {
        &self.routes
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canaryd_config::RouteConfig;

    #[test]
    fn longest_prefix_wins() {
        let cfg = ProxyConfig {
            routes: vec![
                RouteConfig {
                    prefix: "/api/".into(),
                    connect_timeout: None,
                    read_timeout: None,
                    write_timeout: None,
                },
                RouteConfig {
                    prefix: "/api/stream".into(),
                    connect_timeout: None,
                    read_timeout: Some(Duration::from_secs(3600)),
                    write_timeout: None,
                },
            ],
            ..ProxyConfig::default()
        };
        let r = Routes::new(&cfg);
        assert_eq!(r.match_path(b"/api/stream/x"), 2);
        assert_eq!(r.match_path(b"/api/users"), 1);
        assert_eq!(r.match_path(b"/health"), 0);
        assert_eq!(r.all()[2].timeouts.read, Duration::from_secs(3600));
        assert_eq!(r.all()[2].timeouts.connect, cfg.connect_timeout);
    }
}
