//! End-to-end checks of the `fixed-rate` load generator against a tiny
//! in-test HTTP/1.1 server (a `std::net::TcpListener` with a thread per
//! connection) whose delay, stall, framing and keep-alive are set per test:
//! the rate is kept, server latency shows in the quantiles, a stall is seen
//! by every request scheduled during it (coordinated omission), chunked
//! bodies and `Connection: close` are handled, warm-up requests are not
//! counted, and unanswered requests count as errors.
//!
//! The tests measure time, so they run one at a time (`SERIAL`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// How the test server answers.
#[derive(Clone, Default)]
struct Behaviour {
    /// Added before every response.
    delay: Duration,
    /// `(at, for)`: requests arriving between `at` and `at + for` after the
    /// first request are held until `at + for`.
    stall: Option<(Duration, Duration)>,
    /// Answer with a chunked body (several chunks, an extension, a trailer).
    chunked: bool,
    /// Send `Connection: close` and close after every n-th response of a
    /// connection.
    close_every: u64,
    /// Answer 403 to requests without this exact header line.
    require_header: Option<&'static str>,
}

struct Shared {
    behaviour: Behaviour,
    first_request: OnceLock<Instant>,
    requests: AtomicU64,
    connections: AtomicU64,
}

/// Starts the server on 127.0.0.1:0; it lives until the test process ends.
fn serve(behaviour: Behaviour) -> (SocketAddr, Arc<Shared>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let shared = Arc::new(Shared {
        behaviour,
        first_request: OnceLock::new(),
        requests: AtomicU64::new(0),
        connections: AtomicU64::new(0),
    });
    let s = shared.clone();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            s.connections.fetch_add(1, Ordering::Relaxed);
            let s = s.clone();
            thread::spawn(move || {
                let _ = connection(stream, &s);
            });
        }
    });
    (addr, shared)
}

fn connection(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let b = &shared.behaviour;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut served = 0u64;
    loop {
        let mut has_required = b.require_header.is_none();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if Some(l) == b.require_header {
                has_required = true;
            }
        }
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let first = *shared.first_request.get_or_init(Instant::now);
        if let Some((at, len)) = b.stall {
            let (from, until) = (first + at, first + at + len);
            let now = Instant::now();
            if now >= from && now < until {
                thread::sleep(until - now);
            }
        }
        if !b.delay.is_zero() {
            thread::sleep(b.delay);
        }
        served += 1;
        let close = served == b.close_every;
        let connection = if close { "Connection: close\r\n" } else { "" };
        let status = if has_required {
            "200 OK"
        } else {
            "403 Forbidden"
        };
        if b.chunked {
            out.write_all(
                format!("HTTP/1.1 {status}\r\n{connection}Transfer-Encoding: chunked\r\n\r\n")
                    .as_bytes(),
            )?;
            out.write_all(b"3;ext=1\r\nabc\r\n")?;
            out.write_all(b"A\r\n0123\r\n5678\r\n")?;
            out.write_all(b"0\r\nX-Trailer: y\r\n\r\n")?;
        } else {
            out.write_all(
                format!("HTTP/1.1 {status}\r\n{connection}Content-Length: 3\r\n\r\nok\n")
                    .as_bytes(),
            )?;
        }
        if close {
            return Ok(());
        }
    }
}

fn run_tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fixed-rate"))
        .args(args)
        .output()
        .expect("run fixed-rate")
}

/// Runs `fixed-rate --addr ADDR ARGS...` and returns its JSON line, parsed
/// and as printed.
fn fixed_rate_line(addr: SocketAddr, args: &[&str]) -> (Value, String) {
    let addr = addr.to_string();
    let mut all = vec!["--addr", addr.as_str()];
    all.extend_from_slice(args);
    let out = run_tool(&all);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "fixed-rate failed: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    assert_eq!(stdout.lines().count(), 1, "one line expected: {stdout}");
    let v: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    eprintln!("fixed-rate {args:?} -> {stdout}{stderr}");
    (v, stdout)
}

fn fixed_rate(addr: SocketAddr, args: &[&str]) -> Value {
    fixed_rate_line(addr, args).0
}

fn n(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing or not a number in {v}"))
}

#[test]
fn keeps_the_rate() {
    let _g = serial();
    let (addr, _) = serve(Behaviour::default());
    let (v, line) = fixed_rate_line(addr, &["--rate", "2000", "--duration", "2"]);
    // Keys in the documented order (values are numbers or null, no commas).
    let keys: Vec<&str> = line
        .trim()
        .trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|kv| kv.split_once(':'))
        .map(|(k, _)| k.trim_matches('"'))
        .collect();
    assert_eq!(
        keys,
        [
            "rate",
            "duration_s",
            "connections",
            "sent",
            "ok",
            "non_2xx",
            "errors",
            "achieved_rps",
            "p50_us",
            "p90_us",
            "p99_us",
            "p999_us",
            "max_us"
        ]
    );
    assert_eq!(n(&v, "rate"), 2000.0);
    assert_eq!(n(&v, "duration_s"), 2.0);
    assert_eq!(n(&v, "connections"), 32.0);
    assert_eq!(n(&v, "sent"), 4000.0);
    assert_eq!(n(&v, "ok"), 4000.0);
    assert_eq!(n(&v, "non_2xx") + n(&v, "errors"), 0.0);
    let rps = n(&v, "achieved_rps");
    assert!((rps - 2000.0).abs() < 100.0, "achieved {rps}");
    assert!(n(&v, "p50_us") <= n(&v, "p99_us"));
    assert!(n(&v, "p99_us") <= n(&v, "max_us"));
}

