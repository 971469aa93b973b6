//! The controller crate's integration tests, one binary (one link) for all:
//!
//! - [`notify`]: webhooks against real HTTP receivers (retries, dead targets, full queue,
//!   slack bodies, the `[[notify]]` keys).
//! - [`policies`]: every shipped policy in `policies/` loads and keeps its seed's shape.
//! - [`prometheus`]: the PromQL client against a real Prometheus scraping fake gateways.

mod notify;
mod policies;
mod prometheus;
