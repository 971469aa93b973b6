//! `canaryd import-nginx`: nginx fronts — the seed's, and ones written for these tests, each
//! first accepted by the real `nginx -t` — become `canaryd.toml` files that the config loader
//! and `canaryd check` accept, with nginx's values; every directive canaryd cannot translate is
//! listed on stderr and in the output with its file and line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use canaryd_config::{Config, ServerEntry};

use crate::common::{binary, TempDir};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/nginx")
        .join(name)
}

fn nginx_binary() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

/// Runs `nginx -t` on `conf` with `dir` as nginx's prefix; fails the test if nginx cannot run.
fn nginx_t(dir: &Path, conf: &Path) -> std::process::Output {
    Command::new(nginx_binary())
        .arg("-t")
        .arg("-p")
        .arg(format!("{}/", dir.display()))
        .arg("-c")
        .arg(conf)
        .args(["-e", "stderr"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run nginx ({e}); these tests check every fixture with `nginx -t`: install nginx (scripts/test does)"
            )
        })
}

/// The fixture is valid nginx: `nginx -t` accepts it. A conf.d-style file is included from a
/// minimal `events {} http { … }` main file; a whole nginx.conf (`whole`) is tested as it is.
fn nginx_accepts(path: &Path, whole: bool) {
    let dir = TempDir::new("canaryd-nginx-t");
    let text = std::fs::read_to_string(path).unwrap();
    if text.contains("ssl_certificate") {
        tls_pair(dir.path());
    }
    let conf = if whole {
        path.to_path_buf()
    } else {
        let main = dir.path().join("nginx.conf");
        std::fs::write(
            &main,
            format!(
                "events {{}}\nhttp {{\n    include {};\n}}\n",
                path.display()
            ),
        )
        .unwrap();
        main
    };
    let out = nginx_t(dir.path(), &conf);
    assert!(
        out.status.success(),
        "nginx -t rejects {}:\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway self-signed certificate at `tls/test.crt` / `tls/test.key`, where the
/// fixtures' `ssl_certificate` directives point (nginx -t loads them).
fn tls_pair(dir: &Path) {
    std::fs::create_dir_all(dir.join("tls")).unwrap();
    let out = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "tls/test.key",
            "-out",
            "tls/test.crt",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}): needed to give nginx -t a test certificate")
        });
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn import(path: &Path, extra: &[&str]) -> Run {
    let out = Command::new(binary())
        .arg("import-nginx")
        .arg(path)
        .args(extra)
        .output()
        .unwrap();
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Imports a fixture that must translate: nginx accepts it, import-nginx succeeds, and the
/// output passes the config loader and `canaryd check`.
fn translate(path: &Path, whole: bool, extra: &[&str]) -> (Config, Run) {
    nginx_accepts(path, whole);
    let run = import(path, extra);
    assert!(run.ok, "import-nginx failed:\n{}", run.stderr);
    let cfg = Config::from_source("imported.toml", &run.stdout, false)
        .unwrap_or_else(|e| panic!("{e}\n--- output ---\n{}", run.stdout));
    let dir = TempDir::new("canaryd-import");
    let file = dir.path().join("canaryd.toml");
    std::fs::write(&file, &run.stdout).unwrap();
    let mut check = Command::new(binary());
    check.args(["check", "--config"]).arg(&file);
    for (k, _) in std::env::vars() {
        if k.starts_with("CANARYD_") {
            check.env_remove(k);
        }
    }
    let out = check.output().unwrap();
    assert!(
        out.status.success(),
        "canaryd check rejects the output:\n{}\n--- output ---\n{}",
        String::from_utf8_lossy(&out.stderr),
        run.stdout
    );
    (cfg, run)
}

fn addrs(servers: &[ServerEntry]) -> Vec<&str> {
    servers.iter().map(|s| s.addr.as_str()).collect()
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The untranslated lines on stderr (`FILE:LINE: directive — reason`).
fn untranslated(run: &Run) -> Vec<&str> {
    run.stderr.lines().filter(|l| l.contains(" — ")).collect()
}

/// Each `(line, directive)` is on stderr and commented in the output, and nothing else is.
fn assert_untranslated(run: &Run, file: &Path, expected: &[(usize, &str)]) {
    let file = file.display().to_string();
    for (line, directive) in expected {
        let entry = format!("{file}:{line}: {directive} — ");
        assert!(
            run.stderr.lines().any(|l| l.starts_with(&entry)),
            "{entry:?} not on stderr:\n{}",
            run.stderr
        );
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(&format!("# untranslated: {entry}"))),
            "{entry:?} not in the output:\n{}",
            run.stdout
        );
    }
    assert_eq!(
        untranslated(run).len(),
        expected.len(),
        "unexpected untranslated lines:\n{}",
        run.stderr
    );
}

