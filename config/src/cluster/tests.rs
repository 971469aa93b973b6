use crate::Config;

const BASE: &str = r#"
[backends.stable]
servers = ["127.0.0.1:8080"]

[backends.canary]
servers = ["127.0.0.1:8081"]
"#;

fn load(cluster: &str) -> Result<Config, String> {
    Config::from_source(
        "canaryd.toml",
        &format!("{BASE}\n[cluster]\n{cluster}"),
        false,
    )
    .map_err(|e| e.to_string())
}

#[test]
fn file_store_is_the_default() {
    let c = Config::from_source("canaryd.toml", BASE, false).unwrap();
    assert!(!c.cluster.is_etcd());
    assert_eq!(c.cluster.lease_ttl, std::time::Duration::from_secs(10));
}

#[test]
fn a_fleet_config_loads() {
    let c = load(
        "store = \"etcd\"\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/canaryd/checkout\"\nname = \"a\"\nlease_ttl = \"4s\"\n",
    )
    .unwrap();
    assert!(c.cluster.is_etcd());
    assert_eq!(c.cluster.lease_ttl, std::time::Duration::from_secs(4));
}

#[test]
fn every_mistake_is_named_with_its_line() {
    let e = load(
        "store = \"etcd\"\nendpoints = [\"127.0.0.1:2379\"]\nprefix = \"canaryd/\"\nlease_ttl = \"1s\"\ncert = \"/c.pem\"\nusername = \"u\"\n",
    )
    .unwrap_err();
    for want in [
        "canaryd.toml:10: key `cluster.endpoints[0]`: expected an etcd URL",
        "canaryd.toml:11: key `cluster.prefix`: expected a key prefix",
        "canaryd.toml:12: key `cluster.lease_ttl`: expected a duration from \"2s\"",
        "key `cluster.key`: missing",
        "key `cluster.password_file`: missing",
    ] {
        assert!(e.contains(want), "{want:?} not in:\n{e}");
    }
}

#[test]
fn etcd_without_endpoints_and_tls_over_http_are_refused() {
    let e = load("store = \"etcd\"\nprefix = \"/p\"\n").unwrap_err();
    assert!(
        e.contains("key `cluster.endpoints`: expected at least one"),
        "{e}"
    );
    let e = load(
        "store = \"etcd\"\nprefix = \"/p\"\nendpoints = [\"http://127.0.0.1:2379\"]\nca_file = \"/ca.pem\"\n",
    )
    .unwrap_err();
    assert!(e.contains("expected an https:// URL"), "{e}");
    let e = load(
        "store = \"etcd\"\nprefix = \"/p\"\nendpoints = [\"http://e:1\"]\nlease_ttl = \"2500ms\"\n",
    )
    .unwrap_err();
    assert!(e.contains("expected whole seconds"), "{e}");
}

#[test]
fn endpoints_with_the_file_store_are_a_mistake() {
    let e = load("endpoints = [\"http://127.0.0.1:2379\"]\n").unwrap_err();
    assert!(e.contains("key `cluster.store`: expected \"etcd\""), "{e}");
}
