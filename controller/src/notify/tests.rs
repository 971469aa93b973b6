//! Unit tests of `notify.rs`.

use super::*;
use serde_json::{json, Value};

/// A decision from its JSON line.
fn line(v: Value) -> Decision {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("not a decision ({e})"))
}

fn decision() -> Decision {
    line(json!({
        "ts": "2025-01-01T00:00:00Z",
        "kind": "transition",
        "action": "rollback",
        "state": "rolled_back",
        "policy": "gateway-migration",
        "step": 1,
        "canary_percent": 0.0,
        "held_s": 12.5,
        "reason": "rule(s) error-rate failed",
        "rules": [],
        "failed_rules": ["error-rate"],
        "gradual": false,
    }))
}

#[test]
fn slack_text_rollback_with_previous_split() {
    let mut d = decision();
    d.from_percent = Some(25.0);
    assert_eq!(
        slack_text(&d),
        "canaryd gateway-migration: rollback at step 1 (25 % → 0 %): rule(s) error-rate failed"
    );
}

#[test]
fn slack_text_rollback_without_previous_split() {
    assert_eq!(
        slack_text(&decision()),
        "canaryd gateway-migration: rollback at step 1 (0 % canary): rule(s) error-rate failed"
    );
}

#[test]
fn slack_text_advance_alert_and_escaping() {
    let advance = line(json!({
        "kind": "transition",
        "action": "advance", "state": "progressing", "policy": "p", "step": 2,
        "from_step": 1, "to_step": 2, "canary_percent": 50.0,
        "reason": "step 1 held healthy for 4days", "ts": "t",
    }));
    assert_eq!(
        slack_text(&advance),
        "canaryd p: advance from step 1 to step 2 (50 % canary): step 1 held healthy for 4days"
    );
    let alert = line(json!({
        "kind": "transition",
        "action": "alert", "state": "progressing", "policy": "p", "step": 0,
        "canary_percent": 2.5, "reason": "holding: x", "alert_rule": "p99 <fast> & fine",
        "ts": "t",
    }));
    assert_eq!(
        slack_text(&alert),
        "canaryd p: alert at step 0 (2.5 % canary): p99 &lt;fast&gt; &amp; fine"
    );
    // Whatever is missing is left out, never a panic. (An empty object is no decision any
    // more: it does not deserialize, so it never reaches slack_text; the decision log skips
    // such lines.)
    assert!(serde_json::from_value::<Decision>(json!({})).is_err());
    assert_eq!(
        slack_text(&line(
            json!({"kind": "evaluation", "ts": "t", "action": "paused", "state": "paused", "policy": "p", "step": 3, "canary_percent": 25, "reason": ""})
        )),
        "canaryd p: paused at step 3 (25 % canary)"
    );
}

#[test]
fn backoff_doubles_from_half_a_second() {
    let ms: Vec<u128> = (0..5).map(|i| backoff(i).as_millis()).collect();
    assert_eq!(ms, [500, 1_000, 2_000, 4_000, 8_000]);
    // Never overflows, whatever `retries` says.
    assert!(backoff(40) >= backoff(31));
    assert!(backoff(u32::MAX) > Duration::ZERO);
}

#[test]
fn urls_are_checked_and_redacted() {
    assert!(check_url("http://127.0.0.1:9/hook").is_ok());
    assert!(check_url("https://hooks.slack.com/services/T/B/X").is_ok());
    assert!(check_url("ftp://x/").unwrap_err().contains("ftp"));
    assert!(check_url("hooks.example").is_err());
    assert_eq!(
        redact("https://user:pw@hooks.slack.com/services/T000/B000/XXXX"),
        "https://hooks.slack.com/services/…"
    );
    assert_eq!(
        redact("http://127.0.0.1:8099/hook"),
        "http://127.0.0.1:8099/hook"
    );
    assert_eq!(redact("http://h/hook?token=s"), "http://h/hook/…");
    assert_eq!(redact("http://h"), "http://h");
}

#[test]
fn render_with_no_targets_has_only_the_header() {
    let mut out = String::new();
    Notifier::disabled().render(&mut out);
    assert!(
        out.starts_with("# HELP canaryd_notifications_total "),
        "{out}"
    );
    assert!(!out.contains("canaryd_notifications_total{"), "{out}");
    Notifier::disabled().notify(&decision());
}

#[test]
fn the_tls_client_builds() {
    client().expect("reqwest client with the bundled roots");
    assert!(!webpki_roots::TLS_SERVER_ROOTS.is_empty());
}
