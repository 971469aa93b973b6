use std::net::IpAddr;
use std::time::Duration;

use pingora_http::RequestHeader;

use super::format::{self, escape_nginx, json_string, Entry};
use super::time::{format_iso, format_local, utc_fields, Now};
use crate::routing::Variant;

fn now_utc(second: u64) -> Now {
    // The tests run under any TZ; format through the UTC fields for fixed expectations.
    let mut now = Now::default();
    now.set(second);
    now
}

fn request(method: &str, path: &[u8], headers: &[(&str, &[u8])]) -> RequestHeader {
    let mut req = RequestHeader::build(method, path, None).unwrap();
    for (k, v) in headers {
        req.append_header(k.to_string(), *v).unwrap();
    }
    req
}

fn entry<'a>(req: &'a RequestHeader) -> Entry<'a> {
    Entry {
        req,
        http2: false,
        client: Some("192.0.2.7".parse::<IpAddr>().unwrap()),
        status: 200,
        bytes: 612,
        duration: Duration::from_micros(12_345),
        upstream: Some("127.0.0.1:8080".parse().unwrap()),
        upstream_time: Some(Duration::from_millis(11)),
        request_id: req.headers.get("x-request-id").map(|v| v.as_bytes()),
        variant: Some(Variant::Canary),
        route: "/api",
    }
}

#[test]
fn escapes_like_nginx() {
    let mut out = Vec::new();
    escape_nginx(&mut out, b"a \"quoted\" \\ tab\t nl\n del\x7f \xc3\xa9 ~");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"a \x22quoted\x22 \x5C tab\x09 nl\x0A del\x7F \xC3\xA9 ~"#
    );
}

#[test]
fn json_strings_always_parse() {
    let mut out = Vec::new();
    json_string(&mut out, b"q\"b\\s\x01\n\xff\xc3\xa9");
    let back: String = serde_json::from_slice(&out).unwrap();
    assert_eq!(back, "q\"b\\s\u{1}\n\u{fffd}é");
}

#[test]
fn time_strings_in_nginx_formats() {
    // 2026-12-02T08:30:48Z
    let f = utc_fields(1_796_200_248);
    assert_eq!(&format_local(&f, 0), b"02/Dec/2026:08:30:48 +0000");
    assert_eq!(&format_iso(&f, 0), b"2026-12-02T08:30:48+00:00");
    assert_eq!(
        &format_local(&f, -(5 * 3600 + 30 * 60)),
        b"02/Dec/2026:08:30:48 -0530"
    );
    assert_eq!(&format_iso(&f, 3600), b"2026-12-02T08:30:48+01:00");
    // Leap day and the epoch.
    assert_eq!(
        &format_iso(&utc_fields(951_782_400), 0),
        b"2000-02-29T00:00:00+00:00"
    );
    assert_eq!(
        &format_local(&utc_fields(0), 0),
        b"01/Jan/1970:00:00:00 +0000"
    );
}

#[test]
fn combined_line() {
    let req = request(
        "GET",
        b"/api/x?q=\xe9",
        &[
            ("Referer", b"https://example.com/"),
            ("User-Agent", b"curl/8.0 \"x\""),
            // alice:secret
            ("Authorization", b"Basic YWxpY2U6c2VjcmV0"),
        ],
    );
    let now = now_utc(1_796_200_248);
    let mut out = Vec::new();
    format::combined(&mut out, &entry(&req), &now);
    let line = String::from_utf8(out).unwrap();
    let time = String::from_utf8(now.local().to_vec()).unwrap();
    assert_eq!(
        line,
        format!(
            "192.0.2.7 - alice [{time}] \"GET /api/x?q=\\xE9 HTTP/1.1\" 200 612 \"https://example.com/\" \"curl/8.0 \\x22x\\x22\"\n"
        )
    );
}

#[test]
fn combined_line_without_optional_fields() {
    let req = request("POST", b"/", &[("Authorization", b"Bearer abc")]);
    let mut e = entry(&req);
    e.client = None;
    e.http2 = true;
    e.status = 499;
    e.bytes = 0;
    let now = now_utc(0);
    let mut out = Vec::new();
    format::combined(&mut out, &e, &now);
    let line = String::from_utf8(out).unwrap();
    assert!(
        line.starts_with("- - - ["),
        "absent client and user are dashes: {line}"
    );
    assert!(
        line.ends_with("] \"POST / HTTP/2.0\" 499 0 \"-\" \"-\"\n"),
        "{line}"
    );
}

#[test]
fn json_line_parses_with_every_field() {
    let req = request("GET", b"/p\"?a=\xff", &[("X-Request-Id", b"abc-123")]);
    let now = now_utc(1_796_200_248);
    let mut out = Vec::new();
    format::json(&mut out, &entry(&req), &now);
    assert_eq!(out.last(), Some(&b'\n'));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["time"],
        String::from_utf8(now.iso8601().to_vec()).unwrap()
    );
    assert_eq!(v["request_id"], "abc-123");
    assert_eq!(v["client"], "192.0.2.7");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/p\"?a=\u{fffd}");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], 612);
    assert_eq!(v["duration"], 0.012);
    assert_eq!(v["upstream"], "127.0.0.1:8080");
    assert_eq!(v["upstream_time"], 0.011);
    assert_eq!(v["variant"], "canary");
    assert_eq!(v["route"], "/api");

    let mut e = entry(&req);
    e.upstream = None;
    e.upstream_time = None;
    e.client = None;
    e.request_id = None;
    e.variant = None;
    let req2 = request("GET", b"/", &[]);
    e.req = &req2;
    let mut out = Vec::new();
    format::json(&mut out, &e, &now);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(v["request_id"].is_null() && v["upstream"].is_null() && v["client"].is_null());
    assert!(v["upstream_time"].is_null() && v["variant"].is_null());
}

#[test]
fn basic_auth_user_needs_a_colon() {
    let now = now_utc(0);
    for (auth, user) in [
        (&b"Basic Ym9iOg=="[..], "bob"), // "bob:"
        (b"basic   Ym9iOg==", "bob"),    // scheme is case-insensitive, spaces skipped
        (b"Basic Ym9i", "-"),            // "bob": no colon
        (b"Basic OnB3", "-"),            // ":pw": empty user
        (b"Basic !!!", "-"),             // not base64
        (b"Digest username=x", "-"),
    ] {
        let req = request("GET", b"/", &[("Authorization", auth)]);
        let mut out = Vec::new();
        format::combined(&mut out, &entry(&req), &now);
        let line = String::from_utf8(out).unwrap();
        assert!(
            line.starts_with(&format!("192.0.2.7 - {user} [")),
            "{auth:?}: {line}"
        );
    }
}
