//! Rule semantics: turning one observation of a rule's metric into an outcome (pass, fail,
//! no-data, error) and a verdict for the rollout (healthy, not healthy, act on `on_fail`).
//!
//! A breach acts only after it has lasted `for` continuously; no-data follows `on_no_data`
//! (hold by default: never advance on silence); errors hold and alert, and after
//! `max_consecutive_errors` in a row count as a failure. The state here is per rule and lives
//! in memory: after a restart a breach must last `for` again before it acts.

use serde::Serialize;
use tokio::time::{Duration, Instant};

use crate::policy::{OnFail, OnNoData, Rule};

pub use crate::prometheus::Sample;

/// What the last evaluation of a rule found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    NoData,
    Error,
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
    breaching_since: Option<Instant>,
}

// === impl Outcome ===

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Pass,
        Outcome::Fail,
        Outcome::NoData,
        Outcome::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::NoData => "no_data",
            Outcome::Error => "error",
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
                if rule.fail_when.breached(v) {
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
mod tests {
    use super::*;
    use crate::policy::Policy;

    fn rule(extra: &str) -> Rule {
        let src = format!(
            "name = \"t\"\ninterval = \"10s\"\n[[steps]]\nweight = 100\nhold = \"1m\"\n[[rules]]\nname = \"r\"\nsource = \"local\"\nsignal = \"error_ratio\"\nfail_when = \"> 0.1\"\n{extra}"
        );
        Policy::from_source("p.toml", &src).unwrap().rules.remove(0)
    }

    #[tokio::test(start_paused = true)]
    async fn each_outcome() {
        let r = rule("");
        let mut s = RuleState::default();
        let now = Instant::now();
        assert_eq!(
            s.observe(&r, now, Sample::Value(0.05), None),
            Verdict::Healthy
        );
        assert_eq!(s.outcome, Some(Outcome::Pass));
        assert_eq!(
            s.observe(&r, now, Sample::Value(0.5), None),
            Verdict::Act(OnFail::Rollback)
        );
        assert_eq!(s.outcome, Some(Outcome::Fail));
        assert_eq!(s.observe(&r, now, Sample::NoData, None), Verdict::Unhealthy);
        assert_eq!(s.outcome, Some(Outcome::NoData));
        assert_eq!(
            s.observe(&r, now, Sample::Error("down".into()), None),
            Verdict::Unhealthy
        );
        assert_eq!(s.outcome, Some(Outcome::Error));
        assert_eq!(s.error.as_deref(), Some("down"));
    }

    #[tokio::test(start_paused = true)]
    async fn breach_must_last_for() {
        let r = rule("for = \"5m\"\non_fail = \"hold\"");
        let mut s = RuleState::default();
        let start = Instant::now();
        assert_eq!(
            s.observe(&r, start, Sample::Value(1.0), None),
            Verdict::Unhealthy
        );
        let t = start + Duration::from_secs(299);
        assert_eq!(
            s.observe(&r, t, Sample::Value(1.0), None),
            Verdict::Unhealthy
        );
        assert_eq!(s.breaching_for(t), Duration::from_secs(299));
        // A single good value resets the breach.
        let t = start + Duration::from_secs(300);
        assert_eq!(s.observe(&r, t, Sample::Value(0.0), None), Verdict::Healthy);
        let t2 = t + Duration::from_secs(1);
        assert_eq!(
            s.observe(&r, t2, Sample::Value(1.0), None),
            Verdict::Unhealthy
        );
        let t3 = t2 + Duration::from_secs(300);
        assert_eq!(
            s.observe(&r, t3, Sample::Value(1.0), None),
            Verdict::Act(OnFail::Hold)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_data_policies() {
        let now = Instant::now();
        let pass = rule("on_no_data = \"pass\"");
        assert_eq!(
            RuleState::default().observe(&pass, now, Sample::NoData, None),
            Verdict::Healthy
        );
        let fail = rule("on_no_data = \"fail\"");
        assert_eq!(
            RuleState::default().observe(&fail, now, Sample::NoData, None),
            Verdict::Act(OnFail::Rollback)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_errors_turn_into_on_fail() {
        let r = rule("on_fail = \"rollback\"");
        let mut s = RuleState::default();
        let now = Instant::now();
        for _ in 0..2 {
            assert_eq!(
                s.observe(&r, now, Sample::Error("x".into()), Some(3)),
                Verdict::Unhealthy
            );
        }
        assert_eq!(
            s.observe(&r, now, Sample::Error("x".into()), Some(3)),
            Verdict::Act(OnFail::Rollback)
        );
        // A good value resets the count.
        s.observe(&r, now, Sample::Value(0.0), Some(3));
        assert_eq!(s.consecutive_errors, 0);
    }

    #[test]
    fn baseline_ratios() {
        use Sample::*;
        assert_eq!(baseline_ratio(&Value(4.0), &Value(2.0)), Value(2.0));
        assert_eq!(baseline_ratio(&Value(0.0), &Value(0.0)), Value(1.0));
        assert_eq!(
            baseline_ratio(&Value(1.0), &Value(0.0)),
            Value(f64::INFINITY)
        );
        assert_eq!(baseline_ratio(&NoData, &Value(1.0)), NoData);
        assert!(
            matches!(baseline_ratio(&Value(1.0), &Error("e".into())), Error(m) if m == "stable: e")
        );
    }
}
