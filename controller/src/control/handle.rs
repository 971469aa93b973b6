//! Talking to a running controller: operator commands and reloaded policies travel as
//! [`Request`]s over a channel and are answered with the new status or a [`Refusal`]. The
//! controller applies them between ticks, so a command never races an evaluation.

use tokio::sync::{mpsc, oneshot};

use crate::api::Status;
use crate::policy::Policy;
use crate::rollout::{Command, Refusal};

/// What can be asked of a running controller.
#[derive(Debug)]
pub enum Ask {
    Operator(Command),
    /// A reloaded, validated policy (SIGHUP).
    ReplacePolicy(Box<Policy>),
}

/// A request on its way to the controller.
#[derive(Debug)]
pub struct Request {
    pub ask: Ask,
    pub reason: String,
    /// The status after the command, or why it was refused.
    pub reply: oneshot::Sender<Result<Status, Refusal>>,
}

/// Sends operator commands to a running controller.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(super) tx: mpsc::Sender<Request>,
}

impl Handle {
    pub async fn send(&self, cmd: Command, reason: String) -> Result<Status, Refusal> {
        self.ask(Ask::Operator(cmd), reason).await
    }

    pub async fn replace_policy(&self, policy: Policy) -> Result<Status, Refusal> {
        self.ask(Ask::ReplacePolicy(Box::new(policy)), String::new())
            .await
    }

    async fn ask(&self, ask: Ask, reason: String) -> Result<Status, Refusal> {
        let (reply, rx) = oneshot::channel();
        let gone = || Refusal {
            error: "the controller is not running".into(),
            hint: "check the daemon's log".into(),
        };
        self.tx
            .send(Request { ask, reason, reply })
            .await
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}
