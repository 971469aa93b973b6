//! A response whose body is read piece by piece as it arrives, for tests
//! that check streaming (SSE events flushed before the response ends).

use std::io::{self, BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use super::wire::{self, Framing};

/// A response whose head has been read and whose body is still on the wire.
/// It owns its connection, which is closed on drop.
#[derive(Debug)]
pub struct StreamingResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    conn: BufReader<TcpStream>,
    framing: Framing,
    /// Bytes still to read for [`Framing::Length`].
    remaining: u64,
    done: bool,
}

impl StreamingResponse {
    pub(crate) fn new(
        status: u16,
        headers: Vec<(String, String)>,
        conn: BufReader<TcpStream>,
        framing: Framing,
    ) -> StreamingResponse {
        let remaining = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        StreamingResponse {
            status,
            headers,
            conn,
            framing,
            remaining,
            done: matches!(framing, Framing::Empty | Framing::Length(0)),
        }
    }

    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::find(&self.headers, name)
    }

    /// All values of header `name` (case-insensitive).
    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        wire::find_all(&self.headers, name)
    }

    /// Changes the read timeout (10 s by default); `None` blocks forever.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.conn.get_ref().set_read_timeout(timeout)
    }

    /// The next piece of body as soon as it is available: one chunk for a
    /// chunked body, otherwise whatever bytes have arrived. `None` at the end.
    pub fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.done {
            return Ok(None);
        }
        let piece = match self.framing {
            Framing::Empty => None,
            Framing::Chunked => wire::read_chunk(&mut self.conn)?,
            Framing::Length(_) => {
                let available = self.conn.fill_buf()?;
                if available.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("body ended with {} bytes missing", self.remaining),
                    ));
                }
                let take = available
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                let piece = available[..take].to_vec();
                self.conn.consume(take);
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.done = true;
                }
                Some(piece)
            }
            Framing::Eof => {
                let available = self.conn.fill_buf()?;
                if available.is_empty() {
                    None
                } else {
                    let piece = available.to_vec();
                    self.conn.consume(piece.len());
                    Some(piece)
                }
            }
        };
        if piece.is_none() {
            self.done = true;
        }
        Ok(piece)
    }

    /// Reads the rest of the body.
    pub fn read_to_end(mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        while let Some(piece) = self.next_chunk()? {
            body.extend_from_slice(&piece);
        }
        Ok(body)
    }
}
