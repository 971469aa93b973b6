//! The connection metrics nginx users expect: client connections by state, accepted and
//! handled counters, open streams, upstream connections per variant (idle in a worker's pool,
//! in use) and body bytes per variant.

use std::time::Duration;

use canaryd_config::DataPlaneConfig;
use canaryd_proxy::{build_data_plane, DataPlane, ProxyServer, RoutingHandle};
use testkit::{free_addr, wait_for_port, wait_until, Client, FakeGateway};

/// The value of the sample `name` (with its labels) in the rendered metrics.
fn sample(plane: &DataPlane, name: &str) -> f64 {
    let mut text = String::new();
    plane.metrics.render(&mut text, 0);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn connection_states_pools_streams_and_bytes_are_counted() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let listen = free_addr();
    let cfg: DataPlaneConfig = toml::from_str(&format!(
        "[proxy]\nlisten = [\"{listen}\"]\nthreads = 1\n\
         [backends.stable]\nservers = [\"{}\"]\n[backends.canary]\nservers = [\"{}\"]\n",
        stable.addr, canary.addr
    ))
    .expect("config");
    let plane = build_data_plane(&cfg, RoutingHandle::new(0)).expect("data plane");
    let server = ProxyServer::build(&cfg, plane.clone()).expect("server");
    std::thread::spawn(move || server.run(Box::new(|| {})));
    wait_for_port(listen, Duration::from_secs(10));

    let mut c = Client::connect(listen).expect("connect");
    let r = c.post("/upload", &[b'x'; 1000]).expect("upload");
    assert_eq!(r.status, 200, "{}", r.text());

    // The client connection is kept alive and idle; the upstream connection is back in the
    // worker's pool.
    wait_until("an idle client connection", Duration::from_secs(5), || {
        sample(&plane, "canaryd_connections{state=\"idle\"}") == 1.0
    });
    assert_eq!(
        sample(&plane, "canaryd_connections{state=\"reading\"}"),
        0.0
    );
    assert_eq!(
        sample(&plane, "canaryd_connections{state=\"writing\"}"),
        0.0
    );
    assert!(sample(&plane, "canaryd_connections_accepted_total") >= 1.0);
    assert_eq!(
        sample(
            &plane,
            "canaryd_upstream_connections{variant=\"stable\",state=\"idle\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &plane,
            "canaryd_upstream_connections{variant=\"stable\",state=\"in_use\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &plane,
            "canaryd_body_bytes_total{variant=\"stable\",direction=\"in\"}"
        ),
        1000.0
    );
    assert!(
        sample(
            &plane,
            "canaryd_body_bytes_total{variant=\"stable\",direction=\"out\"}"
        ) > 0.0
    );
    assert_eq!(
        sample(&plane, "canaryd_active_streams{variant=\"stable\"}"),
        0.0
    );

    // Closing the client connection: handled, nothing open.
    drop(c);
    wait_until("the connection handled", Duration::from_secs(5), || {
        sample(&plane, "canaryd_connections_handled_total") >= 1.0
            && sample(&plane, "canaryd_connections{state=\"idle\"}") == 0.0
    });
}
