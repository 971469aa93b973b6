//! canaryd control plane.
//!
//! # Layout
//!
//! - [`config`]: the whole `canaryd.toml`, loaded with figment and validated; errors name file,
//!   line, key and expectation.
//! - [`admin`]: the admin HTTP listener (`/metrics`, `/healthz`, `/ready`).

pub mod admin;
pub mod config;

pub use config::{Config, ConfigError};