#[test]
fn seed_weighted_upstream_becomes_a_95_5_split() {
    let path = fixture("seed-weighted.conf");
    let (cfg, run) = translate(&path, false, &[]);

    assert_eq!(addrs(&cfg.backends.stable.servers), ["127.0.0.1:8080"]);
    assert_eq!(addrs(&cfg.backends.canary.servers), ["127.0.0.1:8081"]);
    assert_eq!(cfg.rollout.initial_percent, 5.0);
    for pool in [&cfg.backends.stable, &cfg.backends.canary] {
        assert_eq!(pool.max_fails, 3);
        assert_eq!(pool.fail_timeout, secs(30));
    }
    assert_eq!(cfg.proxy.listen, ["0.0.0.0:80"]);
    assert_eq!(cfg.proxy.keepalive_pool, 100);
    // Outside /api/ nginx used its 60 s defaults.
    assert_eq!(cfg.proxy.connect_timeout, secs(60));
    assert_eq!(cfg.proxy.read_timeout, secs(60));
    assert_eq!(cfg.proxy.write_timeout, secs(60));
    let routes: Vec<_> = cfg
        .proxy
        .routes
        .iter()
        .map(|r| {
            (
                r.prefix.as_str(),
                r.connect_timeout,
                r.read_timeout,
                r.write_timeout,
            )
        })
        .collect();
    assert_eq!(
        routes,
        [
            ("/api/", Some(secs(5)), Some(secs(30)), Some(secs(30))),
            // The SSE location: streamed, its own read timeout; connect/send are nginx's defaults.
            ("/api/stream", None, Some(secs(3600)), None),
        ]
    );
    assert!(cfg.routing.header.is_none());
    assert!(cfg.rollout.policy.is_none());

    assert_untranslated(&run, &path, &[]);
    // The forwarding headers canaryd already sets are named, not dropped.
    let file = path.display();
    for handled in [
        format!("{file}:34, 50: proxy_set_header Host $host — "),
        format!("{file}:36: proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for — "),
        format!("{file}:33, 49: proxy_set_header Connection \"\" — "),
        format!("{file}:54: proxy_buffering off — "),
    ] {
        assert!(run.stdout.contains(&handled), "{handled}\n{}", run.stdout);
    }
    assert!(run
        .stderr
        .contains("note: nginx answered 404 to paths outside its locations"));
}

#[test]
fn seed_header_map_becomes_the_override_header() {
    let path = fixture("seed-header-map.conf");
    let (cfg, run) = translate(&path, false, &[]);

    assert_eq!(addrs(&cfg.backends.stable.servers), ["127.0.0.1:8080"]);
    assert_eq!(addrs(&cfg.backends.canary.servers), ["127.0.0.1:8081"]);
    assert_eq!(cfg.routing.header.as_deref(), Some("X-Gateway-Version"));
    assert_eq!(cfg.routing.canary_values, ["cpp"]);
    assert!(cfg.routing.stable_values.is_empty());
    // Without the header nginx sent everything to the Python gateway.
    assert_eq!(cfg.rollout.initial_percent, 0.0);
    // No `listen`: nginx's default.
    assert_eq!(cfg.proxy.listen, ["0.0.0.0:80"]);
    for pool in [&cfg.backends.stable, &cfg.backends.canary] {
        assert_eq!(pool.max_fails, 1);
        assert_eq!(pool.fail_timeout, secs(10));
    }
    assert_untranslated(&run, &path, &[]);
}

