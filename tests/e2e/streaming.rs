//! Streaming through canaryd, end to end: server-sent events reach the client as the upstream
//! sends them (nothing buffers the whole response), WebSocket upgrades are tunnelled both ways,
//! and a large request body is streamed to the upstream without being held in canaryd's memory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{Canaryd, FakeGateway, Setup};

/// Resident set size of process `pid`, in bytes (`VmRSS` of `/proc/PID/status`).
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS line in /proc/{pid}/status:\n{status}"));
    kb * 1024
}

#[test]
fn sse_first_event_arrives_before_upstream_finishes() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.tail = "[[proxy.routes]]\nprefix = \"/api/stream\"\nread_timeout = \"3600s\"\n".into();
    let d = Canaryd::start(&setup);

    let hold = Duration::from_millis(3000);
    let sent = Instant::now();
    let mut resp = d
        .client()
        .stream("GET", "/api/stream?hold_ms=3000", &[], b"")
        .expect("stream request");
    assert_eq!(resp.status, 200, "log:\n{}", d.log());
    assert!(
        resp.header("content-type")
            .is_some_and(|v| v.starts_with("text/event-stream")),
        "headers: {:?}",
        resp.headers
    );

    // Read until the first event is complete.
    let mut body = Vec::new();
    while !String::from_utf8_lossy(&body).contains("data: first\n\n") {
        match resp.next_chunk().expect("read first event") {
            Some(piece) => body.extend_from_slice(&piece),
            None => panic!(
                "stream ended before the first event; body {:?}",
                String::from_utf8_lossy(&body)
            ),
        }
    }
    let first_after = sent.elapsed();
    let text = String::from_utf8_lossy(&body).into_owned();
    assert!(
        !text.contains("data: last"),
        "the last event came together with the first: the response was buffered ({text:?})"
    );
    assert!(
        first_after < Duration::from_millis(1500),
        "the first event arrived {first_after:?} after the request, while the upstream holds \
         the stream for {hold:?}: something buffers the response"
    );

    // Then the rest, up to the end of the body.
    while let Some(piece) = resp.next_chunk().expect("read rest of the stream") {
        body.extend_from_slice(&piece);
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(text, "data: first\n\ndata: last\n\n");

    // The 3 s stream counts as a fast answer (time to its header), not as a 3 s request: a
    // p99 latency rule must not fail because users keep streams open.
    let sum_and_count = || {
        let m = d.metrics();
        let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
        (
            get("canaryd_request_duration_seconds_sum{variant=\"stable\"}"),
            get("canaryd_request_duration_seconds_count{variant=\"stable\"}"),
        )
    };
    let (sum, count) = sum_and_count();
    assert_eq!(count, 1.0, "one request recorded");
    assert!(
        sum < 1.0,
        "the stream was recorded as {sum} s; its header came at once"
    );
}

/// Opens a WebSocket through the proxy, sends `messages` and checks each echo.
async fn ws_round_trip(addr: std::net::SocketAddr, messages: &[Message]) {
    let step = Duration::from_secs(5);
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to proxy");
    let (mut ws, resp) = tokio::time::timeout(
        step,
        tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp),
    )
    .await
    .expect("websocket handshake timed out")
    .expect("websocket handshake through the proxy");
    assert_eq!(resp.status(), 101);
    for msg in messages {
        ws.send(msg.clone()).await.expect("send websocket message");
        let echoed = loop {
            let got = tokio::time::timeout(step, ws.next())
                .await
                .expect("no echo within 5 s")
                .expect("websocket closed before the echo")
                .unwrap_or_else(|e| panic!("websocket read error: {e:?}"));
            if got.is_text() || got.is_binary() {
                break got;
            }
        };
        assert_eq!(&echoed, msg, "echo differs from what was sent");
    }
    ws.close(None).await.expect("close websocket");
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

#[test]
fn websocket_echo_round_trips_text_and_binary() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let d = Canaryd::start(&Setup::new(&stable, &canary, 0.0));
    let binary: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    block_on(ws_round_trip(
        d.proxy,
        &[
            Message::text("hello through canaryd"),
            Message::binary(binary),
            Message::text("second text ✓"),
            Message::binary(vec![0u8, 255, 1, 254]),
        ],
    ));
}

#[test]
fn websocket_many_tunnels_all_work() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let d = Canaryd::start(&Setup::new(&stable, &canary, 0.0));
    block_on(async {
        for n in 0..300 {
            ws_round_trip(d.proxy, &[Message::text(format!("connection {n}"))]).await;
        }
    });
}

#[test]
fn upload_of_50_mb_is_streamed_not_buffered() {
    const TOTAL: usize = 50 * 1024 * 1024;
    const CHUNK: usize = 64 * 1024;
    const MAX_GROWTH: u64 = 25 * 1024 * 1024;

    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.proxy = "max_body_size = \"64MiB\"\n".into();
    let d = Canaryd::start(&setup);

    // Warm up the request path, so one-time allocations are not counted as growth.
    let warm = d.client().post("/upload", &[7u8; CHUNK]).expect("warm-up");
    assert_eq!(warm.status, 200, "{}", warm.text());
    let before = rss_bytes(d.pid());

    let mut s = TcpStream::connect(d.proxy).expect("connect to proxy");
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /upload HTTP/1.1\r\nHost: upload\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {TOTAL}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b'u'; CHUNK];
    let mut max_rss = before;
    for i in 0..TOTAL / CHUNK {
        s.write_all(&chunk)
            .unwrap_or_else(|e| panic!("writing chunk {i} of the upload: {e}"));
        // Sample every 4 MiB.
        if i % 64 == 63 {
            max_rss = max_rss.max(rss_bytes(d.pid()));
        }
    }
    s.flush().unwrap();

    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read upload response");
    max_rss = max_rss.max(rss_bytes(d.pid()));
    let text = String::from_utf8_lossy(&raw).into_owned();
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "upload answered {text:?}; log:\n{}",
        d.log()
    );
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    assert!(
        body.contains(&format!("{{\"bytes\":{TOTAL}}}")),
        "the gateway did not count all {TOTAL} bytes: {body:?}"
    );
    let growth = max_rss.saturating_sub(before);
    assert!(
        growth < MAX_GROWTH,
        "canaryd RSS grew by {} MiB during a 50 MiB upload (before {} MiB, max {} MiB): \
         the body is buffered",
        growth / (1024 * 1024),
        before / (1024 * 1024),
        max_rss / (1024 * 1024)
    );
}
