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
    // Healthy time adds up across the no-data spell: the cumulative mode.
    let mut p = policy("\"immediate\"");
    p.hold_mode = HoldMode::Cumulative;
    let mut r = Rollout::idle(p, 0.0, 0);
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
    p.rules[0].fail_when = Some(crate::policy::Threshold {
        value: 1e9,
        op: crate::policy::Op::Lt,
    });
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

/// 5 → 25 → 50 → 100 %, 10 s holds; `steps` adds keys to step 0..3 (e.g. `approval = true`).
fn policy_with(top: &str, rollback: &str, steps: [&str; 4]) -> Policy {
    let mut src = format!("name = \"t\"\ninterval = \"10s\"\nrollback = {rollback}\n{top}\n");
    for (weight, extra) in [5, 25, 50, 100].into_iter().zip(steps) {
        src.push_str(&format!(
            "[[steps]]\nweight = {weight}\nhold = \"10s\"\n{extra}\n"
        ));
    }
    src.push_str(
        r#"
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
"#,
    );
    Policy::from_source("p.toml", &src).unwrap_or_else(|e| panic!("{e}\n{src}"))
}

/// Approval on the first and the last step, as seed 002 gates them.
fn gated(rollback: &str) -> Policy {
    policy_with("", rollback, ["approval = true", "", "", "approval = true"])
}

/// Ticks once a second for `secs` with every rule seeing `s`.
fn run_sample(r: &mut Rollout, start: &mut Instant, secs: u64, s: Sample) -> Vec<Transition> {
    let mut all = Vec::new();
    for _ in 0..secs {
        *start += Duration::from_secs(1);
        for (rule, rs) in r.policy.rules.iter().zip(r.rules.iter_mut()) {
            rs.observe(rule, *start, s.clone(), None);
        }
        all.extend(r.on_tick(*start, 0));
    }
    all
}

/// A started rollout of `p` that has served step 0's hold (healthy for 11 s).
fn held_step_0(p: Policy, now: &mut Instant) -> (Rollout, Vec<Transition>) {
    let mut r = Rollout::idle(p, 0.0, 0);
    r.start(0);
    r.on_tick(*now, 0);
    let t = run(&mut r, now, 11, 0.0);
    (r, t)
}

#[test]
fn the_default_hold_mode_is_consecutive() {
    let p = policy("\"immediate\"");
    assert_eq!(p.hold_mode, HoldMode::Consecutive);
    assert_eq!(p.hold_mode_at(0), HoldMode::Consecutive);
    assert!(!p.needs_approval(0));
}

#[tokio::test(start_paused = true)]
async fn consecutive_hold_restarts_on_an_unhealthy_evaluation() {
    let mut r = Rollout::idle(policy("\"immediate\""), 0.0, 0);
    let mut now = Instant::now();
    r.start(0);
    r.on_tick(now, 0);
    // Healthy 8 s (the first healthy tick ends the "not evaluated" hold).
    run(&mut r, &mut now, 9, 0.0);
    assert_eq!(r.state.held_ms, 8_000);
    // One no-data evaluation: the run is broken, the hold starts again from zero.
    let t = run_sample(&mut r, &mut now, 1, Sample::NoData);
    assert!(
        matches!(&t[..], [Transition::HoldBegin { reasons }] if reasons == &["errors no_data"])
    );
    assert_eq!(r.state.held_ms, 0);
    assert!(
        r.state.reason.contains("restarts from zero"),
        "{}",
        r.state.reason
    );
    // A breach shorter than `for` breaks it too (here `for` is 0: use a `hold` rule's short
    // breach through an error instead).
    let t = run(&mut r, &mut now, 6, 0.0);
    assert_eq!(t, [Transition::HoldEnd]);
    assert_eq!(r.state.held_ms, 5_000);
    let t = run_sample(&mut r, &mut now, 1, Sample::Error("down".into()));
    assert!(t.contains(&Transition::HoldBegin {
        reasons: vec!["errors error".into()]
    }));
    assert_eq!(r.state.held_ms, 0);
    // Ten unbroken healthy seconds after the hold ends: advance.
    let t = run(&mut r, &mut now, 10, 0.0);
    assert_eq!(t, [Transition::HoldEnd]);
    let t = run(&mut r, &mut now, 1, 0.0);
    assert_eq!(t, [Transition::Advanced { from: 0, to: 1 }]);
}

