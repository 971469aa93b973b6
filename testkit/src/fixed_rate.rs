//! `fixed-rate`: an open-loop, coordinated-omission-safe HTTP/1.1 load
//! generator (the logic of `src/bin/fixed-rate.rs`, which only calls
//! [`main`]).
//!
//! Request `i` has an intended send time `start + i / rate`, fixed before the
//! run starts. When that time comes the request goes to an idle keep-alive
//! connection or, when none is idle, waits in a queue; its latency is taken
//! from its *intended* time to the last byte of its response. A server that
//! stalls therefore shows up in the latency of every request scheduled during
//! the stall, not only in the few that were in flight (the correction wrk2
//! and oha make; a closed-loop tool such as wrk hides it).
//!
//! One thread, non-blocking sockets (`TCP_NODELAY`, one outstanding request
//! per connection, no pipelining) and `epoll`. Waits until the next send use
//! `epoll_pwait2` with a nanosecond timeout (and a 1 µs timer slack), so the
//! thread sleeps between sends instead of spinning. A timer wake-up still
//! comes late (~35 µs on a small VM, which would be added to every latency),
//! so the loop learns that lateness (running mean + 2 mean deviations) and
//! wakes that much before a send, polling with a zero timeout for the rest
//! (capped by `--spin-us`, default 50 µs, and by half the send interval).
//! On kernels without `epoll_pwait2` it falls back to millisecond
//! `epoll_wait` plus zero-timeout polls for the last sub-millisecond. The
//! send lag (intended vs actual send time) is printed on stderr. Responses are parsed just enough to
//! find their end (`Content-Length`, `chunked`, or close-delimited) and to
//! honour `Connection: close`. A request that fails on a kept-alive
//! connection before any byte of its response arrived is retried once on a
//! fresh connection (the server had closed it); any other failure counts in
//! `errors` and the connection is reopened. Requests still unanswered when
//! the drain ends count in `errors` and in the latencies, as waiting until
//! then.
//!
//! Output: one JSON line on stdout, see [`Report::to_json`].

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::mem::size_of;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::ExitCode;
use std::time::Instant;

use serde_json::Value;

/// `--help` text.
pub const USAGE: &str = "\
usage: fixed-rate --addr HOST:PORT --rate N --duration SECS [options]

Open-loop HTTP/1.1 GET load at a fixed rate; latency is measured from each
request's intended send time (coordinated-omission safe).

  --addr HOST:PORT      server to load (also sent as Host unless --header Host: is given)
  --rate N              requests per second (> 0)
  --duration SECS       measured duration, after the warm-up
  --path PATH           request target (default /)
  --connections N       keep-alive connections (default 32)
  --header 'Name: v'    extra request header, repeatable
  --warmup SECS         load run at the same rate before measuring (default 0)
  --drain SECS          how long to wait for late responses after the schedule
                        ends; requests still unanswered then count as errors,
                        and in the latencies as waiting until then (default 5)
  --spin-us N           wake up to N µs (and at most half the send interval)
                        before a send and poll until it is due, to hide the
                        timer's wake-up lateness, which is learned during the
                        run; costs a little CPU; 0 = sleep until the send time
                        (default 50)
  -h, --help            this text

Prints one JSON line: rate, duration_s, connections, sent, ok, non_2xx,
errors, achieved_rps, p50_us, p90_us, p99_us, p999_us, max_us. Prints on
stderr how late requests were sent (timer lateness plus queueing) and any
reconnects or errors.";

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `HOST:PORT` as given (resolved when the run starts).
    pub addr: String,
    pub path: String,
    pub rate: f64,
    pub duration: f64,
    pub connections: usize,
    /// `Name: value` lines, validated.
    pub headers: Vec<String>,
    pub warmup: f64,
    pub drain: f64,
    /// Upper bound, in µs, of how early the loop may wake before a send to
    /// poll until it is due (see [`USAGE`]).
    pub spin_us: u64,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(Config),
    Help,
}

/// Parses the arguments after the program name (`--flag value` or
/// `--flag=value`).
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut addr = None;
    let mut rate = None;
    let mut duration = None;
    let mut config = Config {
        addr: String::new(),
        path: "/".to_owned(),
        rate: 0.0,
        duration: 0.0,
        connections: 32,
        headers: Vec::new(),
        warmup: 0.0,
        drain: 5.0,
        spin_us: 50,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if arg.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(Command::Help);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--addr" => {
                let v = value()?;
                if v.is_empty()
                    || v.bytes()
                        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
                {
                    return Err(format!("--addr needs HOST:PORT, got {v:?}"));
                }
                addr = Some(v);
            }
            "--path" => {
                let v = value()?;
                if !v.starts_with('/') || v.bytes().any(|b| b <= b' ' || b == 0x7f) {
                    return Err(format!(
                        "--path must start with / and hold no spaces or control characters, got {v:?}"
                    ));
                }
                config.path = v;
            }
            "--rate" => rate = Some(positive(&flag, &value()?)?),
            "--duration" => duration = Some(positive(&flag, &value()?)?),
            "--warmup" => config.warmup = non_negative(&flag, &value()?)?,
            "--drain" => config.drain = non_negative(&flag, &value()?)?,
            "--spin-us" => {
                let v = value()?;
                config.spin_us = match v.parse::<u64>() {
                    Ok(n @ 0..=10_000) => n,
                    _ => return Err(format!("--spin-us needs 0..=10000, got {v:?}")),
                };
            }
            "--connections" => {
                let v = value()?;
                config.connections = match v.parse::<usize>() {
                    Ok(n @ 1..=10_000) => n,
                    _ => return Err(format!("--connections needs 1..=10000, got {v:?}")),
                };
            }
            "--header" => config.headers.push(header_line(&value()?)?),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    config.addr = addr.ok_or("--addr is required")?;
    config.rate = rate.ok_or("--rate is required")?;
    config.duration = duration.ok_or("--duration is required")?;
    let total = config.rate * (config.warmup + config.duration);
    if (config.rate * config.duration).round() < 1.0 {
        return Err("--rate x --duration is less than one request".to_owned());
    }
    if total > 1e10 {
        return Err("--rate x (--warmup + --duration) is over 10^10 requests".to_owned());
    }
    Ok(Command::Run(config))
}

