//! [`Notifier`] against real HTTP receivers on 127.0.0.1 (a raw `TcpListener` thread each):
//! retries until delivered, a target that always fails, one that never answers, a full queue,
//! one dead target next to a live one, the slack body, and the `[[notify]]` config keys.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use canaryd_config::{Config, NotifyConfig, NotifyFormat};
use canaryd_controller::{slack_text, Decision, Notifier, NOTIFY_QUEUE as QUEUE};
use serde_json::{json, Value};

/// What the receiver does with the n-th request (0-based) it gets.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    /// Reads the request and never answers (until the client hangs up).
    Silent,
}

#[derive(Clone, Debug)]
struct Request {
    at: Instant,
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A minimal HTTP/1.1 server: one thread per connection, `connection: close` answers.
struct Receiver {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Receiver {
    fn start(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                let script = script.clone();
                std::thread::spawn(move || serve(stream, &log, &*script));
            }
        });
        Receiver { addr, requests }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, log: &Mutex<Vec<Request>>, script: &dyn Fn(usize) -> Answer) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let end = line == "\r\n";
        head.push_str(&line);
        if end {
            break;
        }
    }
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    let n = {
        let mut log = log.lock().unwrap();
        log.push(Request {
            at: Instant::now(),
            head,
            body,
        });
        log.len() - 1
    };
    let mut stream = stream;
    match script(n) {
        Answer::Status(code) => {
            let answer = format!(
                "HTTP/1.1 {code} Whatever\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
            let _ = stream.write_all(answer.as_bytes());
        }
        Answer::Silent => {
            // Until the client gives up and closes.
            let _ = reader.read_to_end(&mut Vec::new());
        }
    }
}

fn target(url: String, format: NotifyFormat, timeout: Duration, retries: u32) -> NotifyConfig {
    NotifyConfig {
        url,
        format,
        timeout,
        retries,
    }
}

fn json_target(url: String) -> NotifyConfig {
    target(url, NotifyFormat::Json, Duration::from_secs(5), 3)
}

fn decision(step: u64) -> Decision {
    serde_json::from_value(json!({
        "ts": "2025-06-01T12:00:00.000Z",
        "kind": "transition",
        "action": "rollback",
        "state": "rolled_back",
        "policy": "gateway-migration",
        "step": step,
        "canary_percent": 0.0,
        "held_s": 3600.5,
        "reason": "rule(s) error-rate failed",
        "rules": [{"name": "error-rate", "value": 0.031, "outcome": "fail",
                   "source": "prometheus", "threshold": "> 0.01", "breaching_for_s": 0.0,
                   "for_s": 0.0, "on_fail": "rollback", "dry_run": false}],
        "failed_rules": ["error-rate"],
        "gradual": false,
    }))
    .expect("a decision line")
}

/// The decision as its JSON line.
fn line(d: &Decision) -> Value {
    serde_json::to_value(d).expect("a decision serializes")
}

