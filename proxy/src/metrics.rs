//! Data-plane metrics: per-variant request counters and latency histograms, upstream failures
//! and fallbacks, rendered in the Prometheus text format by the admin listener.
//!
//! What is counted per pool — latency, failed attempts, upstream connections, streams, bytes —
//! is a [`PoolCounters`]: one for each side of the split here, one per named upstream in its
//! `UpstreamStats`. Per-route request counters live with
//! the routes (`route_metrics.rs`), so a reload can add and remove routes.
//!
//! Recording is a handful of relaxed atomic adds into preallocated arrays: no lock, no
//! allocation, no label formatting on the request path. Rendering does the formatting.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use crate::route_metrics::RouteStats;
use crate::routing::Variant;
use crate::windows::Windows;

/// Histogram upper bounds in seconds: 50 µs to 60 s.
pub const LATENCY_BOUNDS_S: [f64; 19] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const N_BOUNDS: usize = LATENCY_BOUNDS_S.len();
pub(crate) const CODE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why a request left the pool it was routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FallbackReason {
    /// The pool had no available server.
    Unavailable = 0,
    /// Connecting to the chosen server failed; retried once on the other pool.
    ConnectError = 1,
    /// The canary answered 502/503/504 to an idempotent request, or broke before answering;
    /// retried on stable.
    CanaryError = 2,
}
const FALLBACK_REASONS: [&str; 3] = ["unavailable", "connect_error", "canary_error"];

/// Kind of upstream failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Connect = 0,
    Timeout = 1,
    Reset = 2,
    /// The upstream's answer was not valid HTTP.
    Protocol = 3,
}
pub(crate) const FAILURE_KINDS: [&str; 4] = ["connect", "timeout", "reset", "protocol"];

/// What a client connection is doing (nginx's stub_status states).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    /// Reading a request header.
    Reading = 0,
    /// Serving a request: from its header to the end of its response.
    Writing = 1,
    /// Kept alive, waiting for the next request.
    Idle = 2,
}
const CONN_STATES: [&str; 3] = ["reading", "writing", "idle"];

/// Upstream connections of a variant: idle in a worker's pool, or carrying a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamConnState {
    Idle = 0,
    InUse = 1,
}
pub(crate) const UPSTREAM_CONN_STATES: [&str; 2] = ["idle", "in_use"];

/// Connection-level counters and gauges: nginx users' `stub_status`.
#[derive(Debug, Default)]
pub struct ConnMetrics {
    states: [AtomicI64; 3],
    accepted: AtomicU64,
    handled: AtomicU64,
}

/// What the request loop counts per pool (a side of the split, a named upstream): latency,
/// failed attempts, upstream connections, open streams, body bytes.
#[derive(Debug, Default)]
pub struct PoolCounters {
    latency: Histogram,
    failures: [AtomicU64; 4],
    /// `[idle | in use]`.
    conns: [AtomicI64; 2],
    /// SSE responses and upgraded tunnels open now.
    streams: AtomicI64,
    /// Body bytes from clients to upstreams and back.
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// Holds a gauge up by one until dropped.
#[derive(Debug)]
pub struct GaugeGuard<'a>(&'a AtomicI64);

/// Counts a client connection: accepted when made, handled when it ends.
#[derive(Debug)]
pub struct ConnectionGuard<'a>(&'a ConnMetrics);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.handled.fetch_add(1, Ordering::Relaxed);
    }
}

fn gauge(g: &AtomicI64) -> GaugeGuard<'_> {
    g.fetch_add(1, Ordering::Relaxed);
    GaugeGuard(g)
}

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; N_BOUNDS],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

/// All data-plane metrics.
#[derive(Debug)]
pub struct Metrics {
    /// `[variant][code class]`, all routes.
    totals: [[AtomicU64; 5]; 2],
    pools: [PoolCounters; 2],
    /// `[from][reason]`; `to` is always the other variant.
    fallbacks: [[AtomicU64; 3]; 2],
    /// Per-variant sliding windows for the controller's `source = "local"` rules.
    windows: Windows,
    conns: ConnMetrics,
    /// Shadow traffic (`request/shadow.rs`).
    pub shadow: ShadowCounters,
}

