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

mod board;
mod handle;
mod prometheus;
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
pub use sources::{LiveSources, Sources};

use crate::api::{
    Action, By, Decision, Kind, RolloutStatus, RuleSamples, RuleStatus, State, Status,
};
use crate::policy::{
    baseline_ratio, sequential, traffic, Compare, Policy, Rule, Sample, SourceKind, Traffic,
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

/// A PromQL rule's sample, back from its task.
#[derive(Debug)]
struct Sampled {
    /// [`Controller::epoch`] when the sample was asked for.
    epoch: u64,
    rule: usize,
    sample: Sample,
    /// Baseline rules: the canary's and stable's raw values.
    raw: Option<(Option<f64>, Option<f64>)>,
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
}

/// Where the step's counts start: the epoch and split they belong to, and the counters then.
#[derive(Debug, Clone, Copy)]
struct StepBase {
    epoch: u64,
    weight_bp: u16,
    traffic: Traffic,
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

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
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
        Self::build(Some(policy), settings, store, log, table, sources, board)
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
        Self::build(None, settings, store, log, table, sources, board)
    }

    fn build(
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
    /// state on the way out.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.tick().await,
                Some(req) = self.commands.recv() => self.command(req).await,
                Some(sampled) = self.sampled.recv() => self.on_sampled(sampled).await,
                _ = shutdown.changed() => break,
            }
        }
        if self.blocked.is_none() && self.rollout.state.phase.is_live() {
            if let Err(e) = self.save().await {
                tracing::error!(error = %e, "could not persist the rollout state on shutdown");
            }
        }
    }

    pub fn state(&self) -> &crate::rollout::RolloutState {
        &self.rollout.state
    }

    /// Applies one operator command: commit and answer with the new status, or refuse.
    pub async fn command(&mut self, req: Request) {
        let result = match &self.blocked {
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

    /// `start` while blocked: the operator fixed or removed the state file. Read it again: still
    /// unusable → refused, naming it; removed → a new rollout from the first step, as `start`
    /// does; fixed → the rollout continues from the file as written (and a finished or idle one
    /// starts a new run).
    async fn unblock(&mut self, reason: &str) -> Result<Status, Refusal> {
        let loaded = self.on_disk(|store| store.load()).await;
        let loaded = if self.manual {
            manual_split(loaded, wall_ms())
        } else {
            loaded
        };
        let policy = self.rollout.policy.clone();
        let (rollout, blocked) = restore(policy, loaded, &self.store, 0.0, wall_ms());
        if let Some(err) = blocked {
            tracing::info!(reason = %err, "the rollout is still blocked");
            self.blocked = Some(err.clone());
            self.publish(Instant::now());
            return Err(Refusal {
                error: format!("the rollout is still blocked: {err}"),
                hint: BLOCKED_HINT.into(),
            });
        }
        tracing::info!(
            phase = rollout.state.phase.as_str(),
            step = rollout.state.step,
            canary_percent = rollout.state.canary_percent,
            "rollout unblocked by the operator's start"
        );
        self.blocked = None;
        self.rollout = rollout;
        self.moved_on();
        self.table.set_weight_bp(RoutingHandle::percent_to_bp(
            self.rollout.state.canary_percent,
        ));
        if self.manual {
            // Nothing to start: the file's split is in force again.
            self.publish(Instant::now());
            return Ok(self.board.status());
        }
        let before = self.rollout.state.clone();
        match self.rollout.apply(&Command::Start, reason, wall_ms()) {
            Ok(transitions) => {
                let applied = self.commit(before, transitions, false, Some(reason)).await;
                self.last_prom_eval = None;
                self.publish(Instant::now());
                if applied {
                    Ok(self.board.status())
                } else {
                    Err(self.not_applied())
                }
            }
            // A running rollout written back by the operator continues as it is.
            Err(_) => {
                self.publish(Instant::now());
                Ok(self.board.status())
            }
        }
    }

    /// The answer to an operator command that would have moved traffic towards the canary
    /// when the state could not be saved.
    fn not_applied(&self) -> Refusal {
        Refusal {
            error: self
                .save_error
                .clone()
                .unwrap_or_else(|| "the rollout state could not be saved: not applied".into()),
            hint: "make state_dir writable again (disk space, permissions, mount), then repeat \
                   the command; `canaryd status` shows `save_error` until a save succeeds"
                .into(),
        }
    }

    /// One evaluation round: local rules are judged now; due PromQL rules are asked for, and
    /// whatever of them has already answered is judged with them.
    pub async fn tick(&mut self) {
        let now = Instant::now();
        if self.blocked.is_some() {
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

    /// A PromQL sample arriving between ticks: judged at once, so a failing canary is rolled
    /// back as soon as Prometheus says so.
    async fn on_sampled(&mut self, sampled: Sampled) {
        let now = Instant::now();
        if !self.judge_sample(sampled, now) {
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
    fn judge_sample(&mut self, s: Sampled, now: Instant) -> bool {
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

    fn observe(
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
    fn step_traffic(&mut self) -> Option<Traffic> {
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

    /// Judges `test` rule `i` on the step's counts.
    fn observe_test(&mut self, i: usize, now: Instant, step: Option<Traffic>) {
        let p = &self.rollout.policy;
        let Some(rule) = p.rules.get(i) else { return };
        let min = rule.min_requests.unwrap_or(p.min_requests);
        let judgement = match (step, rule.margin) {
            (Some(t), Some(margin)) => {
                sequential::judge(t.canary, t.stable, margin, rule.alpha(), min)
            }
            _ => None,
        };
        if let Some(rs) = self.rollout.rules.get_mut(i) {
            rs.baseline = judgement.map(|j| (Some(j.canary.ratio()), Some(j.stable.ratio())));
            rs.observe_test(rule, now, judgement);
        }
    }

    /// The traffic-share check, while a step progresses or awaits approval (`traffic_check`).
    fn check_traffic(&mut self, step: Option<Traffic>) {
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
    fn gate(&self, i: usize) -> Option<Sample> {
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
    fn ask_prometheus(&mut self, i: usize, now: Instant) {
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
    fn moved_on(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.in_flight = vec![false; self.rollout.policy.rules.len()];
    }

    /// Writes the state on the blocking pool: the loop waits for the disk, the runtime's
    /// worker (admin API, health checks) does not.
    async fn save(&self) -> Result<(), StateError> {
        let state = self.rollout.state.clone();
        self.on_disk(move |store| store.save(&state)).await
    }

    /// Runs a state-file operation on the blocking pool.
    async fn on_disk<T: Send + 'static>(
        &self,
        op: impl FnOnce(&StateStore) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let store = self.store.clone();
        let file = store.path().display().to_string();
        tokio::task::spawn_blocking(move || op(&store))
            .await
            .unwrap_or_else(|e| {
                Err(StateError::Write {
                    file,
                    source: std::io::Error::other(e.to_string()),
                })
            })
    }

    /// While the state in force is not on disk, every tick tries to save it again.
    async fn retry_save(&mut self) {
        match self.save().await {
            Ok(()) => {
                tracing::info!("rollout state saved again");
                self.save_error = None;
                self.unapplied_logged.clear();
            }
            Err(e) => tracing::debug!(error = %e, "rollout state still cannot be saved"),
        }
    }

    /// Makes transitions durable and visible: persist, then swap, then log and notify.
    /// `before` is the state before the transitions; `operator` carries the operator's reason
    /// for operator actions. Answers whether the move was applied.
    ///
    /// When the state cannot be saved, traffic may still move towards stable (always safe) but
    /// never towards the canary: such a move is not applied, and the rollout's state goes back
    /// to `before` — what is in force — so that nothing (status, decision line, webhook, the
    /// next tick's hold clock) takes a split for real that no request sees. An automatic
    /// advance or promotion is then retried by the next tick, as if it had not been due yet,
    /// and goes through once a save succeeds; an operator's command is refused and must be
    /// repeated. Keeping the wanted state instead would let its step's hold run (and the
    /// rollout advance further) at a split the canary never served, then jump there at once
    /// when the disk came back. Either way `save_error` says what happened, in the status
    /// until a save succeeds (retried every tick) and in the decision lines of the commit.
    async fn commit(
        &mut self,
        before: RolloutState,
        transitions: Vec<Transition>,
        evaluation: bool,
        operator: Option<&str>,
    ) -> bool {
        let saved = self.save().await;
        self.apply_commit(saved, before, transitions, evaluation, operator)
    }

    /// [`Self::commit`] once the save is done: swap (or not), log, notify.
    fn apply_commit(
        &mut self,
        saved: Result<(), StateError>,
        before: RolloutState,
        transitions: Vec<Transition>,
        evaluation: bool,
        operator: Option<&str>,
    ) -> bool {
        let current = self.table.weight_bp();
        let wanted = RoutingHandle::percent_to_bp(self.rollout.state.canary_percent);
        // A new run or another step: samples asked for before judged another split.
        let moved_on =
            before.step != self.rollout.state.step || transitions.contains(&Transition::Started);
        let applied = match saved {
            Ok(()) => {
                if self.save_error.take().is_some() {
                    tracing::info!("rollout state saved again");
                }
                self.unapplied_logged.clear();
                if current != wanted {
                    self.table.set_weight_bp(wanted);
                }
                true
            }
            Err(e) if wanted <= current => {
                if wanted < current {
                    self.table.set_weight_bp(wanted);
                }
                tracing::error!(error = %e, "could not persist the rollout state; the decision is in force, not saved");
                self.save_error = Some(format!(
                    "{e}; in force but not saved: a restart now would resume the state saved last"
                ));
                true
            }
            Err(e) => {
                self.rollout.state = before;
                if transitions
                    .iter()
                    .any(|t| matches!(t, Transition::Advanced { .. } | Transition::Promoted))
                {
                    // The step's hold was served: say so rather than the second before it.
                    let hold = self.rollout.current_hold().as_millis() as u64;
                    let held = &mut self.rollout.state.held_ms;
                    *held = (*held).max(hold);
                }
                let in_force = f64::from(current) / 100.0;
                if RoutingHandle::percent_to_bp(self.rollout.state.canary_percent) != current {
                    self.rollout.state.canary_percent = in_force;
                }
                tracing::error!(error = %e, canary_percent = in_force, "could not persist the rollout state; the move towards the canary is not applied");
                self.save_error =
                    Some(format!("{e}; not applied: the split stays at {in_force} %"));
                false
            }
        };
        if applied && moved_on {
            self.moved_on();
        }
        let now = Instant::now();
        let rules = self.rule_statuses(now);
        for t in &transitions {
            let action = t.action();
            // An automatic move the rollout retries every tick is logged once per failure.
            let retried = !applied
                && operator.is_none()
                && matches!(action, Action::Advance | Action::Promote);
            if retried {
                if self.unapplied_logged.contains(&action) {
                    continue;
                }
                self.unapplied_logged.push(action);
            }
            let mut line = self.decision_line(Kind::Transition, action, Some(t), &rules);
            line.by = Some(if operator.is_some() {
                By::Operator
            } else {
                By::Controller
            });
            line.operator_reason = operator.map(str::to_string);
            if let Some(hook) = &self.on_transition {
                hook(&line);
            }
            tracing::info!(
                action = action.as_str(),
                phase = self.rollout.state.phase.as_str(),
                step = self.rollout.state.step,
                canary_percent = self.rollout.state.canary_percent,
                reason = %self.rollout.state.reason,
                alert_rule = line.alert_rule.as_deref(),
                save_error = self.save_error.as_deref(),
                "rollout decision"
            );
            self.board.count_decision(action);
            self.log.append(&line);
        }
        if evaluation && transitions.is_empty() {
            let action = self.evaluation_action();
            self.board.count_decision(action);
            self.log
                .append(&self.decision_line(Kind::Evaluation, action, None, &rules));
        }
        applied
    }

    /// What an evaluation without a transition amounts to.
    fn evaluation_action(&self) -> Action {
        match self.rollout.state.phase {
            // Awaiting approval: the rules are judged as while progressing (the line's
            // `state` says it waits).
            Phase::Progressing | Phase::AwaitingApproval if self.rollout.is_holding() => {
                Action::Hold
            }
            Phase::Progressing | Phase::AwaitingApproval => Action::Healthy,
            Phase::Paused => Action::Paused,
            Phase::RollingBack => Action::RollingBack,
            _ => Action::None,
        }
    }

    /// A decision line for the rollout as it is (in force) now; `save_error` is the commit's.
    fn decision_line(
        &self,
        kind: Kind,
        action: Action,
        t: Option<&Transition>,
        rules: &[RuleStatus],
    ) -> Decision {
        let s = &self.rollout.state;
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
            operator_reason: None,
            percent: None,
            policy: s.policy.clone(),
            reason: s.reason.clone(),
            rules: Some(rules.to_vec()),
            save_error: self.save_error.clone(),
            state: s.phase,
            step: s.step,
            to_step: None,
            ts: rfc3339(wall_ms()),
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

    /// Every rule of the policy as published, in the policy's order.
    fn rule_statuses(&self, now: Instant) -> Vec<RuleStatus> {
        self.rollout
            .policy
            .rules
            .iter()
            .zip(&self.rollout.rules)
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

    fn publish(&self, now: Instant) {
        let r = &self.rollout;
        let s = &r.state;
        let status = RolloutStatus {
            canary_percent: s.canary_percent,
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
    }
}

/// What a blocked rollout's refusals suggest.
const BLOCKED_HINT: &str = "fix or remove the state file, then run `canaryd start` (a fixed file \
     is continued as written, a removed one starts a new rollout)";

/// The rollout a loaded state file gives: the persisted rollout (the persisted split wins over
/// `initial_percent`), an idle one when there is no file, or — when the file cannot be read or
/// names a step the policy lacks — an idle one at 0 % and why it is blocked.
fn restore(
    policy: Policy,
    loaded: Result<Option<RolloutState>, StateError>,
    store: &StateStore,
    initial_percent: f64,
    wall: u64,
) -> (Rollout, Option<String>) {
    match loaded {
        Ok(Some(state)) => {
            if state.policy != policy.name {
                tracing::warn!(persisted = %state.policy, configured = %policy.name, "the persisted rollout ran another policy; continuing it with the configured one");
            }
            // (Manual mode's stand-in policy has no steps, and its state no step to check.)
            if !policy.steps.is_empty() && state.step >= policy.steps.len() {
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
        Ok(None) => (Rollout::idle(policy, initial_percent, wall), None),
        Err(e) => (Rollout::idle(policy, 0.0, wall), Some(e.to_string())),
    }
}

/// Manual mode keeps the split of whatever ran before (a rollout, or an earlier manual split)
/// and nothing else: no phase, no step.
fn manual_split(
    loaded: Result<Option<RolloutState>, StateError>,
    wall: u64,
) -> Result<Option<RolloutState>, StateError> {
    loaded.map(|state| {
        state.map(|persisted| {
            let mut idle = Rollout::idle(Policy::manual(), persisted.canary_percent, wall);
            idle.state.reason = persisted.reason;
            idle.state
        })
    })
}

/// Samples one rule: the canary, or both variants at once for baseline rules.
async fn sample_rule<S: Sources>(
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

#[cfg(test)]
mod tests;
