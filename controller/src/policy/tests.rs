//! Unit tests of `policy`.

use super::*;

const GOOD: &str = r#"
name = "t"
interval = "10s"
min_requests = 10

[[steps]]
weight = 5
hold = "1m"
[[steps]]
weight = 100
hold = "1m"

[[rules]]
name = "errors"
source = "local"
signal = "error_ratio"
window = "10s"
fail_when = "> 0.05"
"#;

fn err(src: &str) -> String {
    Policy::from_source("p.toml", src).unwrap_err().to_string()
}

#[test]
fn good_policy_and_defaults() {
    let p = Policy::from_source("p.toml", GOOD).unwrap();
    let r = &p.rules[0];
    assert_eq!(r.on_fail, OnFail::Rollback);
    assert_eq!(r.on_no_data, OnNoData::Hold);
    assert_eq!(r.for_, Duration::ZERO);
    assert_eq!(p.rollback, RollbackMode::Immediate);
    let t = r.fail_when.unwrap();
    assert!(t.breached(0.06) && !t.breached(0.05));
    assert_eq!(p.weights(), [5.0, 100.0]);
}

#[test]
fn gradual_rollback_parses() {
    let src = GOOD.replace(
        "min_requests = 10",
        "min_requests = 10\nrollback = { gradual = { step = 20, every = \"1m\" } }",
    );
    let p = Policy::from_source("p.toml", &src).unwrap();
    assert_eq!(
        p.rollback,
        RollbackMode::Gradual {
            step: 20.0,
            every: Duration::from_secs(60)
        }
    );
    let e = err(&GOOD.replace(
        "min_requests = 10",
        "min_requests = 10\nrollback = \"slowly\"",
    ));
    assert!(
        e.contains("key `rollback`") && e.contains("expected \"immediate\""),
        "{e}"
    );
}

#[test]
fn mistakes_are_located() {
    let e = err(&GOOD.replace("\"> 0.05\"", "\"above 0.05\""));
    assert!(e.contains("p.toml:18: key `rules[0].fail_when`"), "{e}");
    assert!(e.contains("expected a comparison like"), "{e}");

    let e = err(&GOOD.replace("weight = 100", "weight = 50"));
    assert!(
        e.contains("p.toml:10: key `steps[1].weight`: expected the last step to be 100"),
        "{e}"
    );

    let e = err(&GOOD.replace("weight = 5\n", "weight = 100\n"));
    assert!(
        e.contains("key `steps[1].weight`: expected weights to increase"),
        "{e}"
    );

    let e = err(&GOOD.replace("signal = \"error_ratio\"", "query = \"up\""));
    assert!(e.contains("p.toml:13: key `rules[0].signal`"), "{e}");
    assert!(
        e.contains("key `rules[0].query`: expected no `query`"),
        "{e}"
    );

    let e = err(&GOOD.replace("source = \"local\"", "source = \"prometheus\""));
    assert!(
        e.contains("key `rules[0].query`: expected a PromQL query"),
        "{e}"
    );

    let e = err(&format!("{GOOD}typo = 1\n"));
    assert!(
        e.contains("p.toml:19: key `rules[0].typo`: unknown key"),
        "{e}"
    );
}

#[test]
fn every_mistake_in_a_policy_is_reported_at_once() {
    // A wrong type in one rule, a bad threshold in another, a semantic problem elsewhere.
    let src = GOOD
        .replace("interval = \"10s\"", "interval = \"500ms\"")
        .replace("window = \"10s\"", "window = 10")
        + "\n[[rules]]\nname = \"latency\"\nsource = \"local\"\nsignal = \"latency_p99\"\n\
           fail_when = \"above 0.5\"\n";
    assert_eq!(
        err(&src),
        [
            "p.toml:3: key `interval`: expected at least \"1s\" (local rules run every second anyway)",
            "p.toml:17: key `rules[0].window`: invalid type: found signed int `10`, expected a duration string like \"30s\", \"5m\" or \"1h\"",
            "p.toml:24: key `rules[1].fail_when`: expected a comparison like \"> 0.01\" or \"<= 0.99\", found \"above 0.5\"",
        ]
        .join("\n")
    );
}

