//! Unit tests of `api.rs`: the JSON is the one canaryd has always written (keys, `null` versus
//! absent, key order), old lines read, and drift is an error. Also test fixtures for the other
//! modules' tests: typed documents from partial JSON.

use serde_json::{json, Value};

use super::*;

/// Fills the keys a test leaves out of `partial` from `defaults` (objects only).
fn merged(defaults: Value, partial: Value) -> Value {
    match (defaults, partial) {
        (Value::Object(mut d), Value::Object(p)) => {
            d.extend(p);
            Value::Object(d)
        }
        (_, p) => p,
    }
}

/// A rule from the keys a test cares about.
pub(crate) fn rule_json(partial: Value) -> Value {
    merged(
        json!({
            "breaching_for_s": 0.0, "dry_run": false, "for_s": 0.0, "name": "r",
            "on_fail": "rollback", "outcome": null, "source": "local", "threshold": "",
            "value": null,
        }),
        partial,
    )
}

/// A decision from the keys a test cares about (`rules` may be partial rules too).
pub(crate) fn decision(partial: Value) -> Decision {
    let mut v = merged(
        json!({
            "action": "healthy", "canary_percent": 0.0, "kind": "evaluation", "policy": "p",
            "reason": "", "state": "progressing", "step": 0, "ts": "2024-05-01T12:00:00.000Z",
        }),
        partial,
    );
    if let Some(rules) = v.get_mut("rules").and_then(Value::as_array_mut) {
        for r in rules.iter_mut() {
            *r = rule_json(r.take());
        }
    }
    serde_json::from_value(v).unwrap_or_else(|e| panic!("not a decision: {e}"))
}

/// A status document from the keys a test cares about.
pub(crate) fn status(partial: Value) -> Status {
    let mut v = merged(
        json!({
            "canary_percent": 0.0, "error": null, "last_decision": null, "policy": "p",
            "reason": "", "rules": [], "state": "idle", "step": 0, "step_held_s": 0.0,
            "step_hold_remaining_s": 0.0, "step_hold_s": 0.0,
            "step_started_at": "2024-05-01T12:00:00.000Z", "steps": [100.0],
            "updated_at": "2024-05-01T12:00:00.000Z",
        }),
        partial,
    );
    if let Some(rules) = v.get_mut("rules").and_then(Value::as_array_mut) {
        for r in rules.iter_mut() {
            *r = rule_json(r.take());
        }
    }
    serde_json::from_value(v).unwrap_or_else(|e| panic!("not a status: {e}"))
}

fn plain_rule() -> RuleStatus {
    RuleStatus {
        breaching_for_s: 0.0,
        canary_value: None,
        compare: None,
        dry_run: false,
        error: None,
        for_s: 300.0,
        interval: None,
        latency: None,
        margin: None,
        name: "error-rate".into(),
        on_fail: RuleOnFail::Rollback,
        outcome: Some(Outcome::Pass),
        samples: None,
        source: RuleSource::Prometheus,
        stable_value: None,
        statistic: None,
        test: None,
        threshold: "> 0.01".into(),
        value: Some(0.002),
    }
}

fn baseline_rule() -> RuleStatus {
    RuleStatus {
        canary_value: Some(None),
        compare: Some(RuleCompare::Baseline),
        error: Some("prometheus: timeout".into()),
        name: "auth".into(),
        on_fail: RuleOnFail::Hold,
        outcome: Some(Outcome::NoData),
        source: RuleSource::Prometheus,
        stable_value: Some(Some(1.0)),
        threshold: "> 2".into(),
        value: None,
        ..plain_rule()
    }
}

fn advance() -> Decision {
    Decision {
        action: Action::Advance,
        alert_rule: None,
        by: Some(By::Controller),
        canary_percent: 25.0,
        failed_rules: None,
        from_percent: None,
        from_step: Some(0),
        gradual: None,
        held_s: Some(0.0),
        hold_reasons: None,
        kind: Kind::Transition,
        leader: None,
        operator_reason: None,
        percent: None,
        policy: "gateway-migration".into(),
        reason: "step 0 held healthy for 1h".into(),
        rules: Some(vec![plain_rule(), baseline_rule()]),
        save_error: None,
        state: Phase::Progressing,
        step: 1,
        to_step: Some(1),
        ts: "2026-03-04T10:15:30.001Z".into(),
    }
}

fn rollout_status() -> RolloutStatus {
    RolloutStatus {
        canary_percent: 25.0,
        cluster: None,
        error: None,
        holding: false,
        last_decision: Some(advance()),
        paused_from: None,
        policy: "gateway-migration".into(),
        reason: "step 0 held healthy for 1h".into(),
        rules: vec![plain_rule()],
        save_error: None,
        state: State::Progressing,
        step: 1,
        step_held_s: 15.0,
        step_hold_remaining_s: 45.0,
        step_hold_s: 60.0,
        step_started_at: "2026-03-04T10:15:30.001Z".into(),
        steps: vec![5.0, 25.0, 100.0],
        updated_at: "2026-03-04T10:15:30.001Z".into(),
    }
}

