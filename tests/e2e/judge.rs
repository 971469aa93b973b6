//! Sequential rules end to end: canaryd with two fake gateways and a policy judged only by a
//! `test = "sequential"` rule (and the traffic-share check, on by default), no Prometheus.
//! A canary with 4× stable's 5xx ratio is rolled back and the rollback line names the test
//! with its interval, statistic and samples; an equal canary is not failed, and its share of
//! the traffic matches its weight (no `traffic-share` alert); a canary that gets none of its
//! share (every request pinned to stable by the override header) holds the step and alerts
//! once with the observed and expected shares. The latency test (`test = "mann-whitney"`)
//! rolls back a canary 30 % slower than stable, the line naming the test with its shift,
//! interval, statistic and samples, and does not fail an equally fast one.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Canaryd, FakeGateway, Setup, TempDir, Traffic};

/// The sequential rule, margin one point.
const SEQUENTIAL: &str = "signal = \"error_ratio\"\ntest = \"sequential\"\nmargin = 0.01\n";
/// The latency rule, margin 10 % of stable's median.
const LATENCY: &str = "signal = \"latency\"\ntest = \"mann-whitney\"\nmargin = \"10%\"\n";

/// 50 % for `hold`, then 100 %; one test rule, `judge` (`test`: its signal, test and margin).
fn policy(dir: &TempDir, hold: &str, test: &str) -> PathBuf {
    let text = format!(
        "name = \"judge\"\ninterval = \"1s\"\n\
         [[steps]]\nweight = 50\nhold = \"{hold}\"\n\
         [[steps]]\nweight = 100\nhold = \"{hold}\"\n\
         [[rules]]\nname = \"judge\"\nsource = \"local\"\n{test}\
         compare = \"baseline\"\nalpha = 0.01\non_fail = \"rollback\"\n"
    );
    let path = dir.path().join("judge.toml");
    std::fs::write(&path, text).expect("write policy");
    path
}

/// Gateways with the given knobs (`error_rate=0.02`, `latency_ms=20`) and canaryd running
/// `policy` from the start.
fn start(
    stable_knobs: &str,
    canary_knobs: &str,
    hold: &str,
    test: &str,
) -> (FakeGateway, FakeGateway, TempDir, Canaryd) {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    stable.set_knobs(stable_knobs);
    canary.set_knobs(canary_knobs);
    let dir = TempDir::new("canaryd-e2e-judge");
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.rollout = format!(
        "policy = \"{}\"\nautostart = true\n",
        policy(&dir, hold, test).display()
    );
    let d = Canaryd::start(&setup);
    (stable, canary, dir, d)
}

fn rule<'a>(line: &'a Value, name: &str) -> &'a Value {
    line["rules"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == name))
        .unwrap_or(&Value::Null)
}

