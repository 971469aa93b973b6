//! Zero-downtime restarts, end to end: `canaryd serve --upgrade` under steady traffic (keep-alive
//! and new connections) loses no request, the old process exits, the rollout keeps its step and
//! held time and only one controller acts; a TLS listener is carried the same way (curl); an upgrade with nothing to take over from, or onto a
//! configuration that listens elsewhere, fails clearly and leaves the old process serving, and a
//! new process that dies after the old one stopped its controller gets it running again; under
//! systemd socket activation (the real `systemd-socket-activate`) a restart loses no connection
//! attempt, and sockets that do not match the configuration are a clear error.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{
    binary, free_addr, wait_until, Canaryd, ChildGuard, Client, FakeGateway, Setup, TempDir,
};

/// Step 0 holds 8 s, step 1 an hour: the advance shows whether the held time survived.
const POLICY: &str = r#"
name = "upgrade"
interval = "1s"
[[steps]]
weight = 10
hold = "8s"
[[steps]]
weight = 50
hold = "1h"
[[steps]]
weight = 100
hold = "1h"
[[rules]]
name = "errors"
source = "local"
signal = "error_ratio"
window = "5s"
fail_when = "> 0.5"
on_no_data = "pass"
"#;

/// Requests in a loop until stopped: `keepalive` clients reuse their connection, the others
/// open a new one per request. Every answer other than 200 and every error is recorded.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<u64>>,
    failures: Arc<Mutex<Vec<String>>>,
}

impl Load {
    fn start(addr: SocketAddr, keepalive: usize, fresh: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..keepalive + fresh)
            .map(|i| {
                let (stop, failures) = (stop.clone(), failures.clone());
                let reuse = i < keepalive;
                thread::spawn(move || {
                    let mut done = 0u64;
                    let mut client: Option<Client> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let c = match client.take() {
                            Some(c) if reuse => Ok(c),
                            _ => Client::connect(addr),
                        };
                        let result = c.and_then(|mut c| c.get("/").map(|r| (c, r)));
                        match result {
                            Ok((c, r)) if r.status == 200 => {
                                client = Some(c);
                                done += 1;
                            }
                            Ok((_, r)) => failures.lock().unwrap().push(format!(
                                "status {}: {}",
                                r.status,
                                r.text()
                            )),
                            Err(e) => failures.lock().unwrap().push(e.to_string()),
                        }
                        thread::sleep(Duration::from_millis(1));
                    }
                    done
                })
            })
            .collect();
        Self {
            stop,
            threads,
            failures,
        }
    }

    /// Stops; asserts that no request failed `across` the event and that at least `min` were
    /// answered (`logs` explain a failure).
    fn stop_expecting_no_failure(self, across: &str, min: u64, logs: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let ok: u64 = self.threads.into_iter().map(|t| t.join().unwrap()).sum();
        let failures = self.failures.lock().unwrap().clone();
        assert!(
            failures.is_empty(),
            "{} of {} requests failed across {across}: {:?}\n{logs}",
            failures.len(),
            ok + failures.len() as u64,
            &failures[..failures.len().min(10)],
        );
        assert!(ok >= min, "too little traffic to judge: {ok} requests");
    }
}

/// Requests the process behind the admin listener at `admin` has answered.
fn requests_answered(admin: SocketAddr) -> f64 {
    testkit::get(admin, "/metrics")
        .map(|r| {
            r.text()
                .lines()
                .filter(|l| l.starts_with("canaryd_requests_total{"))
                .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
                .sum()
        })
        .unwrap_or(0.0)
}

