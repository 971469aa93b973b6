//! Unit tests of `state.rs`.

use super::*;
use crate::rollout::Phase;

fn state() -> RolloutState {
    RolloutState {
        policy: "p".into(),
        phase: Phase::Progressing,
        step: 2,
        held_ms: 40 * 3_600_000,
        canary_percent: 50.0,
        step_started_at_ms: 1,
        updated_at_ms: 2,
        reason: "r".into(),
        paused_from: None,
    }
}

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "canaryd-state-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = fs::remove_dir_all(&d);
    d
}

#[test]
fn round_trip_and_missing() {
    let d = dir();
    let s = StateStore::new(&d);
    assert_eq!(s.load().unwrap(), None);
    s.save(&state()).unwrap();
    assert_eq!(s.load().unwrap(), Some(state()));
    assert!(!d.join("state.json.tmp").exists());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn corrupt_file_names_itself() {
    let d = dir();
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("state.json"), "{ not json").unwrap();
    let e = StateStore::new(&d).load().unwrap_err().to_string();
    assert!(
        e.starts_with(&format!(
            "{}: rollout state is not valid",
            d.join("state.json").display()
        )),
        "{e}"
    );
    assert!(e.contains("100 % to stable"), "{e}");
    fs::remove_dir_all(&d).unwrap();
}
