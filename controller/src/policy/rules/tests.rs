//! Unit tests of `rules.rs`.

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

fn test_rule(extra: &str) -> Rule {
    let src = format!(
        "name = \"t\"\ninterval = \"10s\"\n[[steps]]\nweight = 100\nhold = \"1m\"\n[[rules]]\nname = \"r\"\nsource = \"local\"\nsignal = \"error_ratio\"\ncompare = \"baseline\"\ntest = \"sequential\"\nmargin = 0.005\n{extra}"
    );
    Policy::from_source("p.toml", &src).unwrap().rules.remove(0)
}

fn judgement(outcome: Outcome) -> crate::policy::Judgement {
    use crate::policy::Counts;
    crate::policy::Judgement {
        outcome,
        difference: 0.01,
        interval: (0.0, 0.02),
        margin: 0.005,
        statistic: 1.0,
        canary: Counts {
            errors: 10,
            requests: 500,
        },
        stable: Counts {
            errors: 95,
            requests: 9_500,
        },
        latency: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_tests_outcomes_inconclusive_holds_whatever_on_no_data_says() {
    let now = Instant::now();
    let r = test_rule("on_no_data = \"pass\"");
    let mut s = RuleState::default();
    let v = s.observe_test(&r, now, Some(judgement(Outcome::Inconclusive)));
    assert_eq!(
        (v, s.outcome),
        (Verdict::Unhealthy, Some(Outcome::Inconclusive))
    );
    // canary / stable: 2 % / 1 %.
    assert_eq!(s.value, Some(2.0));
    assert!(s.judgement.is_some());
    let v = s.observe_test(&r, now, Some(judgement(Outcome::Pass)));
    assert_eq!((v, s.outcome), (Verdict::Healthy, Some(Outcome::Pass)));
    // Too few requests: no-data, as `on_no_data` says (here: pass).
    let v = s.observe_test(&r, now, None);
    assert_eq!((v, s.outcome), (Verdict::Healthy, Some(Outcome::NoData)));
    assert!(s.judgement.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_tests_fail_acts_per_on_fail_after_for() {
    let now = Instant::now();
    let r = test_rule("on_fail = \"hold\"\nfor = \"10s\"");
    let mut s = RuleState::default();
    assert_eq!(
        s.observe_test(&r, now, Some(judgement(Outcome::Fail))),
        Verdict::Unhealthy
    );
    let later = now + Duration::from_secs(10);
    assert_eq!(
        s.observe_test(&r, later, Some(judgement(Outcome::Fail))),
        Verdict::Act(OnFail::Hold)
    );
    // An inconclusive evaluation ends the breach.
    s.observe_test(&r, later, Some(judgement(Outcome::Inconclusive)));
    assert_eq!(s.breaching_for(later), Duration::ZERO);
    let r = test_rule("");
    let mut s = RuleState::default();
    assert_eq!(
        s.observe_test(&r, now, Some(judgement(Outcome::Fail))),
        Verdict::Act(OnFail::Rollback)
    );
}
