//! `canaryd replay`: what a policy would have decided over a stretch of history — Kayenta's
//! retrospective analysis, for tuning thresholds and `for` without risking a rollout.
//!
//! The policy's PromQL rules are evaluated with Prometheus range queries at the policy's
//! `interval` ([`PromClient::query_range`]), and the answers are fed, one evaluation at a time,
//! through the very code the live controller runs: [`sample_rule`] (baseline rules: canary /
//! stable), [`RuleState::observe`](crate::policy::RuleState::observe) (outcome, `for`,
//! no-data, errors) and [`Rollout::on_tick`] (hold clock, advance, rollback, promotion), on a
//! virtual clock that moves one `interval` per evaluation; each transition and evaluation is a
//! typed [`Decision`] built by the same `decision_line` as the decision log's, stamped with the
//! historical time it would have happened at.
//!
//! What cannot be replayed, and is said so: `source = "local"` rules (they read the proxy's
//! in-memory windows, which keep two minutes and no history) are left out of the replayed
//! policy, so they neither hold nor fail it; the traffic-share check and `min_requests` (both
//! count the proxy's own requests) are not applied. The rollout starts at `from` and the replay
//! ends at `to` or when the rollout does (promoted, rolled back).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::report::{decision_line, evaluation_action, rule_statuses};
use super::*;
use crate::api::{Replay, SkippedRule};

/// Points asked for per range query: well under Prometheus's 11 000 per series.
const CHUNK_POINTS: u64 = 1_000;
/// The most evaluations one replay runs.
const MAX_EVALUATIONS: u64 = 100_000;

/// Why a replay cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("--from ({from}) is after --to ({to})")]
    Backwards { from: String, to: String },
    #[error(
        "{evaluations} evaluations (from {from} to {to} every {interval:?}) is more than \
         {MAX_EVALUATIONS}: replay a shorter range"
    )]
    TooLong {
        evaluations: u64,
        from: String,
        to: String,
        interval: Duration,
    },
}

/// The range answers of every replayed rule, and the evaluation being replayed: the
/// [`Sources`] the shared rule code samples from.
struct History {
    /// (rule name, variant) → one sample per evaluation.
    series: HashMap<(String, &'static str), Vec<Sample>>,
    /// The evaluation being replayed.
    at: AtomicUsize,
}

impl Sources for History {
    async fn sample(&self, rule: &Rule, variant: Variant) -> Sample {
        let at = self.at.load(Ordering::Relaxed);
        self.series
            .get(&(rule.name.clone(), variant.as_str()))
            .and_then(|s| s.get(at))
            .cloned()
            .unwrap_or(Sample::NoData)
    }

