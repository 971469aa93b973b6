//! The upstream's answer to a request of this path, read and relayed by canaryd: the response
//! header parsed in place (`httparse`, offsets into the bytes read), written to the client with
//! canaryd's changes, then the body as it arrives, in the upstream's own framing.
//!
//! What the client gets is what pingora-core's sessions would send it: the upstream's status
//! and header lines minus `Connection`, `Keep-Alive` and `Date` (canaryd writes its own `Date`
//! and `Connection`) and the route's hidden headers, plus the route's added headers and a new
//! sticky cookie. A body without a length ends the client's connection after it; chunked
//! bodies pass through as they are.

use std::cell::RefCell;
use std::time::Duration;

use bytes::BytesMut;
use pingora_core::protocols::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::framing::{Chunked, Framing};
use super::{span, Line};
use crate::metrics::FailureKind;
use crate::request::upstream::{AttemptError, RelayEnd};

/// Header lines an upstream response may have here (more: a protocol error, 502).
const MAX_LINES: usize = 96;

/// Largest upstream response header.
const MAX_HEAD: usize = 64 * 1024;

/// What the first read of the upstream's answer asks for (a typical header and small body).
const HEAD_BUF: usize = 4096;

/// What each later read of the body asks for.
const READ_BUF: usize = 16 * 1024;

/// Body bytes that leave in the same write as the response header.
const WITH_HEAD: usize = 16 * 1024;

/// A buffer that grew past this for one large response header is not kept.
const OUT_KEEP: usize = 16 * 1024;

thread_local! {
    /// Each worker's buffer for the client's response header; taken for a write, put back.
    static OUT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// An upstream's response header, parsed, and the body bytes read with it.
#[derive(Debug)]
pub struct Response {
    buf: BytesMut,
    head: Head,
}

// === impl Response ===

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// A `text/event-stream` answer.
    pub fn is_event_stream(&self) -> bool {
        self.head.event_stream
    }

    fn slice(&self, (start, end): (u16, u16)) -> &[u8] {
        &self.buf[start as usize..end as usize]
    }
}

/// Reads the response header of a request written to `stream`, within `timeout`.
/// Informational answers (1xx) are skipped; `101` is a protocol error here (the request was
/// not an upgrade). `reused`: a pooled connection, whose close before any byte is stale.
pub async fn read(
    stream: &mut Stream,
    reused: bool,
    timeout: Duration,
) -> Result<Response, AttemptError> {
    let failed = |kind, stale| AttemptError::Upstream {
        kind,
        stale,
        sent: true,
    };
    let mut buf = BytesMut::with_capacity(HEAD_BUF);
    let read = async {
        loop {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return Err(failed(FailureKind::Reset, reused && buf.is_empty())),
                Ok(_) => {}
            }
            loop {
                match parse(&buf) {
                    Parsed::Partial if buf.len() > MAX_HEAD => {
                        return Err(failed(FailureKind::Protocol, false))
                    }
                    Parsed::Partial => break,
                    Parsed::Invalid => return Err(failed(FailureKind::Protocol, false)),
                    Parsed::Informational(n) => {
                        let _ = buf.split_to(n);
                        if buf.is_empty() {
                            break;
                        }
                    }
                    Parsed::Complete(resp) => return Ok(resp),
                }
            }
        }
    };
    let resp = match tokio::time::timeout(timeout, read).await {
        Ok(r) => r?,
        Err(_) => return Err(failed(FailureKind::Timeout, false)),
    };
    Ok(Response { buf, head: resp })
}

// The header's line offsets are on the stack for one call; boxing them would be an allocation
// per response.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    Partial,
    Invalid,
    /// A 1xx answer of this many bytes, skipped.
    Informational(usize),
    Complete(Head),
}

/// A parsed response header (its lines as offsets into the bytes read).
#[derive(Debug)]
struct Head {
    head_len: usize,
    status: u16,
    reason: (u16, u16),
    lines: [Line; MAX_LINES],
    count: u8,
    framing: Framing,
    /// The upstream keeps the connection open after this response.
    keepalive: bool,
    event_stream: bool,
}

