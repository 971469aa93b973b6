//! [`FakeGateway`]: what a test holds to run a `fake-gateway` process —
//! spawn it (on a port it picks, or a fixed one to come back after a kill),
//! learn its address from its `listening on` line, turn its knobs, kill it.

use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::http::{self, Client};
use crate::process::{sibling_binary, ChildGuard};

/// How long a starting gateway may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `fake-gateway` process, killed on drop.
#[derive(Debug)]
pub struct FakeGateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its `--name` (body of `/`, value of `x-served-by`).
    pub name: String,
    extra_args: Vec<String>,
    child: ChildGuard,
}

impl FakeGateway {
    /// Spawns `fake-gateway --listen 127.0.0.1:0 --name NAME EXTRA_ARGS...`.
    ///
    /// # Panics
    /// When the binary is missing or does not report its address within 10 s.
    pub fn spawn(name: &str, extra_args: &[&str]) -> FakeGateway {
        Self::launch("127.0.0.1:0", name, extra_args)
    }

    /// Like [`FakeGateway::spawn`] on a fixed address, e.g. to bring a killed
    /// gateway back on the same port.
    pub fn spawn_on(addr: SocketAddr, name: &str, extra_args: &[&str]) -> FakeGateway {
        Self::launch(&addr.to_string(), name, extra_args)
    }

    fn launch(listen: &str, name: &str, extra_args: &[&str]) -> FakeGateway {
        let binary = sibling_binary("fake-gateway");
        let child = Command::new(&binary)
            .args(["--listen", listen, "--name", name])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", binary.display()));
        let mut child = ChildGuard::new(child);
        let stdout = child
            .child_mut()
            .stdout
            .take()
            .unwrap_or_else(|| panic!("fake-gateway {name}: stdout was not piped"));

        // Read the first line on a thread so the wait can time out; the
        // thread then keeps draining stdout so the gateway never blocks on it.
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let first = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send(first);
            let _ = io::copy(&mut reader, &mut io::sink());
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("fake-gateway {name}: cannot read its stdout: {e}"),
            Err(_) => panic!(
                "fake-gateway {name} did not print `listening on ADDR` within {START_TIMEOUT:?}"
            ),
        };
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| {
                let status = child.child_mut().try_wait().ok().flatten();
                panic!(
                    "fake-gateway {name} (listen {listen}) printed {line:?} instead of \
                     `listening on ADDR`; exit status {status:?}"
                )
            });
        FakeGateway {
            addr,
            name: name.to_owned(),
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            child,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `POST /__knobs?QUERY`, e.g. `"error_rate=0.5&latency_ms=20"`.
    /// Returns the new knobs JSON.
    ///
    /// # Panics
    /// Unless the gateway answers 200.
    pub fn set_knobs(&self, query: &str) -> serde_json::Value {
        let path = format!("/__knobs?{query}");
        let resp = Client::connect(self.addr)
            .and_then(|mut c| c.post(&path, b""))
            .unwrap_or_else(|e| panic!("fake-gateway {}: POST {path} failed: {e}", self.name));
        assert_eq!(
            resp.status,
            200,
            "fake-gateway {}: POST {path} answered {}: {}",
            self.name,
            resp.status,
            resp.text()
        );
        resp.json()
    }

    /// The current knobs (`GET /__knobs`).
    ///
    /// # Panics
    /// When the gateway cannot be reached.
    pub fn knobs(&self) -> serde_json::Value {
        http::get(self.addr, "/__knobs")
            .unwrap_or_else(|e| panic!("fake-gateway {}: GET /__knobs failed: {e}", self.name))
            .json()
    }

    /// The `/metrics` text.
    ///
    /// # Panics
    /// When the gateway cannot be reached.
    pub fn metrics(&self) -> String {
        http::get(self.addr, "/metrics")
            .unwrap_or_else(|e| panic!("fake-gateway {}: GET /metrics failed: {e}", self.name))
            .text()
    }

    /// SIGKILL and reap; the port is free again afterwards.
    pub fn kill(&mut self) {
        self.child.kill();
    }

    /// Kills the gateway (if still running) and starts a new one on the same
    /// address with the same name and command-line arguments (run-time knob
    /// changes are not carried over).
    pub fn restart(&mut self) {
        self.kill();
        let extra: Vec<&str> = self.extra_args.iter().map(String::as_str).collect();
        *self = FakeGateway::spawn_on(self.addr, &self.name, &extra);
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// True until the process has exited.
    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }
}