/// `canaryd serve --config … [--upgrade]` with its stderr in `log`.
fn spawn_serve(config: &Path, upgrade: bool, log: &Path) -> ChildGuard {
    let log = fs::File::create(log).unwrap();
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--config"]).arg(config);
    if upgrade {
        cmd.arg("--upgrade");
    }
    ChildGuard::new(
        cmd.env("CANARYD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn rollout_setup(stable: &FakeGateway, canary: &FakeGateway, dir: &Path) -> Setup {
    let policy = dir.join("policy.toml");
    fs::write(&policy, POLICY).unwrap();
    let mut setup = Setup::new(stable, canary, 0.0);
    setup.rollout = format!("policy = \"{}\"\nautostart = true\n", policy.display());
    setup
}

fn f(v: &serde_json::Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(-1.0)
}

#[test]
fn upgrade_under_traffic_fails_no_request_and_the_rollout_continues() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let files = TempDir::new("canaryd-upgrade");
    let mut old = Canaryd::start(&rollout_setup(&stable, &canary, files.path()));
    let load = Load::start(old.proxy, 4, 2);

    // Mid-step: 4 of its 8 s held.
    let before = old.wait_status("4 s held on step 0", Duration::from_secs(20), |s| {
        s["state"] == "progressing" && s["step"] == 0 && f(s, "step_held_s") >= 4.0
    });
    let new_log = old.dir.path().join("new.log");
    let mut new = spawn_serve(&old.config, true, &new_log);
    let upgraded = Instant::now();
    let exited = old.wait_exit(Duration::from_secs(10));
    let new_text = || fs::read_to_string(&new_log).unwrap_or_default();
    assert!(
        exited.is_some(),
        "the old process did not exit; old log:\n{}\nnew log:\n{}",
        old.log(),
        new_text()
    );
    assert!(
        new.is_running(),
        "the new process is gone; log:\n{}",
        new_text()
    );

    // The rollout is where it was: same step, held time kept (not restarted from 0).
    let after = old.status();
    assert_eq!(after["state"], "progressing", "{after}");
    assert_eq!(after["step"], 0, "{after}");
    assert!(
        f(&after, "step_held_s") >= f(&before, "step_held_s"),
        "held time went back: {} before, {} after",
        before["step_held_s"],
        after["step_held_s"]
    );
    // Held time kept: the step ends about 4 s later, not 8 s.
    old.wait_status("the advance to step 1", Duration::from_secs(15), |s| {
        s["step"] == 1
    });
    assert!(
        upgraded.elapsed() < Duration::from_millis(7500),
        "step 0 ended {:?} after the upgrade: its held time was lost",
        upgraded.elapsed()
    );

    // The new process serves the load, then count.
    wait_until(
        "the new process to answer 100 requests",
        Duration::from_secs(10),
        || requests_answered(old.admin) >= 100.0,
    );
    load.stop_expecting_no_failure(
        "the upgrade",
        200,
        &format!("old log:\n{}\nnew log:\n{}", old.log(), new_text()),
    );

    // One controller at a time: the old one stopped (state on disk) before the new one ran,
    // and each transition is in the decision log once.
    let old_log = old.log();
    let stopped = old_log
        .lines()
        .find(|l| l.contains("controller stopped and state persisted"))
        .unwrap_or_else(|| panic!("old log:\n{old_log}"));
    let running = new_text()
        .lines()
        .find(|l| l.contains("running the controller"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("new log:\n{}", new_text()));
    // RFC 3339 timestamps at the start of each line sort as strings.
    assert!(stopped[..27] < running[..27], "{stopped}\n{running}");
    let decisions = old.decisions();
    let count = |a: &str| decisions.iter().filter(|d| d["action"] == a).count();
    assert_eq!((count("start"), count("advance")), (1, 1), "{decisions:#?}");

    // The admin listener moved too: the CLI reaches the new process at the same address.
    assert_eq!(old.status()["step"], 1);
    new.kill();
}

#[test]
fn upgrade_without_a_running_canaryd_fails_clearly() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let dir = TempDir::new("canaryd-upgrade");
    let (proxy, admin) = (free_addr(), free_addr());
    let config = dir.path().join("canaryd.toml");
    fs::write(
        &config,
        Setup::new(&stable, &canary, 0.0).render(proxy, admin, dir.path()),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["serve", "--upgrade", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let socket = dir.path().join("upgrade.sock");
    assert!(
        err.contains(&socket.display().to_string())
            && err.contains("no running canaryd to upgrade from")
            && err.contains("without --upgrade"),
        "{err}"
    );
    // Nothing was bound.
    assert!(std::net::TcpListener::bind(proxy).is_ok());
}

#[test]
fn an_upgrade_onto_other_listen_addresses_is_refused_and_the_old_process_serves_on() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let files = TempDir::new("canaryd-upgrade");
    let mut old = Canaryd::start(&rollout_setup(&stable, &canary, files.path()));
    old.wait_status("progressing", Duration::from_secs(10), |s| {
        s["state"] == "progressing"
    });
    let elsewhere = free_addr();
    let moved = old.dir.path().join("moved.toml");
    let text = fs::read_to_string(&old.config).unwrap().replace(
        &format!("listen = [\"{}\"]", old.proxy),
        &format!("listen = [\"{elsewhere}\"]"),
    );
    fs::write(&moved, text).unwrap();
    let out = Command::new(binary())
        .args(["serve", "--upgrade", "--config"])
        .arg(&moved)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "proxy.listen: the running canaryd (pid {})",
            old.pid()
        )) && err.contains(&format!("no socket for {elsewhere}"))
            && err.contains(&old.proxy.to_string())
            && err.contains("the running canaryd serves on"),
        "{err}"
    );
    // The old process still serves, its controller still acts, and it can still be upgraded.
    assert!(old.is_running());
    assert_eq!(old.client().get("/").unwrap().status, 200);
    let held = f(&old.status(), "step_held_s");
    old.wait_status("the held time to grow", Duration::from_secs(5), |s| {
        f(s, "step_held_s") > held
    });
    assert!(
        old.log().contains("upgrade abandoned by the new process"),
        "{}",
        old.log()
    );
}

