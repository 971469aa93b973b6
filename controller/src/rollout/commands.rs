//! Operator commands: what each one does in each phase (`Rollout::apply`), and why a refused
//! one is refused — the `{error, hint}` the admin API answers with 409. The status page's
//! buttons follow the same rules.

use super::*;

// === impl Rollout ===

impl Rollout {
    /// Applies an operator command, or says why the current state forbids it.
    ///
    /// A pause remembers what it stopped (`paused_from`): `resume` goes back to progressing
    /// (at the step's weight), to awaiting approval (at the step's weight) or to the gradual
    /// rollback (at the split in force). A rollout paused during a gradual rollback cannot be
    /// promoted, like one rolling back.
    pub fn apply(
        &mut self,
        cmd: &Command,
        reason: &str,
        wall_ms: u64,
    ) -> Result<Vec<Transition>, Refusal> {
        use Phase::*;
        let phase = self.state.phase;
        let refuse = |error: String, hint: &str| {
            Err(Refusal {
                error,
                hint: hint.to_string(),
            })
        };
        let by = |what: &str| {
            if reason.is_empty() {
                format!("operator: {what}")
            } else {
                format!("operator: {what}: {reason}")
            }
        };
        let step_weight = self
            .policy
            .steps
            .get(self.state.step)
            .map_or(0.0, |s| s.weight);
        let out = match cmd {
            Command::Start => match phase {
                Progressing | AwaitingApproval | Paused | RollingBack => {
                    return refuse(
                        format!("a rollout is already {} (step {}, {} % canary)", phase.as_str(), self.state.step, self.state.canary_percent),
                        "abort or roll it back first, or pause / resume it",
                    )
                }
                _ => {
                    let t = self.start(wall_ms);
                    self.state.reason = by("started");
                    vec![t]
                }
            },
            Command::Pause => match phase {
                Progressing | AwaitingApproval | RollingBack => {
                    self.state.phase = Paused;
                    self.state.paused_from = Some(phase);
                    self.state.reason = match phase {
                        RollingBack => by(&format!("paused the gradual rollback at {} % (a new failing rule still rolls back to 0 %)", self.state.canary_percent)),
                        AwaitingApproval => by("paused while awaiting approval"),
                        _ => by("paused"),
                    };
                    vec![Transition::Paused]
                }
                Paused => return refuse("the rollout is already paused".into(), "resume it with `canaryd resume`"),
                _ => return refuse(format!("nothing to pause: the rollout is {}", phase.as_str()), "start a rollout with `canaryd start`"),
            },
            Command::Resume => match phase {
                Paused => {
                    let back = self.paused_from();
                    self.state.phase = back;
                    self.state.paused_from = None;
                    self.holding = false;
                    self.last_tick = None;
                    match back {
                        // The drain goes on from the split in force.
                        RollingBack => self.state.reason = by("resumed the gradual rollback"),
                        AwaitingApproval => {
                            self.state.canary_percent = step_weight;
                            self.state.reason = by("resumed: awaiting approval");
                        }
                        _ => {
                            // Back to the step's weight (a manual set-weight is undone).
                            self.state.canary_percent = step_weight;
                            self.state.reason = by("resumed");
                        }
                    }
                    vec![Transition::Resumed]
                }
                Progressing | AwaitingApproval => return refuse("the rollout is not paused".into(), "nothing to do; `canaryd pause` pauses it"),
                _ => return refuse(format!("nothing to resume: the rollout is {}", phase.as_str()), "start a new rollout with `canaryd start`"),
            },
            Command::Promote => match phase {
                Paused if self.paused_from() == RollingBack => {
                    return refuse(
                        format!("the rollout is paused during a gradual rollback ({}); promoting now would send all traffic to a canary that failed", self.state.reason),
                        "start a new rollout with `canaryd start` once the canary is fixed, or `canaryd set-weight 100` to force it",
                    )
                }
                Progressing | AwaitingApproval | Paused => {
                    self.state.phase = Promoted;
                    self.state.paused_from = None;
                    self.state.canary_percent = 100.0;
                    self.state.reason = by("promoted");
                    vec![Transition::Promoted]
                }
                RolledBack | Aborted | RollingBack => {
                    return refuse(
                        format!("the rollout was {} ({}); promoting now would send all traffic to a canary that failed", phase.as_str(), self.state.reason),
                        "start a new rollout with `canaryd start` once the canary is fixed, or `canaryd set-weight 100` to force it",
                    )
                }
                Promoted => return refuse("the rollout is already promoted".into(), "nothing to do"),
                Idle => return refuse("no rollout is running".into(), "start one with `canaryd start`"),
            },
            Command::Rollback => match phase {
                Progressing | AwaitingApproval | Paused | RollingBack | Promoted => {
                    self.state.phase = RolledBack;
                    self.state.paused_from = None;
                    self.state.canary_percent = 0.0;
                    self.state.reason = by("rolled back");
                    vec![Transition::RollbackStarted { rules: vec![], gradual: false }, Transition::RolledBack]
                }
                RolledBack => return refuse("the rollout is already rolled back".into(), "start a new rollout with `canaryd start`"),
                _ => return refuse(format!("nothing to roll back: the rollout is {}", phase.as_str()), "`canaryd set-weight 0` sets the split by hand"),
            },
            Command::Abort => match phase {
                Progressing | AwaitingApproval | Paused | RollingBack => {
                    self.state.phase = Aborted;
                    self.state.paused_from = None;
                    self.state.canary_percent = 0.0;
                    self.state.reason = by("aborted");
                    vec![Transition::Aborted]
                }
                _ => return refuse(format!("nothing to abort: the rollout is {}", phase.as_str()), "abort stops a running rollout"),
            },
            Command::SetWeight(p) => {
                if !(0.0..=100.0).contains(p) {
                    return refuse(format!("percent must be between 0 and 100, found {p}"), "e.g. {\"percent\": 25}");
                }
                self.state.canary_percent = *p;
                if matches!(phase, Progressing | AwaitingApproval | RollingBack) {
                    self.state.phase = Paused;
                    self.state.paused_from = Some(phase);
                }
                self.state.reason = by(&format!("split set to {p} %"));
                vec![Transition::WeightSet { percent: *p }]
            }
            Command::Approve => return self.approve(reason, wall_ms),
        };
        self.touch(wall_ms);
        Ok(out)
    }

