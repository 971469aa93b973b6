//! Malformed and hostile traffic against canaryd, end to end: a garbage request line, a
//! 1 MiB header, a slowloris client that never finishes its header, and an upstream that
//! answers with something that is not HTTP. The proxy must answer with an error (or close the
//! connection), keep serving everyone else, and turn a broken upstream into a 502 unless it
//! falls back to stable.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::common::{self, Canaryd, Client, FakeGateway, Setup};

/// What came back on a raw connection.
#[derive(Debug)]
enum Outcome {
    /// A response whose status line carried this code.
    Status(u16),
    /// Closed (EOF or reset) without a response.
    Closed,
    /// Nothing within the read timeout.
    Silent,
}

/// Reads whatever the server answers on `s` until it closes, the read times out, or a full
/// status line arrived.
fn read_outcome(s: &mut TcpStream) -> Outcome {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if got.is_empty() {
                    return Outcome::Silent;
                }
                break;
            }
            // A reset (typically because the server closed with our unread bytes pending).
            Err(_) => break,
        }
    }
    if got.is_empty() {
        return Outcome::Closed;
    }
    let line = String::from_utf8_lossy(&got).into_owned();
    let code = line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("answer is not an HTTP status line: {line:?}"));
    Outcome::Status(code)
}

fn raw_connect(addr: SocketAddr, read_timeout: Duration) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to proxy");
    s.set_read_timeout(Some(read_timeout)).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// The daemon is still running and a well-formed request on a new connection gets 200.
fn assert_still_serving(d: &mut Canaryd) {
    assert!(d.is_running(), "canaryd exited; log:\n{}", d.log());
    let r = Client::connect(d.proxy)
        .and_then(|mut c| c.get("/"))
        .unwrap_or_else(|e| panic!("normal GET failed: {e}; log:\n{}", d.log()));
    assert_eq!(r.status, 200, "normal GET answered {}", r.text());
    assert_eq!(r.text(), "stable");
}

fn stable_only() -> (FakeGateway, FakeGateway, Setup) {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let setup = Setup::new(&stable, &canary, 0.0);
    (stable, canary, setup)
}

#[test]
fn garbage_request_line_gets_400_or_close_and_proxy_keeps_serving() {
    let (_stable, _canary, setup) = stable_only();
    let mut d = Canaryd::start(&setup);

    let mut s = raw_connect(d.proxy, Duration::from_secs(5));
    s.write_all(b"GARBAGE\r\n\r\n").unwrap();
    match read_outcome(&mut s) {
        Outcome::Status(400) | Outcome::Closed => {}
        other => panic!("garbage request line: expected 400 or a close, got {other:?}"),
    }
    drop(s);
    assert_still_serving(&mut d);
}

#[test]
fn one_mib_header_is_refused_and_proxy_keeps_serving() {
    let (_stable, _canary, setup) = stable_only();
    let mut d = Canaryd::start(&setup);

    let mut s = raw_connect(d.proxy, Duration::from_secs(5));
    let mut req = b"GET / HTTP/1.1\r\nHost: big\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 1024 * 1024));
    req.extend_from_slice(b"\r\n\r\n");
    // The proxy may give up (and close) before it has read everything: a failed write is fine.
    let _ = s.write_all(&req);
    match read_outcome(&mut s) {
        Outcome::Status(400 | 413 | 431 | 494) | Outcome::Closed => {}
        other => panic!("1 MiB header: expected a 4xx refusal or a close, got {other:?}"),
    }
    drop(s);
    assert_still_serving(&mut d);
}

/// Opens `n` connections that each send the start of a request header and then nothing.
fn slowloris(addr: SocketAddr, n: usize, read_timeout: Duration) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = raw_connect(addr, read_timeout);
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect()
}

