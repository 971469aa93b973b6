//! A throwaway real etcd (`/usr/bin/etcd`, Debian's etcd-server) on loopback for fleet tests:
//! one member in a private data dir, started and waited for until `/health` says so; it can
//! be stopped and started again on the same data and ports (etcd down, etcd back), and
//! read, written and compacted through `etcdctl`. Tests skip when etcd is not installed
//! ([`Etcd::start`] → `None`).

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_addr;
use crate::process::ChildGuard;
use crate::tempdir::TempDir;

const BINARY: &str = "/usr/bin/etcd";
const CTL: &str = "/usr/bin/etcdctl";
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running (or stopped) single-member etcd.
#[derive(Debug)]
pub struct Etcd {
    /// Client address (`http://ADDR`).
    pub addr: SocketAddr,
    peer: SocketAddr,
    dir: TempDir,
    child: Option<ChildGuard>,
}

impl Etcd {
    /// Starts etcd and waits until it is healthy. `None` when etcd or etcdctl is missing.
    ///
    /// # Panics
    /// When etcd is installed but does not become healthy.
    pub fn start() -> Option<Etcd> {
        if !std::path::Path::new(BINARY).exists() || !std::path::Path::new(CTL).exists() {
            return None;
        }
        let mut me = Etcd {
            addr: free_addr(),
            peer: free_addr(),
            dir: TempDir::new("etcd"),
            child: None,
        };
        me.resume();
        Some(me)
    }

    /// `http://ADDR`, as a `[cluster] endpoints` entry.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL (etcd down); [`resume`](Self::resume) starts it again on the same data.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill();
        }
    }

    /// Starts etcd (again) on its data dir and ports, and waits until it is healthy.
    ///
    /// # Panics
    /// When it does not become healthy within 20 s.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("etcd.log")).expect("etcd log");
        let client = format!("http://{}", self.addr);
        let peer = format!("http://{}", self.peer);
        let child = Command::new(BINARY)
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args(["--initial-cluster", &format!("t={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(ChildGuard::new(child));
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(r) = crate::http::get(self.addr, "/health") {
                if r.status == 200 && r.text().contains("true") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "etcd did not become healthy; log in {}",
            self.dir.path().display()
        );
    }

    fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new(CTL)
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url(), "--command-timeout=3s"])
            .args(args)
            .output()
            .expect("run etcdctl");
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The value of `key`, `None` when absent.
    pub fn get(&self, key: &str) -> Option<String> {
        let v = self.ctl(&["get", key, "--print-value-only"]);
        let v = v.trim_end_matches('\n');
        (!v.is_empty()).then(|| v.to_string())
    }

    /// Puts `value` at `key` (unfenced: what an operator or a rogue writer does).
    pub fn put(&self, key: &str, value: &str) {
        self.ctl(&["put", key, value]);
    }

    /// The store's current revision.
    pub fn revision(&self) -> i64 {
        let v: serde_json::Value =
            serde_json::from_str(&self.ctl(&["get", "/", "-w", "json"])).expect("etcdctl json");
        v["header"]["revision"].as_i64().expect("revision")
    }

    /// Compacts the history up to the current revision (watchers behind it are cancelled).
    pub fn compact(&self) -> i64 {
        let rev = self.revision();
        self.ctl(&["compact", &rev.to_string(), "--physical"]);
        rev
    }
}
