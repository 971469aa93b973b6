//! Connection handling as nginx does it: the downstream keepalive request limit and idle
//! timeout, and per-route upstream timeouts answered with 504.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{Canaryd, FakeGateway, Setup};

fn stable_only(proxy: &str, tail: &str) -> (FakeGateway, FakeGateway, Canaryd) {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.proxy = proxy.into();
    setup.tail = tail.into();
    let d = Canaryd::start(&setup);
    (stable, canary, d)
}

/// Reads from `s` until EOF or `timeout`; true when the peer closed.
fn closed_within(s: &mut TcpStream, timeout: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < timeout {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

#[test]
fn keepalive_request_limit_closes_the_connection() {
    let (_s, _c, d) = stable_only("keepalive_requests = 3\n", "");
    let mut s = TcpStream::connect(d.proxy).unwrap();
    let mut seen = String::new();
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        seen = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        assert!(seen.starts_with("http/1.1 200"), "{seen}");
    }
    assert!(
        seen.contains("connection: close"),
        "third response should close: {seen}"
    );
    assert!(
        closed_within(&mut s, Duration::from_secs(2)),
        "connection still open after the limit"
    );
}

#[test]
fn idle_keepalive_connections_are_closed_after_keepalive_timeout() {
    let (_s, _c, d) = stable_only("keepalive_timeout = \"1s\"\n", "");
    let mut s = TcpStream::connect(d.proxy).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let start = Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "idle connection kept past 5 s"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(800),
        "closed before the keepalive timeout"
    );
}

#[test]
fn route_read_timeout_gives_504() {
    let (_s, _c, d) = stable_only(
        "",
        "[[proxy.routes]]\nprefix = \"/slow\"\nread_timeout = \"300ms\"\n",
    );
    let mut c = d.client();
    let r = c.get("/slow?ms=2000").unwrap();
    assert_eq!(
        r.status, 504,
        "upstream read timeout is a 504, as from nginx"
    );
    // Other routes are unaffected.
    let r = c.get("/echo").unwrap();
    assert_eq!(r.status, 200);
    d.wait_metric(
        r#"canaryd_requests_total{variant="stable",code="5xx",route="/slow"}"#,
        1.0,
    );
    assert_eq!(
        d.metric(r#"canaryd_upstream_failures_total{variant="stable",kind="timeout"}"#),
        1.0
    );
}