#[test]
fn upgrade_carries_the_tls_listener() {
    let dir = TempDir::new("canaryd-upgrade-tls");
    let pki = crate::tls::pki::Pki::new(dir.path());
    let leaf = pki.issue("a", &["a.test"]);
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let tls = free_addr();
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.tail = crate::tls::pki::section(tls, &[&leaf]);
    let mut old = Canaryd::start(&setup);
    testkit::wait_for_port(tls, Duration::from_secs(10));

    // curl in a loop: a new TLS handshake per request, verified against the test CA.
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let curl = {
        let (stop, answered) = (stop.clone(), answered.clone());
        let ca = pki.ca.clone();
        thread::spawn(move || {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let out = Command::new("curl")
                    .args([
                        "-sS",
                        "--max-time",
                        "10",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                    ])
                    .arg("--cacert")
                    .arg(&ca)
                    .args(["--resolve", &format!("a.test:{}:127.0.0.1", tls.port())])
                    .arg(format!("https://a.test:{}/", tls.port()))
                    .output()
                    .expect("curl is installed");
                let code = String::from_utf8_lossy(&out.stdout).into_owned();
                if out.status.success() && code == "200" {
                    answered.fetch_add(1, Ordering::Relaxed);
                } else {
                    failures.push(format!("{code} {}", String::from_utf8_lossy(&out.stderr)));
                }
            }
            failures
        })
    };
    let at_least = |n: u64| {
        wait_until("curl answers", Duration::from_secs(20), || {
            answered.load(Ordering::Relaxed) >= n
        })
    };
    at_least(5);
    let new_log = old.dir.path().join("new.log");
    let mut new = spawn_serve(&old.config, true, &new_log);
    let new_text = || fs::read_to_string(&new_log).unwrap_or_default();
    assert!(
        old.wait_exit(Duration::from_secs(10)).is_some(),
        "the old process did not exit; new log:\n{}",
        new_text()
    );
    // The plain, the TLS and the admin listener changed hands.
    assert!(new_text().contains("sockets=3"), "{}", new_text());
    at_least(answered.load(Ordering::Relaxed) + 5);
    stop.store(true, Ordering::Relaxed);
    let failures = curl.join().unwrap();
    assert!(
        failures.is_empty(),
        "{failures:?}\nold log:\n{}\nnew log:\n{}",
        old.log(),
        new_text()
    );
    new.kill();
}

