//! Header rules as a backend and a client see them: request headers set, removed (`Proxy`
//! by default, httpoxy) and templated; `X-Request-Id` generated when the client sent none;
//! response headers added (HSTS) and hidden — also on canaryd's own 502, with its error page.

use crate::common::{free_addr, Canaryd, FakeGateway, Setup};

#[test]
fn header_rules_reach_the_backend_and_the_client() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let dir = testkit::TempDir::new("canaryd-pages");
    let page = dir.path().join("502.html");
    std::fs::write(&page, "<h1>we are fixing it</h1>\n").unwrap();
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.proxy = format!(
        "set_request_headers = {{ \"X-Env\" = \"prod\", \"X-Origin\" = \"$scheme://$host from $remote_addr\" }}\n\
         add_response_headers = {{ \"Strict-Transport-Security\" = \"max-age=63072000\" }}\n\
         hide_response_headers = [\"X-Served-By\"]\n\
         error_pages = {{ 502 = \"{}\" }}\n",
        page.display()
    );
    setup.tail = format!(
        "[upstreams.down]\nservers = [\"{}\"]\n\
         [[proxy.routes]]\nprefix = \"/down/\"\nupstream = \"down\"\n\
         [[proxy.routes]]\nprefix = \"/echo/quiet\"\nset_request_headers = {{ \"X-Env\" = \"\" }}\n\
         add_response_headers = {{ \"X-Route\" = \"quiet\" }}\n",
        free_addr()
    );
    let d = Canaryd::start(&setup);
    let mut c = d.client();

    // What the backend sees.
    let r = c
        .request(
            "GET",
            "/echo",
            &[
                ("Host", "Shop.Example.com:8080"),
                ("Proxy", "http://evil:3128"),
            ],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    assert_eq!(h["x-env"][0], "prod");
    assert_eq!(h["x-origin"][0], "http://shop.example.com from 127.0.0.1");
    assert!(h.get("proxy").is_none(), "Proxy is removed by default: {h}");
    let id = h["x-request-id"][0].as_str().unwrap();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    // What the client sees.
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000")
    );
    assert_eq!(r.header("x-served-by"), None);

    // A client's own request id goes through; each generated one is new.
    let r = c
        .request("GET", "/echo", &[("X-Request-Id", "trace-42")], b"")
        .unwrap();
    assert_eq!(r.json()["headers"]["x-request-id"][0], "trace-42");
    let again = c.get("/echo").unwrap().json()["headers"]["x-request-id"][0].clone();
    assert_ne!(again.as_str().unwrap(), id);

    // A route's rules on top of [proxy]'s: an empty value removes.
    let r = c.get("/echo/quiet").unwrap();
    assert!(r.json()["headers"].get("x-env").is_none());
    assert_eq!(r.header("x-route"), Some("quiet"));
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000")
    );

    // canaryd's own 502: the headers (nginx `always`) and the error page.
    let r = d.client().get("/down/x").unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=63072000")
    );
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.text(), "<h1>we are fixing it</h1>\n");
    let m = d.metrics();
    assert_eq!(
        m[r#"canaryd_upstream_requests_total{upstream="down",route="/down/",code="5xx"}"#],
        1.0
    );

    // The page is read again on SIGHUP.
    std::fs::write(&page, "<h1>back soon</h1>\n").unwrap();
    d.signal(libc::SIGHUP);
    testkit::wait_until("new error page", std::time::Duration::from_secs(5), || {
        d.client().get("/down/x").unwrap().text() == "<h1>back soon</h1>\n"
    });
}
