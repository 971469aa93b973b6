//! What the controller keeps on disk: the rollout state (written atomically and fsync'd before
//! every routing change, so a restart resumes at the same step) and the append-only decision
//! log (one JSON line per decision, with the values that made it).

mod decision_log;
mod state;

pub use decision_log::{DecisionLog, KEEP};
pub use state::{StateError, StateStore};
