//! Unit tests of `page.rs`.

use super::*;
use crate::api::tests::{decision, status as status_from};
use crate::policy::Policy;
use crate::rollout::{Command, Phase, Rollout};
use serde_json::json;

fn status() -> Status {
    status_from(json!({
        "state": "progressing", "policy": "demo<x>", "step": 1, "steps": [5.0, 25.0, 100.0],
        "canary_percent": 25.0, "step_hold_s": 60.0, "step_held_s": 15.0,
        "step_hold_remaining_s": 45.0, "reason": "step 1 held <healthy>",
        "updated_at": "2024-05-01T12:00:10.000Z",
        "rules": [{"name": "error-rate", "value": 0.002, "threshold": "> 0.01",
                   "outcome": "pass", "breaching_for_s": 0.0, "for_s": 0.0,
                   "source": "local", "on_fail": "rollback", "dry_run": false}],
    }))
}

fn log() -> Vec<Decision> {
    [
        json!({"ts": "2024-05-01T12:00:00.000Z", "kind": "transition", "action": "start",
               "by": "operator", "canary_percent": 5.0, "reason": "operator: started",
               "rules": [{"name": "error-rate", "value": null, "threshold": "> 0.01", "outcome": null}]}),
        json!({"ts": "2024-05-01T12:00:05.000Z", "kind": "evaluation", "action": "healthy",
               "canary_percent": 5.0, "reason": "operator: started",
               "rules": [{"name": "error-rate", "value": 0.001, "threshold": "> 0.01", "outcome": "pass"}]}),
        json!({"ts": "2024-05-01T12:00:06.000Z", "kind": "evaluation", "action": "healthy",
               "canary_percent": 5.0, "reason": "operator: started",
               "rules": [{"name": "error-rate", "value": 0.001, "threshold": "> 0.01", "outcome": "pass"}]}),
        json!({"ts": "2024-05-01T12:00:10.000Z", "kind": "transition", "action": "advance",
               "by": "controller", "canary_percent": 25.0, "from_step": 0, "to_step": 1,
               "reason": "step 1 held <healthy>",
               "rules": [{"name": "error-rate", "value": 0.002, "threshold": "> 0.01", "outcome": "pass"}]}),
    ]
    .into_iter()
    .map(decision)
    .collect()
}

fn data<'a>(s: &'a Status, l: &'a [Decision], token: bool) -> PageData<'a> {
    PageData {
        status: s,
        decisions: l,
        weight_percent: 25.0,
        token_configured: token,
        now_ms: 1_714_564_820_000,
    }
}

#[test]
fn page_shows_state_split_steps_charts_and_decisions() {
    let (s, l) = (status(), log());
    let html = page(&data(&s, &l, true), "abc123");
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<script nonce=\"abc123\">"));
    assert!(html.contains("<style nonce=\"abc123\">"));
    assert!(html.contains("id=\"state\" class=\"badge state-progressing\">progressing<"));
    assert!(html.contains("<b class=\"canary\">25 %</b> canary"));
    assert!(html
        .contains("<li class=\"step current\"><span class=\"w\">25 %</span><progress id=\"hold\""));
    assert!(html.contains("15s of 1m held · 45s left"));
    assert!(html.contains("class=\"weight-line\""));
    assert!(html.contains("data-rule=\"error-rate\""));
    assert!(html.contains("class=\"threshold-line\""));
    // Newest first; the two identical evaluations are one row.
    let advance = html.find("action-advance").unwrap();
    let healthy = html.find("action-healthy").unwrap();
    assert!(advance < healthy);
    assert!(html.contains("healthy</span> <small>×2</small>"));
    assert!(html.contains("step 1 → 2"));
    // Escaped, never raw.
    assert!(html.contains("demo&lt;x&gt;") && !html.contains("demo<x>"));
    assert!(html.contains("held &lt;healthy&gt;"));
    // No external resources.
    for bad in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!html.contains(bad), "{bad}");
    }
    // The phase's buttons.
    assert!(html.contains("data-action=\"pause\" class=\"act act-pause\">"));
    assert!(html.contains("data-action=\"resume\" class=\"act act-resume\" disabled>"));
    assert!(html.contains("data-actions=\"pause promote rollback abort weight\""));
}

