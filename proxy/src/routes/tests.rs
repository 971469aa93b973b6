//! Route matching: longest prefix, then hosts (exact before the longest wildcard, falling
//! through to host-less routes), and the route settings that inherit `[proxy]`'s.

use super::*;

fn route(prefix: &str, hosts: &[&str]) -> RouteConfig {
    RouteConfig {
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        ..RouteConfig::new(prefix)
    }
}

#[test]
fn longest_prefix_wins() {
    let cfg = ProxyConfig {
        routes: vec![
            route("/api/", &[]),
            RouteConfig {
                read_timeout: Some(Duration::from_secs(3600)),
                ..RouteConfig::new("/api/stream")
            },
        ],
        ..ProxyConfig::default()
    };
    let r = Routes::new(&cfg, &[], &[]);
    assert_eq!(r.match_path(b"/api/stream/x"), 2);
    assert_eq!(r.match_path(b"/api/users"), 1);
    assert_eq!(r.match_path(b"/health"), 0);
    assert_eq!(r.all()[2].timeouts.read, Duration::from_secs(3600));
    assert_eq!(r.all()[2].timeouts.connect, cfg.connect_timeout);
    assert_eq!(r.all()[1].label, "/api/");
}

#[test]
fn hosts_match_exact_then_wildcard_then_any() {
    let cfg = ProxyConfig {
        routes: vec![
            route("/", &["api.example.com"]),                     // 1
            route("/v2/", &["*.example.com"]),                    // 2
            route("/", &["*.eu.example.com"]),                    // 3
            route("/static/", &[]),                               // 4
            route("/admin/", &["API.example.com", "admin.test"]), // 5
        ],
        ..ProxyConfig::default()
    };
    let r = Routes::new(&cfg, &[], &[]);
    // Exact host, longest prefix within it; any case.
    assert_eq!(r.match_request(b"api.example.com", b"/x"), 1);
    assert_eq!(r.match_request(b"Api.Example.COM", b"/admin/a"), 5);
    assert_eq!(r.match_request(b"admin.test", b"/admin/"), 5);
    // No prefix of the exact host's routes matches: falls through to host-less routes.
    assert_eq!(r.match_request(b"admin.test", b"/static/a"), 4);
    assert_eq!(r.match_request(b"admin.test", b"/other"), 0);
    // The longest wildcard wins; *.example.com does not match example.com itself.
    assert_eq!(r.match_request(b"shop.eu.example.com", b"/v2/x"), 3);
    assert_eq!(r.match_request(b"shop.example.com", b"/v2/x"), 2);
    assert_eq!(r.match_request(b"shop.example.com", b"/v1/x"), 0);
    assert_eq!(r.match_request(b"example.com", b"/v2/x"), 0);
    // A route listing hosts never serves another host.
    assert_eq!(r.match_request(b"other.org", b"/"), 0);
    assert_eq!(r.match_request(b"", b"/static/x"), 4);
    assert_eq!(r.all()[1].label, "api.example.com/");
}

#[test]
fn host_of_a_request() {
    let req = |host: &str| {
        http::Request::builder()
            .uri("/x")
            .header("host", host)
            .body(())
            .unwrap()
            .into_parts()
            .0
    };
    assert_eq!(request_host(&req("example.com:8080")), b"example.com");
    assert_eq!(request_host(&req("example.com")), b"example.com");
    assert_eq!(request_host(&req("[::1]:80")), b"[::1]");
    assert_eq!(request_host(&req("[::1]")), b"[::1]");
    let h2 = http::Request::builder()
        .uri("https://h2.example.com:443/x")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert_eq!(request_host(&h2), b"h2.example.com");
}

#[test]
fn targets_limits_and_pages_inherit_proxy() {
    let page = |s: &str| canaryd_config::ErrorPage {
        path: "/x".into(),
        body: s.as_bytes().into(),
    };
    let cfg = ProxyConfig {
        max_body_size: 100,
        error_pages: [
            ("502".to_string(), page("proxy 502")),
            ("504".to_string(), page("proxy 504")),
        ]
        .into(),
        routes: vec![
            RouteConfig {
                upstream: Some("api".into()),
                max_body_size: Some(0),
                error_pages: [("502".to_string(), page("api 502"))].into(),
                ..RouteConfig::new("/api/")
            },
            route("/web/", &[]),
        ],
        ..ProxyConfig::default()
    };
    let r = Routes::new(&cfg, &["admin".into(), "api".into()], &[]);
    let api = &r.all()[1];
    assert_eq!(api.target, Target::Upstream(1));
    assert_eq!(api.max_body_size, 0);
    assert_eq!(&api.error_pages.get(502).unwrap()[..], b"api 502");
    assert_eq!(&api.error_pages.get(504).unwrap()[..], b"proxy 504");
    let web = &r.all()[2];
    assert_eq!(web.target, Target::Split);
    assert_eq!(web.max_body_size, 100);
    assert_eq!(&web.error_pages.get(502).unwrap()[..], b"proxy 502");
    assert!(web.error_pages.get(413).is_none());
    // Counters are carried by label and target.
    let again = Routes::new(&cfg, &["admin".into(), "api".into()], &r.stats());
    assert!(Arc::ptr_eq(&again.all()[1].stats, &api.stats));
    let moved = ProxyConfig {
        routes: vec![RouteConfig::new("/api/")],
        ..cfg.clone()
    };
    let split = Routes::new(&moved, &[], &r.stats());
    assert!(!Arc::ptr_eq(&split.all()[1].stats, &api.stats));
}
