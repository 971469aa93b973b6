//! TLS termination with real clients: SNI picks the certificate (the first is the default),
//! ALPN gives HTTP/2 to curl and h2load, only TLS 1.2 and 1.3 are offered (openssl s_client),
//! `X-Forwarded-Proto: https` reaches the gateway, SSE streams over h2, the plain listener's
//! https redirect keeps ACME challenges, and a certificate renewed on SIGHUP is served to new
//! handshakes while an open keep-alive connection goes on working; a broken renewal keeps the
//! old certificates and says which file and why. An `https://` upstream is verified with the
//! pool's `ca_file`, and testssl.sh finds no old protocol and no weak cipher.

pub(crate) mod pki;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::common::{binary, free_addr, wait_until, Canaryd, FakeGateway, Setup, TempDir};
use pki::{der_of, section, Pki, TlsConn};

/// canaryd with a plain and a TLS listener serving `leaves`; `proxy` adds `[proxy]` lines.
fn start(pki: &Pki, leaves: &[&pki::Leaf], proxy: &str) -> (Canaryd, SocketAddr, FakeGateway) {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let tls = free_addr();
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.proxy = proxy.to_string();
    setup.tail = format!(
        "{}\n[[proxy.routes]]\nprefix = \"/api/stream\"\nread_timeout = \"3600s\"\n",
        section(tls, leaves)
    );
    let d = Canaryd::start(&setup);
    testkit::wait_for_port(tls, Duration::from_secs(10));
    let _ = pki;
    (d, tls, stable)
}

fn curl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `openssl s_client` with `args`; its whole output (the handshake summary) and success.
fn s_client(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("-----BEGIN CERTIFICATE-----"),
        text,
    )
}

fn check(config: &std::path::Path) -> std::process::Output {
    Command::new(binary())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("canaryd runs")
}

fn resolve(name: &str, addr: SocketAddr) -> String {
    format!("{name}:{}:127.0.0.1", addr.port())
}

#[test]
fn sni_alpn_protocols_and_forwarded_proto() {
    let dir = TempDir::new("canaryd-tls");
    let pki = Pki::new(dir.path());
    let a = pki.issue("a", &["a.test", "www.a.test"]);
    let b = pki.issue("b", &["*.b.test"]);
    let (d, tls, _gw) = start(&pki, &[&a, &b], "");
    let ca = pki.ca.to_str().unwrap();

    // HTTP/2 over ALPN, the right certificate per name (curl verifies it against the CA).
    for (name, url_name) in [
        ("a.test", "a.test"),
        ("www.a.test", "www.a.test"),
        ("x.b.test", "x.b.test"),
    ] {
        let url = format!("https://{url_name}:{}/echo?q=1", tls.port());
        let (ok, out, err) = curl(&[
            "--http2",
            "--cacert",
            ca,
            "--resolve",
            &resolve(name, tls),
            "-w",
            "\n%{http_version} %{http_code}",
            &url,
        ]);
        assert!(ok, "curl {url}: {err}\nlog:\n{}", d.log());
        let (body, tail) = out.rsplit_once('\n').unwrap();
        assert_eq!(tail, "2 200", "{url}: {out}");
        let echo: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https", "{body}");
        assert_eq!(echo["headers"]["x-forwarded-for"][0], "127.0.0.1", "{body}");
        assert_eq!(echo["path"], "/echo?q=1", "{body}");
    }
    // HTTP/1.1 over TLS: the same loop, the same headers.
    let (ok, out, err) = curl(&[
        "--http1.1",
        "--cacert",
        ca,
        "--resolve",
        &resolve("a.test", tls),
        "-H",
        "Host: a.test",
        &format!("https://a.test:{}/echo", tls.port()),
    ]);
    assert!(ok, "{err}");
    let echo: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
    assert_eq!(echo["headers"]["host"][0], "a.test");
    // The plain listener still says http.
    let r = d.client().get("/echo").unwrap();
    assert_eq!(r.json()["headers"]["x-forwarded-proto"][0], "http");

    // SNI: an unknown name and no SNI at all get the first certificate.
    let cfg = pki.client(&[b"http/1.1"]);
    assert_eq!(
        TlsConn::connect(cfg.clone(), tls, "z.b.test").peer_cert(),
        der_of(&b.cert)
    );
    assert_eq!(
        TlsConn::connect(cfg.clone(), tls, "www.a.test").peer_cert(),
        der_of(&a.cert)
    );
    let (ok, out) = s_client(tls, &["-noservername"]);
    assert!(
        ok && (out.contains("CN=a.test") || out.contains("CN = a.test")),
        "{out}"
    );
    let (ok, out) = s_client(tls, &["-servername", "other.test"]);
    assert!(
        ok && (out.contains("CN=a.test") || out.contains("CN = a.test")),
        "{out}"
    );
    let (ok, out) = s_client(tls, &["-servername", "y.b.test"]);
    assert!(
        ok && (out.contains("CN=*.b.test") || out.contains("CN = *.b.test")),
        "{out}"
    );

    // ALPN and the protocol floor.
    let (ok, out) = s_client(tls, &["-servername", "a.test", "-alpn", "h2,http/1.1"]);
    assert!(ok && out.contains("ALPN protocol: h2"), "{out}");
    let (ok, out) = s_client(tls, &["-servername", "a.test", "-alpn", "http/1.1"]);
    assert!(ok && out.contains("ALPN protocol: http/1.1"), "{out}");
    let (ok, out) = s_client(tls, &["-servername", "a.test", "-tls1_2"]);
    assert!(ok && out.contains("TLSv1.2"), "{out}");
    let (ok, out) = s_client(tls, &["-servername", "a.test", "-tls1_3"]);
    assert!(ok && out.contains("TLSv1.3"), "{out}");
    for old in ["-tls1_1", "-tls1"] {
        let (ok, out) = s_client(
            tls,
            &[
                "-servername",
                "a.test",
                old,
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ],
        );
        assert!(!ok, "{old} was accepted:\n{out}");
    }
    // Session resumption: a second TLS 1.2 connection resumes the first's session.
    let sess = dir.path().join("sess.pem");
    let sess = sess.to_str().unwrap();
    let (ok, out) = s_client(
        tls,
        &["-servername", "a.test", "-tls1_2", "-sess_out", sess],
    );
    assert!(ok, "{out}");
    let (ok, out) = s_client(tls, &["-servername", "a.test", "-tls1_2", "-sess_in", sess]);
    assert!(ok && out.contains("Reused, TLSv1.2"), "not resumed:\n{out}");
}

