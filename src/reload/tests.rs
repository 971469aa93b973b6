//! The reload plan: which changed keys apply live, which wait for a restart, which only
//! matter at the first start — always against the configuration in force.

use super::*;

const BASE: &str = r#"
[proxy]
listen = ["127.0.0.1:8000"]
read_timeout = "5s"

[backends.stable]
servers = ["127.0.0.1:8080"]

[backends.canary]
servers = ["127.0.0.1:8081"]

[admin]
listen = "127.0.0.1:9180"

[prometheus]
url = "http://127.0.0.1:9090"
timeout = "5s"

[rollout]
initial_percent = 5
"#;

fn cfg(src: &str) -> Config {
    Config::from_source("canaryd.toml", src, false).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn nothing_changed_plans_nothing() {
    let p = plan(&cfg(BASE), &cfg(BASE));
    assert!(p.live.is_empty() && p.restart.is_empty() && p.first_start.is_empty());
    assert_eq!(p.in_force, cfg(BASE));
}

#[test]
fn live_keys_apply_and_restart_keys_keep_their_running_value() {
    let file = BASE
        .replace("read_timeout = \"5s\"", "read_timeout = \"9s\"")
        .replace("127.0.0.1:8000", "127.0.0.1:8001")
        .replace("127.0.0.1:8081", "127.0.0.1:8082")
        .replace(
            "timeout = \"5s\"\n\n[rollout]",
            "timeout = \"1s\"\n\n[rollout]",
        )
        .replace("initial_percent = 5", "initial_percent = 10");
    let running = cfg(BASE);
    let p = plan(&running, &cfg(&file));
    assert_eq!(p.live, ["proxy", "backends", "prometheus"]);
    assert_eq!(p.restart, ["proxy.listen"]);
    assert_eq!(p.first_start, ["rollout.initial_percent"]);
    // In force: the new timeouts and canary server, the old listener.
    assert_eq!(
        p.in_force.proxy.read_timeout,
        std::time::Duration::from_secs(9)
    );
    assert_eq!(p.in_force.backends.canary.servers[0].addr, "127.0.0.1:8082");
    assert_eq!(p.in_force.proxy.listen, running.proxy.listen);
    let timeout = p.in_force.prometheus.as_ref().map(|p| p.timeout);
    assert_eq!(timeout, Some(std::time::Duration::from_secs(1)));
    assert_eq!(p.in_force.rollout.initial_percent, 5.0);
}

#[test]
fn a_restart_key_is_reported_on_every_reload_until_a_restart() {
    let file = cfg(&BASE.replace("127.0.0.1:9180", "127.0.0.1:9181"));
    let first = plan(&cfg(BASE), &file);
    assert_eq!(first.restart, ["admin.listen"]);
    // The next reload of the same file compares with what runs, not with the file last read.
    let second = plan(&first.in_force, &file);
    assert_eq!(second.restart, ["admin.listen"]);
    assert!(second.live.is_empty());
}

#[test]
fn putting_a_restart_key_back_plans_nothing() {
    let changed = cfg(&BASE.replace("127.0.0.1:9180", "127.0.0.1:9181"));
    let in_force = plan(&cfg(BASE), &changed).in_force;
    let back = plan(&in_force, &cfg(BASE));
    assert!(back.restart.is_empty() && back.live.is_empty());
}

#[test]
fn notify_targets_apply_live() {
    let file = format!("{BASE}\n[[notify]]\nurl = \"http://127.0.0.1:9999/hook\"\n");
    let p = plan(&cfg(BASE), &cfg(&file));
    assert_eq!(p.live, ["notify"]);
    assert!(p.restart.is_empty());
    assert_eq!(p.in_force.notify.len(), 1);
}

#[test]
fn decision_log_retention_needs_a_restart() {
    let file = BASE.replace(
        "initial_percent = 5",
        "initial_percent = 5\ndecision_log_keep = 2",
    );
    let p = plan(&cfg(BASE), &cfg(&file));
    assert_eq!(p.restart, ["rollout.decision_log_keep"]);
    assert_eq!(p.in_force.rollout.decision_log_keep, 5);
}

#[test]
fn upstreams_and_routes_apply_live() {
    let file = format!("{BASE}\n[upstreams.api]\nservers = [\"127.0.0.1:9000\"]\n").replace(
        "read_timeout = \"5s\"\n",
        "read_timeout = \"5s\"\n[[proxy.routes]]\nprefix = \"/api/\"\nupstream = \"api\"\n",
    );
    let p = plan(&cfg(BASE), &cfg(&file));
    assert_eq!(p.live, ["proxy", "upstreams"]);
    assert!(p.restart.is_empty(), "{:?}", p.restart);
    assert_eq!(p.in_force.proxy.routes[0].upstream.as_deref(), Some("api"));
}

#[test]
fn the_access_log_is_restart_only() {
    let with = |path: &str| {
        BASE.replace(
            "[backends.stable]",
            &format!("[proxy.access_log]\npath = \"{path}\"\n\n[backends.stable]"),
        )
    };
    for (running, file) in [
        (BASE.to_string(), with("/var/log/a.log")),
        (with("/var/log/a.log"), with("/var/log/b.log")),
        (with("/var/log/a.log"), BASE.to_string()),
    ] {
        let p = plan(&cfg(&running), &cfg(&file));
        assert_eq!(p.restart, ["proxy.access_log"], "{file}");
        assert!(p.live.is_empty(), "{:?}", p.live);
        assert_eq!(p.in_force, cfg(&running));
    }
}

#[test]
fn tls_certificates_apply_live_and_tls_listeners_need_a_restart() {
    // Built directly: validation would read the files.
    let tls = |listen: &str, cert: &str| -> Config {
        let mut c = cfg(BASE);
        c.proxy.tls = Some(canaryd_config::TlsConfig {
            listen: vec![listen.to_string()],
            certificates: vec![canaryd_config::CertificateConfig {
                cert: cert.into(),
                key: "/k.pem".into(),
            }],
            protocols: vec!["TLSv1.2".into(), "TLSv1.3".into()],
            http2: true,
        });
        c
    };
    let running = tls("127.0.0.1:8443", "/a.pem");
    let p = plan(&running, &tls("127.0.0.1:8443", "/b.pem"));
    assert_eq!(p.live, ["proxy"]);
    assert!(p.restart.is_empty());

    let p = plan(&running, &tls("127.0.0.1:9443", "/b.pem"));
    assert_eq!(p.restart, ["proxy.tls (listen, protocols, http2)"]);
    let kept = p.in_force.proxy.tls.as_ref().unwrap();
    assert_eq!(
        kept.listen,
        ["127.0.0.1:8443"],
        "the running listener stays"
    );
    assert_eq!(
        kept.certificates[0].cert.to_str(),
        Some("/b.pem"),
        "certificates apply"
    );

    // Adding or removing [proxy.tls] needs a restart; the running state is kept whole.
    let p = plan(&cfg(BASE), &running);
    assert_eq!(p.restart, ["proxy.tls (listen, protocols, http2)"]);
    assert!(p.in_force.proxy.tls.is_none());
}