/// Before these types the documents were `serde_json::Value` maps, written with their keys
/// sorted; written through a `Value` now, they must come out byte for byte as written directly.
fn assert_sorted_keys<T: Serialize>(v: &T) {
    let direct = serde_json::to_string(v).unwrap();
    let through_map = serde_json::to_value(v).unwrap().to_string();
    assert_eq!(direct, through_map);
}

#[test]
fn rules_write_baseline_keys_only_for_baseline_rules() {
    assert_eq!(
        serde_json::to_string(&plain_rule()).unwrap(),
        r#"{"breaching_for_s":0.0,"dry_run":false,"for_s":300.0,"name":"error-rate","on_fail":"rollback","outcome":"pass","source":"prometheus","threshold":"> 0.01","value":0.002}"#
    );
    // Present even when null; the error only when there is one.
    assert_eq!(
        serde_json::to_string(&baseline_rule()).unwrap(),
        r#"{"breaching_for_s":0.0,"canary_value":null,"compare":"baseline","dry_run":false,"error":"prometheus: timeout","for_s":300.0,"name":"auth","on_fail":"hold","outcome":"no_data","source":"prometheus","stable_value":1.0,"threshold":"> 2","value":null}"#
    );
    for r in [plain_rule(), baseline_rule()] {
        assert_sorted_keys(&r);
        let back: RuleStatus = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }
    // Before the first evaluation: null outcome and value.
    let fresh = RuleStatus {
        outcome: None,
        value: None,
        ..plain_rule()
    };
    let v = serde_json::to_value(&fresh).unwrap();
    assert_eq!((&v["outcome"], &v["value"]), (&Value::Null, &Value::Null));
    assert_eq!(serde_json::from_value::<RuleStatus>(v).unwrap(), fresh);
}

