//! The rollout state machine: where a rollout is (phase, step, healthy time held, the split),
//! and how the rules' verdicts move it.
//!
//! `idle → progressing(step k) ⇄ paused → promoted`; a step with `approval = true` whose hold
//! is met waits in `awaiting_approval` until an operator approves; from any live phase,
//! `rolled_back` (through `rolling_back` when the rollback is gradual) or `aborted`. A step
//! advances only after every acting rule has been healthy for the step's `hold`: with
//! `hold_mode = "consecutive"` (the default) in one unbroken run — an evaluation that holds
//! the rollout (a breach shorter than `for`, no-data, errors) restarts it — with
//! `"cumulative"` adding up the healthy time. A pause remembers what it paused
//! (`paused_from`): `resume` returns there, and a paused gradual rollback stays frozen except
//! for a new failure, which goes to 0 % at once. [`RolloutState`] is what gets persisted;
//! everything else is rebuilt at start.
//!
//! Besides the rules, the traffic-share check ([`crate::policy::traffic`]) can hold a step:
//! the controller sets [`Rollout::set_traffic_mismatch`] while the canary's share of requests
//! does not match its weight; the rollout then holds (never advances, `approve` is refused)
//! and alerts once per mismatch.

mod commands;

use serde::{Deserialize, Serialize};
use tokio::time::{Duration, Instant};

use crate::api::Action;
use crate::policy::{HoldMode, OnFail, Policy, RollbackMode};
use crate::policy::{Outcome, RuleState, Verdict};

/// Where a rollout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Idle,
    Progressing,
    /// The step's hold is met and the step has `approval = true`: rules are still judged; an
    /// operator's `approve` moves on.
    AwaitingApproval,
    Paused,
    RollingBack,
    Promoted,
    RolledBack,
    Aborted,
}

/// The persisted state (`state.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutState {
    pub policy: String,
    pub phase: Phase,
    /// Index into the policy's steps.
    pub step: usize,
    /// Healthy time accumulated in the current step.
    pub held_ms: u64,
    /// The split in force.
    pub canary_percent: f64,
    /// Wall clock, ms since the epoch.
    pub step_started_at_ms: u64,
    pub updated_at_ms: u64,
    /// Why the last transition happened.
    pub reason: String,
    /// `paused` only: the phase the pause stopped (`progressing`, `awaiting_approval` or
    /// `rolling_back`), where `resume` goes back to. Absent from state files written before it
    /// existed: those read as paused from `progressing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_from: Option<Phase>,
}

/// Something that happened to the rollout; each becomes a decision-log line.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Started,
    Advanced {
        from: usize,
        to: usize,
    },
    Promoted,
    /// The step's hold is met and it waits for an operator's approval ("ready for approval").
    AwaitingApproval,
    HoldBegin {
        reasons: Vec<String>,
    },
    HoldEnd,
    Alert {
        rule: String,
    },
    RollbackStarted {
        rules: Vec<String>,
        gradual: bool,
    },
    RollbackStep,
    RolledBack,
    /// Operator actions.
    /// `approve`: followed by the `Advanced` or `Promoted` it leads to.
    Approved,
    Paused,
    Resumed,
    Aborted,
    WeightSet {
        percent: f64,
    },
}

/// What an operator can ask for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Start,
    Pause,
    Resume,
    Promote,
    Rollback,
    Abort,
    /// Manual split; pauses a running policy.
    SetWeight(f64),
    /// Moves a rollout awaiting approval to its next step (or promotes it from the last).
    Approve,
}

/// Why an operator action is not possible now, and what to do instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub error: String,
    pub hint: String,
}

/// A running rollout: the policy, its persisted state and each rule's running state.
#[derive(Debug)]
pub struct Rollout {
    pub policy: Policy,
    pub state: RolloutState,
    pub rules: Vec<RuleState>,
    last_tick: Option<Instant>,
    last_rollback_step: Option<Instant>,
    holding: bool,
    /// Per rule: an alert was sent for the current breach of an `alert` rule.
    alerted: Vec<bool>,
    /// Per rule: an alert was sent for the current streak of errors.
    error_alerted: Vec<bool>,
    /// Per rule: its breach started the current gradual rollback and has not ended since, so
    /// it does not count as failing again.
    in_rollback_breach: Vec<bool>,
    /// The traffic-share check found a mismatch: what it found (observed vs expected share).
    traffic_mismatch: Option<String>,
    /// An alert was sent for the current mismatch.
    traffic_alerted: bool,
}

