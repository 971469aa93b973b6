//! The controller loop: every second, judge the rules that are due (local rules every second,
//! PromQL rules every policy `interval`), let the rollout move, and make every move atomic —
//! persist the new state, then swap the routing table, then log the decision.
//!
//! **The loop never waits on Prometheus.** A due PromQL rule is sampled by a task of its own,
//! at most one per rule at a time, with a deadline; its sample comes back through a channel
//! and is judged when it arrives. A sample that arrives after the rollout moved on (another
//! run, another step, another policy) is dropped. So local rules, operator commands, reloads
//! and the stop are served whatever Prometheus does (slow, hanging, refusing, garbage). The
//! state file is written on the blocking pool — the loop waits for it, the runtime's worker
//! does not — and always before the routing table is swapped.
//!
//! Where the metrics come from is behind [`Sources`]: [`LiveSources`] asks Prometheus and
//! reads the proxy's own sliding windows; unit tests script the values and run on virtual time.
//!
//! Here: the loop (`run`, `tick`, `command`). Beside it: `sampling` (judging samples, PromQL
//! tasks, step counts), `commit` (persist, swap, log), `report` (decision lines, the status),
//! `recover` (state file → rollout, blocked recovery, manual mode's split), `handle` (commands
//! in), `board` (status and metrics out), `sources` and `prometheus` (where values come from),
//! `replay` (the same rules and state machine over history, for `canaryd replay`).

mod board;
mod commit;
mod fleet;
mod handle;
mod prometheus;
mod recover;
mod replay;
mod report;
mod sampling;
mod sources;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use canaryd_proxy::{RoutingHandle, Variant};
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant, MissedTickBehavior};

pub use board::Board;
pub use handle::{Ask, Handle, Request};
use prometheus::short_query;
pub use prometheus::{render, PromClient, PromError};
pub use replay::{replay, ReplayError};
pub(crate) use report::rfc3339;
pub(crate) use sources::traffic_of;
pub use sources::{LiveSources, Sources};

use recover::{manual_split, restore, BLOCKED_HINT};
use sampling::{sample_rule, Sampled, StepBase};

use crate::api::{
    Action, By, Decision, Kind, RolloutStatus, RuleLatency, RuleSamples, RuleStatus, State, Status,
};
use crate::policy::{
    baseline_ratio, mann_whitney, sequential, traffic, Compare, Policy, Rule, Sample, SourceKind,
    TestKind, Traffic,
};
use crate::rollout::{Command, Phase, Refusal, Rollout, RolloutState, Transition};
use crate::store::{DecisionLog, StateError, StateStore};

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
pub type DecisionHook = Arc<dyn Fn(&Decision) + Send + Sync>;

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
    /// Set while the rollout's state is not on disk: why the last save failed (and whether
    /// its decision was applied). Published as `save_error`; cleared by the next good save.
    save_error: Option<String>,
    /// Automatic moves towards the canary already logged as not applied during the current
    /// run of failed saves: the rollout retries them every tick, they are logged once.
    unapplied_logged: Vec<Action>,
    /// Changes whenever a sample asked for now could no longer be judged (a new run, another
    /// step or phase, a reloaded policy): samples of an older epoch are dropped.
    epoch: u64,
    /// Per PromQL rule: a sample of this epoch is on its way (one at a time per rule).
    in_flight: Vec<bool>,
    /// No policy: only `set-weight` ([`Controller::manual`]).
    manual: bool,
    sampled_tx: mpsc::UnboundedSender<Sampled>,
    sampled: mpsc::UnboundedReceiver<Sampled>,
    /// The proxy's counters when the current step (at the split in force) began: `test` rules
    /// and the traffic-share check judge what was counted since.
    step_base: Option<StepBase>,
    /// A fleet's member (`fleet.rs`); `None` on a single machine.
    cluster: Option<crate::cluster::ClusterLink>,
    /// A fleet: this member acted at the last look (took over, not yet stepped down).
    leading: bool,
    /// A fleet: the epoch of the shared split this member applies.
    applied_epoch: u64,
    /// A fleet: `[rollout] autostart`, applied by a leader that finds no shared rollout.
    fleet_autostart: bool,
}

