//! canaryd's own request loop on pingora-core: its listeners and HTTP/1 and HTTP/2 server
//! sessions carry the bytes; everything between reading a request header and finishing its
//! response is here.
//!
//! - `app`: one client connection (the pingora-core `ServerApp`): the HTTP/1 keepalive loop
//!   with `client_header_timeout`, or the streams of a prior-knowledge HTTP/2 connection.
//! - `session`: one request: routing decision, attempts, fallbacks and retries, metrics.
//! - `own_response`: the answers canaryd writes itself (error pages, `add_response_headers`).
//! - `upstream`: one attempt over one upstream connection, and relaying the response.
//! - `upstream_pool`: the per-worker (thread-local) upstream keepalive pool.
//! - `upstream_wire`: a bodiless HTTP/1 request written upstream straight from its header.
//! - `retry`: the request body read ahead for replay.
//! - `upgrade`: upgraded (WebSocket) tunnels.
//! - `redirect`: `https_redirect` on plain listeners (`301 https://$host$request_uri`).

mod app;
mod own_response;
mod redirect;
mod retry;
mod session;
mod upgrade;
mod upstream;
mod upstream_pool;
mod upstream_wire;

pub use app::ProxyApp;