#[test]
fn without_a_token_file_every_button_is_disabled() {
    let (s, l) = (status(), log());
    let html = page(&data(&s, &l, false), "n");
    assert!(html.contains("no <code>[admin] token_file</code>"));
    assert!(html.contains("act-pause\" disabled>"));
    assert!(html.contains("data-actions=\"\""));
}

#[test]
fn without_a_policy_the_page_says_so() {
    let s: Status =
        serde_json::from_value(json!({"state": "disabled", "hint": "no [rollout] policy"}))
            .unwrap();
    let html = fragment(&data(&s, &[], true));
    assert!(html.contains("plain splitting"));
    assert!(
        html.contains("<b class=\"canary\">25 %</b>"),
        "the table's split"
    );
    assert!(html.contains("no decisions logged yet"));
    assert!(!html.contains("class=\"steps\""));
}

#[test]
fn headers_lock_the_page_down() {
    let n = nonce();
    assert_eq!(n.len(), 32);
    assert_ne!(n, nonce());
    let h = headers(&n);
    let csp = &h[0].1;
    assert!(csp.contains(&format!("script-src 'nonce-{n}'")));
    assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe"));
    assert!(h
        .iter()
        .any(|(k, v)| *k == "cache-control" && v == "no-store"));
    assert!(h
        .iter()
        .any(|(k, v)| *k == "x-content-type-options" && v == "nosniff"));
}

/// The buttons' rules are the state machine's: an allowed action is accepted by
/// `Rollout::apply`, a disabled one refused.
#[test]
fn allowed_actions_match_the_state_machine() {
    let policy = || {
        Policy::from_source(
            "p.toml",
            "name = \"t\"\ninterval = \"1s\"\n[[steps]]\nweight = 5\nhold = \"1m\"\n[[steps]]\nweight = 100\nhold = \"1m\"\n",
        )
        .unwrap()
    };
    let commands = [
        ("start", Command::Start),
        ("pause", Command::Pause),
        ("resume", Command::Resume),
        ("promote", Command::Promote),
        ("rollback", Command::Rollback),
        ("abort", Command::Abort),
        ("weight", Command::SetWeight(10.0)),
        ("approve", Command::Approve),
    ];
    // Every button of the panel is one of these.
    for (action, _) in ACTIONS {
        assert!(commands.iter().any(|(name, _)| *name == action), "{action}");
    }
    for phase in Phase::ALL {
        for (name, cmd) in &commands {
            let mut r = Rollout::idle(policy(), 0.0, 0);
            r.state.phase = phase;
            let accepted = r.apply(cmd, "", 0).is_ok();
            let allowed = allowed_actions(State::from(phase)).contains(name);
            assert_eq!(allowed, accepted, "{name} in {}", phase.as_str());
        }
    }
    // Paused from each live phase: the same buttons, except that a rollout paused during a
    // gradual rollback is not promoted (the API refuses it with its reason and a hint).
    for from in [
        Phase::Progressing,
        Phase::AwaitingApproval,
        Phase::RollingBack,
    ] {
        for (name, cmd) in &commands {
            let mut r = Rollout::idle(policy(), 0.0, 0);
            r.state.phase = Phase::Paused;
            r.state.paused_from = Some(from);
            let accepted = r.apply(cmd, "", 0).is_ok();
            let allowed = allowed_actions(State::Paused).contains(name)
                && !(from == Phase::RollingBack && *name == "promote");
            assert_eq!(allowed, accepted, "{name} in paused from {}", from.as_str());
        }
    }
    // Blocked: only a start, which reads the state file again.
    assert_eq!(allowed_actions(State::Blocked), ["start"]);
    assert_eq!(allowed_actions(State::Manual), ["weight"]);
    assert!(allowed_actions(State::Disabled).is_empty());
}

