//! A throwaway real Prometheus for end-to-end tests: scrapes the given
//! targets every second from a private temp dir, answers PromQL queries, and
//! is killed (its dir removed) on drop. Tests skip themselves when
//! `/usr/bin/prometheus` is not installed ([`Prometheus::start`] → `None`).

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::http::{self, percent_encode};
use crate::ports::free_addr;
use crate::process::ChildGuard;
use crate::tempdir::TempDir;

const BINARY: &str = "/usr/bin/prometheus";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Fresh ports tried when Prometheus exits at once (port taken meanwhile).
const START_ATTEMPTS: usize = 3;

/// A running Prometheus process.
#[derive(Debug)]
pub struct Prometheus {
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
    child: ChildGuard,
    dir: TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping each `(job, target)` every second and waits
    /// up to 20 s until `/-/ready` answers 200. `None` when
    /// `/usr/bin/prometheus` is not installed.
    ///
    /// # Panics
    /// When Prometheus is installed but does not become ready.
    pub fn start(targets: &[(&str, SocketAddr)]) -> Option<Prometheus> {
        if !Path::new(BINARY).is_file() {
            return None;
        }
        let dir = TempDir::new("testkit-prometheus");
        let config = dir.path().join("prometheus.yml");
        fs::write(&config, render_config(targets))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        for _ in 0..START_ATTEMPTS {
            let addr = free_addr();
            let mut child = spawn(dir.path(), addr);
            if wait_ready(addr, &mut child) {
                return Some(Prometheus { addr, child, dir });
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
        let mut child = spawn(self.dir.path(), self.addr);
        assert!(
            wait_ready(self.addr, &mut child),
            "{BINARY} did not come back on {} within {READY_TIMEOUT:?}",
            self.addr
        );
        self.child = child;
    }

    /// `http://127.0.0.1:PORT`, e.g. for a controller's config.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs an instant query; returns the whole API answer
    /// (`{"status":"success","data":{"resultType":..,"result":[..]}}`).
    ///
    /// # Panics
    /// When the API cannot be reached or does not answer JSON.
    pub fn query(&self, promql: &str) -> serde_json::Value {
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

/// Polls `/-/ready`; false if the process exited or the deadline passed.
fn wait_ready(addr: SocketAddr, child: &mut ChildGuard) -> bool {
    let deadline = Instant::now() + READY_TIMEOUT;
    while Instant::now() < deadline {
        if !child.is_running() {
            return false;
        }
        if http::get(addr, "/-/ready").is_ok_and(|r| r.status == 200) {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    child.kill();
    false
}

/// The prometheus.yml for `targets`.
/// Starts the binary on `addr` with the config and data directory in `dir`.
fn spawn(dir: &Path, addr: SocketAddr) -> ChildGuard {
    let child = Command::new(BINARY)
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
