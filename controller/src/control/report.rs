//! What the controller tells: the decision lines (transitions and evaluations) and the
//! published status document, both typed ([`crate::api`]), built from the rollout in force.

use super::*;

// === impl Controller ===

impl<S: Sources + Clone + 'static> Controller<S> {
    /// What an evaluation without a transition amounts to.
    pub(super) fn evaluation_action(&self) -> Action {
        evaluation_action(&self.rollout)
    }

    /// A decision line for the rollout as it is (in force) now; `save_error` is the commit's.
    pub(super) fn decision_line(
        &self,
        kind: Kind,
        action: Action,
        t: Option<&Transition>,
        rules: &[RuleStatus],
    ) -> Decision {
        let mut line = decision_line(&self.rollout, kind, action, t, rules, wall_ms());
        line.save_error = self.save_error.clone();
        line.leader = self.cluster.as_ref().map(|c| c.cluster.name().to_string());
        line
    }

    /// Every rule of the policy as published, in the policy's order.
    pub(super) fn rule_statuses(&self, now: Instant) -> Vec<RuleStatus> {
        rule_statuses(&self.rollout, now)
    }

    pub(super) fn publish(&self, now: Instant) {
        let r = &self.rollout;
        let s = &r.state;
        let status = RolloutStatus {
            canary_percent: s.canary_percent,
            cluster: self.cluster.as_ref().map(|c| c.cluster.status(now)),
            error: self.blocked.clone(),
            holding: s.phase.is_live() && !r.not_healthy().is_empty(),
            last_decision: self.log.last(),
            paused_from: (s.phase == Phase::Paused).then(|| r.paused_from().into()),
            policy: r.policy.name.clone(),
            reason: s.reason.clone(),
            rules: self.rule_statuses(now),
            save_error: self.save_error.clone(),
            state: if self.blocked.is_some() {
                State::Blocked
            } else if self.manual {
                State::Manual
            } else {
                s.phase.into()
            },
            step: s.step,
            step_held_s: s.held_ms as f64 / 1000.0,
            step_hold_remaining_s: r.hold_remaining().as_secs_f64(),
            step_hold_s: r.current_hold().as_secs_f64(),
            step_started_at: rfc3339(s.step_started_at_ms),
            steps: r.policy.weights(),
            updated_at: rfc3339(s.updated_at_ms),
        };
        self.board.publish(Status::from(status));
        self.publish_member();
    }
}

/// What an evaluation of `rollout` without a transition amounts to.
pub(super) fn evaluation_action(rollout: &Rollout) -> Action {
    match rollout.state.phase {
        // Awaiting approval: the rules are judged as while progressing (the line's `state`
        // says it waits).
        Phase::Progressing | Phase::AwaitingApproval if rollout.is_holding() => Action::Hold,
        Phase::Progressing | Phase::AwaitingApproval => Action::Healthy,
        Phase::Paused => Action::Paused,
        Phase::RollingBack => Action::RollingBack,
        _ => Action::None,
    }
}

/// A decision line for `rollout` as it is, at `ts_ms` (wall clock), without `save_error`.
pub(super) fn decision_line(
    rollout: &Rollout,
    kind: Kind,
    action: Action,
    t: Option<&Transition>,
    rules: &[RuleStatus],
    ts_ms: u64,
) -> Decision {
    let s = &rollout.state;
    let mut line = Decision {
        action,
        alert_rule: None,
        by: None,
        canary_percent: s.canary_percent,
        failed_rules: None,
        from_percent: None,
        from_step: None,
        gradual: None,
        held_s: Some(s.held_ms as f64 / 1000.0),
        hold_reasons: None,
        kind,
        leader: None,
        operator_reason: None,
        percent: None,
        policy: s.policy.clone(),
        reason: s.reason.clone(),
        rules: Some(rules.to_vec()),
        save_error: None,
        state: s.phase,
        step: s.step,
        to_step: None,
        ts: rfc3339(ts_ms),
    };
    match t {
        Some(Transition::Advanced { from, to }) => {
            line.from_step = Some(*from);
            line.to_step = Some(*to);
        }
        Some(Transition::RollbackStarted { rules, gradual }) => {
            line.failed_rules = Some(rules.clone());
            line.gradual = Some(*gradual);
        }
        Some(Transition::HoldBegin { reasons }) => line.hold_reasons = Some(reasons.clone()),
        Some(Transition::Alert { rule }) => line.alert_rule = Some(rule.clone()),
        Some(Transition::WeightSet { percent }) => line.percent = Some(*percent),
        _ => {}
    }
    line
}

/// Every rule of `rollout`'s policy as published, in the policy's order.
pub(super) fn rule_statuses(rollout: &Rollout, now: Instant) -> Vec<RuleStatus> {
    rollout
        .policy
        .rules
        .iter()
        .zip(&rollout.rules)
        .map(|(r, s)| {
            let baseline = r.compare.is_some();
            let (canary, stable) = s.baseline.unwrap_or((None, None));
            RuleStatus {
                breaching_for_s: s.breaching_for(now).as_secs_f64(),
                canary_value: baseline.then_some(canary),
                compare: r.compare.map(Into::into),
                dry_run: r.dry_run,
                error: s.error.clone(),
                for_s: r.for_.as_secs_f64(),
                name: r.name.clone(),
                on_fail: r.on_fail.into(),
                outcome: s.outcome,
                source: r.source.into(),
                stable_value: baseline.then_some(stable),
                threshold: r.threshold(),
                value: s.value,
                interval: s.judgement.map(|j| [j.interval.0, j.interval.1]),
                latency: s.judgement.and_then(|j| {
                    j.latency.map(|l| RuleLatency {
                        canary_median_s: l.canary_median,
                        direction: l.direction,
                        shift_s: j.difference,
                        stable_median_s: l.stable_median,
                        u: l.u,
                    })
                }),
                margin: s.judgement.map(|j| j.margin),
                samples: s.judgement.map(|j| RuleSamples {
                    canary: j.canary,
                    stable: j.stable,
                }),
                statistic: s.judgement.map(|j| j.statistic),
                test: r.test.map(Into::into),
            }
        })
        .collect()
}

pub(crate) fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}
