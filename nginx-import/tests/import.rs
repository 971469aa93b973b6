//! The whole import through the public API: nginx text in, a `canaryd.toml` that the real
//! configuration loader accepts out, with what was not translated returned and commented.

use std::path::Path;

use canaryd_config::Config;
use canaryd_nginx_import::{import_source, Options};

const SEED: &str = r#"upstream veloz_gateway {
    server 127.0.0.1:8080 weight=95 max_fails=3 fail_timeout=30s;
    server 127.0.0.1:8081 weight=5 max_fails=3 fail_timeout=30s;
    keepalive 100;
}

server {
    listen 80;
    server_name veloz.example.com;
    gzip on;

    location /api/stream {
        proxy_pass http://veloz_gateway/api/stream;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffering off;
        proxy_read_timeout 3600s;
    }
}
"#;

#[test]
fn output_loads_with_the_config_loader() {
    let out = import_source("veloz.conf", SEED, Path::new("."), &Options::default()).unwrap();
    let cfg = Config::from_source("out.toml", &out.toml, false)
        .unwrap_or_else(|e| panic!("{e}\n{}", out.toml));
    assert_eq!(cfg.rollout.initial_percent, 5.0);
    assert_eq!(cfg.backends.stable.servers[0].addr, "127.0.0.1:8080");
    assert_eq!(cfg.backends.canary.servers[0].addr, "127.0.0.1:8081");
    assert_eq!(cfg.backends.canary.max_fails, 3);
    assert_eq!(cfg.proxy.keepalive_pool, 100);
    assert_eq!(cfg.proxy.routes[0].prefix, "/api/stream");
    assert_eq!(
        cfg.proxy.routes[0].read_timeout,
        Some(std::time::Duration::from_secs(3600))
    );
    assert!(cfg.rollout.policy.is_none());
}

#[test]
fn untranslated_directives_are_returned_and_commented() {
    let out = import_source("veloz.conf", SEED, Path::new("."), &Options::default()).unwrap();
    assert_eq!(out.untranslated.len(), 1);
    let f = out.untranslated[0].to_string();
    assert!(f.starts_with("veloz.conf:10: gzip on — "), "{f}");
    assert!(
        out.toml.contains(&format!("# untranslated: {f}")),
        "{}",
        out.toml
    );
    assert!(out
        .toml
        .contains("veloz.conf:14: proxy_http_version 1.1 — "));
    assert!(out.toml.contains("listen = [\"0.0.0.0:80\"]"));
}

#[test]
fn unresolvable_server_names_are_a_note_not_an_error() {
    let src = "upstream u { server gw-a.invalid:8080 weight=9; server 127.0.0.1:8081; }\n\
                   server { location / { proxy_pass http://u; } }\n";
    let out = import_source("n.conf", src, Path::new("."), &Options::default()).unwrap();
    let note = "\"gw-a.invalid:8080\": does not resolve on this machine";
    assert!(
        out.notes.iter().any(|n| n.contains(note)),
        "{:?}",
        out.notes
    );
    assert!(out.toml.contains(note), "{}", out.toml);
    assert!(out.toml.contains("servers = [\"gw-a.invalid:8080\"]"));
}

#[test]
fn syntax_errors_pass_through_located() {
    let e = import_source("x.conf", "server {\n", Path::new("."), &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("x.conf:2: unexpected end of file"), "{e}");
}
