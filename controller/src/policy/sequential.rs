//! `test = "sequential"`: is the canary's error ratio worse than stable's by more than
//! `margin`? An always-valid test, so it may be looked at every second without inflating its
//! false-positive rate.
//!
//! # The test
//!
//! The mixture sequential probability ratio test (mSPRT) with a normal mixture, for the
//! difference of two proportions δ = p_canary − p_stable, as in
//! Johari, Koomen, Pekelis & Walsh, "Peeking at A/B tests: why it matters, and what to do
//! about it", KDD 2017, and "Always valid inference: continuous monitoring of A/B tests",
//! Operations Research 70(3), 2022 (the test Optimizely's Stats Engine runs). With the
//! estimate D = x_c/n_c − x_s/n_s, its variance W = p_c(1−p_c)/n_c + p_s(1−p_s)/n_s and a
//! normal mixing distribution N(δ₀, τ²) over the alternatives, the mixture likelihood ratio
//! against δ = δ₀ is
//!
//! ```text
//! Λ(δ₀) = sqrt(W / (W + τ²)) · exp( τ² (D − δ₀)² / (2 W (W + τ²)) )
//! ```
//!
//! a (asymptotic) test martingale under δ = δ₀: by Ville's inequality the chance that it
//! *ever* reaches 1/α is at most α, however often it is looked at. Inverted, the δ₀ it has not
//! rejected form a confidence sequence — an interval valid at every time at once:
//!
//! ```text
//! D ± sqrt( W (W + τ²) / τ² · (2 ln(1/α) + ln((W + τ²) / W)) )
//! ```
//!
//! (Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic
//! confidence sequences", Ann. Statist. 49(2), 2021, eq. (14), the two-sided normal-mixture
//! boundary, with intrinsic time 1/W.) The verdict:
//!
//! - **fail**: the interval lies above `margin` (canary worse than stable by more than
//!   `margin`, with confidence 1 − α);
//! - **pass**: the interval lies below `margin` (shown not worse by more than `margin`);
//! - **inconclusive**: otherwise.
//!
//! Choices made here, and why:
//!
//! - The variance uses Laplace-smoothed proportions (x + 1)/(n + 2), so that zero errors on
//!   both sides do not make the interval collapse to a point (that would "prove" a canary
//!   with no errors in 100 requests is as good as anything).
//! - τ (the mixture's scale, the size of difference the test is tuned to) is the margin, at
//!   least [`MIN_TAU`]: any τ gives a valid test; this one makes it fastest near the margin.
//! - A relative margin ("20%") is `margin × stable's error ratio`, re-estimated every
//!   evaluation; stable's ratio is measured on ~20× the canary's traffic, so it is precise
//!   long before the test can decide.
//! - Below [`MIN_SAMPLES`] requests per variant (or the rule's `min_requests`, if higher) the
//!   rule says no-data: the normal approximation needs some errors to lean on.

use serde::{Deserialize, Serialize};

use crate::policy::mann_whitney::Shift;
use crate::policy::Outcome;

/// The smallest mixture scale τ (an absolute difference of error ratios).
pub const MIN_TAU: f64 = 0.001;
/// Requests per variant below which the test does not judge (no-data).
pub const MIN_SAMPLES: u64 = 50;
/// `alpha` when the policy does not say.
pub const DEFAULT_ALPHA: f64 = 0.01;

/// Requests and 5xx responses of one variant (fields in alphabetical order, as every
/// document's: see `api.rs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub errors: u64,
    pub requests: u64,
}

/// `margin`: the worst tolerated increase of the canary's error ratio over stable's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Margin {
    /// `margin = 0.005`: half a percentage point.
    Absolute(f64),
    /// `margin = "20%"`: 0.2 × stable's error ratio.
    Relative(f64),
}

/// What one evaluation of a test found (this one's, or `mann-whitney`'s: see
/// [`super::mann_whitney::judge`] for what its fields hold there).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    /// `Pass`, `Fail` or `Inconclusive`.
    pub outcome: Outcome,
    /// D: the canary's error ratio minus stable's.
    pub difference: f64,
    /// The confidence sequence for the true difference at this evaluation.
    pub interval: (f64, f64),
    /// The margin, absolute.
    pub margin: f64,
    /// ln Λ(margin): the evidence against "the difference is exactly the margin". The test
    /// decides (pass or fail, by the sign of D − margin) once it reaches ln(1/α).
    pub statistic: f64,
    pub canary: Counts,
    pub stable: Counts,
    /// `mann-whitney`: the direction, U and the medians; `None` for this test.
    pub latency: Option<Shift>,
}