#[test]
fn http2_under_load_and_sse_over_h2() {
    let dir = TempDir::new("canaryd-tls");
    let pki = Pki::new(dir.path());
    let a = pki.issue("a", &["a.test"]);
    let (d, tls, _gw) = start(&pki, &[&a], "");

    let out = Command::new("h2load")
        .args(["-n", "4000", "-c", "20", "-m", "10", "-t", "1"])
        .arg(format!("https://127.0.0.1:{}/", tls.port()))
        .output()
        .expect("h2load is installed (nghttp2-client)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Application protocol: h2"), "{text}");
    assert!(
        text.contains("4000 succeeded, 0 failed, 0 errored") && text.contains("4000 2xx"),
        "{text}\nlog:\n{}",
        d.log()
    );

    // Server-sent events over h2: the first event arrives while the stream is held open.
    let url = format!("https://a.test:{}/api/stream?hold_ms=1500", tls.port());
    let (ok, out, err) = curl(&[
        "--http2",
        "-N",
        "--cacert",
        pki.ca.to_str().unwrap(),
        "--resolve",
        &resolve("a.test", tls),
        "-w",
        "%{http_version}",
        &url,
    ]);
    assert!(ok, "{err}");
    assert_eq!(out, "data: first\n\ndata: last\n\n2", "{out}");
}

#[test]
fn https_redirect_keeps_acme_challenges() {
    let dir = TempDir::new("canaryd-tls");
    let pki = Pki::new(dir.path());
    let a = pki.issue("a", &["shop.test"]);
    let log = dir.path().join("access.json");
    let (d, tls, _gw) = start(
        &pki,
        &[&a],
        &format!(
            "https_redirect = true\naccess_log = {{ path = \"{}\", format = \"json\" }}\n",
            log.display()
        ),
    );
    let mut c = d.client();
    let r = c
        .request(
            "GET",
            "/cart/x?id=7&b=%20",
            &[("Host", "Shop.test:8080")],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some("https://shop.test/cart/x?id=7&b=%20")
    );
    // Kept alive, as nginx does; the exception is proxied.
    let r = c
        .request(
            "GET",
            "/.well-known/acme-challenge/token123",
            &[("Host", "shop.test")],
            b"",
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    // The TLS listener is not redirected.
    let (ok, out, err) = curl(&[
        "--cacert",
        pki.ca.to_str().unwrap(),
        "--resolve",
        &resolve("shop.test", tls),
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("https://shop.test:{}/cart", tls.port()),
    ]);
    assert!(ok && out == "200", "{out} {err}");
    // The redirect is logged too (as nginx logs its `return 301`), before any routing.
    wait_until("three access log lines", Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() == 3)
    });
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let redirect = lines.iter().find(|v| v["status"] == 301).expect("the 301");
    assert_eq!(redirect["path"], "/cart/x?id=7&b=%20");
    assert!(redirect["variant"].is_null() && redirect["upstream"].is_null());
    assert_eq!(lines.iter().filter(|v| v["variant"] == "stable").count(), 2);
}

