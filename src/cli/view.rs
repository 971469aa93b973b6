//! Rendering `GET /api/v1/status` for people: the full view `canaryd status` prints (and
//! `--watch` redraws on a terminal), and the one-line form `--watch` prints when stdout is not
//! a terminal.

use std::fmt::Write as _;

use serde_json::Value;

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn fmt_value(v: &Value) -> String {
    match num(v) {
        Some(x) if x.abs() >= 1e6 || (x != 0.0 && x.abs() < 1e-3) => format!("{x:.3e}"),
        Some(x) => format!("{x:.4}"),
        None => "-".into(),
    }
}

fn fmt_secs(s: f64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s.max(0.0).round() as u64))
        .to_string()
}

fn bar(fraction: f64, width: usize) -> String {
    let filled = (fraction.clamp(0.0, 1.0) * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// The full view.
pub fn render(s: &Value) -> String {
    let mut out = String::new();
    let state = s["state"].as_str().unwrap_or("?");
    if state == "disabled" {
        let _ = writeln!(
            out,
            "canaryd: no rollout policy configured (plain splitting proxy)"
        );
        return out;
    }
    let steps = s["steps"].as_array().map_or(0, Vec::len);
    let step = s["step"].as_u64().unwrap_or(0);
    let canary = num(&s["canary_percent"]).unwrap_or(0.0);
    let _ = writeln!(
        out,
        "policy  {}    state {}    step {}/{} ({})",
        s["policy"].as_str().unwrap_or("?"),
        state,
        step + 1,
        steps,
        s["steps"]
            .as_array()
            .map(|w| w
                .iter()
                .map(|x| format!("{}%", fmt_pct(x)))
                .collect::<Vec<_>>()
                .join(" → "))
            .unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "split   {} {canary} % canary / {} % stable",
        bar(canary / 100.0, 30),
        100.0 - canary
    );
    let hold = num(&s["step_hold_s"]).unwrap_or(0.0);
    let held = num(&s["step_held_s"]).unwrap_or(0.0);
    if state == "progressing" || state == "paused" {
        let _ = writeln!(
            out,
            "hold    {} {} of {} held, {} left",
            bar(if hold > 0.0 { held / hold } else { 1.0 }, 30),
            fmt_secs(held),
            fmt_secs(hold),
            fmt_secs(num(&s["step_hold_remaining_s"]).unwrap_or(0.0))
        );
    }
    if let Some(e) = s["error"].as_str() {
        let _ = writeln!(out, "ERROR   {e}");
    }
    let _ = writeln!(out, "reason  {}", s["reason"].as_str().unwrap_or(""));
    if let Some(rules) = s["rules"].as_array().filter(|r| !r.is_empty()) {
        let _ = writeln!(
            out,
            "\n{:<28} {:>12} {:>12}  {:<8} breaching",
            "rule", "value", "threshold", "outcome"
        );
        for r in rules {
            let mut name = r["name"].as_str().unwrap_or("?").to_string();
            if r["dry_run"] == true {
                name.push_str(" (dry run)");
            }
            let breaching = num(&r["breaching_for_s"]).unwrap_or(0.0);
            let _ = writeln!(
                out,
                "{:<28} {:>12} {:>12}  {:<8} {}",
                name,
                fmt_value(&r["value"]),
                r["threshold"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap_or("-"),
                if breaching > 0.0 {
                    format!(
                        "{} of {}",
                        fmt_secs(breaching),
                        fmt_secs(num(&r["for_s"]).unwrap_or(0.0))
                    )
                } else {
                    String::new()
                }
            );
            if let Some(e) = r["error"].as_str() {
                let _ = writeln!(out, "{:<28} error: {e}", "");
            }
        }
    }
    if let Some(d) = s["last_decision"].as_object() {
        let _ = writeln!(
            out,
            "\nlast    {} {} — {}",
            d.get("ts").and_then(Value::as_str).unwrap_or(""),
            d.get("action").and_then(Value::as_str).unwrap_or(""),
            d.get("reason").and_then(Value::as_str).unwrap_or("")
        );
    }
    out
}

fn fmt_pct(v: &Value) -> String {
    num(v).map(|x| format!("{x}")).unwrap_or_default()
}

/// One line, for logs and pipes.
pub fn line(s: &Value) -> String {
    let mut out = format!(
        "state={} step={} canary={}% held={}/{}",
        s["state"].as_str().unwrap_or("?"),
        s["step"],
        fmt_pct(&s["canary_percent"]),
        fmt_secs(num(&s["step_held_s"]).unwrap_or(0.0)),
        fmt_secs(num(&s["step_hold_s"]).unwrap_or(0.0)),
    );
    if let Some(rules) = s["rules"].as_array() {
        for r in rules {
            let _ = write!(
                out,
                " {}={}({})",
                r["name"].as_str().unwrap_or("?"),
                fmt_value(&r["value"]),
                r["outcome"].as_str().unwrap_or("-")
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_status() {
        let s = serde_json::json!({
            "state": "progressing", "policy": "p", "step": 1, "steps": [5.0, 25.0, 100.0],
            "canary_percent": 25.0, "step_hold_s": 60.0, "step_held_s": 15.0,
            "step_hold_remaining_s": 45.0, "reason": "step 0 held healthy for 1m",
            "rules": [{"name": "error-rate", "value": 0.002, "threshold": "> 0.01", "outcome": "pass", "breaching_for_s": 0.0, "for_s": 0.0}],
            "last_decision": {"ts": "t", "action": "advance", "reason": "r"}
        });
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
}
