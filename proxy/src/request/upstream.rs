//! One attempt over one upstream connection: connecting, writing the request header and body,
//! reading the response header, then relaying the response to the client — its body streamed
//! chunk by chunk as it arrives (nothing waits for the whole of it), or, after a `101`, both
//! directions of the upgraded connection (see `upgrade.rs`).
//!
//! Upstream connections speak HTTP/1.1 through pingora-core's v1 client session over a TCP
//! [`Stream`], or a TLS one for an `https://` server; the request loop owns the connection and gives it back to the per-worker
//! pool (`upstream_pool.rs`) when the response ended cleanly.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header;
use pingora_core::protocols::http::v1::client::HttpSession as ClientSession;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::Stream;
use pingora_error::{Error, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};

use super::retry::{is_too_large, RequestBody, SendError, TOO_LARGE};
use crate::metrics::FailureKind;
use crate::tls::UpstreamTls;

/// How an attempt failed before anything reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptError {
    /// The upstream failed. `stale`: on a pooled connection, before any byte of the response —
    /// the upstream had closed it while it was idle; not the server's fault. `sent`: the
    /// whole request had been written (it may have reached the application).
    Upstream {
        kind: FailureKind,
        stale: bool,
        sent: bool,
    },
    /// The client failed (went away: 0, timed out: 408, bad body: 400, body over
    /// `max_body_size`: 413).
    Client(u16),
}

/// How relaying a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// The whole response reached the client.
    Complete,
    /// The upstream failed after the response header was sent.
    Upstream(FailureKind),
    /// The client went away (or stalled past `client_timeout`).
    Client,
}

