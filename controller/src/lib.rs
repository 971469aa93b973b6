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
//!   `/api/v1/decisions`, the status page at `/`).
//! - [`status_page`]: the status page's HTML (inline CSS and script, live fragment, operator
//!   buttons); [`status_chart`]: its server-rendered SVG charts from the decision log.
//! - [`notify`]: `[[notify]]` webhooks: every decision POSTed to each target (json or slack),
//!   queued per target and retried off the controller's path.
//! - [`systemd`]: `sd_notify` without libsystemd (`READY=1`, `RELOADING=1`, `STOPPING=1`,
//!   `WATCHDOG=1` to `$NOTIFY_SOCKET`) and the watchdog period from `$WATCHDOG_USEC`.
//! - [`nginx_import`]: `canaryd import-nginx`: an nginx front (upstream, map, server) →
//!   a commented `canaryd.toml`, every untranslated directive listed.

pub mod admin;
pub mod admin_client;
pub mod config;
pub mod controller;
pub mod decision_log;
pub mod nginx_import;
pub mod notify;
pub mod policy;
pub mod prometheus;
pub mod rollout;
pub mod rules;
pub mod state_store;
pub mod status;
pub mod status_chart;
pub mod status_page;
pub mod status_view;
pub mod systemd;
pub mod token;
pub mod toml_location;

pub use config::{Config, ConfigError};
