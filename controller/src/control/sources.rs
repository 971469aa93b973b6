//! Where rule values come from: [`Sources`] is the seam between the control loop and the
//! world. [`LiveSources`] asks Prometheus for PromQL rules and reads the proxy's own sliding
//! windows for local rules; the loop's unit tests script the values instead.

use std::future::Future;
use std::sync::Arc;

use canaryd_proxy::{Metrics, Variant};
use tokio::time::Duration;

use super::prometheus::{render, PromClient};
use crate::policy::{Rule, Sample, Signal, SourceKind};

/// Where rule values come from.
pub trait Sources: Send + Sync {
    /// One observation of `rule` for `variant`.
    fn sample(&self, rule: &Rule, variant: Variant) -> impl Future<Output = Sample> + Send;
    /// Requests the proxy served to `variant` over the last `window`.
    fn requests(&self, variant: Variant, window: Duration) -> u64;
}

/// Prometheus for PromQL rules, the proxy's windows for local rules.
#[derive(Debug, Clone)]
pub struct LiveSources {
    pub prom: Option<PromClient>,
    pub metrics: Arc<Metrics>,
}

impl Sources for LiveSources {
    async fn sample(&self, rule: &Rule, variant: Variant) -> Sample {
        match rule.source {
            SourceKind::Prometheus => match (&self.prom, &rule.query) {
                (Some(p), Some(q)) => p.query(&render(q, variant.as_str())).await,
                (None, _) => Sample::Error(
                    "no [prometheus] section in the config: PromQL rules cannot run".into(),
                ),
                (_, None) => Sample::Error("rule has no query".into()),
            },
            SourceKind::Local => {
                let st = self.metrics.windows().stats(variant, rule.window);
                let v = match rule.signal {
                    Some(Signal::ErrorRatio) => st.error_ratio(),
                    Some(Signal::LatencyP50) => st.quantile(0.5),
                    Some(Signal::LatencyP90) => st.quantile(0.9),
                    Some(Signal::LatencyP99) => st.quantile(0.99),
                    Some(Signal::LatencyP999) => st.quantile(0.999),
                    Some(Signal::Rps) => Some(st.rps()),
                    None => return Sample::Error("local rule has no signal".into()),
                };
                v.map_or(Sample::NoData, Sample::Value)
            }
        }
    }

    fn requests(&self, variant: Variant, window: Duration) -> u64 {
        self.metrics.windows().stats(variant, window).requests
    }
}
