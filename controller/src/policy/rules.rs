//! Rule semantics: turning one observation of a rule's metric into an outcome (pass, fail,
//! no-data, error) and a verdict for the rollout (healthy, not healthy, act on `on_fail`).
//!
//! A breach acts only after it has lasted `for` continuously; no-data follows `on_no_data`
//! (hold by default: never advance on silence); errors hold and alert, and after
//! `max_consecutive_errors` in a row count as a failure. The state here is per rule and lives
//! in memory: after a restart a breach must last `for` again before it acts.
//!
//! `test` rules ([`super::sequential`]) are judged by [`RuleState::observe_test`]: a `fail`
//! acts like a breach (`for`, `on_fail`), a `pass` is healthy, and `inconclusive` holds the
//! step like no-data — whatever `on_no_data` says, a test that cannot tell never advances.

use serde::Serialize;
use tokio::time::{Duration, Instant};

use crate::policy::{Judgement, OnFail, OnNoData, Rule};

/// One observation of a rule's metric (a PromQL instant query or a local window).
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// A scalar, or the value of the single series of a vector (may be ±Inf).
    Value(f64),
    /// An empty vector, or NaN (e.g. `0/0` over an idle window).
    NoData,
    /// Prometheus unreachable, timed out, rejected the query, or answered an unusable shape.
    Error(String),
}

/// What the last evaluation of a rule found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    NoData,
    Error,
    /// A `test` rule that cannot tell yet whether the canary is worse: holds the step.
    Inconclusive,
}

/// What a rule asks of the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Counts towards the step's hold.
    Healthy,
    /// Holds the rollout (breach shorter than `for`, no-data, error).
    Unhealthy,
    /// The breach lasted `for` (or errors exceeded the limit): apply `on_fail`.
    Act(OnFail),
}

/// The running state of one rule.
#[derive(Debug, Clone, Default)]
pub struct RuleState {
    /// Value judged (canary / stable ratio for baseline rules).
    pub value: Option<f64>,
    /// Raw values per variant for baseline rules: (canary, stable).
    pub baseline: Option<(Option<f64>, Option<f64>)>,
    pub outcome: Option<Outcome>,
    pub verdict: Option<Verdict>,
    pub error: Option<String>,
    pub consecutive_errors: u32,
    /// `test` rules: the last evaluation of the test (`None` before one, and on no-data).
    pub judgement: Option<Judgement>,
    breaching_since: Option<Instant>,
}

// === impl Outcome ===

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::NoData,
        Outcome::Error,
        Outcome::Inconclusive,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::NoData => "no_data",
            Outcome::Error => "error",
            Outcome::Inconclusive => "inconclusive",
        }
    }
}

// === impl RuleState ===

impl RuleState {
    /// How long the current breach has lasted.
    pub fn breaching_for(&self, now: Instant) -> Duration {
        self.breaching_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since))
    }

    /// Judges one observation.
    pub fn observe(
        &mut self,
        rule: &Rule,
        now: Instant,
        sample: Sample,
        max_consecutive_errors: Option<u32>,
    ) -> Verdict {
        let verdict = match sample {
            Sample::Value(v) => {
                self.consecutive_errors = 0;
                self.error = None;
                self.value = Some(v);
                if rule.fail_when.is_some_and(|t| t.breached(v)) {
                    self.outcome = Some(Outcome::Fail);
                    self.breach(rule, now)
                } else {
                    self.outcome = Some(Outcome::Pass);
                    self.breaching_since = None;
                    Verdict::Healthy
                }
            }
            Sample::NoData => {
                self.consecutive_errors = 0;
                self.error = None;
                self.value = None;
                self.outcome = Some(Outcome::NoData);
                match rule.on_no_data {
                    OnNoData::Pass => {
                        self.breaching_since = None;
                        Verdict::Healthy
                    }
                    OnNoData::Hold => {
                        self.breaching_since = None;
                        Verdict::Unhealthy
                    }
                    OnNoData::Fail => self.breach(rule, now),
                }
            }
            Sample::Error(e) => {
                self.consecutive_errors += 1;
                self.error = Some(e);
                self.value = None;
                self.outcome = Some(Outcome::Error);
                if max_consecutive_errors.is_some_and(|m| self.consecutive_errors >= m) {
                    Verdict::Act(rule.on_fail)
                } else {
                    Verdict::Unhealthy
                }
            }
        };
        self.verdict = Some(verdict);
        verdict
    }

    /// Judges one evaluation of a `test` rule: its judgement, or `None` for too few requests
    /// (no-data, following `on_no_data`).
    pub fn observe_test(&mut self, rule: &Rule, now: Instant, j: Option<Judgement>) -> Verdict {
        let Some(j) = j else {
            self.judgement = None;
            return self.observe(rule, now, Sample::NoData, None);
        };
        self.consecutive_errors = 0;
        self.error = None;
        // As for every baseline rule, the value is canary / stable (error ratios, or median
        // latencies; the interval is on the difference).
        let (canary, stable) = j.values();
        self.value = match baseline_ratio(&Sample::Value(canary), &Sample::Value(stable)) {
            Sample::Value(v) => Some(v),
            _ => None,
        };
        self.judgement = Some(j);
        self.outcome = Some(j.outcome);
        let verdict = match j.outcome {
            Outcome::Fail => self.breach(rule, now),
            Outcome::Pass => {
                self.breaching_since = None;
                Verdict::Healthy
            }
            // Inconclusive (and anything else a test cannot say): hold, never advance.
            _ => {
                self.breaching_since = None;
                Verdict::Unhealthy
            }
        };
        self.verdict = Some(verdict);
        verdict
    }

    fn breach(&mut self, rule: &Rule, now: Instant) -> Verdict {
        let since = *self.breaching_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= rule.for_ {
            Verdict::Act(rule.on_fail)
        } else {
            Verdict::Unhealthy
        }
    }
}

/// Combines the canary's and stable's samples of a baseline rule into canary / stable.
/// Both zero is 1 (no difference); stable zero with a canary above zero is +∞.
pub fn baseline_ratio(canary: &Sample, stable: &Sample) -> Sample {
    match (canary, stable) {
        (Sample::Error(e), _) => Sample::Error(format!("canary: {e}")),
        (_, Sample::Error(e)) => Sample::Error(format!("stable: {e}")),
        (Sample::Value(c), Sample::Value(s)) => Sample::Value(if *s == 0.0 {
            if *c == 0.0 {
                1.0
            } else {
                f64::INFINITY
            }
        } else {
            c / s
        }),
        _ => Sample::NoData,
    }
}

#[cfg(test)]
mod tests;
