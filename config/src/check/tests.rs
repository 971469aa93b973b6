use super::*;

#[test]
fn header_names_match_the_http_crate() {
    for b in 0..=u8::MAX {
        let name = [b];
        let ours = std::str::from_utf8(&name).is_ok_and(is_header_name);
        assert_eq!(
            ours,
            http::HeaderName::from_bytes(&name).is_ok(),
            "byte {b:#04x}"
        );
    }
    for name in ["X-Gateway-Version", "x_v", "", "X V", "X:V", "é", "a(b)"] {
        assert_eq!(
            is_header_name(name),
            http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
            "{name:?}"
        );
    }
    let long = "a".repeat(MAX_HEADER_NAME_LEN);
    assert!(is_header_name(&long));
    assert!(http::HeaderName::from_bytes(long.as_bytes()).is_ok());
    let longer = "a".repeat(MAX_HEADER_NAME_LEN + 1);
    assert!(!is_header_name(&longer));
    assert!(http::HeaderName::from_bytes(longer.as_bytes()).is_err());
}

#[test]
fn webhook_urls_need_http_or_https_and_a_host() {
    assert!(check_url("http://127.0.0.1:9/hook").is_ok());
    assert!(check_url("https://hooks.slack.com/services/T/B/X").is_ok());
    assert!(check_url("ftp://x/").unwrap_err().contains("ftp"));
    assert!(check_url("hooks.example").is_err());
    assert!(check_url("http://").is_err());
}

#[test]
fn prometheus_urls_are_refused_as_the_client_refuses_them() {
    let t = Duration::from_secs(1);
    for (url, needle) in [
        ("localhost:9090", "scheme"),
        ("not a url", "not a url"),
        ("https://prom:9090", "https is not supported"),
        ("ftp://prom", "ftp"),
        ("http://prom:9090/?x=1", "query"),
        ("http://prom:9090/#x", "fragment"),
    ] {
        let err = check_prometheus_url(url, t).expect_err(url);
        assert!(
            err.starts_with(&format!("invalid Prometheus URL {url:?}: ")),
            "{err}"
        );
        assert!(err.contains(needle), "{err}");
    }
    let err = check_prometheus_url("http://prom:9090", Duration::ZERO).unwrap_err();
    assert_eq!(
        err,
        "invalid Prometheus timeout for http://prom:9090: must be greater than zero"
    );
    assert!(check_prometheus_url("http://127.0.0.1:9090/", t).is_ok());
    assert!(check_prometheus_url("http://prom.internal/prometheus", t).is_ok());
}
