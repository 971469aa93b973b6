//! systemd integration, end to end: `canaryd serve` under a stand-in service manager (a
//! datagram socket passed as `$NOTIFY_SOCKET`) says `READY=1` only once it serves, pings the
//! watchdog at half of `$WATCHDOG_USEC` (and only when `$WATCHDOG_PID` is its own), announces a
//! SIGHUP reload with `RELOADING=1` + `MONOTONIC_USEC` then `READY=1`, and a SIGTERM stop with
//! `STOPPING=1`. The shipped `deploy/canaryd.toml` passes `canaryd check`, and agrees with
//! `deploy/canaryd.service` (stop timeout above the drain bound, state directory, token) and
//! `deploy/canaryd.socket` (exactly its listeners). Socket activation itself: `upgrade.rs`.

use std::cell::RefCell;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, binary, free_addr, ChildGuard, FakeGateway, Setup, TempDir};

/// The service manager's end of `$NOTIFY_SOCKET`: every datagram canaryd sends, in order.
struct Manager {
    sock: UnixDatagram,
    path: PathBuf,
    seen: RefCell<Vec<String>>,
    _dir: TempDir,
}

impl Manager {
    fn new() -> Self {
        let dir = TempDir::new("canaryd-sd");
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        Self {
            sock,
            path,
            seen: RefCell::default(),
            _dir: dir,
        }
    }

    /// The next datagram, or None once `deadline` has passed.
    fn recv(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        // Wake up at least every 100 ms so callers can notice a daemon that died.
        self.sock
            .set_read_timeout(Some(left.min(Duration::from_millis(100))))
            .expect("set_read_timeout");
        let mut buf = [0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.seen.borrow_mut().push(msg.clone());
                Some(msg)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("notify socket: {e}"),
        }
    }

    /// Receives until a datagram has the line `line`; returns that datagram. Panics with every
    /// datagram seen and the daemon's log after `timeout`, or when the daemon exits.
    fn wait_for(&self, line: &str, timeout: Duration, d: &mut Daemon) -> String {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(msg) = self.recv(deadline) {
                if has_line(&msg, line) {
                    return msg;
                }
            } else if !d.child.is_running() {
                panic!(
                    "canaryd exited while waiting for {line:?}; notifications: {:?}\nlog:\n{}",
                    self.seen.borrow(),
                    d.log()
                );
            }
        }
        panic!(
            "no {line:?} within {timeout:?}; notifications: {:?}\nlog:\n{}",
            self.seen.borrow(),
            d.log()
        );
    }

    /// How many datagrams with the line `line` arrive in the next `window`.
    fn count(&self, line: &str, window: Duration) -> usize {
        let deadline = Instant::now() + window;
        let mut n = 0;
        while Instant::now() < deadline {
            if let Some(msg) = self.recv(deadline) {
                n += usize::from(has_line(&msg, line));
            }
        }
        n
    }
}

fn has_line(msg: &str, line: &str) -> bool {
    msg.lines().any(|l| l == line)
}

/// `canaryd serve` started with a given environment (the harness's `Canaryd` passes none).
struct Daemon {
    child: ChildGuard,
    proxy: SocketAddr,
    admin: SocketAddr,
    dir: TempDir,
}

impl Daemon {
    fn spawn(setup: &Setup, env: &[(&str, &str)]) -> Self {
        let (proxy, admin) = (free_addr(), free_addr());
        let dir = TempDir::new("canaryd-sd-e2e");
        let config = dir.path().join("canaryd.toml");
        fs::write(&config, setup.render(proxy, admin, dir.path())).expect("write config");
        let log = fs::File::create(dir.path().join("canaryd.log")).expect("log file");
        let mut cmd = Command::new(binary());
        cmd.args(["serve", "--config"])
            .arg(&config)
            .env("CANARYD_LOG", "info")
            // Whatever the test runner inherited, only what the test sets counts.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log);
        let child = ChildGuard::new(cmd.spawn().expect("spawn canaryd"));
        Self {
            child,
            proxy,
            admin,
            dir,
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.pid() as i32, sig);
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("canaryd.log")).unwrap_or_default()
    }

    /// True when the process exited within `timeout`.
    fn exits_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.child.is_running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// What `READY=1` promises: the proxy and admin listeners accept and a request is served.
    /// Checked right when the notification arrives, without retrying.
    fn assert_serving(&self) {
        if let Err(e) = TcpStream::connect_timeout(&self.proxy, Duration::from_secs(1)) {
            panic!(
                "READY=1 sent but the proxy port {} refuses: {e}; log:\n{}",
                self.proxy,
                self.log()
            );
        }
        let r = testkit::get(self.proxy, "/")
            .unwrap_or_else(|e| panic!("READY=1 sent but GET / failed: {e}; log:\n{}", self.log()));
        assert_eq!(r.status, 200, "GET / after READY=1: {}", r.text());
        assert_eq!(r.text(), "stable");
        let r = testkit::get(self.admin, "/healthz").unwrap_or_else(|e| {
            panic!(
                "READY=1 sent but the admin listener fails: {e}; log:\n{}",
                self.log()
            )
        });
        assert_eq!(r.status, 200);
    }
}

fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid, writable timespec.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

fn gateways() -> (FakeGateway, FakeGateway, Setup) {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let setup = Setup::new(&stable, &canary, 0.0);
    (stable, canary, setup)
}

#[test]
fn ready_once_serving_then_watchdog_pings_then_stopping_on_sigterm() {
    let (_stable, canary, mut setup) = gateways();
    // The slow request below goes to the canary, which nothing else has talked to, so an
    // upstream connection to it means that request is in flight.
    setup.tail = "[routing]\nheader = \"X-Gateway-Version\"\ncanary_values = [\"canary\"]\n".into();
    let sd = Manager::new();
    let notify = sd.path.to_str().unwrap().to_string();
    let mut d = Daemon::spawn(
        &setup,
        &[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", "400000")],
    );

    sd.wait_for("READY=1", Duration::from_secs(20), &mut d);
    d.assert_serving();

    // WatchdogSec=0.4s: a ping every 200 ms; at least two within 2 s, with slack for a
    // loaded machine.
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut pings = 0;
    while pings < 2 {
        match sd.recv(deadline) {
            Some(msg) => pings += usize::from(has_line(&msg, "WATCHDOG=1")),
            None if Instant::now() >= deadline => panic!(
                "{pings} WATCHDOG=1 within 2 s (WATCHDOG_USEC=400000); notifications: {:?}\nlog:\n{}",
                sd.seen.borrow(),
                d.log()
            ),
            None => {}
        }
    }

    // STOPPING=1 when SIGTERM arrives, not when the drain is over: systemd learns at once that
    // the exit to come is a stop, while a slow request is still being served.
    let proxy = d.proxy;
    let slow = std::thread::spawn(move || {
        let mut c = testkit::Client::connect(proxy)?;
        c.set_timeout(Duration::from_secs(30))?;
        c.request(
            "GET",
            "/slow?ms=3000",
            &[("X-Gateway-Version", "canary")],
            b"",
        )
    });
    common::wait_until(
        "the slow request to reach the gateway",
        Duration::from_secs(5),
        || common::connections_to(canary.addr) > 0,
    );
    d.signal(libc::SIGTERM);
    sd.wait_for("STOPPING=1", Duration::from_secs(1), &mut d);
    assert!(
        !slow.is_finished(),
        "STOPPING=1 came only after the drain; it must be sent when SIGTERM arrives"
    );
    let r = slow
        .join()
        .expect("client thread")
        .expect("the in-flight request");
    assert_eq!(r.status, 200);
    assert!(
        d.exits_within(Duration::from_secs(10)),
        "canaryd still running 10 s after SIGTERM; log:\n{}",
        d.log()
    );
}

#[test]
fn sighup_reports_reloading_with_the_monotonic_clock_then_ready() {
    let (_stable, _canary, setup) = gateways();
    let sd = Manager::new();
    let notify = sd.path.to_str().unwrap().to_string();
    let mut d = Daemon::spawn(&setup, &[("NOTIFY_SOCKET", &notify)]);
    sd.wait_for("READY=1", Duration::from_secs(20), &mut d);

    let before = monotonic_usec();
    d.signal(libc::SIGHUP);
    let msg = sd.wait_for("RELOADING=1", Duration::from_secs(10), &mut d);
    let after = monotonic_usec();
    let usec: u64 = msg
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC=: {msg:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("MONOTONIC_USEC in {msg:?}: {e}"));
    assert!(
        before <= usec && usec <= after,
        "MONOTONIC_USEC={usec} is not CLOCK_MONOTONIC between SIGHUP ({before}) and now ({after})"
    );

    sd.wait_for("READY=1", Duration::from_secs(10), &mut d);
    assert!(
        d.child.is_running(),
        "SIGHUP stopped canaryd; log:\n{}",
        d.log()
    );
    d.assert_serving();
}

#[test]
fn no_watchdog_pings_when_the_watchdog_is_for_another_process() {
    let (_stable, _canary, setup) = gateways();
    let sd = Manager::new();
    let notify = sd.path.to_str().unwrap().to_string();
    // $WATCHDOG_PID names the process systemd watches; pid 1 is never our child.
    let mut d = Daemon::spawn(
        &setup,
        &[
            ("NOTIFY_SOCKET", &notify),
            ("WATCHDOG_USEC", "400000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    sd.wait_for("READY=1", Duration::from_secs(20), &mut d);
    let pings = sd.count("WATCHDOG=1", Duration::from_secs(1));
    assert_eq!(
        pings,
        0,
        "WATCHDOG=1 sent although WATCHDOG_PID is not ours; notifications: {:?}",
        sd.seen.borrow()
    );
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `canaryd check --config deploy/canaryd.toml` with the given environment and no other
/// `CANARYD_*` variable.
fn check_deploy_config(env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canaryd"));
    cmd.args(["check", "--config"])
        .arg(repo("deploy/canaryd.toml"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CANARYD_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied())
        .output()
        .expect("run canaryd check")
}

#[test]
fn deploy_config_passes_check() {
    // The file names /etc/canaryd/policies/…; point it at the repository's copy.
    let policy = repo("policies/gateway-migration.toml");
    let out = check_deploy_config(&[("CANARYD_ROLLOUT__POLICY", policy.to_str().unwrap())]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "canaryd check deploy/canaryd.toml failed:\n{stdout}{stderr}"
    );
    assert!(stdout.contains("gateway-migration"), "{stdout}");
}

#[test]
fn deploy_config_takes_the_token_file_from_the_units_environment() {
    // What the unit does: Environment=CANARYD_ADMIN__TOKEN_FILE=%d/admin.token, the
    // credential being a 0400 copy owned by the service's user.
    let dir = TempDir::new("canaryd-sd-token");
    let token = dir.path().join("admin.token");
    fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    let policy = repo("policies/gateway-migration.toml");
    let out = check_deploy_config(&[
        ("CANARYD_ROLLOUT__POLICY", policy.to_str().unwrap()),
        ("CANARYD_ADMIN__TOKEN_FILE", token.to_str().unwrap()),
    ]);
    assert!(
        out.status.success(),
        "canaryd check with CANARYD_ADMIN__TOKEN_FILE failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `key=value` lines of a unit file, in order (a key may repeat).
fn unit_settings(src: &str) -> Vec<(String, String)> {
    src.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn seconds(v: &str) -> u64 {
    v.strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected a duration like \"45s\", found {v:?}"))
}

#[test]
fn deploy_unit_agrees_with_the_deploy_config() {
    let unit = fs::read_to_string(repo("deploy/canaryd.service")).unwrap();
    let settings = unit_settings(&unit);
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        let vs = get(key);
        assert_eq!(
            vs.len(),
            1,
            "{key}= set {} times in deploy/canaryd.service",
            vs.len()
        );
        vs[0]
    };
    let src = fs::read_to_string(repo("deploy/canaryd.toml")).unwrap();
    let cfg = canaryd_config::Config::from_source("deploy/canaryd.toml", &src, false)
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(one("Type"), "notify");
    assert_eq!(one("NotifyAccess"), "main");
    assert_eq!(
        one("ExecStart"),
        "/usr/local/bin/canaryd serve --config /etc/canaryd/canaryd.toml"
    );
    assert_eq!(
        get("ExecReload").last().copied(),
        Some("/bin/kill -HUP $MAINPID")
    );
    // systemd must never SIGKILL a proxy that is still draining.
    let stop = seconds(one("TimeoutStopSec"));
    let grace = cfg.proxy.shutdown_grace.as_secs();
    assert!(
        stop >= grace + 10,
        "TimeoutStopSec={stop}s must exceed shutdown_grace ({grace}s) with room to spare"
    );
    // StateDirectory=canaryd is /var/lib/canaryd, the config's state_dir.
    assert_eq!(
        Path::new("/var/lib").join(one("StateDirectory")),
        cfg.rollout.state_dir
    );
    // The token: a credential, handed over through the env override of admin.token_file.
    let cred = one("LoadCredential");
    let (name, _) = cred.split_once(':').expect("LoadCredential=NAME:PATH");
    assert!(
        get("Environment").contains(&format!("CANARYD_ADMIN__TOKEN_FILE=%d/{name}").as_str()),
        "the unit must point admin.token_file at the credential {name}"
    );
    assert!(cfg.admin.token_file.is_none());
    // The listen port is privileged: the unit must grant exactly that capability.
    assert_eq!(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    assert_eq!(cfg.proxy.listen, ["0.0.0.0:80"]);
}

#[test]
fn deploy_socket_unit_holds_exactly_the_deploy_configs_listeners() {
    let socket = fs::read_to_string(repo("deploy/canaryd.socket")).unwrap();
    let settings = unit_settings(&socket);
    let mut streams: Vec<&str> = settings
        .iter()
        .filter(|(k, _)| k == "ListenStream")
        .map(|(_, v)| v.as_str())
        .collect();
    let src = fs::read_to_string(repo("deploy/canaryd.toml")).unwrap();
    let cfg = canaryd_config::Config::from_source("deploy/canaryd.toml", &src, false)
        .unwrap_or_else(|e| panic!("{e}"));
    // canaryd refuses to start unless the sockets and its listen addresses match both ways.
    let mut listen: Vec<&str> = cfg.proxy.listen.iter().map(String::as_str).collect();
    if let Some(tls) = &cfg.proxy.tls {
        listen.extend(tls.listen.iter().map(String::as_str));
    }
    listen.push(&cfg.admin.listen);
    streams.sort_unstable();
    listen.sort_unstable();
    assert_eq!(
        streams, listen,
        "deploy/canaryd.socket vs deploy/canaryd.toml"
    );
    assert!(settings.contains(&("Accept".into(), "no".into())));
    let service = unit_settings(&fs::read_to_string(repo("deploy/canaryd.service")).unwrap());
    for key in ["Requires", "After"] {
        assert!(
            service.contains(&(key.to_string(), "canaryd.socket".to_string())),
            "deploy/canaryd.service needs {key}=canaryd.socket"
        );
    }
}