/// Watches the status for `how_long`: the rollout stays at step 0 (50 %) and the `judge` rule
/// never fails. The outcomes it went through.
fn never_fails(d: &Canaryd, how_long: Duration) -> Vec<Value> {
    let until = Instant::now() + how_long;
    let mut seen = Vec::new();
    while Instant::now() < until {
        let s = d.status();
        assert_eq!(s["state"], "progressing", "{s:#}");
        assert_eq!(s["canary_percent"], 50.0, "{s:#}");
        let outcome = rule(&s, "judge")["outcome"].clone();
        assert_ne!(outcome, "fail", "{s:#}");
        if seen.last() != Some(&outcome) {
            seen.push(outcome);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    seen
}

#[test]
fn a_canary_with_four_times_stables_error_ratio_is_rolled_back_by_the_sequential_test() {
    let (_stable, _canary, _dir, d) =
        start("error_rate=0.02", "error_rate=0.08", "10m", SEQUENTIAL);
    let traffic = Traffic::start(d.proxy, 3);
    let started = Instant::now();
    d.wait_status("rollback", Duration::from_secs(60), |s| {
        s["state"] == "rolled_back"
    });
    let took = started.elapsed();
    traffic.stop();
    let lines = d.decisions();
    let rollback = lines
        .iter()
        .find(|l| l["action"] == "rollback")
        .unwrap_or_else(|| panic!("no rollback line: {lines:#?}"));
    assert_eq!(
        rollback["failed_rules"],
        serde_json::json!(["judge"]),
        "{rollback:#}"
    );
    assert_eq!(rollback["by"], "controller");
    let r = rule(rollback, "judge");
    assert_eq!(r["test"], "sequential", "{r:#}");
    assert_eq!(r["outcome"], "fail", "{r:#}");
    assert!(
        r["threshold"]
            .as_str()
            .unwrap_or_default()
            .starts_with("sequential"),
        "{r:#}"
    );
    assert_eq!(r["margin"], 0.01);
    let low = r["interval"][0].as_f64().expect("interval");
    let high = r["interval"][1].as_f64().expect("interval");
    assert!(low > 0.01 && high > low, "{r:#}");
    assert!(
        r["statistic"].as_f64().expect("statistic") >= 100f64.ln(),
        "{r:#}"
    );
    let canary = r["samples"]["canary"]["requests"]
        .as_u64()
        .expect("samples");
    let stable = r["samples"]["stable"]["requests"]
        .as_u64()
        .expect("samples");
    assert!(canary >= 50 && stable >= 50, "{r:#}");
    // The canary's ratio is about 4× stable's.
    let ratio = r["canary_value"].as_f64().unwrap() / r["stable_value"].as_f64().unwrap();
    assert!(ratio > 2.0, "{r:#}");
    assert_eq!(d.status()["canary_percent"], 0.0);
    eprintln!("rolled back after {took:?} on {canary} canary / {stable} stable requests");
}

#[test]
fn an_equal_canary_is_not_failed_and_gets_its_share() {
    let (_stable, _canary, _dir, d) =
        start("error_rate=0.02", "error_rate=0.02", "10m", SEQUENTIAL);
    let traffic = Traffic::start(d.proxy, 3);
    let seen = never_fails(&d, Duration::from_secs(25));
    traffic.stop();
    let s = d.status();
    let r = rule(&s, "judge");
    assert!(
        r["samples"]["canary"]["requests"].as_u64().unwrap_or(0) > 1_000,
        "{r:#}"
    );
    // By now an equal canary is shown not worse by a point (or still being judged).
    assert!(
        ["pass", "inconclusive"].contains(&r["outcome"].as_str().unwrap_or_default()),
        "{r:#}"
    );
    let lines = d.decisions();
    assert!(
        !lines.iter().any(|l| l["action"] == "rollback"),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l["alert_rule"]
            .as_str()
            .is_some_and(|a| a.starts_with("traffic-share"))),
        "a traffic-share alert on a healthy split: {lines:#?}"
    );
    eprintln!("outcomes seen: {seen:?}");
}

/// Requests on one keep-alive connection, each with `header`, until `stop`.
fn pinned_traffic(
    addr: std::net::SocketAddr,
    header: (&'static str, &'static str),
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut c = crate::common::Client::connect(addr).expect("connect");
        let mut n = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if c.request("GET", "/", &[header], b"").is_ok() {
                n += 1;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        n
    })
}

#[test]
fn a_canary_that_gets_none_of_its_share_holds_and_alerts_with_the_shares() {
    // Every request pinned to stable by the override header: the canary, at 50 %, gets none.
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let dir = TempDir::new("canaryd-e2e-judge");
    let path = dir.path().join("share.toml");
    std::fs::write(
        &path,
        "name = \"share\"\ninterval = \"1s\"\n\
         [[steps]]\nweight = 50\nhold = \"3s\"\n\
         [[steps]]\nweight = 100\nhold = \"3s\"\n\
         [[rules]]\nname = \"errors\"\nsource = \"local\"\nsignal = \"error_ratio\"\n\
         window = \"5s\"\nfail_when = \"> 0.5\"\non_no_data = \"pass\"\n",
    )
    .expect("write policy");
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.rollout = format!("policy = \"{}\"\nautostart = true\n", path.display());
    setup.tail = "[routing]\nheader = \"X-Canary\"\nstable_values = [\"pin\"]\n".into();
    let d = Canaryd::start(&setup);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let threads: Vec<_> = (0..3)
        .map(|_| pinned_traffic(d.proxy, ("X-Canary", "pin"), stop.clone()))
        .collect();
    let s = d.wait_status("a traffic-share hold", Duration::from_secs(30), |s| {
        s["reason"]
            .as_str()
            .is_some_and(|r| r.contains("traffic share mismatch"))
    });
    // Held well past the step's 3 s hold: it never advances on a mismatch.
    std::thread::sleep(Duration::from_secs(8));
    let later = d.status();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let served: u64 = threads.into_iter().map(|t| t.join().unwrap_or(0)).sum();
    assert_eq!(
        (later["state"].as_str(), later["step"].as_u64()),
        (Some("progressing"), Some(0)),
        "{later:#}"
    );
    assert_eq!(later["canary_percent"], 50.0);
    assert!(later["holding"].as_bool().unwrap_or(false), "{later:#}");
    let reason = s["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the canary got 0.00 %") && reason.contains("its weight is 50 %"),
        "{reason}"
    );
    let lines = d.decisions();
    let alerts: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["alert_rule"]
                .as_str()
                .is_some_and(|a| a.starts_with("traffic-share:"))
        })
        .collect();
    assert_eq!(alerts.len(), 1, "one alert per mismatch: {lines:#?}");
    assert_eq!(alerts[0]["action"], "alert");
    assert!(
        !lines.iter().any(|l| l["action"] == "advance"),
        "{lines:#?}"
    );
    eprintln!("{served} requests, all pinned to stable; {reason}");
}

