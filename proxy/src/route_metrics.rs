//! Counters that belong to the configuration rather than to the process: requests per route
//! ([`RouteStats`]) and everything counted for a named upstream ([`UpstreamStats`]).
//!
//! They are created when an upstreams generation is built and carried into the next one by
//! key — a route by its label and target, an upstream by its name — so a reload that keeps a
//! route or an upstream keeps its counters, and one that adds or removes them needs no
//! restart: `/metrics` renders the generation in force. Recording is relaxed atomic adds, as
//! in `metrics.rs`.
//!
//! Named upstreams have metric families of their own (`canaryd_upstream_requests_total`,
//! `canaryd_upstream_request_duration_seconds`, …, labelled `upstream`), so their traffic
//! never shows in the rollout's `canaryd_requests_total{variant}` nor in its local windows.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{
    class_of, escape, PoolCounters, CODE_CLASSES, FAILURE_KINDS, UPSTREAM_CONN_STATES,
};
use crate::routing::Variant;

/// Requests answered on one route: `[variant][code class]` for a route of the split,
/// `[0][code class]` for a route to a named upstream.
#[derive(Debug)]
pub struct RouteStats {
    pub label: String,
    /// The named upstream serving the route; `None`: the split.
    pub upstream: Option<String>,
    requests: [[AtomicU64; 5]; 2],
}

/// A named upstream's counters, and the key its idle connections are pooled under.
#[derive(Debug)]
pub struct UpstreamStats {
    pub name: String,
    /// Unique for the process's life (2 and up; 0 and 1 are the split's pools).
    pub key: u32,
    pub counters: PoolCounters,
}

/// Pool keys handed to named upstreams.
static NEXT_KEY: AtomicU32 = AtomicU32::new(2);

// === impl RouteStats ===

impl RouteStats {
    pub fn new(label: String, upstream: Option<String>) -> Self {
        Self {
            label,
            upstream,
            requests: Default::default(),
        }
    }

    /// The stats of `previous` with the same label and target, or new ones.
    pub fn carried(
        label: String,
        upstream: Option<String>,
        previous: &[Arc<RouteStats>],
    ) -> Arc<Self> {
        previous
            .iter()
            .find(|p| p.label == label && p.upstream == upstream)
            .cloned()
            .unwrap_or_else(|| Arc::new(Self::new(label, upstream)))
    }

    pub(crate) fn count(&self, slot: usize, class: usize) {
        self.requests[slot][class].fetch_add(1, Ordering::Relaxed);
    }

    fn load(&self, slot: usize, class: usize) -> u64 {
        self.requests[slot][class].load(Ordering::Relaxed)
    }
}

// === impl UpstreamStats ===

impl UpstreamStats {
    /// The stats of the upstream called `name` in `previous`, or new ones.
    pub fn carried(name: &str, previous: &[Arc<UpstreamStats>]) -> Arc<Self> {
        previous
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(Self {
                    name: name.to_string(),
                    key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
                    counters: PoolCounters::default(),
                })
            })
    }

    /// One response (or failed attempt) of this upstream on `route`.
    pub fn record(&self, route: &RouteStats, status: u16, elapsed: Duration) {
        route.count(0, class_of(status));
        self.counters.latency().observe(elapsed);
    }
}

/// `canaryd_requests_total{variant, code, route}` for the routes of the split.
pub fn render_split(out: &mut String, routes: &[Arc<RouteStats>]) {
    out.push_str("# HELP canaryd_requests_total Responses sent, and failed upstream attempts, by variant.\n# TYPE canaryd_requests_total counter\n");
    for v in Variant::ALL {
        for r in routes.iter().filter(|r| r.upstream.is_none()) {
            for (c, class) in CODE_CLASSES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "canaryd_requests_total{{variant=\"{}\",code=\"{class}\",route=\"{}\"}} {}",
                    v.as_str(),
                    escape(&r.label),
                    r.load(v.index(), c)
                );
            }
        }
    }
}

/// The named upstreams' families: requests by route, latency, failures, connections,
/// streams, bytes. Nothing when there is no named upstream.
pub fn render_named(out: &mut String, routes: &[Arc<RouteStats>], named: &[Arc<UpstreamStats>]) {
    if named.is_empty() {
        return;
    }
    out.push_str("# HELP canaryd_upstream_requests_total Responses sent, and failed attempts, by named upstream and route (outside the split).\n# TYPE canaryd_upstream_requests_total counter\n");
    for r in routes {
        let Some(u) = &r.upstream else { continue };
        for (c, class) in CODE_CLASSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "canaryd_upstream_requests_total{{upstream=\"{}\",route=\"{}\",code=\"{class}\"}} {}",
                escape(u),
                escape(&r.label),
                r.load(0, c)
            );
        }
    }
    out.push_str("# HELP canaryd_upstream_request_duration_seconds Time from request start to the end of the response, by named upstream.\n# TYPE canaryd_upstream_request_duration_seconds histogram\n");
    for u in named {
        let labels = format!("upstream=\"{}\"", escape(&u.name));
        u.counters
            .latency()
            .render(out, "canaryd_upstream_request_duration_seconds", &labels);
    }
    out.push_str("# HELP canaryd_upstream_attempt_failures_total Failed attempts on a named upstream, by kind.\n# TYPE canaryd_upstream_attempt_failures_total counter\n");
    for u in named {
        for (k, kind) in FAILURE_KINDS.iter().enumerate() {
            let _ = writeln!(
                out,
                "canaryd_upstream_attempt_failures_total{{upstream=\"{}\",kind=\"{kind}\"}} {}",
                escape(&u.name),
                u.counters.failures(k)
            );
        }
    }
    out.push_str("# HELP canaryd_upstream_pool_connections Connections to a named upstream, idle in a worker's pool or in use.\n# TYPE canaryd_upstream_pool_connections gauge\n");
    for u in named {
        for (i, state) in UPSTREAM_CONN_STATES.iter().enumerate() {
            let _ = writeln!(
                out,
                "canaryd_upstream_pool_connections{{upstream=\"{}\",state=\"{state}\"}} {}",
                escape(&u.name),
                u.counters.conns(i)
            );
        }
    }
    out.push_str("# HELP canaryd_upstream_streams Open SSE responses and upgraded tunnels, by named upstream.\n# TYPE canaryd_upstream_streams gauge\n");
    for u in named {
        let _ = writeln!(
            out,
            "canaryd_upstream_streams{{upstream=\"{}\"}} {}",
            escape(&u.name),
            u.counters.streams()
        );
    }
    out.push_str("# HELP canaryd_upstream_body_bytes_total Body bytes relayed for a named upstream, from clients (in) and to clients (out).\n# TYPE canaryd_upstream_body_bytes_total counter\n");
    for u in named {
        let (bytes_in, bytes_out) = u.counters.body_bytes();
        for (dir, n) in [("in", bytes_in), ("out", bytes_out)] {
            let _ = writeln!(
                out,
                "canaryd_upstream_body_bytes_total{{upstream=\"{}\",direction=\"{dir}\"}} {n}",
                escape(&u.name)
            );
        }
    }
}
