//! HTTP/1.1 wire format for the test client: encoding a request, parsing a
//! response head, deciding how the body is framed, and decoding chunked
//! bodies. Pure functions over `Read`/`BufRead` so they are unit-testable
//! without sockets.

use std::io::{self, BufRead, Read};

/// Longest status or header line accepted (guards against garbage input).
const MAX_LINE: u64 = 64 * 1024;
/// Most header lines accepted in one response head.
const MAX_HEADERS: usize = 256;

/// Status line and headers of one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub status: u16,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor_version: u8,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Whether the connection may carry another request after this response
    /// (ignoring body framing, see [`Framing::reusable`]).
    pub fn keep_alive(&self) -> bool {
        let tokens = || {
            find_all(&self.headers, "connection")
                .into_iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
        };
        if tokens().any(|t| t.eq_ignore_ascii_case("close")) {
            return false;
        }
        self.minor_version >= 1 || tokens().any(|t| t.eq_ignore_ascii_case("keep-alive"))
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body at all (HEAD, 1xx, 204, 304).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    Eof,
}

impl Framing {
    /// Whether the connection is positioned at the next response once the
    /// body has been read.
    pub fn reusable(self) -> bool {
        !matches!(self, Framing::Eof)
    }
}

/// First value of header `name` (case-insensitive).
pub(crate) fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// All values of header `name` (case-insensitive), in received order.
pub(crate) fn find_all<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn has(headers: &[(&str, &str)], name: &str) -> bool {
    headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
}

/// Serializes a request. Adds `Host: <host>` unless given, and
/// `Content-Length` when the body is non-empty (or the method normally has a
/// body) unless a length or transfer encoding was given.
pub(crate) fn encode_request(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\n").as_bytes());
    if !has(headers, "host") {
        out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
    }
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    let wants_length = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
    if wants_length && !has(headers, "content-length") && !has(headers, "transfer-encoding") {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one CRLF- (or LF-) terminated line without the terminator.
/// Returns `None` on EOF before any byte.
fn read_line<R: BufRead>(r: &mut R) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n as u64 >= MAX_LINE {
            invalid("line too long")
        } else {
            io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-line")
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| invalid("non-UTF-8 line in response head"))
}

/// Reads a status line and headers. `None` when the stream ended before any
/// byte of a response.
pub(crate) fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head>> {
    let Some(status_line) = read_line(r)? else {
        return Ok(None);
    };
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let minor_version = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        _ => return Err(invalid(format!("bad status line {status_line:?}"))),
    };
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s))
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(r)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed in headers")
        })?;
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(invalid("too many headers"));
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(Some(Head {
        status,
        minor_version,
        headers,
    }))
}

/// How the body of `head`, answering a `method` request, is delimited.
pub(crate) fn framing(method: &str, head: &Head) -> io::Result<Framing> {
    if method.eq_ignore_ascii_case("HEAD")
        || (100..200).contains(&head.status)
        || head.status == 204
        || head.status == 304
    {
        return Ok(Framing::Empty);
    }
    let chunked = find_all(&head.headers, "transfer-encoding")
        .last()
        .and_then(|v| v.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
    if chunked {
        return Ok(Framing::Chunked);
    }
    if !find_all(&head.headers, "transfer-encoding").is_empty() {
        return Ok(Framing::Eof);
    }
    match find(&head.headers, "content-length") {
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Framing::Length)
            .map_err(|_| invalid(format!("bad content-length {v:?}"))),
        None => Ok(Framing::Eof),
    }
}

/// Reads one chunk of a chunked body: `Some(data)`, or `None` after the
/// terminating zero-size chunk and its trailers have been consumed.
pub(crate) fn read_chunk<R: BufRead>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let eof = || {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed in chunked body",
        )
    };
    let size_line = read_line(r)?.ok_or_else(eof)?;
    let size_hex = size_line.split(';').next().unwrap_or_default().trim();
    let size = u64::from_str_radix(size_hex, 16)
        .map_err(|_| invalid(format!("bad chunk size line {size_line:?}")))?;
    if size == 0 {
        // Trailers, up to an empty line.
        loop {
            let line = read_line(r)?.ok_or_else(eof)?;
            if line.is_empty() {
                return Ok(None);
            }
        }
    }
    let len = usize::try_from(size).map_err(|_| invalid("chunk too large"))?;
    let mut data = vec![0; len];
    r.read_exact(&mut data)?;
    let end = read_line(r)?.ok_or_else(eof)?;
    if !end.is_empty() {
        return Err(invalid("chunk not followed by CRLF"));
    }
    Ok(Some(data))
}

