//! `[rollout] decision_log_max_size` and `decision_log_keep`: defaults, sizes written as bytes
//! or with a unit, the environment, and located errors.

use canaryd_config::{Config, RolloutConfig};

const BASE: &str = r#"[backends.stable]
servers = ["127.0.0.1:8080"]

[backends.canary]
servers = ["127.0.0.1:8081"]

[rollout]
"#;

fn load(rollout: &str) -> Result<Config, String> {
    Config::from_source("canaryd.toml", &format!("{BASE}{rollout}\n"), false)
        .map_err(|e| e.to_string())
}

#[test]
fn defaults_are_64_mib_and_5_files() {
    let c = load("").expect("loads");
    assert_eq!(c.rollout.decision_log_max_size, 64 << 20);
    assert_eq!(c.rollout.decision_log_keep, 5);
    assert_eq!(
        RolloutConfig::default().decision_log_max_size,
        RolloutConfig::DEFAULT_DECISION_LOG_MAX_SIZE
    );
}

#[test]
fn size_is_bytes_or_a_size_string() {
    for (text, bytes) in [
        ("65536", 65_536),
        ("\"64KiB\"", 65_536),
        ("\"16MiB\"", 16 << 20),
        ("\"1 GiB\"", 1 << 30),
        ("\"100MB\"", 100_000_000),
    ] {
        let c = load(&format!(
            "decision_log_max_size = {text}\ndecision_log_keep = 0"
        ))
        .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(c.rollout.decision_log_max_size, bytes, "{text}");
        assert_eq!(c.rollout.decision_log_keep, 0);
    }
}

#[test]
fn too_small_a_size_and_too_many_files_are_located() {
    let e = load("decision_log_max_size = \"1KiB\"\ndecision_log_keep = 101").unwrap_err();
    assert!(
        e.contains(
            "canaryd.toml:8: key `rollout.decision_log_max_size`: expected a size of at least \
             \"64KiB\" (65536 bytes) like \"64MiB\", found 1024"
        ),
        "{e}"
    );
    assert!(
        e.contains(
            "canaryd.toml:9: key `rollout.decision_log_keep`: expected a number of rotated \
             files from 0 to 100, found 101"
        ),
        "{e}"
    );
}

#[test]
fn bad_values_are_located() {
    let e = load("decision_log_max_size = \"64 parsecs\"").unwrap_err();
    assert!(
        e.contains("canaryd.toml:8: key `rollout.decision_log_max_size`: "),
        "{e}"
    );
    assert!(e.contains("\"64 parsecs\""), "{e}");
    let e = load("decision_log_max_size = -1").unwrap_err();
    assert!(
        e.contains("canaryd.toml:8: key `rollout.decision_log_max_size`: "),
        "{e}"
    );
    let e = load("decision_log_keep = -1").unwrap_err();
    assert!(
        e.contains("canaryd.toml:8: key `rollout.decision_log_keep`: "),
        "{e}"
    );
}

#[test]
fn environment_sets_them() {
    // The only test of this binary that reads CANARYD_* (`from_source(.., true)`).
    std::env::set_var("CANARYD_ROLLOUT__DECISION_LOG_MAX_SIZE", "1MiB");
    std::env::set_var("CANARYD_ROLLOUT__DECISION_LOG_KEEP", "2");
    let c = Config::from_source("canaryd.toml", &format!("{BASE}\n"), true);
    std::env::remove_var("CANARYD_ROLLOUT__DECISION_LOG_MAX_SIZE");
    std::env::remove_var("CANARYD_ROLLOUT__DECISION_LOG_KEEP");
    let c = c.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.rollout.decision_log_max_size, 1 << 20);
    assert_eq!(c.rollout.decision_log_keep, 2);
}
