//! A throwaway real Prometheus for end-to-end tests: scrapes the given
//! targets every second from a private temp dir, answers PromQL queries, and
//! is killed (its dir removed) on drop. Tests skip themselves when
//! `/usr/bin/prometheus` is not installed ([`Prometheus::start`] → `None`).
//!
//! [`Prometheus::start_with_history`] starts it on a history written beforehand with
//! `promtool tsdb create-blocks-from openmetrics` (backfill): exact samples at exact past
//! times, for tests of what is read back over a range.
//!
//! [`Prometheus::start_with_web_config`] starts it behind its own
//! `--web.config.file` (TLS, basic auth), as production Prometheus servers
//! run; this crate's plain HTTP helpers ([`Prometheus::query`] …) cannot talk
//! to such an instance, the test's own client does.

use std::fmt::Write as _;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{self, percent_encode};
use crate::ports::free_addr;
use crate::process::ChildGuard;
use crate::tempdir::TempDir;

const BINARY: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Fresh ports tried when Prometheus exits at once (port taken meanwhile).
const START_ATTEMPTS: usize = 3;
/// The web config's file name in the temp dir.
const WEB_CONFIG: &str = "web.yml";

/// A running Prometheus process.
#[derive(Debug)]
pub struct Prometheus {
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
    child: ChildGuard,
    dir: TempDir,
    /// `http`, or `https` when its web config enables TLS.
    scheme: String,
    /// Started with `--web.config.file` (web.yml in `dir`).
    web_config: bool,
}

impl Prometheus {
    /// Starts Prometheus scraping each `(job, target)` every second and waits
    /// up to 20 s until `/-/ready` answers 200. `None` when
    /// `/usr/bin/prometheus` is not installed.
    ///
    /// # Panics
    /// When Prometheus is installed but does not become ready.
    pub fn start(targets: &[(&str, SocketAddr)]) -> Option<Prometheus> {
        Self::launch(targets, None, "http")
    }

    /// Like [`start`](Self::start), behind `--web.config.file` with
    /// `web_config_yaml` (exporter-toolkit's format: `tls_server_config` with
    /// `cert_file`/`key_file`, `basic_auth_users` with bcrypt hashes — give
    /// absolute paths). `scheme` (`"https"` when the config enables TLS) is
    /// what [`url`](Self::url) says.
    ///
    /// Returns as soon as Prometheus accepts connections on its port: this
    /// crate's plain HTTP client cannot ask `/-/ready` through TLS or
    /// authentication, so it may still answer 503 for a moment — poll with
    /// the client under test. [`query`](Self::query) and the other helpers
    /// built on it do not work on such an instance.
    ///
    /// # Panics
    /// When Prometheus is installed but does not start listening (e.g. the
    /// web config is invalid: Prometheus exits).
    pub fn start_with_web_config(
        targets: &[(&str, SocketAddr)],
        web_config_yaml: &str,
        scheme: &str,
    ) -> Option<Prometheus> {
        Self::launch(targets, Some(web_config_yaml), scheme)
    }

