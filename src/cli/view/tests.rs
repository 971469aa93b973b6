//! Unit tests of `view.rs`.

use super::*;

/// A status document as the admin API sends it.
fn status() -> Status {
    serde_json::from_value(serde_json::json!({
        "state": "progressing", "policy": "p", "step": 1, "steps": [5.0, 25.0, 100.0],
        "canary_percent": 25.0, "step_hold_s": 60.0, "step_held_s": 15.0,
        "step_hold_remaining_s": 45.0, "reason": "step 0 held healthy for 1m",
        "error": null, "step_started_at": "t", "updated_at": "t",
        "rules": [{"name": "error-rate", "value": 0.002, "threshold": "> 0.01", "outcome": "pass", "breaching_for_s": 0.0, "for_s": 0.0,
                   "source": "local", "on_fail": "rollback", "dry_run": false}],
        "last_decision": {"ts": "t", "action": "advance", "reason": "r",
                          "kind": "transition", "state": "progressing", "policy": "p", "step": 1, "canary_percent": 25.0}
    }))
    .expect("a status document")
}

#[test]
fn renders_a_status() {
    let s = status();
    let v = render(&s);
    assert!(
        v.contains("state progressing    step 2/3 (5% → 25% → 100%)"),
        "{v}"
    );
    assert!(v.contains("25 % canary / 75 % stable"), "{v}");
    assert!(
        v.contains("[########----------------------] 15s of 1m held, 45s left"),
        "{v}"
    );
    assert!(v.contains("error-rate"));
    assert!(v.contains("> 0.01"));
    let l = line(&s);
    assert_eq!(
        l,
        "state=progressing step=1 canary=25% held=15s/1m error-rate=0.0020(pass)"
    );
}

#[test]
fn says_when_the_state_is_not_saved_and_when_there_is_no_policy() {
    let Status::Rollout(mut r) = status() else {
        panic!("a rollout status")
    };
    r.save_error = Some("/s/state.json: cannot write rollout state: No space left on device (os error 28); not applied: the split stays at 5 %".into());
    let s = Status::Rollout(r);
    let v = render(&s);
    assert!(
        v.contains(
            "ERROR   state not saved: /s/state.json: cannot write rollout state: No space left"
        ),
        "{v}"
    );
    assert!(line(&s).ends_with(" state-not-saved"), "{}", line(&s));
    let disabled = Status::disabled();
    assert!(render(&disabled).contains("no rollout policy configured"));
    assert_eq!(line(&disabled), "state=disabled");
}

#[test]
fn says_a_rollout_awaits_approval_and_what_approve_does() {
    let Status::Rollout(mut r) = status() else {
        panic!("a rollout status")
    };
    r.state = State::AwaitingApproval;
    r.step_held_s = 60.0;
    r.step_hold_remaining_s = 0.0;
    let v = render(&Status::Rollout(r.clone()));
    assert!(v.contains("state awaiting_approval    step 2/3"), "{v}");
    assert!(v.contains("1m of 1m held, 0s left"), "{v}");
    assert!(
        v.contains(
            "approve waiting for an operator: `canaryd approve` moves on to step 3/3 (100%)"
        ),
        "{v}"
    );
    assert!(line(&Status::Rollout(r.clone())).starts_with("state=awaiting_approval step=1"));
    r.step = 2;
    let v = render(&Status::Rollout(r));
    assert!(v.contains("moves on to promoted (100%)"), "{v}");
}

#[test]
fn renders_manual_mode() {
    let s: Status = serde_json::from_value(serde_json::json!({
        "state": "manual", "policy": "", "step": 0, "steps": [],
        "canary_percent": 25.0, "step_hold_s": 0.0, "step_held_s": 0.0,
        "step_hold_remaining_s": 0.0, "reason": "operator: split set to 25 %",
        "error": null, "step_started_at": "t", "updated_at": "t", "rules": []
    }))
    .expect("a status document");
    let v = render(&s);
    assert!(v.starts_with("mode    manual: no [rollout] policy"), "{v}");
    assert!(v.contains("25 % canary / 75 % stable"), "{v}");
    assert!(!v.contains("step 1/0"), "{v}");
    assert_eq!(line(&s), "state=manual canary=25%");
}
