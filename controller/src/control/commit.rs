//! Making a move durable and visible: persist the state (on the blocking pool), then swap the
//! routing table, then log and notify. When the state cannot be saved, a move towards stable is
//! still applied and a move towards the canary is not (the rollout goes back to what is in
//! force), and `save_error` says so until a save succeeds.

use super::*;

// === impl Controller ===

impl<S: Sources + Clone + 'static> Controller<S> {
    /// The answer to an operator command that would have moved traffic towards the canary
    /// when the state could not be saved.
    pub(super) fn not_applied(&self) -> Refusal {
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

    /// Writes the state on the blocking pool: the loop waits for the disk, the runtime's
    /// worker (admin API, health checks) does not.
    pub(super) async fn save(&self) -> Result<(), StateError> {
        let state = self.rollout.state.clone();
        let local = state.clone();
        self.on_disk(move |store| store.save(&local)).await?;
        // A fleet's leader: then etcd, fenced (`fleet.rs`); nothing without a cluster.
        self.save_shared(state).await
    }

    /// Runs a state-file operation on the blocking pool.
    pub(super) async fn on_disk<T: Send + 'static>(
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
    pub(super) async fn retry_save(&mut self) {
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
    pub(super) async fn commit(
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
    pub(super) fn apply_commit(
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
                let shadow = RoutingHandle::percent_to_bp(self.rollout.current_shadow());
                if current != wanted || self.table.shadow_bp() != shadow {
                    self.table.set_split(wanted, shadow);
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
}
