//! TLS: terminating it on the `[proxy.tls]` listeners (`server.rs`, certificates and SNI in
//! `certs.rs`), speaking it to `https://` upstream servers (`client.rs`), and the TLS
//! connection type both directions use (`stream.rs`).
//!
//! rustls with the aws-lc-rs provider, wrapped around pingora-core's TCP stream by
//! tokio-rustls: the request loop sees a `Stream` like any other, so TLS changes how bytes
//! arrive and nothing else (docs/performance.md says why this stack).

mod certs;
mod client;
mod server;
mod stream;

pub use certs::{CertError, CertSet};
pub use client::{client_config, UpstreamTls};
pub use server::{check_tls, Termination, TlsError};
