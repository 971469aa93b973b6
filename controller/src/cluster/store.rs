//! The rollout in etcd: the keys under `[cluster] prefix`, the shared state document and the
//! leader's fenced write.
//!
//! `PREFIX/state` holds a [`SharedState`]: the rollout state (phase, step, held time, split),
//! the epoch (+1 at every new split: members report the epoch they apply, and the leader
//! judges only reports of the current one) and the leader that wrote it. It is written only
//! in a txn whose guard is the leader key's create revision as this leader created it: when
//! its lease expired (or it resigned) and another member won, the key was created again with
//! another revision, the guard fails and etcd writes nothing.

use std::sync::atomic::Ordering;

use std::sync::Arc;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::{Event, Inner};
use crate::rollout::RolloutState;

/// The keys of one rollout.
#[derive(Debug, Clone)]
pub struct Keys {
    pub leader: String,
    pub state: String,
    /// `PREFIX/members/`: one leased report per live member.
    pub members: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            leader: format!("{prefix}/leader"),
            state: format!("{prefix}/state"),
            members: format!("{prefix}/members/"),
        }
    }

    pub fn member(&self, name: &str) -> String {
        format!("{}{name}", self.members)
    }
}

/// `PREFIX/state`: the fleet's rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedState {
    /// +1 whenever the split changes.
    pub epoch: u64,
    /// The member that wrote it.
    pub leader: String,
    pub state: RolloutState,
}

/// Why the leader's write did not happen.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WriteError {
    /// The leader key is no longer the one this leader created: deposed.
    #[error("fenced: this member is no longer the leader (etcd refused the write)")]
    Fenced,
    #[error("this member is not the acting leader")]
    NotLeader,
    #[error("etcd: {0}")]
    Etcd(String),
}

/// A write for the writer task: answered on `reply`, or as an [`Event::Written`].
#[derive(Debug)]
pub(super) struct Write {
    pub fence: i64,
    pub state: RolloutState,
    pub reply: Option<oneshot::Sender<Result<u64, WriteError>>>,
}

/// Runs the leader's writes one at a time, in the order the loop made them: a write that
/// etcd answers late is followed, not overtaken, by the next one.
pub(super) async fn writer(
    inner: Arc<Inner>,
    mut writes: mpsc::UnboundedReceiver<Write>,
    events: mpsc::UnboundedSender<Event>,
) {
    let t = inner.opts.call_timeout();
    while let Some(w) = writes.recv().await {
        let result = match tokio::time::timeout(t, write(&inner, w.fence, w.state)).await {
            Ok(r) => r,
            Err(_) => Err(WriteError::Etcd(format!(
                "no answer from etcd within {t:?}"
            ))),
        };
        match w.reply {
            Some(reply) => {
                let _ = reply.send(result);
            }
            None => {
                let _ = events.send(Event::Written(result));
            }
        }
    }
}

/// Puts `state` under the fence; answers the epoch written.
pub(super) async fn write(
    inner: &Inner,
    fence: i64,
    state: RolloutState,
) -> Result<u64, WriteError> {
    let keys = inner.keys();
    let last = inner
        .last_shared
        .lock()
        .ok()
        .and_then(|s| s.as_ref().map(|(_, s)| s.clone()));
    let mut epoch = inner
        .epoch
        .load(Ordering::Relaxed)
        .max(last.as_ref().map_or(0, |l| l.epoch));
    if last
        .as_ref()
        .is_none_or(|l| l.state.canary_percent != state.canary_percent)
    {
        epoch += 1;
    }
    let doc = SharedState {
        epoch,
        leader: inner.opts.name.clone(),
        state,
    };
    let body = serde_json::to_vec(&doc).map_err(|e| WriteError::Etcd(e.to_string()))?;
    let txn = Txn::new()
        .when([Compare::create_revision(
            keys.leader.as_str(),
            CompareOp::Equal,
            fence,
        )])
        .and_then([TxnOp::put(keys.state.as_str(), body, None)]);
    let mut client = inner.client().await;
    let resp = client
        .txn(txn)
        .await
        .map_err(|e| WriteError::Etcd(e.to_string()))?;
    if !resp.succeeded() {
        tracing::warn!(fence, "fenced: etcd refused the write of a deposed leader");
        return Err(WriteError::Fenced);
    }
    inner.epoch.store(epoch, Ordering::Relaxed);
    let revision = resp.header().map_or(0, |h| h.revision());
    inner.seen(revision, &doc);
    Ok(epoch)
}

/// A stored state document; `None` (logged) when it does not parse.
pub(super) fn parse(value: &[u8]) -> Option<SharedState> {
    match serde_json::from_slice(value) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(error = %e, "the shared rollout state in etcd is not valid; ignored");
            None
        }
    }
}
