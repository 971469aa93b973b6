//! Unit tests of `decision_log.rs`.

use super::*;
use crate::api::{Action, Kind};
use crate::rollout::Phase;

/// An evaluation line told apart by its step.
fn decision(i: usize) -> Decision {
    Decision {
        action: Action::Healthy,
        alert_rule: None,
        by: None,
        canary_percent: 5.0,
        failed_rules: None,
        from_percent: None,
        from_step: None,
        gradual: None,
        held_s: Some(1.0),
        hold_reasons: None,
        kind: Kind::Evaluation,
        operator_reason: None,
        percent: None,
        policy: "p".into(),
        reason: "r".into(),
        rules: Some(vec![]),
        save_error: None,
        state: Phase::Progressing,
        step: i,
        to_step: None,
        ts: "2024-05-01T12:00:00.000Z".into(),
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("canaryd-dlog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn keeps_history_across_reopen_and_skips_cut_lines() {
    let dir = temp_dir("reopen");
    let log = DecisionLog::open(&dir);
    for i in 0..1_200 {
        log.append(&decision(i));
    }
    assert_eq!(log.recent(2), [decision(1198), decision(1199)]);
    drop(log);
    // A crash in the middle of a line.
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.join("decisions.ndjson"))
        .unwrap();
    f.write_all(b"{\"i\": 12").unwrap();
    let log = DecisionLog::open(&dir);
    let recent = log.recent(KEEP);
    assert_eq!(recent.len(), KEEP);
    assert_eq!(recent[KEEP - 1], decision(1199));
    assert_eq!(log.last(), Some(decision(1199)));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Lines as earlier versions wrote them still load (a reload line has neither `held_s` nor
/// `rules`); a line that is JSON but not a decision is skipped, never fatal.
#[test]
fn older_lines_load_and_foreign_lines_are_skipped() {
    let dir = temp_dir("older");
    std::fs::create_dir_all(&dir).unwrap();
    let lines = [
        r#"{"action":"start","by":"operator","canary_percent":5.0,"held_s":0.0,"kind":"transition","operator_reason":"go","policy":"p","reason":"operator: started: go","rules":[{"breaching_for_s":0.0,"dry_run":false,"for_s":0.0,"name":"errors","on_fail":"rollback","outcome":null,"source":"local","threshold":"> 0.05","value":null}],"state":"progressing","step":0,"ts":"2026-03-04T10:00:00.000Z"}"#,
        r#"{"i": 12}"#,
        r#"{"action":"teleport","canary_percent":5.0,"kind":"transition","policy":"p","reason":"?","state":"progressing","step":0,"ts":"2026-03-04T10:00:00.500Z"}"#,
        r#"{"action":"reload","canary_percent":5.0,"kind":"transition","policy":"p","reason":"configuration reloaded (SIGHUP)","state":"progressing","step":0,"ts":"2026-03-04T10:00:01.000Z"}"#,
    ];
    std::fs::write(dir.join("decisions.ndjson"), lines.join("\n") + "\n").unwrap();
    let log = DecisionLog::open(&dir);
    let recent = log.recent(KEEP);
    let actions: Vec<Action> = recent.iter().map(|d| d.action).collect();
    assert_eq!(actions, [Action::Start, Action::Reload]);
    assert_eq!(recent[0].operator_reason.as_deref(), Some("go"));
    assert_eq!(recent[0].rules()[0].name, "errors");
    assert_eq!((recent[1].held_s, recent[1].rules()), (None, &[][..]));
    // Appending keeps the file's lines as they were, and adds one in the same form.
    log.append(&decision(3));
    let text = std::fs::read_to_string(dir.join("decisions.ndjson")).unwrap();
    assert!(text.starts_with(&(lines.join("\n") + "\n")));
    assert_eq!(
        text.lines()
            .last()
            .map(serde_json::from_str::<Decision>)
            .and_then(Result::ok),
        Some(decision(3))
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
