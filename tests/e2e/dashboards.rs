//! dashboards/: every PromQL expression of the Grafana dashboard (`canaryd.json`) and of the
//! alerting rules (`alerts.yml`) runs against a real Prometheus that scrapes a real canaryd
//! carrying traffic, so a typo in a metric, label or function fails here. The alerts' firing
//! logic is unit-tested by promtool (`dashboards/alerts_test.yml`, run by scripts/test).

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use testkit::Prometheus;

use crate::common::{count_served_by, Canaryd, FakeGateway, Setup};

/// Grafana's variables and what the test puts in their place (the dashboard's `All` value
/// for the label filters).
const SUBSTITUTIONS: &[(&str, &str)] = &[
    ("$__rate_interval", "1m"),
    ("$__interval", "1m"),
    ("${instance}", ".+"),
    ("$instance", ".+"),
    ("${job}", ".+"),
    ("$job", ".+"),
];

fn dashboards_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboards"))
}

fn read(name: &str) -> String {
    let path = dashboards_dir().join(name);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn dashboard() -> Value {
    serde_json::from_str(&read("canaryd.json")).expect("dashboards/canaryd.json is not JSON")
}

/// Every `"expr"` in the dashboard (panel targets and annotation queries), with the path
/// it was found at.
fn dashboard_exprs(v: &Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let here = format!("{at}.{k}");
                match (k.as_str(), v) {
                    ("expr", Value::String(e)) => out.push((here, e.clone())),
                    _ => dashboard_exprs(v, &here, out),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                dashboard_exprs(v, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// The `expr:` of every rule in alerts.yml (kept on one line each for this extraction).
fn alert_exprs() -> Vec<(String, String)> {
    let yml = read("alerts.yml");
    let mut alert = String::new();
    let mut out = Vec::new();
    for (n, line) in yml.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert:") {
            alert = name.trim().to_string();
        } else if let Some(expr) = line.strip_prefix("expr:") {
            let expr = expr.trim();
            assert!(
                !expr.is_empty() && !expr.starts_with('|') && !expr.starts_with('>'),
                "alerts.yml:{}: keep `expr:` on one line so this test can read it",
                n + 1
            );
            out.push((format!("alerts.yml:{} ({alert})", n + 1), expr.to_string()));
        }
    }
    let alerts = yml
        .lines()
        .filter(|l| l.trim().starts_with("- alert:"))
        .count();
    assert_eq!(out.len(), alerts, "one expr per alert in alerts.yml");
    out
}

fn substitute(expr: &str) -> String {
    let mut e = expr.to_string();
    for (var, value) in SUBSTITUTIONS {
        e = e.replace(var, value);
    }
    assert!(
        !e.contains('$'),
        "unknown Grafana variable left in {expr:?} (after substitution: {e:?})"
    );
    e
}

#[test]
fn dashboard_is_self_contained() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    assert_eq!(d["uid"], "canaryd");
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "a `datasource` Prometheus variable"
    );
    assert_eq!(d["links"], Value::Array(vec![]), "no dashboard links");
    let text = read("canaryd.json");
    assert!(
        !text.contains("http://") && !text.contains("https://"),
        "no external links"
    );
    let panels = d["panels"].as_array().expect("panels");
    let mut ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for p in panels.iter().filter(|p| p["type"] != "row") {
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "panel {:?} uses the datasource variable",
            p["title"]
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "panel {:?} has queries", p["title"]);
    }
    let mut exprs = Vec::new();
    dashboard_exprs(&d, "", &mut exprs);
    for metric in [
        "canaryd_canary_weight_percent",
        "canaryd_requests_total",
        "canaryd_request_duration_seconds_bucket",
        "canaryd_fallbacks_total",
        "canaryd_upstream_failures_total",
        "canaryd_rollout_state",
        "canaryd_rollout_step",
        "canaryd_rule_value",
        "canaryd_rule_outcome",
        "canaryd_decisions_total",
        "canaryd_connections",
        "canaryd_active_streams",
        "canaryd_upstream_connections",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(
            exprs.iter().any(|(_, e)| e.contains(metric)),
            "no panel shows {metric}"
        );
    }
}

#[test]
fn every_expression_runs_against_a_real_prometheus() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let d = Canaryd::start(&Setup::new(&stable, &canary, 50.0));
    let Some(prom) = Prometheus::start(&[("canaryd", d.admin)]) else {
        testkit::tool_missing("prometheus");
        return;
    };
    let served = count_served_by(d.proxy, 200, 2, &[]);
    assert_eq!(served.values().sum::<usize>(), 200);

    // Two scrapes with traffic in between, so rate() has samples to work on.
    prom.wait_for_series("canaryd_requests_total", Duration::from_secs(20));
    count_served_by(d.proxy, 200, 2, &[]);
    prom.wait_for_series(
        "sum by (variant) (rate(canaryd_requests_total[1m])) > 0",
        Duration::from_secs(20),
    );
    assert_eq!(
        prom.query_value("canaryd_canary_weight_percent"),
        Some(50.0)
    );

    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard(), "canaryd.json", &mut exprs);
    assert!(exprs.len() >= 15, "dashboard queries found: {exprs:?}");
    exprs.extend(alert_exprs());
    let mut failures = Vec::new();
    for (at, expr) in &exprs {
        let promql = substitute(expr);
        let answer = prom.query(&promql);
        if answer["status"] != "success" {
            failures.push(format!("{at}: {promql}\n    -> {answer}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} expressions failed:\n{}",
        failures.len(),
        exprs.len(),
        failures.join("\n")
    );

    // Spot checks that the panels see canaryd's series (not merely valid but empty queries).
    for promql in [
        "sum by (variant) (rate(canaryd_requests_total{instance=~\".+\"}[1m]))",
        "process_resident_memory_bytes{job=~\".+\"}",
        "up{job=\"canaryd\"} == 1",
    ] {
        prom.wait_for_series(promql, Duration::from_secs(10));
    }
}