fn number(flag: &str, v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(format!("{flag} needs a number, got {v:?}")),
    }
}

fn positive(flag: &str, v: &str) -> Result<f64, String> {
    match number(flag, v)? {
        x if x > 0.0 => Ok(x),
        _ => Err(format!("{flag} must be > 0, got {v:?}")),
    }
}

fn non_negative(flag: &str, v: &str) -> Result<f64, String> {
    match number(flag, v)? {
        x if x >= 0.0 => Ok(x),
        _ => Err(format!("{flag} must be >= 0, got {v:?}")),
    }
}

/// Validates `Name: value` and returns it normalised to `Name: value`.
fn header_line(v: &str) -> Result<String, String> {
    let bad = || format!("--header needs 'Name: value', got {v:?}");
    let (name, value) = v.split_once(':').ok_or_else(bad)?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(bad());
    }
    let value = value.trim();
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(bad());
    }
    Ok(format!("{name}: {value}"))
}

/// The bytes of the one request every connection sends.
fn build_request(config: &Config) -> Vec<u8> {
    let mut r = format!("GET {} HTTP/1.1\r\n", config.path);
    let has_host = config.headers.iter().any(|h| {
        h.split_once(':')
            .is_some_and(|(n, _)| n.eq_ignore_ascii_case("host"))
    });
    if !has_host {
        r.push_str(&format!("Host: {}\r\n", config.addr));
    }
    for h in &config.headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

/// The `fixed-rate` binary: parses `std::env::args`, runs, prints the JSON
/// line. Exit 2 on a bad command line, 1 when the run could not start.
pub fn main() -> ExitCode {
    let config = match parse(std::env::args().skip(1)) {
        Ok(Command::Run(config)) => config,
        Ok(Command::Help) => {
            let _ = writeln!(io::stdout(), "{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fixed-rate: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&config) {
        Ok(report) => {
            let mut out = io::stdout().lock();
            match writeln!(out, "{}", report.to_json()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Err(e) => {
            eprintln!("fixed-rate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The result of a run. Counts and latencies cover the measured requests
/// only (those scheduled after the warm-up); every one of them ends up in
/// exactly one of `ok`, `non_2xx` and `errors`.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub rate: f64,
    pub duration_s: f64,
    pub connections: usize,
    /// Requests written to a connection (a retry is not counted twice).
    pub sent: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Responses with any other status.
    pub non_2xx: u64,
    /// Requests without a response: connection or protocol errors, and
    /// requests still unanswered (or never sent) when the drain ended.
    pub errors: u64,
    /// Responses per second over the measured window (which is stretched to
    /// the last response when responses come late).
    pub achieved_rps: f64,
    /// Latency of every response (2xx or not), in µs, sorted ascending.
    pub latencies_us: Vec<u32>,
}

impl Report {
    /// The output line, keys in this order: `{"rate":..,"duration_s":..,
    /// "connections":..,"sent":..,"ok":..,"non_2xx":..,"errors":..,
    /// "achieved_rps":..,"p50_us":..,"p90_us":..,"p99_us":..,"p999_us":..,
    /// "max_us":..}`; the latency fields are `null` when there was no
    /// response.
    pub fn to_json(&self) -> String {
        let q = |q: f64| quantile(&self.latencies_us, q).map_or(Value::Null, Value::from);
        let fields: [(&str, Value); 13] = [
            ("rate", whole_or_float(self.rate)),
            ("duration_s", whole_or_float(self.duration_s)),
            ("connections", Value::from(self.connections)),
            ("sent", Value::from(self.sent)),
            ("ok", Value::from(self.ok)),
            ("non_2xx", Value::from(self.non_2xx)),
            ("errors", Value::from(self.errors)),
            (
                "achieved_rps",
                Value::from((self.achieved_rps * 10.0).round() / 10.0),
            ),
            ("p50_us", q(0.5)),
            ("p90_us", q(0.9)),
            ("p99_us", q(0.99)),
            ("p999_us", q(0.999)),
            ("max_us", self.latencies_us.last().copied().into()),
        ];
        let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    }
}

fn whole_or_float(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        Value::from(x as i64)
    } else {
        Value::from(x)
    }
}

/// Nearest-rank quantile `q` (0..=1) of ascending `sorted`; `None` if empty.
pub fn quantile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

// ---------------------------------------------------------------------------
// Response parsing

/// The longest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 8 * 1024;

/// A complete response, as far as the load generator cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub status: u16,
    /// The connection cannot carry another request (`Connection: close`,
    /// HTTP/1.0 without keep-alive, or a close-delimited body).
    pub close: bool,
}

/// A malformed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ParseError {}

fn perr<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Fixed(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailers,
    UntilEof,
}

/// What a response head says about the body.
enum HeadOutcome {
    /// 1xx: another head follows.
    Informational,
    NoBody,
    Body,
}

/// An incremental HTTP/1.1 response parser that keeps only the bytes of an
/// unfinished head or chunk line; body bytes are counted, not stored.
#[derive(Debug)]
pub struct ResponseParser {
    state: State,
    buf: Vec<u8>,
    status: u16,
    close: bool,
}

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser::new()
    }
}

impl ResponseParser {
    pub fn new() -> ResponseParser {
        ResponseParser {
            state: State::Head,
            buf: Vec::new(),
            status: 0,
            close: false,
        }
    }

    /// Forgets any partial response.
    pub fn reset(&mut self) {
        self.state = State::Head;
        self.buf.clear();
        self.status = 0;
        self.close = false;
    }

    /// Consumes `data`. Returns the response and how many bytes of `data` it
    /// used once one is complete (the parser is then ready for the next), or
    /// `None` when all of `data` was used and more is needed.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<(Parsed, usize)>, ParseError> {
        let mut pos = 0;
        while pos < data.len() {
            let rest = &data[pos..];
            match self.state {
                State::Head => {
                    let Some(used) = self.feed_head(rest)? else {
                        return Ok(None);
                    };
                    pos += used;
                    match self.parse_head_outcome()? {
                        HeadOutcome::Informational => {}
                        HeadOutcome::NoBody => return Ok(Some((self.finish(), pos))),
                        HeadOutcome::Body => {}
                    }
                }
                State::Fixed(n) | State::ChunkData(n) => {
                    let take = n.min(rest.len() as u64);
                    pos += take as usize;
                    let left = n - take;
                    self.state = match (self.state, left) {
                        (State::Fixed(_), 0) => return Ok(Some((self.finish(), pos))),
                        (State::Fixed(_), left) => State::Fixed(left),
                        (_, 0) => State::ChunkEnd,
                        (_, left) => State::ChunkData(left),
                    };
                }
                State::UntilEof => pos = data.len(),
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                        self.push_line(rest)?;
                        return Ok(None);
                    };
                    self.push_line(&rest[..nl])?;
                    pos += nl + 1;
                    let line = self.buf.strip_suffix(b"\r").unwrap_or(&self.buf);
                    match self.state {
                        State::ChunkSize => {
                            let size = chunk_size(line)?;
                            self.state = if size == 0 {
                                State::Trailers
                            } else {
                                State::ChunkData(size)
                            };
                        }
                        State::ChunkEnd => {
                            if !line.is_empty() {
                                return perr("chunk data longer than its size");
                            }
                            self.state = State::ChunkSize;
                        }
                        _ => {
                            if line.is_empty() {
                                return Ok(Some((self.finish(), pos)));
                            }
                        }
                    }
                    self.buf.clear();
                }
            }
        }
        Ok(None)
    }

    /// The peer closed the connection: completes a close-delimited body,
    /// anything else in progress is an error.
    pub fn finish_eof(&mut self) -> Result<Parsed, ParseError> {
        if self.state == State::UntilEof {
            Ok(self.finish())
        } else {
            perr("connection closed before the response ended")
        }
    }

    fn finish(&mut self) -> Parsed {
        let p = Parsed {
            status: self.status,
            close: self.close,
        };
        self.reset();
        p
    }

    fn push_line(&mut self, part: &[u8]) -> Result<(), ParseError> {
        if self.buf.len() + part.len() > MAX_LINE {
            return perr("chunk-size or trailer line too long");
        }
        self.buf.extend_from_slice(part);
        Ok(())
    }

    /// Accumulates head bytes; once the blank line is seen, leaves the head
    /// (without the blank line's bytes past it) in `buf` and returns how
    /// many bytes of `data` belonged to it.
    fn feed_head(&mut self, data: &[u8]) -> Result<Option<usize>, ParseError> {
        let old = self.buf.len();
        let from = old.saturating_sub(3);
        // Bound the copy: at most what could still belong to a legal head.
        let room = (MAX_HEAD + 4).saturating_sub(old);
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        match find_head_end(&self.buf, from) {
            Some(end) => {
                self.buf.truncate(end);
                Ok(Some(end - old))
            }
            None if self.buf.len() > MAX_HEAD => perr("response head too long"),
            None => Ok(None),
        }
    }

    /// Parses the head left in `buf` by [`Self::feed_head`] and sets the body
    /// state.
    fn parse_head_outcome(&mut self) -> Result<HeadOutcome, ParseError> {
        let head = std::mem::take(&mut self.buf);
        let outcome = self.parse_head(&head);
        self.buf = head;
        self.buf.clear();
        outcome
    }

    fn parse_head(&mut self, head: &[u8]) -> Result<HeadOutcome, ParseError> {
        let mut lines = head
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let status_line = lines.next().unwrap_or_default();
        let (http10, status) = match status_line {
            [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor, b' ', a, b, c, ..]
                if a.is_ascii_digit() && b.is_ascii_digit() && c.is_ascii_digit() =>
            {
                let status =
                    u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0');
                (*minor == b'0', status)
            }
            _ => {
                return perr(format!(
                    "bad status line {:?}",
                    String::from_utf8_lossy(&status_line[..status_line.len().min(80)])
                ))
            }
        };
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut transfer_encoding = false;
        let mut close = false;
        let mut keep_alive = false;
        for line in lines {
            if line.is_empty() {
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                return perr("header line without a colon");
            };
            let name = &line[..colon];
            let value = line[colon + 1..].trim_ascii();
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok());
                match (n, content_length) {
                    (None, _) => return perr("bad Content-Length"),
                    (Some(n), Some(prev)) if n != prev => {
                        return perr("conflicting Content-Length headers")
                    }
                    (Some(n), _) => content_length = Some(n),
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                transfer_encoding = true;
                chunked = value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"connection") {
                for token in value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        if status == 101 {
            return perr("unexpected 101 Switching Protocols");
        }
        if (100..200).contains(&status) {
            return Ok(HeadOutcome::Informational);
        }
        self.status = status;
        self.close = close || (http10 && !keep_alive);
        if status == 204 || status == 304 {
            return Ok(HeadOutcome::NoBody);
        }
        self.state = if chunked {
            State::ChunkSize
        } else if transfer_encoding {
            State::UntilEof
        } else {
            match content_length {
                Some(0) => return Ok(HeadOutcome::NoBody),
                Some(n) => State::Fixed(n),
                None => State::UntilEof,
            }
        };
        if self.state == State::UntilEof {
            self.close = true;
        }
        Ok(HeadOutcome::Body)
    }
}

/// Index just past the first `\r\n\r\n` in `buf` at or after `from`.
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| from + i + 4)
}

