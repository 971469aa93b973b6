//! The data plane in this process: the real Pingora server and request loop built from a
//! config, against real upstream processes, so the routing handle and the metrics can be
//! driven and read directly. One test binary (one link) for all:
//!
//! - [`connection_metrics`]: client connections by state, accepted and handled counters, open
//!   streams, upstream connections and body bytes per variant.
//! - [`h2c`]: a prior-knowledge HTTP/2 client served by the same loop as HTTP/1.
//! - [`stale_pool`]: a pooled connection closed by the upstream is retried on a fresh one and
//!   never counted against the server.
//! - [`weight_swap`]: the split swapped under load fails nothing and takes effect at once.
//!
//! `zero_alloc` stays a binary of its own: it installs a counting global allocator.

mod connection_metrics;
mod h2c;
mod stale_pool;
mod weight_swap;