fn parse(buf: &[u8]) -> Parsed {
    if buf.len() > u16::MAX as usize {
        return Parsed::Invalid;
    }
    let mut raw = [httparse::EMPTY_HEADER; MAX_LINES];
    let mut resp = httparse::Response::new(&mut raw);
    let head_len = match httparse::ParserConfig::default()
        .allow_spaces_after_header_name_in_responses(true)
        .parse_response(&mut resp, buf)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let (Some(status), Some(version)) = (resp.code, resp.version) else {
        return Parsed::Invalid;
    };
    match status {
        101 => return Parsed::Invalid,
        100..=199 => return Parsed::Informational(head_len),
        _ => {}
    }
    let base = buf.as_ptr() as usize;
    let span = |s: &[u8]| span(base, s);
    let mut lines = [Line::default(); MAX_LINES];
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut event_stream = false;
    for (i, h) in resp.headers.iter().enumerate() {
        let name = h.name.as_bytes();
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if is(b"content-length") {
            let Some(n) = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            else {
                return Parsed::Invalid;
            };
            if length.is_some_and(|l| l != n) {
                return Parsed::Invalid;
            }
            length = Some(n);
        } else if is(b"transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if is(b"connection") {
            for token in h.value.split(|&b| b == b',') {
                let token = token.trim_ascii();
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if is(b"content-type") {
            event_stream = h
                .value
                .get(..b"text/event-stream".len())
                .is_some_and(|t| t.eq_ignore_ascii_case(b"text/event-stream"));
        }
        lines[i] = Line {
            name: span(name),
            value: span(h.value),
        };
    }
    let framing = match (status, chunked, length) {
        (204 | 304, _, _) => Framing::Length(0),
        (_, Some(true), _) => Framing::Chunked(Chunked::default()),
        (_, Some(false), _) => Framing::UntilClose,
        (_, None, Some(n)) => Framing::Length(n),
        (_, None, None) => Framing::UntilClose,
    };
    // A response with both lengths is not trusted with the connection afterwards.
    let both = chunked.is_some() && length.is_some();
    let keepalive = !close && !both && (version == 1 || keep_alive_token);
    Parsed::Complete(Head {
        head_len,
        status,
        reason: resp.reason.map(|r| span(r.as_bytes())).unwrap_or_default(),
        lines,
        count: resp.headers.len() as u8,
        framing,
        keepalive,
        event_stream,
    })
}

/// What canaryd adds to the client's response header, and what it hides.
pub struct Edits<'a> {
    /// Appends canaryd's own lines (header rules, the sticky cookie).
    pub add: &'a (dyn Fn(&mut Vec<u8>) + Sync),
    /// Whether an upstream header is hidden.
    pub hides: &'a (dyn Fn(&[u8]) -> bool + Sync),
    /// The client's connection stays open after this response if the body allows it.
    pub keepalive: bool,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
}

/// How a relay ended, and what it leaves.
pub struct Relayed {
    pub end: RelayEnd,
    /// Response body bytes relayed (as on the wire: chunked framing included).
    pub body_bytes: u64,
    /// The client's connection may serve another request.
    pub client_keepalive: bool,
    /// The upstream connection may serve another request.
    pub upstream_reusable: bool,
}

/// Writes `resp`'s header to `client` with `edits`, then relays its body from `upstream`.
pub async fn relay(
    resp: &mut Response,
    upstream: &mut Stream,
    client: &mut Stream,
    edits: &Edits<'_>,
) -> Relayed {
    let client_keepalive = edits.keepalive && resp.head.framing != Framing::UntilClose;
    let mut out = OUT.with(|o| std::mem::take(&mut *o.borrow_mut()));
    out.clear();
    write_head(&mut out, resp, edits, client_keepalive);
    // The body bytes read with the header.
    let head_len = resp.head.head_len;
    let rest = resp.buf.len() - head_len;
    let mut upstream_reusable = resp.head.keepalive;
    let mut relayed = Relayed {
        end: RelayEnd::Complete,
        body_bytes: 0,
        client_keepalive,
        upstream_reusable: false,
    };
    let first = match resp.head.framing.advance(&resp.buf[head_len..]) {
        Ok(n) => n,
        Err(_) => {
            relayed.end = RelayEnd::Upstream(FailureKind::Protocol);
            put_back(out);
            return relayed;
        }
    };
    if first < rest {
        // More than the response: the connection is not in a known state.
        upstream_reusable = false;
    }
    let body = &resp.buf[head_len..head_len + first];
    let wrote = if body.len() <= WITH_HEAD {
        out.extend_from_slice(body);
        write(client, &out, edits.write_timeout).await
    } else {
        match write(client, &out, edits.write_timeout).await {
            Ok(()) => write(client, body, edits.write_timeout).await,
            Err(e) => Err(e),
        }
    };
    put_back(out);
    if wrote.is_err() {
        relayed.end = RelayEnd::Client;
        return relayed;
    }
    relayed.body_bytes = first as u64;
    // The rest of the body, as it arrives.
    while !resp.head.framing.is_done() {
        resp.buf.clear();
        resp.buf.reserve(READ_BUF);
        let read = tokio::time::timeout(edits.read_timeout, upstream.read_buf(&mut resp.buf));
        let n = match read.await {
            Ok(Ok(0)) if resp.head.framing == Framing::UntilClose => break,
            Ok(Ok(0)) | Ok(Err(_)) => {
                relayed.end = RelayEnd::Upstream(FailureKind::Reset);
                return relayed;
            }
            Ok(Ok(n)) => n,
            Err(_) => {
                relayed.end = RelayEnd::Upstream(FailureKind::Timeout);
                return relayed;
            }
        };
        let used = match resp.head.framing.advance(&resp.buf[..n]) {
            Ok(used) => used,
            Err(_) => {
                relayed.end = RelayEnd::Upstream(FailureKind::Protocol);
                return relayed;
            }
        };
        if used < n {
            upstream_reusable = false;
        }
        if write(client, &resp.buf[..used], edits.write_timeout)
            .await
            .is_err()
        {
            relayed.end = RelayEnd::Client;
            return relayed;
        }
        relayed.body_bytes += used as u64;
    }
    relayed.upstream_reusable = upstream_reusable && resp.head.framing != Framing::UntilClose;
    relayed
}

/// The status line, the upstream's lines minus the hop-by-hop and hidden ones, canaryd's lines,
/// `Date`, `Connection`, and the blank line.
fn write_head(out: &mut Vec<u8>, resp: &Response, edits: &Edits<'_>, keepalive: bool) {
    out.extend_from_slice(b"HTTP/1.1 ");
    let mut code = itoa::Buffer::new();
    out.extend_from_slice(code.format(resp.head.status).as_bytes());
    out.push(b' ');
    let reason = resp.slice(resp.head.reason);
    if reason.is_empty() {
        let canonical = http::StatusCode::from_u16(resp.head.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        out.extend_from_slice(canonical.as_bytes());
    } else {
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");
    for line in &resp.head.lines[..resp.head.count as usize] {
        let name = resp.slice(line.name);
        let hop = |n: &[u8]| name.eq_ignore_ascii_case(n);
        if hop(b"connection") || hop(b"keep-alive") || hop(b"date") || (edits.hides)(name) {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(resp.slice(line.value));
        out.extend_from_slice(b"\r\n");
    }
    (edits.add)(out);
    out.extend_from_slice(b"Date: ");
    out.extend_from_slice(pingora_core::protocols::http::date::get_cached_date().as_bytes());
    out.extend_from_slice(if keepalive {
        b"\r\nConnection: keep-alive\r\n\r\n"
    } else {
        b"\r\nConnection: close\r\n\r\n"
    });
}

fn put_back(out: Vec<u8>) {
    if out.capacity() <= OUT_KEEP {
        OUT.with(|o| *o.borrow_mut() = out);
    }
}

/// Writes `bytes` to the client within `timeout` and sends them on.
async fn write(client: &mut Stream, bytes: &[u8], timeout: Duration) -> std::io::Result<()> {
    let write = async {
        client.write_all(bytes).await?;
        client.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

#[cfg(test)]
mod tests;