#[test]
fn the_approve_button_is_enabled_only_while_awaiting_approval() {
    let l = log();
    for state in [
        "idle",
        "progressing",
        "awaiting_approval",
        "paused",
        "rolling_back",
        "promoted",
        "rolled_back",
        "aborted",
        "blocked",
    ] {
        let mut doc = serde_json::to_value(status()).unwrap();
        doc["state"] = json!(state);
        let s = status_from(doc);
        let html = page(&data(&s, &l, true), "n");
        let enabled = html.contains("data-action=\"approve\" class=\"act act-approve\">Approve<");
        let disabled =
            html.contains("data-action=\"approve\" class=\"act act-approve\" disabled>Approve<");
        assert_eq!(
            (enabled, disabled),
            (state == "awaiting_approval", state != "awaiting_approval"),
            "{state}"
        );
        let allowed = fragment(&data(&s, &l, true));
        assert_eq!(
            allowed.contains("data-actions=\"approve "),
            state == "awaiting_approval",
            "{state}"
        );
    }
    // Awaiting approval shows on the badge and the current step.
    let mut doc = serde_json::to_value(status()).unwrap();
    doc["state"] = json!("awaiting_approval");
    let s = status_from(doc);
    let html = page(&data(&s, &l, true), "n");
    assert!(html.contains("class=\"badge state-awaiting-approval\">awaiting approval<"));
    assert!(html.contains(" · awaiting approval</span>"));
    // Without a token nothing is enabled, approve included.
    let html = page(&data(&s, &l, false), "n");
    assert!(html.contains("act-approve\" disabled>"));
}

/// The two refusals that depend on more than the state disable their buttons too.
#[test]
fn approve_waits_for_a_healthy_canary_and_promote_for_a_finished_rollback() {
    let doc = |state: &str, holding: bool, paused_from: Option<&str>| -> RolloutStatus {
        serde_json::from_value(serde_json::json!({
            "state": state, "policy": "p", "step": 0, "steps": [5.0, 100.0],
            "canary_percent": 5.0, "step_hold_s": 60.0, "step_held_s": 60.0,
            "step_hold_remaining_s": 0.0, "reason": "r", "error": null,
            "step_started_at": "t", "updated_at": "t", "rules": [],
            "holding": holding, "paused_from": paused_from
        }))
        .expect("a status document")
    };
    assert!(allowed_for(&doc("awaiting_approval", false, None)).contains(&"approve"));
    assert!(!allowed_for(&doc("awaiting_approval", true, None)).contains(&"approve"));
    assert!(allowed_for(&doc("paused", false, Some("progressing"))).contains(&"promote"));
    assert!(!allowed_for(&doc("paused", false, Some("rolling_back"))).contains(&"promote"));
}

#[test]
fn a_fleets_follower_shows_the_leader_and_takes_no_command() {
    let mut s = status();
    if let Status::Rollout(r) = &mut s {
        r.cluster = Some(crate::api::ClusterStatus {
            connected: false,
            leader: Some("edge-1".into()),
            leader_admin: Some("10.0.0.1:9180".into()),
            members: vec![crate::api::MemberStatus {
                applied_percent: 25.0,
                connected: false,
                epoch: 3,
                last_seen: "2024-05-01T12:00:10.000Z".into(),
                name: "edge<2>".into(),
            }],
            name: "edge<2>".into(),
            role: ClusterRole::Follower,
        });
    }
    let html = page(&data(&s, &log(), true), "n");
    assert!(html.contains("data-role=\"follower\""), "{html}");
    assert!(html.contains("<b id=\"fleet-leader\">edge-1</b>"));
    assert!(html.contains("edge&lt;2&gt; — 25 % (epoch 3), cut off"));
    assert!(html.contains("etcd unreachable"));
    assert!(html.contains("commands go to its admin API at <code>10.0.0.1:9180</code>"));
    assert!(html.contains("act-pause\" disabled>"));
}
