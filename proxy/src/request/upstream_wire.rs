//! The upstream request header written straight from the downstream one: no copy of the
//! request header, no header map built for upstream — the request line and the client's header
//! lines (their case kept) go into the worker's wire buffer, minus what canaryd replaces or
//! drops, plus the forwarding headers, the generated request id and the route's request header
//! rules, and leave in one write.
//!
//! pingora-core's v1 client session takes an owned request header for
//! `write_request_header`, which means a copy of the downstream one (two header maps: values
//! and name case) per request. The session only needs that header again to frame a request
//! body, to tell a `HEAD` response has no body and to recognise an upgrade, so this path is
//! taken for the requests where it needs none of it: HTTP/1 downstream, not `HEAD`, not an
//! upgrade, no body (`Content-Length` and `Transfer-Encoding` absent) — the common `GET` — and
//! whose route's header rules leave `Connection`, the forwarding headers and `X-Request-Id` to
//! canaryd. Every other request goes through the session as before
//! (`upstream::upstream_header`).

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::Duration;

use http::header;
use http::HeaderName;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;

use crate::head::RequestHead;
use crate::header_rules::{HeaderRules, Vars};
use crate::request_id::X_REQUEST_ID;
use tokio::io::AsyncWriteExt;

/// Capacity the worker's wire buffer starts with (a typical request header fits).
const WIRE_BUF: usize = 1024;

/// A wire buffer that grew past this for an unusual request is not kept.
const WIRE_BUF_KEEP: usize = 16 * 1024;

thread_local! {
    /// Each worker's buffer for the upstream request header; taken for a write, put back after.
    static WIRE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What canaryd changes in the request on its way upstream.
pub struct Edits<'a> {
    pub client_ip: Option<IpAddr>,
    pub scheme: &'static str,
    /// The routing header, when it is stripped before forwarding.
    pub strip: Option<&'a HeaderName>,
    /// The id canaryd generated, forwarded as `X-Request-Id` in place of the client's.
    pub request_id: Option<&'a [u8]>,
    /// The route's request header rules, and what their templates see.
    pub rules: &'a HeaderRules,
    pub vars: Vars<'a>,
}

/// Whether `ds`'s request can be written straight to the wire with `rules` (see the module
/// doc).
pub fn applies(ds: &ServerSession, upgrade: bool, rules: &HeaderRules) -> bool {
    let req = ds.req_header();
    !ds.is_http2()
        && rules_allow(rules)
        && !upgrade
        && req.method != http::Method::HEAD
        && !req.headers.contains_key(header::CONTENT_LENGTH)
        && !req.headers.contains_key(header::TRANSFER_ENCODING)
        && !req
            .raw_path()
            .iter()
            .any(|&b| matches!(b, 0x00 | b'\n' | b'\r' | b' '))
}

/// Whether the route's request rules leave `Connection`, the forwarding headers and
/// `X-Request-Id` to canaryd (the wire path writes those itself).
pub fn rules_allow(rules: &HeaderRules) -> bool {
    let canaryds = |name: &HeaderName| {
        name == header::CONNECTION
            || name == X_REQUEST_ID
            || crate::forwarding::NAMES.contains(&name.as_str().as_bytes())
    };
    !rules.request_names().any(canaryds)
}

/// Writes `req` (an HTTP/1 request header without a body, see [`applies`]) to `stream` as the
/// upstream request, with `edits`, within `timeout`.
pub async fn write(
    stream: &mut Stream,
    req: &dyn RequestHead,
    edits: &Edits<'_>,
    timeout: Duration,
) -> std::io::Result<()> {
    let mut buf = WIRE.with(|w| std::mem::take(&mut *w.borrow_mut()));
    buf.clear();
    buf.reserve(WIRE_BUF);
    serialize(&mut buf, req, edits);
    let written = async {
        stream.write_all(&buf).await?;
        stream.flush().await
    };
    let res = match tokio::time::timeout(timeout, written).await {
        Ok(res) => res,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    };
    if buf.capacity() <= WIRE_BUF_KEEP {
        WIRE.with(|w| *w.borrow_mut() = buf);
    }
    res
}

/// The request line (HTTP/1.1); the client's header lines minus `Connection`, the forwarding
/// headers, the stripped routing header, a replaced `X-Request-Id` and the headers the rules
/// remove or set; then the forwarding headers, the request id, the rules' headers and the blank
/// line.
fn serialize(out: &mut Vec<u8>, req: &dyn RequestHead, edits: &Edits<'_>) {
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.raw_path());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let strip = edits.strip.map(|h| h.as_str().as_bytes());
    let dropped = |name: &[u8]| {
        name.eq_ignore_ascii_case(b"connection")
            || crate::forwarding::NAMES
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            || strip.is_some_and(|s| name.eq_ignore_ascii_case(s))
            || (edits.request_id.is_some()
                && name.eq_ignore_ascii_case(X_REQUEST_ID.as_str().as_bytes()))
            || edits
                .rules
                .request_names()
                .any(|r| name.eq_ignore_ascii_case(r.as_str().as_bytes()))
    };
    req.each_header(&mut |name, value| {
        if !dropped(name) {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    });
    crate::forwarding::write_wire(out, req, edits.client_ip, edits.scheme);
    if let Some(id) = edits.request_id {
        out.extend_from_slice(b"X-Request-Id: ");
        out.extend_from_slice(id);
        out.extend_from_slice(b"\r\n");
    }
    edits.rules.write_request_wire(out, &edits.vars);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests;