    /// Never asked: `min_requests` is not applied to a replay.
    fn requests(&self, _: Variant, _: Duration) -> u64 {
        0
    }
}

/// Replays `policy`'s PromQL rules against `prom` from `from_ms` to `to_ms` (Unix
/// milliseconds): the decisions the controller would have made had a rollout started at
/// `from_ms`.
pub async fn replay(
    prom: &PromClient,
    policy: &Policy,
    from_ms: u64,
    to_ms: u64,
) -> Result<Replay, ReplayError> {
    if from_ms > to_ms {
        return Err(ReplayError::Backwards {
            from: report::rfc3339(from_ms),
            to: report::rfc3339(to_ms),
        });
    }
    let interval = policy.interval;
    let step_ms = interval.as_millis().max(1) as u64;
    let evaluations = (to_ms - from_ms) / step_ms + 1;
    if evaluations > MAX_EVALUATIONS {
        return Err(ReplayError::TooLong {
            evaluations,
            from: report::rfc3339(from_ms),
            to: report::rfc3339(to_ms),
            interval,
        });
    }
    let (replayed, skipped) = replayable(policy);
    let history = fetch(prom, &replayed, from_ms, evaluations, step_ms).await;
    let decisions = run(replayed, &history, from_ms, evaluations, interval).await;
    Ok(Replay {
        decisions,
        evaluations,
        from: report::rfc3339(from_ms),
        interval_s: interval.as_secs_f64(),
        policy: policy.name.clone(),
        skipped,
        to: report::rfc3339(to_ms),
    })
}

/// The policy without what cannot be replayed, and what was left out and why.
fn replayable(policy: &Policy) -> (Policy, Vec<SkippedRule>) {
    let mut replayed = policy.clone();
    let (kept, local): (Vec<Rule>, Vec<Rule>) = policy
        .rules
        .iter()
        .cloned()
        .partition(|r| r.source == SourceKind::Prometheus);
    replayed.rules = kept;
    // Counts of the proxy's own requests: none in history.
    replayed.traffic_check = false;
    replayed.min_requests = 0;
    for r in &mut replayed.rules {
        r.min_requests = None;
    }
    let skipped = local
        .into_iter()
        .map(|r| SkippedRule {
            reason: "source = \"local\": it reads the proxy's in-memory windows, which keep no \
                     history; replayed without it (it neither holds nor fails the replay)"
                .into(),
            rule: r.name,
        })
        .collect();
    (replayed, skipped)
}

/// Range-queries every rule (each variant of a baseline rule) in chunks; a chunk Prometheus
/// could not answer is an error sample at each of its evaluations, as the live loop would
/// have seen it.
async fn fetch(
    prom: &PromClient,
    policy: &Policy,
    from_ms: u64,
    evaluations: u64,
    step_ms: u64,
) -> History {
    let mut series = HashMap::new();
    for rule in &policy.rules {
        let Some(query) = &rule.query else { continue };
        let variants: &[Variant] = if rule.compare == Some(Compare::Baseline) {
            &[Variant::Canary, Variant::Stable]
        } else {
            &[Variant::Canary]
        };
        for &variant in variants {
            let promql = render(query, variant.as_str());
            let mut samples = Vec::with_capacity(evaluations as usize);
            let mut first = 0;
            while first < evaluations {
                let points = CHUNK_POINTS.min(evaluations - first);
                let start = from_ms + first * step_ms;
                let end = start + (points - 1) * step_ms;
                match prom
                    .query_range(&promql, start, end, Duration::from_millis(step_ms))
                    .await
                {
                    Ok(chunk) => samples.extend(chunk),
                    Err(e) => samples.extend((0..points).map(|_| Sample::Error(e.clone()))),
                }
                first += points;
            }
            series.insert((rule.name.clone(), variant.as_str()), samples);
        }
    }
    History {
        series,
        at: AtomicUsize::new(0),
    }
}

/// Runs the rollout over the history: start at `from_ms`, one evaluation every `interval`.
async fn run(
    policy: Policy,
    history: &History,
    from_ms: u64,
    evaluations: u64,
    interval: Duration,
) -> Vec<Decision> {
    let origin = Instant::now();
    let max_errors = policy.max_consecutive_errors;
    let mut rollout = Rollout::idle(policy, 0.0, from_ms);
    let started = rollout.start(from_ms);
    let mut lines = Vec::new();
    let transition = |rollout: &Rollout, t: &Transition, now: Instant, ts: u64| {
        let mut line = decision_line(
            rollout,
            Kind::Transition,
            t.action(),
            Some(t),
            &rule_statuses(rollout, now),
            ts,
        );
        line.by = Some(By::Controller);
        line
    };
    lines.push(transition(&rollout, &started, origin, from_ms));
    for k in 0..evaluations {
        let elapsed = interval * u32::try_from(k).unwrap_or(u32::MAX);
        let (now, ts) = (origin + elapsed, from_ms + elapsed.as_millis() as u64);
        history.at.store(k as usize, Ordering::Relaxed);
        for i in 0..rollout.policy.rules.len() {
            let (sample, raw) = sample_rule(history, &rollout.policy.rules[i]).await;
            let rule = &rollout.policy.rules[i];
            rollout.rules[i].baseline = raw;
            rollout.rules[i].observe(rule, now, sample, max_errors);
        }
        let transitions = rollout.on_tick(now, ts);
        if transitions.is_empty() {
            lines.push(decision_line(
                &rollout,
                Kind::Evaluation,
                evaluation_action(&rollout),
                None,
                &rule_statuses(&rollout, now),
                ts,
            ));
        }
        lines.extend(transitions.iter().map(|t| transition(&rollout, t, now, ts)));
        if !rollout.state.phase.is_live() {
            break;
        }
    }
    lines
}

#[cfg(test)]
mod tests;
