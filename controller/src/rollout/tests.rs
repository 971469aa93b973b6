//! Unit tests of `rollout`.

use super::*;
use crate::policy::Policy;
use crate::policy::Sample;

fn policy(rollback: &str) -> Policy {
    Policy::from_source(
        "p.toml",
        &format!(
            r#"
name = "t"
interval = "10s"
rollback = {rollback}
[[steps]]
weight = 5
hold = "10s"
[[steps]]
weight = 25
hold = "10s"
[[steps]]
weight = 50
hold = "10s"
[[steps]]
weight = 100
hold = "10s"
[[rules]]
name = "errors"
source = "local"
signal = "error_ratio"
fail_when = "> 0.1"
[[rules]]
name = "watch"
source = "local"
signal = "rps"
fail_when = "< 0"
dry_run = true
"#
        ),
    )
    .unwrap()
}

fn observe_all(r: &mut Rollout, now: Instant, v: f64) {
    for (rule, rs) in r.policy.rules.iter().zip(r.rules.iter_mut()) {
        rs.observe(rule, now, Sample::Value(v), None);
    }
}

/// Ticks once a second for `secs` with every rule seeing `v`.
fn run(r: &mut Rollout, start: &mut Instant, secs: u64, v: f64) -> Vec<Transition> {
    let mut all = Vec::new();
    for _ in 0..secs {
        *start += Duration::from_secs(1);
        observe_all(r, *start, v);
        all.extend(r.on_tick(*start, 0));
    }
    all
}

#[tokio::test(start_paused = true)]
async fn full_promotion_timeline() {
    let mut r = Rollout::idle(policy("\"immediate\""), 0.0, 0);
    let mut now = Instant::now();
    assert_eq!(r.start(0), Transition::Started);
    assert_eq!(r.state.canary_percent, 5.0);
    // Before any rule is evaluated the rollout holds.
    assert!(matches!(
        &r.on_tick(now, 0)[..],
        [Transition::HoldBegin { .. }]
    ));
    // The first healthy evaluation ends the hold; ten healthy seconds after it advance.
    let t = run(&mut r, &mut now, 11, 0.0);
    assert_eq!(
        t,
        [Transition::HoldEnd, Transition::Advanced { from: 0, to: 1 }]
    );
    assert_eq!(
        (r.state.step, r.state.canary_percent, r.state.held_ms),
        (1, 25.0, 0)
    );
    run(&mut r, &mut now, 10, 0.0);
    run(&mut r, &mut now, 10, 0.0);
    assert_eq!(r.state.canary_percent, 100.0);
    assert_eq!(r.state.phase, Phase::Progressing);
    let t = run(&mut r, &mut now, 10, 0.0);
    assert_eq!(t, [Transition::Promoted]);
    assert_eq!(r.state.phase, Phase::Promoted);
    // Nothing moves a promoted rollout.
    assert!(run(&mut r, &mut now, 10, 1.0).is_empty());
}

#[tokio::test(start_paused = true)]
async fn unhealthy_time_does_not_count_and_never_advance_on_silence() {
    let mut r = Rollout::idle(policy("\"immediate\""), 0.0, 0);
    let mut now = Instant::now();
    r.start(0);
    // Not evaluated yet: hold, and the held time does not grow.
    let t = r.on_tick(now, 0);
    assert!(
        matches!(&t[..], [Transition::HoldBegin { reasons }] if reasons[0].contains("errors not evaluated"))
    );
    now += Duration::from_secs(5);
    assert!(r.on_tick(now, 0).is_empty());
    assert_eq!(r.state.held_ms, 0);
    // Healthy 6 s, then no-data 30 s, then healthy 4 s: advance only then.
    let t = run(&mut r, &mut now, 6, 0.0);
    assert_eq!(t, [Transition::HoldEnd]);
    for _ in 0..30 {
        now += Duration::from_secs(1);
        for (rule, rs) in r.policy.rules.iter().zip(r.rules.iter_mut()) {
            rs.observe(rule, now, Sample::NoData, None);
        }
        r.on_tick(now, 0);
    }
    assert_eq!(r.state.step, 0);
    assert_eq!(r.state.held_ms, 5_000);
    let t = run(&mut r, &mut now, 6, 0.0);
    assert_eq!(
        t,
        [Transition::HoldEnd, Transition::Advanced { from: 0, to: 1 }]
    );
}

#[tokio::test(start_paused = true)]
async fn immediate_rollback_and_dry_run_never_acts() {
    let mut r = Rollout::idle(policy("\"immediate\""), 0.0, 0);
    let mut now = Instant::now();
    r.start(0);
    r.on_tick(now, 0);
    run(&mut r, &mut now, 11, 0.0);
    assert_eq!(r.state.canary_percent, 25.0);
    // The dry-run rule ("rps < 0") never fails here; make the real one fail.
    let t = run(&mut r, &mut now, 1, 0.5);
    assert_eq!(
        t,
        [
            Transition::RollbackStarted {
                rules: vec!["errors".into()],
                gradual: false
            },
            Transition::RolledBack
        ]
    );
    assert_eq!(
        (r.state.phase, r.state.canary_percent),
        (Phase::RolledBack, 0.0)
    );
    assert!(r.state.reason.contains("errors"));
    // Stays rolled back.
    assert!(run(&mut r, &mut now, 20, 0.0).is_empty());
    assert_eq!(r.state.canary_percent, 0.0);
}

#[tokio::test(start_paused = true)]
async fn dry_run_rule_failing_does_not_block() {
    let mut p = policy("\"immediate\"");
    p.rules.retain(|r| r.dry_run);
    p.rules[0].fail_when.value = 1e9;
    p.rules[0].fail_when.op = crate::policy::Op::Lt;
    let mut r = Rollout::idle(p, 0.0, 0);
    let mut now = Instant::now();
    r.start(0);
    r.on_tick(now, 0);
    let t = run(&mut r, &mut now, 11, 0.0);
    assert_eq!(r.rules[0].outcome, Some(crate::policy::Outcome::Fail));
    assert_eq!(t, [Transition::Advanced { from: 0, to: 1 }]);
}

#[tokio::test(start_paused = true)]
async fn gradual_rollback_steps_down_and_is_still_judged() {
    let mut r = Rollout::idle(
        policy("{ gradual = { step = 20, every = \"1m\" } }"),
        0.0,
        0,
    );
    let mut now = Instant::now();
    r.start(0);
    r.on_tick(now, 0);
    run(&mut r, &mut now, 31, 0.0);
    assert_eq!(r.state.canary_percent, 100.0);
    let t = run(&mut r, &mut now, 1, 0.5);
    assert_eq!(t[1], Transition::RollbackStep);
    assert_eq!(
        (r.state.phase, r.state.canary_percent),
        (Phase::RollingBack, 80.0)
    );
    // Recovered metrics: it keeps draining one step a minute.
    run(&mut r, &mut now, 60, 0.0);
    assert_eq!(r.state.canary_percent, 60.0);
    run(&mut r, &mut now, 60, 0.0);
    assert_eq!(r.state.canary_percent, 40.0);
    // Failing again while draining: straight to 0.
    let t = run(&mut r, &mut now, 1, 0.5);
    assert_eq!(t, [Transition::RolledBack]);
    assert_eq!(
        (r.state.phase, r.state.canary_percent),
        (Phase::RolledBack, 0.0)
    );
}
