//! canaryd data plane: a Pingora reverse proxy that splits traffic between a stable and a canary
//! pool.
//!
//! # Layout
//!
//! - [`config`]: the `[proxy]`, `[backends]` and `[routing]` sections, parsed and validated.
//! - [`routing`]: the per-request decision (header override → sticky bucket → weighted random)
//!   and the atomically swapped [`routing::RoutingTable`] the controller writes.
//! - [`sticky`]: bucket hashing and the sticky cookie.
//! - [`routes`]: per-prefix settings (timeouts), longest prefix wins.
//! - [`pool`]: servers of a variant, smooth weighted round-robin, passive `max_fails`.
//! - [`health`]: active HTTP health checks.
//! - [`forwarding`]: X-Real-IP / X-Forwarded-For / X-Forwarded-Proto as nginx sets them.
//! - [`metrics`] and [`process_metrics`]: lock-free counters and histograms, Prometheus text.
//! - [`windows`]: per-variant one-second rings (requests, 5xx, latency buckets) giving the
//!   controller's `source = "local"` rules error ratio, rps and quantiles over the last seconds.
//! - [`service`]: the `ProxyHttp` implementation tying the above together.
//! - [`server`]: building the Pingora server and stopping it gracefully.
//! - [`clock`]: a cheap monotonic millisecond clock.

pub mod clock;
pub mod config;
pub mod forwarding;
pub mod health;
pub mod metrics;
pub mod pool;
pub mod process_metrics;
pub mod routes;
pub mod routing;
pub mod server;
pub mod service;
pub mod sticky;
pub mod windows;

use std::sync::Arc;

pub use config::DataPlaneConfig;
pub use metrics::Metrics;
pub use routing::{RoutingHandle, RoutingTable, Variant};
pub use server::ProxyServer;
pub use service::{DataPlane, Drain};

/// Builds the shared data plane from validated configuration and a routing handle.
pub fn build_data_plane(
    cfg: &DataPlaneConfig,
    table: RoutingHandle,
) -> Result<Arc<DataPlane>, pool::PoolError> {
    let routes = routes::Routes::new(&cfg.proxy);
    let idle = cfg.proxy.upstream_idle_timeout;
    let stable = pool::Pool::new(Variant::Stable, &cfg.backends.stable, &routes, idle)?;
    let canary = pool::Pool::new(Variant::Canary, &cfg.backends.canary, &routes, idle)?;
    let metrics = Arc::new(Metrics::new(
        routes.all().iter().map(|r| r.label.clone()).collect(),
    ));
    Ok(Arc::new(DataPlane {
        router: routing::Router::new(&cfg.routing),
        table,
        pools: [Arc::new(stable), Arc::new(canary)],
        routes,
        metrics,
        retry_on_canary_error: cfg.routing.retry_on_canary_error,
        cookie_max_age_s: cfg
            .routing
            .sticky
            .as_ref()
            .map_or(86_400, |s| s.max_age.as_secs()),
        keepalive_timeout_s: cfg.proxy.keepalive_timeout.as_secs().max(1),
        client_timeout: cfg.proxy.client_timeout,
        drain: Arc::new(Drain::default()),
    }))
}

/// Starts the active health checks of both pools on the current tokio runtime.
pub fn spawn_health_checks(
    plane: &DataPlane,
    cfg: &DataPlaneConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    health::spawn(
        plane.pools[0].clone(),
        cfg.backends.stable.health.clone(),
        shutdown.clone(),
    );
    health::spawn(
        plane.pools[1].clone(),
        cfg.backends.canary.health.clone(),
        shutdown,
    );
}