/// `canaryd_notifications_total{target, result}` from the rendered metrics.
fn count(n: &Notifier, target: usize, result: &str) -> u64 {
    let mut out = String::new();
    n.render(&mut out);
    let series = format!("canaryd_notifications_total{{target=\"{target}\",result=\"{result}\"}} ");
    out.lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in\n{out}"))
        .parse()
        .unwrap()
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn gaps(requests: &[Request]) -> Vec<Duration> {
    requests.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_until_the_third_attempt_delivers() {
    let rx = Receiver::start(|n| Answer::Status(if n < 2 { 500 } else { 200 }));
    let notifier = Notifier::start(&[json_target(rx.url())]);
    let d = decision(1);
    notifier.notify(&d);

    wait_for("sent = 1", Duration::from_secs(10), || {
        count(&notifier, 0, "sent") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 3, "two failures and one success");
    for r in &requests {
        assert_eq!(r.json(), line(&d), "every attempt sends the decision as is");
        let head = r.head.to_ascii_lowercase();
        assert!(head.starts_with("post /hook http/1.1\r\n"), "{head}");
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
    }
    let g = gaps(&requests);
    assert!(
        g[0] >= Duration::from_millis(450) && g[0] < Duration::from_millis(1_000),
        "{g:?}"
    );
    assert!(
        g[1] >= Duration::from_millis(950) && g[1] < Duration::from_millis(1_600),
        "{g:?}"
    );
    assert_eq!(count(&notifier, 0, "failed"), 0);
    assert_eq!(count(&notifier, 0, "dropped"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_target_is_counted_failed_after_four_attempts() {
    let rx = Receiver::start(|_| Answer::Status(503));
    let notifier = Notifier::start(&[json_target(rx.url())]);
    notifier.notify(&decision(0));

    wait_for("failed = 1", Duration::from_secs(10), || {
        count(&notifier, 0, "failed") == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = rx.requests();
    assert_eq!(requests.len(), 4, "one attempt and three retries");
    let g = gaps(&requests);
    for (gap, backoff) in g.iter().zip([500, 1_000, 2_000]) {
        let backoff = Duration::from_millis(backoff);
        assert!(
            *gap >= backoff - Duration::from_millis(50)
                && *gap < backoff + Duration::from_millis(600),
            "backoff 0.5 s, 1 s, 2 s; got {g:?}"
        );
    }
    assert_eq!(count(&notifier, 0, "sent"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_target_times_out() {
    let rx = Receiver::start(|_| Answer::Silent);
    let notifier = Notifier::start(&[target(
        rx.url(),
        NotifyFormat::Json,
        Duration::from_millis(300),
        0,
    )]);
    let t0 = Instant::now();
    notifier.notify(&decision(0));
    let returned = t0.elapsed();
    assert!(
        returned < Duration::from_millis(5),
        "notify() took {returned:?}"
    );

    wait_for("failed = 1", Duration::from_secs(3), || {
        count(&notifier, 0, "failed") == 1
    })
    .await;
    let failed_after = t0.elapsed();
    assert!(
        failed_after >= Duration::from_millis(300),
        "{failed_after:?}"
    );
    assert!(
        failed_after < Duration::from_millis(1_500),
        "{failed_after:?}"
    );
    assert_eq!(rx.requests().len(), 1, "the request reached the receiver");
    assert_eq!(count(&notifier, 0, "sent"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_never_blocks_and_overflow_is_dropped() {
    let rx = Receiver::start(|_| Answer::Silent);
    let notifier = Notifier::start(&[json_target(rx.url())]);
    let d = decision(2);
    let mut slowest = Duration::ZERO;
    let t0 = Instant::now();
    for _ in 0..1_000 {
        let t = Instant::now();
        notifier.notify(&d);
        slowest = slowest.max(t.elapsed());
    }
    let total = t0.elapsed();
    // And once more, with the queue full.
    let t = Instant::now();
    notifier.notify(&d);
    let full = t.elapsed();
    eprintln!(
        "1000 notify() calls: {total:?} in all, slowest {slowest:?}; on a full queue {full:?}"
    );
    assert!(
        slowest < Duration::from_millis(5),
        "slowest notify() took {slowest:?}"
    );
    assert!(
        full < Duration::from_millis(5),
        "notify() on a full queue took {full:?}"
    );

    // The queue holds QUEUE events, the delivery task may hold one more (in flight).
    let dropped = count(&notifier, 0, "dropped");
    let accepted = 1_001 - dropped;
    assert!(
        accepted == QUEUE as u64 || accepted == QUEUE as u64 + 1,
        "dropped {dropped} of 1001"
    );
    assert_eq!(count(&notifier, 0, "sent"), 0);
    assert_eq!(count(&notifier, 0, "failed"), 0);

    let mut out = String::new();
    notifier.render(&mut out);
    assert!(out.contains("# HELP canaryd_notifications_total "), "{out}");
    assert!(
        out.contains("# TYPE canaryd_notifications_total counter\n"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_does_not_delay_another() {
    let dead = Receiver::start(|_| Answer::Silent);
    let live = Receiver::start(|_| Answer::Status(204));
    let notifier = Notifier::start(&[json_target(dead.url()), json_target(live.url())]);
    let t0 = Instant::now();
    for step in 0..3 {
        notifier.notify(&decision(step));
    }
    wait_for(
        "3 deliveries to the live target",
        Duration::from_secs(2),
        || count(&notifier, 1, "sent") == 3,
    )
    .await;
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "live target served after {took:?}"
    );
    let steps: Vec<Value> = live
        .requests()
        .iter()
        .map(|r| r.json()["step"].clone())
        .collect();
    assert_eq!(steps, [json!(0), json!(1), json!(2)], "in order");
    assert_eq!(count(&notifier, 0, "sent"), 0);
    assert_eq!(
        dead.requests().len(),
        1,
        "the dead target has its first event in flight"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_target_gets_a_text_summary() {
    let rx = Receiver::start(|_| Answer::Status(200));
    let notifier = Notifier::start(&[target(
        rx.url(),
        NotifyFormat::Slack,
        Duration::from_secs(5),
        3,
    )]);
    let mut d = decision(1);
    d.from_percent = Some(25.0);
    notifier.notify(&d);
    wait_for("sent = 1", Duration::from_secs(5), || {
        count(&notifier, 0, "sent") == 1
    })
    .await;

    let requests = rx.requests();
    assert_eq!(requests.len(), 1);
    let expected =
        "canaryd gateway-migration: rollback at step 1 (25 % → 0 %): rule(s) error-rate failed";
    assert_eq!(slack_text(&d), expected);
    assert_eq!(requests[0].json(), json!({ "text": expected }));
    assert!(
        requests[0]
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json\r\n"),
        "{}",
        requests[0].head
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_goes_through_tls() {
    // A plain-HTTP receiver cannot complete a TLS handshake: the attempt fails (no panic, no
    // plain-text request), which shows https:// URLs take the TLS path.
    let rx = Receiver::start(|_| Answer::Status(200));
    let url = format!("https://{}/hook", rx.addr);
    let notifier = Notifier::start(&[target(url, NotifyFormat::Json, Duration::from_secs(2), 0)]);
    notifier.notify(&decision(0));
    wait_for("failed = 1", Duration::from_secs(5), || {
        count(&notifier, 0, "failed") == 1
    })
    .await;
    assert_eq!(count(&notifier, 0, "sent"), 0);
    assert!(
        rx.requests().is_empty(),
        "no plain-text request: {:?}",
        rx.requests()
    );
}

#[test]
fn disabled_notifier_and_start_without_targets_do_nothing() {
    for n in [Notifier::disabled(), Notifier::start(&[])] {
        n.notify(&decision(0));
        let mut out = String::new();
        n.render(&mut out);
        assert!(!out.contains("canaryd_notifications_total{"), "{out}");
    }
}

const BASE: &str = r#"
[backends.stable]
servers = ["127.0.0.1:8080"]

[backends.canary]
servers = ["127.0.0.1:8081"]
"#;

#[test]
fn notify_config_keys_and_defaults() {
    let src = format!(
        "{BASE}\n[[notify]]\nurl = \"http://127.0.0.1:9/hook\"\n\
         [[notify]]\nurl = \"https://hooks.slack.com/services/T000/B000/XXXX\"\nformat = \"slack\"\ntimeout = \"300ms\"\nretries = 0\n"
    );
    let c = Config::from_source("canaryd.toml", &src, false).unwrap();
    assert_eq!(c.notify[0].format, NotifyFormat::Json);
    assert_eq!(c.notify[0].timeout, Duration::from_secs(5));
    assert_eq!(c.notify[0].retries, 3);
    assert_eq!(c.notify[1].format, NotifyFormat::Slack);
    assert_eq!(c.notify[1].timeout, Duration::from_millis(300));
    assert_eq!(c.notify[1].retries, 0);
}

#[test]
fn notify_config_errors_are_located() {
    let src =
        format!("{BASE}\n[[notify]]\nurl = \"hooks.example/x\"\ntimeout = \"0s\"\nretries = 11\n");
    let e = Config::from_source("canaryd.toml", &src, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("canaryd.toml:9: key `notify[0].url`: expected an http:// or https:// URL"),
        "{e}"
    );
    assert!(
        e.contains("canaryd.toml:10: key `notify[0].timeout`: expected a positive duration"),
        "{e}"
    );
    assert!(
        e.contains("canaryd.toml:11: key `notify[0].retries`: expected at most 10"),
        "{e}"
    );
}