#[tokio::test(start_paused = true)]
async fn cumulative_hold_keeps_the_healthy_time() {
    let mut r = Rollout::idle(
        policy_with(
            "hold_mode = \"cumulative\"",
            "\"immediate\"",
            ["", "", "", ""],
        ),
        0.0,
        0,
    );
    let mut now = Instant::now();
    r.start(0);
    r.on_tick(now, 0);
    run(&mut r, &mut now, 9, 0.0);
    assert_eq!(r.state.held_ms, 8_000);
    run_sample(&mut r, &mut now, 5, Sample::NoData);
    assert_eq!(r.state.held_ms, 8_000, "a hold only stops the clock");
    assert!(!r.state.reason.contains("restarts"), "{}", r.state.reason);
    let t = run(&mut r, &mut now, 3, 0.0);
    assert_eq!(
        t,
        [Transition::HoldEnd, Transition::Advanced { from: 0, to: 1 }]
    );
}

#[tokio::test(start_paused = true)]
async fn a_step_can_override_the_hold_mode() {
    // The policy is consecutive; step 0 alone is cumulative.
    let p = policy_with(
        "",
        "\"immediate\"",
        ["hold_mode = \"cumulative\"", "", "", ""],
    );
    assert_eq!(
        (p.hold_mode_at(0), p.hold_mode_at(1)),
        (HoldMode::Cumulative, HoldMode::Consecutive)
    );
    let mut r = Rollout::idle(p, 0.0, 0);
    let mut now = Instant::now();
    r.start(0);
    r.on_tick(now, 0);
    run(&mut r, &mut now, 6, 0.0);
    run_sample(&mut r, &mut now, 2, Sample::NoData);
    assert_eq!(r.state.held_ms, 5_000);
    run(&mut r, &mut now, 7, 0.0);
    assert_eq!((r.state.step, r.state.held_ms), (1, 1_000));
    run(&mut r, &mut now, 3, 0.0);
    assert_eq!(r.state.held_ms, 4_000);
    run_sample(&mut r, &mut now, 1, Sample::NoData);
    assert_eq!(r.state.held_ms, 0, "step 1 is consecutive");
}

#[tokio::test(start_paused = true)]
async fn not_yet_evaluated_rules_stop_the_clock_without_restarting_it() {
    // After a restart no rule has a verdict yet: that is no evaluation, so even a consecutive
    // hold keeps the persisted healthy time (canaryd is the proxy: while it was down the
    // canary served nothing).
    let mut r = Rollout::idle(policy("\"immediate\""), 0.0, 0);
    let mut now = Instant::now();
    r.start(0);
    r.on_tick(now, 0);
    run(&mut r, &mut now, 7, 0.0);
    let persisted = r.state.clone();
    assert_eq!(persisted.held_ms, 6_000);
    let mut r = Rollout::resume(policy("\"immediate\""), persisted);
    let t = r.on_tick(now, 0);
    assert!(
        matches!(&t[..], [Transition::HoldBegin { reasons }] if reasons[0].contains("not evaluated yet"))
    );
    now += Duration::from_secs(3);
    r.on_tick(now, 0);
    assert_eq!(r.state.held_ms, 6_000);
    run(&mut r, &mut now, 1, 0.0);
    let t = run(&mut r, &mut now, 4, 0.0);
    assert_eq!(t, [Transition::Advanced { from: 0, to: 1 }]);
}

#[tokio::test(start_paused = true)]
async fn consecutive_run_is_broken_by_an_unhealthy_evaluation_during_a_pause() {
    let mut r = Rollout::idle(policy("\"immediate\""), 0.0, 0);
    let mut now = Instant::now();
    r.start(0);
    r.on_tick(now, 0);
    run(&mut r, &mut now, 7, 0.0);
    assert_eq!(r.state.held_ms, 6_000);
    r.apply(&Command::Pause, "", 0).unwrap();
    run(&mut r, &mut now, 5, 0.0);
    assert_eq!(r.state.held_ms, 6_000, "no time counts while paused");
    run_sample(&mut r, &mut now, 1, Sample::NoData);
    assert_eq!(r.state.held_ms, 0);
    assert_eq!(r.state.phase, Phase::Paused);
}

