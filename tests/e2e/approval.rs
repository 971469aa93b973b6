//! Approval gates against the real daemon: a step with `approval = true` waits in
//! `awaiting_approval` once its hold is met (one decision line, one webhook), `POST
//! /api/v1/approve` and `canaryd approve` move on, approve is refused with `{error, hint}`
//! everywhere else, the wait survives a restart, and a failing canary is still rolled back
//! while it waits. Status documents and decision lines are read as the controller's types.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canaryd_controller::{Action, By, Decision, DecisionList, RolloutStatus, State, Status};
use serde_json::{json, Value};

use crate::common::{self, cli, post, Canaryd, FakeGateway, Setup};

/// 10 % (3 s, gated) → 50 % (1 h) → 100 % (1 s, gated); a local 5xx rule.
const POLICY: &str = r#"
name = "gated"
interval = "1s"
[[steps]]
weight = 10
hold = "3s"
approval = true
[[steps]]
weight = 50
hold = "1h"
[[steps]]
weight = 100
hold = "1s"
approval = true
[[rules]]
name = "errors"
source = "local"
signal = "error_ratio"
window = "2s"
fail_when = "> 0.5"
on_no_data = "pass"
"#;

const TOKEN: &str = "approval-t0ken";

struct Gated {
    d: Canaryd,
    token_file: PathBuf,
    /// Bodies POSTed to the webhook.
    hooks: Arc<Mutex<Vec<Value>>>,
    _gw: (FakeGateway, FakeGateway),
    _files: testkit::TempDir,
}

