//! `canaryd replay` against a real Prometheus holding an exact history, backfilled with
//! `promtool tsdb create-blocks-from openmetrics`: a recorded error ratio per variant every
//! 15 s for two hours, clean for one metric and, for the other, at 5 % on the canary from
//! minute 15. The policy (10 → 50 → 100 %, 10 minutes each, evaluated every 30 s) is replayed
//! from the first sample: the clean history is promoted at minute 30, after each hold; the
//! other is rolled back at minute 17, the first evaluation after the breach (minute 15) plus
//! `for` (2 minutes), and the line names the rule with the value it saw. The local rule of the
//! policy is said not to be replayable.

use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use testkit::Prometheus;

use crate::common::{binary, free_addr, Setup, TempDir};

/// Seconds from the history's start at which the bad canary starts failing.
const BREACH_AT: u64 = 15 * 60;

/// Two hours of `clean_error_ratio` and `bad_error_ratio` per variant, every 15 s from `t0`.
fn history(t0: u64) -> String {
    let mut om = String::new();
    for metric in ["clean_error_ratio", "bad_error_ratio"] {
        let _ = writeln!(om, "# TYPE {metric} gauge");
        for t in (0..=2 * 3600).step_by(15) {
            for variant in ["stable", "canary"] {
                let bad = metric == "bad_error_ratio" && variant == "canary" && t >= BREACH_AT;
                let v = if bad { 0.05 } else { 0.004 };
                let _ = writeln!(om, "{metric}{{variant=\"{variant}\"}} {v} {}", t0 + t);
            }
        }
    }
    om.push_str("# EOF\n");
    om
}

/// The policy replayed over `metric`: one threshold rule on the canary, one baseline rule
/// (canary / stable) that only holds, one local rule.
fn policy(metric: &str) -> String {
    format!(
        "name = \"replayed\"\ninterval = \"30s\"\n\
         [[steps]]\nweight = 10\nhold = \"10m\"\n\
         [[steps]]\nweight = 50\nhold = \"10m\"\n\
         [[steps]]\nweight = 100\nhold = \"10m\"\n\
         [[rules]]\nname = \"error-ratio\"\nsource = \"prometheus\"\n\
         query = 'max({metric}{{variant=\"{{{{variant}}}}\"}})'\nfail_when = \"> 0.02\"\nfor = \"2m\"\n\
         [[rules]]\nname = \"vs-stable\"\nsource = \"prometheus\"\ncompare = \"baseline\"\n\
         query = 'max({metric}{{variant=\"{{{{variant}}}}\"}})'\nfail_when = \"> 20\"\non_fail = \"hold\"\n\
         [[rules]]\nname = \"local-5xx\"\nsource = \"local\"\nsignal = \"error_ratio\"\nfail_when = \"> 0.5\"\n"
    )
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

/// The history's start (a minute boundary three hours ago) and a Prometheus holding it.
fn prometheus() -> Option<(u64, Prometheus)> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    let t0 = (now - 3 * 3600) / 60 * 60;
    match Prometheus::start_with_history(&history(t0)) {
        Some(p) => Some((t0, p)),
        None => {
            testkit::tool_missing("prometheus and promtool");
            None
        }
    }
}

/// Writes the config (pointing at `prom`) and `policy(metric)`, runs `canaryd replay` over
/// the first hour with `extra` arguments; its stdout.
fn replay(dir: &TempDir, prom: &Prometheus, t0: u64, metric: &str, extra: &[&str]) -> String {
    let mut setup = Setup {
        stable: vec![free_addr()],
        canary: vec![free_addr()],
        ..Setup::default()
    };
    setup.tail = format!("[prometheus]\nurl = \"{}\"\n", prom.url());
    let config = dir.path().join("canaryd.toml");
    std::fs::write(&config, setup.render(free_addr(), free_addr(), dir.path())).expect("config");
    let policy_file = dir.path().join(format!("{metric}.toml"));
    std::fs::write(&policy_file, policy(metric)).expect("policy");
    let out = Command::new(binary())
        .arg("replay")
        .arg("--config")
        .arg(&config)
        .arg("--policy")
        .arg(&policy_file)
        .args(["--from", &rfc3339(t0), "--to", &rfc3339(t0 + 3600)])
        .args(extra)
        .output()
        .expect("run canaryd replay");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "canaryd replay failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The line of `text` starting with `ts` and the action, or a panic showing the output.
fn line_at<'a>(text: &'a str, ts: &str, action: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(ts) && l[ts.len()..].trim_start().starts_with(action))
        .unwrap_or_else(|| panic!("no {action} line at {ts} in:\n{text}"))
}

