//! Test helpers for canaryd's end-to-end tests: a fake upstream gateway whose
//! behaviour (errors, latency, memory leak, auth failures, health) can be
//! turned at run time, a throwaway Prometheus, and the small plumbing every
//! process-level test needs (free ports, polling waits, child guards, a
//! blocking HTTP/1.1 client).
//!
//! # Layout
//!
//! - [`ports`]: free TCP ports / addresses on 127.0.0.1.
//! - [`wait`]: poll a condition or a port until a deadline.
//! - [`process`]: [`ChildGuard`] (SIGKILL on drop) and [`sibling_binary`]
//!   (find a workspace binary next to the running test executable).
//! - [`tempdir`]: [`TempDir`], a uniquely named directory removed on drop.
//! - [`http`]: a tiny blocking HTTP/1.1 client ([`Client`], [`Response`],
//!   [`StreamingResponse`]) and [`percent_encode`].
//! - [`prometheus`]: start a real `/usr/bin/prometheus` scraping given
//!   targets and query it ([`Prometheus`]).
//! - [`fake_gateway`]: the `fake-gateway` server (run by
//!   `src/bin/fake-gateway.rs`) and [`FakeGateway`], the handle tests use to
//!   spawn and steer it.

pub mod fake_gateway;
pub mod http;
pub mod ports;
pub mod process;
pub mod prometheus;
pub mod tempdir;
pub mod wait;

pub use fake_gateway::FakeGateway;
pub use http::{get, percent_encode, post, Client, Response, StreamingResponse};
pub use ports::{free_addr, free_port};
pub use process::{sibling_binary, ChildGuard};
pub use prometheus::Prometheus;
pub use tempdir::TempDir;
pub use wait::{wait_for_port, wait_until};
