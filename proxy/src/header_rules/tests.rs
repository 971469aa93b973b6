//! Header rules: `[proxy]` and route merged, templates rendered, `Proxy` removed by default,
//! empty values remove (request) or cancel (response).

use super::*;
use canaryd_config::{ProxyConfig, RouteConfig};

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn vars(id: &RequestId) -> Vars<'_> {
    Vars {
        host: b"Shop.Example.com",
        remote_addr: Some("192.0.2.7".parse().unwrap()),
        scheme: "http",
        request_id: id,
    }
}

#[test]
fn request_rules_set_remove_and_render_templates() {
    let proxy = ProxyConfig {
        set_request_headers: map(&[("X-Env", "prod"), ("X-Drop", "a")]),
        ..ProxyConfig::default()
    };
    let route = RouteConfig {
        set_request_headers: map(&[
            ("x-drop", ""),
            (
                "X-Trace",
                "$request_id@${host}/$scheme from $remote_addr $5",
            ),
        ]),
        ..RouteConfig::new("/")
    };
    let rules = HeaderRules::compile(&proxy, Some(&route));
    assert!(rules.uses_host());
    let id = RequestId::Generated(*b"0123456789abcdef0123456789abcdef");
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("X-Drop", "client").unwrap();
    req.insert_header("Proxy", "http://evil:8080").unwrap();
    rules.apply_request(&mut req, &vars(&id));
    assert_eq!(req.headers.get("x-env").unwrap(), "prod");
    assert!(
        req.headers.get("x-drop").is_none(),
        "an empty value removes"
    );
    assert!(req.headers.get("proxy").is_none(), "httpoxy: Proxy removed");
    assert_eq!(
        req.headers.get("x-trace").unwrap(),
        "0123456789abcdef0123456789abcdef@shop.example.com/http from 192.0.2.7 $5"
    );
}

#[test]
fn a_rule_may_keep_proxy() {
    let proxy = ProxyConfig {
        set_request_headers: map(&[("Proxy", "internal")]),
        ..ProxyConfig::default()
    };
    let rules = HeaderRules::compile(&proxy, None::<&RouteConfig>);
    assert!(!rules.uses_host());
    let id = RequestId::generate();
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("Proxy", "http://evil:8080").unwrap();
    rules.apply_request(&mut req, &vars(&id));
    assert_eq!(req.headers.get("proxy").unwrap(), "internal");
}

#[test]
fn response_rules_hide_add_and_cancel() {
    let proxy = ProxyConfig {
        add_response_headers: map(&[
            ("Strict-Transport-Security", "max-age=63072000"),
            ("X-Frame-Options", "DENY"),
        ]),
        hide_response_headers: vec!["X-Powered-By".into()],
        ..ProxyConfig::default()
    };
    let route = RouteConfig {
        add_response_headers: map(&[("x-frame-options", ""), ("X-Request-Id", "$request_id")]),
        hide_response_headers: vec!["Server".into()],
        ..RouteConfig::new("/")
    };
    let rules = HeaderRules::compile(&proxy, Some(&route));
    let id = RequestId::Generated(*b"ffffffffffffffffffffffffffffffff");
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.insert_header("X-Powered-By", "php").unwrap();
    resp.insert_header("Server", "apache").unwrap();
    resp.insert_header("Strict-Transport-Security", "max-age=1")
        .unwrap();
    rules.apply_response(&mut resp, &vars(&id));
    assert!(resp.headers.get("x-powered-by").is_none());
    assert!(resp.headers.get("server").is_none());
    assert!(
        resp.headers.get("x-frame-options").is_none(),
        "cancelled by the route"
    );
    // Added, as nginx's add_header: the upstream's own value stays.
    let hsts: Vec<_> = resp
        .headers
        .get_all("strict-transport-security")
        .iter()
        .collect();
    assert_eq!(hsts, ["max-age=1", "max-age=63072000"]);
    assert_eq!(
        resp.headers.get("x-request-id").unwrap(),
        "ffffffffffffffffffffffffffffffff"
    );
}