    /// Starts Prometheus (scraping nothing) on a TSDB backfilled from `openmetrics` (the
    /// OpenMetrics text format, timestamps in seconds, ending with `# EOF`) by `promtool tsdb
    /// create-blocks-from openmetrics`. `None` when prometheus or promtool is not installed.
    ///
    /// # Panics
    /// When promtool refuses the history or Prometheus does not become ready.
    pub fn start_with_history(openmetrics: &str) -> Option<Prometheus> {
        if !Path::new(PROMTOOL).is_file() {
            return None;
        }
        let dir = TempDir::new("testkit-prometheus");
        let input = dir.path().join("history.om");
        fs::write(&input, openmetrics)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", input.display()));
        let out = Command::new(PROMTOOL)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&input)
            .arg(dir.path().join("data"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {PROMTOOL}: {e}"));
        assert!(
            out.status.success(),
            "promtool refused the history: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Self::launch_in(dir, &[], None, "http")
    }

    fn launch(
        targets: &[(&str, SocketAddr)],
        web_config_yaml: Option<&str>,
        scheme: &str,
    ) -> Option<Prometheus> {
        Self::launch_in(
            TempDir::new("testkit-prometheus"),
            targets,
            web_config_yaml,
            scheme,
        )
    }

    fn launch_in(
        dir: TempDir,
        targets: &[(&str, SocketAddr)],
        web_config_yaml: Option<&str>,
        scheme: &str,
    ) -> Option<Prometheus> {
        if !Path::new(BINARY).is_file() {
            return None;
        }
        let config = dir.path().join("prometheus.yml");
        fs::write(&config, render_config(targets))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        if let Some(yaml) = web_config_yaml {
            let web = dir.path().join(WEB_CONFIG);
            fs::write(&web, yaml).unwrap_or_else(|e| panic!("cannot write {}: {e}", web.display()));
        }
        let web_config = web_config_yaml.is_some();
        for _ in 0..START_ATTEMPTS {
            let addr = free_addr();
            let mut child = spawn(dir.path(), addr, web_config);
            if wait_ready(addr, &mut child, web_config) {
                return Some(Prometheus {
                    addr,
                    child,
                    dir,
                    scheme: scheme.to_owned(),
                    web_config,
                });
            }
        }
        panic!(
            "{BINARY} did not become ready within {READY_TIMEOUT:?} ({START_ATTEMPTS} attempts)"
        );
    }

    /// Kills Prometheus (SIGKILL), as an outage would.
    pub fn stop(&mut self) {
        self.child.kill();
    }

    /// Starts it again on the same address with the same data directory and waits until it
    /// is ready.
    ///
    /// # Panics
    /// When it does not become ready (e.g. the port was taken meanwhile).
    pub fn restart(&mut self) {
        self.child.kill();
        let mut child = spawn(self.dir.path(), self.addr, self.web_config);
        assert!(
            wait_ready(self.addr, &mut child, self.web_config),
            "{BINARY} did not come back on {} within {READY_TIMEOUT:?}",
            self.addr
        );
        self.child = child;
    }

    /// `http://127.0.0.1:PORT` (`https://` for a TLS web config), e.g. for a
    /// controller's config.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Runs an instant query; returns the whole API answer
    /// (`{"status":"success","data":{"resultType":..,"result":[..]}}`).
    ///
    /// # Panics
    /// When the API cannot be reached or does not answer JSON, and always on
    /// an instance started with a web config.
    pub fn query(&self, promql: &str) -> serde_json::Value {
        assert!(
            !self.web_config,
            "Prometheus::query speaks plain HTTP without credentials; this instance has a web config"
        );
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let response = http::get(self.addr, &path)
            .unwrap_or_else(|e| panic!("prometheus query {promql:?} failed: {e}"));
        response.json()
    }

    /// The value of the first sample of an instant query, if any.
    pub fn query_value(&self, promql: &str) -> Option<f64> {
        let answer = self.query(promql);
        let data = &answer["data"];
        let value = match data["resultType"].as_str() {
            Some("scalar") => &data["result"][1],
            _ => &data["result"][0]["value"][1],
        };
        value.as_str().and_then(|v| v.parse().ok())
    }

    /// Waits until `promql` returns a non-empty result.
    ///
    /// # Panics
    /// On timeout, with the last answer.
    pub fn wait_for_series(&self, promql: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let answer = self.query(promql);
            let result = &answer["data"]["result"];
            if result.as_array().is_some_and(|r| !r.is_empty()) {
                return;
            }
            if Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for series {promql:?}; last answer {answer}");
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The temp dir holding prometheus.yml and the TSDB (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        // Kill before the TempDir field is dropped (and removed).
        self.child.kill();
    }
}

/// Polls `/-/ready` (with a web config: until the port accepts connections);
/// false if the process exited or the deadline passed.
fn wait_ready(addr: SocketAddr, child: &mut ChildGuard, web_config: bool) -> bool {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if !child.is_running() {
            return false;
        }
        let ready = if web_config {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        } else {
            http::get(addr, "/-/ready").is_ok_and(|r| r.status == 200)
        };
        if ready {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    child.kill();
    false
}

/// Starts the binary on `addr` with the config and data directory in `dir`
/// (and `dir/web.yml` as its web config when `web_config`).
fn spawn(dir: &Path, addr: SocketAddr, web_config: bool) -> ChildGuard {
    let mut command = Command::new(BINARY);
    if web_config {
        command.arg(format!(
            "--web.config.file={}",
            dir.join(WEB_CONFIG).display()
        ));
    }
    let child = command
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {BINARY}: {e}"));
    ChildGuard::new(child)
}

/// The prometheus.yml for `targets`.
fn render_config(targets: &[(&str, SocketAddr)]) -> String {
    let mut yml = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
    );
    for (job, target) in targets {
        let _ = write!(
            yml,
            "  - job_name: \"{job}\"\n    static_configs:\n      - targets: [\"{target}\"]\n"
        );
    }
    yml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_one_job_per_target() {
        let a: SocketAddr = "127.0.0.1:9001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:9002".parse().unwrap();
        let yml = render_config(&[("stable", a), ("canary", b)]);
        assert!(yml.contains("scrape_interval: 1s"));
        assert!(yml.contains("evaluation_interval: 1s"));
        assert!(yml.contains(
            "  - job_name: \"stable\"\n    static_configs:\n      - targets: [\"127.0.0.1:9001\"]\n"
        ));
        assert!(yml.contains("job_name: \"canary\""));
    }
}
