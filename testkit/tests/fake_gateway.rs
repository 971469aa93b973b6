//! End-to-end checks of the `fake-gateway` binary through [`FakeGateway`]
//! and the blocking [`Client`]: every endpoint the canaryd e2e tests rely on
//! behaves as documented. Cargo builds the crate's binaries before its
//! integration tests, so `sibling_binary("fake-gateway")` finds it.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use testkit::{get, post, Client, FakeGateway};
use tokio_tungstenite::tungstenite::Message;

/// Value of the first sample of `series` (exact name + labels) in `text`.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn health_root_and_served_by() {
    let gw = FakeGateway::spawn("stable", &[]);
    let r = get(gw.addr, "/health").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert_eq!(r.header("X-Served-By"), Some("stable"));

    let r = get(gw.addr, "/").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "stable"));
    assert_eq!(r.header("x-served-by"), Some("stable"));

    gw.set_knobs("healthy=false");
    let r = get(gw.addr, "/health").unwrap();
    assert_eq!((r.status, r.text().as_str()), (503, "unhealthy"));
}

#[test]
fn echo_reports_the_request() {
    let gw = FakeGateway::spawn("echo", &[]);
    let mut c = Client::connect(gw.addr).unwrap();
    let r = c
        .request(
            "PUT",
            "/echo/x?a=1&b=2",
            &[("X-Multi", "one"), ("x-multi", "two"), ("X-Trace", "t")],
            b"hello",
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-served-by"), Some("echo"));
    let j = r.json();
    assert_eq!(j["name"], "echo");
    assert_eq!(j["method"], "PUT");
    assert_eq!(j["path"], "/echo/x?a=1&b=2");
    assert_eq!(j["body_len"], 5);
    assert_eq!(j["headers"]["x-multi"], serde_json::json!(["one", "two"]));
    assert_eq!(j["headers"]["x-trace"], serde_json::json!(["t"]));
    assert_eq!(
        j["headers"]["host"],
        serde_json::json!([gw.addr.to_string()])
    );

    // Same kept-alive connection still works.
    let r = c.get("/echo").unwrap();
    assert_eq!(r.json()["method"], "GET");
}

#[test]
fn sse_first_event_arrives_before_the_hold_ends() {
    let gw = FakeGateway::spawn("sse", &[]);
    let mut c = Client::connect(gw.addr).unwrap();
    let start = Instant::now();
    let mut s = c
        .stream("GET", "/api/stream?hold_ms=1500", &[], b"")
        .unwrap();
    assert_eq!(s.status, 200);
    assert_eq!(s.header("content-type"), Some("text/event-stream"));
    assert_eq!(s.header("cache-control"), Some("no-cache"));
    assert_eq!(s.header("x-served-by"), Some("sse"));

    let first = s.next_chunk().unwrap().expect("a first event");
    let first_at = start.elapsed();
    assert_eq!(first, b"data: first\n\n");
    assert!(
        first_at < Duration::from_millis(1000),
        "first event took {first_at:?}"
    );

    let rest = s.read_to_end().unwrap();
    assert_eq!(rest, b"data: last\n\n");
    assert!(start.elapsed() >= Duration::from_millis(1500));
}

#[test]
fn knobs_change_behaviour_at_run_time() {
    let gw = FakeGateway::spawn("knobby", &[]);
    assert_eq!(gw.knobs()["error_rate"], 0.0);

    let j = gw.set_knobs("error_rate=1");
    assert_eq!(j["error_rate"], 1.0);
    for _ in 0..3 {
        let r = get(gw.addr, "/").unwrap();
        assert_eq!((r.status, r.text().as_str()), (500, "error"));
        assert_eq!(r.header("x-served-by"), Some("knobby"));
    }
    // Control endpoints are not affected by the error rate.
    assert_eq!(get(gw.addr, "/health").unwrap().status, 200);

    let bad = post(gw.addr, "/__knobs?error_rate=2", b"").unwrap();
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("error_rate"), "{}", bad.text());
    assert_eq!(gw.knobs()["error_rate"], 1.0, "a bad value changes nothing");

    gw.set_knobs("error_rate=0&latency_ms=300");
    let start = Instant::now();
    let r = get(gw.addr, "/api/orders").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "knobby"));
    assert!(start.elapsed() >= Duration::from_millis(300));

    gw.set_knobs("latency_ms=0&auth_fail_rate=1");
    assert_eq!(get(gw.addr, "/auth/login").unwrap().status, 401);
    assert_eq!(get(gw.addr, "/other").unwrap().status, 200);

    let m = gw.metrics();
    assert_eq!(
        metric(&m, "gateway_requests_total{code=\"500\"}"),
        Some(3.0)
    );
    assert_eq!(
        metric(&m, "gateway_requests_total{code=\"200\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric(&m, "gateway_requests_total{code=\"401\"}"),
        Some(1.0)
    );
    assert_eq!(metric(&m, "gateway_auth_failures_total"), Some(1.0));
    assert!(metric(&m, "process_resident_memory_bytes").is_some_and(|v| v > 0.0));
    assert!(metric(&m, "process_cpu_seconds_total").is_some());
}

