//! The traffic-share check (sample-ratio mismatch): does the canary get the share of requests
//! its weight says? A canary that silently gets less traffic than it should (a routing bug, a
//! pool that refuses connections, clients pinned elsewhere) is judged on too little — or on
//! the wrong — traffic, and its numbers cannot be trusted; one that gets more is taking risk
//! nobody agreed to. A mismatch holds the rollout (it never advances) and alerts.
//!
//! # The test
//!
//! An always-valid confidence sequence for the canary's share s of the step's requests, the
//! same normal-mixture boundary as [`super::sequential`] (Howard et al., Ann. Statist. 2021,
//! eq. (14); the mSPRT of Johari et al. 2022), at α = [`ALPHA`] with the variance the
//! expected share implies, w(1 − w)/N: the share s̄ = n_canary / N, the interval
//! s̄ ± radius. It is a mismatch when the interval lies wholly outside the tolerated band
//! `w ± max(TOLERANCE × w, MIN_BAND)` — checked every second, the false-alarm rate stays
//! below α over the whole step.
//!
//! # What is counted, and what is not
//!
//! The counts are the proxy's per-variant request counters since the step began, corrected
//! for fallbacks: a request the canary failed and stable served again was counted on both,
//! and is taken off stable's count (`fallbacks_from(canary)`), and the other way round. What
//! the proxy does not count separately, and the band must absorb: header overrides
//! (`X-Canary: always/never` sends requests to a variant whatever the weight) and sticky
//! routing (a few heavy clients pinned to one variant make the share vary far more than
//! independent requests would). Hence the band (20 % of the weight, at least half a point);
//! a policy whose traffic comes from a handful of sticky clients turns the check off with
//! `traffic_check = false`.

use super::mann_whitney::Histogram;
use super::sequential::{radius, Counts};

/// The check's false-alarm rate over a step.
pub const ALPHA: f64 = 0.001;
/// The tolerated deviation, relative to the weight.
pub const TOLERANCE: f64 = 0.2;
/// The tolerated deviation at least, absolute (0.5 percentage points).
pub const MIN_BAND: f64 = 0.005;
/// Requests (both variants) below which the check does not judge.
pub const MIN_REQUESTS: u64 = 200;

/// The step's traffic, as the proxy counted it (also what a fleet member reports: the
/// latency fields are absent from older members' reports).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Traffic {
    pub canary: Counts,
    pub stable: Counts,
    /// Requests moved from the canary to stable (retried or served there).
    pub fallbacks_from_canary: u64,
    /// Requests moved from stable to the canary.
    pub fallbacks_from_stable: u64,
    /// Latency per bucket of each variant (`test = "mann-whitney"`).
    #[serde(default)]
    pub canary_latency: Histogram,
    #[serde(default)]
    pub stable_latency: Histogram,
}

/// What the check found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    /// The canary's share of the requests, 0..=1.
    pub observed: f64,
    /// Its weight, 0..=1.
    pub expected: f64,
    /// The confidence sequence for the share.
    pub interval: (f64, f64),
    /// Requests the share is measured on.
    pub requests: u64,
    pub mismatch: bool,
}

// === impl Traffic ===

impl Traffic {
    /// What was counted since `base`.
    pub fn since(self, base: Traffic) -> Traffic {
        Traffic {
            canary: self.canary.since(base.canary),
            stable: self.stable.since(base.stable),
            fallbacks_from_canary: self
                .fallbacks_from_canary
                .saturating_sub(base.fallbacks_from_canary),
            fallbacks_from_stable: self
                .fallbacks_from_stable
                .saturating_sub(base.fallbacks_from_stable),
            canary_latency: self.canary_latency.since(base.canary_latency),
            stable_latency: self.stable_latency.since(base.stable_latency),
        }
    }

    /// Requests routed to each variant: (canary, stable), a request served twice counted
    /// once, on the variant it was routed to.
    pub fn routed(self) -> (u64, u64) {
        (
            self.canary
                .requests
                .saturating_sub(self.fallbacks_from_stable),
            self.stable
                .requests
                .saturating_sub(self.fallbacks_from_canary),
        )
    }
}

// === impl Share ===

impl Share {
    /// Observed and expected shares in percent, for reasons and alerts.
    pub fn describe(&self) -> String {
        format!(
            "the canary got {:.2} % of {} requests this step (interval {:.2}–{:.2} %), its weight is {} %",
            self.observed * 100.0,
            self.requests,
            self.interval.0.max(0.0) * 100.0,
            self.interval.1.min(1.0) * 100.0,
            self.expected * 100.0
        )
    }
}

/// The tolerated band around the weight `w` (0..=1).
pub fn band(w: f64) -> (f64, f64) {
    let half = (TOLERANCE * w).max(MIN_BAND);
    (w - half, w + half)
}

/// Checks the step's traffic against the weight (in percent). `None` when there is nothing
/// to check: too few requests, or a weight of 0 or 100 %.
pub fn check(traffic: Traffic, weight_percent: f64) -> Option<Share> {
    let w = weight_percent / 100.0;
    if !(w > 0.0 && w < 1.0) {
        return None;
    }
    let (c, s) = traffic.routed();
    let n = c + s;
    if n < MIN_REQUESTS {
        return None;
    }
    let observed = c as f64 / n as f64;
    let var = w * (1.0 - w) / n as f64;
    let (lo, hi) = band(w);
    let tau = (hi - w).max(MIN_BAND);
    let r = radius(var, tau, ALPHA);
    let interval = (observed - r, observed + r);
    Some(Share {
        observed,
        expected: w,
        interval,
        requests: n,
        mismatch: interval.1 < lo || interval.0 > hi,
    })
}

#[cfg(test)]
mod tests;
