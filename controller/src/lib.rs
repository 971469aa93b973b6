//! canaryd control plane.
//!
//! # Layout
//!
//! - [`config`]: the whole `canaryd.toml`, loaded with figment and validated; errors name file,
//!   line, key and expectation. [`toml_location`] finds a key's line.
//! - [`policy`]: rollout policies (steps, rules), loaded and validated the same way.
//! - [`rules`]: one rule's semantics — outcome, `for`, no-data, errors, baseline ratio.
//! - [`rollout`]: the state machine (phases, steps, hold clock, rollback).
//! - [`controller`]: the loop that samples rules ([`controller::Sources`]), moves the rollout
//!   and commits each move: persist ([`state_store`]), swap the routing table, log
//!   ([`decision_log`]).
//! - [`prometheus`]: PromQL instant queries folded into a value, no-data or an error naming
//!   the query; `{{variant}}` templating.
//! - [`status`]: the published snapshot and the controller's metrics.
//! - [`admin`]: the admin HTTP listener (`/metrics`, `/healthz`, `/ready`, `/api/v1/status`,
//!   `/api/v1/decisions`).

pub mod admin;
pub mod config;
pub mod controller;
pub mod decision_log;
pub mod policy;
pub mod prometheus;
pub mod rollout;
pub mod rules;
pub mod state_store;
pub mod status;
pub mod toml_location;

pub use config::{Config, ConfigError};
