//! canaryd data plane: a Pingora reverse proxy that splits traffic between a stable and a canary
//! pool.
//!
//! Its configuration (`[proxy]`, `[backends]`, `[routing]`: [`DataPlaneConfig`]) is parsed and
//! validated by the `canaryd-config` crate; this crate builds the data plane from it.
//!
//! # Layout
//!
//! - `routing`: the per-request decision (header override → sticky bucket → weighted random)
//!   and the atomically swapped [[`RoutingTable`]] the controller writes.
//! - `sticky`: bucket hashing and the sticky cookie.
//! - `routes`: routes by host then longest prefix: target (the split or a named upstream),
//!   timeouts, header rules, body limit, error pages.
//! - `header_rules`: a route's request and response header rules, compiled from templates.
//! - `head`: read access to a request header, parsed by pingora-core or by canaryd's own
//!   HTTP/1 parser.
//! - `request_id`: the per-request id (`$request_id`, `X-Request-Id`).
//! - `pool`: servers of a pool (a side of the split, a named upstream), smooth weighted
//!   round-robin, passive `max_fails`.
//! - `health`: active HTTP health checks.
//! - `forwarding`: X-Real-IP / X-Forwarded-For / X-Forwarded-Proto as nginx sets them.
//! - `metrics` and `process_metrics`: lock-free counters and histograms, Prometheus text.
//! - `route_metrics`: per-route and per-named-upstream counters, carried across reloads.
//! - `windows`: per-variant (and shadow) one-second rings (requests, 5xx, latency buckets) giving the
//!   controller's `source = "local"` rules error ratio, rps and quantiles over the last seconds.
//! - `plane`: what every worker shares: routing handle, metrics, drain accounting, and the
//!   reloadable upstreams generation.
//! - `request`: canaryd's own request loop: its own HTTP/1 session for the common bodiless
//!   request (both headers parsed in place), pingora-core's HTTP/1 and HTTP/2 server sessions
//!   for the rest; reading the request header under `client_header_timeout`, deciding,
//!   forwarding over a per-worker upstream keepalive pool, retries, streaming and upgraded
//!   tunnels.
//! - `tls`: TLS termination on the `[proxy.tls]` listeners (rustls, SNI, ALPN, resumption,
//!   certificates swapped on reload) and the TLS stream type.
//! - `listener`: one single-threaded Pingora service per worker running canaryd's own accept
//!   loop on the shared listening sockets (no cross-thread wake-ups, one compact task per
//!   connection).
//! - `server`: building the Pingora server and stopping it gracefully.
//! - `handover`: where the listening sockets come from (bound, systemd `LISTEN_FDS`, or taken
//!   from the running process by `serve --upgrade` over a unix socket) and handing them on.
//! - `access_log`: `[proxy.access_log]`: lines formatted into per-worker buffers, written by a
//!   thread of its own, reopened on SIGUSR1.
//! - `clock`: a cheap monotonic millisecond clock.
//!
//! Modules are private; what the controller, the binary, the benches and the tests use is
//! re-exported below.

mod access_log;
mod clock;
mod forwarding;
mod handover;
mod head;
mod header_rules;
mod health;
mod listener;
mod metrics;
mod plane;
mod pool;
mod process_metrics;
mod request;
mod request_id;
mod route_metrics;
mod routes;
mod routing;
mod server;
mod sticky;
mod tls;
mod windows;

use std::sync::Arc;

pub use access_log::{AccessLog, AccessLogError, Entry as AccessLogEntry};
use canaryd_config::DataPlaneConfig;
pub use handover::{
    serve_upgrades, Claimed, HandoverError, Listeners, Origin, Upgrade, UpgradeHooks,
};
pub use metrics::{
    escape as escape_label, FailureKind, FallbackReason, Histogram, Metrics, PoolCounters,
    ShadowCounters, LATENCY_BOUNDS_S,
};
pub use plane::{DataPlane, Drain, NamedUpstream, Upstreams};
pub use pool::{Pool, PoolError};
pub use process_metrics::render as render_process_metrics;
pub use request_id::RequestId;
pub use route_metrics::RouteStats;
pub use routes::Routes;
pub use routing::{Reason, Router, RoutingHandle, RoutingTable, Variant};
pub use server::{ProxyServer, ServerError, StopHandle};
pub use tls::{check_tls, CertError, TlsError};
pub use windows::{Lane, WindowStats, Windows};

/// Why the data plane cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Pool(#[from] pool::PoolError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    AccessLog(#[from] AccessLogError),
}

/// Builds the shared data plane from validated configuration and a routing handle; opens the
/// access log when one is configured.
pub fn build_data_plane(
    cfg: &DataPlaneConfig,
    table: RoutingHandle,
) -> Result<Arc<DataPlane>, BuildError> {
    let upstreams = build_upstreams(cfg, None)?;
    let access_log = cfg
        .proxy
        .access_log
        .as_ref()
        .map(AccessLog::open)
        .transpose()?;
    let mut plane = DataPlane::new(table, Arc::new(Metrics::new()), upstreams, access_log);
    if let Some(tls) = &cfg.proxy.tls {
        plane = plane.with_tls(tls::Termination::new(tls)?);
    }
    Ok(Arc::new(plane))
}

/// Why a reloaded data-plane configuration cannot be applied live.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Pool(#[from] pool::PoolError),
    #[error("{}; the certificates in force stay", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Certificates(Vec<CertError>),
}