#[test]
fn certificate_renewed_on_sighup_while_a_connection_stays_open() {
    let dir = TempDir::new("canaryd-tls");
    let pki = Pki::new(dir.path());
    let live = pki.issue("live", &["a.test"]);
    let first = der_of(&live.cert);
    let (d, tls, _gw) = start(&pki, &[&live], "");
    let cfg = pki.client(&[b"http/1.1"]);

    let mut open = TlsConn::connect(cfg.clone(), tls, "a.test");
    assert_eq!(open.peer_cert(), first);
    assert_eq!(open.get("/echo", "a.test").0, 200);

    // certbot renews: new files at the same paths, then SIGHUP.
    let renewed = pki.issue("renewed", &["a.test"]);
    std::fs::copy(&renewed.cert, &live.cert).unwrap();
    std::fs::copy(&renewed.key, &live.key).unwrap();
    let second = der_of(&live.cert);
    assert_ne!(first, second);
    d.signal(libc::SIGHUP);
    wait_until(
        "new handshakes get the renewed certificate",
        Duration::from_secs(10),
        || TlsConn::connect(cfg.clone(), tls, "a.test").peer_cert() == second,
    );
    // The connection opened before the reload keeps working.
    assert_eq!(open.get("/echo", "a.test").0, 200, "log:\n{}", d.log());

    // A broken renewal (key of another certificate): the old certificate stays, the log says
    // which file and why.
    let other = pki.issue("other", &["a.test"]);
    std::fs::copy(&other.key, &live.key).unwrap();
    d.signal(libc::SIGHUP);
    wait_until(
        "the failed reload is logged",
        Duration::from_secs(10),
        || d.log().contains("does not match the certificate"),
    );
    let log = d.log();
    let line = log.lines().find(|l| l.contains("does not match")).unwrap();
    assert!(line.contains(live.key.to_str().unwrap()), "{line}");
    assert!(line.contains("proxy.tls.certificates[0].key"), "{line}");
    assert_eq!(
        TlsConn::connect(cfg.clone(), tls, "a.test").peer_cert(),
        second
    );
    assert_eq!(open.get("/echo", "a.test").0, 200);
}

#[test]
fn bad_certificates_are_located_errors_at_start() {
    let dir = TempDir::new("canaryd-tls");
    let pki = Pki::new(dir.path());
    let a = pki.issue("a", &["a.test"]);
    let b = pki.issue("b", &["b.test"]);
    let stable = FakeGateway::spawn("stable", &[]);
    let mut setup = Setup::new(&stable, &stable, 0.0);
    let mismatched = pki::Leaf {
        cert: a.cert.clone(),
        key: b.key.clone(),
    };
    let missing = pki::Leaf {
        cert: dir.path().join("nope.pem"),
        key: a.key.clone(),
    };
    setup.tail = section(free_addr(), &[&a, &mismatched, &missing]);
    let config = dir.path().join("canaryd.toml");
    std::fs::write(&config, setup.render(free_addr(), free_addr(), dir.path())).unwrap();
    let out = check(&config);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key `proxy.tls.certificates[2].cert`: cannot read"),
        "{err}"
    );
    // The readable files parse; the pair that does not match is named once they do.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config).unwrap().replace(
            &format!(
                ", {{ cert = \"{}\", key = \"{}\" }}",
                missing.cert.display(),
                missing.key.display()
            ),
            "",
        ),
    )
    .unwrap();
    let out = check(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("canaryd.toml:")
            && err.contains("key `proxy.tls.certificates[1].key`")
            && err.contains("does not match the certificate"),
        "{err}"
    );
}

