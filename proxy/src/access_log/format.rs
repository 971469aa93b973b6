//! One access-log line, written straight into the worker's buffer: nginx's `combined` format
//! byte for byte, or one JSON object. Nothing here allocates; numbers go through `itoa`, the
//! time through the per-second cache in `time.rs`.
//!
//! `combined` is
//! `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"`
//! with nginx's escaping of variable values (`"`, `\`, control bytes and bytes ≥ 0x7f as
//! `\xHH`) and `-` for a value that is absent.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::head::RequestHead;

use super::time::Now;
use crate::routing::Variant;

/// What the request loop knows about a request when it ends.
pub struct Entry<'a> {
    pub req: &'a dyn RequestHead,
    pub http2: bool,
    pub client: Option<IpAddr>,
    /// As sent to the client; 499 when the client went away before any answer (as nginx).
    pub status: u16,
    /// Response body bytes sent to the client.
    pub bytes: u64,
    /// From the request header to the end of the response.
    pub duration: Duration,
    /// The server of the last attempt, if one was picked.
    pub upstream: Option<SocketAddr>,
    /// From the last attempt's start to the end of the response.
    pub upstream_time: Option<Duration>,
    /// The request id (`$request_id`: the client's `X-Request-Id` or canaryd's own).
    pub request_id: Option<&'a [u8]>,
    /// The side of the split; `None` for a route to a named upstream.
    pub variant: Option<Variant>,
    pub route: &'a str,
}

/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent"\n`
pub fn combined(out: &mut Vec<u8>, e: &Entry<'_>, now: &Now) {
    remote_addr(out, e.client);
    out.extend_from_slice(b" - ");
    match basic_auth_user(e.req) {
        Some(user) => escape_nginx(out, &user),
        None => out.push(b'-'),
    }
    out.extend_from_slice(b" [");
    out.extend_from_slice(now.local());
    out.extend_from_slice(b"] \"");
    request_line(out, e.req, e.http2, escape_nginx);
    out.extend_from_slice(b"\" ");
    int(out, e.status);
    out.push(b' ');
    int(out, e.bytes);
    out.extend_from_slice(b" \"");
    header_or_dash(out, e.req, http::header::REFERER);
    out.extend_from_slice(b"\" \"");
    header_or_dash(out, e.req, http::header::USER_AGENT);
    out.extend_from_slice(b"\"\n");
}

