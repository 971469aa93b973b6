//! What a retry needs: the request body read ahead so it can be sent again, and the rule for
//! when a request may be sent again at all.
//!
//! Before the first attempt the loop reads up to [`REPLAY_LIMIT`] bytes of the request body.
//! A body that ends within the limit is kept whole and can be replayed on another upstream; a
//! longer one is streamed: what was read ahead goes first, the rest follows straight from the
//! client, and once any of the rest has been sent the request can no longer move. A request
//! without a body allocates nothing here.
//!
//! Both count the body against the route's `max_body_size` (a body without a length, chunked
//! or HTTP/2, is only known to be too large as it arrives): over it, reading ahead answers
//! [`TOO_LARGE`] before any upstream is contacted, and streaming stops with it (the upstream
//! connection, left with half a body, is dropped).

use bytes::Bytes;
use pingora_core::protocols::http::v1::client::HttpSession as ClientSession;
use pingora_core::protocols::http::ServerSession;
use pingora_error::{Error, ErrorType};

/// Bodies up to this size are buffered whole and can be replayed.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// The status of a body over `max_body_size`.
pub const TOO_LARGE: u16 = 413;

/// The request body of one request, as far as it has been read.
#[derive(Debug, Default)]
pub struct RequestBody {
    /// Read before the first attempt (all of it when `complete`).
    chunks: Vec<Bytes>,
    /// The whole body is in `chunks`.
    complete: bool,
    /// Part of the body beyond `chunks` has been taken from the client: no replay.
    consumed: bool,
    /// Bytes read from the client so far.
    len: u64,
    /// `max_body_size`; 0: no limit.
    limit: u64,
}

/// Why sending the body failed.
#[derive(Debug)]
pub enum SendError {
    /// The body passed `max_body_size`.
    TooLarge,
    /// Reading from the client failed (it went away, timed out, or sent a bad body).
    Client(Box<Error>),
    /// Writing to the upstream failed.
    Upstream(Box<Error>),
}

// === impl RequestBody ===

impl RequestBody {
    /// No body at all (an upgrade request: what follows the header belongs to the tunnel).
    pub fn none() -> Self {
        Self {
            chunks: Vec::new(),
            complete: true,
            consumed: false,
            len: 0,
            limit: 0,
        }
    }

    /// Reads up to [`REPLAY_LIMIT`] bytes of the body ahead of the first attempt. A body over
    /// `limit` (0: none) is an error whose status is [`TOO_LARGE`].
    pub async fn read_ahead(ds: &mut ServerSession, limit: u64) -> Result<Self, Box<Error>> {
        let mut body = Self::none();
        body.limit = limit;
        while !ds.is_body_done() {
            if body.len >= REPLAY_LIMIT as u64 {
                body.complete = false;
                return Ok(body);
            }
            match ds.read_request_body().await? {
                Some(chunk) => {
                    body.len += chunk.len() as u64;
                    if body.over_limit() {
                        return Err(too_large());
                    }
                    if !chunk.is_empty() {
                        body.chunks.push(chunk);
                    }
                }
                None => break,
            }
        }
        Ok(body)
    }

    fn over_limit(&self) -> bool {
        self.limit > 0 && self.len > self.limit
    }

    /// Can the body be sent again to another upstream?
    pub fn replayable(&self) -> bool {
        self.complete || !self.consumed
    }

    /// Sends the body to the upstream: what was read ahead, then (once) the rest from the client.
    pub async fn send(
        &mut self,
        ds: &mut ServerSession,
        us: &mut ClientSession,
    ) -> Result<(), SendError> {
        for chunk in &self.chunks {
            us.write_body(chunk).await.map_err(SendError::Upstream)?;
        }
        if !self.complete {
            if self.consumed {
                return Err(SendError::Client(Error::explain(
                    ErrorType::InternalError,
                    "request body already sent once",
                )));
            }
            self.consumed = true;
            while let Some(chunk) = ds.read_request_body().await.map_err(SendError::Client)? {
                self.len += chunk.len() as u64;
                if self.over_limit() {
                    return Err(SendError::TooLarge);
                }
                us.write_body(&chunk).await.map_err(SendError::Upstream)?;
            }
        }
        us.finish_body().await.map_err(SendError::Upstream)?;
        Ok(())
    }
}

/// The error [`RequestBody::read_ahead`] answers for a body over the limit; its status is
/// [`TOO_LARGE`] (see [`is_too_large`]).
fn too_large() -> Box<Error> {
    Error::explain(
        ErrorType::HTTPStatus(TOO_LARGE),
        "request body over max_body_size",
    )
}

/// Is `e` a body over `max_body_size`?
pub fn is_too_large(e: &Error) -> bool {
    matches!(e.etype(), ErrorType::HTTPStatus(TOO_LARGE))
}
