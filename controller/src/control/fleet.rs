//! The loop as a member of a fleet (`[cluster] store = "etcd"`): whether it acts, what it does
//! as a follower, taking over as the new leader, and where its saves go.
//!
//! Only the acting leader evaluates and commits; its saves write the local state file and
//! then the shared state in etcd, fenced (`cluster/store.rs`). A move towards stable (or the
//! same split) is in force at once and its write goes out in the background, the outcome
//! coming back as an event (`save_error` until a write succeeds, retried every tick); only a
//! move towards the canary waits for etcd, bounded by the write timeout, and is not applied
//! when etcd does not take it. A follower applies every shared
//! state the watch brings (table swapped, state file written, so a restart without etcd comes
//! back with the split) and refuses operator commands. A member cut off from etcd is never
//! the acting leader: it keeps the split it has and moves nothing until etcd is back.
//!
//! Without a cluster none of this runs and the loop is the single machine's.

use super::*;
use crate::cluster::{ClusterLink, Event, MemberState, SharedState};

// === impl Controller ===

impl<S: Sources + Clone + 'static> Controller<S> {
    /// Joins a fleet: from now on only the acting leader evaluates and commits, the others
    /// follow the shared state. `autostart` starts a rollout when a leader finds none in etcd.
    pub fn with_cluster(mut self, link: ClusterLink, autostart: bool) -> Self {
        self.cluster = Some(link);
        self.fleet_autostart = autostart;
        self.publish(Instant::now());
        self
    }

    /// Whether this member acts (always without a cluster), taking over or stepping down as
    /// leadership changed.
    pub(super) async fn lead(&mut self, now: Instant) -> bool {
        let Some(link) = &self.cluster else {
            return true;
        };
        let acting = link.leadership.borrow().acting(now).is_some();
        if acting && !self.leading {
            self.take_over().await;
        } else if !acting && self.leading {
            self.leading = false;
            self.moved_on();
            tracing::warn!("not the acting leader any more: this member stops judging and follows the shared state");
        }
        acting
    }

    /// The fence to write with, when acting.
    fn fence(&self) -> Option<i64> {
        let link = self.cluster.as_ref()?;
        let l = *link.leadership.borrow();
        l.acting(Instant::now())
    }

    /// Elected: continue the fleet's rollout from the shared state (or, when etcd has none
    /// yet, from this member's own: it is written as the first shared state).
    async fn take_over(&mut self) {
        self.leading = true;
        let shared = self.cluster.as_ref().and_then(|c| c.cluster.last_shared());
        let none_yet = shared.is_none();
        match shared {
            Some(s) => {
                tracing::info!(epoch = s.epoch, previous = %s.leader, canary_percent = s.state.canary_percent, phase = s.state.phase.as_str(), "elected: continuing the fleet's rollout");
                self.adopt(&s);
            }
            None => tracing::info!(
                canary_percent = self.rollout.state.canary_percent,
                "elected: no shared rollout in etcd yet; this member's state becomes it"
            ),
        }
        self.moved_on();
        self.last_prom_eval = None;
        let before = self.rollout.state.clone();
        let mut transitions = Vec::new();
        if none_yet
            && self.fleet_autostart
            && !self.manual
            && self.rollout.state.phase == Phase::Idle
        {
            transitions.push(self.rollout.start(wall_ms()));
        }
        if self.blocked.is_none() {
            self.commit(before, transitions, false, None).await;
        }
    }

    /// The shared state becomes this member's rollout (fresh rule states: judging starts anew).
    fn adopt(&mut self, s: &SharedState) {
        let policy = self.rollout.policy.clone();
        self.rollout = Rollout::resume(policy, s.state.clone());
        self.blocked = None;
        self.save_error = None;
        self.table.set_weight_bp(RoutingHandle::percent_to_bp(
            self.rollout.state.canary_percent,
        ));
        self.applied_epoch = s.epoch;
        if let Some(c) = &self.cluster {
            c.cluster.fleet().set_epoch(s.epoch);
        }
    }

    /// A background task's news.
    pub(super) async fn on_cluster(&mut self, news: News) {
        let now = Instant::now();
        let s = match news {
            News::Event(Event::Shared(s)) => s,
            News::Event(Event::Written(result)) => {
                self.written(result);
                self.publish(now);
                return;
            }
            News::Leadership => {
                self.lead(now).await;
                self.publish(now);
                return;
            }
        };
        if self.lead(now).await {
            // The leader's own write coming back (or an older one): it knows.
            return;
        }
        if s.epoch == self.applied_epoch && s.state == self.rollout.state {
            return;
        }
        let from = self.table.weight_bp();
        self.adopt(&s);
        if from != self.table.weight_bp() {
            tracing::info!(leader = %s.leader, epoch = s.epoch, canary_percent = s.state.canary_percent, "applied the fleet's split");
        }
        let state = self.rollout.state.clone();
        if let Err(e) = self.on_disk(move |store| store.save(&state)).await {
            tracing::error!(error = %e, "could not keep the fleet's split in the local state file");
        }
        self.publish(now);
    }

    /// A fleet's save: the local file, then (the acting leader only) etcd, fenced.
    pub(super) async fn save_shared(&self, state: RolloutState) -> Result<(), StateError> {
        let Some(link) = &self.cluster else {
            return Ok(());
        };
        let Some(fence) = self.fence() else {
            return Err(StateError::Shared {
                error: "this member is not the fleet's acting leader (or cannot reach etcd): not written".into(),
            });
        };
        // Towards stable, or the same split: in force now, whatever etcd does; the write goes
        // out in the background and its outcome comes back as an event (`on_cluster`).
        let wanted = RoutingHandle::percent_to_bp(state.canary_percent);
        let current = self.table.weight_bp();
        if wanted <= current {
            if wanted < current {
                self.table.set_weight_bp(wanted);
            }
            link.cluster.write_later(fence, &state);
            return Ok(());
        }
        // Towards the canary: only once etcd has it (bounded by the write timeout).
        match link.cluster.write(fence, &state).await {
            Ok(epoch) => {
                link.cluster.fleet().set_epoch(epoch);
                Ok(())
            }
            Err(e) => Err(StateError::Shared {
                error: e.to_string(),
            }),
        }
    }

    /// The outcome of a background write (a move that was in force already): the epoch now
    /// judged, or `save_error` until a write succeeds (every tick retries the save).
    fn written(&mut self, result: Result<u64, crate::cluster::WriteError>) {
        match result {
            Ok(epoch) => {
                if let Some(c) = &self.cluster {
                    c.cluster.fleet().set_epoch(epoch);
                }
                if self.save_error.take().is_some() {
                    tracing::info!("the shared rollout state is written again");
                    self.unapplied_logged.clear();
                }
            }
            Err(e) if self.leading => {
                let e = StateError::Shared {
                    error: e.to_string(),
                };
                tracing::error!(error = %e, "the shared rollout state was not written; the other members keep the split written last");
                self.save_error = Some(format!(
                    "{e}; in force on this member, not in etcd: the other members keep the split written last"
                ));
            }
            Err(e) => tracing::debug!(error = %e, "a write of a former leader failed"),
        }
    }

    /// Tells the reports task what this member applies and which windows its rules read.
    pub(super) fn publish_member(&self) {
        let Some(link) = &self.cluster else { return };
        let epoch = if self.leading {
            link.cluster
                .last_shared()
                .map_or(self.applied_epoch, |s| s.epoch)
        } else {
            self.applied_epoch
        };
        let p = &self.rollout.policy;
        let mut windows: Vec<Duration> = p
            .rules
            .iter()
            .filter(|r| r.source == SourceKind::Local)
            .map(|r| r.window)
            .chain([p.interval])
            .collect();
        windows.sort();
        windows.dedup();
        let m = MemberState {
            epoch,
            applied_percent: f64::from(self.table.weight_bp()) / 100.0,
            windows,
        };
        link.member.send_if_modified(|cur| {
            let changed = *cur != m;
            *cur = m;
            changed
        });
    }

    /// The refusal of an operator command on a follower.
    pub(super) fn follower_refusal(&self) -> Refusal {
        let leader = self.cluster.as_ref().and_then(|c| c.cluster.leader());
        match leader {
            Some(l) => Refusal {
                error: format!(
                    "this member is a follower; the fleet's leader is {}",
                    l.name
                ),
                hint: format!("send the command to the leader's admin API at {}", l.admin),
            },
            None => Refusal {
                error: "this member is a follower and no leader is known (etcd unreachable?)"
                    .into(),
                hint: "retry once a leader is elected; `canaryd status` shows cluster.leader"
                    .into(),
            },
        }
    }

    /// The loop starts (again): a member that resigned when it last stopped campaigns again.
    pub(super) fn join(&self) {
        if let Some(link) = &self.cluster {
            link.cluster.rejoin();
        }
    }

    /// Resigns at the stop, after the last state was written.
    pub(super) async fn leave(&mut self) {
        if let Some(link) = &self.cluster {
            link.cluster.resign().await;
        }
    }
}

/// What the cluster's tasks have for the loop.
pub(super) enum News {
    Event(Event),
    /// Leadership changed (elected, deposed), or the leader's renew deadline passed without
    /// a renewal.
    Leadership,
}

/// The next news of the cluster; never ready without a cluster.
pub(super) async fn next(link: &mut Option<ClusterLink>) -> News {
    let Some(l) = link else {
        return std::future::pending().await;
    };
    let until = l.leadership.borrow_and_update().until;
    let expiry = async {
        match until {
            Some(u) if u > Instant::now() => tokio::time::sleep_until(u).await,
            _ => std::future::pending().await,
        }
    };
    tokio::select! {
        Some(e) = l.events.recv() => News::Event(e),
        Ok(()) = l.leadership.changed() => News::Leadership,
        () = expiry => News::Leadership,
    }
}
