//! Forwarding headers as the seed's nginx front sets them: `X-Real-IP $remote_addr`,
//! `X-Forwarded-For $proxy_add_x_forwarded_for` (appended), `X-Forwarded-Proto $scheme`.
//! `Host` is passed through untouched (Pingora forwards the request header as received).

use std::io::Write as _;
use std::net::IpAddr;

use bytes::BytesMut;
use http::HeaderValue;
use pingora_http::RequestHeader;

/// Sets the forwarding headers on the upstream request.
pub fn apply(req: &mut RequestHeader, client_ip: Option<IpAddr>, scheme: &'static str) {
    let mut ip_buf = [0u8; 48];
    let ip: &[u8] = match client_ip {
        Some(ip) => {
            let mut cursor = std::io::Cursor::new(&mut ip_buf[..]);
            let _ = write!(cursor, "{ip}");
            let n = cursor.position() as usize;
            &ip_buf[..n]
        }
        None => b"unix",
    };

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
}
