//! [`PromClient`] against a real Prometheus (`/usr/bin/prometheus`; skipped with a notice when
//! missing, failed instead under `CANARYD_REQUIRE_TOOLS=1`) scraping two fake gateways, plus a
//! closed port and a server that never answers.
//!
//! All Prometheus cases share one process, in one test, to keep the file fast. The fake
//! gateways are the `fake-gateway` binary: run `cargo build --workspace --bins` first.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use canaryd_controller::{render_query as render, PromClient, Sample};
use testkit::{FakeGateway, Prometheus};

const TIMEOUT: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[track_caller]
fn expect_error(sample: Sample, needles: &[&str]) -> String {
    let Sample::Error(message) = sample else {
        panic!("expected an error containing {needles:?}, got {sample:?}");
    };
    for needle in needles {
        assert!(
            message.contains(needle),
            "error {message:?} should contain {needle:?}"
        );
    }
    message
}

#[test]
fn instant_queries_against_a_real_prometheus() {
    let gw = FakeGateway::spawn("gw", &[]);
    let other = FakeGateway::spawn("other", &[]);
    for _ in 0..3 {
        let response = testkit::get(gw.addr, "/").expect("GET / on the fake gateway");
        assert_eq!(response.status, 200);
    }
    let Some(prom) = Prometheus::start(&[("gw", gw.addr), ("other", other.addr)]) else {
        testkit::tool_missing("prometheus");
        return;
    };
    prom.wait_for_series(r#"up{job="gw"}"#, Duration::from_secs(15));
    prom.wait_for_series(r#"up{job="other"}"#, Duration::from_secs(15));
    prom.wait_for_series(
        r#"gateway_requests_total{job="gw"}"#,
        Duration::from_secs(15),
    );
    let client = PromClient::new(&prom.url(), TIMEOUT).expect("client");
    let rt = runtime();
    let q = |promql: &str| rt.block_on(client.query(promql));

    // One series, scraped from a real target.
    assert_eq!(q(r#"up{job="gw"}"#), Sample::Value(1.0));
    let requests = render(
        r#"sum(gateway_requests_total{job="{{ variant }}", code="200"})"#,
        "gw",
    );
    assert_eq!(q(&requests), Sample::Value(3.0));
    match q(r#"max(process_resident_memory_bytes{job="gw"})"#) {
        Sample::Value(v) => assert!(v > 0.0, "rss {v}"),
        other => panic!("rss: {other:?}"),
    }

    // Scalars.
    assert_eq!(q("scalar(vector(2))"), Sample::Value(2.0));
    assert_eq!(q("1+1"), Sample::Value(2.0));
    assert_eq!(q("  1 +\n   1  "), Sample::Value(2.0));

    // ±Inf are values.
    assert_eq!(q("1/0"), Sample::Value(f64::INFINITY));
    assert_eq!(q("vector(-1)/vector(0)"), Sample::Value(f64::NEG_INFINITY));

    // Empty vector and NaN are no data.
    assert_eq!(q(r#"up{job="nope"}"#), Sample::NoData);
    assert_eq!(q("0/0"), Sample::NoData);
    assert_eq!(q("vector(0)/vector(0)"), Sample::NoData);

    // Several series: the count, the hint, and the query.
    let message = expect_error(q("up"), &["2 series", "sum()", ": up"]);
    assert!(message.ends_with(": up"), "{message}");
    expect_error(
        q(r#"vector(1) or label_replace(vector(2), "x", "y", "", "")"#),
        &["2 series", r#"label_replace(vector(2), "x", "y", "", "")"#],
    );

    // Other result types.
    expect_error(q(r#"up{job="gw"}[1m]"#), &["matrix", r#"up{job="gw"}[1m]"#]);
    expect_error(q(r#""hello""#), &["string", r#""hello""#]);

    // Syntax error: Prometheus's own message, and the query (whitespace collapsed).
    expect_error(q("sum("), &["bad_data", "parse error", ": sum("]);
    expect_error(
        q("sum(\n   rate(up[5m]\n"),
        &["bad_data", ": sum( rate(up[5m]"],
    );
    expect_error(q("rate(up)"), &["bad_data", "range vector", "rate(up)"]);

    // A path prefix Prometheus does not serve: a clear non-JSON answer.
    let wrong = PromClient::new(&format!("{}/nowhere", prom.url()), TIMEOUT).expect("client");
    expect_error(
        rt.block_on(wrong.query("up")),
        &["HTTP 404", "/nowhere", ": up"],
    );
}

#[test]
fn closed_port_is_unreachable_quickly() {
    // Bind then drop: nothing listens on the port any more.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    let client = PromClient::new(&url, TIMEOUT).expect("client");
    let started = Instant::now();
    let sample = runtime().block_on(client.query(r#"sum(rate(x{variant="canary"}[5m]))"#));
    let message = expect_error(
        sample,
        &[
            &format!("Prometheus at {url} unreachable"),
            r#"sum(rate(x{variant="canary"}[5m]))"#,
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}: {message}",
        started.elapsed()
    );
}

#[test]
fn silent_server_times_out() {
    // Accepts connections (the kernel backlog does) but never answers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let client = PromClient::new(&url, Duration::from_millis(500)).expect("client");
    let started = Instant::now();
    let sample = runtime().block_on(client.query("up"));
    let elapsed = started.elapsed();
    expect_error(
        sample,
        &[&format!("Prometheus at {url} timed out after 0.5s"), ": up"],
    );
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(2),
        "took {elapsed:?}"
    );
    drop(listener);
}
