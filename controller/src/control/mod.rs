//! The controller loop: every second, judge the rules that are due (local rules every second,
//! PromQL rules every policy `interval`), let the rollout move, and make every move atomic —
//! persist the new state, then swap the routing table, then log the decision.
//!
//! Where the metrics come from is behind [`Sources`]: [`LiveSources`] asks Prometheus and
//! reads the proxy's own sliding windows; unit tests script the values and run on virtual time.

mod board;
mod handle;
mod prometheus;
mod sources;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use canaryd_proxy::{RoutingHandle, Variant};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant, MissedTickBehavior};

pub use board::{Board, RuleView};
pub use handle::{Ask, Handle, Request};
pub use prometheus::{render, PromClient, PromError};
pub use sources::{LiveSources, Sources};

use crate::policy::{baseline_ratio, Compare, Policy, Rule, Sample, SourceKind};
use crate::rollout::{Phase, Refusal, Rollout, Transition};
use crate::store::{DecisionLog, StateStore};

/// Start-up settings: `[rollout]`'s and who hears about transitions.
#[derive(Clone, Default)]
pub struct Settings {
    pub initial_percent: f64,
    pub autostart: bool,
    /// Called with the decision line of every transition (webhooks), from the first one on:
    /// an `autostart` start at construction is delivered too.
    pub on_transition: Option<DecisionHook>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("initial_percent", &self.initial_percent)
            .field("autostart", &self.autostart)
            .field("on_transition", &self.on_transition.is_some())
            .finish()
    }
}

/// Called with every transition's decision line (webhooks).
pub type DecisionHook = Arc<dyn Fn(&Value) + Send + Sync>;

/// The controller: owns the rollout, writes state, routing table and decision log.
pub struct Controller<S> {
    rollout: Rollout,
    /// Set when the state file could not be read: traffic stays on stable, nothing moves.
    blocked: Option<String>,
    store: StateStore,
    log: Arc<DecisionLog>,
    table: RoutingHandle,
    sources: S,
    board: Arc<Board>,
    last_prom_eval: Option<Instant>,
    commands: mpsc::Receiver<Request>,
    handle: Handle,
    on_transition: Option<DecisionHook>,
}

impl<S> std::fmt::Debug for Controller<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("state", &self.rollout.state)
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}

pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

// === impl Controller ===

impl<S: Sources> Controller<S> {
    /// Loads the persisted state (the persisted split wins over `initial_percent`), or starts
    /// idle (and starts the policy when `autostart`). An unreadable state file blocks the
    /// controller with traffic 100 % on stable.
    pub fn new(
        policy: Policy,
        settings: Settings,
        store: StateStore,
        log: Arc<DecisionLog>,
        table: RoutingHandle,
        sources: S,
        board: Arc<Board>,
    ) -> Self {
        let wall = wall_ms();
        let (rollout, blocked) = match store.load() {
            Ok(Some(state)) => {
                if state.policy != policy.name {
                    tracing::warn!(persisted = %state.policy, configured = %policy.name, "the persisted rollout ran another policy; continuing it with the configured one");
                }
                if state.step >= policy.steps.len() {
                    let msg = format!(
                        "{}: persisted step {} does not exist in policy {:?} ({} steps); canaryd routes 100 % to stable until an operator fixes or removes the state file",
                        store.path().display(), state.step, policy.name, policy.steps.len()
                    );
                    (Rollout::idle(policy, 0.0, wall), Some(msg))
                } else {
                    tracing::info!(
                        phase = state.phase.as_str(),
                        step = state.step,
                        held_s = state.held_ms / 1000,
                        canary_percent = state.canary_percent,
                        "rollout state restored"
                    );
                    (Rollout::resume(policy, state), None)
                }
            }
            Ok(None) => (Rollout::idle(policy, settings.initial_percent, wall), None),
            Err(e) => (Rollout::idle(policy, 0.0, wall), Some(e.to_string())),
        };
        let (tx, commands) = mpsc::channel(16);
        let mut me = Self {
            rollout,
            blocked,
            store,
            log,
            table,
            sources,
            board,
            last_prom_eval: None,
            commands,
            handle: Handle { tx },
            on_transition: settings.on_transition,
        };
        if let Some(reason) = &me.blocked {
            tracing::error!(%reason, "rollout blocked");
            me.rollout.state.canary_percent = 0.0;
            me.table.set_weight_bp(0);
        } else {
            me.table.set_weight_bp(RoutingHandle::percent_to_bp(
                me.rollout.state.canary_percent,
            ));
            if settings.autostart && me.rollout.state.phase == Phase::Idle {
                let t = me.rollout.start(wall);
                me.commit(vec![t], false, None);
            }
        }
        me.publish(Instant::now());
        me
    }