/// What shadow traffic did: `canaryd_shadow_requests_total{outcome}` and the copies in flight.
#[derive(Debug, Default)]
pub struct ShadowCounters {
    /// Copies sent to the canary whose answer came back (any status).
    pub sent: AtomicU64,
    /// Copies not sent: `shadow_max_inflight` were in flight already.
    pub dropped: AtomicU64,
    /// Copies that failed: no canary server available, connect, write, read or timeout.
    pub error: AtomicU64,
    /// Copies in flight now (bounded by `shadow_max_inflight`).
    pub inflight: AtomicU64,
}

// === impl Histogram ===

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let ns = elapsed.as_nanos().min(u128::from(u64::MAX)) as u64;
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BOUNDS_S.iter().position(|&b| secs <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Requests per bucket of [`LATENCY_BOUNDS_S`] (non-cumulative), then those above the last
    /// bound, since start: what the controller's latency test reads (a read of the counters
    /// `observe` keeps anyway, not a snapshot: a request being recorded may be missing from
    /// the overflow).
    pub fn buckets(&self) -> [u64; N_BOUNDS + 1] {
        let mut out = [0; N_BOUNDS + 1];
        for (o, b) in out.iter_mut().zip(&self.buckets) {
            *o = b.load(Ordering::Relaxed);
        }
        let counted: u64 = out[..N_BOUNDS].iter().sum();
        out[N_BOUNDS] = self.count().saturating_sub(counted);
        out
    }

    /// Appends the series of `name` with `labels` (`variant="stable"`).
    pub(crate) fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in LATENCY_BOUNDS_S.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"+Inf\"}} {count}\n{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {count}"
        );
    }
}

// === impl PoolCounters ===

