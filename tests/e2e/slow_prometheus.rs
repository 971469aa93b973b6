//! A Prometheus that is slow, hangs, floods, answers garbage or a 500 delays nothing the
//! controller owns: with four PromQL rules in flight against a stand-in (testkit's
//! `PromStandIn`), an operator command is answered within a second and a canary that starts
//! failing is rolled back by the local rule within three seconds of the fault — as fast as with
//! a healthy Prometheus.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::prom_standin::{Answer, PromStandIn};

use crate::common::{write_token, Canaryd, FakeGateway, Setup, TempDir, Traffic};

const TOKEN: &str = "slow-prometheus-token-0123456789abcdef";

/// 25 % held for an hour (nothing advances during the test), a fast local error rule and four
/// PromQL rules sampled every second.
const POLICY: &str = r#"
name = "slow-prometheus"
interval = "1s"
rollback = "immediate"

[[steps]]
weight = 25
hold = "1h"
[[steps]]
weight = 100
hold = "1h"

[[rules]]
name = "canary-5xx-fast"
source = "local"
signal = "error_ratio"
window = "3s"
fail_when = "> 0.05"
for = "0s"
on_fail = "rollback"
"#;

fn promql_rules() -> String {
    (1..=4)
        .map(|i| {
            format!(
                "\n[[rules]]\nname = \"promql-{i}\"\nsource = \"prometheus\"\n\
                 query = 'sum(rate(canaryd_requests_total{{variant=\"{{{{variant}}}}\"}}[1m]))'\n\
                 fail_when = \"> 1e9\"\non_fail = \"hold\"\n"
            )
        })
        .collect()
}

/// POSTs an operator action with the token; the status code and how long the answer took.
fn act(d: &Canaryd, action: &str) -> (u16, Duration) {
    let mut c = testkit::Client::connect(d.admin).expect("admin connects");
    let auth = format!("Bearer {TOKEN}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let body = json!({ "reason": "slow prometheus test" }).to_string();
    let asked = Instant::now();
    let r = c
        .request(
            "POST",
            &format!("/api/v1/{action}"),
            &headers,
            body.as_bytes(),
        )
        .expect("action answered");
    (r.status, asked.elapsed())
}

fn state(s: &Value) -> &str {
    s["state"].as_str().unwrap_or_default()
}

/// canaryd's peak RSS so far (VmHWM), in MB.
fn peak_rss_mb(d: &Canaryd) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs the scenario with the stand-in answering `answer` after `delay`; returns the rollback's
/// decision line and canaryd's peak RSS in MB.
fn scenario(answer: Answer, delay: Duration) -> (Value, f64) {
    let prom = PromStandIn::start(answer);
    prom.set_delay(delay);
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let dir = TempDir::new("slow-prometheus");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, format!("{POLICY}{}", promql_rules())).expect("write policy");
    let token = write_token(dir.path(), TOKEN);
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.rollout = format!("policy = \"{}\"\nautostart = true\n", policy.display());
    setup.tail = format!("[prometheus]\nurl = \"{}\"\ntimeout = \"5s\"\n", prom.url());
    let d = Canaryd::start_with_token(&setup, &token);
    let _traffic = Traffic::start(d.proxy, 3);
    d.wait_status("progressing at 25 %", Duration::from_secs(10), |s| {
        state(s) == "progressing" && s["canary_percent"] == 25.0
    });
    // Every PromQL rule has a query on its way.
    assert!(
        prom.wait_for_queries(4, Duration::from_secs(10)),
        "the stand-in got {} queries",
        prom.queries()
    );

    // Operator commands do not queue behind Prometheus.
    for action in ["pause", "resume"] {
        let (status, took) = act(&d, action);
        eprintln!("{action} answered in {took:?}");
        assert_eq!(status, 200, "{action}");
        assert!(took < Duration::from_secs(1), "{action} took {took:?}");
    }

    // Nor does the local fast path.
    canary.set_knobs("error_rate=1");
    let fault = Instant::now();
    let s = d.wait_status("rolled back", Duration::from_secs(15), |s| {
        s["canary_percent"] == 0.0
    });
    let elapsed = fault.elapsed();
    eprintln!("fault -> 0 % with a slow Prometheus: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert_eq!(state(&s), "rolled_back", "{s:#}");
    let line = d
        .decisions()
        .into_iter()
        .find(|l| l["action"] == "rollback")
        .expect("a rollback line");
    assert_eq!(line["failed_rules"][0], "canary-5xx-fast", "{line:#}");
    let peak = peak_rss_mb(&d);
    eprintln!("canaryd peak RSS: {peak:.1} MB");
    (line, peak)
}

#[test]
fn every_query_taking_3s_delays_neither_a_command_nor_a_local_rollback() {
    scenario(Answer::Value(0.5), Duration::from_secs(3));
}

#[test]
fn a_prometheus_that_never_answers_delays_nothing() {
    scenario(Answer::Hang, Duration::ZERO);
}

#[test]
fn a_huge_answer_is_refused_and_delays_nothing() {
    let (line, peak) = scenario(Answer::Series(200_000), Duration::ZERO);
    // Each answer (~22 MB) is abandoned at 1 MiB: memory stays bounded (the issue: 325 MB).
    assert!(
        peak > 0.0 && peak < 80.0,
        "canaryd's peak RSS: {peak:.1} MB"
    );
    // Each PromQL rule said why: the answer passed `max_response_size`.
    let rules = line["rules"].as_array().cloned().unwrap_or_default();
    let promql: Vec<&Value> = rules
        .iter()
        .filter(|r| r["source"] == "prometheus")
        .collect();
    assert_eq!(promql.len(), 4, "{line:#}");
    for r in promql {
        assert_eq!(r["outcome"], "error", "{r:#}");
        let error = r["error"].as_str().unwrap_or_default();
        assert!(error.contains("the limit set by"), "{error}");
    }
}

#[test]
fn a_prometheus_answering_garbage_delays_nothing() {
    scenario(Answer::Garbage, Duration::ZERO);
}

#[test]
fn a_prometheus_answering_500_delays_nothing() {
    scenario(Answer::Status(500), Duration::ZERO);
}