/// `{"time":…,"request_id":…,"client":…,"method":…,"path":…,"status":…,"bytes":…,
/// "duration":…,"upstream":…,"upstream_time":…,"variant":…,"route":…}\n`; absent values are
/// `null`, times in seconds with millisecond precision.
pub fn json(out: &mut Vec<u8>, e: &Entry<'_>, now: &Now) {
    out.extend_from_slice(b"{\"time\":\"");
    out.extend_from_slice(now.iso8601());
    out.extend_from_slice(b"\",\"request_id\":");
    match e.request_id {
        Some(id) => json_string(out, id),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"client\":");
    quoted_or_null(out, e.client);
    out.extend_from_slice(b",\"method\":");
    json_string(out, e.req.method().as_str().as_bytes());
    out.extend_from_slice(b",\"path\":");
    json_string(out, e.req.raw_path());
    out.extend_from_slice(b",\"status\":");
    int(out, e.status);
    out.extend_from_slice(b",\"bytes\":");
    int(out, e.bytes);
    out.extend_from_slice(b",\"duration\":");
    seconds(out, e.duration);
    out.extend_from_slice(b",\"upstream\":");
    quoted_or_null(out, e.upstream);
    out.extend_from_slice(b",\"upstream_time\":");
    match e.upstream_time {
        Some(t) => seconds(out, t),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"variant\":");
    match e.variant {
        Some(v) => {
            out.push(b'"');
            out.extend_from_slice(v.as_str().as_bytes());
            out.push(b'"');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"route\":");
    json_string(out, e.route.as_bytes());
    out.extend_from_slice(b"}\n");
}

/// `GET /path?q HTTP/1.1`, the request target as the client sent it.
fn request_line(
    out: &mut Vec<u8>,
    req: &dyn RequestHead,
    http2: bool,
    esc: fn(&mut Vec<u8>, &[u8]),
) {
    esc(out, req.method().as_str().as_bytes());
    out.push(b' ');
    esc(out, req.raw_path());
    out.extend_from_slice(match (http2, req.version()) {
        (true, _) => b" HTTP/2.0",
        (false, http::Version::HTTP_10) => b" HTTP/1.0",
        (false, http::Version::HTTP_09) => b" HTTP/0.9",
        _ => b" HTTP/1.1",
    });
}

fn header_or_dash(out: &mut Vec<u8>, req: &dyn RequestHead, name: http::header::HeaderName) {
    match req.get(&name) {
        Some(v) => escape_nginx(out, v),
        None => out.push(b'-'),
    }
}

fn remote_addr(out: &mut Vec<u8>, client: Option<IpAddr>) {
    match client {
        Some(ip) => {
            let mut buf = [0u8; 48];
            out.extend_from_slice(crate::forwarding::remote_addr(Some(ip), &mut buf));
        }
        None => out.push(b'-'),
    }
}

/// An address as a JSON string (through `Display`, without a `String`), or `null`.
fn quoted_or_null(out: &mut Vec<u8>, value: Option<impl std::fmt::Display>) {
    use std::io::Write as _;
    match value {
        Some(v) => {
            let _ = write!(out, "\"{v}\"");
        }
        None => out.extend_from_slice(b"null"),
    }
}

fn int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Seconds with millisecond precision, as nginx's `$request_time`: `0.004`.
fn seconds(out: &mut Vec<u8>, d: Duration) {
    let ms = d.as_millis();
    int(out, ms / 1000);
    let frac = (ms % 1000) as u16;
    out.push(b'.');
    out.push(b'0' + (frac / 100) as u8);
    out.push(b'0' + (frac / 10 % 10) as u8);
    out.push(b'0' + (frac % 10) as u8);
}

/// nginx's `ngx_http_log_escape`: `"`, `\`, bytes below 0x20 and from 0x7f up become `\xHH`
/// (upper-case hex); everything else is copied.
pub fn escape_nginx(out: &mut Vec<u8>, value: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = 0;
    for (i, &b) in value.iter().enumerate() {
        if !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\' {
            out.extend_from_slice(&value[start..i]);
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 0xf)],
            ]);
            start = i + 1;
        }
    }
    out.extend_from_slice(&value[start..]);
}

/// A JSON string of `value`: `"` and `\` escaped, control characters as `\u00XX`, bytes that
/// are not UTF-8 as U+FFFD, so every line parses.
pub fn json_string(out: &mut Vec<u8>, value: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for chunk in value.utf8_chunks() {
        let valid = chunk.valid().as_bytes();
        let mut start = 0;
        for (i, &b) in valid.iter().enumerate() {
            if b < 0x20 || b == b'"' || b == b'\\' {
                out.extend_from_slice(&valid[start..i]);
                match b {
                    b'"' => out.extend_from_slice(b"\\\""),
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    _ => out.extend_from_slice(&[
                        b'\\',
                        b'u',
                        b'0',
                        b'0',
                        HEX[usize::from(b >> 4)],
                        HEX[usize::from(b & 0xf)],
                    ]),
                }
                start = i + 1;
            }
        }
        out.extend_from_slice(&valid[start..]);
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    out.push(b'"');
}

/// nginx's `$remote_user`: the user name of an `Authorization: Basic` header (whether or not
/// anything checks it), when it decodes and has a `:`; otherwise absent.
fn basic_auth_user(req: &dyn RequestHead) -> Option<UserName> {
    let v = req.get(&http::header::AUTHORIZATION)?;
    if v.len() < 6 || !v[..5].eq_ignore_ascii_case(b"basic") || v[5] != b' ' {
        return None;
    }
    let encoded = v[6..].trim_ascii_start();
    let mut user = UserName::default();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in encoded {
        let six = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(six);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            let byte = (acc >> bits) as u8;
            if byte == b':' {
                return (user.len > 0).then_some(user);
            }
            user.push(byte)?;
        }
    }
    None
}

/// A decoded user name, on the stack (longer ones are not logged).
struct UserName {
    buf: [u8; 128],
    len: usize,
}

impl Default for UserName {
    fn default() -> Self {
        Self {
            buf: [0; 128],
            len: 0,
        }
    }
}

impl UserName {
    fn push(&mut self, b: u8) -> Option<()> {
        *self.buf.get_mut(self.len)? = b;
        self.len += 1;
        Some(())
    }
}

impl std::ops::Deref for UserName {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
