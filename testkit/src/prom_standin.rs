//! A Prometheus stand-in: a tiny HTTP/1.1 server on 127.0.0.1 that answers
//! `GET|POST …/api/v1/query` the way a test tells it to, at run time — a
//! value, nothing, an error, garbage, a huge answer, a slow answer or none at
//! all — and counts the queries it got. For the cases a real Prometheus
//! cannot be made to produce on demand (see [`crate::Prometheus`] for the
//! real one).
//!
//! ```no_run
//! use std::time::Duration;
//! use testkit::prom_standin::{Answer, PromStandIn};
//!
//! let prom = PromStandIn::start(Answer::Value(0.01));
//! // canaryd.toml: [prometheus] url = "<prom.url()>"
//! prom.set(Answer::Hang); // from now on: accept, read, never answer
//! prom.set_delay(Duration::from_secs(3)); // (for the other answers) answer 3 s late
//! assert!(prom.wait_for_queries(1, Duration::from_secs(10)));
//! let asked = prom.last_request().unwrap();
//! assert_eq!(asked.query.as_deref(), Some(r#"sum(rate(x{variant="canary"}[1m]))"#));
//! ```
//!
//! # Behaviour
//!
//! - Any path ending in `/api/v1/query` is a query (so `url()` plus any path
//!   prefix works, like a Prometheus behind `https://host/prometheus`); the
//!   query text is read from the URL's `query=` or, for a POST, the form body.
//!   Every other path is answered 404 `404 page not found` and not counted.
//! - Each query is counted ([`queries`](PromStandIn::queries)) and recorded
//!   ([`last_request`](PromStandIn::last_request): method, path, query,
//!   headers — to check credentials and `X-Scope-OrgID`) as soon as its head
//!   is read, before any delay.
//! - The answer ([`Answer`]) and the delay are those set when the query
//!   arrived: changing them does not affect queries already waiting.
//! - One request per connection (`Connection: close`), one thread per
//!   connection. A delayed or hanging answer is abandoned as soon as the client
//!   hangs up or the stand-in is dropped, so a test never waits for it;
//!   [`in_flight`](PromStandIn::in_flight) says how many are waiting or being
//!   written.
//! - [`Answer::Series`] is streamed in chunks (`Transfer-Encoding: chunked`,
//!   no `Content-Length`) as it is generated: the stand-in holds one chunk
//!   (about 64 KiB), not the answer, and stops writing when the client hangs
//!   up. So a test measuring the client's memory is not disturbed by the
//!   stand-in's.
//!
//! Dropping the handle stops the server and ends every connection thread
//! within about 20 ms.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest request head read.
const MAX_HEAD: usize = 64 * 1024;
/// How often a waiting answer checks whether to give up.
const POLL: Duration = Duration::from_millis(10);
/// Bytes of series per chunk of a [`Answer::Series`] answer.
const CHUNK: usize = 64 * 1024;

/// What the stand-in answers to a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 200, a one-series instant vector with this value (`NaN`, `±Inf` as
    /// Prometheus writes them): a rule's value.
    Value(f64),
    /// 200, a scalar with this value.
    Scalar(f64),
    /// 200, an empty vector: no data.
    Empty,
    /// 200, an instant vector of this many series (`up{instance="host-N"}`,
    /// about 100 bytes each), streamed. 0 is the same as [`Answer::Empty`].
    Series(usize),
    /// Reads the query, then never answers (until the client gives up or the
    /// stand-in is dropped).
    Hang,
    /// 200 with an HTML body that is not JSON.
    Garbage,
    /// This HTTP status with a short plain-text body
    /// (`stand-in: HTTP 500`), as a proxy in front of Prometheus would send.
    Status(u16),
    /// Prometheus's own error document
    /// (`{"status":"error","errorType":…,"error":…}`) with this HTTP status
    /// (Prometheus uses 400 for `bad_data`, 422 for `execution`, 503 for
    /// `timeout`).
    Error {
        status: u16,
        error_type: String,
        message: String,
    },
    /// Anything: this status, content type and body.
    Raw {
        status: u16,
        content_type: String,
        body: String,
    },
}