#[test]
fn a_new_process_dying_after_the_controller_stopped_leaves_the_old_one_acting() {
    use socket2::{Domain, SockAddr, Socket, Type};
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let files = TempDir::new("canaryd-upgrade");
    let old = Canaryd::start(&rollout_setup(&stable, &canary, files.path()));
    old.wait_status("1 s held", Duration::from_secs(10), |s| {
        f(s, "step_held_s") >= 1.0
    });

    // This test speaks the new process's side of the upgrade socket, up to `stopped`.
    let conn = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    conn.connect(&SockAddr::unix(old.dir.path().join("upgrade.sock")).unwrap())
        .unwrap();
    let recv = |conn: &Socket| {
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let n = conn.recv(&mut buf).unwrap();
        // SAFETY: recv initialised the first n bytes.
        let bytes: Vec<u8> = buf[..n]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        String::from_utf8(bytes).unwrap()
    };
    conn.send(format!("hello {}", std::process::id()).as_bytes())
        .unwrap();
    let manifest = recv(&conn);
    assert!(
        manifest.starts_with(&format!("listeners {}\n", old.pid()))
            && manifest.contains(&format!("proxy.listen {}", old.proxy))
            && manifest.contains(&format!("admin.listen {}", old.admin)),
        "{manifest}"
    );
    conn.send(b"take").unwrap();
    assert_eq!(recv(&conn), "stopped");
    // No controller now, but the proxy serves on.
    assert_eq!(old.client().get("/").unwrap().status, 200);
    let held = fs::read_to_string(old.dir.path().join("state.json")).unwrap();
    assert!(held.contains("\"held_ms\""), "{held}");

    // The "new process" dies: the old one runs its controller and admin listener again.
    drop(conn);
    let before = f(&old.status(), "step_held_s");
    old.wait_status(
        "the held time to grow again",
        Duration::from_secs(10),
        |s| f(s, "step_held_s") > before + 1.0,
    );
    assert!(
        old.log()
            .contains("resuming the controller and admin listener"),
        "{}",
        old.log()
    );
}

/// `systemd-socket-activate` and everything it started, in a process group of their own: on
/// drop the whole group is killed, so the canaryd running at the end of a test does not
/// outlive it (killing the activator alone would leave that canaryd to init, still serving).
struct ActivatedGroup(ChildGuard);

impl Drop for ActivatedGroup {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test created (its leader's pid).
        unsafe {
            libc::kill(-(self.0.pid() as i32), libc::SIGKILL);
        }
        self.0.kill();
    }
}

/// `systemd-socket-activate` holding the proxy and admin sockets, running canaryd again each
/// time it exits (as systemd's `Restart=` with a socket unit does).
fn socket_activated(
    proxy: SocketAddr,
    admin: SocketAddr,
    config: &Path,
    log: &Path,
) -> Option<ActivatedGroup> {
    if Command::new("systemd-socket-activate")
        .arg("--help")
        .output()
        .is_err()
    {
        testkit::tool_missing("systemd-socket-activate");
        return None;
    }
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    // The inner shell sets LISTEN_PID to its own pid and becomes canaryd.
    let script = format!(
        "while :; do sh -c 'export LISTEN_PID=$$; exec \"{}\" serve --config \"{}\"'; sleep 0.05; done",
        binary().display(),
        config.display()
    );
    Some(ActivatedGroup(ChildGuard::new(
        Command::new("systemd-socket-activate")
            .args([
                "-l",
                &proxy.to_string(),
                "-l",
                &admin.to_string(),
                "sh",
                "-c",
                &script,
            ])
            .env("CANARYD_LOG", "info")
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )))
}

