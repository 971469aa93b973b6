//! The controller crate's integration tests, one binary (one link) for all:
//!
//! - [`live_sources`]: `LiveSources` swapping its Prometheus client while a query runs.
//! - [`notify`]: webhooks against real HTTP receivers (retries, dead targets, full queue,
//!   slack bodies, the `[[notify]]` keys).
//! - [`policies`]: every shipped policy in `policies/` loads and keeps its seed's shape.
//! - [`prometheus`]: the PromQL client against a real Prometheus scraping fake gateways.
//! - [`prometheus_standin`]: the PromQL client against `testkit::PromStandIn` — a 200 000-series
//!   answer refused at `max_response_size` with the peak RSS measured, garbage, HTTP errors,
//!   slow and silent servers, and what the client sends (prefix, timeout, credentials, headers).
//! - [`prometheus_tls`]: `PromClient::from_config` against a real Prometheus behind TLS and
//!   basic auth (`--web.config.file`): `ca_file`, a wrong password, no CA.

mod live_sources;
mod notify;
mod policies;
mod prometheus;
mod prometheus_standin;
mod prometheus_tls;