/// A query as the stand-in received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: String,
    /// The path, without the query string (`/prometheus/api/v1/query`).
    pub path: String,
    /// The decoded `query` parameter.
    pub query: Option<String>,
    /// The decoded `timeout` parameter (the client's query timeout).
    pub timeout: Option<String>,
    /// Every header, names in lower case, in order.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A running stand-in; stopped on drop. See the module documentation.
#[derive(Debug)]
pub struct PromStandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    answer: Mutex<Answer>,
    delay: Mutex<Duration>,
    last: Mutex<Option<Request>>,
    queries: AtomicUsize,
    in_flight: AtomicUsize,
    stop: AtomicBool,
}

impl PromStandIn {
    /// Starts a stand-in on a free port of 127.0.0.1 answering `answer`, with
    /// no delay.
    ///
    /// # Panics
    /// When no port can be bound or the thread cannot be started.
    pub fn start(answer: Answer) -> PromStandIn {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("prom stand-in: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("prom stand-in: no local address: {e}"));
        let shared = Arc::new(Shared {
            answer: Mutex::new(answer),
            delay: Mutex::new(Duration::ZERO),
            last: Mutex::new(None),
            queries: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let accept = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("prom-standin".into())
                .spawn(move || accept_loop(&listener, &shared))
                .unwrap_or_else(|e| panic!("prom stand-in: cannot start its thread: {e}"))
        };
        PromStandIn {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for `[prometheus] url` (a path prefix may be
    /// appended).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answer `answer` to the queries that arrive from now on.
    pub fn set(&self, answer: Answer) {
        *lock(&self.shared.answer) = answer;
    }

    /// Wait `delay` before answering the queries that arrive from now on
    /// (`Duration::ZERO`: at once). The wait ends early if the client hangs
    /// up.
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.shared.delay) = delay;
    }

    /// Queries received so far (whether answered or not).
    pub fn queries(&self) -> usize {
        self.shared.queries.load(Ordering::SeqCst)
    }

    /// The most recent query.
    pub fn last_request(&self) -> Option<Request> {
        lock(&self.shared.last).clone()
    }

    /// Queries received and not yet finished: waiting out a delay, hanging, or
    /// being written.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` queries arrived; false after `timeout`.
    pub fn wait_for_queries(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.queries() >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(POLL);
        }
    }
}

impl Drop for PromStandIn {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let shared = shared.clone();
        let _ = thread::Builder::new()
            .name("prom-standin-conn".into())
            .spawn(move || {
                let _ = serve(stream, &shared);
            });
    }
}

/// Decrements `in_flight` when the answer is done, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let Some(request) = read_request(&mut stream)? else {
        return Ok(());
    };
    if !request.path.ends_with("/api/v1/query") {
        return respond(&mut stream, 404, "text/plain", "404 page not found\n");
    }
    let answer = lock(&shared.answer).clone();
    let delay = *lock(&shared.delay);
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(&shared.in_flight);
    *lock(&shared.last) = Some(request);
    shared.queries.fetch_add(1, Ordering::SeqCst);

    let wait = if answer == Answer::Hang {
        None
    } else {
        Some(delay)
    };
    if !wait_out(&stream, shared, wait)? {
        return Ok(());
    }
    let now = unix_time();
    match answer {
        Answer::Value(v) => respond(
            &mut stream,
            200,
            "application/json",
            &format!(
                r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"job":"standin"}},"value":[{now},"{}"]}}]}}}}"#,
                prom_float(v)
            ),
        ),
        Answer::Scalar(v) => respond(
            &mut stream,
            200,
            "application/json",
            &format!(
                r#"{{"status":"success","data":{{"resultType":"scalar","result":[{now},"{}"]}}}}"#,
                prom_float(v)
            ),
        ),
        Answer::Empty | Answer::Series(0) => respond(
            &mut stream,
            200,
            "application/json",
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        ),
        Answer::Series(n) => stream_series(&mut stream, shared, n, &now),
        Answer::Hang => Ok(()),
        Answer::Garbage => respond(
            &mut stream,
            200,
            "text/html",
            "<html><body><h1>Welcome</h1>this is not the Prometheus API</body></html>\n",
        ),
        Answer::Status(status) => respond(
            &mut stream,
            status,
            "text/plain",
            &format!("stand-in: HTTP {status}\n"),
        ),
        Answer::Error {
            status,
            error_type,
            message,
        } => respond(
            &mut stream,
            status,
            "application/json",
            &serde_json::json!({"status": "error", "errorType": error_type, "error": message})
                .to_string(),
        ),
        Answer::Raw {
            status,
            content_type,
            body,
        } => respond(&mut stream, status, &content_type, &body),
    }
}