/// The size of a chunk-size line (`hex[;extensions]`).
fn chunk_size(line: &[u8]) -> Result<u64, ParseError> {
    let hex = line
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if hex.is_empty() || hex.len() > 15 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return perr(format!(
            "bad chunk size {:?}",
            String::from_utf8_lossy(&line[..line.len().min(40)])
        ));
    }
    let mut n = 0u64;
    for &b in hex {
        let d = (b as char).to_digit(16).unwrap_or(0);
        n = n * 16 + u64::from(d);
    }
    Ok(n)
}

// ---------------------------------------------------------------------------
// The event loop

/// How long the connections may take to open before the run starts.
const CONNECT_TIMEOUT_NS: u64 = 5_000_000_000;
/// Pause before reopening a connection whose connect failed.
const RECONNECT_BACKOFF_NS: u64 = 20_000_000;
/// Timer slack asked of the kernel, in ns (the default is 50 µs).
const TIMER_SLACK_NS: libc::c_ulong = 1_000;
const READ_BUF: usize = 64 * 1024;
const MAX_EVENTS: usize = 256;

/// Resolves the address, opens the connections and runs the schedule.
pub fn run(config: &Config) -> io::Result<Report> {
    let addr = config
        .addr
        .to_socket_addrs()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {}: {e}", config.addr)))?
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} resolves to no address", config.addr),
            )
        })?;
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's timer
    // slack; failure is harmless (the default slack stays).
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS);
    }
    let mut engine = Engine::new(config, addr)?;
    engine.establish()?;
    engine.run_schedule((config.drain * 1e9) as u64)?;
    let diag = engine.diagnostics();
    if !diag.is_empty() {
        eprintln!("fixed-rate: {diag}");
    }
    Ok(engine.report(config))
}