    /// `approve`: only while awaiting approval and only while every acting rule is healthy
    /// (never move traffic towards a canary that holds, fails or has not been judged yet).
    fn approve(&mut self, reason: &str, wall_ms: u64) -> Result<Vec<Transition>, Refusal> {
        let step = self.state.step;
        let refuse = |error: String, hint: &str| {
            Err(Refusal {
                error,
                hint: hint.to_string(),
            })
        };
        match self.state.phase {
            Phase::AwaitingApproval => {}
            Phase::Progressing if self.policy.needs_approval(step) => {
                return refuse(
                    format!(
                        "step {step} is still serving its hold ({} of {} held): there is nothing to approve yet",
                        humantime::format_duration(Duration::from_secs(self.state.held_ms / 1000)),
                        humantime::format_duration(self.current_hold())
                    ),
                    "approve once `canaryd status` says awaiting_approval; `canaryd promote` ends the rollout now",
                )
            }
            Phase::Progressing => {
                return refuse(
                    format!("step {step} does not wait for approval (no `approval = true` in the policy): it moves on by itself once its hold is met"),
                    "nothing to approve; `canaryd promote` ends the rollout now",
                )
            }
            Phase::Paused => {
                return refuse(
                    format!(
                        "the rollout is paused (it was {}): approve moves on only from awaiting_approval",
                        self.paused_from().as_str()
                    ),
                    "`canaryd resume` first; once `canaryd status` says awaiting_approval, `canaryd approve`",
                )
            }
            Phase::RollingBack => {
                return refuse(
                    format!("the rollout is rolling back ({}); approving would move traffic towards a canary that failed", self.state.reason),
                    "start a new rollout with `canaryd start` once the canary is fixed",
                )
            }
            other => {
                return refuse(
                    format!("nothing to approve: the rollout is {}", other.as_str()),
                    "approve moves on a rollout that is awaiting_approval; `canaryd start` starts one",
                )
            }
        }
        let not_healthy = self.not_healthy();
        if !not_healthy.is_empty() {
            return refuse(
                format!(
                    "the canary is not healthy right now ({}): approving would move traffic towards it",
                    not_healthy.join(", ")
                ),
                "wait until the hold ends (`canaryd status` shows each rule), then approve; `canaryd promote` or `canaryd set-weight` override the rules",
            );
        }
        let by = |what: String| {
            if reason.is_empty() {
                format!("operator: {what}")
            } else {
                format!("operator: {what}: {reason}")
            }
        };
        let mut out = vec![Transition::Approved];
        self.state.phase = Phase::Progressing;
        self.holding = false;
        self.last_tick = None;
        self.move_on(
            by(format!("approved step {step}, moved to step {}", step + 1)),
            by(format!("approved step {step}: promoted")),
            wall_ms,
            &mut out,
        );
        self.touch(wall_ms);
        Ok(out)
    }
}