/// True while the server has neither answered nor closed `s`.
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!(s.peek(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

#[test]
fn slowloris_does_not_block_other_clients() {
    let (_stable, _canary, setup) = stable_only();
    let mut d = Canaryd::start(&setup);

    let slow = slowloris(d.proxy, 10, Duration::from_secs(5));
    let mut c = d.client();
    for i in 0..50 {
        let r = c
            .get("/")
            .unwrap_or_else(|e| panic!("GET {i} while slow clients hold connections: {e}"));
        assert_eq!(r.status, 200, "GET {i} during slowloris: {}", r.text());
    }
    // The slow connections were really held open the whole time (client_header_timeout is
    // 60 s).
    for (i, s) in slow.iter().enumerate() {
        assert!(still_open(s), "slow connection {i} was closed early");
    }
    assert_still_serving(&mut d);
}

#[test]
fn slowloris_is_cut_by_client_header_timeout() {
    let (_stable, _canary, mut setup) = stable_only();
    setup.proxy = "client_header_timeout = \"2s\"\n".into();
    let mut d = Canaryd::start(&setup);

    let started = Instant::now();
    let mut slow = slowloris(d.proxy, 1, Duration::from_secs(8)).remove(0);
    let mut c = d.client();
    for i in 0..50 {
        let r = c
            .get("/")
            .unwrap_or_else(|e| panic!("GET {i} during slowloris: {e}"));
        assert_eq!(r.status, 200, "GET {i} during slowloris: {}", r.text());
    }

    let outcome = read_outcome(&mut slow);
    let after = started.elapsed();
    match outcome {
        Outcome::Closed | Outcome::Status(400 | 408) => {}
        Outcome::Silent => panic!(
            "the slow connection was still open {after:?} after its partial header, \
             with client_header_timeout = 2s"
        ),
        Outcome::Status(code) => panic!("slow connection answered {code}, expected a close or 408"),
    }
    assert!(
        after < Duration::from_secs(5),
        "the slow connection was closed only after {after:?}, with client_header_timeout = 2s"
    );
    assert_still_serving(&mut d);
}

/// A TCP server that answers every connection with a line that is not HTTP, then closes.
/// The accept thread lives as long as the test process.
fn garbage_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind garbage backend");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                // Read (part of) the request first, so closing does not reset it.
                let mut buf = [0u8; 8192];
                let _ = conn.read(&mut buf);
                let _ = conn.write_all(b"this is not http\r\n\r\n");
                let _ = conn.flush();
            });
        }
    });
    addr
}

fn garbage_canary_setup(retry_on_canary_error: Option<bool>) -> (FakeGateway, Setup) {
    let stable = FakeGateway::spawn("stable", &[]);
    let setup = Setup {
        stable: vec![stable.addr],
        canary: vec![garbage_backend()],
        percent: 100.0,
        tail: match retry_on_canary_error {
            Some(v) => format!("[routing]\nretry_on_canary_error = {v}\n"),
            None => String::new(),
        },
        ..Setup::default()
    };
    (stable, setup)
}

/// The 502 is counted against the canary (so the controller sees the broken release), and
/// nothing reached stable.
fn assert_counted_as_canary_5xx(d: &Canaryd) {
    let canary_5xx = "canaryd_requests_total{variant=\"canary\",code=\"5xx\",route=\"default\"}";
    common::wait_until("the 502 to be counted", Duration::from_secs(5), || {
        d.metric(canary_5xx) >= 1.0
    });
    assert_eq!(d.metric(canary_5xx), 1.0);
    assert_eq!(
        d.metric("canaryd_requests_total{variant=\"stable\",code=\"2xx\",route=\"default\"}"),
        0.0
    );
}

fn admin_healthz(d: &Canaryd) -> u16 {
    testkit::get(d.admin, "/healthz")
        .expect("GET /healthz on the admin listener")
        .status
}

#[test]
fn garbage_upstream_without_retry_gives_502() {
    let (_stable, setup) = garbage_canary_setup(Some(false));
    let mut d = Canaryd::start(&setup);

    let r = d.client().get("/").expect("GET through the proxy");
    assert_eq!(
        r.status,
        502,
        "a canary answering non-HTTP must give 502, got {} {:?}",
        r.status,
        r.text()
    );
    assert_counted_as_canary_5xx(&d);
    assert!(d.is_running(), "canaryd exited; log:\n{}", d.log());
    assert_eq!(admin_healthz(&d), 200);
}

#[test]
fn garbage_canary_is_retried_on_stable_and_counted_against_the_canary() {
    // With `retry_on_canary_error` (the default), an idempotent request whose canary answer is
    // not HTTP is served by stable: a broken canary costs users nothing. The canary's failure
    // stays visible to the controller as a canary 5xx and a `protocol` upstream failure.
    let (_stable, mut setup) = garbage_canary_setup(None);
    // Keep the broken canary in rotation so the POST below reaches it.
    setup.canary_extra = "max_fails = 0\n".into();
    let mut d = Canaryd::start(&setup);

    let r = d.client().get("/").expect("GET through the proxy");
    assert_eq!((r.status, r.text().as_str()), (200, "stable"));
    let canary_5xx = "canaryd_requests_total{variant=\"canary\",code=\"5xx\",route=\"default\"}";
    assert_eq!(d.metric(canary_5xx), 1.0);
    assert_eq!(
        d.metric("canaryd_upstream_failures_total{variant=\"canary\",kind=\"protocol\"}"),
        1.0
    );
    assert_eq!(
        d.metric("canaryd_fallbacks_total{from=\"canary\",to=\"stable\",reason=\"canary_error\"}"),
        1.0
    );
    // POST is not idempotent: not retried, the client gets the 502.
    let r = d.client().post("/", b"x").expect("POST through the proxy");
    assert_eq!(r.status, 502);
    assert!(d.is_running(), "canaryd exited; log:\n{}", d.log());
    assert_eq!(admin_healthz(&d), 200);
}