/// A daemon with a token, a webhook and the gated policy, not started.
fn daemon() -> Gated {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let files = testkit::TempDir::new("canaryd-approval");
    let token_file = common::write_token(files.path(), TOKEN);
    let policy = files.path().join("gated.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let hooks = Arc::new(Mutex::new(Vec::new()));
    let sink = hooks.clone();
    let hook = common::raw_server(move |body| {
        if let Ok(v) = serde_json::from_slice(&body) {
            sink.lock().unwrap().push(v);
        }
        (200, Vec::new())
    });
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.rollout = format!("policy = \"{}\"\n", policy.display());
    setup.tail = format!("[[notify]]\nurl = \"http://{hook}/hook\"\n");
    let d = Canaryd::start_with_token(&setup, &token_file);
    Gated {
        d,
        token_file,
        hooks,
        _gw: (stable, canary),
        _files: files,
    }
}

/// An accepted action: the status it answers with.
fn ok(d: &Canaryd, action: &str, body: Value) -> RolloutStatus {
    let (code, s) = post(d, action, Some(TOKEN), body);
    assert_eq!(code, 200, "{action}: {s}");
    rollout(s)
}

/// A refused action: 409 with `{error, hint}`.
fn refused(d: &Canaryd, action: &str) -> canaryd_controller::ApiError {
    let (code, s) = post(d, action, Some(TOKEN), json!({}));
    assert_eq!(code, 409, "{action} should be refused: {s}");
    let e: canaryd_controller::ApiError = serde_json::from_value(s).unwrap();
    assert!(!e.error.is_empty() && !e.hint.is_empty(), "{e:?}");
    e
}

fn rollout(v: Value) -> RolloutStatus {
    match serde_json::from_value::<Status>(v).unwrap() {
        Status::Rollout(r) => *r,
        Status::Disabled { .. } => panic!("no policy"),
    }
}

fn status(d: &Canaryd) -> RolloutStatus {
    rollout(d.status())
}

fn decisions(d: &Canaryd) -> Vec<Decision> {
    let v = testkit::get(d.admin, "/api/v1/decisions?limit=1000")
        .unwrap()
        .json();
    serde_json::from_value::<DecisionList>(v).unwrap().decisions
}

fn transitions(d: &Canaryd, action: Action) -> Vec<Decision> {
    decisions(d)
        .into_iter()
        .filter(|l| l.action == action)
        .collect()
}

fn wait_state(d: &Canaryd, state: State) -> RolloutStatus {
    rollout(d.wait_status(state.as_str(), Duration::from_secs(20), |s| {
        s["state"] == state.as_str()
    }))
}

#[test]
fn approve_moves_a_waiting_step_on_and_is_refused_everywhere_else() {
    let g = daemon();
    let d = &g.d;
    // Idle: nothing to approve; no token: 401; GET: 405.
    let e = refused(d, "approve");
    assert!(
        e.error.contains("nothing to approve: the rollout is idle"),
        "{e:?}"
    );
    assert_eq!(post(d, "approve", None, json!({})).0, 401);
    assert_eq!(post(d, "approve", Some("wrong"), json!({})).0, 401);
    assert_eq!(
        testkit::get(d.admin, "/api/v1/approve").unwrap().status,
        405
    );

    let s = ok(d, "start", json!({"reason": "approval test"}));
    assert_eq!((s.state, s.canary_percent), (State::Progressing, 10.0));
    let e = refused(d, "approve");
    assert!(e.error.contains("still serving its hold"), "{e:?}");

    // The hold is met: the rollout waits, at 10 %.
    let s = wait_state(d, State::AwaitingApproval);
    assert_eq!((s.step, s.canary_percent), (0, 10.0));
    assert!(s.reason.contains("ready for approval"), "{}", s.reason);
    assert_eq!(d.metric("canaryd_canary_weight_percent"), 10.0);
    assert_eq!(
        d.metric(r#"canaryd_rollout_state{state="awaiting_approval"}"#),
        1.0
    );
    // Announced once: one decision line, one webhook, however long it waits.
    testkit::wait_until("the webhook", Duration::from_secs(10), || {
        g.hooks
            .lock()
            .unwrap()
            .iter()
            .any(|h| h["action"] == "awaiting_approval")
    });
    std::thread::sleep(Duration::from_secs(3));
    let ready = transitions(d, Action::AwaitingApproval);
    assert_eq!(ready.len(), 1, "{ready:?}");
    assert_eq!(ready[0].by, Some(By::Controller));
    let hooks: Vec<Value> = g.hooks.lock().unwrap().clone();
    let hooked: Vec<&Value> = hooks
        .iter()
        .filter(|h| h["action"] == "awaiting_approval")
        .collect();
    assert_eq!(hooked.len(), 1, "{hooks:?}");
    assert_eq!(hooked[0]["state"], "awaiting_approval");
    assert_eq!(status(d).state, State::AwaitingApproval);

    // The terminal view says what approve does.
    let (good, out, _) = cli(d, &["status"], None);
    assert!(good);
    assert!(out.contains("state awaiting_approval"), "{out}");
    assert!(
        out.contains("`canaryd approve` moves on to step 2/3 (50%)"),
        "{out}"
    );

    // Paused while waiting: approve asks for a resume; resume goes back to waiting.
    assert_eq!(ok(d, "pause", json!({})).state, State::Paused);
    let e = refused(d, "approve");
    assert!(e.hint.contains("canaryd resume"), "{e:?}");
    let s = ok(d, "resume", json!({}));
    assert_eq!((s.state, s.canary_percent), (State::AwaitingApproval, 10.0));

    // `canaryd approve`: the next step.
    let (good, out, err) = cli(d, &["approve", "--reason", "ship"], Some(&g.token_file));
    assert!(good, "{err}");
    assert!(
        out.contains("state progressing") && out.contains("50 % canary"),
        "{out}"
    );
    assert_eq!(d.metric("canaryd_canary_weight_percent"), 50.0);
    let approve = transitions(d, Action::Approve);
    assert_eq!(approve.len(), 1);
    assert_eq!(
        (approve[0].by, approve[0].operator_reason.as_deref()),
        (Some(By::Operator), Some("ship"))
    );
    let advance = transitions(d, Action::Advance);
    assert_eq!(
        (advance[0].from_step, advance[0].to_step),
        (Some(0), Some(1))
    );
    // Step 1 does not wait for approval: nothing to approve, and the CLI says why.
    let e = refused(d, "approve");
    assert!(e.error.contains("does not wait for approval"), "{e:?}");
    let (good, _, err) = cli(d, &["approve"], Some(&g.token_file));
    assert!(!good);
    assert!(
        err.contains("does not wait for approval") && err.contains("hint:"),
        "{err}"
    );
    testkit::wait_until("the approve webhook", Duration::from_secs(10), || {
        g.hooks
            .lock()
            .unwrap()
            .iter()
            .any(|h| h["action"] == "approve")
    });
}

#[test]
fn a_restart_while_awaiting_approval_stays_awaiting() {
    let mut g = daemon();
    ok(&g.d, "start", json!({}));
    wait_state(&g.d, State::AwaitingApproval);
    // The decision log is written off the control loop (never waiting on a disk), so a line
    // queued a moment before a kill -9 may be lost; the state file is not. Kill once the line
    // is on disk: the restart must not write a second one.
    let log = g.d.dir.path().join("decisions.ndjson");
    testkit::wait_until(
        "the awaiting_approval line on disk",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log).is_ok_and(|t| {
                t.lines()
                    .filter_map(|l| serde_json::from_str::<Decision>(l).ok())
                    .any(|l| l.action == Action::AwaitingApproval)
            })
        },
    );
    g.d.kill9_and_restart();
    let s = status(&g.d);
    assert_eq!(
        (s.state, s.step, s.canary_percent),
        (State::AwaitingApproval, 0, 10.0)
    );
    assert_eq!(g.d.metric("canaryd_canary_weight_percent"), 10.0);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(status(&g.d).state, State::AwaitingApproval);
    assert_eq!(transitions(&g.d, Action::AwaitingApproval).len(), 1);
    // Once the rules have been judged again, approve goes through.
    testkit::wait_until("approved", Duration::from_secs(10), || {
        post(&g.d, "approve", Some(TOKEN), json!({})).0 == 200
    });
    let s = status(&g.d);
    assert_eq!((s.state, s.canary_percent), (State::Progressing, 50.0));
}

#[test]
fn a_failing_canary_is_rolled_back_while_awaiting_approval() {
    let g = daemon();
    let d = &g.d;
    let traffic = common::Traffic::start(d.proxy, 2);
    ok(d, "start", json!({}));
    wait_state(d, State::AwaitingApproval);
    g._gw.1.set_knobs("error_rate=1");
    let s = wait_state(d, State::RolledBack);
    assert_eq!(s.canary_percent, 0.0);
    assert!(s.reason.contains("errors"), "{}", s.reason);
    assert_eq!(d.metric("canaryd_canary_weight_percent"), 0.0);
    let e = refused(d, "approve");
    assert!(e.error.contains("rolled_back"), "{e:?}");
    let rollback = transitions(d, Action::Rollback);
    assert_eq!(rollback[0].failed_rules, Some(vec!["errors".to_string()]));
    drop(traffic.stop());
}