/// Waits `delay` (`None`: forever). False when the client hung up or the
/// stand-in stops first.
fn wait_out(stream: &TcpStream, shared: &Shared, delay: Option<Duration>) -> io::Result<bool> {
    if delay == Some(Duration::ZERO) {
        return Ok(true);
    }
    let deadline = delay.map(|d| Instant::now() + d);
    stream.set_nonblocking(true)?;
    let mut probe = [0u8; 1];
    let answer = loop {
        if shared.stop.load(Ordering::SeqCst) {
            break false;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break true;
        }
        match stream.peek(&mut probe) {
            // The client closed its side (or sent more, which it should not).
            Ok(0) => break false,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => break false,
        }
        thread::sleep(POLL);
    };
    stream.set_nonblocking(false)?;
    Ok(answer)
}

/// Writes a vector of `n` series in chunks, generating each chunk as it goes;
/// stops when the client hangs up or the stand-in stops.
fn stream_series(stream: &mut TcpStream, shared: &Shared, n: usize, now: &str) -> io::Result<()> {
    stream.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
    )?;
    let mut chunk = String::with_capacity(CHUNK + 256);
    chunk.push_str(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    for i in 0..n {
        if i > 0 {
            chunk.push(',');
        }
        let _ = write!(
            chunk,
            r#"{{"metric":{{"__name__":"up","instance":"host-{i:07}:9100","job":"node"}},"value":[{now},"1"]}}"#
        );
        if chunk.len() >= CHUNK {
            if shared.stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            write_chunk(stream, chunk.as_bytes())?;
            chunk.clear();
        }
    }
    chunk.push_str("]}}");
    write_chunk(stream, chunk.as_bytes())?;
    stream.write_all(b"0\r\n\r\n")?;
    stream.flush()
}

fn write_chunk(stream: &mut TcpStream, data: &[u8]) -> io::Result<()> {
    stream.write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
    stream.write_all(data)?;
    stream.write_all(b"\r\n")
}

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    let _ = stream.shutdown(Shutdown::Write);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Reads one request head (and a POST's form body). `None` when the client
/// closed before sending one.
fn read_request(stream: &mut TcpStream) -> io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(1024);
    let mut byte = [0u8; 1024];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        let n = stream.read(&mut byte)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let (path, query_string) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target.clone(), String::new()),
    };
    let mut params = form_pairs(&query_string);
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    if length > 0 && length <= MAX_HEAD {
        let mut body = buf[head_end + 4..].to_vec();
        while body.len() < length {
            let n = stream.read(&mut byte)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&byte[..n]);
        }
        params.extend(form_pairs(&String::from_utf8_lossy(&body)));
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    Ok(Some(Request {
        query: param("query"),
        timeout: param("timeout"),
        method,
        path,
        headers,
    }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `a=1&b=x+y%21` → `[("a","1"),("b","x y!")]`.
fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(k), form_decode(v))
        })
        .collect()
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// A value as Prometheus writes it.
fn prom_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}

/// Seconds since the epoch with milliseconds, as Prometheus writes times.
fn unix_time() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

#[cfg(test)]
mod tests;
