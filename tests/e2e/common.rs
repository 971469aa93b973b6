//! Shared helpers for the whole-binary tests: start `canaryd serve` as a real process with a
//! generated config, wait until it is ready, read its metrics, stop it with a signal.

use std::collections::HashMap;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub use testkit::{free_addr, wait_until, ChildGuard, Client, FakeGateway, TempDir};

/// What to put in the generated config besides addresses.
#[derive(Debug, Clone, Default)]
pub struct Setup {
    pub stable: Vec<SocketAddr>,
    pub canary: Vec<SocketAddr>,
    pub percent: f64,
    /// Extra lines inside `[proxy]`.
    pub proxy: String,
    /// Extra lines inside `[backends.stable]` / `[backends.canary]`.
    pub stable_extra: String,
    pub canary_extra: String,
    /// Extra lines inside `[rollout]` (`policy = …`, `autostart = true`).
    pub rollout: String,
    /// Extra sections at the end (`[routing]`, `[[proxy.routes]]`, …).
    pub tail: String,
}

/// A running `canaryd serve`.
pub struct Canaryd {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub dir: TempDir,
    pub config: PathBuf,
    child: ChildGuard,
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_canaryd"))
}

impl Setup {
    pub fn new(stable: &FakeGateway, canary: &FakeGateway, percent: f64) -> Self {
        Self {
            stable: vec![stable.addr],
            canary: vec![canary.addr],
            percent,
            ..Self::default()
        }
    }

    pub fn render(
        &self,
        proxy: SocketAddr,
        admin: SocketAddr,
        state_dir: &std::path::Path,
    ) -> String {
        let list = |a: &[SocketAddr]| {
            a.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "[proxy]\nlisten = [\"{proxy}\"]\nthreads = 2\nshutdown_grace = \"5s\"\n{}\n\
             [backends.stable]\nservers = [{}]\n{}\n\
             [backends.canary]\nservers = [{}]\n{}\n\
             [admin]\nlisten = \"{admin}\"\n\
             [rollout]\ninitial_percent = {}\nstate_dir = \"{}\"\n{}\n\
             {}\n",
            self.proxy,
            list(&self.stable),
            self.stable_extra,
            list(&self.canary),
            self.canary_extra,
            self.percent,
            state_dir.display(),
            self.rollout,
            self.tail
        )
    }
}

impl Canaryd {
    /// Writes the config, starts the daemon and waits until `/ready` answers 200.
    pub fn start(setup: &Setup) -> Self {
        Self::start_at(setup, free_addr(), free_addr())
    }

    /// Like [`Canaryd::start`] on given addresses (e.g. already in Prometheus's scrape config).
    pub fn start_at(setup: &Setup, proxy: SocketAddr, admin: SocketAddr) -> Self {
        let dir = TempDir::new("canaryd-e2e");
        let config = dir.path().join("canaryd.toml");
        fs::write(&config, setup.render(proxy, admin, dir.path())).expect("write config");
        Self::start_with_config(dir, config, proxy, admin)
    }

    /// Like [`Canaryd::start`], with `[admin] token_file` set (actions need the token).
    pub fn start_with_token(setup: &Setup, token_file: &std::path::Path) -> Self {
        let dir = TempDir::new("canaryd-e2e");
        let (proxy, admin) = (free_addr(), free_addr());
        let text = setup.render(proxy, admin, dir.path()).replace(
            "[admin]\n",
            &format!("[admin]\ntoken_file = \"{}\"\n", token_file.display()),
        );
        let config = dir.path().join("canaryd.toml");
        fs::write(&config, text).expect("write config");
        Self::start_with_config(dir, config, proxy, admin)
    }

    /// Starts the daemon on an existing config file.
    pub fn start_with_config(
        dir: TempDir,
        config: PathBuf,
        proxy: SocketAddr,
        admin: SocketAddr,
    ) -> Self {
        let child = Self::spawn(&dir, &config);
        let mut me = Self {
            proxy,
            admin,
            dir,
            config,
            child,
        };
        me.wait_ready();
        me
    }

