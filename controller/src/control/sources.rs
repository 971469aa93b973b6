//! Where rule values come from: [`Sources`] is the seam between the control loop and the
//! world. [`LiveSources`] asks Prometheus for PromQL rules and reads the proxy's own sliding
//! windows for local rules; the loop's unit tests script the values instead.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use canaryd_proxy::{Metrics, Variant, WindowStats};
use tokio::time::Duration;

use super::prometheus::{render, PromClient};
use crate::cluster::Fleet;
use crate::policy::{Counts, Histogram, Rule, Sample, Signal, SourceKind, Traffic};

/// Where rule values come from.
pub trait Sources: Send + Sync {
    /// One observation of `rule` for `variant`.
    fn sample(&self, rule: &Rule, variant: Variant) -> impl Future<Output = Sample> + Send;
    /// Requests the proxy served to `variant` over the last `window`.
    fn requests(&self, variant: Variant, window: Duration) -> u64;
    /// How long a remote sample may take before it is an error (`prometheus.timeout`);
    /// the control loop gives up a second later whatever the source does.
    fn sample_timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
    /// The proxy's request, 5xx and fallback counters since it started (they only grow):
    /// `test` rules and the traffic-share check judge what they gained since the step began.
    /// `None`: this source does not count (those rules say no-data, the check is skipped).
    fn traffic(&self) -> Option<Traffic> {
        None
    }
}

/// Prometheus for PromQL rules, the proxy's windows for local rules.
///
/// Cheap to clone, and clones share the Prometheus client slot: the daemon keeps one clone and
/// replaces the client on reload ([`set_prometheus`](Self::set_prometheus)) while the control
/// loop samples with another. A query already running keeps the client it started with.
#[derive(Clone)]
pub struct LiveSources {
    prom: Arc<ArcSwapOption<PromClient>>,
    metrics: Arc<Metrics>,
    /// A fleet (`[cluster] store = "etcd"`): local rules read the members' summed reports
    /// instead of this proxy's windows.
    fleet: Option<Arc<Fleet>>,
}

impl LiveSources {
    /// Sources querying `prom` (none: PromQL rules are errors) and reading `metrics`.
    pub fn new(prom: Option<PromClient>, metrics: Arc<Metrics>) -> Self {
        Self {
            prom: Arc::new(ArcSwapOption::from(prom.map(Arc::new))),
            metrics,
            fleet: None,
        }
    }

    /// Local rules judge the fleet's summed reports (see `cluster/reports.rs`): no quorum of
    /// fresh reports on the current epoch is no data.
    pub fn with_fleet(mut self, fleet: Arc<Fleet>) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// This proxy's window, or the fleet's sum (`None`: no quorum).
    fn window(&self, variant: Variant, window: Duration) -> Option<WindowStats> {
        match &self.fleet {
            Some(f) => f.stats(variant, window),
            None => Some(self.metrics.windows().stats(variant, window)),
        }
    }

    /// Replaces the Prometheus client for every clone (e.g. on SIGHUP after `[prometheus]`
    /// changed); `None` removes it. Queries already running finish with the old one.
    pub fn set_prometheus(&self, prom: Option<PromClient>) {
        self.prom.store(prom.map(Arc::new));
    }

    /// The Prometheus client in use now.
    pub fn prometheus(&self) -> Option<Arc<PromClient>> {
        self.prom.load_full()
    }

    /// The proxy's metrics (local rules' windows).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }
}

impl fmt::Debug for LiveSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSources")
            .field("prom", &self.prometheus())
            .finish_non_exhaustive()
    }
}

impl Sources for LiveSources {
    fn sample_timeout(&self) -> Duration {
        self.prometheus()
            .map_or(Duration::from_secs(5), |p| p.timeout())
    }

    async fn sample(&self, rule: &Rule, variant: Variant) -> Sample {
        match rule.source {
            // The client is taken once: a reload swapping it does not touch this query.
            SourceKind::Prometheus => match (self.prometheus(), &rule.query) {
                (Some(p), Some(q)) => p.query(&render(q, variant.as_str())).await,
                (None, _) => Sample::Error(
                    "no [prometheus] section in the config: PromQL rules cannot run".into(),
                ),
                (_, None) => Sample::Error("rule has no query".into()),
            },
            SourceKind::Local => {
                let Some(st) = self.window(variant, rule.window) else {
                    return Sample::NoData;
                };
                let v = match rule.signal {
                    Some(Signal::ErrorRatio) => st.error_ratio(),
                    Some(Signal::LatencyP50) => st.quantile(0.5),
                    Some(Signal::LatencyP90) => st.quantile(0.9),
                    Some(Signal::LatencyP99) => st.quantile(0.99),
                    Some(Signal::LatencyP999) => st.quantile(0.999),
                    Some(Signal::Rps) => Some(st.rps()),
                    // Judged by its test on the step's histograms, never sampled.
                    Some(Signal::Latency) => {
                        return Sample::Error(
                            "signal = \"latency\" is judged by test = \"mann-whitney\"".into(),
                        )
                    }
                    None => return Sample::Error("local rule has no signal".into()),
                };
                v.map_or(Sample::NoData, Sample::Value)
            }
        }
    }

    fn requests(&self, variant: Variant, window: Duration) -> u64 {
        self.window(variant, window).map_or(0, |w| w.requests)
    }

    /// The cumulative counters behind the windows (the windows reach back 120 s at most; a
    /// step lasts hours): every request and 5xx `Metrics::record` counted, all routes, and
    /// the latency histograms of `canaryd_request_duration_seconds`.
    fn traffic(&self) -> Option<Traffic> {
        match &self.fleet {
            Some(f) => f.traffic(),
            None => Some(traffic_of(&self.metrics)),
        }
    }
}

/// The proxy's cumulative request, 5xx and fallback counters (every route) and latency
/// histograms.
pub(crate) fn traffic_of(m: &Metrics) -> Traffic {
    let counts = |v: Variant| Counts {
        requests: (1..=5).map(|class| m.requests_of(v, class)).sum(),
        errors: m.requests_of(v, 5),
    };
    Traffic {
        canary: counts(Variant::Canary),
        stable: counts(Variant::Stable),
        fallbacks_from_canary: m.fallbacks_from(Variant::Canary),
        fallbacks_from_stable: m.fallbacks_from(Variant::Stable),
        canary_latency: Histogram {
            counts: m.latency(Variant::Canary).buckets(),
        },
        stable_latency: Histogram {
            counts: m.latency(Variant::Stable).buckets(),
        },
    }
}
