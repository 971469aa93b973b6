use super::*;

fn req(path: &str, host: Option<&str>) -> RequestHeader {
    let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    if let Some(h) = host {
        r.insert_header("Host", h).unwrap();
    }
    r
}

#[test]
fn location_is_host_and_request_uri() {
    let loc = |r: &RequestHeader| location(r).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        loc(&req("/a/b?x=1&y=%20", Some("Example.COM:8080"))).as_deref(),
        Some("https://example.com/a/b?x=1&y=%20")
    );
    assert_eq!(
        loc(&req("/", Some("[::1]:80"))).as_deref(),
        Some("https://[::1]/")
    );
    // HTTP/2: the :authority is the URI's.
    let mut h2 = req("/p?q", None);
    h2.set_uri(http::Uri::from_static("https://h2.example/p?q"));
    assert_eq!(loc(&h2).as_deref(), Some("https://h2.example/p?q"));
    assert_eq!(loc(&req("/", None)), None);
}

#[test]
fn port_is_stripped() {
    assert_eq!(strip_port(b"a.example:443"), b"a.example");
    assert_eq!(strip_port(b"a.example"), b"a.example");
    assert_eq!(strip_port(b"[2001:db8::1]"), b"[2001:db8::1]");
}