// === impl Phase ===

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Idle,
        Phase::Progressing,
        Phase::AwaitingApproval,
        Phase::Paused,
        Phase::RollingBack,
        Phase::Promoted,
        Phase::RolledBack,
        Phase::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Progressing => "progressing",
            Phase::AwaitingApproval => "awaiting_approval",
            Phase::Paused => "paused",
            Phase::RollingBack => "rolling_back",
            Phase::Promoted => "promoted",
            Phase::RolledBack => "rolled_back",
            Phase::Aborted => "aborted",
        }
    }

    /// Are rules judged (and can the rollout move) in this phase?
    pub fn is_live(self) -> bool {
        matches!(
            self,
            Phase::Progressing | Phase::AwaitingApproval | Phase::Paused | Phase::RollingBack
        )
    }
}

// === impl Transition ===

impl Transition {
    /// The `action` label of the decision log and of `canaryd_decisions_total`.
    pub fn action(&self) -> Action {
        match self {
            Transition::Started => Action::Start,
            Transition::Advanced { .. } => Action::Advance,
            Transition::Promoted => Action::Promote,
            Transition::AwaitingApproval => Action::AwaitingApproval,
            Transition::HoldBegin { .. } => Action::Hold,
            Transition::HoldEnd => Action::HoldEnd,
            Transition::Alert { .. } => Action::Alert,
            Transition::RollbackStarted { .. } => Action::Rollback,
            Transition::RollbackStep => Action::RollbackStep,
            Transition::RolledBack => Action::RolledBack,
            Transition::Approved => Action::Approve,
            Transition::Paused => Action::Pause,
            Transition::Resumed => Action::Resume,
            Transition::Aborted => Action::Abort,
            Transition::WeightSet { .. } => Action::SetWeight,
        }
    }
}

// === impl Rollout ===

impl Rollout {
    /// A rollout that has not started: the split is `initial_percent`.
    pub fn idle(policy: Policy, initial_percent: f64, wall_ms: u64) -> Self {
        let state = RolloutState {
            policy: policy.name.clone(),
            phase: Phase::Idle,
            step: 0,
            held_ms: 0,
            canary_percent: initial_percent,
            step_started_at_ms: wall_ms,
            updated_at_ms: wall_ms,
            reason: "no rollout has run yet".into(),
            paused_from: None,
        };
        Self::resume(policy, state)
    }

    /// Continues from a persisted state.
    pub fn resume(policy: Policy, state: RolloutState) -> Self {
        let n = policy.rules.len();
        Self {
            policy,
            state,
            rules: vec![RuleState::default(); n],
            last_tick: None,
            last_rollback_step: None,
            holding: false,
            alerted: vec![false; n],
            error_alerted: vec![false; n],
            in_rollback_breach: vec![false; n],
            traffic_mismatch: None,
            traffic_alerted: false,
        }
    }

    /// The controller stopped ticking (it is handing over, or resumes after a failed
    /// hand-over): the time until the next tick is not healthy time.
    pub fn clock_stopped(&mut self) {
        self.last_tick = None;
    }

    /// Starts the policy at its first step.
    pub fn start(&mut self, wall_ms: u64) -> Transition {
        self.enter_step(0, wall_ms);
        self.state.phase = Phase::Progressing;
        self.state.paused_from = None;
        self.state.reason = "rollout started".into();
        self.last_tick = None;
        self.holding = false;
        // No verdict, breach start or alert of the last run carries over (a stale "fail" would
        // roll the new run back at once). The rules' data windows still reach back into the
        // last run; the runbook says to wait them out.
        self.rules
            .iter_mut()
            .for_each(|r| *r = RuleState::default());
        self.alerted.iter_mut().for_each(|a| *a = false);
        self.error_alerted.iter_mut().for_each(|a| *a = false);
        self.in_rollback_breach.iter_mut().for_each(|a| *a = false);
        self.traffic_mismatch = None;
        self.traffic_alerted = false;
        Transition::Started
    }

    /// The shadow share (percent) the data plane sends now: the current step's `shadow` while
    /// the rollout runs it (progressing or awaiting approval), none otherwise — a pause, a
    /// rollback or a finished rollout stops shadow traffic.
    pub fn current_shadow(&self) -> f64 {
        match self.state.phase {
            Phase::Progressing | Phase::AwaitingApproval => self
                .policy
                .steps
                .get(self.state.step)
                .map_or(0.0, |s| s.shadow),
            _ => 0.0,
        }
    }

    pub fn current_hold(&self) -> Duration {
        self.policy
            .steps
            .get(self.state.step)
            .map_or(Duration::ZERO, |s| s.hold)
    }