/// The pids of `canaryd serve` processes on `config`.
fn serving(config: &Path) -> Vec<u32> {
    let needle = config.display().to_string();
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("serve") && c.contains(&needle) && !c.contains("while")
            })
        })
        .collect()
}

#[test]
fn restart_under_socket_activation_loses_no_connection() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let files = TempDir::new("canaryd-upgrade");
    let dir = TempDir::new("canaryd-e2e");
    let (proxy, admin) = (free_addr(), free_addr());
    let config = dir.path().join("canaryd.toml");
    let setup = rollout_setup(&stable, &canary, files.path());
    fs::write(&config, setup.render(proxy, admin, dir.path())).unwrap();
    let log = dir.path().join("canaryd.log");
    let Some(_activate) = socket_activated(proxy, admin, &config, &log) else {
        return;
    };
    let text = || fs::read_to_string(&log).unwrap_or_default();
    wait_until(
        "the socket-activated canaryd to serve",
        Duration::from_secs(20),
        || testkit::get(admin, "/ready").is_ok_and(|r| r.status == 200),
    );
    assert!(text().contains("from=systemd (LISTEN_FDS)"), "{}", text());
    let load = Load::start(proxy, 2, 4);
    let status = |what| {
        testkit::get(admin, "/api/v1/status")
            .unwrap_or_else(|e| panic!("{what}: {e}; log:\n{}", text()))
            .json()
    };
    wait_until("2 s held", Duration::from_secs(10), || {
        f(&status("before"), "step_held_s") >= 2.0
    });

    for round in 0..2 {
        let pids = serving(&config);
        assert_eq!(pids.len(), 1, "round {round}: {pids:?}");
        // SAFETY: kill(2) on a canaryd this test started (through the activating shell).
        unsafe {
            libc::kill(pids[0] as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(serving(&config).first().is_some_and(|p| *p != pids[0])
            && testkit::get(admin, "/ready").is_ok_and(|r| r.status == 200))
        {
            assert!(
                Instant::now() < deadline,
                "round {round}: no next canaryd serving within 20 s (serving: {:?}, was {}); log:\n{}",
                serving(&config),
                pids[0],
                text()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
    wait_until(
        "the last canaryd to answer 50 requests",
        Duration::from_secs(10),
        || requests_answered(admin) >= 50.0,
    );
    load.stop_expecting_no_failure("two restarts", 100, &format!("log:\n{}", text()));
    let s = status("after");
    assert_eq!(
        (s["state"].as_str(), s["step"].as_u64()),
        (Some("progressing"), Some(0)),
        "{s}"
    );
    assert!(f(&s, "step_held_s") >= 2.0, "{s}");
}

#[test]
fn socket_activation_on_other_addresses_is_a_clear_error() {
    if Command::new("systemd-socket-activate")
        .arg("--help")
        .output()
        .is_err()
    {
        testkit::tool_missing("systemd-socket-activate");
        return;
    }
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let dir = TempDir::new("canaryd-e2e");
    let (proxy, admin, other) = (free_addr(), free_addr(), free_addr());
    let config = dir.path().join("canaryd.toml");
    fs::write(
        &config,
        Setup::new(&stable, &canary, 0.0).render(proxy, admin, dir.path()),
    )
    .unwrap();
    let log = dir.path().join("canaryd.log");
    let mut activate = ChildGuard::new(
        Command::new("systemd-socket-activate")
            .args(["-l", &admin.to_string(), "-l", &other.to_string()])
            .arg(binary())
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // It runs canaryd on the first connection.
    wait_until("the activating connection", Duration::from_secs(5), || {
        std::net::TcpStream::connect(admin).is_ok()
    });
    wait_until("canaryd to exit", Duration::from_secs(10), || {
        !activate.is_running()
    });
    let status = activate.child_mut().wait().unwrap();
    let out = std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: fs::read(&log).unwrap(),
    };
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "proxy.listen: systemd (LISTEN_FDS) hands over no socket for {proxy} (it hands over {other})"
        )),
        "{err}"
    );
}
