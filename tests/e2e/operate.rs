//! Operating canaryd: the admin API's authentication and the state rules of every operator
//! action, the CLI against a running daemon, the admin token's file rules, reload on SIGHUP
//! (valid and invalid) and a SIGTERM in the middle of a rollout.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, binary, cli, post, Canaryd, FakeGateway, Setup};

const POLICY: &str = r#"
name = "manual"
interval = "1s"
[[steps]]
weight = 10
hold = "1h"
[[steps]]
weight = 50
hold = "1h"
[[steps]]
weight = 100
hold = "1h"
[[rules]]
name = "errors"
source = "local"
signal = "error_ratio"
window = "5s"
fail_when = "> 0.5"
on_no_data = "pass"
"#;

struct Op {
    d: Canaryd,
    token_file: PathBuf,
    policy: PathBuf,
    _gw: (FakeGateway, FakeGateway),
}

/// A daemon with a token and the manual policy, not started.
fn daemon() -> Op {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let files = testkit::TempDir::new("canaryd-op");
    let token_file = common::write_token(files.path(), TOKEN);
    let policy = files.path().join("manual.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.rollout = format!("policy = \"{}\"\n", policy.display());
    let d = Canaryd::start_with_token(&setup, &token_file);
    // Keep the files alive as long as the daemon: leak the TempDir into the test's lifetime.
    std::mem::forget(files);
    Op {
        d,
        token_file,
        policy,
        _gw: (stable, canary),
    }
}

const TOKEN: &str = "t0ken-for-tests";

#[test]
fn mutations_need_the_right_bearer_token() {
    let op = daemon();
    let (code, body) = post(&op.d, "start", None, json!({}));
    assert_eq!(code, 401, "{body}");
    assert!(body["hint"].as_str().unwrap().contains("Bearer"));
    assert_eq!(post(&op.d, "start", Some("wrong"), json!({})).0, 401);
    assert_eq!(
        post(&op.d, "start", Some("t0ken-for-test"), json!({})).0,
        401
    );
    assert_eq!(
        op.d.status()["state"],
        "idle",
        "nothing happened without the token"
    );
    let (code, body) = post(&op.d, "start", Some(TOKEN), json!({"reason": "ship it"}));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"], "progressing");
    // Reads need no token.
    assert_eq!(
        testkit::get(op.d.admin, "/api/v1/status").unwrap().status,
        200
    );
    // GET on an action is a clear 405.
    let r = testkit::get(op.d.admin, "/api/v1/start").unwrap();
    assert_eq!(r.status, 405);
    assert!(r.json()["error"].as_str().unwrap().contains("POST"));
}

#[test]
fn without_a_token_file_mutations_are_refused() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let files = testkit::TempDir::new("canaryd-op");
    let policy = files.path().join("manual.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.rollout = format!("policy = \"{}\"\n", policy.display());
    let d = Canaryd::start(&setup);
    let (code, body) = post(&d, "start", Some("anything"), json!({}));
    assert_eq!(code, 403, "{body}");
    assert!(body["hint"].as_str().unwrap().contains("token_file"));
}