#[test]
fn a_canary_thirty_percent_slower_is_rolled_back_by_the_latency_test() {
    let (_stable, _canary, _dir, d) = start("latency_ms=20", "latency_ms=26", "10m", LATENCY);
    let traffic = Traffic::start(d.proxy, 3);
    d.wait_status("rollback", Duration::from_secs(60), |s| {
        s["state"] == "rolled_back"
    });
    traffic.stop();
    let lines = d.decisions();
    let rollback = lines
        .iter()
        .find(|l| l["action"] == "rollback")
        .unwrap_or_else(|| panic!("no rollback line: {lines:#?}"));
    assert_eq!(rollback["failed_rules"], serde_json::json!(["judge"]));
    let r = rule(rollback, "judge");
    assert_eq!(r["test"], "mann-whitney", "{r:#}");
    assert_eq!(r["outcome"], "fail", "{r:#}");
    assert_eq!(
        r["threshold"],
        "mann-whitney: canary slower than stable by > 10% (alpha 0.01)"
    );
    let l = &r["latency"];
    assert_eq!(l["direction"], "increase", "{r:#}");
    let (canary_median, stable_median) = (
        l["canary_median_s"].as_f64().expect("canary median"),
        l["stable_median_s"].as_f64().expect("stable median"),
    );
    assert!(canary_median > stable_median, "{r:#}");
    // The margin is 10 % of stable's median; the whole interval of the shift lies above it.
    let margin = r["margin"].as_f64().expect("margin");
    assert!((margin - 0.1 * stable_median).abs() < 1e-9, "{r:#}");
    let low = r["interval"][0].as_f64().expect("interval");
    let high = r["interval"][1].as_f64().expect("interval");
    let shift = l["shift_s"].as_f64().expect("shift");
    assert!(margin < low && low <= shift && shift <= high, "{r:#}");
    assert!(r["statistic"].as_f64().expect("z") > 3.0, "{r:#}");
    assert!(l["u"].as_f64().expect("U") > 0.0, "{r:#}");
    let canary = r["samples"]["canary"]["requests"]
        .as_u64()
        .expect("samples");
    let stable = r["samples"]["stable"]["requests"]
        .as_u64()
        .expect("samples");
    assert!(canary >= 50 && stable >= 50, "{r:#}");
    assert_eq!(d.status()["canary_percent"], 0.0);
}

#[test]
fn an_equally_fast_canary_is_not_failed_by_the_latency_test() {
    let (_stable, _canary, _dir, d) = start("latency_ms=20", "latency_ms=20", "10m", LATENCY);
    let traffic = Traffic::start(d.proxy, 3);
    let seen = never_fails(&d, Duration::from_secs(20));
    traffic.stop();
    let s = d.status();
    let r = rule(&s, "judge");
    // Judged on real traffic: an equal canary is shown not slower by 10 % (or still judged).
    assert!(
        r["samples"]["canary"]["requests"].as_u64().unwrap_or(0) > 500,
        "{r:#}"
    );
    assert!(
        ["pass", "inconclusive"].contains(&r["outcome"].as_str().unwrap_or_default()),
        "{r:#}"
    );
    assert!(!d.decisions().iter().any(|l| l["action"] == "rollback"));
    eprintln!("outcomes seen: {seen:?}");
}
