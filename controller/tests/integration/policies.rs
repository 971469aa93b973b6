//! The policies users copy (`policies/*.toml`): every one loads, and each keeps the shape its
//! seed asks for. A policy added without a test here fails `the_directory_holds_exactly_these`.

use std::path::PathBuf;
use std::time::Duration;

use canaryd_controller::{
    Compare, Direction, HoldMode, Margin, OnFail, OnNoData, Op, Policy, RollbackMode, Rule, Signal,
    SourceKind, TestKind, Threshold,
};

/// Every file in `policies/`, each with a test below.
const EXPECTED: [&str; 7] = [
    "argo-style.toml",
    "demo.toml",
    "gateway-migration-dark.toml",
    "gateway-migration-sequential.toml",
    "gateway-migration.toml",
    "quick-canary-gradual.toml",
    "quick-canary.toml",
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

fn load(name: &str) -> Policy {
    let path = dir().join(format!("{name}.toml"));
    Policy::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn holds(p: &Policy) -> Vec<Duration> {
    p.steps.iter().map(|s| s.hold).collect()
}

/// Which steps wait for an operator's approval.
fn approvals(p: &Policy) -> Vec<bool> {
    p.steps.iter().map(|s| s.approval).collect()
}

fn names(p: &Policy) -> Vec<&str> {
    p.rules.iter().map(|r| r.name.as_str()).collect()
}

fn rule<'a>(p: &'a Policy, name: &str) -> &'a Rule {
    p.rules
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("policy {:?} has no rule {name:?}", p.name))
}

const fn h(n: u64) -> Duration {
    Duration::from_secs(n * 3_600)
}

const fn m(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

const fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn gt(value: f64) -> Option<Threshold> {
    Some(Threshold { op: Op::Gt, value })
}

fn lt(value: f64) -> Option<Threshold> {
    Some(Threshold { op: Op::Lt, value })
}

#[test]
fn the_directory_holds_exactly_these() {
    let mut found: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(
        found, EXPECTED,
        "policies/ changed: give the new policy a test in controller/tests/policies.rs and list it in EXPECTED"
    );
}

#[test]
fn every_policy_loads_and_is_named_after_its_file() {
    for file in EXPECTED {
        let path = dir().join(file);
        let p = Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.name, file.trim_end_matches(".toml"), "{}", path.display());
        assert_eq!(p.steps.last().unwrap().weight, 100.0, "{}", path.display());
        assert!(!p.rules.is_empty(), "{}: no rules", path.display());
    }
}

#[test]
fn gateway_migration_is_seed_002() {
    let p = load("gateway-migration");
    assert_eq!(p.weights(), [5.0, 25.0, 50.0, 100.0]);
    assert_eq!(holds(&p), [h(72), h(96), h(96), h(48)]);
    // "Engineering team approves moving to next phase" (phase 1) and "approves
    // decommission" (phase 4); every criterion "met for 24 consecutive hours".
    assert_eq!(approvals(&p), [true, false, false, true]);
    assert_eq!(p.hold_mode, HoldMode::Consecutive);
    assert!(p.steps.iter().all(|s| s.hold_mode.is_none()));
    assert_eq!(p.interval, s(30));
    assert_eq!(p.rollback, RollbackMode::Immediate);
    assert_eq!(p.min_requests, 100);
    assert_eq!(p.max_consecutive_errors, Some(20));
    assert_eq!(
        names(&p),
        [
            "error-rate",
            "p99-latency",
            "auth-failures-vs-baseline",
            "health-check",
            "canary-5xx-fast",
            "memory-growth",
            "p99-above-1ms",
            "cpu-above-80pct",
        ]
    );
    assert!(p.rules.iter().all(|r| !r.dry_run));

    let r = rule(&p, "error-rate");
    assert_eq!(
        (r.source, r.fail_when, r.for_, r.on_fail),
        (SourceKind::Prometheus, gt(0.01), m(5), OnFail::Rollback)
    );
    let r = rule(&p, "p99-latency");
    assert_eq!((r.fail_when, r.on_fail), (gt(0.005), OnFail::Rollback));
    let r = rule(&p, "auth-failures-vs-baseline");
    assert_eq!(r.compare, Some(Compare::Baseline));
    assert_eq!((r.fail_when, r.on_fail), (gt(2.0), OnFail::Rollback));
    assert!(r.query.as_deref().unwrap().contains("{{variant}}"));
    let r = rule(&p, "health-check");
    assert_eq!(
        (r.fail_when, r.on_fail, r.on_no_data),
        (lt(1.0), OnFail::Rollback, OnNoData::Fail)
    );
    let r = rule(&p, "canary-5xx-fast");
    assert_eq!(
        (r.source, r.signal),
        (SourceKind::Local, Some(Signal::ErrorRatio))
    );
    assert_eq!((r.fail_when, r.on_fail), (gt(0.05), OnFail::Rollback));
    let r = rule(&p, "memory-growth");
    assert_eq!((r.fail_when, r.on_fail), (gt(50e6), OnFail::Hold));
    let r = rule(&p, "p99-above-1ms");
    assert_eq!((r.fail_when, r.on_fail), (gt(0.001), OnFail::Alert));
    let r = rule(&p, "cpu-above-80pct");
    assert_eq!((r.fail_when, r.on_fail), (gt(0.8), OnFail::Alert));
}

