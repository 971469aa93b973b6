//! Stopping canaryd, end to end: SIGTERM lets in-flight requests finish and then exits,
//! `shutdown_grace` bounds how long that may take, an idle daemon stops at once on SIGTERM, and
//! SIGINT stops at once even with requests in flight. After the exit the listener is gone.

use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use crate::common::{self, free_addr, wait_until, Canaryd, Client, FakeGateway, Setup, TempDir};

/// Starts `GET path` on its own thread; returns the join handle of its result.
fn request_in_background(
    addr: SocketAddr,
    path: &str,
) -> thread::JoinHandle<std::io::Result<testkit::Response>> {
    let path = path.to_string();
    thread::spawn(move || {
        let mut c = Client::connect(addr)?;
        c.set_timeout(Duration::from_secs(30))?;
        c.get(&path)
    })
}

/// Waits until canaryd has forwarded a request to `gateway` (and so counts it in flight).
fn wait_in_flight(gateway: &FakeGateway) {
    wait_until(
        "the request to be forwarded to the gateway",
        Duration::from_secs(5),
        || common::connections_to(gateway.addr) > 0,
    );
}

fn assert_refused(addr: SocketAddr) {
    match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
        Err(e) => assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "connect after exit: {e}"
        ),
        Ok(_) => panic!("{addr} still accepts connections after canaryd exited"),
    }
}

#[test]
fn sigterm_lets_the_in_flight_request_finish_then_exits() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let mut d = Canaryd::start(&Setup::new(&stable, &canary, 0.0));
    let proxy = d.proxy;

    let req = request_in_background(proxy, "/slow?ms=2000");
    wait_in_flight(&stable);
    d.signal(libc::SIGTERM);

    let r = req.join().expect("client thread").unwrap_or_else(|e| {
        panic!(
            "in-flight request failed during the stop: {e}; log:\n{}",
            d.log()
        )
    });
    assert_eq!(r.status, 200, "in-flight request answered {}", r.text());
    assert_eq!(r.text(), "slow");

    // Setup renders shutdown_grace = "5s"; the process exits once drained, within the grace.
    let took = d.wait_exit(Duration::from_secs(5));
    assert!(
        took.is_some(),
        "canaryd still running 5 s after the in-flight request finished; log:\n{}",
        d.log()
    );
    assert_refused(proxy);
}

#[test]
fn shutdown_grace_bounds_the_stop() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let setup = Setup::new(&stable, &canary, 0.0);
    let dir = TempDir::new("canaryd-e2e");
    let (proxy, admin) = (free_addr(), free_addr());
    let rendered = setup.render(proxy, admin, dir.path());
    let config_text = rendered.replace("shutdown_grace = \"5s\"", "shutdown_grace = \"2s\"");
    assert_ne!(
        config_text, rendered,
        "Setup::render no longer writes shutdown_grace = \"5s\""
    );
    let config = dir.path().join("canaryd.toml");
    fs::write(&config, config_text).expect("write config");
    let mut d = Canaryd::start_with_config(dir, config, proxy, admin);

    let req = request_in_background(proxy, "/slow?ms=20000");
    wait_in_flight(&stable);
    d.signal(libc::SIGTERM);

    let took = d.wait_exit(Duration::from_millis(3500));
    assert!(
        took.is_some(),
        "canaryd with shutdown_grace = 2s still running 3.5 s after SIGTERM with a 20 s \
         request in flight; log:\n{}",
        d.log()
    );
    // The cut request did not get a 200.
    if let Ok(r) = req.join().expect("client thread") {
        assert_ne!(
            r.status, 200,
            "a request cut by the grace period answered 200"
        );
    }
    assert_refused(proxy);
}

#[test]
fn idle_sigterm_exits_within_a_second() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let mut d = Canaryd::start(&Setup::new(&stable, &canary, 0.0));
    assert_eq!(d.client().get("/").expect("GET").status, 200);

    d.signal(libc::SIGTERM);
    let took = d.wait_exit(Duration::from_secs(1));
    assert!(
        took.is_some(),
        "idle canaryd still running 1 s after SIGTERM (grace 5 s); log:\n{}",
        d.log()
    );
    assert_refused(d.proxy);
}

#[test]
fn sigint_exits_at_once_even_with_a_request_in_flight() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let mut d = Canaryd::start(&Setup::new(&stable, &canary, 0.0));

    let req = request_in_background(d.proxy, "/slow?ms=10000");
    wait_in_flight(&stable);
    d.signal(libc::SIGINT);
    let took = d.wait_exit(Duration::from_secs(1));
    assert!(
        took.is_some(),
        "canaryd still running 1 s after SIGINT (it must not drain); log:\n{}",
        d.log()
    );
    if let Ok(r) = req.join().expect("client thread") {
        assert_ne!(r.status, 200, "a request cut by SIGINT answered 200");
    }
    assert_refused(d.proxy);
}