/// Reads a whole chunked body.
pub(crate) fn read_chunked<R: BufRead>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = read_chunk(r)? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads a whole body framed as `framing`.
pub(crate) fn read_body<R: BufRead>(r: &mut R, framing: Framing) -> io::Result<Vec<u8>> {
    match framing {
        Framing::Empty => Ok(Vec::new()),
        Framing::Chunked => read_chunked(r),
        Framing::Length(n) => {
            let mut body = Vec::new();
            r.by_ref().take(n).read_to_end(&mut body)?;
            if (body.len() as u64) < n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body ended after {} of {n} bytes", body.len()),
                ));
            }
            Ok(body)
        }
        Framing::Eof => {
            let mut body = Vec::new();
            r.read_to_end(&mut body)?;
            Ok(body)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn head(raw: &str) -> Head {
        read_head(&mut Cursor::new(raw.as_bytes()))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let raw = b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let mut r = Cursor::new(&raw[..]);
        assert_eq!(read_chunked(&mut r).unwrap(), b"hello, world");
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "NEXT", "decoder must stop right after the body");
    }

    #[test]
    fn chunked_body_chunk_by_chunk_and_hex_sizes() {
        let mut raw = b"A\r\n0123456789\r\n1f\r\n".to_vec();
        raw.extend_from_slice(&[b'x'; 31]);
        raw.extend_from_slice(b"\r\n0\r\n\r\n");
        let mut r = Cursor::new(raw);
        assert_eq!(read_chunk(&mut r).unwrap().unwrap(), b"0123456789");
        assert_eq!(read_chunk(&mut r).unwrap().unwrap(), vec![b'x'; 31]);
        assert_eq!(read_chunk(&mut r).unwrap(), None);
    }

    #[test]
    fn chunked_body_accepts_bare_lf() {
        let mut r = Cursor::new(&b"3\nabc\n0\n\n"[..]);
        assert_eq!(read_chunked(&mut r).unwrap(), b"abc");
    }

    #[test]
    fn chunked_body_errors() {
        let truncated = read_chunked(&mut Cursor::new(&b"5\r\nhel"[..])).unwrap_err();
        assert_eq!(truncated.kind(), io::ErrorKind::UnexpectedEof);
        let no_end = read_chunked(&mut Cursor::new(&b"5\r\nhello\r\n"[..])).unwrap_err();
        assert_eq!(no_end.kind(), io::ErrorKind::UnexpectedEof);
        let bad_size = read_chunked(&mut Cursor::new(&b"zz\r\n"[..])).unwrap_err();
        assert_eq!(bad_size.kind(), io::ErrorKind::InvalidData);
        let no_crlf = read_chunked(&mut Cursor::new(&b"2\r\nabc\r\n0\r\n\r\n"[..])).unwrap_err();
        assert_eq!(no_crlf.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn head_parsing_keeps_repeated_headers() {
        let h = head("HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Y:  z \r\n\r\n");
        assert_eq!(h.status, 200);
        assert_eq!(find(&h.headers, "x-y"), Some("z"));
        assert_eq!(find_all(&h.headers, "SET-COOKIE"), vec!["a=1", "b=2"]);
        assert!(h.keep_alive());
    }

    #[test]
    fn head_eof_before_any_byte_is_none() {
        assert_eq!(read_head(&mut Cursor::new(&b""[..])).unwrap(), None);
        assert!(read_head(&mut Cursor::new(&b"HTTP/1.1 200 OK\r\n"[..])).is_err());
        assert!(read_head(&mut Cursor::new(&b"SSH-2.0\r\n\r\n"[..])).is_err());
    }

    #[test]
    fn framing_rules() {
        let f = |raw: &str| framing("GET", &head(raw)).unwrap();
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n"),
            Framing::Length(12)
        );
        assert_eq!(
            f("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            Framing::Chunked
        );
        assert_eq!(f("HTTP/1.1 200 OK\r\n\r\n"), Framing::Eof);
        assert_eq!(
            f("HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n"),
            Framing::Empty
        );
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(framing("HEAD", &h).unwrap(), Framing::Empty);
        assert!(!head("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!head("HTTP/1.0 200 OK\r\n\r\n").keep_alive());
    }

    #[test]
    fn length_body_short_read_is_an_error() {
        let err = read_body(&mut Cursor::new(&b"abc"[..]), Framing::Length(5)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn request_encoding() {
        let req = encode_request("h:1", "POST", "/p?q=1", &[("X-A", "b")], b"hi");
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "POST /p?q=1 HTTP/1.1\r\nHost: h:1\r\nX-A: b\r\nContent-Length: 2\r\n\r\nhi"
        );
        let req = encode_request("h:1", "GET", "/", &[("host", "other")], b"");
        assert_eq!(
            String::from_utf8(req).unwrap(),
            "GET / HTTP/1.1\r\nhost: other\r\n\r\n"
        );
    }
}