#[test]
fn server_latency_shows_in_p50() {
    let _g = serial();
    let (addr, _) = serve(Behaviour {
        delay: Duration::from_millis(5),
        ..Behaviour::default()
    });
    let v = fixed_rate(addr, &["--rate", "1000", "--duration", "1.5"]);
    assert_eq!(n(&v, "ok"), 1500.0);
    let p50 = n(&v, "p50_us");
    assert!((5_000.0..8_000.0).contains(&p50), "p50 {p50} µs");
}

/// The server holds every connection for 300 ms once, one second in. Only
/// the 4 requests in flight see the stall as such; the ~300 scheduled
/// during it wait in the queue and must be charged from their intended send
/// time, so the tail shows the stall. A closed-loop tool reports p99 ≈ 1 ms.
#[test]
fn coordinated_omission_is_corrected() {
    let _g = serial();
    let (addr, _) = serve(Behaviour {
        stall: Some((Duration::from_secs(1), Duration::from_millis(300))),
        ..Behaviour::default()
    });
    let v = fixed_rate(
        addr,
        &["--rate", "1000", "--duration", "2", "--connections", "4"],
    );
    assert_eq!(n(&v, "sent"), 2000.0);
    assert_eq!(n(&v, "ok"), 2000.0);
    let (p50, p99, max) = (n(&v, "p50_us"), n(&v, "p99_us"), n(&v, "max_us"));
    assert!(
        p99 >= 200_000.0,
        "p99 {p99} µs should show the 300 ms stall"
    );
    assert!(max >= 280_000.0, "max {max} µs");
    assert!(
        p50 < 50_000.0,
        "p50 {p50} µs: most requests were not stalled"
    );
}

#[test]
fn chunked_responses_are_parsed() {
    let _g = serial();
    let (addr, shared) = serve(Behaviour {
        chunked: true,
        ..Behaviour::default()
    });
    let v = fixed_rate(
        addr,
        &["--rate", "500", "--duration", "1", "--connections", "4"],
    );
    assert_eq!(n(&v, "ok"), 500.0);
    assert_eq!(n(&v, "errors"), 0.0);
    // Kept alive: no connection beyond the first four.
    assert_eq!(shared.connections.load(Ordering::Relaxed), 4);
}

#[test]
fn connection_close_reconnects() {
    let _g = serial();
    let (addr, shared) = serve(Behaviour {
        close_every: 10,
        ..Behaviour::default()
    });
    let v = fixed_rate(
        addr,
        &["--rate", "1000", "--duration", "1", "--connections", "4"],
    );
    assert_eq!(n(&v, "ok"), 1000.0);
    assert_eq!(n(&v, "errors"), 0.0);
    assert!(shared.connections.load(Ordering::Relaxed) >= 100);
}

#[test]
fn headers_are_sent_and_non_2xx_counted() {
    let _g = serial();
    let (addr, _) = serve(Behaviour {
        require_header: Some("Cookie: canaryd_bucket=42"),
        ..Behaviour::default()
    });
    let base = ["--rate", "200", "--duration", "0.5", "--path", "/x?y=1"];
    let mut with = base.to_vec();
    with.extend_from_slice(&["--header", "Cookie: canaryd_bucket=42"]);
    let v = fixed_rate(addr, &with);
    assert_eq!((n(&v, "ok"), n(&v, "non_2xx")), (100.0, 0.0));
    let v = fixed_rate(addr, &base);
    assert_eq!((n(&v, "ok"), n(&v, "non_2xx")), (0.0, 100.0));
    assert!(v["p50_us"].is_u64(), "non-2xx responses have latencies too");
}

#[test]
fn warmup_is_not_counted() {
    let _g = serial();
    let (addr, shared) = serve(Behaviour::default());
    let v = fixed_rate(
        addr,
        &["--rate", "400", "--duration", "0.5", "--warmup", "0.5"],
    );
    assert_eq!(n(&v, "sent"), 200.0);
    assert_eq!(n(&v, "ok"), 200.0);
    assert_eq!(shared.requests.load(Ordering::Relaxed), 400);
}

#[test]
fn unanswered_requests_are_errors_after_the_drain() {
    let _g = serial();
    let (addr, _) = serve(Behaviour {
        delay: Duration::from_secs(3),
        ..Behaviour::default()
    });
    let started = Instant::now();
    let v = fixed_rate(
        addr,
        &[
            "--rate",
            "100",
            "--duration",
            "0.5",
            "--connections",
            "8",
            "--drain",
            "0.3",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(n(&v, "sent"), 8.0, "only 8 connections, all stuck");
    assert_eq!(n(&v, "errors"), 50.0);
    assert_eq!(n(&v, "ok"), 0.0);
    // They still count in the percentiles, as waiting until the drain ended (~0.8 s after
    // the first intended send): a stall longer than the drain cannot vanish from p99.
    assert!(n(&v, "p50_us") >= 300_000.0, "{v}");
    assert!(n(&v, "max_us") >= 700_000.0, "{v}");
}

#[test]
fn unreachable_server_fails_cleanly() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = run_tool(&["--addr", &addr, "--rate", "10", "--duration", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");

    let out = run_tool(&["--addr", &addr, "--rate", "0"]);
    assert_eq!(out.status.code(), Some(2));
}