// === impl Counts ===

impl Counts {
    pub fn ratio(self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors.min(self.requests) as f64 / self.requests as f64
        }
    }

    /// Laplace-smoothed ratio, for variances.
    fn smoothed(self) -> f64 {
        (self.errors.min(self.requests) as f64 + 1.0) / (self.requests as f64 + 2.0)
    }

    /// What was counted since `base` (counters only grow; a reset counts from zero).
    pub fn since(self, base: Counts) -> Counts {
        Counts {
            requests: self.requests.saturating_sub(base.requests),
            errors: self.errors.saturating_sub(base.errors),
        }
    }
}

// === impl Judgement ===

impl Judgement {
    /// The values compared, (canary, stable): the error ratios, or for `mann-whitney` the
    /// medians (seconds).
    pub fn values(&self) -> (f64, f64) {
        match self.latency {
            Some(l) => (l.canary_median, l.stable_median),
            None => (self.canary.ratio(), self.stable.ratio()),
        }
    }
}

// === impl Margin ===

impl Margin {
    /// The margin as an absolute difference, given stable's error ratio.
    pub fn absolute(self, stable_ratio: f64) -> f64 {
        match self {
            Margin::Absolute(m) => m,
            Margin::Relative(r) => r * stable_ratio,
        }
    }
}

impl std::fmt::Display for Margin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Margin::Absolute(m) => write!(f, "{m}"),
            Margin::Relative(r) => write!(f, "{}%", r * 100.0),
        }
    }
}

/// The half-width of the normal-mixture confidence sequence around an estimate of variance
/// `w`, mixture scale `tau`, level `alpha` (see the module documentation). Infinite when
/// `w` is not positive and finite.
pub fn radius(w: f64, tau: f64, alpha: f64) -> f64 {
    if !(w > 0.0 && w.is_finite() && tau > 0.0 && alpha > 0.0 && alpha < 1.0) {
        return f64::INFINITY;
    }
    let t2 = tau * tau;
    (w * (w + t2) / t2 * (2.0 * (1.0 / alpha).ln() + ((w + t2) / w).ln())).sqrt()
}

/// ln Λ(δ₀) of the normal-mixture SPRT for an estimate `d` of variance `w`.
pub fn log_lr(d: f64, delta0: f64, w: f64, tau: f64) -> f64 {
    if !(w > 0.0 && w.is_finite()) {
        return 0.0;
    }
    let t2 = tau * tau;
    0.5 * (w / (w + t2)).ln() + t2 * (d - delta0).powi(2) / (2.0 * w * (w + t2))
}

/// Judges the counts of the step so far. `None` when a variant has fewer than
/// `max(min_requests, MIN_SAMPLES)` requests (no data yet).
pub fn judge(
    canary: Counts,
    stable: Counts,
    margin: Margin,
    alpha: f64,
    min_requests: u64,
) -> Option<Judgement> {
    let min = min_requests.max(MIN_SAMPLES);
    if canary.requests < min || stable.requests < min {
        return None;
    }
    let (pc, ps) = (canary.ratio(), stable.ratio());
    let d = pc - ps;
    let (qc, qs) = (canary.smoothed(), stable.smoothed());
    let w = qc * (1.0 - qc) / canary.requests as f64 + qs * (1.0 - qs) / stable.requests as f64;
    let m = margin.absolute(ps);
    let tau = m.max(MIN_TAU);
    let r = radius(w, tau, alpha);
    let interval = (d - r, d + r);
    let outcome = if interval.0 > m {
        Outcome::Fail
    } else if interval.1 < m {
        Outcome::Pass
    } else {
        Outcome::Inconclusive
    };
    Some(Judgement {
        outcome,
        difference: d,
        interval,
        margin: m,
        statistic: log_lr(d, m, w, tau),
        canary,
        stable,
        latency: None,
    })
}

#[cfg(test)]
mod tests;