#[tokio::test(start_paused = true)]
async fn a_gated_step_waits_for_approval_once_its_hold_is_met() {
    let mut now = Instant::now();
    let (mut r, t) = held_step_0(gated("\"immediate\""), &mut now);
    assert_eq!(t, [Transition::HoldEnd, Transition::AwaitingApproval]);
    assert_eq!(
        Transition::AwaitingApproval.action(),
        Action::AwaitingApproval
    );
    assert_eq!(
        (r.state.phase, r.state.step, r.state.canary_percent),
        (Phase::AwaitingApproval, 0, 5.0)
    );
    assert_eq!(
        r.state.reason,
        "step 0 held healthy for 10s: ready for approval (`canaryd approve` moves to step 1, 25 %)"
    );
    // It waits, for as long as it takes, and says so once.
    assert!(run(&mut r, &mut now, 3_600, 0.0).is_empty());
    assert_eq!((r.state.phase, r.state.step), (Phase::AwaitingApproval, 0));
    assert_eq!(r.hold_remaining(), Duration::ZERO);

    let t = r.apply(&Command::Approve, "looks good", 7).unwrap();
    assert_eq!(
        t,
        [
            Transition::Approved,
            Transition::Advanced { from: 0, to: 1 }
        ]
    );
    assert_eq!(Transition::Approved.action(), Action::Approve);
    assert_eq!(
        (
            r.state.phase,
            r.state.step,
            r.state.canary_percent,
            r.state.held_ms
        ),
        (Phase::Progressing, 1, 25.0, 0)
    );
    assert_eq!(
        r.state.reason,
        "operator: approved step 0, moved to step 1: looks good"
    );
    assert_eq!(r.state.updated_at_ms, 7);
    // Steps 1 and 2 are not gated (the approval's tick starts step 1's clock).
    let t = run(&mut r, &mut now, 11, 0.0);
    assert_eq!(t, [Transition::Advanced { from: 1, to: 2 }]);
    let t = run(&mut r, &mut now, 10, 0.0);
    assert_eq!(t, [Transition::Advanced { from: 2, to: 3 }]);
    // The last step is: approving it promotes.
    let t = run(&mut r, &mut now, 10, 0.0);
    assert_eq!(t, [Transition::AwaitingApproval]);
    assert!(
        r.state.reason.contains("promotes the canary, 100 %"),
        "{}",
        r.state.reason
    );
    let t = r.apply(&Command::Approve, "", 0).unwrap();
    assert_eq!(t, [Transition::Approved, Transition::Promoted]);
    assert_eq!(
        (r.state.phase, r.state.canary_percent),
        (Phase::Promoted, 100.0)
    );
    assert_eq!(r.state.reason, "operator: approved step 3: promoted");
}

