//! The shared data plane: the routing handle, metrics, drain accounting, the access log and the
//! reloadable upstreams generation every request starts from.
//!
//! The request loop itself lives in `request/`; this is what all worker threads share.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::access_log::AccessLog;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::route_metrics::{self, UpstreamStats};
use crate::routes::Routes;
use crate::routing::{Router, RoutingHandle};
use crate::tls::Termination;

/// Everything a request needs, shared by all worker threads.
#[derive(Debug)]
pub struct DataPlane {
    /// The split; written by the controller.
    pub table: RoutingHandle,
    pub metrics: Arc<Metrics>,
    pub drain: Arc<Drain>,
    /// `[proxy.access_log]`, when configured (a restart changes it).
    pub access_log: Option<Arc<AccessLog>>,
    /// What a reload (SIGHUP) can replace; each request keeps the generation it started with.
    upstreams: ArcSwap<Upstreams>,
    /// TLS termination of the `[proxy.tls]` listeners (its certificates reload on SIGHUP).
    pub tls: Option<Arc<Termination>>,
}

/// The reloadable part of the data plane: routing rules, pools, routes, client connection
/// limits.
#[derive(Debug)]
pub struct Upstreams {
    pub router: Router,
    /// The split's pools, indexed by [`Variant::index`](crate::Variant::index).
    pub pools: [Arc<Pool>; 2],
    /// `[upstreams.NAME]`, in name order (routes refer to them by index).
    pub named: Vec<NamedUpstream>,
    pub routes: Routes,
    pub retry_on_canary_error: bool,
    /// `Max-Age` of the sticky cookie, seconds.
    pub cookie_max_age_s: u64,
    pub keepalive_timeout: Duration,
    /// Requests served on one client connection before it is closed.
    pub keepalive_requests: u32,
    /// Time a client has to send a whole request header (nginx `client_header_timeout`).
    pub client_header_timeout: Duration,
    pub client_timeout: Duration,
    /// Idle upstream connections kept per worker thread.
    pub keepalive_pool: usize,
    /// How long an idle upstream connection is kept.
    pub upstream_idle_timeout: Duration,
    /// Plain listeners answer `301 https://…` (except the paths below).
    pub https_redirect: bool,
    pub https_redirect_except: Vec<String>,
}

/// A pool outside the split and its counters (carried across reloads by name).
#[derive(Debug)]
pub struct NamedUpstream {
    pub pool: Arc<Pool>,
    pub stats: Arc<UpstreamStats>,
}

/// In-flight accounting for graceful stops.
#[derive(Debug, Default)]
pub struct Drain {
    inflight: AtomicUsize,
    draining: AtomicBool,
}

/// Counts one request in flight until dropped.
#[derive(Debug)]
pub struct InflightGuard<'a>(&'a Drain);

// === impl DataPlane ===

impl DataPlane {
    pub fn new(
        table: RoutingHandle,
        metrics: Arc<Metrics>,
        upstreams: Upstreams,
        access_log: Option<Arc<AccessLog>>,
    ) -> Self {
        Self {
            table,
            metrics,
            drain: Arc::new(Drain::default()),
            access_log,
            upstreams: ArcSwap::from_pointee(upstreams),
            tls: None,
        }
    }

    /// With TLS termination for the `[proxy.tls]` listeners.
    pub fn with_tls(mut self, tls: Termination) -> Self {
        self.tls = Some(Arc::new(tls));
        self
    }

    /// The upstreams in force now.
    pub fn upstreams(&self) -> Arc<Upstreams> {
        self.upstreams.load_full()
    }

    /// Brings `cached` up to the upstreams in force now. A connection keeps the generation it
    /// last used and only takes a new reference after a reload, so a request touches no
    /// reference count shared with other workers.
    pub fn refresh_upstreams(&self, cached: &mut Arc<Upstreams>) {
        let now = self.upstreams.load();
        if !Arc::ptr_eq(&now, cached) {
            *cached = arc_swap::Guard::into_inner(now);
        }
    }

    /// Appends the Prometheus exposition of the data plane: the split's metrics, and the
    /// routes' and named upstreams' counters of the generation in force.
    pub fn render_metrics(&self, out: &mut String) {
        let up = self.upstreams.load();
        route_metrics::render_split(out, &up.routes.stats());
        self.metrics.render(out, self.table.weight_bp());
        let named: Vec<_> = up.named.iter().map(|n| n.stats.clone()).collect();
        route_metrics::render_named(out, &up.routes.stats(), &named);
    }

    /// Replaces the upstreams; requests already running finish on the old ones.
    pub fn replace_upstreams(&self, new: Upstreams) {
        self.upstreams.store(Arc::new(new));
    }
}

// === impl Drain ===

impl Drain {
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Stop keeping client connections alive; called when a graceful stop begins.
    pub fn start(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn enter(&self) -> InflightGuard<'_> {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard(self)
    }
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}
