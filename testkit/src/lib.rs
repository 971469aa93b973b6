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
//!   targets and query it ([`Prometheus`]), optionally behind TLS and basic
//!   auth (`--web.config.file`).
//! - [`prom_standin`]: [`PromStandIn`], a Prometheus stand-in answering
//!   `/api/v1/query` as a test tells it at run time (a value, a delay, no
//!   answer, garbage, an HTTP error, a huge streamed vector) and counting
//!   queries.
//! - [`etcd`]: a throwaway real etcd ([`Etcd`]): stop, resume, get, put, compact.
//! - [`relay`]: a TCP relay with pass / pause / reset ([`Relay`]): one member cut off from
//!   etcd on one machine.
//! - [`fake_gateway`]: the `fake-gateway` server (run by
//!   `src/bin/fake-gateway.rs`) and [`FakeGateway`], the handle tests use to
//!   spawn and steer it.
//! - [`fixed_rate`]: the `fixed-rate` open-loop, coordinated-omission-safe
//!   HTTP/1.1 load generator (run by `src/bin/fixed-rate.rs`).
//! - [`webdriver`]: a blocking W3C WebDriver client driving a headless
//!   Chromium through chromedriver ([`Browser`]).

pub mod etcd;
pub mod fake_gateway;
pub mod fixed_rate;
pub mod http;
pub mod ports;
pub mod process;
pub mod prom_standin;
pub mod prometheus;
pub mod relay;
pub mod tempdir;
pub mod wait;
pub mod webdriver;

pub use etcd::Etcd;
pub use fake_gateway::FakeGateway;
pub use http::{get, percent_encode, post, Client, Response, StreamingResponse};
pub use ports::{free_addr, free_port};
pub use process::{sibling_binary, ChildGuard};
pub use prom_standin::PromStandIn;
pub use prometheus::Prometheus;
pub use relay::Relay;
pub use tempdir::TempDir;
pub use wait::{wait_for_port, wait_until};
pub use webdriver::Browser;

/// Called by a test whose external tool (Prometheus, Chromium) is missing: a skip with a
/// message on a developer's machine, a failure under `scripts/test`, which installs every tool
/// and sets `CANARYD_REQUIRE_TOOLS=1`, so CI can never pass by skipping.
pub fn tool_missing(what: &str) {
    if std::env::var_os("CANARYD_REQUIRE_TOOLS").is_some() {
        panic!("{what} is not installed, and CANARYD_REQUIRE_TOOLS is set");
    }
    eprintln!("{what} is not installed: skipping (scripts/test installs it)");
}
