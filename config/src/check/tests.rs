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
fn header_values_match_the_http_crate() {
    for b in 0..=u8::MAX {
        let value = [b'a', b, b'z'];
        let Ok(text) = std::str::from_utf8(&value) else {
            continue;
        };
        assert_eq!(
            is_header_value(text),
            http::HeaderValue::from_str(text).is_ok(),
            "byte {b:#04x}"
        );
    }
    for value in ["tenant-1", "", "a b\tc", "ünï", "a\r\nX-Evil: 1", "\u{7f}"] {
        assert_eq!(
            is_header_value(value),
            http::HeaderValue::from_str(value).is_ok(),
            "{value:?}"
        );
    }
}

#[test]
fn prometheus_urls_are_refused_as_the_client_refuses_them() {
    let t = Duration::from_secs(1);
    for (url, needle) in [
        ("localhost:9090", "scheme"),
        ("not a url", "not a url"),
        ("ftp://prom", "ftp"),
        ("http://prom:9090/?x=1", "query"),
        ("http://prom:9090/#x", "fragment"),
        ("https://", "host"),
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
    assert!(check_prometheus_url("https://prom.internal:9090", t).is_ok());
    assert!(check_prometheus_url("https://vm.internal/select/0/prometheus/", t).is_ok());
}

#[test]
fn prometheus_urls_with_credentials_are_refused_without_quoting_them() {
    let t = Duration::from_secs(1);
    for url in ["https://user:s3cret@prom:9090", "https://s3cret@prom"] {
        let err = check_prometheus_url(url, t).expect_err(url);
        assert!(!err.contains("s3cret"), "{err}");
        assert!(err.contains("basic_auth"), "{err}");
    }
}

#[test]
fn sizes_are_bytes_or_units() {
    assert_eq!(parse_size("1048576"), Ok(1 << 20));
    assert_eq!(parse_size("1MiB"), Ok(1 << 20));
    assert_eq!(parse_size(" 512 KiB "), Ok(512 << 10));
    assert_eq!(parse_size("2GiB"), Ok(2 << 30));
    assert_eq!(parse_size("10B"), Ok(10));
    assert_eq!(parse_size("3MB"), Ok(3_000_000));
    assert_eq!(parse_size("1kB"), Ok(1_000));
    for bad in [
        "",
        "MiB",
        "1.5MiB",
        "1 mib",
        "-1",
        "1TiB",
        "99999999999999999999GiB",
    ] {
        let err = parse_size(bad).expect_err(bad);
        assert!(err.starts_with("a size like"), "{err}");
    }
}

const BASE: &str = r#"
[backends.stable]
servers = ["127.0.0.1:8080"]

[backends.canary]
servers = ["127.0.0.1:8081"]

[prometheus]
url = "https://prom.example/prometheus"
"#;

fn load(extra: &str) -> Result<crate::Config, String> {
    crate::Config::from_source("canaryd.toml", &format!("{BASE}{extra}"), false)
        .map_err(|e| e.to_string())
}

fn problem(extra: &str) -> String {
    load(extra).expect_err(extra)
}

#[test]
fn prometheus_keys_load_with_their_defaults() {
    let c = load("").unwrap();
    let p = c.prometheus.unwrap();
    assert_eq!(p.timeout, Duration::from_secs(5));
    assert_eq!(p.max_response_size, 1 << 20);
    assert_eq!(p, crate::PrometheusConfig::new(p.url.clone(), p.timeout));

    let c = load(
        r#"timeout = "2s"
max_response_size = "512KiB"
ca_file = "/etc/canaryd/prom-ca.pem"
basic_auth = { username = "12345", password_file = "/etc/canaryd/prom.password" }
headers = { "X-Scope-OrgID" = "tenant-1" }
"#,
    )
    .unwrap();
    let p = c.prometheus.unwrap();
    assert_eq!(p.max_response_size, 512 << 10);
    assert_eq!(
        p.ca_file.as_deref(),
        Some("/etc/canaryd/prom-ca.pem".as_ref())
    );
    let basic = p.basic_auth.unwrap();
    assert_eq!(basic.username, "12345");
    assert_eq!(
        basic.password_file,
        std::path::Path::new("/etc/canaryd/prom.password")
    );
    assert_eq!(p.headers["X-Scope-OrgID"], "tenant-1");

    let p = load("max_response_size = 65536\nbearer_token_file = \"t\"\n")
        .unwrap()
        .prometheus
        .unwrap();
    assert_eq!(p.max_response_size, 65536);
    assert_eq!(p.bearer_token_file.as_deref(), Some("t".as_ref()));
}

#[test]
fn bearer_and_basic_together_are_a_located_error() {
    let e = problem(
        "bearer_token_file = \"/t\"\nbasic_auth = { username = \"u\", password_file = \"/p\" }\n",
    );
    assert!(
        e.starts_with("canaryd.toml:11: key `prometheus.basic_auth`: expected either prometheus.bearer_token_file or prometheus.basic_auth, found both"),
        "{e}"
    );
}

#[test]
fn bad_basic_auth_user_is_located() {
    let e = problem("basic_auth = { username = \"a:b\", password_file = \"/p\" }\n");
    assert!(
        e.starts_with("canaryd.toml:10: key `prometheus.basic_auth.username`: expected a user name without `:`"),
        "{e}"
    );
    let e = problem("basic_auth = { username = \"u\" }\n");
    assert!(
        e.contains("key `prometheus.basic_auth.password_file`: missing"),
        "{e}"
    );
}

#[test]
fn bad_header_names_and_values_are_located() {
    let e = problem("[prometheus.headers]\n\"X Scope\" = \"t\"\n");
    assert!(
        e.starts_with(
            "canaryd.toml:11: key `prometheus.headers.X Scope`: expected an HTTP header name"
        ),
        "{e}"
    );
    let e = problem("headers = { \"X-A\" = \"ok\", \"X-B\" = \"a\\nb\" }\n");
    assert!(
        e.starts_with(
            "canaryd.toml:10: key `prometheus.headers.X-B`: expected an HTTP header value"
        ),
        "{e}"
    );
    assert!(!e.contains("a\\nb"), "{e}");
    let e = problem("headers = { \"X-Org\" = \"a\", \"x-org\" = \"b\" }\n");
    assert!(
        e.starts_with("canaryd.toml:10: key `prometheus.headers.x-org`: expected each header once"),
        "{e}"
    );
    let e = problem("headers = { \"a.b(\" = \"t\" }\n");
    assert!(
        e.contains("key `prometheus.headers`: expected an HTTP header name"),
        "{e}"
    );
}

#[test]
fn authorization_header_is_refused_with_a_hint() {
    for name in ["Authorization", "authorization"] {
        let e = problem(&format!("headers = {{ \"{name}\" = \"Bearer x\" }}\n"));
        assert!(
            e.starts_with(&format!("canaryd.toml:10: key `prometheus.headers.{name}`: expected a header other than Authorization")),
            "{e}"
        );
        assert!(
            e.contains("prometheus.bearer_token_file or prometheus.basic_auth"),
            "{e}"
        );
        assert!(!e.contains("Bearer x"), "{e}");
    }
}

#[test]
fn max_response_size_must_be_positive_and_at_most_a_gib() {
    let e = problem("max_response_size = 0\n");
    assert!(
        e.starts_with(
            "canaryd.toml:10: key `prometheus.max_response_size`: expected a positive size"
        ),
        "{e}"
    );
    let e = problem("max_response_size = \"0MiB\"\n");
    assert!(
        e.contains("`prometheus.max_response_size`: expected a positive size"),
        "{e}"
    );
    let e = problem("max_response_size = \"2GiB\"\n");
    assert!(e.contains("expected at most \"1GiB\""), "{e}");
    let e = problem("max_response_size = \"lots\"\n");
    assert!(
        e.starts_with("canaryd.toml:10: key `prometheus.max_response_size`: "),
        "{e}"
    );
    assert!(e.contains("a size like \"1MiB\""), "{e}");
    let e = problem("max_response_size = -1\n");
    assert!(e.contains("a size like"), "{e}");
}

#[test]
fn prometheus_url_and_timeout_problems_are_located() {
    let src = BASE.replace("https://prom.example/prometheus", "ftp://prom");
    let e = crate::Config::from_source("canaryd.toml", &format!("{src}timeout = \"0s\"\n"), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("canaryd.toml:9: key `prometheus.url`: expected a usable http:// or https:// URL: invalid Prometheus URL \"ftp://prom\""),
        "{e}"
    );
    assert!(
        e.contains("canaryd.toml:10: key `prometheus.timeout`: expected a positive duration"),
        "{e}"
    );
}