/// Builds the reloadable part. Servers present in `previous` keep their health verdict, so a
/// reload does not put a server that is down back into rotation; routes and named upstreams
/// keep their counters.
pub fn build_upstreams(
    cfg: &DataPlaneConfig,
    previous: Option<&Upstreams>,
) -> Result<Upstreams, pool::PoolError> {
    let stable = pool::Pool::new("backends.stable", 0, &cfg.backends.stable)?;
    let canary = pool::Pool::new("backends.canary", 1, &cfg.backends.canary)?;
    let old_named: Vec<_> = previous
        .map(|p| p.named.iter().map(|n| n.stats.clone()).collect())
        .unwrap_or_default();
    let mut named = Vec::with_capacity(cfg.upstreams.len());
    for (name, pool_cfg) in &cfg.upstreams {
        let stats = route_metrics::UpstreamStats::carried(name, &old_named);
        let pool = pool::Pool::new(&format!("upstreams.{name}"), stats.key, pool_cfg)?;
        named.push(NamedUpstream {
            pool: Arc::new(pool),
            stats,
        });
    }
    if let Some(prev) = previous {
        let old = prev.pools.iter().chain(prev.named.iter().map(|n| &n.pool));
        let old: Vec<&Arc<pool::Pool>> = old.collect();
        let new = [&stable, &canary]
            .into_iter()
            .chain(named.iter().map(|n| &*n.pool));
        for new in new {
            let Some(old) = old.iter().find(|o| o.section == new.section) else {
                continue;
            };
            for s in &new.servers {
                if let Some(o) = old.servers.iter().find(|o| o.addr == s.addr) {
                    s.set_up(o.is_up());
                }
            }
        }
    }
    let names: Vec<String> = cfg.upstreams.keys().cloned().collect();
    let old_routes = previous.map(|p| p.routes.stats()).unwrap_or_default();
    Ok(Upstreams {
        router: routing::Router::new(&cfg.routing),
        pools: [Arc::new(stable), Arc::new(canary)],
        named,
        routes: routes::Routes::new(&cfg.proxy, &names, &old_routes),
        retry_on_canary_error: cfg.routing.retry_on_canary_error,
        cookie_max_age_s: cfg
            .routing
            .sticky
            .as_ref()
            .map_or(86_400, |s| s.max_age.as_secs()),
        keepalive_timeout: cfg.proxy.keepalive_timeout,
        keepalive_requests: cfg.proxy.keepalive_requests.max(1),
        client_header_timeout: cfg.proxy.client_header_timeout,
        client_timeout: cfg.proxy.client_timeout,
        keepalive_pool: cfg.proxy.keepalive_pool,
        shadow_max_inflight: cfg.proxy.shadow_max_inflight,
        shadow_timeout: cfg.proxy.shadow_timeout,
        upstream_idle_timeout: cfg.proxy.upstream_idle_timeout,
        https_redirect: cfg.proxy.https_redirect,
        https_redirect_except: cfg.proxy.https_redirect_except.clone(),
    })
}

/// A reloaded data-plane configuration, built and checked, not yet in force.
#[derive(Debug)]
pub struct PreparedReload {
    upstreams: Upstreams,
    cfg: DataPlaneConfig,
    /// The TLS listeners' certificates, read again from their files (renewed ones included).
    certs: Option<tls::CertSet>,
}

/// Builds the new upstreams for `cfg` (servers keep their health verdict) and checks they can
/// replace the running ones; nothing changes yet.
pub fn prepare_reload(
    plane: &DataPlane,
    cfg: &DataPlaneConfig,
) -> Result<PreparedReload, ReloadError> {
    let current = plane.upstreams();
    let upstreams = build_upstreams(cfg, Some(&current))?;
    let certs = match (&plane.tls, &cfg.proxy.tls) {
        (Some(running), Some(tls)) => Some(
            running
                .load(&tls.certificates)
                .map_err(ReloadError::Certificates)?,
        ),
        _ => None,
    };
    Ok(PreparedReload {
        upstreams,
        cfg: cfg.clone(),
        certs,
    })
}

/// Puts a prepared reload in force: routing rules, pools, timeouts and health checks change at
/// once; requests already running finish on the old ones; new TLS handshakes get the reloaded
/// certificates, connections already up keep theirs. Returns the new health checkers'
/// stop switch (the caller stops the old generation's).
pub fn apply_reload(
    plane: &DataPlane,
    prepared: PreparedReload,
) -> tokio::sync::watch::Sender<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    spawn_health_checks(&prepared.upstreams, &prepared.cfg, stopped);
    plane.replace_upstreams(prepared.upstreams);
    if let (Some(running), Some(certs)) = (&plane.tls, prepared.certs) {
        running.replace(certs);
    }
    stop
}

/// Starts the active health checks of every pool (the split's and the named upstreams') on
/// the current tokio runtime.
pub fn spawn_health_checks(
    upstreams: &Upstreams,
    cfg: &DataPlaneConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    health::spawn(
        upstreams.pools[0].clone(),
        cfg.backends.stable.health.clone(),
        shutdown.clone(),
    );
    health::spawn(
        upstreams.pools[1].clone(),
        cfg.backends.canary.health.clone(),
        shutdown.clone(),
    );
    for (n, pool_cfg) in upstreams.named.iter().zip(cfg.upstreams.values()) {
        health::spawn(n.pool.clone(), pool_cfg.health.clone(), shutdown.clone());
    }
}