#[test]
fn seed_split_script_output_has_one_streaming_location() {
    let path = fixture("seed-split-script.conf");
    let (cfg, run) = translate(&path, false, &[]);

    assert_eq!(addrs(&cfg.backends.stable.servers), ["127.0.0.1:8080"]);
    assert_eq!(addrs(&cfg.backends.canary.servers), ["127.0.0.1:8081"]);
    assert_eq!(cfg.rollout.initial_percent, 5.0);
    // `location /` is the whole front; /metrics has the same values, so no route is needed.
    assert!(cfg.proxy.routes.is_empty(), "{:?}", cfg.proxy.routes);
    assert_eq!(cfg.proxy.read_timeout, secs(60));
    assert_untranslated(&run, &path, &[]);
    assert!(run
        .stdout
        .contains(&format!("{}:25: proxy_buffering off — ", path.display())));
}

#[test]
fn three_servers_need_canary() {
    let path = fixture("three-servers.conf");
    nginx_accepts(&path, false);

    let run = import(&path, &[]);
    assert!(!run.ok);
    assert_eq!(run.code, Some(1));
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!(
            "{}:3: cannot tell which servers of upstream `gateway` are the canary: it has 3 servers",
            path.display()
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Pass --canary ADDR"), "{}", run.stderr);

    let (cfg, run) = translate(&path, false, &["--canary", "127.0.0.1:8081"]);
    assert_eq!(
        addrs(&cfg.backends.stable.servers),
        ["127.0.0.1:8080", "127.0.0.1:8082"]
    );
    assert_eq!(addrs(&cfg.backends.canary.servers), ["127.0.0.1:8081"]);
    assert_eq!(cfg.rollout.initial_percent, 20.0);
    assert_eq!(cfg.backends.stable.max_fails, 2);
    assert_eq!(cfg.backends.canary.fail_timeout, secs(15));
    assert_eq!(cfg.proxy.keepalive_pool, 64);
    assert_eq!(cfg.proxy.listen, ["127.0.0.1:8000"]);
    assert_eq!(cfg.proxy.connect_timeout, secs(3));
    assert_eq!(cfg.proxy.read_timeout, secs(20));
    assert_eq!(cfg.proxy.write_timeout, secs(20));
    assert_untranslated(&run, &path, &[]);

    // Repeatable: two canaries of weight 2 + 1 out of 5.
    let (cfg, _) = translate(
        &path,
        false,
        &["--canary", "127.0.0.1:8081", "--canary", "127.0.0.1:8082"],
    );
    assert_eq!(addrs(&cfg.backends.stable.servers), ["127.0.0.1:8080"]);
    assert_eq!(
        addrs(&cfg.backends.canary.servers),
        ["127.0.0.1:8082", "127.0.0.1:8081"]
    );
    assert_eq!(cfg.rollout.initial_percent, 60.0);

    let run = import(&path, &["--canary", "127.0.0.1:9999"]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains(
            "--canary 127.0.0.1:9999: no such server in upstream `gateway`; its servers are 127.0.0.1:8080, 127.0.0.1:8082, 127.0.0.1:8081"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn unsupported_directives_are_listed_with_their_lines() {
    let path = fixture("unsupported.conf");
    let (cfg, run) = translate(&path, false, &[]);

    assert_untranslated(
        &run,
        &path,
        &[
            (
                3,
                "limit_req_zone $binary_remote_addr zone=perip:10m rate=10r/s",
            ),
            (8, "least_conn"),
            (13, "listen 8443 proxy_protocol"),
            (15, "limit_rate 100k"),
            (17, "gzip on"),
            (18, "gzip_types application/json"),
            (23, "rewrite ^/v1/(.*)$ /api/$1 break"),
            (24, "limit_req zone=perip burst=20 nodelay"),
            (29, "proxy_next_upstream error timeout http_502"),
            (33, "return 403"),
        ],
    );
    assert!(
        run.stderr
            .contains("canaryd import-nginx: 10 directive(s) not translated"),
        "{}",
        run.stderr
    );
    // The reasons say what canaryd does instead.
    assert!(run.stderr.contains("gzip on — canaryd does not compress"));
    assert!(run
        .stderr
        .contains("listen 8443 proxy_protocol — canaryd does not read the PROXY protocol"));

    // The rest is translated.
    assert_eq!(cfg.proxy.listen, ["0.0.0.0:8080"]);
    assert_eq!(cfg.proxy.keepalive_timeout, secs(30));
    assert_eq!(addrs(&cfg.backends.stable.servers), ["127.0.0.1:8080"]);
    assert_eq!(addrs(&cfg.backends.canary.servers), ["127.0.0.1:8081"]);
    assert_eq!(cfg.rollout.initial_percent, 10.0);
    assert_eq!(
        cfg.proxy.max_body_size,
        10 << 20,
        "client_max_body_size 10m"
    );
    // `location /` has its own add_header: nginx sent only that one there.
    assert_eq!(
        cfg.proxy
            .add_response_headers
            .get("X-Served-By")
            .map(String::as_str),
        Some("nginx")
    );
}

#[test]
fn a_real_world_front_translates_limits_and_headers() {
    let path = fixture("front.conf");
    let (cfg, run) = translate(&path, false, &[]);
    assert_eq!(
        cfg.proxy.max_body_size,
        80 << 20,
        "client_max_body_size 80m"
    );
    assert_eq!(
        cfg.proxy.add_response_headers["Strict-Transport-Security"],
        "max-age=63072000; includeSubDomains"
    );
    assert_eq!(
        cfg.proxy.add_response_headers["X-Content-Type-Options"],
        "nosniff"
    );
    let events = cfg
        .proxy
        .routes
        .iter()
        .find(|r| r.prefix == "/events/")
        .unwrap();
    assert_eq!(events.read_timeout, Some(secs(3600)));
    let upload = cfg
        .proxy
        .routes
        .iter()
        .find(|r| r.prefix == "/upload/")
        .unwrap();
    assert_eq!(upload.max_body_size, Some(1 << 30));
    assert_eq!(addrs(&cfg.backends.stable.servers), ["127.0.0.1:8080"]);
    assert_eq!(addrs(&cfg.backends.canary.servers), ["127.0.0.1:8081"]);
    assert_eq!(cfg.rollout.initial_percent, 5.0);
    // The second upstream serves its location outside the split.
    let admin = cfg
        .proxy
        .routes
        .iter()
        .find(|r| r.prefix == "/admin/")
        .unwrap();
    assert_eq!(admin.upstream.as_deref(), Some("admin"));
    assert_eq!(addrs(&cfg.upstreams["admin"].servers), ["127.0.0.1:9000"]);
    // httpoxy protection, Host, forwarding headers: canaryd's defaults; static files and
    // compression are listed with what to do instead.
    assert_eq!(
        cfg.proxy.set_request_headers["X-Client-Scheme"], "$scheme",
        "an arbitrary request header"
    );
    // Response headers hidden, and nginx's error page (a URI) resolved to the file its
    // `location =` serves, for the statuses canaryd answers itself.
    assert_eq!(cfg.proxy.hide_response_headers, ["X-Powered-By"]);
    let pages: Vec<_> = cfg
        .proxy
        .error_pages
        .iter()
        .map(|(status, page)| (status.as_str(), page.path.to_str().unwrap()))
        .collect();
    assert_eq!(
        pages,
        [
            ("502", "/usr/share/nginx/html/index.html"),
            ("504", "/usr/share/nginx/html/index.html")
        ]
    );
    // /admin/ has its own add_header set (nginx: it replaces the inherited one).
    assert_eq!(admin.add_response_headers["X-Frame-Options"], "DENY");
    assert_eq!(admin.add_response_headers.len(), 3);
    assert_untranslated(
        &run,
        &path,
        &[
            (28, "error_page 500 502 503 504 /index.html"),
            (42, "root /usr/share/nginx/html"),
            (46, "root /var/www"),
            (47, "gzip on"),
        ],
    );
}

#[test]
fn http_wrapper_and_includes_are_followed() {
    let path = fixture("main/nginx.conf");
    let (cfg, run) = translate(&path, true, &[]);

    assert_eq!(cfg.proxy.threads, Some(2));
    assert_eq!(cfg.proxy.listen, ["127.0.0.1:8000", "[::1]:8000"]);
    assert_eq!(cfg.proxy.read_timeout, secs(45));
    assert_eq!(cfg.proxy.connect_timeout, secs(60));
    assert_eq!(cfg.proxy.keepalive_pool, 16);
    assert_eq!(cfg.proxy.upstream_idle_timeout, secs(90));
    assert_eq!(cfg.proxy.keepalive_timeout, secs(65));
    assert_eq!(cfg.proxy.keepalive_requests, 500);
    assert_eq!(cfg.proxy.client_timeout, secs(20));
    assert_eq!(cfg.proxy.routes.len(), 1);
    assert_eq!(cfg.proxy.routes[0].prefix, "/api/stream");
    assert_eq!(cfg.proxy.routes[0].read_timeout, Some(secs(3600)));
    assert_eq!(addrs(&cfg.backends.stable.servers), ["127.0.0.1:8080"]);
    assert_eq!(addrs(&cfg.backends.canary.servers), ["127.0.0.1:8081"]);
    assert_eq!(cfg.rollout.initial_percent, 20.0);
    assert_eq!(cfg.backends.stable.max_fails, 1);
    assert_eq!(cfg.backends.canary.max_fails, 3);
    assert_eq!(cfg.backends.canary.fail_timeout, secs(30));

    // Findings name the file they are in, included or not.
    let dir = path.parent().unwrap();
    for (file, line, directive) in [
        ("nginx.conf", 7, "worker_connections 512"),
        ("conf.d/veloz.conf", 22, "deny all"),
    ] {
        let entry = format!("{}:{line}: {directive} — ", dir.join(file).display());
        assert!(run.stderr.contains(&entry), "{entry}\n{}", run.stderr);
        assert!(run.stdout.contains(&format!("# untranslated: {entry}")));
    }
    assert_eq!(untranslated(&run).len(), 2, "{}", run.stderr);
    assert!(run.stdout.contains(&format!(
        "{}:5: keepalive 16",
        dir.join("upstreams.inc").display()
    )));
}

#[test]
fn syntax_errors_and_missing_includes() {
    let dir = TempDir::new("canaryd-import-bad");

    // A missing `;`: nginx -t rejects it too; import-nginx names the file and line.
    let bad = dir.path().join("bad.conf");
    std::fs::write(
        &bad,
        "upstream u {\n    server 127.0.0.1:8080 weight=95\n}\n",
    )
    .unwrap();
    let main = dir.path().join("nginx.conf");
    std::fs::write(
        &main,
        format!("events {{}}\nhttp {{ include {}; }}\n", bad.display()),
    )
    .unwrap();
    assert!(!nginx_t(dir.path(), &main).status.success());
    let run = import(&bad, &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains(&format!(
            "{}:3: unexpected `}}`: expected `;` to end the `server` directive of line 2",
            bad.display()
        )),
        "{}",
        run.stderr
    );

    // Garbage is an error, never a panic.
    let junk = dir.path().join("junk.conf");
    std::fs::write(&junk, b"\xff\xfe {{ \"unterminated \x00").unwrap();
    let run = import(&junk, &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    // An include whose file is missing is reported, the rest translated.
    let partial = dir.path().join("partial.conf");
    std::fs::write(
        &partial,
        std::fs::read_to_string(fixture("seed-weighted.conf")).unwrap() + "include extra.conf;\n",
    )
    .unwrap();
    let run = import(&partial, &[]);
    assert!(run.ok, "{}", run.stderr);
    let entry = format!(
        "{}:59: include extra.conf — file not found",
        partial.display()
    );
    assert!(run.stderr.contains(&entry), "{}", run.stderr);
    assert!(run.stdout.contains(&format!("# untranslated: {entry}")));
    Config::from_source("partial.toml", &run.stdout, false).unwrap();

    let run = import(&dir.path().join("absent.conf"), &[]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("absent.conf: cannot read"),
        "{}",
        run.stderr
    );
}

#[test]
fn access_log_with_the_stock_main_format_becomes_combined() {
    let path = fixture("access-log.conf");
    let (cfg, run) = translate(&path, false, &[]);
    let log = cfg.proxy.access_log.as_ref().expect("[proxy.access_log]");
    assert_eq!(log.path, "/var/log/nginx/gateway.access.log");
    assert_eq!(log.format, canaryd_config::AccessLogFormat::Combined);
    // `main` is combined plus "$http_x_forwarded_for": translated, the difference said.
    assert!(
        run.stdout
            .contains("is `combined` plus \"$http_x_forwarded_for\""),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("`buffer=64k`: canaryd always buffers"));
    // canaryd has one log for every route: the /health exception is not translated.
    assert_untranslated(&run, &path, &[(20, "access_log off")]);
}

/// A real-world TLS front: port 80 only redirects (and serves ACME challenges from a webroot),
/// port 443 terminates TLS with HTTP/2 and proxies. `nginx -t` accepts it with real
/// certificate files; the import passes `canaryd check`, which reads those files.
#[test]
fn tls_front_with_its_redirect_server() {
    let dir = TempDir::new("canaryd-import-tls");
    tls_pair(dir.path());
    let cert = dir.path().join("tls/test.crt");
    let key = dir.path().join("tls/test.key");
    let conf = dir.path().join("front.conf");
    std::fs::write(
        &conf,
        format!(
            "upstream gateway {{
    server 127.0.0.1:8080 weight=95;
    server 127.0.0.1:8081 weight=5;
}}

server {{
    listen 80;
    server_name shop.example.com;
    location /.well-known/acme-challenge/ {{ root /var/www/certbot; }}
    return 301 https://$host$request_uri;
}}

server {{
    listen 8443 ssl http2;
    server_name shop.example.com;
    ssl_certificate {};
    ssl_certificate_key {};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_prefer_server_ciphers on;

    location / {{
        proxy_pass http://gateway;
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
}}
",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let (cfg, run) = translate(&conf, false, &[]);
    assert_untranslated(
        &run,
        &conf,
        &[(9, "location /.well-known/acme-challenge/ { … }")],
    );
    assert_eq!(cfg.proxy.listen, ["0.0.0.0:80"]);
    assert!(cfg.proxy.https_redirect);
    assert_eq!(
        cfg.proxy.https_redirect_except,
        ["/.well-known/acme-challenge/"]
    );
    let tls = cfg.proxy.tls.expect("[proxy.tls]");
    assert_eq!(tls.listen, ["0.0.0.0:8443"]);
    assert_eq!(tls.certificates.len(), 1);
    assert_eq!(tls.certificates[0].cert, cert);
    assert_eq!(tls.certificates[0].key, key);
    assert_eq!(tls.protocols, ["TLSv1.2", "TLSv1.3"]);
    assert!(tls.http2);
    assert_eq!(cfg.rollout.initial_percent, 5.0);
}
