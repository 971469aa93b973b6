//! canaryd control plane.
//!
//! # Layout
//!
//! - [`config`]: the whole `canaryd.toml`, loaded with figment and validated; errors name file,
//!   line, key and expectation.
//! - [`admin`]: the admin HTTP listener (`/metrics`, `/healthz`, `/ready`).
//! - [`prometheus`]: PromQL instant queries ([`prometheus::PromClient`]) folded into a value,
//!   no-data or an error naming the query; `{{variant}}` templating.

pub mod admin;
pub mod config;
pub mod policy;
pub mod rollout;
pub mod rules;
pub mod prometheus;
pub mod toml_location;

pub use config::{Config, ConfigError};