#[tokio::test(start_paused = true)]
async fn approve_is_refused_in_every_other_phase_saying_why() {
    for phase in Phase::ALL {
        if phase == Phase::AwaitingApproval {
            continue;
        }
        let mut r = Rollout::idle(gated("\"immediate\""), 0.0, 0);
        r.state.phase = phase;
        let before = r.state.clone();
        let refusal = r.apply(&Command::Approve, "", 1).unwrap_err();
        assert!(
            !refusal.error.is_empty() && !refusal.hint.is_empty(),
            "{phase:?}: {refusal:?}"
        );
        assert_eq!(r.state, before, "{phase:?}: a refusal changes nothing");
    }
    // The reasons, where they matter.
    let mut r = Rollout::idle(gated("\"immediate\""), 0.0, 0);
    r.start(0);
    let e = r.apply(&Command::Approve, "", 0).unwrap_err();
    assert!(e.error.contains("still serving its hold"), "{e:?}");
    let mut r = Rollout::idle(policy("\"immediate\""), 0.0, 0);
    r.start(0);
    let e = r.apply(&Command::Approve, "", 0).unwrap_err();
    assert!(e.error.contains("does not wait for approval"), "{e:?}");
    let mut now = Instant::now();
    let (mut r, _) = held_step_0(gated("\"immediate\""), &mut now);
    r.apply(&Command::Pause, "", 0).unwrap();
    let e = r.apply(&Command::Approve, "", 0).unwrap_err();
    assert!(
        e.error.contains("paused (it was awaiting_approval)") && e.hint.contains("resume"),
        "{e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn approve_is_refused_while_the_canary_is_not_healthy() {
    let mut now = Instant::now();
    let (mut r, _) = held_step_0(gated("\"immediate\""), &mut now);
    // No data: the rollout holds, visibly, and still awaits approval.
    let t = run_sample(&mut r, &mut now, 1, Sample::NoData);
    assert_eq!(
        t,
        [Transition::HoldBegin {
            reasons: vec!["errors no_data".into()]
        }]
    );
    assert_eq!(r.state.phase, Phase::AwaitingApproval);
    assert!(r.is_holding());
    assert!(r
        .state
        .reason
        .starts_with("awaiting approval, holding: errors no_data"));
    let e = r.apply(&Command::Approve, "", 0).unwrap_err();
    assert!(
        e.error.contains("not healthy right now (errors no_data)"),
        "{e:?}"
    );
    assert_eq!((r.state.step, r.state.canary_percent), (0, 5.0));
    // Many holds later the wait is still there; healthy again, approve goes through.
    run_sample(&mut r, &mut now, 600, Sample::NoData);
    let t = run(&mut r, &mut now, 1, 0.0);
    assert_eq!(t, [Transition::HoldEnd]);
    assert_eq!(r.state.phase, Phase::AwaitingApproval);
    assert!(r.state.reason.contains("ready for approval"));
    assert_eq!(r.state.held_ms, 10_000, "the wait keeps the served hold");
    assert!(r.apply(&Command::Approve, "", 0).is_ok());

    // After a restart the rules have not been judged yet: never approve on silence.
    let (r, _) = held_step_0(gated("\"immediate\""), &mut now);
    let mut r = Rollout::resume(gated("\"immediate\""), r.state.clone());
    let e = r.apply(&Command::Approve, "", 0).unwrap_err();
    assert!(e.error.contains("errors not evaluated yet"), "{e:?}");
}

#[tokio::test(start_paused = true)]
async fn a_failure_while_awaiting_approval_still_rolls_back() {
    let mut now = Instant::now();
    let (mut r, _) = held_step_0(gated("\"immediate\""), &mut now);
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
    // Gradually, when the policy says so.
    let (mut r, _) = held_step_0(
        gated("{ gradual = { step = 2, every = \"1m\" } }"),
        &mut now,
    );
    let t = run(&mut r, &mut now, 1, 0.5);
    assert_eq!(t[1], Transition::RollbackStep);
    assert_eq!(
        (r.state.phase, r.state.canary_percent),
        (Phase::RollingBack, 3.0)
    );
}

#[tokio::test(start_paused = true)]
async fn operator_commands_while_awaiting_approval() {
    let mut now = Instant::now();
    // Pause → paused; resume → back to awaiting approval at the step's weight.
    let (mut r, _) = held_step_0(gated("\"immediate\""), &mut now);
    assert_eq!(
        r.apply(&Command::Pause, "", 0).unwrap(),
        [Transition::Paused]
    );
    assert_eq!(
        (r.state.phase, r.state.paused_from),
        (Phase::Paused, Some(Phase::AwaitingApproval))
    );
    r.apply(&Command::SetWeight(1.0), "", 0).unwrap();
    assert_eq!(r.state.paused_from, Some(Phase::AwaitingApproval));
    run(&mut r, &mut now, 60, 0.0);
    assert_eq!(r.state.phase, Phase::Paused);
    assert_eq!(
        r.apply(&Command::Resume, "", 0).unwrap(),
        [Transition::Resumed]
    );
    assert_eq!(
        (r.state.phase, r.state.canary_percent, r.state.paused_from),
        (Phase::AwaitingApproval, 5.0, None)
    );
    // Set-weight pauses it the same way.
    r.apply(&Command::SetWeight(2.0), "", 0).unwrap();
    assert_eq!(
        (r.state.phase, r.state.paused_from, r.state.canary_percent),
        (Phase::Paused, Some(Phase::AwaitingApproval), 2.0)
    );
    r.apply(&Command::Resume, "", 0).unwrap();
    assert_eq!(r.state.phase, Phase::AwaitingApproval);
    // Start and resume are refused; promote, rollback and abort work.
    assert!(r.apply(&Command::Start, "", 0).is_err());
    assert!(r.apply(&Command::Resume, "", 0).is_err());
    for (cmd, phase, percent) in [
        (Command::Promote, Phase::Promoted, 100.0),
        (Command::Rollback, Phase::RolledBack, 0.0),
        (Command::Abort, Phase::Aborted, 0.0),
    ] {
        let (mut r, _) = held_step_0(gated("\"immediate\""), &mut now);
        r.apply(&cmd, "", 0).unwrap();
        assert_eq!((r.state.phase, r.state.canary_percent), (phase, percent));
    }
}

#[tokio::test(start_paused = true)]
async fn a_paused_gradual_rollback_stays_paused_and_resume_continues_the_drain() {
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
    run(&mut r, &mut now, 1, 0.5);
    assert_eq!(
        (r.state.phase, r.state.canary_percent),
        (Phase::RollingBack, 80.0)
    );
    let t = r.apply(&Command::Pause, "investigating", 0).unwrap();
    assert_eq!(t, [Transition::Paused]);
    assert_eq!(
        (r.state.phase, r.state.paused_from),
        (Phase::Paused, Some(Phase::RollingBack))
    );
    assert!(
        r.state
            .reason
            .contains("paused the gradual rollback at 80 %"),
        "{}",
        r.state.reason
    );
    // The breach goes on: the drain stays frozen (it used to start a new rollback here).
    assert!(run(&mut r, &mut now, 300, 0.5).is_empty());
    assert_eq!(
        (r.state.phase, r.state.canary_percent),
        (Phase::Paused, 80.0)
    );
    // A canary that failed is not promoted from a paused rollback either.
    let e = r.apply(&Command::Promote, "", 0).unwrap_err();
    assert!(
        e.error.contains("paused during a gradual rollback"),
        "{e:?}"
    );
    assert!(r.apply(&Command::Approve, "", 0).is_err());
    // Resume continues the rollback from the split in force, not the step's weight.
    let t = r.apply(&Command::Resume, "", 0).unwrap();
    assert_eq!(t, [Transition::Resumed]);
    assert_eq!(
        (r.state.phase, r.state.canary_percent, r.state.paused_from),
        (Phase::RollingBack, 80.0, None)
    );
    // The last drain step was more than `every` ago: the next tick steps down.
    let t = run(&mut r, &mut now, 1, 0.5);
    assert_eq!(t, [Transition::RollbackStep]);
    assert_eq!(r.state.canary_percent, 60.0);
    run(&mut r, &mut now, 60, 0.5);
    assert_eq!(r.state.canary_percent, 40.0);
}

#[tokio::test(start_paused = true)]
async fn a_new_failure_while_a_gradual_rollback_is_paused_goes_to_zero() {
    let mut r = Rollout::idle(
        policy("{ gradual = { step = 20, every = \"1m\" } }"),
        0.0,
        0,
    );
    let mut now = Instant::now();
    r.start(0);
    r.on_tick(now, 0);
    run(&mut r, &mut now, 31, 0.0);
    run(&mut r, &mut now, 1, 0.5);
    r.apply(&Command::Pause, "", 0).unwrap();
    // The breach ends, then comes back: a new failure. Safety first: 0 % at once, paused or
    // not.
    run(&mut r, &mut now, 5, 0.0);
    assert_eq!(
        (r.state.phase, r.state.canary_percent),
        (Phase::Paused, 80.0)
    );
    let t = run(&mut r, &mut now, 1, 0.5);
    assert_eq!(t, [Transition::RolledBack]);
    assert_eq!(
        (r.state.phase, r.state.canary_percent, r.state.paused_from),
        (Phase::RolledBack, 0.0, None)
    );
    assert!(
        r.state
            .reason
            .contains("failed during a paused gradual rollback"),
        "{}",
        r.state.reason
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_rollout_rolls_back_on_a_failure_as_before() {
    let mut r = Rollout::idle(policy("\"immediate\""), 0.0, 0);
    let mut now = Instant::now();
    r.start(0);
    r.on_tick(now, 0);
    run(&mut r, &mut now, 3, 0.0);
    r.apply(&Command::Pause, "", 0).unwrap();
    assert_eq!(r.state.paused_from, Some(Phase::Progressing));
    run(&mut r, &mut now, 1, 0.5);
    assert_eq!(
        (r.state.phase, r.state.canary_percent, r.state.paused_from),
        (Phase::RolledBack, 0.0, None)
    );
}

#[test]
fn paused_from_is_persisted_and_old_state_files_still_load() {
    let mut r = Rollout::idle(policy("\"immediate\""), 0.0, 0);
    r.state.phase = Phase::Paused;
    r.state.paused_from = Some(Phase::RollingBack);
    let json = serde_json::to_string(&r.state).unwrap();
    assert!(json.contains("\"paused_from\":\"rolling_back\""), "{json}");
    let back: RolloutState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r.state);
    // Not paused: the key is left out, as state files always were.
    r.state.phase = Phase::AwaitingApproval;
    r.state.paused_from = None;
    let json = serde_json::to_string(&r.state).unwrap();
    assert!(!json.contains("paused_from"), "{json}");
    assert!(json.contains("\"phase\":\"awaiting_approval\""), "{json}");
    // A state file of an earlier canaryd, paused: paused from progressing.
    let old = r#"{"policy":"t","phase":"paused","step":1,"held_ms":5,"canary_percent":25.0,
                  "step_started_at_ms":1,"updated_at_ms":2,"reason":"operator: paused"}"#;
    let st: RolloutState = serde_json::from_str(old).unwrap();
    assert_eq!(st.paused_from, None);
    let mut r = Rollout::resume(policy("\"immediate\""), st);
    assert_eq!(r.paused_from(), Phase::Progressing);
    r.apply(&Command::Resume, "", 0).unwrap();
    assert_eq!(
        (r.state.phase, r.state.canary_percent),
        (Phase::Progressing, 25.0)
    );
}
