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
    assert!(r.fail_when.breached(0.06) && !r.fail_when.breached(0.05));
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
