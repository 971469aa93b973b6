//! A pooled upstream connection the upstream closes before answering (as one closed while idle
//! looks when canaryd reuses it) is retried on a fresh connection: the client gets its answer,
//! nothing is counted against the server (`max_fails = 1` would otherwise take a one-server
//! pool out and send everyone to the other pool), and nothing falls back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use canaryd_config::DataPlaneConfig;
use canaryd_proxy::{build_data_plane, ProxyServer, RoutingHandle, Variant};
use testkit::{free_addr, wait_for_port, wait_until, Client, FakeGateway};

/// Answers the first request of every connection (keeping it alive), then closes the
/// connection without answering when the next request arrives on it.
fn one_answer_per_connection_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind backend");
    let addr = listener.local_addr().expect("backend address");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut answered = false;
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = conn.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        continue;
                    }
                    got.clear();
                    if answered {
                        // The connection "was closed while idle".
                        return;
                    }
                    answered = true;
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nstable");
                }
            });
        }
    });
    addr
}

#[test]
fn stale_pooled_connections_are_retried_fresh_and_never_count_as_failures() {
    let stable = one_answer_per_connection_backend();
    let canary = FakeGateway::spawn("canary", &[]);
    let listen = free_addr();
    let cfg: DataPlaneConfig = toml::from_str(&format!(
        "[proxy]\nlisten = [\"{listen}\"]\nthreads = 1\n\
         [backends.stable]\nservers = [\"{stable}\"]\nmax_fails = 1\n\
         [backends.canary]\nservers = [\"{}\"]\n",
        canary.addr
    ))
    .expect("config");
    assert!(cfg.validate().is_empty());
    let plane = build_data_plane(&cfg, RoutingHandle::new(0)).expect("data plane");
    let server = ProxyServer::build(&cfg, plane.clone()).expect("server");
    std::thread::spawn(move || server.run(Box::new(|| {})));
    wait_for_port(listen, Duration::from_secs(10));

    let mut c = Client::connect(listen).expect("connect");
    for i in 0..20 {
        let r = c.get("/").unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "stable"),
            "request {i}"
        );
    }
    let m = &plane.metrics;
    // A response is recorded right after its last byte is written.
    wait_until("20 requests recorded", Duration::from_secs(5), || {
        m.requests_of(Variant::Stable, 2) == 20
    });
    assert_eq!(
        m.requests_of(Variant::Stable, 5),
        0,
        "a stale connection was counted"
    );
    assert_eq!(
        m.fallbacks_from(Variant::Stable),
        0,
        "traffic moved to the canary"
    );
    let mut text = String::new();
    m.render(&mut text, 0);
    for kind in ["connect", "timeout", "reset", "protocol"] {
        let line =
            format!("canaryd_upstream_failures_total{{variant=\"stable\",kind=\"{kind}\"}} 0");
        assert!(text.contains(&line), "expected {line}");
    }
    assert!(
        plane.upstreams().pools[0].has_available(),
        "the only stable server was taken out of rotation"
    );
}
