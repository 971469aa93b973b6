//! Shadow traffic end to end: canaryd with two fake gateways and a policy whose first step is
//! dark (`weight = 0`, `shadow = 50`). Every client answer comes from stable while about half of
//! the GETs also reach the canary and no POST does; a canary that hangs does not slow clients
//! (copies over `shadow_max_inflight` are dropped and counted); a canary failing its shadow
//! answers is rolled back by a local error rule before it served anyone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::common::{count_served_by, wait_until, Canaryd, FakeGateway, Setup, TempDir};

/// A dark step (0 %, `shadow` %) held 10 minutes, then 100 %; a local 5xx rule.
fn policy(dir: &TempDir, shadow: u32) -> PathBuf {
    let text = format!(
        "name = \"dark\"\ninterval = \"1s\"\nmin_requests = 10\n\
         [[steps]]\nweight = 0\nshadow = {shadow}\nhold = \"10m\"\n\
         [[steps]]\nweight = 100\nhold = \"10m\"\n\
         [[rules]]\nname = \"canary-5xx\"\nsource = \"local\"\nsignal = \"error_ratio\"\n\
         window = \"30s\"\nfail_when = \"> 0.05\"\nfor = \"0s\"\non_fail = \"rollback\"\n"
    );
    let path = dir.path().join("dark.toml");
    std::fs::write(&path, text).expect("write policy");
    path
}

/// Gateways (the canary with `canary_knobs`) and canaryd running the dark policy from the
/// start, `proxy`: extra `[proxy]` lines.
fn start(canary_knobs: &str, proxy: &str) -> (FakeGateway, FakeGateway, TempDir, Canaryd) {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    canary.set_knobs(canary_knobs);
    let dir = TempDir::new("canaryd-e2e-shadow");
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.proxy = proxy.to_string();
    setup.rollout = format!(
        "policy = \"{}\"\nautostart = true\n",
        policy(&dir, 50).display()
    );
    let d = Canaryd::start(&setup);
    d.wait_status("dark step", Duration::from_secs(10), |s| {
        s["state"] == "progressing"
    });
    (stable, canary, dir, d)
}

/// Traffic answers the fake gateway counted (control endpoints excluded).
fn served(g: &FakeGateway) -> f64 {
    let body = testkit::get(g.addr, "/metrics").expect("scrape").text();
    body.lines()
        .filter(|l| l.starts_with("gateway_requests_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

const SENT: &str = "canaryd_shadow_requests_total{outcome=\"sent\"}";
const DROPPED: &str = "canaryd_shadow_requests_total{outcome=\"dropped\"}";
const ERROR: &str = "canaryd_shadow_requests_total{outcome=\"error\"}";

#[test]
fn a_dark_canary_gets_half_the_gets_and_no_post_while_stable_answers_everyone() {
    let (_stable, canary, _dir, d) = start("error_rate=0", "");
    let served_by = count_served_by(d.proxy, 400, 4, &[]);
    assert_eq!(
        served_by.keys().collect::<Vec<_>>(),
        ["stable"],
        "{served_by:?}"
    );
    // Copies finish off the clients' path: wait until the canary has answered every one.
    wait_until(
        "the canary answered every copy",
        Duration::from_secs(10),
        || {
            let n = served(&canary);
            n == d.metric(SENT) && (120.0..=280.0).contains(&n)
        },
    );
    assert_eq!(d.metric(ERROR), 0.0);
    let before = served(&canary);
    let mut c = d.client();
    for _ in 0..100 {
        let r = c.request("POST", "/", &[], b"x").expect("post");
        assert_eq!(r.text(), "stable");
    }
    let after = served(&canary);
    assert_eq!(after, before, "a POST reached the canary");
    assert_eq!(d.metric(SENT), before);
    let s = d.status();
    assert_eq!(s["canary_percent"], 0.0, "{s:#}");
}

#[test]
fn a_hanging_canary_does_not_slow_clients_and_its_copies_are_dropped() {
    let (_stable, _canary, _dir, d) = start(
        "latency_ms=5000",
        "shadow_max_inflight = 4\nshadow_timeout = \"10s\"\n",
    );
    let mut c = d.client();
    let mut slowest = Duration::ZERO;
    for _ in 0..200 {
        let t = Instant::now();
        let r = c.request("GET", "/", &[], b"").expect("get");
        slowest = slowest.max(t.elapsed());
        assert_eq!(r.text(), "stable");
    }
    assert!(
        slowest < Duration::from_millis(500),
        "slowest answer {slowest:?}"
    );
    wait_until("copies dropped", Duration::from_secs(5), || {
        d.metric(DROPPED) >= 50.0
    });
}

#[test]
fn a_canary_failing_its_shadow_answers_is_rolled_back_from_the_dark_step() {
    let (_stable, _canary, _dir, d) = start("error_rate=1", "");
    let traffic = crate::common::Traffic::start(d.proxy, 2);
    d.wait_status("rollback", Duration::from_secs(30), |s| {
        s["state"] == "rolled_back"
    });
    let answers = traffic.stop();
    assert_eq!(answers.keys().collect::<Vec<_>>(), [&200], "{answers:?}");
    let lines = d.decisions();
    let rollback = lines
        .iter()
        .find(|l| l["action"] == "rollback")
        .unwrap_or_else(|| panic!("no rollback line: {lines:#?}"));
    assert_eq!(rollback["failed_rules"], serde_json::json!(["canary-5xx"]));
    // A rollback stops shadow traffic.
    let sent = d.metric(SENT) + d.metric(ERROR);
    let _ = count_served_by(d.proxy, 50, 1, &[]);
    assert_eq!(d.metric(SENT) + d.metric(ERROR), sent);
}
