//! Unit tests of `decision_log.rs`.

use super::*;

#[test]
fn keeps_history_across_reopen_and_skips_cut_lines() {
    let dir = std::env::temp_dir().join(format!("canaryd-dlog-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let log = DecisionLog::open(&dir);
    for i in 0..1_200 {
        log.append(serde_json::json!({ "i": i }));
    }
    assert_eq!(
        log.recent(2),
        [
            serde_json::json!({"i": 1198}),
            serde_json::json!({"i": 1199})
        ]
    );
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
    assert_eq!(recent[KEEP - 1], serde_json::json!({"i": 1199}));
    assert_eq!(log.last(), Some(serde_json::json!({"i": 1199})));
    std::fs::remove_dir_all(&dir).unwrap();
}
