//! HTTP/2 downstream: a prior-knowledge h2c client is served by the same request loop as
//! HTTP/1 (routing, forwarding to the HTTP/1.1 upstreams, request bodies, metrics). Uses curl
//! (built with nghttp2) as the client; skipped when curl cannot speak HTTP/2, unless
//! `CANARYD_REQUIRE_TOOLS` is set.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use canaryd_config::DataPlaneConfig;
use canaryd_proxy::{build_data_plane, ProxyServer, RoutingHandle, Variant};
use testkit::{free_addr, wait_for_port, wait_until, FakeGateway};

fn curl_h2(addr: SocketAddr, args: &[&str], path: &str) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "--http2-prior-knowledge",
            "-w",
            "\n%{http_version} %{http_code}",
        ])
        .args(args)
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
    (body.to_string(), status.to_string())
}

fn curl_speaks_h2() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("HTTP2"))
        .unwrap_or(false)
}

#[test]
fn prior_knowledge_h2c_is_served_by_the_same_loop() {
    if !curl_speaks_h2() {
        assert!(
            std::env::var_os("CANARYD_REQUIRE_TOOLS").is_none(),
            "curl with HTTP/2 support is required"
        );
        eprintln!("skipped: curl without HTTP/2");
        return;
    }
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let listen = free_addr();
    let cfg: DataPlaneConfig = toml::from_str(&format!(
        "[proxy]\nlisten = [\"{listen}\"]\nthreads = 1\n\
         [backends.stable]\nservers = [\"{}\"]\n[backends.canary]\nservers = [\"{}\"]\n\
         [routing]\nheader = \"X-Gateway-Version\"\ncanary_values = [\"cpp\"]\n",
        stable.addr, canary.addr
    ))
    .expect("config");
    assert!(cfg.validate().is_empty());
    let plane = build_data_plane(&cfg, RoutingHandle::new(0)).expect("data plane");
    let server = ProxyServer::build(&cfg, plane.clone()).expect("server");
    std::thread::spawn(move || server.run(Box::new(|| {})));
    wait_for_port(listen, Duration::from_secs(10));

    let (body, status) = curl_h2(listen, &[], "/");
    assert_eq!((body.as_str(), status.as_str()), ("stable", "2 200"));
    let (body, status) = curl_h2(listen, &["-H", "X-Gateway-Version: cpp"], "/");
    assert_eq!((body.as_str(), status.as_str()), ("canary", "2 200"));

    // A request body crosses from HTTP/2 to the HTTP/1.1 upstream.
    let data = "x".repeat(100_000);
    let (body, status) = curl_h2(
        listen,
        &["-X", "POST", "--data-binary", data.as_str()],
        "/upload",
    );
    assert_eq!(status, "2 200", "body {body}");
    assert!(body.contains("\"bytes\":100000"), "upstream counted {body}");

    // The forwarding headers are set as for HTTP/1.
    let (body, status) = curl_h2(listen, &[], "/echo");
    assert_eq!(status, "2 200");
    assert!(
        body.to_ascii_lowercase().contains("x-forwarded-for"),
        "echo {body}"
    );

    // A response is recorded right after its last byte is written.
    let m = &plane.metrics;
    wait_until("4 requests recorded", Duration::from_secs(5), || {
        m.requests_of(Variant::Stable, 2) == 3 && m.requests_of(Variant::Canary, 2) == 1
    });
}