#[test]
fn upload_counts_5_mib_without_buffering() {
    let gw = FakeGateway::spawn("up", &[]);
    let body = vec![b'x'; 5 * 1024 * 1024];
    let r = post(gw.addr, "/upload", &body).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({ "bytes": 5 * 1024 * 1024 }));
}

#[test]
fn slow_waits() {
    let gw = FakeGateway::spawn("slow", &[]);
    let start = Instant::now();
    let r = get(gw.addr, "/slow?ms=200").unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "slow"));
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(get(gw.addr, "/slow?ms=abc").unwrap().status, 400);
}

#[test]
fn leak_grows_rss() {
    let gw = FakeGateway::spawn("leaky", &["--leak-mb-per-min", "1200"]);
    let rss = |m: &str| metric(m, "process_resident_memory_bytes").unwrap();
    let before = rss(&gw.metrics());
    std::thread::sleep(Duration::from_millis(1500));
    let m = gw.metrics();
    let leaked = metric(&m, "gateway_leaked_bytes").unwrap();
    assert!(leaked >= 10.0 * 1024.0 * 1024.0, "leaked only {leaked}");
    assert!(
        rss(&m) - before >= 8.0 * 1024.0 * 1024.0,
        "RSS grew only from {before} to {}",
        rss(&m)
    );
}

#[test]
fn kill_and_come_back_on_the_same_port() {
    let mut gw = FakeGateway::spawn("phoenix", &["--latency-ms", "1"]);
    let addr = gw.addr;
    let old_pid = gw.pid();
    gw.kill();
    assert!(!gw.is_running());
    assert!(get(addr, "/health").is_err());
    gw.restart();
    assert_eq!(gw.addr, addr);
    assert_ne!(gw.pid(), old_pid);
    assert_eq!(gw.knobs()["latency_ms"], 1);
    assert_eq!(get(addr, "/").unwrap().text(), "phoenix");

    let other = FakeGateway::spawn_on(testkit::free_addr(), "fixed", &[]);
    assert_eq!(get(other.addr, "/").unwrap().text(), "fixed");
}

#[tokio::test]
async fn websocket_echo() {
    let gw = FakeGateway::spawn("ws", &[]);
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("ws://{}/ws", gw.addr), tcp)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(
        resp.headers()
            .get("x-served-by")
            .and_then(|v| v.to_str().ok()),
        Some("ws")
    );

    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![1u8, 2, 3])
    );
    ws.close(None).await.unwrap();
    // The server answers the close; the stream then ends.
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Close(_)) => {}
            Ok(other) => panic!("unexpected message after close: {other:?}"),
            Err(_) => break,
        }
    }

    let plain = get(gw.addr, "/ws").unwrap();
    assert_eq!(
        plain.status, 400,
        "a GET without upgrade headers is refused"
    );
}