    fn enter_step(&mut self, step: usize, wall_ms: u64) {
        self.state.step = step;
        self.state.held_ms = 0;
        self.state.canary_percent = self.policy.steps.get(step).map_or(100.0, |s| s.weight);
        self.state.step_started_at_ms = wall_ms;
    }

    /// Moves the rollout after the rules were observed. `now` drives the hold clock.
    pub fn on_tick(&mut self, now: Instant, wall_ms: u64) -> Vec<Transition> {
        let dt = self
            .last_tick
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.last_tick = Some(now);
        let mut out = Vec::new();
        if !self.state.phase.is_live() {
            return out;
        }

        // A traffic-share mismatch holds (below) and alerts, once per mismatch.
        match &self.traffic_mismatch {
            Some(m) if !self.traffic_alerted => {
                self.traffic_alerted = true;
                out.push(Transition::Alert {
                    rule: format!("traffic-share: {m}"),
                });
            }
            Some(_) => {}
            None => self.traffic_alerted = false,
        }

        // Rules that act: rollback wins over hold; alerts only notify.
        let mut rollback_idx = Vec::new();
        for (i, (rule, rs)) in self.policy.rules.iter().zip(&self.rules).enumerate() {
            if rule.dry_run {
                continue;
            }
            // Errors (provider unreachable, bad query) hold and alert, once per streak.
            if rs.outcome == Some(Outcome::Error) {
                if !self.error_alerted[i] {
                    self.error_alerted[i] = true;
                    out.push(Transition::Alert {
                        rule: format!("{}: {}", rule.name, rs.error.as_deref().unwrap_or("error")),
                    });
                }
            } else {
                self.error_alerted[i] = false;
            }
            match (rs.verdict, rule.on_fail) {
                (Some(Verdict::Act(OnFail::Alert)), _) if !self.alerted[i] => {
                    self.alerted[i] = true;
                    out.push(Transition::Alert {
                        rule: rule.name.clone(),
                    });
                }
                // Alerted once per breach.
                (Some(Verdict::Act(OnFail::Alert)), _) => {}
                (Some(Verdict::Act(OnFail::Rollback)), _) => rollback_idx.push(i),
                (_, OnFail::Alert) => self.alerted[i] = false,
                _ => {}
            }
            if rs.verdict == Some(Verdict::Healthy) {
                self.in_rollback_breach[i] = false;
            }
        }
        let holds = self.holding_reasons();
        // An evaluation (not the mere absence of one) found a rule unhealthy.
        let streak_broken = holds.iter().any(|(_, evaluated)| *evaluated);
        let unhealthy: Vec<String> = holds.into_iter().map(|(r, _)| r).collect();

        if self.draining() {
            // Still judged: a new failure while traffic drains (another rule, or one that
            // had recovered) goes to 0 % at once — also while the drain is paused. The breach
            // that started the rollback, still going on, just keeps the drain going (or
            // frozen, while paused).
            let again = self.rule_names(
                rollback_idx
                    .iter()
                    .copied()
                    .filter(|&i| !self.in_rollback_breach[i]),
            );
            let paused = self.state.phase == Phase::Paused;
            if !again.is_empty() {
                self.state.canary_percent = 0.0;
                self.state.phase = Phase::RolledBack;
                self.state.paused_from = None;
                self.state.reason = format!(
                    "rule(s) {} failed during a {}gradual rollback",
                    again.join(", "),
                    if paused { "paused " } else { "" }
                );
                out.push(Transition::RolledBack);
            } else if let (false, RollbackMode::Gradual { every, .. }) =
                (paused, &self.policy.rollback)
            {
                // After a restart the drain resumes a full `every` later.
                let last = *self.last_rollback_step.get_or_insert(now);
                if now.saturating_duration_since(last) >= *every {
                    self.last_rollback_step = Some(now);
                    self.rollback_step(&mut out);
                }
            }
        } else if !rollback_idx.is_empty() {
            let rollback_by = self.rule_names(rollback_idx.iter().copied());
            let gradual = matches!(self.policy.rollback, RollbackMode::Gradual { .. });
            self.state.reason = format!("rule(s) {} failed", rollback_by.join(", "));
            self.state.paused_from = None;
            out.push(Transition::RollbackStarted {
                rules: rollback_by,
                gradual,
            });
            if gradual {
                self.state.phase = Phase::RollingBack;
                self.last_rollback_step = Some(now);
                for &i in &rollback_idx {
                    self.in_rollback_breach[i] = true;
                }
                self.rollback_step(&mut out);
            } else {
                self.state.canary_percent = 0.0;
                self.state.phase = Phase::RolledBack;
                out.push(Transition::RolledBack);
            }
        } else {
            match self.state.phase {
                Phase::Progressing => {
                    self.progress(dt, unhealthy, streak_broken, wall_ms, &mut out)
                }
                Phase::AwaitingApproval => {
                    // Still judged and shown; the wait for the approval is not lost, but
                    // `approve` is refused while it holds.
                    if unhealthy.is_empty() {
                        if self.holding {
                            self.holding = false;
                            self.state.reason = self.ready_reason();
                            out.push(Transition::HoldEnd);
                        }
                    } else if !self.holding {
                        self.holding = true;
                        self.state.reason = format!(
                            "awaiting approval, holding: {}; `canaryd approve` is refused until the hold ends",
                            unhealthy.join(", ")
                        );
                        out.push(Transition::HoldBegin { reasons: unhealthy });
                    }
                }
                // No time counts while paused, but a consecutive hold's healthy run is broken
                // by an unhealthy evaluation during the pause too.
                Phase::Paused
                    if streak_broken
                        && self.paused_from() == Phase::Progressing
                        && self.policy.hold_mode_at(self.state.step) == HoldMode::Consecutive =>
                {
                    self.state.held_ms = 0;
                }
                _ => {}
            }
        }
        if !out.is_empty() {
            self.touch(wall_ms);
        }
        out
    }

