//! canaryd's control plane: the rollout controller and everything an operator talks to.
//!
//! The proxy (`canaryd-proxy`) serves requests and keeps per-variant windows; this crate reads
//! them and Prometheus, moves the split, and reports. The configuration model lives in
//! `canaryd-config`; the binary (`src/`) wires the pieces, parses the command line and renders
//! the terminal view.
//!
//! # Layout
//!
//! - `policy/`: rollout policies (steps, rules) loaded and validated with located errors, and
//!   one rule's semantics (`rules.rs`: outcome, `for`, no-data, errors, baseline ratio).
//! - `rollout/`: the state machine — phases, steps, the hold clock, rollback, operator
//!   commands. Pure: no I/O, time passed in.
//! - `control/`: the loop that samples rules (`sources.rs`: Prometheus and the proxy's local
//!   windows; `prometheus.rs`: the PromQL client), moves the rollout and commits each move —
//!   persist, swap the routing table, log, notify; `handle.rs`: commands to a running loop;
//!   `board.rs`: the published status and the controller's metrics; `replay.rs`: the same
//!   rules and state machine over Prometheus history (`canaryd replay`). Its unit tests run on
//!   virtual time in `control/tests.rs`.
//! - `store/`: the rollout state file (atomic, fsync'd) and the decision log.
//! - `admin/`: the admin HTTP listener (`/metrics`, `/healthz`, `/ready`, the API, the status
//!   page), its bearer token (`token.rs`) and the page with its SVG charts (`ui/`).
//! - `api.rs`: the typed documents — the status document, the decision line, the action
//!   request and the `{error, hint}` body — shared by the loop that writes them, the admin API,
//!   the status page, the webhooks and the CLI (no `json!` read back by string keys).
//! - `cluster/`: a fleet sharing one rollout through etcd — election with a lease, fenced
//!   writes, the watched shared state and the members' reports (`[cluster] store = "etcd"`).
//! - `secret.rs`: secrets files (admin token, Prometheus credentials): refused when other
//!   users can read them, empty or oversized; never logged.
//! - `notify.rs`: `[[notify]]` webhooks, queued per target and retried off the controller's
//!   path.
//!
//! Modules are private; what the binary and the tests use is re-exported below.

mod admin;
mod api;
mod cluster;
mod control;
mod notify;
mod policy;
mod rollout;
mod secret;
mod store;

pub use admin::{check_exposure, run as run_admin, AdminState, MetricsHook, Token, TokenError};
pub use api::{
    Action, ActionRequest, ApiError, By, ClusterRole, ClusterStatus, Decision, DecisionList, Kind,
    MemberStatus, Readiness, Replay, RolloutStatus, RuleCompare, RuleOnFail, RuleSamples,
    RuleSource, RuleStatus, RuleTest, SkippedRule, State, Status,
};
pub use cluster::{Cluster, ClusterError, ClusterLink, ClusterOptions, Fleet};
pub use control::{
    render as render_query, replay, wall_ms, Board, Controller, DecisionHook, Handle, LiveSources,
    PromClient, PromError, ReplayError, Settings, Sources,
};
pub use notify::{backoff, slack_text, Notifier, QUEUE as NOTIFY_QUEUE};
pub use policy::{
    Compare, Counts, Direction, Histogram, HoldMode, Judgement, Margin, OnFail, OnNoData, Op,
    Outcome, Policy, RollbackMode, Rule, Sample, Share, Signal, SourceKind, TestKind, Threshold,
    Traffic,
};
/// The statistics of `test = "sequential"` and `test = "mann-whitney"` rules and of the
/// traffic-share check, for simulations (`examples/judge_sim.rs`).
pub mod judge {
    pub use crate::policy::mann_whitney::{judge as judge_latency, u_test};
    pub use crate::policy::sequential::{judge, log_lr, radius, DEFAULT_ALPHA, MIN_SAMPLES};
    pub use crate::policy::traffic::{band, check as check_traffic, ALPHA as TRAFFIC_ALPHA};
}
pub use rollout::{Command, Phase, Refusal};
pub use store::{DecisionLog, StateStore};
