//! canaryd's own HTTP/1 session for the common request: a bodiless HTTP/1.1 request (`GET`
//! and the like) whose header arrived whole in one read. Its header is parsed in place
//! (`head.rs`), written upstream straight from those bytes (`upstream_wire.rs`), and the
//! upstream's answer is parsed in place and relayed in its own framing (`response.rs`,
//! `framing.rs`): no header map, no copy of either header, no session objects.
//!
//! Every other request — a body, `HEAD`, an upgrade, HTTP/1.0, a header in several reads,
//! anything unusual or malformed — is served by pingora-core's session, which parses the same
//! bytes again. So does an answer canaryd writes itself (an error page): the request is handed
//! to pingora-core's session first ([`Session::into_server_session`]). Routing, retries,
//! header rules, metrics and the access log are the same code for both (`session.rs`).

mod framing;
mod head;
mod response;

use bytes::BytesMut;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;

pub use head::Head;
use response::relay;
pub use response::{read as read_response, Edits, Relayed, Response};

/// One header line: name and value as offsets into the bytes it was parsed from (headers of
/// this path are at most 64 KiB).
#[derive(Debug, Clone, Copy, Default)]
struct Line {
    name: (u16, u16),
    value: (u16, u16),
}

/// Where `part`, a slice of the buffer that starts at address `base`, lies in that buffer.
fn span(base: usize, part: &[u8]) -> (u16, u16) {
    let start = (part.as_ptr() as usize - base) as u16;
    (start, start + part.len() as u16)
}

/// A client connection serving one request of this path.
#[derive(Debug)]
pub struct Session {
    stream: Stream,
    head: Head,
    /// The connection serves another request after this one.
    keepalive: bool,
    /// Response body bytes sent to the client.
    body_bytes_sent: u64,
}

// === impl Session ===

impl Session {
    pub fn new(stream: Stream, head: Head) -> Self {
        let keepalive = !head.wants_close();
        Self {
            stream,
            head,
            keepalive,
            body_bytes_sent: 0,
        }
    }

    pub fn head(&self) -> &Head {
        &self.head
    }

    /// Whether the connection may serve another request after this one.
    pub fn keepalive(&self) -> bool {
        self.keepalive
    }

    pub fn set_keepalive(&mut self, on: bool) {
        self.keepalive &= on;
    }

    pub fn body_bytes_sent(&self) -> u64 {
        self.body_bytes_sent
    }

    /// Relays `resp` from `upstream` to the client (see `response.rs`). Returns how it ended
    /// and whether the upstream connection can be used again.
    pub async fn relay(
        &mut self,
        resp: &mut Response,
        upstream: &mut Stream,
        edits: &Edits<'_>,
    ) -> Relayed {
        let relayed = relay(resp, upstream, &mut self.stream, edits).await;
        self.body_bytes_sent = relayed.body_bytes;
        if !relayed.client_keepalive || relayed.end != super::upstream::RelayEnd::Complete {
            self.keepalive = false;
        }
        relayed
    }

    /// The same request in pingora-core's session, which parses a copy of its header again
    /// (for an answer canaryd writes itself). The header alone if it does not parse there (not
    /// reached: this path only takes requests it parses); the connection is then lost.
    pub async fn into_server_session(self) -> Result<ServerSession, Head> {
        let mut ds = ServerSession::new_http1(self.stream);
        ds.set_pipelined_prefix(BytesMut::from(self.head.bytes()));
        match ds.read_request().await {
            Ok(true) => Ok(ds),
            _ => Err(self.head),
        }
    }

    /// The connection and the bytes already read of the next request, when it is kept alive.
    pub fn finish(self) -> Option<(Stream, BytesMut)> {
        self.keepalive.then(|| (self.stream, self.head.into_rest()))
    }
}
