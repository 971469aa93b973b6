//! The client side of one request: pingora-core's server session (HTTP/2, bodies, upgrades,
//! anything unusual) or canaryd's own HTTP/1 session for the common bodiless request (`h1/`).
//! The request code (`session.rs`) reads the request and ends it through this one type; what
//! only pingora-core's session can do (read a body, write an error page, relay a response
//! read by pingora-core's client session) it gets through [`Downstream::session`], which hands
//! an `h1` request over to pingora-core's session first.

use bytes::BytesMut;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;

use super::h1;
use crate::head::RequestHead;
use crate::plane::Upstreams;

/// The client side of one request.
pub enum Downstream {
    Session(ServerSession),
    H1(h1::Session),
    /// An `h1` request whose hand-over failed: the connection is gone, its header is kept for
    /// the access log.
    Lost(h1::Head),
}

// === impl Downstream ===

impl Downstream {
    pub fn head(&self) -> &dyn RequestHead {
        match self {
            Downstream::Session(ds) => ds.req_header(),
            Downstream::H1(s) => s.head(),
            Downstream::Lost(head) => head,
        }
    }

    pub fn is_http2(&self) -> bool {
        matches!(self, Downstream::Session(ds) if ds.is_http2())
    }

    /// The connection closes after this request.
    pub fn close_after(&mut self) {
        match self {
            Downstream::Session(ds) => ds.set_keepalive(None),
            Downstream::H1(s) => s.set_keepalive(false),
            Downstream::Lost(_) => {}
        }
    }

    pub fn body_bytes_sent(&self) -> u64 {
        match self {
            Downstream::Session(ds) => ds.body_bytes_sent() as u64,
            Downstream::H1(s) => s.body_bytes_sent(),
            Downstream::Lost(_) => 0,
        }
    }

    pub fn body_bytes_read(&self) -> u64 {
        match self {
            Downstream::Session(ds) => ds.body_bytes_read() as u64,
            Downstream::H1(_) | Downstream::Lost(_) => 0,
        }
    }

    /// pingora-core's session for this request, an `h1` request handed over to it first
    /// (with the connection's keepalive decision and `up`'s client timeouts); `None` when that
    /// failed (the connection is gone).
    pub async fn session(&mut self, up: &Upstreams) -> Option<&mut ServerSession> {
        if matches!(self, Downstream::H1(_)) {
            let placeholder = Downstream::Lost(h1::Head::empty());
            let Downstream::H1(s) = std::mem::replace(self, placeholder) else {
                return None;
            };
            let keep = s.keepalive();
            *self = match s.into_server_session().await {
                Ok(mut ds) => {
                    configure(&mut ds, up, keep);
                    Downstream::Session(ds)
                }
                Err(head) => Downstream::Lost(head),
            };
        }
        match self {
            Downstream::Session(ds) => Some(ds),
            _ => None,
        }
    }

    /// The connection and the bytes already read of the next request, when it is kept alive.
    pub async fn finish(self) -> Option<(Stream, BytesMut)> {
        match self {
            Downstream::Session(ds) => match ds.finish().await {
                Ok(Some(reusable)) => {
                    let (s, p) = reusable.into_parts();
                    Some((s, p.unwrap_or_default()))
                }
                _ => None,
            },
            Downstream::H1(s) => s.finish(),
            Downstream::Lost(_) => None,
        }
    }
}

/// Sets an HTTP/1 session whose request header was read: kept alive (`keep`, and the client
/// allows it) or closed after this request, and `client_timeout` for its body and response.
pub fn configure(ds: &mut ServerSession, up: &Upstreams, keep: bool) {
    if keep && ds.get_keepalive().is_some() {
        ds.set_keepalive(Some(up.keepalive_timeout.as_secs().max(1)));
    } else {
        ds.set_keepalive(None);
    }
    ds.set_read_timeout(Some(up.client_timeout));
    ds.set_write_timeout(Some(up.client_timeout));
}
