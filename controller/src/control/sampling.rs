//! Judging rule samples: local rules sampled in the tick, PromQL rules asked for in a task of
//! their own (one in flight per rule, with a deadline) and judged when the answer arrives —
//! dropped if the rollout moved on meanwhile (the epoch) — plus the step's counts for the
//! sequential tests and the traffic-share check.

use super::*;

/// A PromQL rule's sample, back from its task.
#[derive(Debug)]
pub(super) struct Sampled {
    /// [`Controller::epoch`] when the sample was asked for.
    epoch: u64,
    rule: usize,
    sample: Sample,
    /// Baseline rules: the canary's and stable's raw values.
    raw: Option<(Option<f64>, Option<f64>)>,
}

/// Where the step's counts start: the epoch and split they belong to, and the counters then.
#[derive(Debug, Clone, Copy)]
pub(super) struct StepBase {
    epoch: u64,
    weight_bp: u16,
    traffic: Traffic,
}

// === impl Controller ===

impl<S: Sources + Clone + 'static> Controller<S> {
    /// A PromQL sample arriving between ticks: judged at once, so a failing canary is rolled
    /// back as soon as Prometheus says so.
    pub(super) async fn on_sampled(&mut self, sampled: Sampled) {
        let now = Instant::now();
        if !self.lead(now).await || !self.judge_sample(sampled, now) {
            return;
        }
        let before = self.rollout.state.clone();
        let transitions = self.rollout.on_tick(now, wall_ms());
        if !transitions.is_empty() {
            self.commit(before, transitions, false, None).await;
        }
        self.publish(now);
    }

    /// Observes a sample if it is of this epoch and the rollout is live; says whether it was.
    pub(super) fn judge_sample(&mut self, s: Sampled, now: Instant) -> bool {
        if s.epoch != self.epoch {
            tracing::debug!(
                rule = s.rule,
                "a PromQL sample of an earlier step or run dropped"
            );
            return false;
        }
        if let Some(flying) = self.in_flight.get_mut(s.rule) {
            *flying = false;
        }
        if self.blocked.is_some() || !self.rollout.state.phase.is_live() {
            return false;
        }
        self.observe(s.rule, now, s.sample, s.raw);
        true
    }

    pub(super) fn observe(
        &mut self,
        i: usize,
        now: Instant,
        sample: Sample,
        raw: Option<(Option<f64>, Option<f64>)>,
    ) {
        let max = self.rollout.policy.max_consecutive_errors;
        if let (Some(rule), Some(rs)) = (
            self.rollout.policy.rules.get(i),
            self.rollout.rules.get_mut(i),
        ) {
            rs.baseline = raw;
            rs.observe(rule, now, sample, max);
        }
    }

    /// The proxy's counts since the current step began at the split in force; a new step, run
    /// or split starts them again from zero. `None` when the source does not count.
    pub(super) fn step_traffic(&mut self) -> Option<Traffic> {
        let now = self.sources.traffic()?;
        let weight_bp = self.table.weight_bp();
        match self.step_base {
            Some(b) if b.epoch == self.epoch && b.weight_bp == weight_bp => {
                Some(now.since(b.traffic))
            }
            _ => {
                self.step_base = Some(StepBase {
                    epoch: self.epoch,
                    weight_bp,
                    traffic: now,
                });
                Some(Traffic::default())
            }
        }
    }

    /// Judges `test` rule `i` on the step's counts (error ratios) or histograms (latency).
    pub(super) fn observe_test(&mut self, i: usize, now: Instant, step: Option<Traffic>) {
        let p = &self.rollout.policy;
        let Some(rule) = p.rules.get(i) else { return };
        let min = rule.min_requests.unwrap_or(p.min_requests);
        let judgement = match (step, rule.margin, rule.test) {
            (Some(t), Some(margin), Some(TestKind::Sequential)) => {
                sequential::judge(t.canary, t.stable, margin, rule.alpha(), min)
            }
            (Some(t), Some(margin), Some(TestKind::MannWhitney)) => mann_whitney::judge(
                t.canary_latency,
                t.stable_latency,
                margin,
                rule.direction(),
                rule.alpha(),
                min,
            )
            .map(|mut j| {
                // The step's 5xx beside the requests judged, for the decision line.
                (j.canary.errors, j.stable.errors) = (t.canary.errors, t.stable.errors);
                j
            }),
            _ => None,
        };
        if let Some(rs) = self.rollout.rules.get_mut(i) {
            rs.baseline = judgement.map(|j| {
                let (canary, stable) = j.values();
                (Some(canary), Some(stable))
            });
            rs.observe_test(rule, now, judgement);
        }
    }

    /// The traffic-share check, while a step progresses or awaits approval (`traffic_check`).
    pub(super) fn check_traffic(&mut self, step: Option<Traffic>) {
        let checked = self.rollout.policy.traffic_check
            && matches!(
                self.rollout.state.phase,
                Phase::Progressing | Phase::AwaitingApproval
            );
        let weight = f64::from(self.table.weight_bp()) / 100.0;
        let share = step
            .filter(|_| checked)
            .and_then(|t| traffic::check(t, weight));
        let mismatch = share.filter(|s| s.mismatch).map(|s| s.describe());
        self.rollout.set_traffic_mismatch(mismatch);
    }

    /// `min_requests`: too few canary requests in the rule's window is no data, without
    /// asking the source.
    pub(super) fn gate(&self, i: usize) -> Option<Sample> {
        let p = &self.rollout.policy;
        let rule = &p.rules[i];
        let window = match rule.source {
            SourceKind::Local => rule.window,
            SourceKind::Prometheus => p.interval,
        };
        let min = rule.min_requests.unwrap_or(p.min_requests);
        (min > 0 && self.sources.requests(Variant::Canary, window) < min).then_some(Sample::NoData)
    }

    /// Starts sampling PromQL rule `i` in a task of its own, unless a sample of it is on its way.
    pub(super) fn ask_prometheus(&mut self, i: usize, now: Instant) {
        if self.in_flight.get(i).copied().unwrap_or(true) {
            return;
        }
        if let Some(no_data) = self.gate(i) {
            self.observe(i, now, no_data, None);
            return;
        }
        self.in_flight[i] = true;
        let rule = self.rollout.policy.rules[i].clone();
        let sources = self.sources.clone();
        let tx = self.sampled_tx.clone();
        // A second of slack, so that the source's own, more precise, timeout error wins.
        let deadline = self.sources.sample_timeout() + Duration::from_secs(1);
        let epoch = self.epoch;
        tokio::spawn(async move {
            let (sample, raw) =
                match tokio::time::timeout(deadline, sample_rule(&sources, &rule)).await {
                    Ok(answer) => answer,
                    Err(_) => (
                        Sample::Error(format!(
                            "no answer within {}s: {}",
                            deadline.as_secs_f64(),
                            short_query(rule.query.as_deref().unwrap_or_default())
                        )),
                        None,
                    ),
                };
            // The controller may be gone (shutdown): nothing to tell.
            let _ = tx.send(Sampled {
                epoch,
                rule: i,
                sample,
                raw,
            });
        });
    }

    /// Samples asked for before now can no longer be judged: a new epoch, nothing in flight.
    pub(super) fn moved_on(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.in_flight = vec![false; self.rollout.policy.rules.len()];
    }
}

/// Samples one rule: the canary, or both variants at once for baseline rules.
pub(super) async fn sample_rule<S: Sources>(
    sources: &S,
    rule: &Rule,
) -> (Sample, Option<(Option<f64>, Option<f64>)>) {
    if rule.compare == Some(Compare::Baseline) {
        let (canary, stable) = tokio::join!(
            sources.sample(rule, Variant::Canary),
            sources.sample(rule, Variant::Stable)
        );
        let value = |s: &Sample| match s {
            Sample::Value(v) => Some(*v),
            _ => None,
        };
        let raw = Some((value(&canary), value(&stable)));
        (baseline_ratio(&canary, &stable), raw)
    } else {
        (sources.sample(rule, Variant::Canary).await, None)
    }
}
