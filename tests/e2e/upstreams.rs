//! Named upstreams beside the split: routes by path and by host (`hosts`, exact and
//! `*.suffix`) reach their own upstream, every other request goes through the split, named
//! traffic is counted for its upstream and never for the rollout, and a reload moves a route
//! to another upstream live.

use std::time::Duration;

use crate::common::{Canaryd, FakeGateway, Setup};

/// stable/canary for the split, `api` and `admin` as named upstreams.
fn setup(
    stable: &FakeGateway,
    canary: &FakeGateway,
    api: &FakeGateway,
    admin: &FakeGateway,
) -> Setup {
    let mut s = Setup::new(stable, canary, 0.0);
    s.tail = format!(
        "[upstreams.api]\nservers = [\"{}\"]\nkeepalive = 8\n\
         [upstreams.admin]\nservers = [\"{}\"]\n\
         [[proxy.routes]]\nprefix = \"/api/\"\nupstream = \"api\"\n\
         [[proxy.routes]]\nhosts = [\"admin.example.com\", \"*.admin.example.com\"]\nupstream = \"admin\"\n",
        api.addr, admin.addr
    );
    s
}

fn served_by(d: &Canaryd, host: &str, path: &str) -> String {
    let r = d
        .client()
        .request("GET", path, &[("Host", host)], b"")
        .expect("request");
    assert_eq!(r.status, 200, "{host}{path}: {}", r.text());
    r.header("x-served-by").unwrap_or_default().to_string()
}

#[test]
fn routes_reach_named_upstreams_by_path_and_host_and_the_rest_the_split() {
    let [stable, canary, api, admin] =
        ["stable", "canary", "api", "admin"].map(|n| FakeGateway::spawn(n, &[]));
    // The whole split on the canary: the named routes do not follow it.
    let mut s = setup(&stable, &canary, &api, &admin);
    s.percent = 100.0;
    let d = Canaryd::start(&s);

    for _ in 0..10 {
        assert_eq!(served_by(&d, "www.example.com", "/api/users"), "api");
        assert_eq!(served_by(&d, "www.example.com", "/"), "canary");
        // The host wins over the path: admin.example.com/api/ is admin's.
        assert_eq!(
            served_by(&d, "Admin.Example.com:8080", "/api/users"),
            "admin"
        );
        assert_eq!(served_by(&d, "eu.admin.example.com", "/x"), "admin");
    }
    // The split's counters see only the split's requests.
    let m = d.metrics();
    let split = r#"canaryd_requests_total{variant="canary",code="2xx",route="default"}"#;
    assert_eq!(
        m[split], 10.0,
        "named traffic must not count for the rollout"
    );
    assert_eq!(
        m[r#"canaryd_upstream_requests_total{upstream="api",route="/api/",code="2xx"}"#],
        10.0
    );
    assert_eq!(
        m[r#"canaryd_upstream_requests_total{upstream="admin",route="admin.example.com/",code="2xx"}"#],
        20.0
    );
    assert_eq!(
        m[r#"canaryd_upstream_request_duration_seconds_count{upstream="api"}"#],
        10.0
    );
    assert!(!m
        .keys()
        .any(|k| k.starts_with("canaryd_requests_total") && k.contains("/api/")));
}

#[test]
fn a_reload_moves_a_route_to_another_upstream_live() {
    let [stable, canary, api, admin] =
        ["stable", "canary", "api", "admin"].map(|n| FakeGateway::spawn(n, &[]));
    let d = Canaryd::start(&setup(&stable, &canary, &api, &admin));
    assert_eq!(served_by(&d, "x", "/api/users"), "api");

    let text = std::fs::read_to_string(&d.config).unwrap().replace(
        "prefix = \"/api/\"\nupstream = \"api\"",
        "prefix = \"/api/\"\nupstream = \"admin\"",
    );
    std::fs::write(&d.config, text).unwrap();
    d.signal(libc::SIGHUP);
    testkit::wait_until("/api/ served by admin", Duration::from_secs(5), || {
        served_by(&d, "x", "/api/users") == "admin"
    });
    // A route to an unknown upstream is refused as a whole; the running one stays.
    let text = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("upstream = \"admin\"\n[[", "upstream = \"nope\"\n[[");
    std::fs::write(&d.config, text).unwrap();
    d.signal(libc::SIGHUP);
    testkit::wait_until("reload refused", Duration::from_secs(5), || {
        d.log().contains("proxy.routes[0].upstream")
    });
    assert_eq!(served_by(&d, "x", "/api/users"), "admin");
}