impl PoolCounters {
    /// An open stream (SSE, upgraded tunnel) until the guard drops.
    pub fn stream(&self) -> GaugeGuard<'_> {
        gauge(&self.streams)
    }

    /// An upstream connection in `state` until the guard drops.
    pub fn upstream_conn(&self, state: UpstreamConnState) -> GaugeGuard<'_> {
        gauge(&self.conns[state as usize])
    }

    /// Moves the idle upstream connection gauge by `delta`.
    pub fn upstream_idle(&self, delta: i64) {
        self.conns[UpstreamConnState::Idle as usize].fetch_add(delta, Ordering::Relaxed);
    }

    /// Body bytes relayed: from the client, to the client.
    pub fn bytes(&self, from_client: u64, to_client: u64) {
        self.bytes_in.fetch_add(from_client, Ordering::Relaxed);
        self.bytes_out.fetch_add(to_client, Ordering::Relaxed);
    }

    pub fn upstream_failure(&self, kind: FailureKind) {
        self.failures[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn latency(&self) -> &Histogram {
        &self.latency
    }

    pub(crate) fn failures(&self, kind: usize) -> u64 {
        self.failures[kind].load(Ordering::Relaxed)
    }

    pub(crate) fn conns(&self, state: usize) -> i64 {
        self.conns[state].load(Ordering::Relaxed).max(0)
    }

    pub(crate) fn streams(&self) -> i64 {
        self.streams.load(Ordering::Relaxed).max(0)
    }

    /// (in, out).
    pub(crate) fn body_bytes(&self) -> (u64, u64) {
        (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        )
    }
}

// === impl Metrics ===

impl Metrics {
    pub fn new() -> Self {
        Self {
            totals: Default::default(),
            pools: Default::default(),
            fallbacks: Default::default(),
            windows: Windows::new(),
            conns: ConnMetrics::default(),
            shadow: ShadowCounters::default(),
        }
    }

    /// A client connection accepted; handled when the guard drops.
    pub fn connection(&self) -> ConnectionGuard<'_> {
        self.conns.accepted.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(&self.conns)
    }

    /// A client connection in `state` until the guard drops.
    pub fn conn_state(&self, state: ConnState) -> GaugeGuard<'_> {
        gauge(&self.conns.states[state as usize])
    }

    /// What is counted for the pool of `variant`.
    pub fn pool(&self, variant: Variant) -> &PoolCounters {
        &self.pools[variant.index()]
    }

    /// One response (or failed upstream attempt) of `variant` on `route`.
    pub fn record(&self, variant: Variant, route: &RouteStats, status: u16, elapsed: Duration) {
        let class = class_of(status);
        route.count(variant.index(), class);
        self.totals[variant.index()][class].fetch_add(1, Ordering::Relaxed);
        self.pools[variant.index()].latency.observe(elapsed);
        self.windows.record(variant, status, elapsed);
    }

    pub fn fallback(&self, from: Variant, reason: FallbackReason) {
        self.fallbacks[from.index()][reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Total requests recorded for `variant` with a status in `class` (1..=5), all routes.
    pub fn requests_of(&self, variant: Variant, class: u16) -> u64 {
        self.totals[variant.index()][class_of(class * 100)].load(Ordering::Relaxed)
    }

    /// Total fallbacks away from `from`, all reasons.
    pub fn fallbacks_from(&self, from: Variant) -> u64 {
        self.fallbacks[from.index()]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    pub fn latency(&self, variant: Variant) -> &Histogram {
        &self.pools[variant.index()].latency
    }

    /// The sliding windows recorded alongside these metrics.
    pub fn windows(&self) -> &Windows {
        &self.windows
    }

    /// Appends the Prometheus text exposition of these metrics to `out` (the per-route
    /// request counters are rendered with the routes, see `DataPlane::render_metrics`).
    pub fn render(&self, out: &mut String, weight_bp: u16) {
        out.push_str("# HELP canaryd_request_duration_seconds Time from request start to the end of the response, by variant.\n# TYPE canaryd_request_duration_seconds histogram\n");
        for v in Variant::ALL {
            let labels = format!("variant=\"{}\"", v.as_str());
            self.pool(v)
                .latency
                .render(out, "canaryd_request_duration_seconds", &labels);
        }
        out.push_str("# HELP canaryd_upstream_failures_total Failed upstream attempts by kind.\n# TYPE canaryd_upstream_failures_total counter\n");
        for v in Variant::ALL {
            for (k, kind) in FAILURE_KINDS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "canaryd_upstream_failures_total{{variant=\"{}\",kind=\"{kind}\"}} {}",
                    v.as_str(),
                    self.pool(v).failures(k)
                );
            }
        }
        out.push_str("# HELP canaryd_fallbacks_total Requests moved to the other pool.\n# TYPE canaryd_fallbacks_total counter\n");
        for from in Variant::ALL {
            for (r, reason) in FALLBACK_REASONS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "canaryd_fallbacks_total{{from=\"{}\",to=\"{}\",reason=\"{reason}\"}} {}",
                    from.as_str(),
                    from.other().as_str(),
                    self.fallbacks[from.index()][r].load(Ordering::Relaxed)
                );
            }
        }
        self.render_connections(out);
        out.push_str("# HELP canaryd_shadow_requests_total Copies of requests sent to the canary as shadow traffic, by outcome.\n# TYPE canaryd_shadow_requests_total counter\n");
        let sh = &self.shadow;
        for (outcome, n) in [
            ("sent", &sh.sent),
            ("dropped", &sh.dropped),
            ("error", &sh.error),
        ] {
            let _ = writeln!(
                out,
                "canaryd_shadow_requests_total{{outcome=\"{outcome}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP canaryd_canary_weight_percent Share of traffic routed to the canary.\n# TYPE canaryd_canary_weight_percent gauge\ncanaryd_canary_weight_percent {}",
            f64::from(weight_bp) / 100.0
        );
    }
}

// === impl Metrics (connections) ===

