//! Forwarding headers exactly as the seed's nginx front sets them (`proxy_set_header Host
//! $host; X-Real-IP $remote_addr; X-Forwarded-For $proxy_add_x_forwarded_for;
//! X-Forwarded-Proto $scheme`), and the override header stripped when asked.

use crate::common::{Canaryd, FakeGateway, Setup};

#[test]
fn forwarding_headers_match_nginx() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let d = Canaryd::start(&Setup::new(&stable, &canary, 0.0));
    let mut c = d.client();

    let r = c
        .request("GET", "/echo/x?y=1", &[("Host", "veloz.example.com")], b"")
        .unwrap();
    assert_eq!(r.status, 200);
    let echo = r.json();
    let h = &echo["headers"];
    assert_eq!(echo["path"], "/echo/x?y=1");
    assert_eq!(h["host"][0], "veloz.example.com", "Host is passed through");
    assert_eq!(h["x-real-ip"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-for"][0], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"][0], "http");

    // An existing X-Forwarded-For is appended to; a client-sent X-Real-IP is replaced.
    let r = c
        .request(
            "GET",
            "/echo",
            &[("X-Forwarded-For", "203.0.113.9"), ("X-Real-IP", "6.6.6.6")],
            b"",
        )
        .unwrap();
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-for"][0], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-for"].as_array().unwrap().len(), 1);
    assert_eq!(h["x-real-ip"][0], "127.0.0.1");
    assert_eq!(h["x-real-ip"].as_array().unwrap().len(), 1);

    // Request bodies reach the upstream intact.
    let r = c.request("POST", "/echo", &[], &[b'z'; 10_000]).unwrap();
    assert_eq!(r.json()["body_len"], 10_000);
}

#[test]
fn override_header_is_forwarded_unless_stripped() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    for (strip, expect_present) in [(false, true), (true, false)] {
        let mut setup = Setup::new(&stable, &canary, 0.0);
        setup.tail = format!(
            "[routing]\nheader = \"X-Gateway-Version\"\ncanary_values = [\"cpp\"]\nstrip_header = {strip}\n"
        );
        let d = Canaryd::start(&setup);
        let r = d
            .client()
            .request("GET", "/echo", &[("X-Gateway-Version", "cpp")], b"")
            .unwrap();
        let echo = r.json();
        assert_eq!(echo["name"], "canary");
        assert_eq!(
            echo["headers"].get("x-gateway-version").is_some(),
            expect_present,
            "strip_header = {strip}"
        );
    }
}
