//! Forwarding headers as the seed's nginx front sets them: `X-Real-IP $remote_addr`,
//! `X-Forwarded-For $proxy_add_x_forwarded_for` (appended), `X-Forwarded-Proto $scheme`.
//! `Host` is passed through untouched (Pingora forwards the request header as received).

use std::io::Write as _;
use std::net::IpAddr;

use bytes::BytesMut;
use http::{HeaderName, HeaderValue};
use pingora_http::RequestHeader;

use crate::head::Headers;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The headers [`apply`] sets (lowercase): a request written straight to the wire
/// (`request/upstream_wire.rs`) leaves the client's out and writes them with [`write_wire`].
pub const NAMES: [&[u8]; 3] = [b"x-forwarded-for", b"x-real-ip", b"x-forwarded-proto"];

/// `$remote_addr`: the client's address as text, in `buf`.
pub(crate) fn remote_addr(client_ip: Option<IpAddr>, buf: &mut [u8; 48]) -> &[u8] {
    match client_ip {
        // Dotted quad by hand: `Display` for an address costs as much as the rest of the
        // forwarding headers together.
        Some(IpAddr::V4(v4)) => {
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + (octet / 10) % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            &buf[..n]
        }
        Some(ip) => {
            let mut cursor = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cursor, "{ip}");
            let n = cursor.position() as usize;
            &buf[..n]
        }
        None => b"unix",
    }
}

/// Appends the forwarding header lines of `req` (as [`apply`] would set them) to `out`.
pub fn write_wire(
    out: &mut Vec<u8>,
    req: &dyn Headers,
    client_ip: Option<IpAddr>,
    scheme: &'static str,
) {
    let mut ip_buf = [0u8; 48];
    let ip = remote_addr(client_ip, &mut ip_buf);
    out.extend_from_slice(b"X-Forwarded-For: ");
    req.each_value(&X_FORWARDED_FOR, &mut |v| {
        out.extend_from_slice(v);
        out.extend_from_slice(b", ");
        false
    });
    out.extend_from_slice(ip);
    out.extend_from_slice(b"\r\nX-Real-IP: ");
    out.extend_from_slice(ip);
    out.extend_from_slice(b"\r\nX-Forwarded-Proto: ");
    out.extend_from_slice(scheme.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Sets the forwarding headers on the upstream request.
pub fn apply(req: &mut RequestHeader, client_ip: Option<IpAddr>, scheme: &'static str) {
    let mut ip_buf = [0u8; 48];
    let ip = remote_addr(client_ip, &mut ip_buf);

    // $proxy_add_x_forwarded_for: existing values joined with ", ", then ours.
    let mut xff = BytesMut::new();
    for v in req.headers.get_all("x-forwarded-for") {
        if !xff.is_empty() {
            xff.extend_from_slice(b", ");
        }
        xff.extend_from_slice(v.as_bytes());
    }
    if !xff.is_empty() {
        xff.extend_from_slice(b", ");
    }
    xff.extend_from_slice(ip);

    if let Ok(v) = HeaderValue::from_maybe_shared(xff.freeze()) {
        let _ = req.insert_header("X-Forwarded-For", v);
    }
    if let Ok(v) = HeaderValue::from_bytes(ip) {
        let _ = req.insert_header("X-Real-IP", v);
    }
    let _ = req.insert_header("X-Forwarded-Proto", HeaderValue::from_static(scheme));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_like_nginx() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Forwarded-For", "203.0.113.7").unwrap();
        req.append_header("X-Forwarded-For", "198.51.100.2")
            .unwrap();
        req.append_header("X-Real-IP", "1.2.3.4").unwrap();
        apply(&mut req, Some("127.0.0.1".parse().unwrap()), "http");
        assert_eq!(
            req.headers.get("x-forwarded-for").unwrap(),
            "203.0.113.7, 198.51.100.2, 127.0.0.1"
        );
        assert_eq!(req.headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(req.headers.get("x-real-ip").unwrap(), "127.0.0.1");
        assert_eq!(req.headers.get("x-forwarded-proto").unwrap(), "http");

        let mut fresh = RequestHeader::build("GET", b"/", None).unwrap();
        apply(&mut fresh, Some("::1".parse().unwrap()), "http");
        assert_eq!(fresh.headers.get("x-forwarded-for").unwrap(), "::1");
    }

    #[test]
    fn wire_lines_match_apply() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("X-Forwarded-For", "203.0.113.7").unwrap();
        req.append_header("X-Forwarded-For", "198.51.100.2")
            .unwrap();
        let mut out = Vec::new();
        write_wire(&mut out, &req, Some("127.0.0.1".parse().unwrap()), "https");
        assert_eq!(
            out,
            b"X-Forwarded-For: 203.0.113.7, 198.51.100.2, 127.0.0.1\r\n\
              X-Real-IP: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n"
        );
        out.clear();
        let fresh = RequestHeader::build("GET", b"/", None).unwrap();
        write_wire(&mut out, &fresh, None, "http");
        assert_eq!(
            out,
            b"X-Forwarded-For: unix\r\nX-Real-IP: unix\r\nX-Forwarded-Proto: http\r\n"
        );
    }
}