#[test]
fn each_action_follows_the_state_rules_and_is_logged_with_its_reason() {
    let op = daemon();
    let d = &op.d;
    let ok = |action: &str, body: Value| {
        let (code, s) = post(d, action, Some(TOKEN), body);
        assert_eq!(code, 200, "{action}: {s}");
        s
    };
    let refused = |action: &str, body: Value| {
        let (code, s) = post(d, action, Some(TOKEN), body);
        assert_eq!(code, 409, "{action} should be refused: {s}");
        assert!(s["error"].is_string() && s["hint"].is_string(), "{s}");
        s
    };
    refused("pause", json!({}));
    refused("promote", json!({}));
    let s = ok("start", json!({"reason": "release 1.2"}));
    assert_eq!(
        (s["state"].as_str(), s["canary_percent"].as_f64()),
        (Some("progressing"), Some(10.0))
    );
    refused("start", json!({}));
    assert_eq!(ok("pause", json!({"reason": "lunch"}))["state"], "paused");
    refused("pause", json!({}));
    assert_eq!(ok("resume", json!({}))["state"], "progressing");
    // set-weight pauses the policy and moves the split.
    let s = ok("weight", json!({"percent": 30, "reason": "more load"}));
    assert_eq!(
        (s["state"].as_str(), s["canary_percent"].as_f64()),
        (Some("paused"), Some(30.0))
    );
    assert_eq!(d.metric("canaryd_canary_weight_percent"), 30.0);
    let (code, _) = post(d, "weight", Some(TOKEN), json!({"percent": 130}));
    assert_eq!(code, 409);
    let (code, s) = post(d, "weight", Some(TOKEN), json!({"pct": 3}));
    assert_eq!(code, 400, "{s}");
    // Resume goes back to the step's weight.
    assert_eq!(ok("resume", json!({}))["canary_percent"], 10.0);
    let s = ok("rollback", json!({"reason": "bad p99"}));
    assert_eq!(
        (s["state"].as_str(), s["canary_percent"].as_f64()),
        (Some("rolled_back"), Some(0.0))
    );
    // Promote after a rollback says why not.
    let s = refused("promote", json!({}));
    assert!(s["error"].as_str().unwrap().contains("rolled_back"), "{s}");
    assert!(s["hint"].as_str().unwrap().contains("canaryd start"), "{s}");
    refused("abort", json!({}));
    ok("start", json!({}));
    assert_eq!(ok("abort", json!({}))["state"], "aborted");
    ok("start", json!({}));
    assert_eq!(
        ok("promote", json!({"reason": "looks good"}))["state"],
        "promoted"
    );
    assert_eq!(d.metric("canaryd_canary_weight_percent"), 100.0);

    let lines = d.decisions();
    let ops: Vec<(&str, &str)> = lines
        .iter()
        .filter(|l| l["by"] == "operator")
        .map(|l| {
            (
                l["action"].as_str().unwrap(),
                l["operator_reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(ops.contains(&("start", "release 1.2")), "{ops:?}");
    assert!(ops.contains(&("pause", "lunch")), "{ops:?}");
    assert!(ops.contains(&("set_weight", "more load")), "{ops:?}");
    assert!(ops.contains(&("rolled_back", "bad p99")), "{ops:?}");
    assert!(ops.contains(&("promote", "looks good")), "{ops:?}");
}

#[test]
fn cli_against_a_running_daemon() {
    let op = daemon();
    let d = &op.d;
    let (ok, out, _) = cli(d, &["status"], None);
    assert!(ok);
    assert!(out.contains("state idle"), "{out}");
    let (ok, _, err) = cli(d, &["start"], None);
    assert!(!ok, "start without a token must fail");
    assert!(err.contains("missing or wrong bearer token"), "{err}");
    let (ok, out, err) = cli(d, &["start", "--reason", "cli test"], Some(&op.token_file));
    assert!(ok, "{err}");
    assert!(
        out.contains("state progressing") && out.contains("10 % canary"),
        "{out}"
    );
    let (ok, out, _) = cli(d, &["set-weight", "25"], Some(&op.token_file));
    assert!(ok);
    assert!(
        out.contains("state paused") && out.contains("25 % canary"),
        "{out}"
    );
    let (ok, out, _) = cli(d, &["status", "--json"], None);
    assert!(ok);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["canary_percent"], 25.0);
    let (ok, _, _) = cli(d, &["rollback", "--reason", "x"], Some(&op.token_file));
    assert!(ok);
    let (ok, _, err) = cli(d, &["promote"], Some(&op.token_file));
    assert!(!ok);
    assert!(
        err.contains("rolled_back") && err.contains("hint:"),
        "{err}"
    );

    // --watch without a terminal prints plain lines, one per change.
    let mut watch = Command::new(binary())
        .args(["status", "--watch", "--admin"])
        .arg(format!("http://{}", d.admin))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = cli(d, &["start"], Some(&op.token_file));
    std::thread::sleep(Duration::from_millis(1500));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "{text}");
    assert!(lines[0].contains("state=rolled_back"), "{text}");
    assert!(
        lines.iter().any(|l| l.contains("state=progressing")),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "no terminal escapes when not a TTY");

    let out = Command::new(binary())
        .args(["status", "--admin", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the admin API"), "{err}");
}

#[test]
fn token_file_rules_are_enforced_at_start() {
    let files = testkit::TempDir::new("canaryd-op");
    let token = files.path().join("admin.token");
    std::fs::write(&token, "x").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = files.path().join("canaryd.toml");
    let base = "[proxy]\nlisten = [\"127.0.0.1:0\"]\n[backends.stable]\nservers = [\"127.0.0.1:1\"]\n[backends.canary]\nservers = [\"127.0.0.1:2\"]\n";
    let serve = |text: String| {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(binary())
            .args(["serve", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let err = serve(format!(
        "{base}[admin]\nlisten = \"{}\"\ntoken_file = \"{}\"\n",
        testkit::free_addr(),
        token.display()
    ));
    assert!(
        err.contains("readable by other users") && err.contains("chmod 600"),
        "{err}"
    );
    let err = serve(format!(
        "{base}[admin]\nlisten = \"0.0.0.0:{}\"\n",
        testkit::free_addr().port()
    ));
    assert!(
        err.contains("reachable from other machines") && err.contains("token_file"),
        "{err}"
    );
}

#[test]
fn sighup_applies_a_valid_policy_and_keeps_the_old_one_on_errors() {
    let op = daemon();
    let d = &op.d;
    post(d, "start", Some(TOKEN), json!({}));
    // A valid change: a shorter hold and a new threshold.
    std::fs::write(
        &op.policy,
        POLICY
            .replacen("hold = \"1h\"", "hold = \"2h\"", 1)
            .replace("> 0.5", "> 0.25"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    d.wait_status("reloaded policy", Duration::from_secs(5), |s| {
        s["step_hold_s"] == 7200.0 && s["rules"][0]["threshold"] == "> 0.25"
    });
    assert_eq!(
        d.status()["state"],
        "progressing",
        "the rollout keeps its state"
    );
    // An invalid change: the old policy stays, the daemon lives, the log says why.
    std::fs::write(
        &op.policy,
        POLICY.replace("fail_when = \"> 0.5\"", "fail_when = \"bigger than 0.5\""),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    testkit::wait_until("reload failure logged", Duration::from_secs(5), || {
        d.log().contains("reload failed")
    });
    assert!(
        d.log().contains("expected a comparison like"),
        "the log names the mistake"
    );
    let s = d.status();
    assert_eq!(s["rules"][0]["threshold"], "> 0.25");
    assert_eq!(testkit::get(d.admin, "/healthz").unwrap().status, 200);
}

#[test]
fn sigterm_during_a_rollout_keeps_its_state_for_the_restart() {
    let mut op = daemon();
    post(&op.d, "start", Some(TOKEN), json!({}));
    post(&op.d, "weight", Some(TOKEN), json!({"percent": 42}));
    op.d.signal(libc::SIGTERM);
    assert!(
        op.d.wait_exit(Duration::from_secs(10)).is_some(),
        "did not exit"
    );
    op.d.kill9_and_restart();
    let s = op.d.status();
    assert_eq!(
        (s["state"].as_str(), s["canary_percent"].as_f64()),
        (Some("paused"), Some(42.0)),
        "{s}"
    );
    assert_eq!(op.d.metric("canaryd_canary_weight_percent"), 42.0);
}

#[test]
fn sighup_swaps_pools_live_and_keeps_them_on_a_bad_config() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let canary2 = FakeGateway::spawn("canary2", &[]);
    let d = Canaryd::start(&Setup::new(&stable, &canary, 100.0));
    let traffic = common::Traffic::start(d.proxy, 2);
    assert_eq!(d.client().get("/").unwrap().text(), "canary");
    let original = std::fs::read_to_string(&d.config).unwrap();

    // A new canary server: new requests go there, nothing fails meanwhile.
    let text = original.replace(&canary.addr.to_string(), &canary2.addr.to_string());
    std::fs::write(&d.config, text).unwrap();
    d.signal(libc::SIGHUP);
    testkit::wait_until("requests on the new canary", Duration::from_secs(5), || {
        testkit::get(d.proxy, "/")
            .map(|r| r.text() == "canary2")
            .unwrap_or(false)
    });

    // A broken file: the running pools stay, the log says why.
    std::fs::write(
        &d.config,
        original.replace("[backends.canary]\n", "[backends.canary]\nweight = 3\n"),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    testkit::wait_until("reload failure logged", Duration::from_secs(5), || {
        d.log().contains("reload failed")
    });
    assert!(
        d.log().contains("backends.canary.weight"),
        "the log names the key"
    );
    // A new route applies live, with counters of its own.
    let routes = original.replace(&canary.addr.to_string(), &canary2.addr.to_string())
        + "[[proxy.routes]]\nprefix = \"/api\"\n";
    std::fs::write(&d.config, routes).unwrap();
    d.signal(libc::SIGHUP);
    testkit::wait_until("route added live", Duration::from_secs(5), || {
        d.metrics().keys().any(|k| k.contains("route=\"/api\""))
    });
    let served = common::count_served_by(d.proxy, 100, 1, &[]);
    assert_eq!(served.get("canary2").copied(), Some(100), "{served:?}");
    let answers = traffic.stop();
    assert_eq!(
        answers.keys().copied().collect::<Vec<_>>(),
        [200],
        "{answers:?}"
    );
}

/// A webhook receiver: records every POSTed JSON body, answers 200.
#[test]
fn operator_actions_reach_the_webhook() {
    let (hook, got) = common::webhook_receiver();
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let files = testkit::TempDir::new("canaryd-op");
    let token_file = common::write_token(files.path(), TOKEN);
    let policy = files.path().join("manual.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.rollout = format!("policy = \"{}\"\n", policy.display());
    setup.tail = format!("[[notify]]\nurl = \"http://{hook}/hook\"\n");
    let d = Canaryd::start_with_token(&setup, &token_file);
    post(&d, "start", Some(TOKEN), json!({"reason": "webhook test"}));
    post(&d, "pause", Some(TOKEN), json!({}));
    testkit::wait_until("two webhooks", Duration::from_secs(10), || {
        got.lock().unwrap().len() >= 2
    });
    let bodies = got.lock().unwrap().clone();
    assert_eq!(bodies[0]["action"], "start");
    assert_eq!(bodies[0]["operator_reason"], "webhook test");
    assert_eq!(bodies[0]["policy"], "manual");
    assert_eq!(bodies[1]["action"], "pause");
    d.wait_metric(
        r#"canaryd_notifications_total{target="0",result="sent"}"#,
        2.0,
    );
}

#[test]
fn without_a_policy_set_weight_moves_the_split_and_it_survives_a_restart() {
    // Seed 002's adjust_traffic_split.sh: no policy, an operator moves the split by hand.
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let files = testkit::TempDir::new("canaryd-manual");
    let token_file = common::write_token(files.path(), TOKEN);
    let mut d = Canaryd::start_with_token(&Setup::new(&stable, &canary, 0.0), &token_file);
    let (ok, out, err) = cli(&d, &["status"], None);
    assert!(ok, "{err}");
    assert!(out.starts_with("mode    manual"), "{out}");

    let (ok, out, err) = cli(
        &d,
        &["set-weight", "25", "--reason", "phase 2"],
        Some(&token_file),
    );
    assert!(ok, "{err}");
    assert!(out.contains("25 % canary / 75 % stable"), "{out}");
    let s = d.status();
    assert_eq!(
        (s["state"].as_str(), s["canary_percent"].as_f64()),
        (Some("manual"), Some(25.0))
    );
    assert_eq!(d.metric("canaryd_canary_weight_percent"), 25.0);
    let line = d
        .decisions()
        .into_iter()
        .find(|l| l["action"] == "set_weight")
        .expect("a set_weight line");
    assert_eq!(line["operator_reason"], "phase 2", "{line:#}");

    // Anything else is refused, saying why.
    let (ok, _, err) = cli(&d, &["start"], Some(&token_file));
    assert!(!ok);
    assert!(err.contains("manual mode"), "{err}");

    d.kill9_and_restart();
    assert_eq!(d.status()["canary_percent"].as_f64(), Some(25.0));
    assert_eq!(d.metric("canaryd_canary_weight_percent"), 25.0);
}
