use pingora_core::protocols::http::v1::client::http_req_header_to_wire;

use super::*;

/// The same request as the session path builds it: a copy, HTTP/1.1, no `Connection`, the
/// forwarding headers set, the routing header stripped.
fn through_session(req: &RequestHeader, edits: &Edits<'_>) -> Vec<u8> {
    let mut up = req.clone();
    up.set_version(http::Version::HTTP_11);
    up.remove_header(&header::CONNECTION);
    crate::forwarding::apply(&mut up, edits.client_ip, edits.scheme);
    if let Some(h) = edits.strip {
        up.remove_header(h);
    }
    http_req_header_to_wire(&up).unwrap().to_vec()
}

/// Request line, then the header lines in any order.
fn lines(wire: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let text = wire.strip_suffix(b"\r\n\r\n").expect("ends the header");
    let mut it = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec());
    let first = it.next().unwrap();
    let mut rest: Vec<_> = it.collect();
    rest.sort();
    (first, rest)
}

#[test]
fn same_request_as_the_session_path() {
    let mut req = RequestHeader::build("GET", b"/api/x?q=1", None).unwrap();
    req.set_version(http::Version::HTTP_10);
    req.append_header("Host", "example.com").unwrap();
    req.append_header("user-AGENT", "curl/8").unwrap();
    req.append_header("Connection", "keep-alive").unwrap();
    req.append_header("X-Gateway-Version", "cpp").unwrap();
    req.append_header("x-forwarded-for", "203.0.113.7").unwrap();
    req.append_header("X-Real-IP", "1.2.3.4").unwrap();
    req.append_header("Cookie", "a=1").unwrap();
    req.append_header("Cookie", "b=2").unwrap();
    let strip = HeaderName::from_static("x-gateway-version");
    for strip in [None, Some(&strip)] {
        let edits = Edits {
            client_ip: Some("127.0.0.1".parse().unwrap()),
            scheme: "http",
            strip,
        };
        let mut direct = Vec::new();
        serialize(&mut direct, &req, &edits);
        assert_eq!(lines(&direct), lines(&through_session(&req, &edits)));
        assert!(direct.starts_with(b"GET /api/x?q=1 HTTP/1.1\r\n"));
        // The client's case is kept.
        assert!(direct.windows(12).any(|w| w == b"user-AGENT: "));
        assert_eq!(
            strip.is_some(),
            !direct.windows(17).any(|w| w == b"X-Gateway-Version")
        );
    }
}