    fn spawn(dir: &TempDir, config: &std::path::Path) -> ChildGuard {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("canaryd.log"))
            .expect("log file");
        let child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(config)
            .env("CANARYD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn canaryd");
        ChildGuard::new(child)
    }

    fn wait_ready(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = testkit::get(self.admin, "/ready") {
                if r.status == 200 {
                    break;
                }
            }
            if !self.child.is_running() || std::time::Instant::now() > deadline {
                panic!("canaryd did not become ready; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        testkit::wait_for_port(self.proxy, Duration::from_secs(10));
    }

    /// `kill -9`, then start again with the same config and state directory.
    pub fn kill9_and_restart(&mut self) {
        self.child.kill();
        self.child = Self::spawn(&self.dir, &self.config);
        self.wait_ready();
    }

    /// `GET /api/v1/status`.
    pub fn status(&self) -> serde_json::Value {
        testkit::get(self.admin, "/api/v1/status")
            .expect("GET /api/v1/status")
            .json()
    }

    /// `GET /api/v1/decisions?limit=1000`, oldest first.
    pub fn decisions(&self) -> Vec<serde_json::Value> {
        let v = testkit::get(self.admin, "/api/v1/decisions?limit=1000")
            .expect("GET /api/v1/decisions")
            .json();
        v["decisions"].as_array().cloned().unwrap_or_default()
    }

    /// Polls the status until `f` holds; panics with the last status and the log tail after
    /// `timeout`.
    pub fn wait_status(
        &self,
        what: &str,
        timeout: Duration,
        mut f: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = std::time::Instant::now();
        loop {
            let s = self.status();
            if f(&s) {
                return s;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; status:\n{s:#}\nlog tail:\n{}",
                    tail(&self.log(), 30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("canaryd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as i32, sig);
        }
    }

    /// Waits for the process to exit; returns how long that took, or None on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Duration> {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if !self.child.is_running() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// All samples of `/metrics`, keyed by the full series (`name{labels}`).
    pub fn metrics(&self) -> HashMap<String, f64> {
        let body = testkit::get(self.admin, "/metrics").expect("scrape").text();
        body.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    /// One series, 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics().get(series).copied().unwrap_or(0.0)
    }

    /// Waits until `series` equals `value`. Metrics are recorded when a request's logging
    /// runs, just after the client has its response, so a scrape right after the last
    /// response can still miss it.
    pub fn wait_metric(&self, series: &str, value: f64) {
        let mut last = 0.0;
        let ok = (0..250).any(|_| {
            last = self.metric(series);
            if last == value {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
            false
        });
        assert!(ok, "{series} is {last}, expected {value}");
    }

    /// A keep-alive client to the proxy listener.
    pub fn client(&self) -> Client {
        Client::connect(self.proxy).expect("connect to proxy")
    }
}

/// Counts which gateway served each of `n` GETs of `/`, over `threads` keep-alive clients.
/// Panics on any non-200 answer.
pub fn count_served_by(
    addr: SocketAddr,
    n: usize,
    threads: usize,
    headers: &[(&str, &str)],
) -> HashMap<String, usize> {
    let per = n / threads;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let headers: Vec<(String, String)> = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            std::thread::spawn(move || {
                let hdrs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let mut c = Client::connect(addr).expect("connect");
                let mut counts: HashMap<String, usize> = HashMap::new();
                for _ in 0..per {
                    let r = c.request("GET", "/", &hdrs, b"").expect("request");
                    assert_eq!(r.status, 200, "unexpected status: {}", r.text());
                    *counts.entry(r.text()).or_default() += 1;
                }
                counts
            })
        })
        .collect();
    let mut total = HashMap::new();
    for h in handles {
        for (k, v) in h.join().expect("client thread") {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Background GET traffic over keep-alive connections until dropped or stopped; counts
/// answers by status code.
pub struct Traffic {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<HashMap<u16, u64>>>,
}

impl Traffic {
    pub fn start(addr: SocketAddr, threads: usize) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut counts = HashMap::new();
                    let mut c = Client::connect(addr).expect("connect");
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let status = c.get("/").map(|r| r.status).unwrap_or(0);
                        *counts.entry(status).or_default() += 1;
                        // Keep the rate modest: enough for min_requests, light on the CPU.
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    counts
                })
            })
            .collect();
        Self { stop, threads }
    }

    /// Stops the traffic and returns the answers by status code.
    pub fn stop(mut self) -> HashMap<u16, u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = HashMap::new();
        for t in self.threads.drain(..) {
            for (k, v) in t.join().expect("traffic thread") {
                *total.entry(k).or_default() += v;
            }
        }
        total
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A minimal HTTP/1.1 server for tests (keep-alive, bodies by Content-Length): `answer` gets
/// each request's body and returns the status and body to send.
pub fn raw_server(
    answer: impl Fn(Vec<u8>) -> (u16, Vec<u8>) + Send + Sync + 'static,
) -> SocketAddr {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let Ok(mut w) = s.try_clone() else { return };
                let mut r = BufReader::new(s);
                loop {
                    let (mut len, mut line) = (0usize, String::new());
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    let (status, out) = answer(body);
                    let head = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n\r\n",
                        out.len()
                    );
                    if w.write_all(head.as_bytes())
                        .and_then(|_| w.write_all(&out))
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Established TCP connections whose remote end is `addr` (IPv4, from /proc/net/tcp): canaryd's
/// upstream connections to a gateway. canaryd only connects when it forwards a request, so one
/// appearing means a request is in flight.
pub fn connections_to(addr: SocketAddr) -> usize {
    let table = fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let want = format!(":{:04X}", addr.port());
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // f[2] = rem_address "0100007F:PORT", f[3] = st ("01" = ESTABLISHED)
            f.len() > 3 && f[2].ends_with(&want) && f[3] == "01"
        })
        .count()
}

/// Writes `token` to `dir/admin.token` with mode 600 (canaryd refuses a readable token file).
pub fn write_token(dir: &std::path::Path, token: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("admin.token");
    fs::write(&path, format!("{token}\n")).expect("write token");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod token");
    path
}

/// `POST /api/v1/<action>` with `body` and, when given, the bearer token: the status code and
/// the answer's JSON.
pub fn post(
    d: &Canaryd,
    action: &str,
    token: Option<&str>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut c = testkit::Client::connect(d.admin).expect("admin connects");
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a.as_str()));
    }
    let r = c
        .request(
            "POST",
            &format!("/api/v1/{action}"),
            &headers,
            body.to_string().as_bytes(),
        )
        .expect("admin answers");
    (r.status, r.json())
}

/// Runs `canaryd ARGS --admin <d>` (with `--token-file` when given): success, stdout, stderr.
pub fn cli(
    d: &Canaryd,
    args: &[&str],
    token_file: Option<&std::path::Path>,
) -> (bool, String, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .arg("--admin")
        .arg(format!("http://{}", d.admin))
        .env_remove("CANARYD_ADMIN_TOKEN");
    if let Some(t) = token_file {
        cmd.arg("--token-file").arg(t);
    }
    let out = cmd.output().expect("canaryd runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A webhook target answering 200: its address and the JSON bodies it received, in order.
pub fn webhook_receiver() -> (
    SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = got.clone();
    let addr = raw_server(move |body| {
        if let Ok(v) = serde_json::from_slice(&body) {
            if let Ok(mut s) = sink.lock() {
                s.push(v);
            }
        }
        (200, Vec::new())
    });
    (addr, got)
}