impl Metrics {
    fn render_connections(&self, out: &mut String) {
        let c = &self.conns;
        out.push_str("# HELP canaryd_connections Client connections by state.\n# TYPE canaryd_connections gauge\n");
        for (i, state) in CONN_STATES.iter().enumerate() {
            let _ = writeln!(
                out,
                "canaryd_connections{{state=\"{state}\"}} {}",
                c.states[i].load(Ordering::Relaxed).max(0)
            );
        }
        let _ = writeln!(
            out,
            "# HELP canaryd_connections_accepted_total Client connections accepted.\n# TYPE canaryd_connections_accepted_total counter\ncanaryd_connections_accepted_total {}\n# HELP canaryd_connections_handled_total Client connections handled to their end.\n# TYPE canaryd_connections_handled_total counter\ncanaryd_connections_handled_total {}",
            c.accepted.load(Ordering::Relaxed),
            c.handled.load(Ordering::Relaxed)
        );
        out.push_str("# HELP canaryd_active_streams Open SSE responses and upgraded tunnels.\n# TYPE canaryd_active_streams gauge\n");
        for v in Variant::ALL {
            let _ = writeln!(
                out,
                "canaryd_active_streams{{variant=\"{}\"}} {}",
                v.as_str(),
                self.pool(v).streams()
            );
        }
        out.push_str("# HELP canaryd_upstream_connections Upstream connections, idle in a worker's pool or in use.\n# TYPE canaryd_upstream_connections gauge\n");
        for v in Variant::ALL {
            for (i, state) in UPSTREAM_CONN_STATES.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "canaryd_upstream_connections{{variant=\"{}\",state=\"{state}\"}} {}",
                    v.as_str(),
                    self.pool(v).conns(i)
                );
            }
        }
        out.push_str("# HELP canaryd_body_bytes_total Body bytes relayed, from clients (in) and to clients (out).\n# TYPE canaryd_body_bytes_total counter\n");
        for v in Variant::ALL {
            let (bytes_in, bytes_out) = self.pool(v).body_bytes();
            for (dir, n) in [("in", bytes_in), ("out", bytes_out)] {
                let _ = writeln!(
                    out,
                    "canaryd_body_bytes_total{{variant=\"{}\",direction=\"{dir}\"}} {n}",
                    v.as_str()
                );
            }
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Index of `status`'s class in [`CODE_CLASSES`] (1xx → 0 … 5xx → 4).
pub(crate) fn class_of(status: u16) -> usize {
    usize::from(status / 100).clamp(1, 5) - 1
}

/// Escapes a label value per the exposition format.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_renders() {
        let m = Metrics::new();
        let route = RouteStats::new("/api/stream".into(), None);
        m.record(Variant::Canary, &route, 503, Duration::from_micros(40));
        m.record(Variant::Canary, &route, 200, Duration::from_millis(2));
        m.record(Variant::Stable, &route, 101, Duration::from_secs(90));
        m.fallback(Variant::Canary, FallbackReason::CanaryError);
        m.pool(Variant::Canary)
            .upstream_failure(FailureKind::Connect);
        assert_eq!(m.requests_of(Variant::Canary, 5), 1);
        assert_eq!(m.fallbacks_from(Variant::Canary), 1);
        let w = m.windows().stats(Variant::Canary, Duration::from_secs(60));
        assert_eq!((w.requests, w.errors), (2, 1));
        let mut s = String::new();
        m.render(&mut s, 500);
        assert!(s.contains(
            "canaryd_request_duration_seconds_bucket{variant=\"canary\",le=\"0.00005\"} 1"
        ));
        assert!(s.contains(
            "canaryd_request_duration_seconds_bucket{variant=\"canary\",le=\"0.0025\"} 2"
        ));
        // 90 s is beyond the last bound: only +Inf counts it.
        assert!(
            s.contains("canaryd_request_duration_seconds_bucket{variant=\"stable\",le=\"60\"} 0")
        );
        assert!(
            s.contains("canaryd_request_duration_seconds_bucket{variant=\"stable\",le=\"+Inf\"} 1")
        );
        assert!(s.contains(
            "canaryd_fallbacks_total{from=\"canary\",to=\"stable\",reason=\"canary_error\"} 1"
        ));
        assert!(
            s.contains("canaryd_upstream_failures_total{variant=\"canary\",kind=\"connect\"} 1")
        );
        assert!(s.contains("canaryd_canary_weight_percent 5"));
    }
}