/// Nanosecond timeout for `epoll_pwait2` (`struct __kernel_timespec`).
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// An epoll instance with a nanosecond-precision wait.
struct Epoll {
    fd: OwnedFd,
    /// `epoll_pwait2` works here (cleared on ENOSYS / EPERM).
    precise: bool,
}

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the returned fd is owned below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Epoll { fd, precise: true })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: usize) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: token as u64,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let rc = unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ns` for events; returns how many were stored.
    fn wait(&mut self, events: &mut [libc::epoll_event], timeout_ns: u64) -> io::Result<usize> {
        let max = events.len().min(libc::c_int::MAX as usize) as libc::c_int;
        if self.precise {
            let ts = KernelTimespec {
                tv_sec: (timeout_ns / 1_000_000_000) as i64,
                tv_nsec: (timeout_ns % 1_000_000_000) as i64,
            };
            // SAFETY: `events` has room for `max` entries, `ts` outlives the
            // call, and a null sigmask means "leave the mask alone".
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.fd.as_raw_fd(),
                    events.as_mut_ptr(),
                    max,
                    &ts as *const KernelTimespec,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if rc >= 0 {
                return Ok(rc as usize);
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => return Ok(0),
                // Old kernel, or a seccomp filter that does not know it.
                Some(libc::ENOSYS) | Some(libc::EPERM) => self.precise = false,
                _ => return Err(err),
            }
        }
        // Whole milliseconds, rounded down: the caller polls again (with a
        // zero timeout, i.e. a short spin) for the sub-millisecond rest.
        let ms = (timeout_ns / 1_000_000).min(libc::c_int::MAX as u64) as libc::c_int;
        // SAFETY: `events` has room for `max` entries.
        let rc = unsafe { libc::epoll_wait(self.fd.as_raw_fd(), events.as_mut_ptr(), max, ms) };
        if rc >= 0 {
            return Ok(rc as usize);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINTR) {
            return Ok(0);
        }
        Err(err)
    }
}

/// Starts a non-blocking connect (TCP_NODELAY set); completion is signalled
/// by EPOLLOUT.
fn connect_nonblocking(addr: SocketAddr) -> io::Result<TcpStream> {
    let family = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain syscall; the fd is owned by the TcpStream below.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh TCP socket nobody else owns.
    let stream = unsafe { TcpStream::from_raw_fd(fd) };
    stream.set_nodelay(true)?;
    let rc = match addr {
        SocketAddr::V4(a) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sa` is a valid sockaddr_in of the given length.
            unsafe {
                libc::connect(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(a) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: `sa` is a valid sockaddr_in6 of the given length.
            unsafe {
                libc::connect(
                    fd,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc == 0 {
        return Ok(stream);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EINPROGRESS) {
        Ok(stream)
    } else {
        Err(err)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    /// Closed; reopened at `retry_at`.
    Down,
    Connecting,
    Idle,
    Busy,
}

/// The request a busy connection carries.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Index in the schedule.
    index: u64,
    /// Bytes of the request written so far.
    written: usize,
    retried: bool,
    /// Some bytes of the response arrived.
    got_bytes: bool,
}

struct Conn {
    stream: Option<TcpStream>,
    state: ConnState,
    parser: ResponseParser,
    req: Option<InFlight>,
    /// Responses completed on the current stream.
    served: u64,
    retry_at: u64,
    /// EPOLLOUT is in the interest set.
    want_out: bool,
}

const EV_IN: u32 = libc::EPOLLIN as u32;
const EV_OUT: u32 = libc::EPOLLOUT as u32;
const EV_CLOSED: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

struct Engine {
    addr: SocketAddr,
    epoll: Epoll,
    base: Instant,
    request: Vec<u8>,
    conns: Vec<Conn>,
    /// Connected connections without a request, oldest first.
    idle: VecDeque<usize>,
    /// Requests to send again, ahead of the schedule.
    retries: VecDeque<u64>,
    /// Connections in `Down`.
    down: usize,
    scratch: Vec<u8>,
    events: Vec<libc::epoll_event>,

    /// Schedule origin (ns since `base`).
    start: u64,
    /// ns between intended send times.
    interval: f64,
    /// Requests `0..warmup_n` are warm-up, `warmup_n..total` are measured.
    warmup_n: u64,
    total: u64,
    /// First request of the schedule not yet handed to a connection.
    next_send: u64,
    inflight: usize,

    sent: u64,
    ok: u64,
    non_2xx: u64,
    errors: u64,
    latencies: Vec<u32>,
    last_done: u64,

    connect_failures: u64,
    reconnects: u64,
    retried: u64,
    protocol_errors: u64,
    last_error: Option<String>,
    /// µs between the intended and the actual send of each measured request.
    send_lags: Vec<u32>,

    /// Running mean and mean deviation of how late the timer wakes us (ns).
    late_mean: i64,
    late_dev: i64,
    /// How early to wake before a send, learned from the two above.
    early_ns: u64,
    max_early_ns: u64,
}

impl Engine {
    fn new(config: &Config, addr: SocketAddr) -> io::Result<Engine> {
        let warmup_n = (config.warmup * config.rate).round() as u64;
        let measured = (config.duration * config.rate).round() as u64;
        let conns = (0..config.connections)
            .map(|_| Conn {
                stream: None,
                state: ConnState::Down,
                parser: ResponseParser::new(),
                req: None,
                served: 0,
                retry_at: 0,
                want_out: false,
            })
            .collect();
        Ok(Engine {
            addr,
            epoll: Epoll::new()?,
            base: Instant::now(),
            request: build_request(config),
            conns,
            idle: VecDeque::with_capacity(config.connections),
            retries: VecDeque::new(),
            down: 0,
            scratch: vec![0; READ_BUF],
            events: vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS],
            start: 0,
            interval: 1e9 / config.rate,
            warmup_n,
            total: warmup_n + measured,
            next_send: 0,
            inflight: 0,
            sent: 0,
            ok: 0,
            non_2xx: 0,
            errors: 0,
            latencies: Vec::with_capacity(measured.min(20_000_000) as usize),
            last_done: 0,
            connect_failures: 0,
            reconnects: 0,
            retried: 0,
            protocol_errors: 0,
            last_error: None,
            send_lags: Vec::with_capacity(measured.min(20_000_000) as usize),
            late_mean: 0,
            late_dev: 0,
            early_ns: 0,
            max_early_ns: config.spin_us * 1_000,
        })
    }

    fn now(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Intended send time of request `i`.
    fn intended(&self, i: u64) -> u64 {
        self.start + (i as f64 * self.interval) as u64
    }

    /// How many requests are due at `now` (intended time <= now).
    fn due(&self, now: u64) -> u64 {
        if now < self.start {
            return 0;
        }
        let guess = ((now - self.start) as f64 / self.interval) as u64;
        let mut k = guess.saturating_add(1).min(self.total);
        while k < self.total && self.intended(k) <= now {
            k += 1;
        }
        while k > 0 && self.intended(k - 1) > now {
            k -= 1;
        }
        k
    }

    /// Opens every connection and waits until all are connected.
    fn establish(&mut self) -> io::Result<()> {
        let now = self.now();
        for c in 0..self.conns.len() {
            self.open(c, now);
        }
        let deadline = now + CONNECT_TIMEOUT_NS;
        loop {
            if self.down > 0 {
                let why = self.last_error.take().unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    format!("cannot connect to {}: {why}", self.addr),
                ));
            }
            if self.idle.len() == self.conns.len() {
                self.connect_failures = 0;
                return Ok(());
            }
            let now = self.now();
            if now >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {} timed out", self.addr),
                ));
            }
            self.poll(deadline - now)?;
        }
    }

    /// One epoll wait and the handling of what it returned; returns the
    /// number of events.
    fn poll(&mut self, timeout_ns: u64) -> io::Result<usize> {
        let mut events = std::mem::take(&mut self.events);
        let n = self.epoll.wait(&mut events, timeout_ns);
        let now = self.now();
        if let Ok(n) = n {
            for ev in &events[..n] {
                let (flags, token) = (ev.events, ev.u64);
                self.on_event(token as usize, flags, now);
            }
        }
        self.events = events;
        n
    }

    /// Sends the schedule, then waits for the answers until everything is
    /// answered or `drain_ns` after the schedule's end.
    fn run_schedule(&mut self, drain_ns: u64) -> io::Result<()> {
        self.start = self.now();
        let drain_deadline = self.intended(self.total).saturating_add(drain_ns);
        loop {
            let now = self.now();
            if self.down > 0 {
                self.revive(now);
            }
            let due = self.due(now);
            while let Some(&c) = self.idle.front() {
                let (index, retried) = if let Some(i) = self.retries.pop_front() {
                    (i, true)
                } else if self.next_send < due {
                    self.next_send += 1;
                    (self.next_send - 1, false)
                } else {
                    break;
                };
                self.idle.pop_front();
                self.dispatch(c, index, retried, now);
            }
            if self.next_send == self.total && self.retries.is_empty() && self.inflight == 0 {
                return Ok(());
            }
            if now >= drain_deadline {
                self.abandon(now);
                return Ok(());
            }
            let mut deadline = drain_deadline;
            if self.down > 0 {
                for conn in self.conns.iter().filter(|c| c.state == ConnState::Down) {
                    deadline = deadline.min(conn.retry_at);
                }
            }
            // Wake for the next send only when it would not just queue; wake
            // `early_ns` before it and poll the rest, to absorb the timer's
            // wake-up lateness.
            let queue_empty = self.retries.is_empty() && self.next_send == due;
            let mut early = 0;
            if queue_empty && self.next_send < self.total {
                let send_at = self.intended(self.next_send);
                if send_at <= deadline {
                    deadline = send_at;
                    early = self.early_ns;
                }
            }
            let now = self.now();
            let timeout = deadline.saturating_sub(now).saturating_sub(early);
            let events = self.poll(timeout)?;
            if timeout > 0 && events == 0 && self.epoll.precise {
                self.learn_lateness(self.now().saturating_sub(now + timeout));
            }
        }
    }

    /// Updates the wake-up lateness estimate with one timer wake that came
    /// `late` ns after the asked time, and from it how early to wake.
    fn learn_lateness(&mut self, late: u64) {
        let late = late.min(1_000_000) as i64;
        let err = late - self.late_mean;
        self.late_mean += err / 8;
        self.late_dev += (err.abs() - self.late_dev) / 8;
        let early = (self.late_mean + 2 * self.late_dev).max(0) as u64;
        // Never more than half the send interval, or a high rate would keep
        // the loop polling all the time.
        self.early_ns = early
            .min(self.max_early_ns)
            .min((self.interval / 2.0) as u64);
    }

    /// The drain ended: every measured request without a response is an
    /// error, and enters the latencies as waiting until `now` at least, so a
    /// stall longer than the drain still shows in the percentiles.
    fn abandon(&mut self, now: u64) {
        let measured = |i: u64| i >= self.warmup_n;
        let mut waiting: Vec<u64> = self
            .conns
            .iter()
            .filter_map(|c| c.req)
            .map(|r| r.index)
            .filter(|&i| measured(i))
            .collect();
        let inflight = waiting.len() as u64;
        waiting.extend(self.retries.iter().copied().filter(|&i| measured(i)));
        let retries = waiting.len() as u64 - inflight;
        waiting.extend(self.next_send.max(self.warmup_n)..self.total);
        for i in waiting {
            let us = now.saturating_sub(self.intended(i)) / 1_000;
            self.latencies.push(us.min(u64::from(u32::MAX)) as u32);
        }
        let unsent = self.total - self.next_send.max(self.warmup_n);
        self.errors += inflight + retries + unsent;
        if inflight + retries + unsent > 0 {
            self.last_error = Some(format!(
                "{} measured requests unanswered when the drain ended",
                inflight + retries + unsent
            ));
        }
    }

    /// Reopens the connections whose backoff has passed.
    fn revive(&mut self, now: u64) {
        for c in 0..self.conns.len() {
            if self.conns[c].state == ConnState::Down && self.conns[c].retry_at <= now {
                self.down -= 1;
                self.open(c, now);
            }
        }
    }

    fn open(&mut self, c: usize, now: u64) {
        let opened = connect_nonblocking(self.addr).and_then(|s| {
            self.epoll
                .ctl(libc::EPOLL_CTL_ADD, s.as_raw_fd(), EV_IN | EV_OUT, c)?;
            Ok(s)
        });
        match opened {
            Ok(s) => {
                let conn = &mut self.conns[c];
                conn.stream = Some(s);
                conn.state = ConnState::Connecting;
                conn.want_out = true;
            }
            Err(e) => self.connect_failed(c, now, e),
        }
    }

    fn connect_failed(&mut self, c: usize, now: u64, e: io::Error) {
        let conn = &mut self.conns[c];
        conn.stream = None;
        conn.state = ConnState::Down;
        conn.retry_at = now + RECONNECT_BACKOFF_NS;
        self.down += 1;
        self.connect_failures += 1;
        self.last_error = Some(format!("connect: {e}"));
    }

    /// Closes connection `c` (its request, if any, must already be taken)
    /// and opens a new one in its place.
    fn reconnect(&mut self, c: usize, now: u64) {
        let conn = &mut self.conns[c];
        if conn.state == ConnState::Idle {
            self.idle.retain(|&i| i != c);
        }
        // Closing the fd also removes it from the epoll set.
        conn.stream = None;
        conn.parser.reset();
        conn.served = 0;
        conn.want_out = false;
        self.reconnects += 1;
        self.open(c, now);
    }

    fn dispatch(&mut self, c: usize, index: u64, retried: bool, now: u64) {
        let conn = &mut self.conns[c];
        conn.req = Some(InFlight {
            index,
            written: 0,
            retried,
            got_bytes: false,
        });
        conn.state = ConnState::Busy;
        self.inflight += 1;
        if !retried && index >= self.warmup_n {
            self.sent += 1;
            let lag_us = now.saturating_sub(self.intended(index)) / 1_000;
            self.send_lags.push(lag_us.min(u64::from(u32::MAX)) as u32);
        }
        self.write_pending(c, now);
    }

    /// Writes what is left of `c`'s request, arming EPOLLOUT if the socket
    /// is full.
    fn write_pending(&mut self, c: usize, now: u64) {
        enum Next {
            Done,
            Fail,
        }
        let next = loop {
            let conn = &mut self.conns[c];
            let (Some(stream), Some(req)) = (conn.stream.as_mut(), conn.req.as_mut()) else {
                return;
            };
            if req.written >= self.request.len() {
                if conn.want_out {
                    conn.want_out = false;
                    if self
                        .epoll
                        .ctl(libc::EPOLL_CTL_MOD, stream.as_raw_fd(), EV_IN, c)
                        .is_err()
                    {
                        break Next::Fail;
                    }
                }
                break Next::Done;
            }
            match stream.write(&self.request[req.written..]) {
                Ok(0) => break Next::Fail,
                Ok(n) => req.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !conn.want_out {
                        conn.want_out = true;
                        if self
                            .epoll
                            .ctl(libc::EPOLL_CTL_MOD, stream.as_raw_fd(), EV_IN | EV_OUT, c)
                            .is_err()
                        {
                            break Next::Fail;
                        }
                    }
                    break Next::Done;
                }
                Err(e) => {
                    self.last_error = Some(format!("write: {e}"));
                    break Next::Fail;
                }
            }
        };
        if let Next::Fail = next {
            self.fail(c, now);
        }
    }

    /// `c`'s request got no (complete) response: retry it once if the
    /// connection was a reused one that answered nothing, else count an
    /// error; then reopen the connection.
    fn fail(&mut self, c: usize, now: u64) {
        let conn = &mut self.conns[c];
        if let Some(r) = conn.req.take() {
            self.inflight -= 1;
            if !r.retried && !r.got_bytes && conn.served > 0 {
                self.retries.push_front(r.index);
                self.retried += 1;
            } else if r.index >= self.warmup_n {
                self.errors += 1;
            }
        }
        self.reconnect(c, now);
    }

    /// `c`'s request got its response at `now`.
    fn complete(&mut self, c: usize, parsed: Parsed, now: u64, force_close: bool) {
        let conn = &mut self.conns[c];
        let Some(r) = conn.req.take() else {
            return;
        };
        self.inflight -= 1;
        conn.served += 1;
        let close = parsed.close || force_close || r.written < self.request.len();
        if r.index >= self.warmup_n {
            if (200..300).contains(&parsed.status) {
                self.ok += 1;
            } else {
                self.non_2xx += 1;
            }
            let us = now.saturating_sub(self.intended(r.index)) / 1_000;
            self.latencies.push(us.min(u64::from(u32::MAX)) as u32);
            self.last_done = now;
        }
        if close {
            self.reconnect(c, now);
        } else {
            self.conns[c].state = ConnState::Idle;
            self.idle.push_back(c);
        }
    }

    fn on_event(&mut self, c: usize, flags: u32, now: u64) {
        let Some(conn) = self.conns.get(c) else {
            return;
        };
        match conn.state {
            ConnState::Down => {}
            ConnState::Connecting => self.on_connected(c, flags, now),
            ConnState::Idle => {
                if flags & (EV_IN | EV_CLOSED) != 0 {
                    self.on_readable(c, now);
                }
            }
            ConnState::Busy => {
                if flags & EV_OUT != 0 && conn.want_out {
                    self.write_pending(c, now);
                }
                if self.conns[c].state == ConnState::Busy && flags & (EV_IN | EV_CLOSED) != 0 {
                    self.on_readable(c, now);
                }
            }
        }
    }

    fn on_connected(&mut self, c: usize, flags: u32, now: u64) {
        let conn = &mut self.conns[c];
        let Some(stream) = conn.stream.as_ref() else {
            return;
        };
        let err = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) if flags & EV_CLOSED != 0 => Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "connection closed while connecting",
            )),
            Ok(None) => self
                .epoll
                .ctl(libc::EPOLL_CTL_MOD, stream.as_raw_fd(), EV_IN, c)
                .err(),
        };
        match err {
            Some(e) => self.connect_failed(c, now, e),
            None => {
                conn.want_out = false;
                conn.state = ConnState::Idle;
                self.idle.push_back(c);
            }
        }
    }

    fn on_readable(&mut self, c: usize, now: u64) {
        let conn = &mut self.conns[c];
        let Some(stream) = conn.stream.as_mut() else {
            return;
        };
        let read = stream.read(&mut self.scratch);
        if let Err(e) = &read {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) {
                return;
            }
        }
        if conn.state == ConnState::Idle {
            // The server closed an idle connection (or sent stray bytes).
            if let Ok(n @ 1..) = read {
                self.protocol_errors += 1;
                self.last_error = Some(format!("{n} unexpected bytes on an idle connection"));
            }
            self.reconnect(c, now);
            return;
        }
        match read {
            Ok(0) => match conn.parser.finish_eof() {
                Ok(parsed) => self.complete(c, parsed, now, true),
                Err(e) => {
                    self.last_error = Some(e.0);
                    self.fail(c, now);
                }
            },
            Ok(n) => {
                if let Some(r) = conn.req.as_mut() {
                    r.got_bytes = true;
                }
                match conn.parser.feed(&self.scratch[..n]) {
                    Ok(Some((parsed, used))) => self.complete(c, parsed, now, used < n),
                    Ok(None) => {}
                    Err(e) => {
                        self.protocol_errors += 1;
                        self.last_error = Some(e.0);
                        self.fail(c, now);
                    }
                }
            }
            Err(e) => {
                self.last_error = Some(format!("read: {e}"));
                self.fail(c, now);
            }
        }
    }

    /// A stderr line about reconnects and failures; empty when there were
    /// none.
    fn diagnostics(&mut self) -> String {
        let mut parts = Vec::new();
        self.send_lags.sort_unstable();
        let lag = |q| quantile(&self.send_lags, q).unwrap_or(0);
        if !self.send_lags.is_empty() {
            parts.push(format!(
                "send lag p50 {}us p99 {}us max {}us (early wake {}us)",
                lag(0.5),
                lag(0.99),
                lag(1.0),
                self.early_ns / 1_000
            ));
        }
        if self.reconnects > 0 {
            parts.push(format!("{} reconnects", self.reconnects));
        }
        if self.connect_failures > 0 {
            parts.push(format!("{} failed connects", self.connect_failures));
        }
        if self.retried > 0 {
            parts.push(format!("{} requests retried", self.retried));
        }
        if self.protocol_errors > 0 {
            parts.push(format!("{} protocol errors", self.protocol_errors));
        }
        if let Some(e) = &self.last_error {
            if self.errors > 0 || self.protocol_errors > 0 || self.connect_failures > 0 {
                parts.push(format!("last error: {e}"));
            }
        }
        parts.join(", ")
    }

    fn report(mut self, config: &Config) -> Report {
        self.latencies.sort_unstable();
        let window_start = self.intended(self.warmup_n);
        let window = (self.intended(self.total) - window_start)
            .max(self.last_done.saturating_sub(window_start))
            .max(1);
        let answered = self.ok + self.non_2xx;
        Report {
            rate: config.rate,
            duration_s: config.duration,
            connections: config.connections,
            sent: self.sent,
            ok: self.ok,
            non_2xx: self.non_2xx,
            errors: self.errors,
            achieved_rps: answered as f64 / (window as f64 / 1e9),
            latencies_us: self.latencies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Result<Command, String> {
        parse(a.iter().map(|s| s.to_string()))
    }

    fn run_cfg(a: &[&str]) -> Config {
        match args(a).unwrap() {
            Command::Run(c) => c,
            Command::Help => panic!("help"),
        }
    }

    #[test]
    fn cli_defaults_and_all_flags() {
        let c = run_cfg(&["--addr", "127.0.0.1:80", "--rate", "100", "--duration=2"]);
        assert_eq!(c.path, "/");
        assert_eq!(c.connections, 32);
        assert_eq!(
            (c.rate, c.duration, c.warmup, c.drain),
            (100.0, 2.0, 0.0, 5.0)
        );
        let c = run_cfg(&[
            "--addr=localhost:8080",
            "--path",
            "/a?b=c",
            "--rate",
            "10000",
            "--duration",
            "10",
            "--connections",
            "4",
            "--header",
            "Cookie: a=b",
            "--header=X-Y:z",
            "--warmup",
            "1.5",
            "--drain",
            "0",
            "--spin-us=0",
        ]);
        assert_eq!(c.addr, "localhost:8080");
        assert_eq!(c.path, "/a?b=c");
        assert_eq!(c.connections, 4);
        assert_eq!(c.headers, vec!["Cookie: a=b", "X-Y: z"]);
        assert_eq!((c.warmup, c.drain, c.spin_us), (1.5, 0.0, 0));
        assert_eq!(args(&["-h"]), Ok(Command::Help));
    }

    #[test]
    fn cli_rejects_bad_input() {
        let base = ["--addr", "127.0.0.1:1", "--rate", "10", "--duration", "1"];
        let with = |extra: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            args(&v)
        };
        assert!(args(&["--rate", "10", "--duration", "1"]).is_err());
        assert!(args(&["--addr", "a:1", "--duration", "1"]).is_err());
        assert!(with(&["--rate", "0"]).is_err());
        assert!(with(&["--rate", "nan"]).is_err());
        assert!(with(&["--duration", "-1"]).is_err());
        assert!(with(&["--connections", "0"]).is_err());
        assert!(with(&["--header", "NoColon"]).is_err());
        assert!(with(&["--header", "Bad Name: x"]).is_err());
        assert!(with(&["--path", "noslash"]).is_err());
        assert!(with(&["--path", "/a b"]).is_err());
        assert!(with(&["--bogus"]).is_err());
        assert!(with(&["--warmup"]).is_err());
        assert!(with(&["--spin-us", "-1"]).is_err());
        assert!(args(&["--addr", "a:1", "--rate", "0.1", "--duration", "1"]).is_err());
    }

    #[test]
    fn request_bytes() {
        let c = run_cfg(&[
            "--addr",
            "127.0.0.1:9",
            "--rate",
            "1",
            "--duration",
            "1",
            "--header",
            "Cookie: a=b",
        ]);
        assert_eq!(
            build_request(&c),
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1:9\r\nCookie: a=b\r\n\r\n"
        );
        let c = run_cfg(&[
            "--addr",
            "127.0.0.1:9",
            "--rate",
            "1",
            "--duration",
            "1",
            "--header",
            "host: x",
        ]);
        assert_eq!(build_request(&c), b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
    }

    #[test]
    fn nearest_rank_quantiles() {
        assert_eq!(quantile(&[], 0.5), None);
        let v: Vec<u32> = (1..=1000).collect();
        assert_eq!(quantile(&v, 0.5), Some(500));
        assert_eq!(quantile(&v, 0.9), Some(900));
        assert_eq!(quantile(&v, 0.99), Some(990));
        assert_eq!(quantile(&v, 0.999), Some(999));
        assert_eq!(quantile(&v, 1.0), Some(1000));
        assert_eq!(quantile(&v, 0.0), Some(1));
        assert_eq!(quantile(&[7], 0.999), Some(7));
    }

    /// Feeds `data` in pieces of `step` bytes; returns the responses.
    fn feed_all(data: &[u8], step: usize) -> Result<Vec<Parsed>, ParseError> {
        let mut p = ResponseParser::new();
        let mut out = Vec::new();
        for piece in data.chunks(step) {
            let mut piece = piece;
            while let Some((parsed, used)) = p.feed(piece)? {
                out.push(parsed);
                piece = &piece[used..];
            }
        }
        Ok(out)
    }

    const STREAM: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n\
        HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n\
        HTTP/1.1 404 Not Found\r\ncontent-length:0\r\n\r\n\
        HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        3;ext=1\r\nabc\r\nA\r\n0123\r\n5678\r\n0\r\nX-Trailer: y\r\n\r\n\
        HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n\
        HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx\
        HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx";

    fn expected() -> Vec<Parsed> {
        let p = |status, close| Parsed { status, close };
        vec![
            p(200, false),
            p(404, false),
            p(200, false),
            p(204, true),
            p(200, true),
            p(200, false),
        ]
    }

    #[test]
    fn parses_a_stream_of_responses_at_any_split() {
        for step in [1, 2, 3, 5, 7, 16, 64, STREAM.len()] {
            assert_eq!(feed_all(STREAM, step).unwrap(), expected(), "step {step}");
        }
    }

    #[test]
    fn close_delimited_body_ends_at_eof() {
        let mut p = ResponseParser::new();
        assert_eq!(
            p.feed(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody bytes")
                .unwrap(),
            None
        );
        assert_eq!(p.feed(b"more").unwrap(), None);
        assert_eq!(
            p.finish_eof().unwrap(),
            Parsed {
                status: 200,
                close: true
            }
        );
        let mut p = ResponseParser::new();
        assert_eq!(
            p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
                .unwrap(),
            None
        );
        assert!(p.finish_eof().is_err());
    }

    #[test]
    fn rejects_malformed_responses() {
        let bad: [&[u8]; 6] = [
            b"HTTQ/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
        ];
        for b in bad {
            assert!(feed_all(b, 1).is_err(), "{:?}", String::from_utf8_lossy(b));
            assert!(feed_all(b, b.len()).is_err());
        }
        let huge = vec![b'a'; MAX_HEAD + 10];
        let mut p = ResponseParser::new();
        assert!(p.feed(b"HTTP/1.1 200 OK\r\nX: ").unwrap().is_none());
        assert!(p.feed(&huge).is_err());
    }

    #[test]
    fn json_shape() {
        let r = Report {
            rate: 10000.0,
            duration_s: 2.5,
            connections: 32,
            sent: 3,
            ok: 2,
            non_2xx: 1,
            errors: 0,
            achieved_rps: 9999.94,
            latencies_us: vec![10, 20, 30],
        };
        assert_eq!(
            r.to_json(),
            r#"{"rate":10000,"duration_s":2.5,"connections":32,"sent":3,"ok":2,"non_2xx":1,"errors":0,"achieved_rps":9999.9,"p50_us":20,"p90_us":30,"p99_us":30,"p999_us":30,"max_us":30}"#
        );
        let empty = Report {
            latencies_us: vec![],
            ..r
        };
        let v: Value = serde_json::from_str(&empty.to_json()).unwrap();
        assert_eq!(v["p50_us"], Value::Null);
        assert_eq!(v["max_us"], Value::Null);
    }
}