#[test]
fn decision_lines_keep_their_keys_and_order() {
    let d = advance();
    let text = serde_json::to_string(&d).unwrap();
    assert!(
        text.starts_with(r#"{"action":"advance","by":"controller","canary_percent":25.0,"from_step":0,"held_s":0.0,"kind":"transition","policy":"gateway-migration","reason":"step 0 held healthy for 1h","rules":[{"#),
        "{text}"
    );
    assert!(
        text.ends_with(
            r#"],"state":"progressing","step":1,"to_step":1,"ts":"2026-03-04T10:15:30.001Z"}"#
        ),
        "{text}"
    );
    assert_sorted_keys(&d);
    // Every optional key, present.
    let full = Decision {
        alert_rule: Some("cpu".into()),
        failed_rules: Some(vec!["errors".into()]),
        from_percent: Some(5.0),
        gradual: Some(true),
        hold_reasons: Some(vec!["latency no_data".into()]),
        operator_reason: Some(String::new()),
        percent: Some(12.5),
        save_error: Some("state.json: cannot write rollout state: disk full".into()),
        ..advance()
    };
    assert_sorted_keys(&full);
    let back: Decision = serde_json::from_str(&serde_json::to_string(&full).unwrap()).unwrap();
    assert_eq!(back, full);
    // No save error, no key.
    assert!(!text.contains("save_error"));
}

/// A line exactly as canaryd wrote it before these types (docs/operations.md's example), and a
/// reload line (no `held_s`, no `rules`), read and written back unchanged.
#[test]
fn lines_written_before_read_and_round_trip() {
    let old = [
        r#"{"action":"rollback","by":"controller","canary_percent":0.0,"failed_rules":["error-rate"],"gradual":false,"held_s":58320.0,"kind":"transition","policy":"gateway-migration","reason":"rule(s) error-rate failed","rules":[{"breaching_for_s":300.2,"dry_run":false,"for_s":300.0,"name":"error-rate","on_fail":"rollback","outcome":"fail","source":"prometheus","threshold":"> 0.01","value":0.034}],"state":"rolled_back","step":1,"ts":"2026-03-04T10:15:30.001Z"}"#,
        r#"{"action":"reload","canary_percent":25.0,"kind":"transition","policy":"gateway-migration","reason":"configuration reloaded (SIGHUP)","state":"paused","step":1,"ts":"2026-03-04T10:15:31.001Z"}"#,
        r#"{"action":"healthy","canary_percent":5.0,"held_s":12.0,"kind":"evaluation","policy":"p","reason":"rollout started","rules":[],"state":"progressing","step":0,"ts":"2026-03-04T10:15:32.001Z"}"#,
    ];
    for line in old {
        let d: Decision = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(serde_json::to_string(&d).unwrap(), line);
    }
    let rollback: Decision = serde_json::from_str(old[0]).unwrap();
    assert_eq!(
        (rollback.action, rollback.state, rollback.gradual),
        (Action::Rollback, Phase::RolledBack, Some(false))
    );
    assert_eq!(rollback.rules()[0].outcome, Some(Outcome::Fail));
    let reload: Decision = serde_json::from_str(old[1]).unwrap();
    assert_eq!((reload.held_s, reload.rules()), (None, &[][..]));
}

#[test]
fn drift_is_an_error_not_a_default() {
    // A renamed or mistyped key that every line has fails loudly.
    for bad in [
        r#"{"action":"healthy","canary":5.0,"kind":"evaluation","policy":"p","reason":"","state":"progressing","step":0,"ts":"t"}"#,
        r#"{"action":"healthy","canary_percent":"5","kind":"evaluation","policy":"p","reason":"","state":"progressing","step":0,"ts":"t"}"#,
        r#"{"action":"jump","canary_percent":5.0,"kind":"evaluation","policy":"p","reason":"","state":"progressing","step":0,"ts":"t"}"#,
        r#"{"action":"healthy","canary_percent":5.0,"kind":"evaluation","policy":"p","reason":"","state":"sideways","step":0,"ts":"t"}"#,
    ] {
        assert!(serde_json::from_str::<Decision>(bad).is_err(), "{bad}");
    }
    let e = serde_json::from_value::<Status>(json!({"state": "progressing"}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing field"), "{e}");
    let e = serde_json::from_value::<RuleStatus>(rule_json(json!({"outcome": "great"})))
        .unwrap_err()
        .to_string();
    assert!(e.contains("great"), "{e}");
}

#[test]
fn status_documents() {
    let s = Status::from(rollout_status());
    let v = serde_json::to_value(&s).unwrap();
    // Not blocked: `error` is there, as null; no failed save: no `save_error`.
    assert_eq!(v["error"], Value::Null);
    assert!(v.as_object().unwrap().contains_key("error"));
    assert!(!v.as_object().unwrap().contains_key("save_error"));
    assert_eq!(v["state"], "progressing");
    assert_eq!(v["last_decision"]["action"], "advance");
    assert_sorted_keys(&s);
    let text = serde_json::to_string(&s).unwrap();
    assert!(
        text.starts_with(
            r#"{"canary_percent":25.0,"error":null,"holding":false,"last_decision":{"action":"advance","#
        ),
        "{text}"
    );
    assert!(text.ends_with(r#""state":"progressing","step":1,"step_held_s":15.0,"step_hold_remaining_s":45.0,"step_hold_s":60.0,"step_started_at":"2026-03-04T10:15:30.001Z","steps":[5.0,25.0,100.0],"updated_at":"2026-03-04T10:15:30.001Z"}"#), "{text}");
    assert_eq!(serde_json::from_str::<Status>(&text).unwrap(), s);

    let blocked = Status::from(RolloutStatus {
        error: Some("state.json: rollout state is not valid".into()),
        last_decision: None,
        save_error: Some("state.json: cannot write rollout state: read-only".into()),
        state: State::Blocked,
        ..rollout_status()
    });
    let v = serde_json::to_value(&blocked).unwrap();
    assert_eq!(v["last_decision"], Value::Null);
    assert_eq!(v["state"], "blocked");
    assert!(v["save_error"].as_str().unwrap().contains("read-only"));
    assert_eq!(serde_json::from_value::<Status>(v).unwrap(), blocked);
    assert_eq!(blocked.state(), State::Blocked);
    assert_eq!(State::Blocked.phase(), None);

    // Without a policy: the same two keys as ever.
    let disabled = Status::disabled();
    let text = serde_json::to_string(&disabled).unwrap();
    assert_eq!(
        text,
        r#"{"hint":"no [rollout] policy configured: canaryd is a plain splitting proxy","state":"disabled"}"#
    );
    assert_eq!(serde_json::from_str::<Status>(&text).unwrap(), disabled);
    assert_eq!(disabled.state(), State::Disabled);
    assert!(disabled.rollout().is_none());
}

#[test]
fn names_match_the_wire() {
    for p in Phase::ALL {
        let s = State::from(p);
        assert_eq!(s.as_str(), p.as_str());
        assert_eq!(s.phase(), Some(p));
        assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
    }
    for a in [
        Action::Start,
        Action::Advance,
        Action::Promote,
        Action::Hold,
        Action::HoldEnd,
        Action::Alert,
        Action::Rollback,
        Action::RollbackStep,
        Action::RolledBack,
        Action::Pause,
        Action::Resume,
        Action::Abort,
        Action::SetWeight,
        Action::Reload,
        Action::Healthy,
        Action::Paused,
        Action::RollingBack,
        Action::None,
    ] {
        assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
    }
    for k in [Kind::Transition, Kind::Evaluation] {
        assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
    }
    for b in [By::Controller, By::Operator] {
        assert_eq!(serde_json::to_value(b).unwrap(), b.as_str());
    }
    for s in [RuleSource::Local, RuleSource::Prometheus] {
        assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
    }
    for o in [RuleOnFail::Rollback, RuleOnFail::Hold, RuleOnFail::Alert] {
        assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
    }
    // The policy file's names are the document's.
    for (name, on_fail) in [
        ("rollback", OnFail::Rollback),
        ("hold", OnFail::Hold),
        ("alert", OnFail::Alert),
    ] {
        assert_eq!(RuleOnFail::from(on_fail).as_str(), name);
    }
    assert_eq!(RuleSource::from(SourceKind::Local).as_str(), "local");
    assert_eq!(
        RuleSource::from(SourceKind::Prometheus).as_str(),
        "prometheus"
    );
}

#[test]
fn action_requests_and_errors() {
    // What the CLI sends.
    let r = ActionRequest {
        percent: None,
        reason: "ship it".into(),
    };
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        r#"{"reason":"ship it"}"#
    );
    let w = ActionRequest {
        percent: Some(25.0),
        reason: String::new(),
    };
    assert_eq!(
        serde_json::to_string(&w).unwrap(),
        r#"{"percent":25.0,"reason":""}"#
    );
    // What the API accepts: both keys optional, others ignored.
    let parse = |s: &str| serde_json::from_str::<ActionRequest>(s);
    assert_eq!(parse("{}").unwrap(), ActionRequest::default());
    assert_eq!(
        parse(r#"{"percent": 30, "reason": "more load"}"#)
            .unwrap()
            .percent,
        Some(30.0)
    );
    assert_eq!(parse(r#"{"pct": 3}"#).unwrap().percent, None);
    assert!(parse(r#"{"reason": 5}"#).unwrap_err().is_data());
    assert!(parse("{").unwrap_err().is_eof());

    let e = ApiError {
        error: "missing `percent`".into(),
        hint: "POST /api/v1/weight".into(),
        leader_admin: None,
    };
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"error":"missing `percent`","hint":"POST /api/v1/weight"}"#
    );
    assert_eq!(
        serde_json::from_str::<ApiError>(r#"{"error": "x"}"#)
            .unwrap()
            .hint,
        ""
    );
}

#[test]
fn fixtures_fill_what_a_test_leaves_out() {
    let d = decision(json!({"action": "advance", "rules": [{"name": "e", "value": 0.5}]}));
    assert_eq!((d.action, d.rules()[0].value), (Action::Advance, Some(0.5)));
    let s = status(json!({"state": "paused"}));
    assert_eq!(s.state(), State::Paused);
}

#[test]
fn a_test_rule_carries_its_statistic_interval_and_samples_other_rules_do_not() {
    use crate::api::{RuleSamples, RuleTest};
    use crate::policy::Counts;
    let plain = serde_json::to_value(plain_rule()).unwrap();
    for k in [
        "interval",
        "latency",
        "margin",
        "samples",
        "statistic",
        "test",
    ] {
        assert!(plain.get(k).is_none(), "{k} on a threshold rule: {plain}");
    }
    let r = RuleStatus {
        interval: Some([0.01, 0.04]),
        margin: Some(0.005),
        outcome: Some(Outcome::Inconclusive),
        samples: Some(RuleSamples {
            canary: Counts {
                requests: 500,
                errors: 12,
            },
            stable: Counts {
                requests: 9_500,
                errors: 95,
            },
        }),
        statistic: Some(1.5),
        test: Some(RuleTest::Sequential),
        ..plain_rule()
    };
    assert_sorted_keys(&r);
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["outcome"], "inconclusive");
    assert_eq!(v["test"], "sequential");
    assert_eq!(v["samples"]["canary"]["errors"], 12);
    assert_eq!(serde_json::from_value::<RuleStatus>(v).unwrap(), r);

    // A latency test: the shift, U and medians beside the interval (seconds).
    let l = RuleStatus {
        interval: Some([0.004, 0.011]),
        latency: Some(crate::api::RuleLatency {
            canary_median_s: 0.026,
            direction: crate::policy::Direction::Increase,
            shift_s: 0.0075,
            stable_median_s: 0.019,
            u: 712_345.5,
        }),
        margin: Some(0.0019),
        outcome: Some(Outcome::Fail),
        statistic: Some(9.5),
        test: Some(RuleTest::MannWhitney),
        ..r
    };
    assert_sorted_keys(&l);
    let v = serde_json::to_value(&l).unwrap();
    assert_eq!(v["test"], "mann-whitney");
    assert_eq!(v["latency"]["direction"], "increase");
    assert_eq!(serde_json::from_value::<RuleStatus>(v).unwrap(), l);
}
