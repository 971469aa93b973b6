use std::collections::BTreeMap;

use canaryd_config::{ProxyConfig, RouteConfig};
use pingora_core::protocols::http::v1::client::http_req_header_to_wire;

use http::HeaderValue;
use pingora_http::RequestHeader;

use super::*;
use crate::request_id::RequestId;

/// The same request as the session path builds it: a copy, HTTP/1.1, no `Connection`, the
/// forwarding headers set, the routing header stripped, the request id set, the rules applied.
fn through_session(req: &RequestHeader, edits: &Edits<'_>) -> Vec<u8> {
    let mut up = req.clone();
    up.set_version(http::Version::HTTP_11);
    up.remove_header(&header::CONNECTION);
    crate::forwarding::apply(&mut up, edits.client_ip, edits.scheme);
    if let Some(h) = edits.strip {
        up.remove_header(h);
    }
    if let Some(id) = edits.request_id {
        up.insert_header(X_REQUEST_ID, HeaderValue::from_bytes(id).unwrap())
            .unwrap();
    }
    edits.rules.apply_request(&mut up, &edits.vars);
    http_req_header_to_wire(&up).unwrap().to_vec()
}

/// Request line, then the header lines in any order, their names lowercase (canaryd's own
/// headers are written with their usual case, the session path's with the `http` crate's).
fn lines(wire: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let text = wire.strip_suffix(b"\r\n\r\n").expect("ends the header");
    let mut it = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec());
    let first = it.next().unwrap();
    let mut rest: Vec<_> = it
        .map(|mut l| {
            let colon = l.iter().position(|&b| b == b':').unwrap_or(0);
            l[..colon].make_ascii_lowercase();
            l
        })
        .collect();
    rest.sort();
    (first, rest)
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
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
    req.append_header("X-Request-Id", "").unwrap();
    req.append_header("Proxy", "http://evil").unwrap();
    req.append_header("X-Drop", "x").unwrap();
    req.append_header("X-Env", "dev").unwrap();
    req.append_header("Cookie", "a=1").unwrap();
    req.append_header("Cookie", "b=2").unwrap();
    let no_rules = HeaderRules::default();
    let rules = HeaderRules::compile(
        &ProxyConfig {
            set_request_headers: map(&[("X-Env", "prod"), ("X-Drop", "")]),
            ..ProxyConfig::default()
        },
        Some(&RouteConfig {
            set_request_headers: map(&[("X-From", "$remote_addr via $scheme ($request_id)")]),
            ..RouteConfig::new("/")
        }),
    );
    assert!(
        rules.request_names().count() >= 3,
        "Proxy, X-Drop, X-Env, X-From"
    );
    let strip = HeaderName::from_static("x-gateway-version");
    let generated = RequestId::generate();
    let id = generated.generated().unwrap();
    for (strip, rules, request_id) in [
        (None, &no_rules, None),
        (Some(&strip), &no_rules, Some(id)),
        (Some(&strip), &rules, Some(id)),
        (None, &rules, None),
    ] {
        let edits = Edits {
            client_ip: Some("127.0.0.1".parse().unwrap()),
            scheme: "http",
            strip,
            request_id,
            rules,
            vars: Vars {
                host: b"example.com",
                remote_addr: Some("127.0.0.1".parse().unwrap()),
                scheme: "http",
                request_id: &generated,
            },
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