    /// Where operator commands go.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs a tick every second and serves operator commands until `shutdown`; persists the
    /// state on the way out.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.tick().await,
                Some(req) = self.commands.recv() => self.command(req),
                _ = shutdown.changed() => break,
            }
        }
        if self.blocked.is_none() && self.rollout.state.phase.is_live() {
            if let Err(e) = self.store.save(&self.rollout.state) {
                tracing::error!(error = %e, "could not persist the rollout state on shutdown");
            }
        }
    }

    pub fn state(&self) -> &crate::rollout::RolloutState {
        &self.rollout.state
    }

    /// Applies one operator command: commit and answer with the new status, or refuse.
    pub fn command(&mut self, req: Request) {
        let result = match &self.blocked {
            Some(err) => Err(Refusal {
                error: format!("the rollout is blocked: {err}"),
                hint: "fix or remove the state file, then restart canaryd".into(),
            }),
            None => match req.ask {
                Ask::Operator(ref cmd) => {
                    self.rollout
                        .apply(cmd, &req.reason, wall_ms())
                        .map(|transitions| {
                            if transitions.contains(&Transition::Started) {
                                // Query Prometheus at the next tick, not an interval later.
                                self.last_prom_eval = None;
                            }
                            self.commit(transitions, false, Some(&req.reason));
                            self.publish(Instant::now());
                            self.board.status()
                        })
                }
                Ask::ReplacePolicy(policy) => {
                    let name = policy.name.clone();
                    self.rollout.replace_policy(*policy).map(|()| {
                        tracing::info!(policy = %name, "policy reloaded");
                        self.log.append(json!({
                            "ts": rfc3339(wall_ms()),
                            "kind": "transition",
                            "action": "reload",
                            "policy": name,
                            "state": self.rollout.state.phase.as_str(),
                            "step": self.rollout.state.step,
                            "canary_percent": self.rollout.state.canary_percent,
                            "reason": "configuration reloaded (SIGHUP)",
                        }));
                        self.board.count_decision("reload");
                        self.publish(Instant::now());
                        self.board.status()
                    })
                }
            },
        };
        if let Err(r) = &result {
            tracing::info!(error = %r.error, "request to the controller refused");
        }
        let _ = req.reply.send(result);
    }

    /// One evaluation round.
    pub async fn tick(&mut self) {
        let now = Instant::now();
        if self.blocked.is_some() {
            self.publish(now);
            return;
        }
        let live = self.rollout.state.phase.is_live();
        let interval = self.rollout.policy.interval;
        let prom_due = self
            .last_prom_eval
            .is_none_or(|t| now.saturating_duration_since(t) >= interval);
        if live {
            for i in 0..self.rollout.policy.rules.len() {
                let rule = self.rollout.policy.rules[i].clone();
                if rule.source == SourceKind::Prometheus && !prom_due {
                    continue;
                }
                let (sample, raw) = self.evaluate(&rule).await;
                let max = self.rollout.policy.max_consecutive_errors;
                let rs = &mut self.rollout.rules[i];
                rs.baseline = raw;
                rs.observe(&rule, now, sample, max);
            }
        }
        if prom_due {
            self.last_prom_eval = Some(now);
        }
        let transitions = self.rollout.on_tick(now, wall_ms());
        if !transitions.is_empty() || (live && prom_due) {
            self.commit(transitions, live && prom_due, None);
        }
        self.publish(now);
    }

    /// Samples one rule (both variants for baseline rules), applying `min_requests`.
    async fn evaluate(&self, rule: &Rule) -> (Sample, Option<(Option<f64>, Option<f64>)>) {
        let p = &self.rollout.policy;
        let window = match rule.source {
            SourceKind::Local => rule.window,
            SourceKind::Prometheus => p.interval,
        };
        let min = rule.min_requests.unwrap_or(p.min_requests);
        if min > 0 && self.sources.requests(Variant::Canary, window) < min {
            return (Sample::NoData, None);
        }
        if rule.compare == Some(Compare::Baseline) {
            let canary = self.sources.sample(rule, Variant::Canary).await;
            let stable = self.sources.sample(rule, Variant::Stable).await;
            let value = |s: &Sample| match s {
                Sample::Value(v) => Some(*v),
                _ => None,
            };
            let raw = Some((value(&canary), value(&stable)));
            (baseline_ratio(&canary, &stable), raw)
        } else {
            (self.sources.sample(rule, Variant::Canary).await, None)
        }
    }

    /// Makes transitions durable and visible: persist, then swap, then log and notify.
    /// `operator` carries the operator's reason for operator actions.
    fn commit(&mut self, transitions: Vec<Transition>, evaluation: bool, operator: Option<&str>) {
        let state = &self.rollout.state;
        if let Err(e) = self.store.save(state) {
            // Without a durable state we must not move traffic towards the canary; moving
            // it away (rollback) is always safe.
            tracing::error!(error = %e, "could not persist the rollout state");
            let current = self.table.weight_bp();
            let wanted = RoutingHandle::percent_to_bp(state.canary_percent);
            if wanted < current {
                self.table.set_weight_bp(wanted);
            }
        } else {
            let wanted = RoutingHandle::percent_to_bp(state.canary_percent);
            if self.table.weight_bp() != wanted {
                self.table.set_weight_bp(wanted);
            }
        }
        let now = Instant::now();
        let rules = self.rules_json(now);
        for t in &transitions {
            let mut line = self.decision_line("transition", t.action(), Some(t), &rules);
            line["by"] = json!(if operator.is_some() {
                "operator"
            } else {
                "controller"
            });
            if let Some(reason) = operator {
                line["operator_reason"] = json!(reason);
            }
            if let Some(hook) = &self.on_transition {
                hook(&line);
            }
            tracing::info!(
                action = t.action(),
                phase = self.rollout.state.phase.as_str(),
                step = self.rollout.state.step,
                canary_percent = self.rollout.state.canary_percent,
                reason = %self.rollout.state.reason,
                "rollout decision"
            );
            self.board.count_decision(t.action());
            self.log.append(line);
        }
        if evaluation && transitions.is_empty() {
            let action = self.evaluation_action();
            self.board.count_decision(action);
            self.log
                .append(self.decision_line("evaluation", action, None, &rules));
        }
    }

    /// What an evaluation without a transition amounts to.
    fn evaluation_action(&self) -> &'static str {
        match self.rollout.state.phase {
            Phase::Progressing if self.rollout.is_holding() => "hold",
            Phase::Progressing => "healthy",
            Phase::Paused => "paused",
            Phase::RollingBack => "rolling_back",
            _ => "none",
        }
    }

    fn decision_line(
        &self,
        kind: &str,
        action: &str,
        t: Option<&Transition>,
        rules: &Value,
    ) -> Value {
        let s = &self.rollout.state;
        let mut line = json!({
            "ts": rfc3339(wall_ms()),
            "kind": kind,
            "action": action,
            "state": s.phase.as_str(),
            "policy": s.policy,
            "step": s.step,
            "canary_percent": s.canary_percent,
            "held_s": s.held_ms as f64 / 1000.0,
            "reason": s.reason,
            "rules": rules,
        });
        match t {
            Some(Transition::Advanced { from, to }) => {
                line["from_step"] = json!(from);
                line["to_step"] = json!(to);
            }
            Some(Transition::RollbackStarted { rules, gradual }) => {
                line["failed_rules"] = json!(rules);
                line["gradual"] = json!(gradual);
            }
            Some(Transition::HoldBegin { reasons }) => line["hold_reasons"] = json!(reasons),
            Some(Transition::Alert { rule }) => line["alert_rule"] = json!(rule),
            Some(Transition::WeightSet { percent }) => line["percent"] = json!(percent),
            _ => {}
        }
        line
    }

    fn rules_json(&self, now: Instant) -> Value {
        Value::Array(self.rule_views(now).into_iter().map(|v| v.json).collect())
    }

    fn rule_views(&self, now: Instant) -> Vec<RuleView> {
        self.rollout
            .policy
            .rules
            .iter()
            .zip(&self.rollout.rules)
            .map(|(r, s)| {
                let (canary, stable) = s.baseline.unwrap_or((None, None));
                let breaching = s.breaching_for(now).as_secs_f64();
                let mut json = json!({
                    "name": r.name,
                    "source": match r.source { SourceKind::Local => "local", SourceKind::Prometheus => "prometheus" },
                    "value": s.value,
                    "threshold": r.fail_when.to_string(),
                    "outcome": s.outcome.map(|o| o.as_str()),
                    "breaching_for_s": breaching,
                    "for_s": r.for_.as_secs_f64(),
                    "on_fail": format!("{:?}", r.on_fail).to_lowercase(),
                    "dry_run": r.dry_run,
                });
                if r.compare.is_some() {
                    json["compare"] = json!("baseline");
                    json["canary_value"] = json!(canary);
                    json["stable_value"] = json!(stable);
                }
                if let Some(e) = &s.error {
                    json["error"] = json!(e);
                }
                RuleView {
                    name: r.name.clone(),
                    value: s.value,
                    canary,
                    stable,
                    outcome: s.outcome,
                    breaching_for_s: breaching,
                    json,
                }
            })
            .collect()
    }

    fn publish(&self, now: Instant) {
        let r = &self.rollout;
        let s = &r.state;
        let state = if self.blocked.is_some() {
            "blocked"
        } else {
            s.phase.as_str()
        };
        let status = json!({
            "state": state,
            "error": self.blocked,
            "policy": r.policy.name,
            "step": s.step,
            "steps": r.policy.weights(),
            "canary_percent": s.canary_percent,
            "step_started_at": rfc3339(s.step_started_at_ms),
            "step_hold_s": r.current_hold().as_secs_f64(),
            "step_held_s": s.held_ms as f64 / 1000.0,
            "step_hold_remaining_s": r.hold_remaining().as_secs_f64(),
            "reason": s.reason,
            "updated_at": rfc3339(s.updated_at_ms),
            "rules": self.rules_json(now),
            "last_decision": self.log.last(),
        });
        self.board.publish(
            status,
            Some(s.phase),
            self.blocked.is_some(),
            s.step,
            self.rule_views(now),
        );
    }
}

#[cfg(test)]
mod tests;
