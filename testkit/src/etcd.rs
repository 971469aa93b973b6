//! A throwaway real etcd (`/usr/bin/etcd`, Debian's etcd-server) on loopback for fleet tests:
//! one member in a private data dir, started and waited for until it is healthy; it can be
//! stopped and started again on the same data and ports (etcd down, etcd back), and read,
//! written and compacted through `etcdctl`. [`Etcd::start_tls`] serves https and requires
//! client certificates (a CA, a server and a client certificate made here with the `openssl`
//! CLI); [`Etcd::enable_auth`] turns on etcd's users. Tests skip when etcd is not installed
//! ([`Etcd::start`] → `None`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    tls: Option<Tls>,
    /// `user:password` for etcdctl once authentication is on.
    root: Option<String>,
}

/// The PEM files of a TLS etcd, in its dir.
#[derive(Debug, Clone)]
pub struct Tls {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
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
            tls: None,
            root: None,
        };
        me.resume();
        Some(me)
    }

    /// Like [`start`](Self::start), serving https with a certificate for 127.0.0.1 signed by a
    /// CA of its own, and requiring client certificates of that CA. `None` when etcd or
    /// openssl is missing.
    pub fn start_tls() -> Option<Etcd> {
        if !std::path::Path::new(BINARY).exists() || !std::path::Path::new(CTL).exists() {
            return None;
        }
        let dir = TempDir::new("etcd");
        let tls = make_certs(dir.path())?;
        let mut me = Etcd {
            addr: free_addr(),
            peer: free_addr(),
            dir,
            child: None,
            tls: Some(tls),
            root: None,
        };
        me.resume();
        Some(me)
    }

    /// The PEM files of a [`start_tls`](Self::start_tls) etcd.
    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// Turns on etcd's authentication with a `root` user and `user` (read-write on every
    /// key) with `password`.
    pub fn enable_auth(&mut self, user: &str, password: &str) {
        self.ctl(&["user", "add", "root:root-password"]);
        self.ctl(&["role", "add", "rw"]);
        self.ctl(&[
            "role",
            "grant-permission",
            "rw",
            "readwrite",
            "--prefix=true",
            "/",
        ]);
        self.ctl(&["user", "add", &format!("{user}:{password}")]);
        self.ctl(&["user", "grant-role", user, "rw"]);
        self.ctl(&["auth", "enable"]);
        self.root = Some("root:root-password".into());
    }

    /// `http://ADDR` (or `https://`), as a `[cluster] endpoints` entry.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
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
        let client = self.url();
        let peer = format!("http://{}", self.peer);
        let mut cmd = Command::new(BINARY);
        cmd.args(["--name", "t", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("t={peer}")]);
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(ChildGuard::new(child));
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if self.ctl_output(&["endpoint", "health"]).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "etcd did not become healthy; log in {}",
            self.dir.path().display()
        );
    }

    fn ctl(&self, args: &[&str]) -> String {
        self.ctl_output(args)
            .unwrap_or_else(|e| panic!("etcdctl {args:?}: {e}"))
    }

    fn ctl_output(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = Command::new(CTL);
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.url(), "--command-timeout=3s"]);
        if let Some(t) = &self.tls {
            cmd.arg("--cacert")
                .arg(&t.ca)
                .arg("--cert")
                .arg(&t.client_cert)
                .arg("--key")
                .arg(&t.client_key);
        }
        if let Some(root) = &self.root {
            cmd.args(["--user", root]);
        }
        let out = cmd.args(args).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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

/// A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by the CA;
/// `None` when openssl is missing.
fn make_certs(dir: &Path) -> Option<Tls> {
    let openssl = |args: &[&str]| -> Option<()> {
        let out = match Command::new("openssl").args(args).current_dir(dir).output() {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("cannot run openssl: {e}"),
        };
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&ca)?;
    for (name, cn, ext) in [
        (
            "server",
            "127.0.0.1",
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n",
        ),
        (
            "client",
            "canaryd",
            "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=clientAuth\n",
        ),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).expect("write ext");
        let (key, csr) = (format!("{name}.key"), format!("{name}.csr"));
        let subj = format!("/CN={cn}");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-subj", &subj, "-keyout", &key, "-out", &csr]);
        openssl(&req)?;
        let (pem, extfile) = (format!("{name}.pem"), format!("{name}.ext"));
        openssl(&[
            "x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", &extfile, "-out", &pem,
        ])?;
    }
    Some(Tls {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
    })
}
