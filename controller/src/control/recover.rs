//! The rollout a state file gives at start-up or when an operator's `start` recovers a blocked
//! rollout: the persisted rollout, an idle one, or blocked (100 % stable) with the reason; in
//! manual mode only the persisted split is kept.

use super::*;

// === impl Controller ===

impl<S: Sources + Clone + 'static> Controller<S> {
    /// `start` while blocked: the operator fixed or removed the state file. Read it again: still
    /// unusable → refused, naming it; removed → a new rollout from the first step, as `start`
    /// does; fixed → the rollout continues from the file as written (and a finished or idle one
    /// starts a new run).
    pub(super) async fn unblock(&mut self, reason: &str) -> Result<Status, Refusal> {
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
}

/// What a blocked rollout's refusals suggest.
pub(super) const BLOCKED_HINT: &str =
    "fix or remove the state file, then run `canaryd start` (a fixed file \
     is continued as written, a removed one starts a new rollout)";

/// The rollout a loaded state file gives: the persisted rollout (the persisted split wins over
/// `initial_percent`), an idle one when there is no file, or — when the file cannot be read or
/// names a step the policy lacks — an idle one at 0 % and why it is blocked.
pub(super) fn restore(
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
pub(super) fn manual_split(
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