    /// A progressing step: count healthy time, hold, or move on once the hold is met.
    fn progress(
        &mut self,
        dt: Duration,
        unhealthy: Vec<String>,
        streak_broken: bool,
        wall_ms: u64,
        out: &mut Vec<Transition>,
    ) {
        if !unhealthy.is_empty() {
            let restart = streak_broken
                && self.state.held_ms > 0
                && self.policy.hold_mode_at(self.state.step) == HoldMode::Consecutive;
            if restart {
                self.state.held_ms = 0;
            }
            if !self.holding || restart {
                self.state.reason = format!(
                    "holding: {}{}",
                    unhealthy.join(", "),
                    if restart {
                        "; the step's hold restarts from zero (hold_mode = consecutive)"
                    } else {
                        ""
                    }
                );
            }
            if !self.holding {
                self.holding = true;
                out.push(Transition::HoldBegin { reasons: unhealthy });
            }
            return;
        }
        if self.holding {
            // Only time between two healthy evaluations counts.
            self.holding = false;
            out.push(Transition::HoldEnd);
        } else {
            self.state.held_ms += dt.as_millis() as u64;
        }
        if Duration::from_millis(self.state.held_ms) < self.current_hold() {
            return;
        }
        if self.policy.needs_approval(self.state.step) {
            self.state.phase = Phase::AwaitingApproval;
            self.state.reason = self.ready_reason();
            out.push(Transition::AwaitingApproval);
        } else {
            let from = self.state.step;
            let why = format!(
                "step {from} held healthy for {}",
                humantime::format_duration(self.current_hold())
            );
            self.move_on(why, "last step held healthy: promoted".into(), wall_ms, out);
        }
    }

    /// The next step (`advanced` as the reason), or promotion from the last (`promoted`).
    fn move_on(
        &mut self,
        advanced: String,
        promoted: String,
        wall_ms: u64,
        out: &mut Vec<Transition>,
    ) {
        let from = self.state.step;
        if from + 1 < self.policy.steps.len() {
            self.enter_step(from + 1, wall_ms);
            self.state.reason = advanced;
            out.push(Transition::Advanced { from, to: from + 1 });
        } else {
            self.state.phase = Phase::Promoted;
            self.state.canary_percent = 100.0;
            self.state.reason = promoted;
            out.push(Transition::Promoted);
        }
    }

    /// The reason of a rollout awaiting approval and not holding: "ready for approval".
    fn ready_reason(&self) -> String {
        let step = self.state.step;
        let next = match self.policy.steps.get(step + 1) {
            Some(s) => format!("moves to step {}, {} %", step + 1, s.weight),
            None => "promotes the canary, 100 %".into(),
        };
        format!(
            "step {step} held healthy for {}: ready for approval (`canaryd approve` {next})",
            humantime::format_duration(self.current_hold())
        )
    }

