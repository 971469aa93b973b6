//! Rendering `GET /api/v1/status` for people: the full view `canaryd status` prints (and
//! `--watch` redraws on a terminal), and the one-line form `--watch` prints when stdout is not
//! a terminal.

use std::fmt::Write as _;

use canaryd_controller::{ClusterRole, ClusterStatus, RolloutStatus, State, Status};

pub(super) fn fmt_value(v: Option<f64>) -> String {
    match v {
        Some(x) if x.abs() >= 1e6 || (x != 0.0 && x.abs() < 1e-3) => format!("{x:.3e}"),
        Some(x) => format!("{x:.4}"),
        None => "-".into(),
    }
}

pub(super) fn fmt_secs(s: f64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s.max(0.0).round() as u64))
        .to_string()
}

fn bar(fraction: f64, width: usize) -> String {
    let filled = (fraction.clamp(0.0, 1.0) * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// The full view.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let Some(s) = status.rollout() else {
        let _ = writeln!(
            out,
            "canaryd: no rollout policy configured (plain splitting proxy)"
        );
        return out;
    };
    let canary = s.canary_percent;
    if s.state == State::Manual {
        let _ = writeln!(
            out,
            "mode    manual: no [rollout] policy; `canaryd set-weight PERCENT` sets the split"
        );
    } else {
        let _ = writeln!(
            out,
            "policy  {}    state {}    step {}/{} ({})",
            s.policy,
            s.state,
            s.step + 1,
            s.steps.len(),
            s.steps
                .iter()
                .map(|w| format!("{w}%"))
                .collect::<Vec<_>>()
                .join(" → ")
        );
    }
    let _ = writeln!(
        out,
        "split   {} {canary} % canary / {} % stable",
        bar(canary / 100.0, 30),
        100.0 - canary
    );
    if let Some(c) = &s.cluster {
        fleet(&mut out, c);
    }
    let (hold, held) = (s.step_hold_s, s.step_held_s);
    if matches!(
        s.state,
        State::Progressing | State::Paused | State::AwaitingApproval
    ) {
        let _ = writeln!(
            out,
            "hold    {} {} of {} held, {} left",
            bar(if hold > 0.0 { held / hold } else { 1.0 }, 30),
            fmt_secs(held),
            fmt_secs(hold),
            fmt_secs(s.step_hold_remaining_s)
        );
    }
    if s.state == State::AwaitingApproval {
        let next = match s.steps.get(s.step + 1) {
            Some(w) => format!("step {}/{} ({w}%)", s.step + 2, s.steps.len()),
            None => "promoted (100%)".into(),
        };
        let _ = writeln!(
            out,
            "approve waiting for an operator: `canaryd approve` moves on to {next}"
        );
    }
    if let Some(e) = &s.error {
        let _ = writeln!(out, "ERROR   {e}");
    }
    if let Some(e) = &s.save_error {
        let _ = writeln!(out, "ERROR   state not saved: {e}");
    }
    let _ = writeln!(out, "reason  {}", s.reason);
    rules(&mut out, s);
    if let Some(d) = &s.last_decision {
        let _ = writeln!(out, "\nlast    {} {} — {}", d.ts, d.action, d.reason);
    }
    out
}

/// The `cluster` part: this member, the leader, every live member's split and epoch.
fn fleet(out: &mut String, c: &ClusterStatus) {
    let role = match c.role {
        ClusterRole::Leader => "leader",
        ClusterRole::Follower => "follower",
    };
    let leader = match (&c.leader, &c.leader_admin) {
        (Some(l), Some(a)) => format!("{l} (admin {a})"),
        (Some(l), None) => l.clone(),
        _ => "none known".into(),
    };
    let _ = writeln!(
        out,
        "fleet   {} is {role}; leader {leader}; etcd {}",
        c.name,
        if c.connected {
            "connected"
        } else {
            "UNREACHABLE: split kept, nothing moves"
        }
    );
    let members: Vec<String> = c
        .members
        .iter()
        .map(|m| {
            format!(
                "{} {} % (epoch {}){}",
                m.name,
                m.applied_percent,
                m.epoch,
                if m.connected { "" } else { " cut off" }
            )
        })
        .collect();
    let _ = writeln!(out, "members {}", members.join(" · "));
}

fn rules(out: &mut String, s: &RolloutStatus) {
    if s.rules.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{:<28} {:>12} {:>12}  {:<8} breaching",
        "rule", "value", "threshold", "outcome"
    );
    for r in &s.rules {
        let mut name = r.name.clone();
        if r.dry_run {
            name.push_str(" (dry run)");
        }
        let _ = writeln!(
            out,
            "{:<28} {:>12} {:>12}  {:<8} {}",
            name,
            fmt_value(r.value),
            r.threshold,
            r.outcome.map_or("-", |o| o.as_str()),
            if r.breaching_for_s > 0.0 {
                format!("{} of {}", fmt_secs(r.breaching_for_s), fmt_secs(r.for_s))
            } else {
                String::new()
            }
        );
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{:<28} error: {e}", "");
        }
        if let (Some(l), Some([lo, hi]), Some(n)) = (r.latency, r.interval, r.samples) {
            let ms = |s: f64| format!("{:.2}ms", s * 1000.0);
            let _ = writeln!(
                out,
                "{:<28} shift {} [{} … {}], medians canary {} / stable {}, requests {} / {}",
                "",
                ms(l.shift_s),
                ms(lo),
                ms(hi),
                ms(l.canary_median_s),
                ms(l.stable_median_s),
                n.canary.requests,
                n.stable.requests
            );
        }
    }
}

/// One line, for logs and pipes.
pub fn line(status: &Status) -> String {
    let Some(s) = status.rollout() else {
        return format!("state={}", status.state());
    };
    if s.state == State::Manual {
        return format!("state=manual canary={}%", s.canary_percent);
    }
    let mut out = format!(
        "state={} step={} canary={}% held={}/{}",
        s.state,
        s.step,
        s.canary_percent,
        fmt_secs(s.step_held_s),
        fmt_secs(s.step_hold_s),
    );
    for r in &s.rules {
        let _ = write!(
            out,
            " {}={}({})",
            r.name,
            fmt_value(r.value),
            r.outcome.map_or("-", |o| o.as_str())
        );
    }
    if s.save_error.is_some() {
        out.push_str(" state-not-saved");
    }
    out
}

#[cfg(test)]
mod tests;