#[test]
fn replay_promotes_a_clean_history_and_rolls_back_at_the_first_evaluation_after_for() {
    let Some((t0, prom)) = prometheus() else {
        return;
    };
    let dir = TempDir::new("canaryd-e2e-replay");

    let clean = replay(&dir, &prom, t0, "clean_error_ratio", &[]);
    assert!(
        clean.contains("rule \"local-5xx\" cannot be replayed: source = \"local\""),
        "{clean}"
    );
    line_at(&clean, &rfc3339(t0), "start");
    // Each evaluation is printed with the values it saw.
    let first = line_at(&clean, &rfc3339(t0), "healthy");
    assert!(
        first.contains("error-ratio=0.0040 pass (> 0.02)"),
        "{first}"
    );
    assert!(
        first.contains("vs-stable=1.0000 pass (> 20) [canary 0.0040 / stable 0.0040]"),
        "{first}"
    );
    line_at(&clean, &rfc3339(t0 + 600), "advance");
    line_at(&clean, &rfc3339(t0 + 1200), "advance");
    line_at(&clean, &rfc3339(t0 + 1800), "promote");
    assert!(!clean.contains("rollback"), "{clean}");
    assert!(
        clean.trim_end().ends_with(&format!(
            "result: promoted at {} (100 %): last step held healthy: promoted",
            rfc3339(t0 + 1800)
        )),
        "{clean}"
    );

    let bad = replay(&dir, &prom, t0, "bad_error_ratio", &[]);
    // Healthy through step 0 (advanced at minute 10), breaching from minute 15, rolled back
    // `for` later.
    line_at(&bad, &rfc3339(t0 + 600), "advance");
    let hold = line_at(&bad, &rfc3339(t0 + BREACH_AT), "hold");
    assert!(hold.contains("error-ratio=0.0500 fail"), "{hold}");
    assert!(
        !bad.contains(&format!("{}  rollback", rfc3339(t0 + BREACH_AT + 90))),
        "{bad}"
    );
    let rollback = line_at(&bad, &rfc3339(t0 + BREACH_AT + 120), "rollback");
    assert!(
        rollback.contains("error-ratio=0.0500 fail (> 0.02)"),
        "{rollback}"
    );
    assert!(
        rollback.contains("rule(s) error-ratio failed"),
        "{rollback}"
    );
    assert!(bad.contains("result: rolled_back"), "{bad}");

    // --json: the typed document, the same decisions.
    let doc: Value = serde_json::from_str(&replay(&dir, &prom, t0, "bad_error_ratio", &["--json"]))
        .expect("replay --json is JSON");
    assert_eq!(doc["policy"], "replayed");
    assert_eq!(doc["interval_s"], 30.0);
    assert_eq!(doc["skipped"][0]["rule"], "local-5xx");
    let decisions = doc["decisions"].as_array().expect("decisions");
    let rollback = decisions
        .iter()
        .find(|d| d["action"] == "rollback")
        .expect("a rollback decision");
    assert_eq!(rollback["ts"], rfc3339(t0 + BREACH_AT + 120));
    assert_eq!(rollback["failed_rules"], serde_json::json!(["error-ratio"]));
    assert_eq!(rollback["by"], "controller");
    assert_eq!(rollback["rules"][0]["value"], 0.05);
    assert_eq!(rollback["rules"][0]["breaching_for_s"], 120.0);
    assert_eq!(rollback["rules"][1]["canary_value"], 0.05);
    assert_eq!(rollback["rules"][1]["stable_value"], 0.004);
    // The replay ends with the rollout.
    assert_eq!(
        decisions.last().map(|d| &d["state"]),
        Some(&Value::from("rolled_back"))
    );
}