#[test]
fn https_upstream_verified_with_ca_file() {
    let dir = TempDir::new("canaryd-tls");
    let pki = Pki::new(dir.path());
    let leaf = pki.issue("gw", &["127.0.0.1"]);
    // The TLS-only "gateway": a canaryd whose TLS listener fronts a fake gateway.
    let (gw, gw_tls, _fake) = start(&pki, &[&leaf], "");
    let https = format!("\"https://127.0.0.1:{}\"", gw_tls.port());

    let front = |ca: bool| {
        let placeholder = FakeGateway::spawn("unused", &[]);
        let mut setup = Setup::new(&placeholder, &placeholder, 0.0);
        let extra = if ca {
            format!(
                "ca_file = \"{}\"\nhealth = {{ path = \"/\", interval = \"1s\" }}\n",
                pki.ca.display()
            )
        } else {
            String::new()
        };
        setup.stable_extra = extra.clone();
        setup.canary_extra = extra;
        let d = TempDir::new("canaryd-e2e");
        let (proxy, admin) = (free_addr(), free_addr());
        let text = setup
            .render(proxy, admin, d.path())
            .replace(&format!("\"{}\"", placeholder.addr), &https);
        let config = d.path().join("canaryd.toml");
        std::fs::write(&config, text).unwrap();
        (
            Canaryd::start_with_config(d, config, proxy, admin),
            placeholder,
        )
    };

    let (d, _p) = front(true);
    // Health checks over TLS reach the gateway (two pools: two probes a second) and keep the
    // server up; requests go through.
    let served = || -> f64 {
        gw.metrics()
            .iter()
            .filter(|(k, _)| k.starts_with("canaryd_requests_total"))
            .map(|(_, v)| v)
            .sum()
    };
    wait_until("health probes over TLS", Duration::from_secs(10), || {
        served() >= 4.0
    });
    for _ in 0..3 {
        let r = d.client().get("/echo").unwrap();
        assert_eq!(r.status, 200, "{}\nlog:\n{}", r.text(), d.log());
        let echo = r.json();
        assert_eq!(echo["name"], "stable");
        // The gateway's own TLS listener says https to what is behind it.
        assert_eq!(echo["headers"]["x-forwarded-proto"][0], "https");
    }
    assert!(!d.log().contains("marked down"), "{}", d.log());

    // Without the CA (system roots only), the gateway's certificate is refused: 502.
    let (d, _p) = front(false);
    let r = d.client().get("/echo").unwrap();
    assert_eq!(r.status, 502, "{}", r.text());
}

/// testssl.sh against the TLS listener: protocols, cipher categories and the usual
/// vulnerabilities (`--fast`, about 40 s). No SSLv2/SSLv3/TLS 1.0/1.1, no NULL, anonymous,
/// export, LOW, 3DES/IDEA or CBC ("AVERAGE") ciphers, and no finding above INFO.
#[test]
fn testssl_finds_no_old_protocol_or_weak_cipher() {
    if Command::new("testssl").arg("--version").output().is_err() {
        return testkit::tool_missing("testssl (Debian testssl.sh)");
    }
    let dir = TempDir::new("canaryd-tls");
    let pki = Pki::new(dir.path());
    let a = pki.issue("a", &["localhost", "127.0.0.1"]);
    let (_d, tls, _gw) = start(&pki, &[&a], "");
    let json = dir.path().join("testssl.json");
    let out = Command::new("testssl")
        .args([
            "--quiet",
            "--color",
            "0",
            "--fast",
            "-p",
            "-s",
            "-U",
            "--jsonfile",
        ])
        .arg(&json)
        .arg(tls.to_string())
        .output()
        .expect("testssl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let findings: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&json).unwrap_or_else(|e| panic!("no JSON ({e}):\n{text}")),
    )
    .unwrap();
    let findings = findings.as_array().expect("a list of findings");
    let finding = |id: &str| -> String {
        findings
            .iter()
            .find(|f| f["id"] == id)
            .and_then(|f| f["finding"].as_str())
            .unwrap_or_else(|| panic!("no {id} in:\n{text}"))
            .to_string()
    };
    for id in [
        "SSLv2",
        "SSLv3",
        "TLS1",
        "TLS1_1",
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
        "cipherlist_AVERAGE",
    ] {
        assert_eq!(finding(id), "not offered", "{id}:\n{text}");
    }
    assert!(finding("TLS1_2").starts_with("offered"), "{text}");
    assert!(finding("TLS1_3").starts_with("offered"), "{text}");
    assert_eq!(finding("ALPN_HTTP2"), "h2", "{text}");
    // WARN is about the local openssl (no RC4, no GOST engine), not the server.
    let bad: Vec<String> = findings
        .iter()
        .filter(|f| {
            ["LOW", "MEDIUM", "HIGH", "CRITICAL"].contains(&f["severity"].as_str().unwrap_or(""))
        })
        .map(|f| format!("{} {}: {}", f["id"], f["severity"], f["finding"]))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}\n{text}");
}