/// Opens a new connection to `addr` within `timeout`, the TLS handshake included for an
/// `https://` server.
pub async fn connect(
    addr: SocketAddr,
    tls: Option<&UpstreamTls>,
    timeout: Duration,
) -> Result<Stream, FailureKind> {
    let attempt = async {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let stream: Stream = Box::new(L4Stream::from(tcp));
        match tls {
            Some(tls) => tls.connect(stream).await,
            None => Ok(stream),
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(FailureKind::Timeout),
        Ok(Err(e)) => {
            tracing::debug!(server = %addr, error = %e, "connect failed");
            Err(FailureKind::Connect)
        }
        Ok(Ok(stream)) => Ok(stream),
    }
}

/// The kind of an upstream error, as counted in `canaryd_upstream_failures_total`.
pub fn failure_kind(e: &Error) -> FailureKind {
    match e.etype() {
        ErrorType::ReadTimedout | ErrorType::WriteTimedout | ErrorType::ConnectTimedout => {
            FailureKind::Timeout
        }
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::InvalidH2 => {
            FailureKind::Protocol
        }
        _ => FailureKind::Reset,
    }
}

/// Status to answer a client whose own side failed (0: it is gone, answer nothing; 413: its
/// body passed `max_body_size`).
pub fn client_status(e: &Error) -> u16 {
    if is_too_large(e) {
        return TOO_LARGE;
    }
    match e.etype() {
        ErrorType::ReadTimedout => 408,
        ErrorType::ReadError
        | ErrorType::WriteError
        | ErrorType::ConnectionClosed
        | ErrorType::WriteTimedout => 0,
        _ => 400,
    }
}

/// The request header as sent upstream: HTTP/1.1, keepalive unless it is an upgrade.
pub fn upstream_header(ds: &ServerSession, upgrade: bool) -> Box<RequestHeader> {
    let mut req = Box::new(ds.req_header().clone());
    req.set_version(http::Version::HTTP_11);
    if !upgrade {
        req.remove_header(&header::CONNECTION);
    }
    if ds.is_http2() {
        if !req.headers.contains_key(header::HOST) {
            if let Some(authority) = req.uri.authority().map(|a| a.as_str().to_owned()) {
                let _ = req.insert_header(header::HOST, authority);
            }
        }
        // HTTP/2 frames its body itself; HTTP/1.1 needs a length or chunks.
        if !req.headers.contains_key(header::CONTENT_LENGTH)
            && !matches!(req.method, http::Method::GET | http::Method::HEAD)
        {
            let _ = req.insert_header(header::TRANSFER_ENCODING, "chunked");
        }
    }
    req
}

/// Writes the request and its body, then reads the response header.
pub async fn send_request(
    ds: &mut ServerSession,
    us: &mut ClientSession,
    req: Box<RequestHeader>,
    body: &mut RequestBody,
    reused: bool,
) -> Result<(), AttemptError> {
    let upstream =
        |e: Box<Error>, us: &ClientSession, sent: bool| attempt_error(&e, us, reused, sent);
    if let Err(e) = us.write_request_header(req).await {
        return Err(upstream(e, us, false));
    }
    match body.send(ds, us).await {
        Ok(()) => {}
        Err(SendError::Client(e)) => {
            tracing::debug!(error = %e, "reading the request body failed");
            return Err(AttemptError::Client(client_status(&e)));
        }
        Err(SendError::Upstream(e)) => return Err(upstream(e, us, false)),
        Err(SendError::TooLarge) => return Err(AttemptError::Client(TOO_LARGE)),
    }
    read_response_header(us, reused).await
}

/// An upstream failure of an attempt; `sent`: the whole request had been written.
fn attempt_error(e: &Error, us: &ClientSession, reused: bool, sent: bool) -> AttemptError {
    let kind = failure_kind(e);
    tracing::debug!(error = %e, reused, "upstream attempt failed");
    AttemptError::Upstream {
        kind,
        stale: reused && kind == FailureKind::Reset && us.resp_header().is_none(),
        sent,
    }
}

/// A request header written straight to the wire (`upstream_wire.rs`) failed with `e`.
pub fn write_failed(e: &std::io::Error, reused: bool) -> AttemptError {
    tracing::debug!(error = %e, reused, "upstream attempt failed");
    let kind = if e.kind() == std::io::ErrorKind::TimedOut {
        FailureKind::Timeout
    } else {
        FailureKind::Reset
    };
    AttemptError::Upstream {
        kind,
        stale: reused && kind == FailureKind::Reset,
        sent: false,
    }
}

/// Reads the response header of a written request (informational responses other than `101`
/// are skipped: canaryd answered `100 Continue` itself).
pub async fn read_response_header(
    us: &mut ClientSession,
    reused: bool,
) -> Result<(), AttemptError> {
    loop {
        if let Err(e) = us.read_response().await {
            return Err(attempt_error(&e, us, reused, true));
        }
        match us.resp_header().map(|r| r.status.as_u16()) {
            Some(101) | None => return Ok(()),
            Some(100..=199) => continue,
            Some(_) => return Ok(()),
        }
    }
}

/// Writes the response header (`resp`) to the client and streams the body.
pub async fn relay_response(
    ds: &mut ServerSession,
    us: &mut ClientSession,
    resp: Box<ResponseHeader>,
    bytes_out: &mut u64,
) -> RelayEnd {
    if let Err(e) = ds.write_response_header(resp).await {
        tracing::debug!(error = %e, "writing the response header failed");
        return RelayEnd::Client;
    }
    loop {
        if us.is_body_done() {
            break;
        }
        let chunk = match us.read_body_ref().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "reading the response body failed");
                return RelayEnd::Upstream(failure_kind(&e));
            }
        };
        *bytes_out += chunk.len() as u64;
        if let Err(e) = write_body(ds, chunk).await {
            tracing::debug!(error = %e, "writing the response body failed");
            return RelayEnd::Client;
        }
    }
    match ds.write_response_body(Bytes::new(), true).await {
        Ok(()) => RelayEnd::Complete,
        Err(_) => RelayEnd::Client,
    }
}

/// Writes one body chunk to the client without copying it for HTTP/1.
pub async fn write_body(ds: &mut ServerSession, chunk: &[u8]) -> Result<(), Box<Error>> {
    if chunk.is_empty() {
        return Ok(());
    }
    match ds {
        ServerSession::H1(s) => s.write_body(chunk).await.map(|_| ()),
        other => {
            other
                .write_response_body(Bytes::copy_from_slice(chunk), false)
                .await
        }
    }
}
