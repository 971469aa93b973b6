//! `canaryd replay`: what the policy would have decided over a stretch of history, from
//! Prometheus range queries (the evaluation itself is the controller's, `canaryd_controller::
//! replay`). Here: the arguments (`--from`/`--to` as RFC 3339 or relative to now) and the
//! rendering, one line per evaluation, or the typed document with `--json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use canaryd_controller::{Decision, Kind, Policy, PromClient, Replay, SourceKind};
use clap::Args;

use super::view::{fmt_secs, fmt_value};
use crate::files;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The configuration: its `[prometheus]` section, and its policy unless --policy.
    #[arg(long, default_value = crate::DEFAULT_CONFIG)]
    config: PathBuf,
    /// A policy file to replay instead of the configuration's `[rollout] policy`.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Where the replayed rollout starts: RFC 3339 (`2026-12-01T14:00:00Z`), `now`, or
    /// relative to now (`-2h`, `-90m`).
    #[arg(long, allow_hyphen_values = true)]
    from: String,
    /// Where the replay ends (same forms as --from).
    #[arg(long, allow_hyphen_values = true, default_value = "now")]
    to: String,
    /// Print the typed replay document (every decision line) as JSON.
    #[arg(long)]
    json: bool,
}

/// `canaryd replay`.
pub fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let from = parse_time(&args.from, now).context("--from")?;
    let to = parse_time(&args.to, now).context("--to")?;
    let cfg = files::load_config(&args.config)?;
    let policy = match &args.policy {
        Some(path) => Policy::load(path)?,
        None => files::load_policy(&cfg, &args.config)?.with_context(|| {
            format!(
                "{} has no [rollout] policy: name one with --policy",
                args.config.display()
            )
        })?,
    };
    let source = args
        .policy
        .clone()
        .or_else(|| files::policy_path(&cfg, &args.config))
        .unwrap_or_default();
    if !policy
        .rules
        .iter()
        .any(|r| r.source == SourceKind::Prometheus)
    {
        anyhow::bail!(
            "{}: policy {:?} has no PromQL rule (source = \"prometheus\"): nothing to replay \
             (local rules read the proxy's in-memory windows, which keep no history)",
            source.display(),
            policy.name
        );
    }
    let prom_cfg = cfg.prometheus.as_ref().with_context(|| {
        format!(
            "{} has no [prometheus] section (key `prometheus.url`): replay asks Prometheus",
            args.config.display()
        )
    })?;
    let prom = PromClient::from_config(prom_cfg)?;
    let report = super::run(async {
        Ok(canaryd_controller::replay(&prom, &policy, unix_ms(from), unix_ms(to)).await?)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, &source));
    }
    Ok(())
}

/// `now`, `-2h` (a humantime duration before now) or RFC 3339.
fn parse_time(text: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    let t = text.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Some(ago) = t.strip_prefix('-') {
        let d = humantime::parse_duration(ago.trim()).with_context(|| {
            format!("expected a duration after '-' like -2h or -90m, found {text:?}")
        })?;
        return now
            .checked_sub(d)
            .with_context(|| format!("{text:?} is before 1970"));
    }
    humantime::parse_rfc3339_weak(t).with_context(|| {
        format!(
            "expected RFC 3339 (2026-12-01T14:00:00Z), `now` or -DURATION (-2h), found {text:?}"
        )
    })
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The replay for people: what was left out, one line per decision, and how it ended.
fn render(r: &Replay, source: &Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "replaying policy {:?} ({}) from {} to {}: up to {} evaluation(s), every {}",
        r.policy,
        source.display(),
        r.from,
        r.to,
        r.evaluations,
        fmt_secs(r.interval_s)
    );
    for s in &r.skipped {
        let _ = writeln!(out, "rule {:?} cannot be replayed: {}", s.rule, s.reason);
    }
    for d in &r.decisions {
        let _ = writeln!(out, "{}", line(d));
    }
    if let Some(last) = r.decisions.last() {
        let _ = writeln!(
            out,
            "result: {} at {} ({} %): {}",
            last.state.as_str(),
            last.ts,
            last.canary_percent,
            last.reason
        );
    }
    out
}

/// One decision: time, action, where the rollout is, and each rule's value and outcome;
/// transitions add their reason.
fn line(d: &Decision) -> String {
    let mut s = format!(
        "{}  {:<12} step {} {:>5} %  held {:<8}",
        d.ts,
        d.action.as_str(),
        d.step,
        d.canary_percent,
        fmt_secs(d.held_s.unwrap_or(0.0))
    );
    for r in d.rules() {
        let outcome = r.outcome.map_or("-", |o| o.as_str());
        let _ = write!(
            s,
            "  {}={} {} ({})",
            r.name,
            fmt_value(r.value),
            outcome,
            r.threshold
        );
        if let (Some(c), Some(st)) = (r.canary_value, r.stable_value) {
            let _ = write!(s, " [canary {} / stable {}]", fmt_value(c), fmt_value(st));
        }
        if let Some(e) = &r.error {
            let _ = write!(s, " error: {e}");
        }
    }
    if d.kind == Kind::Transition {
        let _ = write!(s, "  — {}", d.reason);
    }
    s
}

#[cfg(test)]
mod tests;
