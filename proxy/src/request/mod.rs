//! canaryd's own request loop on pingora-core: its listeners, its HTTP/2 and HTTP/1 server
//! sessions and canaryd's own HTTP/1 session for the common request carry the bytes;
//! everything between reading a request header and finishing its response is here.
//!
//! - `app`: one client connection (served from `listener.rs`'s accept loop): the HTTP/1 keepalive loop
//!   with `client_header_timeout`, or the streams of a prior-knowledge HTTP/2 connection.
//! - `downstream`: the client side of one request: pingora-core's server session, or `h1`.
//! - `h1`: canaryd's own HTTP/1 session for the common bodiless request: both headers parsed
//!   in place, the answer relayed in its own framing.
//! - `session`: one request: routing decision, attempts, fallbacks and retries, metrics.
//! - `own_response`: the answers canaryd writes itself (error pages, `add_response_headers`).
//! - `upstream`: one attempt over one upstream connection, and relaying the response.
//! - `upstream_pool`: the per-worker (thread-local) upstream keepalive pool.
//! - `upstream_wire`: a bodiless HTTP/1 request written upstream straight from its header.
//! - `retry`: the request body read ahead for replay.
//! - `shadow`: a copy of a stable request sent to the canary off the client's path (a step's
//!   `shadow`), its answer judged and discarded.
//! - `upgrade`: upgraded (WebSocket) tunnels.
//! - `redirect`: `https_redirect` on plain listeners (`301 https://$host$request_uri`).

mod app;
mod downstream;
mod h1;
mod own_response;
mod redirect;
mod retry;
mod session;
mod shadow;
mod upgrade;
mod upstream;
mod upstream_pool;
mod upstream_wire;

pub use app::ProxyApp;