    /// Why the rollout holds now: one reason per acting rule that is not healthy, and whether
    /// an evaluation said so (`false`: the rule has not been evaluated yet). `dry_run` and
    /// `alert` rules never hold; a rule asking for a rollback is not listed (it rolls back).
    fn holding_reasons(&self) -> Vec<(String, bool)> {
        let traffic = self
            .traffic_mismatch
            .as_ref()
            .map(|m| (format!("traffic share mismatch: {m}"), true));
        self.policy
            .rules
            .iter()
            .zip(&self.rules)
            .filter(|(rule, _)| !rule.dry_run)
            .filter_map(|(rule, rs)| match (rs.verdict, rule.on_fail) {
                (Some(Verdict::Act(OnFail::Alert | OnFail::Rollback)), _) => None,
                (_, OnFail::Alert) | (Some(Verdict::Healthy), _) => None,
                (Some(Verdict::Act(OnFail::Hold)), _) => {
                    Some((format!("{} failed", rule.name), true))
                }
                (Some(Verdict::Unhealthy), _) => Some((
                    match rs.outcome {
                        Some(o) => format!("{} {}", rule.name, o.as_str()),
                        None => format!("{} not evaluated", rule.name),
                    },
                    true,
                )),
                (None, _) => Some((format!("{} not evaluated yet", rule.name), false)),
            })
            .chain(traffic)
            .collect()
    }

    /// What the traffic-share check found this tick: `Some(why)` while the canary's share
    /// does not match its weight (the rollout holds), `None` otherwise.
    pub fn set_traffic_mismatch(&mut self, mismatch: Option<String>) {
        self.traffic_mismatch = mismatch;
    }

    /// Every acting rule that is not healthy right now (holding or asking for a rollback).
    pub fn not_healthy(&self) -> Vec<String> {
        let failing = self
            .policy
            .rules
            .iter()
            .zip(&self.rules)
            .filter(|(rule, rs)| {
                !rule.dry_run && rs.verdict == Some(Verdict::Act(OnFail::Rollback))
            })
            .map(|(rule, _)| format!("{} failed", rule.name));
        failing
            .chain(self.holding_reasons().into_iter().map(|(r, _)| r))
            .collect()
    }

    /// What a paused rollout goes back to on `resume` (`progressing` for state files written
    /// before `paused_from` existed).
    pub fn paused_from(&self) -> Phase {
        self.state.paused_from.unwrap_or(Phase::Progressing)
    }

    /// A gradual rollback is under way: draining, or paused while draining.
    fn draining(&self) -> bool {
        match self.state.phase {
            Phase::RollingBack => true,
            Phase::Paused => self.paused_from() == Phase::RollingBack,
            _ => false,
        }
    }

    fn rule_names(&self, idx: impl Iterator<Item = usize>) -> Vec<String> {
        idx.map(|i| self.policy.rules[i].name.clone()).collect()
    }

    /// Is the rollout holding (some acting rule not healthy) as of the last tick?
    pub fn is_holding(&self) -> bool {
        self.holding
    }

    fn rollback_step(&mut self, out: &mut Vec<Transition>) {
        let RollbackMode::Gradual { step, .. } = self.policy.rollback else {
            return;
        };
        self.state.canary_percent = (self.state.canary_percent - step).max(0.0);
        if self.state.canary_percent <= 0.0 {
            self.state.phase = Phase::RolledBack;
            out.push(Transition::RolledBack);
        } else {
            out.push(Transition::RollbackStep);
        }
    }

    fn touch(&mut self, wall_ms: u64) {
        self.state.updated_at_ms = wall_ms;
    }

    /// Swaps in a reloaded policy, keeping the phase, step and held time. Rule states are kept
    /// for rules whose name is unchanged. Refused when the current step no longer exists.
    pub fn replace_policy(&mut self, policy: Policy) -> Result<(), Refusal> {
        if self.state.phase.is_live() && self.state.step >= policy.steps.len() {
            return Err(Refusal {
                error: format!(
                    "the reloaded policy has {} steps but the rollout is at step {}",
                    policy.steps.len(),
                    self.state.step
                ),
                hint: "keep the steps up to the current one, or abort the rollout first".into(),
            });
        }
        let old: Vec<(String, RuleState)> = self
            .policy
            .rules
            .iter()
            .map(|r| r.name.clone())
            .zip(self.rules.drain(..))
            .collect();
        self.rules = policy
            .rules
            .iter()
            .map(|r| {
                old.iter()
                    .find(|(n, _)| *n == r.name)
                    .map(|(_, s)| s.clone())
                    .unwrap_or_default()
            })
            .collect();
        let n = policy.rules.len();
        self.alerted = vec![false; n];
        self.error_alerted = vec![false; n];
        self.in_rollback_breach = vec![false; n];
        self.state.policy = policy.name.clone();
        self.policy = policy;
        Ok(())
    }

    /// Time left in the current step's hold.
    pub fn hold_remaining(&self) -> Duration {
        self.current_hold()
            .saturating_sub(Duration::from_millis(self.state.held_ms))
    }
}

#[cfg(test)]
mod tests;
