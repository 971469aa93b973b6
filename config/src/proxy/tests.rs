use super::*;

fn parse(toml_src: &str) -> Result<DataPlaneConfig, String> {
    toml::from_str(toml_src).map_err(|e| e.to_string())
}

const MIN: &str = r#"
        [backends.stable]
        servers = ["127.0.0.1:8080"]
        [backends.canary]
        servers = [{ addr = "127.0.0.1:8081", weight = 2 }]
    "#;

#[test]
fn defaults_match_nginx_front() {
    let c = parse(MIN).unwrap();
    assert!(c.validate().is_empty());
    assert_eq!(c.proxy.keepalive_timeout, Duration::from_secs(75));
    assert_eq!(c.proxy.shutdown_grace, Duration::from_secs(30));
    assert_eq!(c.backends.canary.servers[0].weight, 2);
    assert_eq!(c.backends.stable.max_fails, 1);
}

#[test]
fn unknown_key_is_an_error() {
    let e = parse(&format!("{MIN}\n[proxy]\nlisten_on = []\n")).unwrap_err();
    assert!(e.contains("unknown field `listen_on`"), "{e}");
}

#[test]
fn bad_duration_says_what_was_expected() {
    let e = parse(&format!("{MIN}\n[proxy]\nread_timeout = \"soon\"\n")).unwrap_err();
    assert!(e.contains("expected a duration like"), "{e}");
}

#[test]
fn validation_names_keys() {
    let c = parse(
        r#"
            [proxy]
            listen = ["nowhere"]
            [[proxy.routes]]
            prefix = "api"
            [backends.stable]
            servers = []
            [backends.canary]
            servers = [{ addr = "127.0.0.1:1", weight = 0 }]
            [routing]
            canary_values = ["x"]
            sticky = { key = "header:" }
        "#,
    );
    assert!(c.is_err(), "header: with no name must fail to parse");
    let c = parse(
        r#"
            [proxy]
            listen = ["nowhere"]
            [[proxy.routes]]
            prefix = "api"
            [backends.stable]
            servers = []
            [backends.canary]
            servers = [{ addr = "127.0.0.1:1", weight = 0 }]
            [routing]
            canary_values = ["x"]
        "#,
    )
    .unwrap();
    let keys: Vec<_> = c.validate().into_iter().map(|i| i.key).collect();
    assert_eq!(
        keys,
        [
            "proxy.listen[0]",
            "proxy.routes[0].prefix",
            "backends.stable.servers",
            "backends.canary.servers[0].weight",
            "routing.header"
        ]
    );
}

#[test]
fn sticky_keys() {
    let c = parse(&format!(
        "{MIN}\n[routing]\nsticky = {{ key = \"header:X-User\" }}\n"
    ))
    .unwrap();
    let s = c.routing.sticky.unwrap();
    assert_eq!(s.key, StickyKey::Header("X-User".into()));
    assert_eq!(s.cookie, "canaryd_bucket");
}

#[test]
fn access_log_section() {
    let c = parse(MIN).unwrap();
    assert!(c.proxy.access_log.is_none(), "no section, no access log");
    let c = parse(&format!(
        "{MIN}\n[proxy.access_log]\npath = \"/var/log/canaryd/access.log\"\n"
    ))
    .unwrap();
    let log = c.proxy.access_log.as_ref().unwrap();
    assert_eq!(log.format, crate::AccessLogFormat::Combined);
    assert!(!log.is_stdout() && c.validate().is_empty());
    let c = parse(&format!(
        "{MIN}\n[proxy.access_log]\npath = \"stdout\"\nformat = \"json\"\n"
    ))
    .unwrap();
    assert!(c.proxy.access_log.as_ref().unwrap().is_stdout());

    let e = parse(&format!(
        "{MIN}\n[proxy.access_log]\npath = \"/l\"\nformat = \"main\"\n"
    ))
    .unwrap_err();
    assert!(e.contains("combined") && e.contains("json"), "{e}");
    let c = parse(&format!(
        "{MIN}\n[proxy.access_log]\npath = \"logs/a.log\"\n"
    ))
    .unwrap();
    let problems = c.validate();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].key, "proxy.access_log.path");
    assert!(
        problems[0].message.contains("absolute"),
        "{}",
        problems[0].message
    );
}
