use bytes::BytesMut;
use http::{header, HeaderName, Method};

use super::Head;
use crate::head::{find_value, Headers, RequestHead};

fn parse(raw: &str) -> Result<Head, BytesMut> {
    Head::parse(BytesMut::from(raw.as_bytes()))
}

#[test]
fn a_plain_get_is_parsed_in_place() {
    let raw = "GET /api/x?q=1 HTTP/1.1\r\nHost: Example.com:8080\r\nCookie: a=1\r\ncookie: b=2\r\nX-Y: z\r\n\r\n";
    let head = parse(raw).unwrap();
    assert_eq!(head.method(), &Method::GET);
    assert_eq!(head.raw_path(), b"/api/x?q=1");
    assert_eq!(head.path(), b"/api/x");
    assert_eq!(head.host(), b"Example.com");
    assert_eq!(head.get(&HeaderName::from_static("x-y")), Some(&b"z"[..]));
    let cookies: Vec<Vec<u8>> = {
        let mut all = Vec::new();
        head.each_value(&header::COOKIE, &mut |v| {
            all.push(v.to_vec());
            false
        });
        all
    };
    assert_eq!(cookies, [b"a=1".to_vec(), b"b=2".to_vec()]);
    assert_eq!(
        find_value(&head, &header::COOKIE, |v| (v == b"b=2").then_some(2)),
        Some(2)
    );
    let mut lines = Vec::new();
    head.each_header(&mut |n, v| lines.push((n.to_vec(), v.to_vec())));
    assert_eq!(lines[1], (b"Cookie".to_vec(), b"a=1".to_vec()), "case kept");
    assert_eq!(head.bytes(), raw.as_bytes());
    assert!(!head.wants_close());
    assert!(head.into_rest().is_empty());
}

#[test]
fn a_pipelined_next_request_stays_for_the_next_round() {
    let raw = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\n";
    let head = parse(raw).unwrap();
    assert_eq!(&head.into_rest()[..], b"GET /next HTTP/1.1\r\n");
}

#[test]
fn connection_close_is_seen() {
    let head = parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\n\r\n").unwrap();
    assert!(head.wants_close());
}

#[test]
fn every_other_request_goes_back_untouched() {
    for raw in [
        // Incomplete header.
        "GET / HTTP/1.1\r\nHost: a\r\n",
        // HTTP/1.0, HEAD, CONNECT.
        "GET / HTTP/1.0\r\nHost: a\r\n\r\n",
        "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        // A body, an upgrade, Expect.
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n\r\n",
        "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n",
        // Host: none, two, unusual.
        "GET / HTTP/1.1\r\nX: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a@b\r\n\r\n",
        // Targets: absolute form, asterisk, bytes http::Uri or upstreams may refuse.
        "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a<b HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n",
        // Malformed: pingora-core's session answers it.
        "GET / HTTP/1.1\r\nHost a\r\n\r\n",
        "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        let back = parse(raw).expect_err(raw);
        assert_eq!(&back[..], raw.as_bytes(), "{raw:?} comes back whole");
    }
}

#[test]
fn more_header_lines_than_the_path_holds_go_back() {
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 0..60 {
        raw.push_str(&format!("X-{i}: v\r\n"));
    }
    raw.push_str("\r\n");
    assert!(parse(&raw).is_err());
}

#[test]
fn a_copy_for_shadow_traffic_drops_connection() {
    let head =
        parse("GET /p?q HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nX-Y: z\r\n\r\n").unwrap();
    let req = head.to_request_header().unwrap();
    assert_eq!(req.raw_path(), b"/p?q");
    assert!(req.headers.get("connection").is_none());
    assert_eq!(req.headers.get("x-y").unwrap(), "z");
}
