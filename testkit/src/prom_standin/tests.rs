//! Unit tests of `prom_standin.rs`, through testkit's own HTTP client.

use super::*;
use crate::http::{self, Client};

const QUERY_PATH: &str =
    "/api/v1/query?query=sum%28rate%28x%7Bv%3D%22c%22%7D%5B1m%5D%29%29+%2F+2&timeout=5000ms";

#[test]
fn answers_a_value_and_records_the_query() {
    let prom = PromStandIn::start(Answer::Value(0.25));
    assert_eq!(prom.queries(), 0);
    let mut client = Client::connect(prom.addr()).unwrap();
    let r = client
        .request("GET", QUERY_PATH, &[("X-Scope-OrgID", "tenant-1")], b"")
        .unwrap();
    assert_eq!(r.status, 200);
    let answer = r.json();
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["data"]["resultType"], "vector");
    assert_eq!(answer["data"]["result"][0]["value"][1], "0.25");
    assert_eq!(prom.queries(), 1);
    let asked = prom.last_request().unwrap();
    assert_eq!(asked.method, "GET");
    assert_eq!(asked.path, "/api/v1/query");
    assert_eq!(
        asked.query.as_deref(),
        Some(r#"sum(rate(x{v="c"}[1m])) / 2"#)
    );
    assert_eq!(asked.timeout.as_deref(), Some("5000ms"));
    assert_eq!(asked.header("x-scope-orgid"), Some("tenant-1"));
    // The answer's thread finishes just after the client has read the answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    while prom.in_flight() > 0 {
        assert!(Instant::now() < deadline, "the answer did not finish");
        thread::sleep(POLL);
    }
}

#[test]
fn any_prefix_and_post_forms_are_queries_other_paths_are_404() {
    let prom = PromStandIn::start(Answer::Scalar(f64::INFINITY));
    let r = http::post(
        prom.addr(),
        "/prometheus/api/v1/query",
        b"query=up&timeout=1s",
    )
    .unwrap();
    assert_eq!(r.json()["data"]["result"][1], "+Inf");
    let asked = prom.last_request().unwrap();
    assert_eq!(asked.path, "/prometheus/api/v1/query");
    assert_eq!(asked.query.as_deref(), Some("up"));
    let r = http::get(prom.addr(), "/api/v1/query_range?query=up").unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(prom.queries(), 1);
}

#[test]
fn canned_answers() {
    let prom = PromStandIn::start(Answer::Empty);
    let get = || http::get(prom.addr(), "/api/v1/query?query=up").unwrap();
    assert_eq!(get().json()["data"]["result"], serde_json::json!([]));
    prom.set(Answer::Value(f64::NAN));
    assert_eq!(get().json()["data"]["result"][0]["value"][1], "NaN");
    prom.set(Answer::Garbage);
    let r = get();
    assert_eq!(r.status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
    prom.set(Answer::Status(500));
    let r = get();
    assert_eq!(r.status, 500);
    assert_eq!(r.text(), "stand-in: HTTP 500\n");
    prom.set(Answer::Error {
        status: 422,
        error_type: "execution".into(),
        message: "too many samples".into(),
    });
    let r = get();
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["errorType"], "execution");
    prom.set(Answer::Raw {
        status: 302,
        content_type: "text/plain".into(),
        body: "elsewhere".into(),
    });
    assert_eq!(get().status, 302);
    assert_eq!(prom.queries(), 6);
}

#[test]
fn series_are_streamed_in_chunks() {
    let prom = PromStandIn::start(Answer::Series(5000));
    let r = http::get(prom.addr(), "/api/v1/query?query=up").unwrap();
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.header("content-length").is_none());
    assert!(r.body.len() > 5000 * 90, "{} bytes", r.body.len());
    let answer = r.json();
    let result = answer["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 5000);
    assert_eq!(result[4999]["metric"]["instance"], "host-0004999:9100");
}

#[test]
fn a_client_hanging_up_stops_a_huge_answer() {
    let prom = PromStandIn::start(Answer::Series(50_000_000));
    let mut stream = TcpStream::connect(prom.addr()).unwrap();
    stream
        .write_all(b"GET /api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 4096];
    let n = stream.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK"));
    assert_eq!(prom.in_flight(), 1);
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    while prom.in_flight() > 0 {
        assert!(Instant::now() < deadline, "the stand-in kept writing");
        thread::sleep(POLL);
    }
}

#[test]
fn delays_and_hangs_end_when_the_client_gives_up() {
    let prom = PromStandIn::start(Answer::Value(1.0));
    prom.set_delay(Duration::from_millis(300));
    let started = Instant::now();
    let r = http::get(prom.addr(), "/api/v1/query?query=up").unwrap();
    assert_eq!(r.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    prom.set(Answer::Hang);
    let mut client = Client::connect(prom.addr()).unwrap();
    client.set_timeout(Duration::from_millis(200)).unwrap();
    assert!(client.get("/api/v1/query?query=up").is_err());
    assert!(prom.wait_for_queries(2, Duration::from_secs(1)));
    assert_eq!(prom.in_flight(), 1);
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(5);
    while prom.in_flight() > 0 {
        assert!(Instant::now() < deadline, "the hanging answer did not end");
        thread::sleep(POLL);
    }
}

#[test]
fn dropping_the_stand_in_ends_hanging_answers() {
    let prom = PromStandIn::start(Answer::Hang);
    let shared = prom.shared.clone();
    let mut stream = TcpStream::connect(prom.addr()).unwrap();
    stream
        .write_all(b"GET /api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(prom.wait_for_queries(1, Duration::from_secs(5)));
    let started = Instant::now();
    drop(prom);
    while shared.in_flight.load(Ordering::SeqCst) > 0 {
        assert!(started.elapsed() < Duration::from_secs(5));
        thread::sleep(POLL);
    }
    let mut rest = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn form_decoding() {
    assert_eq!(
        form_pairs("a=1&b=x+y%21&c&d=%zz&e=%E2%9C%93"),
        vec![
            ("a".into(), "1".into()),
            ("b".into(), "x y!".into()),
            ("c".into(), String::new()),
            ("d".into(), "%zz".into()),
            ("e".into(), "✓".into()),
        ]
    );
    assert_eq!(form_decode("%"), "%");
    assert_eq!(form_decode("ü%4"), "ü%4");
}
