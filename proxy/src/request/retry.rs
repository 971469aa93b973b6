//! What a retry needs: the request body read ahead so it can be sent again, and the rule for
//! when a request may be sent again at all.
//!
//! Before the first attempt the loop reads up to [`REPLAY_LIMIT`] bytes of the request body.
//! A body that ends within the limit is kept whole and can be replayed on another upstream; a
//! longer one is streamed: what was read ahead goes first, the rest follows straight from the
//! client, and once any of the rest has been sent the request can no longer move. A request
//! without a body allocates nothing here.

use bytes::Bytes;
use pingora_core::protocols::http::v1::client::HttpSession as ClientSession;
use pingora_core::protocols::http::ServerSession;
use pingora_error::{Error, ErrorType};

/// Bodies up to this size are buffered whole and can be replayed.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// The request body of one request, as far as it has been read.
#[derive(Debug, Default)]
pub struct RequestBody {
    /// Read before the first attempt (all of it when `complete`).
    chunks: Vec<Bytes>,
    /// The whole body is in `chunks`.
    complete: bool,
    /// Part of the body beyond `chunks` has been taken from the client: no replay.
    consumed: bool,
}

/// Why sending the body failed.
#[derive(Debug)]
pub enum SendError {
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
        }
    }

    /// Reads up to [`REPLAY_LIMIT`] bytes of the body ahead of the first attempt.
    pub async fn read_ahead(ds: &mut ServerSession) -> Result<Self, Box<Error>> {
        let mut body = Self::none();
        let mut len = 0;
        while !ds.is_body_done() {
            if len >= REPLAY_LIMIT {
                body.complete = false;
                return Ok(body);
            }
            match ds.read_request_body().await? {
                Some(chunk) => {
                    len += chunk.len();
                    if !chunk.is_empty() {
                        body.chunks.push(chunk);
                    }
                }
                None => break,
            }
        }
        Ok(body)
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
                us.write_body(&chunk).await.map_err(SendError::Upstream)?;
            }
        }
        us.finish_body().await.map_err(SendError::Upstream)?;
        Ok(())
    }
}