#[test]
fn a_missing_or_bad_key_has_no_follow_on_problems() {
    // Without a usable `source`, what the rule needs cannot be judged: no "expected a PromQL
    // query" or "expected no `signal`"; without `steps`, no "expected at least one step".
    let e = err(&GOOD.replace("source = \"local\"\n", ""));
    assert_eq!(
        e,
        "p.toml:13: key `rules[0].source`: missing; this key is required"
    );
    let e = err(&GOOD.replace("source = \"local\"", "source = \"promql\""));
    assert!(
        e.starts_with("p.toml:15: key `rules[0].source`: unknown variant"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
    let no_steps = GOOD.replace(
        "[[steps]]\nweight = 5\nhold = \"1m\"\n[[steps]]\nweight = 100\nhold = \"1m\"\n",
        "",
    );
    let e = err(&format!("{no_steps}bogus = true\n"));
    assert_eq!(
        e,
        "p.toml:1: key `steps`: missing; this key is required\n\
         p.toml:13: key `rules[0].bogus`: unknown key; expected one of `name`, `source`, `query`, `signal`, `window`, `fail_when`, `for`, `on_fail`, `on_no_data`, `dry_run`, `compare`, `min_requests`, `test`, `margin`, `alpha`, `direction`"
    );
}

#[test]
fn an_unreadable_policy_names_the_os_error_once() {
    use std::error::Error as _;
    let e = Policy::load(Path::new("/nonexistent/policy.toml")).unwrap_err();
    assert!(
        e.source().is_none(),
        "the message already names the OS error"
    );
    // As anyhow's `{:#}` prints it: the message, then each source.
    let mut shown = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        shown.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert_eq!(
        shown,
        format!(
            "/nonexistent/policy.toml: cannot read: {}",
            std::io::Error::from_raw_os_error(2)
        )
    );
}

#[test]
fn hold_mode_and_approval_parse_with_safe_defaults() {
    let p = Policy::from_source("p.toml", GOOD).unwrap();
    assert_eq!(p.hold_mode, HoldMode::Consecutive, "the default");
    assert!(p.steps.iter().all(|s| !s.approval && s.hold_mode.is_none()));
    let src = GOOD
        .replace(
            "min_requests = 10",
            "min_requests = 10\nhold_mode = \"cumulative\"",
        )
        .replace(
            "weight = 5\nhold = \"1m\"",
            "weight = 5\nhold = \"1m\"\napproval = true\nhold_mode = \"consecutive\"",
        );
    let p = Policy::from_source("p.toml", &src).unwrap();
    assert_eq!(p.hold_mode, HoldMode::Cumulative);
    assert_eq!(
        (p.hold_mode_at(0), p.hold_mode_at(1)),
        (HoldMode::Consecutive, HoldMode::Cumulative)
    );
    assert!(p.needs_approval(0) && !p.needs_approval(1) && !p.needs_approval(9));
}

#[test]
fn a_bad_hold_mode_or_approval_is_located() {
    let e = err(&GOOD.replace(
        "min_requests = 10",
        "min_requests = 10\nhold_mode = \"strict\"",
    ));
    assert!(
        e.starts_with("p.toml:5: key `hold_mode`:") && e.contains("consecutive"),
        "{e}"
    );
    let e = err(&GOOD.replace("weight = 5\n", "weight = 5\napproval = \"yes\"\n"));
    assert!(e.contains("key `steps[0].approval`"), "{e}");
    let e = err(&GOOD.replace("weight = 5\n", "weight = 5\napprove = true\n"));
    assert!(
        e.contains("key `steps[0].approve`: unknown key")
            && e.contains("`weight`, `hold`, `hold_mode`, `approval`"),
        "{e}"
    );
}

const SEQUENTIAL: &str = r#"
name = "t"
interval = "10s"

[[steps]]
weight = 5
hold = "1m"
[[steps]]
weight = 100
hold = "1m"

[[rules]]
name = "errors-vs-stable"
source = "local"
signal = "error_ratio"
compare = "baseline"
test = "sequential"
margin = 0.005
"#;

#[test]
fn sequential_rules_and_the_traffic_check_parse_with_defaults() {
    let p = Policy::from_source("p.toml", SEQUENTIAL).unwrap();
    assert!(p.traffic_check, "on by default");
    let r = &p.rules[0];
    assert_eq!(r.test, Some(TestKind::Sequential));
    assert_eq!(r.margin, Some(Margin::Absolute(0.005)));
    assert_eq!((r.alpha, r.alpha()), (None, 0.01));
    assert_eq!(r.fail_when, None);
    assert!(r.threshold().starts_with("sequential"), "{}", r.threshold());
    let p = Policy::from_source(
        "p.toml",
        &SEQUENTIAL
            .replace("margin = 0.005", "margin = \"20%\"\nalpha = 0.05")
            .replace(
                "interval = \"10s\"",
                "interval = \"10s\"\ntraffic_check = false",
            ),
    )
    .unwrap();
    assert!(!p.traffic_check);
    assert_eq!(p.rules[0].margin, Some(Margin::Relative(0.2)));
    assert_eq!(p.rules[0].alpha(), 0.05);
}

#[test]
fn sequential_keys_are_validated_with_located_errors() {
    let e = err(&SEQUENTIAL.replace("margin = 0.005", "margin = \"20 percent\""));
    assert!(
        e.starts_with("p.toml:18: key `rules[0].margin`: expected a margin like 0.005"),
        "{e}"
    );
    let e = err(&SEQUENTIAL.replace("margin = 0.005", "margin = 1.5"));
    assert!(
        e.contains("key `rules[0].margin`: expected an absolute margin from 0 to below 1"),
        "{e}"
    );
    let e = err(&SEQUENTIAL.replace("margin = 0.005", "margin = \"-5%\""));
    assert!(
        e.contains("key `rules[0].margin`: expected a relative margin"),
        "{e}"
    );
    let e = err(&SEQUENTIAL.replace("margin = 0.005", "margin = 0.005\nalpha = 0.5"));
    assert!(
        e.contains("key `rules[0].alpha`: expected alpha strictly between 0 and 0.5"),
        "{e}"
    );
    let e = err(&SEQUENTIAL.replace("margin = 0.005", "margin = 0.005\nalpha = 0"));
    assert!(e.contains("key `rules[0].alpha`"), "{e}");
    let e = err(&SEQUENTIAL.replace("margin = 0.005\n", ""));
    assert!(
        e.contains("key `rules[0].margin`: expected a `margin` with test"),
        "{e}"
    );
    let e = err(&SEQUENTIAL.replace("test = \"sequential\"", "test = \"mann-whitney\""));
    assert!(
        e.contains(
            "key `rules[0].test`: expected signal = \"latency\" with test = \"mann-whitney\""
        ),
        "{e}"
    );
    let e = err(&SEQUENTIAL.replace("test = \"sequential\"", "test = \"wilcoxon\""));
    assert!(e.contains("key `rules[0].test`: unknown variant"), "{e}");
    // `test` only on local baseline error-ratio rules, and then without `fail_when`.
    let e = err(&SEQUENTIAL.replace("compare = \"baseline\"\n", ""));
    assert!(
        e.contains("key `rules[0].test`: expected compare = \"baseline\""),
        "{e}"
    );
    let e = err(&SEQUENTIAL.replace("signal = \"error_ratio\"", "signal = \"latency_p99\""));
    assert!(
        e.contains("key `rules[0].test`: expected signal = \"error_ratio\""),
        "{e}"
    );
    let e = err(&SEQUENTIAL.replace("margin = 0.005", "margin = 0.005\nfail_when = \"> 2\""));
    assert!(
        e.contains("key `rules[0].fail_when`: expected no `fail_when`"),
        "{e}"
    );
    let e = err(&SEQUENTIAL.replace(
        "source = \"local\"\nsignal = \"error_ratio\"",
        "source = \"prometheus\"\nquery = 'x{variant=\"{{variant}}\"}'",
    ));
    assert!(
        e.contains(
            "key `rules[0].test`: expected test = \"sequential\" only with source = \"local\""
        ),
        "{e}"
    );
    // `margin` and `alpha` belong to tests; every other rule needs `fail_when`.
    let e = err(&GOOD.replace(
        "fail_when = \"> 0.05\"",
        "fail_when = \"> 0.05\"\nmargin = 0.01\nalpha = 0.01",
    ));
    assert!(
        e.contains("key `rules[0].margin`: expected `margin` only with test"),
        "{e}"
    );
    assert!(
        e.contains("key `rules[0].alpha`: expected `alpha` only with test"),
        "{e}"
    );
    let e = err(&GOOD.replace("fail_when = \"> 0.05\"\n", ""));
    assert!(
        e.contains("key `rules[0].fail_when`: expected a comparison like \"> 0.01\""),
        "{e}"
    );
}

const MANN_WHITNEY: &str = r#"
name = "latency"
interval = "10s"

[[steps]]
weight = 100
hold = "1m"

[[rules]]
name = "latency-vs-stable"
source = "local"
signal = "latency"
compare = "baseline"
test = "mann-whitney"
margin = "20ms"
"#;

#[test]
fn latency_tests_parse_with_defaults_and_are_validated() {
    let p = Policy::from_source("p.toml", MANN_WHITNEY).unwrap();
    let r = &p.rules[0];
    assert_eq!(r.test, Some(TestKind::MannWhitney));
    assert_eq!(r.signal, Some(Signal::Latency));
    assert_eq!(r.margin, Some(Margin::Absolute(0.02)));
    assert_eq!(r.direction(), Direction::Increase);
    assert_eq!(r.alpha(), 0.01);
    assert_eq!(
        r.threshold(),
        "mann-whitney: canary slower than stable by > 20ms (alpha 0.01)"
    );
    let p = Policy::from_source(
        "p.toml",
        &MANN_WHITNEY.replace("\"20ms\"", "\"10%\"\ndirection = \"either\"\nalpha = 0.05"),
    )
    .unwrap();
    assert_eq!(p.rules[0].margin, Some(Margin::Relative(0.1)));
    assert_eq!(p.rules[0].direction(), Direction::Either);
    assert_eq!(
        p.rules[0].threshold(),
        "mann-whitney: canary slower or faster than stable by > 10% (alpha 0.05)"
    );

    let e = err(&MANN_WHITNEY.replace("\"20ms\"", "\"2 minutes\""));
    assert!(
        e.contains("key `rules[0].margin`: expected a latency margin from 0 to below 60 s"),
        "{e}"
    );
    let e = err(&MANN_WHITNEY.replace("\"20ms\"", "\"soon\""));
    assert!(
        e.contains("key `rules[0].margin`: expected a margin like"),
        "{e}"
    );
    let e = err(&MANN_WHITNEY.replace("\"20ms\"", "\"20ms\"\ndirection = \"up\""));
    assert!(
        e.contains("key `rules[0].direction`: unknown variant"),
        "{e}"
    );
    let e = err(&MANN_WHITNEY.replace("signal = \"latency\"", "signal = \"error_ratio\""));
    assert!(
        e.contains(
            "key `rules[0].test`: expected signal = \"latency\" with test = \"mann-whitney\""
        ),
        "{e}"
    );
    // `signal = "latency"` and `direction` belong to the latency test.
    let e = err(&GOOD.replace(
        "fail_when = \"> 0.05\"",
        "fail_when = \"> 0.05\"\ndirection = \"increase\"",
    ));
    assert!(
        e.contains(
            "key `rules[0].direction`: expected `direction` only with test = \"mann-whitney\""
        ),
        "{e}"
    );
    let e = err(&MANN_WHITNEY.replace(
        "test = \"mann-whitney\"\nmargin = \"20ms\"",
        "fail_when = \"> 2\"",
    ));
    assert!(e.contains("key `rules[0].signal`: expected signal = \"latency\" only with test = \"mann-whitney\""), "{e}");
}
