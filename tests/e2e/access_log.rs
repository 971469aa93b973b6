//! The access log (`[proxy.access_log]`) of the running binary: a mixed load (GET/POST,
//! 200/201/404/502, keep-alive and not, HTTP/1.0, a server-sent-events stream) logs every
//! request exactly once; `combined` lines equal those of a real nginx in front of the same
//! gateway, field by field (except time); `json` lines parse; SIGUSR1 after a rename loses no
//! line under load; a full disk drops lines, counted, while requests keep flowing; SIGTERM
//! writes the lines still buffered.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{free_addr, wait_until, Canaryd, ChildGuard, FakeGateway, Setup, TempDir};

/// Requests of the mixed load, each with a unique `i=N` in its query.
const MIXED: usize = 48;

/// Sends the mixed load to `addr`; every request carries `?i=N`, N from 1 to [`MIXED`].
fn mixed_load(addr: SocketAddr) {
    let mut c = testkit::Client::connect(addr).expect("connect");
    let ok = |r: std::io::Result<testkit::Response>, want: u16| {
        let r = r.expect("request");
        assert_eq!(r.status, want, "body: {}", r.text());
    };
    ok(
        c.request(
            "GET",
            "/status/200?i=1",
            &[
                ("User-Agent", "load/1.0 \"quoted\" back\\slash"),
                ("Referer", "http://ref.example/a?b=c"),
            ],
            b"",
        ),
        200,
    );
    ok(c.request("POST", "/upload?i=2", &[], &[b'x'; 1000]), 200);
    ok(c.request("GET", "/status/404?i=3", &[], b""), 404);
    ok(c.request("GET", "/status/502?i=4", &[], b""), 502);
    // alice:secret
    ok(
        c.request(
            "GET",
            "/?i=5",
            &[("Authorization", "Basic YWxpY2U6c2VjcmV0")],
            b"",
        ),
        200,
    );
    ok(
        c.request("GET", "/status/200?i=6", &[("X-Request-Id", "rid-6")], b""),
        200,
    );
    // Not kept alive: Connection: close, a byte that is not ASCII, HTTP/1.0, a POST.
    raw(
        addr,
        b"GET /status/200?i=7 HTTP/1.1\r\nHost: x\r\nUser-Agent: caf\xe9 \"x\"\r\nConnection: close\r\n\r\n",
    );
    raw(addr, b"GET /status/201?i=8 HTTP/1.0\r\nHost: x\r\n\r\n");
    raw(
        addr,
        b"POST /upload?i=9 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    // A stream, logged when it ends.
    let mut s = c
        .stream("GET", "/api/stream?hold_ms=300&i=10", &[], b"")
        .expect("stream");
    assert_eq!(s.status, 200);
    while s.next_chunk().expect("stream body").is_some() {}
    for i in 11..=MIXED {
        let path = format!("/status/{}?i={i}", if i % 5 == 0 { 404 } else { 200 });
        let want = if i % 5 == 0 { 404 } else { 200 };
        ok(c.request("GET", &path, &[], b""), want);
    }
}

/// One request on its own connection, read to the end.
fn raw(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    assert!(out.starts_with(b"HTTP/1."), "answer: {out:?}");
    out
}

/// The `i=N` of a logged request (line text as logged).
fn index_of(line: &str) -> usize {
    let at = line
        .find("i=")
        .unwrap_or_else(|| panic!("no i= in {line:?}"));
    line[at + 2..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("bad i= in {line:?}"))
}

/// A combined line's fields: addr, user, time, request, status, bytes, referer, agent.
fn combined_fields(line: &str) -> [String; 8] {
    // Escaped values hold no raw `"`, so the quotes delimit the fields.
    let parts: Vec<&str> = line.split('"').collect();
    assert_eq!(parts.len(), 7, "not a combined line: {line:?}");
    let head: Vec<&str> = parts[0].splitn(4, ' ').collect();
    let (open, close) = (parts[0].find('[').unwrap(), parts[0].find(']').unwrap());
    let status_bytes: Vec<&str> = parts[2].split_whitespace().collect();
    assert_eq!(head[1], "-", "{line:?}");
    [
        head[0].to_string(),
        head[2].to_string(),
        parts[0][open + 1..close].to_string(),
        parts[1].to_string(),
        status_bytes[0].to_string(),
        status_bytes[1].to_string(),
        parts[3].to_string(),
        parts[5].to_string(),
    ]
}

/// Lines of `path` (complete lines only), as text with escapes kept.
fn lines(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8(bytes)
        .expect("log lines are ASCII or escaped")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits until `path` holds `n` lines, and no more arrive.
fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    wait_until(
        &format!("{n} lines in {}", path.display()),
        Duration::from_secs(10),
        || lines(path).len() >= n,
    );
    let got = lines(path);
    assert_eq!(got.len(), n, "more lines than requests: {got:#?}");
    got
}

/// canaryd (0 % canary) with its access log at `file` in a fresh directory. Bind every field:
/// the gateways and the directory live as long as their binding.
struct Logged {
    stable: FakeGateway,
    _canary: FakeGateway,
    dir: TempDir,
    log: PathBuf,
    d: Canaryd,
}

impl Logged {
    fn start(file: &str, format: &str) -> Self {
        Self::start_at(
            TempDir::new("canaryd-accesslog"),
            |dir| dir.join(file),
            format,
        )
    }

    fn start_at(dir: TempDir, path: impl FnOnce(&Path) -> PathBuf, format: &str) -> Self {
        let stable = FakeGateway::spawn("stable", &[]);
        let canary = FakeGateway::spawn("canary", &[]);
        let log = path(dir.path());
        let mut setup = Setup::new(&stable, &canary, 0.0);
        setup.tail = format!(
            "[proxy.access_log]\npath = \"{}\"\nformat = \"{format}\"\n[[proxy.routes]]\nprefix = \"/api/stream\"\n",
            log.display()
        );
        let d = Canaryd::start(&setup);
        Self {
            stable,
            _canary: canary,
            dir,
            log,
            d,
        }
    }
}

/// nginx in front of `upstream` with `access_log <log> combined`; killed when dropped.
fn nginx_front(dir: &Path, upstream: SocketAddr, log: &Path) -> Option<(ChildGuard, SocketAddr)> {
    if Command::new("nginx").arg("-v").output().is_err() {
        testkit::tool_missing("nginx");
        return None;
    }
    let listen = free_addr();
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    let conf = format!(
        "{user}\nworker_processes 1;\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log {log} combined;\n\
           client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           upstream gw {{ server {upstream}; keepalive 8; }}\n\
           server {{ listen {listen};\n\
             location / {{ proxy_pass http://gw; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_buffering off; }}\n\
           }}\n}}\n",
        d = dir.display(),
        log = log.display(),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    // One process (`master_process off`): killing it at the end of the test leaves no worker
    // behind (a killed master leaves its worker to init, still running).
    let child = Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let guard = ChildGuard::new(child);
    testkit::wait_for_port(listen, Duration::from_secs(10));
    Some((guard, listen))
}

#[test]
fn combined_lines_equal_nginx_for_a_mixed_load() {
    let Logged {
        stable,
        _canary,
        dir,
        log,
        d,
    } = Logged::start("access.log", "combined");
    mixed_load(d.proxy);
    let ours = wait_lines(&log, MIXED);

    let ngx_log = dir.path().join("nginx-access.log");
    let Some((_nginx, ngx)) = nginx_front(dir.path(), stable.addr, &ngx_log) else {
        return;
    };
    mixed_load(ngx);
    let theirs = wait_lines(&ngx_log, MIXED);

    let by_index = |lines: &[String]| -> BTreeMap<usize, [String; 8]> {
        let mut m = BTreeMap::new();
        for l in lines {
            assert!(
                m.insert(index_of(l), combined_fields(l)).is_none(),
                "request logged twice: {l}"
            );
        }
        m
    };
    let (ours, theirs) = (by_index(&ours), by_index(&theirs));
    assert_eq!(ours.len(), MIXED, "every request once");
    for (i, o) in &ours {
        let t = &theirs[i];
        // The time: same format (nginx's $time_local), not the same second.
        assert_eq!(
            o[2].len(),
            t[2].len(),
            "time format: {:?} vs nginx {:?}",
            o[2],
            t[2]
        );
        assert_eq!(&o[2][2..3], "/");
        for (f, name) in [
            (0, "remote_addr"),
            (1, "remote_user"),
            (3, "request"),
            (4, "status"),
            (6, "http_referer"),
            (7, "http_user_agent"),
        ] {
            assert_eq!(o[f], t[f], "request {i}: {name} differs from nginx's");
        }
        // A stream's body is chunked; nginx counts the chunk framing in $body_bytes_sent,
        // canaryd the payload (docs/configuration.md).
        if *i != 10 {
            assert_eq!(
                o[5], t[5],
                "request {i}: body_bytes_sent differs from nginx's"
            );
        }
    }
    assert_eq!(ours[&5][1], "alice");
    assert_eq!(ours[&7][7], "caf\\xE9 \\x22x\\x22");
    assert!(ours[&8][3].ends_with("HTTP/1.0"));
    assert_eq!(d.metric("canaryd_access_log_lines_total"), MIXED as f64);
    assert_eq!(
        d.metric("canaryd_access_log_dropped_total{reason=\"queue\"}")
            + d.metric("canaryd_access_log_dropped_total{reason=\"write\"}"),
        0.0
    );
}

#[test]
fn json_lines_parse_for_a_mixed_load() {
    let Logged {
        stable,
        _canary,
        dir: _dir,
        log,
        d,
    } = Logged::start("access.json", "json");
    mixed_load(d.proxy);
    let mut seen = HashMap::new();
    for line in wait_lines(&log, MIXED) {
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let path = v["path"].as_str().unwrap();
        let i = index_of(path);
        assert!(seen.insert(i, v.clone()).is_none(), "logged twice: {line}");
        assert_eq!(v["client"], "127.0.0.1");
        assert_eq!(v["variant"], "stable");
        assert_eq!(v["upstream"], stable.addr.to_string());
        assert!(v["duration"].as_f64().unwrap() >= v["upstream_time"].as_f64().unwrap());
        let t = v["time"].as_str().unwrap();
        assert_eq!((t.len(), &t[10..11]), (25, "T"), "{t}");
    }
    assert_eq!(seen.len(), MIXED);
    assert_eq!(seen[&2]["method"], "POST");
    assert_eq!(seen[&3]["status"], 404);
    assert_eq!(seen[&4]["status"], 502);
    assert_eq!(seen[&6]["request_id"], "rid-6");
    // Without the client's own id, canaryd's (also forwarded as X-Request-Id).
    let generated = seen[&1]["request_id"].as_str().unwrap_or_default();
    assert!(
        generated.len() == 32 && generated.bytes().all(|b| b.is_ascii_hexdigit()),
        "{generated}"
    );
    assert_eq!(seen[&8]["status"], 201);
    assert_eq!(seen[&10]["route"], "/api/stream");
    assert!(
        seen[&10]["duration"].as_f64().unwrap() >= 0.3,
        "a stream is logged when it ends: {}",
        seen[&10]
    );
    assert_eq!(seen[&1]["route"], "default");
    assert_eq!(seen[&1]["bytes"], "status 200\n".len());
}

#[test]
fn canaryds_own_answers_are_logged() {
    // Nothing listens on either pool: canaryd answers 502 itself.
    let dir = TempDir::new("canaryd-accesslog");
    let log = dir.path().join("access.json");
    let setup = Setup {
        stable: vec![free_addr()],
        canary: vec![free_addr()],
        tail: format!(
            "[proxy.access_log]\npath = \"{}\"\nformat = \"json\"\n",
            log.display()
        ),
        ..Setup::default()
    };
    let d = Canaryd::start(&setup);
    for _ in 0..3 {
        let r = d.client().get("/down").unwrap();
        assert_eq!(r.status, 502);
    }
    for line in wait_lines(&log, 3) {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (v["status"].as_u64(), v["path"].as_str()),
            (Some(502), Some("/down"))
        );
    }
}

/// Keep-alive GETs of `/status/200?i=N` for N in `range`, panicking on anything but 200.
fn load(addr: SocketAddr, range: std::ops::Range<usize>) {
    let mut c = testkit::Client::connect(addr).expect("connect");
    for i in range {
        let r = c.get(&format!("/status/200?i={i}")).expect("request");
        assert_eq!(r.status, 200);
    }
}

#[test]
fn sigusr1_reopens_under_load_without_losing_a_line() {
    let Logged {
        stable: _stable,
        _canary,
        dir,
        log,
        d,
    } = Logged::start("access.log", "combined");
    let rotated = dir.path().join("access.log.1");
    const PER: usize = 3000;
    let loaders: Vec<_> = (0..2)
        .map(|t| {
            let addr = d.proxy;
            std::thread::spawn(move || load(addr, t * PER..(t + 1) * PER))
        })
        .collect();
    wait_until("lines before the rotation", Duration::from_secs(10), || {
        lines(&log).len() > 200
    });
    std::fs::rename(&log, &rotated).unwrap();
    d.signal(libc::SIGUSR1);
    wait_until("the reopened file", Duration::from_secs(5), || log.exists());
    for l in loaders {
        l.join().expect("load");
    }
    wait_until("every line", Duration::from_secs(10), || {
        lines(&rotated).len() + lines(&log).len() >= 2 * PER
    });
    let (old, new) = (lines(&rotated), lines(&log));
    assert!(!new.is_empty(), "nothing written after the reopen");
    let mut seen = vec![0u8; 2 * PER];
    for l in old.iter().chain(&new) {
        seen[index_of(l)] += 1;
    }
    let wrong: Vec<_> = seen.iter().enumerate().filter(|(_, n)| **n != 1).collect();
    assert!(
        wrong.is_empty(),
        "requests not logged exactly once: {wrong:?}"
    );
    assert_eq!(d.metric("canaryd_access_log_reopens_total"), 1.0);
    assert!(d.log().contains("access log reopened"));
}

/// A directory on a 64 KiB tmpfs, unmounted when dropped; `None` where mounting is not
/// permitted.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path) -> Option<Self> {
        let at = dir.join("small");
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(at))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_drops_lines_and_requests_keep_flowing() {
    // A 64 KiB tmpfs that fills up; where mount is not permitted, a path to /dev/full (every
    // write fails with ENOSPC). Dropped in reverse: canaryd, the mount, its directory.
    let disk_dir = TempDir::new("canaryd-smalldisk");
    let disk = SmallDisk::mount(disk_dir.path());
    let at = disk.as_ref().map(|d| d.0.join("access.log"));
    let Logged {
        stable: _stable,
        _canary,
        dir: _dir,
        log,
        d,
    } = Logged::start_at(
        TempDir::new("canaryd-accesslog"),
        |dir| {
            at.unwrap_or_else(|| {
                eprintln!("mount -t tmpfs not permitted: the log goes to /dev/full instead");
                let link = dir.join("full.log");
                std::os::unix::fs::symlink("/dev/full", &link).unwrap();
                link
            })
        },
        "combined",
    );
    const N: usize = 4000;
    let started = std::time::Instant::now();
    let loaders: Vec<_> = (0..2)
        .map(|t| {
            let addr = d.proxy;
            std::thread::spawn(move || load(addr, t * N / 2..(t + 1) * N / 2))
        })
        .collect();
    for l in loaders {
        l.join().expect("every request answered 200");
    }
    let took = started.elapsed();
    let dropped = "canaryd_access_log_dropped_total{reason=\"write\"}";
    wait_until(
        "every line written or dropped",
        Duration::from_secs(10),
        || {
            let m = d.metrics();
            let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
            get("canaryd_access_log_lines_total")
                + get(dropped)
                + get("canaryd_access_log_dropped_total{reason=\"queue\"}")
                == N as f64
        },
    );
    assert!(d.metric(dropped) > 0.0, "nothing counted as dropped");
    assert!(d.log().contains("access log write failed"), "{}", d.log());
    assert!(took < Duration::from_secs(60), "{N} requests took {took:?}");
    // Written lines are whole lines: a line the disk cut short is truncated away.
    if disk.is_some() {
        let bytes = std::fs::read(&log).unwrap();
        assert_eq!(bytes.last(), Some(&b'\n'), "the file ends inside a line");
        let written = lines(&log);
        assert_eq!(
            written.len() as f64,
            d.metric("canaryd_access_log_lines_total")
        );
        for l in &written {
            combined_fields(l);
        }
    }
}

#[test]
fn sigterm_writes_the_buffered_lines() {
    let Logged {
        stable: _stable,
        _canary,
        dir: _dir,
        log,
        mut d,
    } = Logged::start("access.log", "combined");
    load(d.proxy, 0..50);
    // Within the second the workers hold their lines.
    d.signal(libc::SIGTERM);
    assert!(
        d.wait_exit(Duration::from_secs(10)).is_some(),
        "did not stop"
    );
    let got = lines(&log);
    assert_eq!(got.len(), 50, "lines lost at SIGTERM: {}", got.len());
}