impl<S> std::fmt::Debug for Controller<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("state", &self.rollout.state)
            .field("blocked", &self.blocked)
            .field("save_error", &self.save_error)
            .finish_non_exhaustive()
    }
}

pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// === impl Controller ===

impl<S: Sources + Clone + 'static> Controller<S> {
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
        Self::with_policy(Some(policy), settings, store, log, table, sources, board)
    }

    /// Manual mode, without a policy: the split is the operator's (`set-weight`), persisted,
    /// logged and notified like a rollout's; every other command is refused, nothing is
    /// judged. The persisted split (of an earlier manual split or rollout) wins over
    /// `initial_percent`.
    pub fn manual(
        settings: Settings,
        store: StateStore,
        log: Arc<DecisionLog>,
        table: RoutingHandle,
        sources: S,
        board: Arc<Board>,
    ) -> Self {
        Self::with_policy(None, settings, store, log, table, sources, board)
    }

    /// [`Controller::new`] with a policy, [`Controller::manual`] without one.
    pub fn with_policy(
        policy: Option<Policy>,
        settings: Settings,
        store: StateStore,
        log: Arc<DecisionLog>,
        table: RoutingHandle,
        sources: S,
        board: Arc<Board>,
    ) -> Self {
        let wall = wall_ms();
        let manual = policy.is_none();
        let loaded = store.load();
        let loaded = if manual {
            manual_split(loaded, wall)
        } else {
            loaded
        };
        let policy = policy.unwrap_or_else(Policy::manual);
        let (rollout, blocked) = restore(policy, loaded, &store, settings.initial_percent, wall);
        let (tx, commands) = mpsc::channel(16);
        let (sampled_tx, sampled) = mpsc::unbounded_channel();
        let rules = rollout.policy.rules.len();
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
            save_error: None,
            unapplied_logged: Vec::new(),
            epoch: 0,
            in_flight: vec![false; rules],
            sampled_tx,
            sampled,
            manual,
            step_base: None,
            cluster: None,
            leading: false,
            applied_epoch: 0,
            fleet_autostart: false,
        };
        if let Some(reason) = &me.blocked {
            tracing::error!(%reason, "rollout blocked");
            me.rollout.state.canary_percent = 0.0;
            me.table.set_weight_bp(0);
        } else {
            me.table.set_weight_bp(RoutingHandle::percent_to_bp(
                me.rollout.state.canary_percent,
            ));
            if settings.autostart && !manual && me.rollout.state.phase == Phase::Idle {
                let before = me.rollout.state.clone();
                let t = me.rollout.start(wall);
                // Before anything is served, so the one synchronous save is fine here.
                let saved = me.store.save(&me.rollout.state);
                me.apply_commit(saved, before, vec![t], false, None);
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
    /// state on the way out and gives the controller back, so that it can run again (an
    /// upgrade that failed after stopping it). The time it was stopped does not count as held.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Self {
        self.rollout.clock_stopped();
        self.join();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.tick().await,
                Some(req) = self.commands.recv() => self.command(req).await,
                Some(sampled) = self.sampled.recv() => self.on_sampled(sampled).await,
                news = fleet::next(&mut self.cluster) => self.on_cluster(news).await,
                _ = shutdown.changed() => break,
            }
        }
        let acting = self.lead(Instant::now()).await;
        if acting && self.blocked.is_none() && self.rollout.state.phase.is_live() {
            if let Err(e) = self.save().await {
                tracing::error!(error = %e, "could not persist the rollout state on shutdown");
            }
        }
        self.leave().await;
        self
    }

    pub fn state(&self) -> &crate::rollout::RolloutState {
        &self.rollout.state
    }

    /// Applies one operator command: commit and answer with the new status, or refuse.
    pub async fn command(&mut self, req: Request) {
        let follower = matches!(req.ask, Ask::Operator(_)) && !self.lead(Instant::now()).await;
        let result = match &self.blocked {
            _ if follower => Err(self.follower_refusal()),
            Some(_) if matches!(req.ask, Ask::Operator(Command::Start)) => {
                self.unblock(&req.reason).await
            }
            Some(err) => Err(Refusal {
                error: format!("the rollout is blocked: {err}"),
                hint: BLOCKED_HINT.into(),
            }),
            None if self.manual && !matches!(req.ask, Ask::Operator(Command::SetWeight(_))) => {
                Err(Refusal {
                    error: "no rollout policy is configured: canaryd is in manual mode".into(),
                    hint: "`canaryd set-weight PERCENT` sets the split; set [rollout] policy \
                           and restart canaryd to run a rollout"
                        .into(),
                })
            }
            None => match req.ask {
                Ask::Operator(ref cmd) => {
                    let before = self.rollout.state.clone();
                    match self.rollout.apply(cmd, &req.reason, wall_ms()) {
                        Ok(transitions) => {
                            let started = transitions.contains(&Transition::Started);
                            let applied = self
                                .commit(before, transitions, false, Some(&req.reason))
                                .await;
                            self.publish(Instant::now());
                            if !applied {
                                Err(self.not_applied())
                            } else {
                                if started {
                                    // Query Prometheus at the next tick, not an interval later.
                                    self.last_prom_eval = None;
                                }
                                Ok(self.board.status())
                            }
                        }
                        Err(refusal) => Err(refusal),
                    }
                }
                Ask::ReplacePolicy(policy) => {
                    let name = policy.name.clone();
                    self.rollout.replace_policy(*policy).map(|()| {
                        // Samples asked for under the old policy name other rules.
                        self.moved_on();
                        tracing::info!(policy = %name, "policy reloaded");
                        let mut line =
                            self.decision_line(Kind::Transition, Action::Reload, None, &[]);
                        // A reload line carries neither `held_s` nor `rules` nor `by`.
                        (line.held_s, line.rules, line.save_error) = (None, None, None);
                        line.reason = "configuration reloaded (SIGHUP)".into();
                        self.log.append(&line);
                        self.board.count_decision(Action::Reload);
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

    /// One evaluation round: local rules are judged now; due PromQL rules are asked for, and
    /// whatever of them has already answered is judged with them.
    pub async fn tick(&mut self) {
        let now = Instant::now();
        // A fleet's follower judges nothing: it applies the leader's split.
        if self.blocked.is_some() || !self.lead(now).await {
            self.publish(now);
            return;
        }
        if self.save_error.is_some() {
            self.retry_save().await;
        }
        let live = self.rollout.state.phase.is_live();
        let interval = self.rollout.policy.interval;
        let prom_due = self
            .last_prom_eval
            .is_none_or(|t| now.saturating_duration_since(t) >= interval);
        if live {
            let step = self.step_traffic();
            self.check_traffic(step);
            for i in 0..self.rollout.policy.rules.len() {
                match self.rollout.policy.rules[i].source {
                    SourceKind::Local if self.rollout.policy.rules[i].test.is_some() => {
                        self.observe_test(i, now, step);
                    }
                    SourceKind::Local => {
                        let (sample, raw) = match self.gate(i) {
                            Some(no_data) => (no_data, None),
                            None => sample_rule(&self.sources, &self.rollout.policy.rules[i]).await,
                        };
                        self.observe(i, now, sample, raw);
                    }
                    SourceKind::Prometheus if prom_due => self.ask_prometheus(i, now),
                    SourceKind::Prometheus => {}
                }
            }
            // Let the sample tasks run up to their next wait: an answer that is already there
            // (or a source that needs no I/O) is judged in this round, as is one `run` has not
            // picked up yet (tests drive `tick` alone).
            tokio::task::yield_now().await;
            while let Ok(sampled) = self.sampled.try_recv() {
                self.judge_sample(sampled, now);
            }
        }
        if prom_due {
            self.last_prom_eval = Some(now);
        }
        let before = self.rollout.state.clone();
        let transitions = self.rollout.on_tick(now, wall_ms());
        if !transitions.is_empty() || (live && prom_due) {
            self.commit(before, transitions, live && prom_due, None)
                .await;
        }
        self.publish(now);
    }
}

#[cfg(test)]
mod tests;