#[test]
fn gateway_migration_dark_shadows_before_any_real_traffic() {
    let p = load("gateway-migration-dark");
    let g = load("gateway-migration");
    // A dark step first (no real traffic, 10 % shadow), then seed 002's steps and approvals.
    assert_eq!((p.steps[0].weight, p.steps[0].shadow), (0.0, 10.0));
    assert_eq!(p.weights()[1..], g.weights()[..]);
    assert_eq!(holds(&p)[1..], holds(&g)[..]);
    assert_eq!(approvals(&p)[1..], approvals(&g)[..]);
    assert!(p.steps[1..].iter().all(|s| s.shadow == 0.0));
    // Judged on the proxy's windows only: PromQL would see no canary traffic while dark.
    assert!(p.rules.iter().all(|r| r.source == SourceKind::Local));
    assert_eq!(rule(&p, "canary-5xx-fast").on_fail, OnFail::Rollback);
}

#[test]
fn a_zero_weight_step_needs_a_shadow_and_must_come_first() {
    let parse = |steps: &str| {
        Policy::from_source(
            "p.toml",
            &format!("name = \"x\"\ninterval = \"1s\"\n{steps}"),
        )
    };
    let dark = "[[steps]]\nweight = 0\nshadow = 10\nhold = \"1m\"\n";
    let last = "[[steps]]\nweight = 100\nhold = \"1m\"\n";
    if let Err(e) = parse(&format!("{dark}{last}")) {
        panic!("{e}");
    }
    let err = parse(&format!("[[steps]]\nweight = 0\nhold = \"1m\"\n{last}"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("steps[0].weight"), "{err}");
    let err = parse(&format!(
        "[[steps]]\nweight = 5\nhold = \"1m\"\n{dark}{last}"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("steps[1].weight"), "{err}");
    let err = parse(&format!(
        "[[steps]]\nweight = 0\nshadow = 150\nhold = \"1m\"\n{last}"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("steps[0].shadow"), "{err}");
}

#[test]
fn gateway_migration_sequential_is_seed_002_judged_against_stable() {
    let p = load("gateway-migration-sequential");
    let g = load("gateway-migration");
    // The same rollout: steps, holds, approvals, hold mode, cadence, rollback.
    assert_eq!(p.weights(), g.weights());
    assert_eq!(holds(&p), holds(&g));
    assert_eq!(approvals(&p), approvals(&g));
    assert_eq!(
        (
            p.hold_mode,
            p.interval,
            &p.rollback,
            p.min_requests,
            p.max_consecutive_errors
        ),
        (
            g.hold_mode,
            g.interval,
            &g.rollback,
            g.min_requests,
            g.max_consecutive_errors
        )
    );
    assert!(p.traffic_check);
    // The error-rate threshold is replaced by the sequential comparison, a latency
    // comparison is added before the p99 SLO; the rest is kept.
    let mut expected: Vec<&str> = names(&g);
    expected[0] = "error-ratio-vs-stable";
    expected.insert(1, "latency-vs-stable");
    assert_eq!(names(&p), expected);
    let l = rule(&p, "latency-vs-stable");
    assert_eq!(
        (
            l.source,
            l.signal,
            l.compare,
            l.test,
            l.margin,
            l.direction()
        ),
        (
            SourceKind::Local,
            Some(Signal::Latency),
            Some(Compare::Baseline),
            Some(TestKind::MannWhitney),
            Some(Margin::Relative(0.1)),
            Direction::Increase
        )
    );
    let r = rule(&p, "error-ratio-vs-stable");
    assert_eq!(
        (r.source, r.signal, r.compare, r.test),
        (
            SourceKind::Local,
            Some(Signal::ErrorRatio),
            Some(Compare::Baseline),
            Some(TestKind::Sequential)
        )
    );
    assert_eq!(
        (r.margin, r.alpha(), r.fail_when),
        (Some(Margin::Absolute(0.005)), 0.01, None)
    );
    assert_eq!(
        (r.for_, r.on_fail, r.dry_run),
        (s(0), OnFail::Rollback, false)
    );
    for r in p.rules.iter().skip(2) {
        let twin = rule(&g, &r.name);
        assert_eq!(
            (
                &r.query,
                r.fail_when,
                r.for_,
                r.on_fail,
                r.on_no_data,
                r.min_requests
            ),
            (
                &twin.query,
                twin.fail_when,
                twin.for_,
                twin.on_fail,
                twin.on_no_data,
                twin.min_requests
            ),
            "{}",
            r.name
        );
    }
}

/// Seed 003: 5 % for 10 min, 20 % for 15 min, then +20 % every 5 min.
fn assert_seed_003(p: &Policy) {
    assert_eq!(p.weights(), [5.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
    assert_eq!(holds(p), [m(10), m(15), m(5), m(5), m(5), m(5)]);
    // Automatic from start to end: no approval, the default (consecutive) holds.
    assert!(approvals(p).iter().all(|a| !a), "{:?}", approvals(p));
    assert_eq!(p.hold_mode, HoldMode::Consecutive);
    assert_eq!(names(p), ["error-rate", "p95-latency"]);
    let r = rule(p, "error-rate");
    assert_eq!(
        (r.source, r.fail_when, r.for_, r.on_fail),
        (SourceKind::Local, gt(0.01), s(0), OnFail::Rollback)
    );
    let r = rule(p, "p95-latency");
    assert_eq!(
        (r.source, r.fail_when, r.on_fail),
        (SourceKind::Prometheus, gt(0.5), OnFail::Rollback)
    );
}

#[test]
fn quick_canary_is_seed_003_with_immediate_rollback() {
    let p = load("quick-canary");
    assert_seed_003(&p);
    assert_eq!(p.rollback, RollbackMode::Immediate);
}

#[test]
fn quick_canary_gradual_drains_20_points_a_minute() {
    let p = load("quick-canary-gradual");
    assert_seed_003(&p);
    assert_eq!(
        p.rollback,
        RollbackMode::Gradual {
            step: 20.0,
            every: m(1)
        }
    );
    // Otherwise the same policy as quick-canary.
    let q = load("quick-canary");
    assert_eq!((p.interval, p.min_requests), (q.interval, q.min_requests));
    for (a, b) in p.rules.iter().zip(&q.rules) {
        assert_eq!(
            (&a.query, a.fail_when, a.for_, a.window),
            (&b.query, b.fail_when, b.for_, b.window),
            "{}",
            a.name
        );
    }
}

#[test]
fn argo_style_is_seed_004() {
    let p = load("argo-style");
    assert_eq!(p.weights(), [5.0, 20.0, 50.0, 100.0]);
    assert_eq!(holds(&p)[..3], [m(10), m(20), m(30)]);
    assert_eq!(p.interval, m(1));
    assert_eq!(p.max_consecutive_errors, Some(5));
    assert!(approvals(&p).iter().all(|a| !a));
    assert_eq!(p.hold_mode, HoldMode::Consecutive);
    assert_eq!(names(&p), ["success-rate", "error-rate", "latency-p99"]);
    assert_eq!(rule(&p, "success-rate").fail_when, lt(0.99));
    assert_eq!(rule(&p, "error-rate").fail_when, gt(0.01));
    assert_eq!(rule(&p, "latency-p99").fail_when, gt(5.0));
    assert!(p
        .rules
        .iter()
        .all(|r| r.on_fail == OnFail::Rollback && r.source == SourceKind::Prometheus));
}

#[test]
fn demo_is_gateway_migration_in_seconds() {
    let p = load("demo");
    assert!(p.interval <= s(2), "interval {:?}", p.interval);
    assert!(
        holds(&p).iter().all(|h| *h <= s(10)),
        "holds {:?}",
        holds(&p)
    );
    assert!(
        p.rules.iter().all(|r| r.for_ <= s(10)),
        "a `for` above 10 s"
    );
    let g = load("gateway-migration");
    assert_eq!(p.weights(), g.weights());
    // The demo and the end-to-end tests run unattended: no step waits for an approval.
    assert!(approvals(&p).iter().all(|a| !a), "{:?}", approvals(&p));
    assert_eq!(p.hold_mode, g.hold_mode);
    for r in &p.rules {
        let twin = rule(&g, &r.name);
        assert_eq!(
            (r.source, r.on_fail, r.compare),
            (twin.source, twin.on_fail, twin.compare),
            "{}",
            r.name
        );
    }
}
