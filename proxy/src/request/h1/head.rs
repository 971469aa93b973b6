//! The request header of the common request, parsed in place: `httparse` over the bytes of
//! the first read, kept as offsets into them (no header map, no copy). Only a request this
//! path can serve as pingora-core's session would is taken (see [`Head::parse`]); any other
//! goes back, untouched, to pingora-core's session.

use bytes::BytesMut;
use http::{HeaderName, Method, Version};
use pingora_http::RequestHeader;

use super::{span, Line};
use crate::head::{Headers, RequestHead};

/// Header lines a request may have on this path (more: pingora-core's session).
const MAX_HEADERS: usize = 48;

/// A parsed request header and the bytes it was parsed from.
#[derive(Debug)]
pub struct Head {
    /// The request header, then whatever followed it (a pipelined next request).
    buf: BytesMut,
    /// Length of the request header in `buf`.
    len: usize,
    method: Method,
    target: (u16, u16),
    /// End of the path within the target (the query starts there).
    path_end: u16,
    /// The `Host` header line.
    host: Option<u8>,
    /// `Connection: close` from the client.
    close: bool,
    lines: [Line; MAX_HEADERS],
    count: u8,
}

// === impl Head ===

impl Head {
    /// Parses the request header at the start of `buf` when it is complete in it and is a
    /// request this path serves: HTTP/1.1, an origin-form target of plain visible ASCII, one
    /// plain `Host`, no body (`Content-Length`, `Transfer-Encoding` absent), not `HEAD`,
    /// `CONNECT` or an upgrade, no `Expect`, at most 48 header lines. Otherwise `buf` comes
    /// back for pingora-core's session, which also answers malformed requests.
    pub fn parse(buf: BytesMut) -> Result<Self, BytesMut> {
        if buf.len() > u16::MAX as usize {
            return Err(buf);
        }
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut raw);
        let len = match req.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => len,
            _ => return Err(buf),
        };
        if req.version != Some(1) {
            return Err(buf);
        }
        let (Some(method), Some(path)) = (req.method, req.path) else {
            return Err(buf);
        };
        let method = match Method::from_bytes(method.as_bytes()) {
            Ok(m) if m != Method::HEAD && m != Method::CONNECT => m,
            _ => return Err(buf),
        };
        if !plain_target(path.as_bytes()) {
            return Err(buf);
        }
        let base = buf.as_ptr() as usize;
        let span = |s: &[u8]| span(base, s);
        let target = span(path.as_bytes());
        let path_end = target.0
            + path
                .as_bytes()
                .iter()
                .position(|&b| b == b'?')
                .unwrap_or(path.len()) as u16;
        let mut lines = [Line::default(); MAX_HEADERS];
        let mut host = None;
        let mut close = false;
        for (i, h) in req.headers.iter().enumerate() {
            let name = h.name.as_bytes();
            let refused = |n: &[u8]| name.eq_ignore_ascii_case(n);
            if refused(b"content-length")
                || refused(b"transfer-encoding")
                || refused(b"upgrade")
                || refused(b"expect")
            {
                return Err(buf);
            }
            if name.eq_ignore_ascii_case(b"host") {
                if host.is_some() || !plain_host(h.value) {
                    return Err(buf);
                }
                host = Some(i as u8);
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"upgrade") {
                        return Err(buf);
                    }
                }
            }
            lines[i] = Line {
                name: span(name),
                value: span(h.value),
            };
        }
        if host.is_none() {
            return Err(buf);
        }
        let count = req.headers.len() as u8;
        Ok(Self {
            buf,
            len,
            method,
            target,
            path_end,
            host,
            close,
            lines,
            count,
        })
    }

    /// A header with nothing in it (a placeholder while a request changes hands).
    pub fn empty() -> Self {
        Self {
            buf: BytesMut::new(),
            len: 0,
            method: Method::GET,
            target: (0, 0),
            path_end: 0,
            host: None,
            close: true,
            lines: [Line::default(); MAX_HEADERS],
            count: 0,
        }
    }

    /// The request as pingora-core's header, for a copy sent elsewhere (shadow traffic):
    /// HTTP/1.1, without `Connection`.
    pub fn to_request_header(&self) -> Option<Box<RequestHeader>> {
        let mut req = RequestHeader::build(
            self.method.clone(),
            self.raw_path(),
            Some(self.count.into()),
        )
        .ok()?;
        for (name, value) in self.lines() {
            if name.eq_ignore_ascii_case(b"connection") {
                continue;
            }
            let name = HeaderName::from_bytes(name).ok()?;
            req.append_header(name, value).ok()?;
        }
        Some(Box::new(req))
    }

    /// The client asked to close the connection after this request.
    pub fn wants_close(&self) -> bool {
        self.close
    }

    /// The request header as the client sent it.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The bytes after the request header (the start of a pipelined next request).
    pub fn into_rest(mut self) -> BytesMut {
        if self.len == self.buf.len() {
            // The usual case: nothing follows, and the buffer is freed with the request.
            return BytesMut::new();
        }
        self.buf.split_off(self.len)
    }

    fn slice(&self, (start, end): (u16, u16)) -> &[u8] {
        &self.buf[start as usize..end as usize]
    }

    fn lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.lines[..self.count as usize]
            .iter()
            .map(|l| (self.slice(l.name), self.slice(l.value)))
    }
}

impl Headers for Head {
    fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        let name = name.as_str().as_bytes();
        self.lines()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn each_value(&self, name: &HeaderName, f: &mut dyn FnMut(&[u8]) -> bool) {
        let name = name.as_str().as_bytes();
        for (n, v) in self.lines() {
            if n.eq_ignore_ascii_case(name) && f(v) {
                return;
            }
        }
    }
}

impl RequestHead for Head {
    fn method(&self) -> &Method {
        &self.method
    }

    fn raw_path(&self) -> &[u8] {
        self.slice(self.target)
    }

    fn path(&self) -> &[u8] {
        self.slice((self.target.0, self.path_end))
    }

    fn version(&self) -> Version {
        Version::HTTP_11
    }

    fn host(&self) -> &[u8] {
        let host = match self.host {
            Some(i) => self.slice(self.lines[i as usize].value),
            None => b"",
        };
        crate::routes::strip_port(host)
    }

    fn each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        for (n, v) in self.lines() {
            f(n, v);
        }
    }
}

/// An origin-form target whose every byte both `http::Uri` (path and query) and the upstream
/// take as they are: visible ASCII without `"#<>` `` ` `` `{}`.
fn plain_target(path: &[u8]) -> bool {
    path.first() == Some(&b'/')
        && path
            .iter()
            .all(|&b| (0x21..=0x7e).contains(&b) && !b"\"#<>`{}".contains(&b))
}

/// A `Host` value of letters, digits and `.-_:[]` (a name or address and a port).
fn plain_host(host: &[u8]) -> bool {
    !host.is_empty()
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
}

#[cfg(test)]
mod tests;
