//! Unit tests of `decision_log.rs` and `writer.rs`: history across reopen and rotated files,
//! rotation at the size (shifting `.1` … `.keep`, the oldest deleted), the writer thread's
//! full queue (a stalled "disk": a FIFO nobody reads), write errors (`/dev/full`).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

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
        leader: None,
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

/// The lines of one file, each a decision (panics on anything else: the writer never leaves a
/// cut or empty line behind).
fn file_lines(path: &Path) -> Vec<Decision> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// Every line on disk, oldest first: `.keep` … `.1`, then the current file.
fn on_disk(dir: &Path, keep: u32) -> Vec<Decision> {
    let path = dir.join(FILE_NAME);
    let mut all = Vec::new();
    for n in (1..=keep).rev() {
        all.extend(file_lines(&rotated(&path, n)));
    }
    all.extend(file_lines(&path));
    all
}

fn line_len() -> u64 {
    serde_json::to_vec(&decision(1000)).unwrap().len() as u64 + 1
}

fn metric(log: &DecisionLog, name: &str) -> u64 {
    let mut out = String::new();
    log.render(&mut out);
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {out}"))
        .parse()
        .unwrap()
}

#[test]
fn rotates_at_the_size_and_keeps_keep_files_the_oldest_deleted() {
    let dir = temp_dir("rotate");
    let per_file = 10;
    let retention = Retention {
        max_size: per_file * line_len(),
        keep: 3,
    };
    let path = dir.join(FILE_NAME);
    let log = DecisionLog::open_with(&dir, retention);
    // Exactly one full file: no rotation yet.
    for i in 1000..1010 {
        log.append(&decision(i));
    }
    assert!(log.flush(Duration::from_secs(10)));
    assert_eq!(file_lines(&path).len(), 10);
    assert!(!rotated(&path, 1).exists());
    // The next line starts a new file; the full one is `.1`.
    log.append(&decision(1010));
    assert!(log.flush(Duration::from_secs(10)));
    assert_eq!(
        file_lines(&rotated(&path, 1)),
        (1000..1010).map(decision).collect::<Vec<_>>()
    );
    assert_eq!(file_lines(&path), [decision(1010)]);
    assert_eq!(metric(&log, "canaryd_decision_log_rotations_total"), 1);
    // Three more files: `.1` shifts to `.2`, `.3`, then is deleted.
    for i in 1011..1050 {
        log.append(&decision(i));
    }
    assert!(log.flush(Duration::from_secs(10)));
    assert_eq!(metric(&log, "canaryd_decision_log_rotations_total"), 4);
    assert_eq!(
        file_lines(&rotated(&path, 3)),
        (1010..1020).map(decision).collect::<Vec<_>>()
    );
    assert_eq!(
        file_lines(&rotated(&path, 2)),
        (1020..1030).map(decision).collect::<Vec<_>>()
    );
    assert_eq!(
        file_lines(&rotated(&path, 1)),
        (1030..1040).map(decision).collect::<Vec<_>>()
    );
    assert_eq!(
        file_lines(&path),
        (1040..1050).map(decision).collect::<Vec<_>>()
    );
    assert!(!rotated(&path, 4).exists());
    for f in [
        path.clone(),
        rotated(&path, 1),
        rotated(&path, 2),
        rotated(&path, 3),
    ] {
        assert!(std::fs::metadata(&f).unwrap().len() <= retention.max_size);
    }
    // Memory still has every line, across the rotations.
    assert_eq!(
        log.recent(KEEP),
        (1000..1050).map(decision).collect::<Vec<_>>()
    );
    assert_eq!(metric(&log, "canaryd_decision_log_dropped_total"), 0);
    assert_eq!(metric(&log, "canaryd_decision_log_write_errors_total"), 0);
    drop(log);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keep_zero_deletes_the_full_file() {
    let dir = temp_dir("keep0");
    let retention = Retention {
        max_size: 4 * line_len(),
        keep: 0,
    };
    let log = DecisionLog::open_inline(&dir, retention);
    for i in 1000..1010 {
        log.append(&decision(i));
    }
    let path = dir.join(FILE_NAME);
    assert_eq!(
        file_lines(&path),
        (1008..1010).map(decision).collect::<Vec<_>>()
    );
    assert!(!rotated(&path, 1).exists());
    assert_eq!(
        log.recent(3),
        (1007..1010).map(decision).collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Files past `keep` (a larger `keep` before a restart) go at the next rotation.
#[test]
fn files_past_a_lowered_keep_are_deleted() {
    let dir = temp_dir("lowered");
    let path = dir.join(FILE_NAME);
    let big = Retention {
        max_size: 2 * line_len(),
        keep: 5,
    };
    let log = DecisionLog::open_inline(&dir, big);
    for i in 1000..1012 {
        log.append(&decision(i));
    }
    drop(log);
    assert!(rotated(&path, 5).exists());
    let log = DecisionLog::open_inline(&dir, Retention { keep: 2, ..big });
    for i in 1012..1014 {
        log.append(&decision(i));
    }
    assert!(rotated(&path, 2).exists());
    for n in 3..=5 {
        assert!(!rotated(&path, n).exists(), ".{n}");
    }
    assert_eq!(
        on_disk(&dir, 2),
        (1008..1014).map(decision).collect::<Vec<_>>()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// At open the ring is filled from the current file and then `.1`, `.2`, … newest first.
#[test]
fn history_is_read_across_rotated_files_at_open() {
    let dir = temp_dir("history");
    let retention = Retention {
        max_size: 64 << 10,
        keep: 5,
    };
    let log = DecisionLog::open_with(&dir, retention);
    for i in 1000..2500 {
        log.append(&decision(i));
        // Within the queue: nothing dropped.
        if i % 500 == 0 {
            assert!(log.flush(Duration::from_secs(10)));
        }
    }
    assert!(log.flush(Duration::from_secs(10)));
    assert_eq!(metric(&log, "canaryd_decision_log_dropped_total"), 0);
    drop(log);
    let path = dir.join(FILE_NAME);
    assert!(
        rotated(&path, 4).exists(),
        "the test needs KEEP lines over several files"
    );
    let current = file_lines(&path).len();
    assert!(current < KEEP, "{current}");

    let log = DecisionLog::open_with(&dir, retention);
    assert_eq!(
        log.recent(KEEP),
        (1500..2500).map(decision).collect::<Vec<_>>()
    );
    assert_eq!(log.last(), Some(decision(2499)));
    // With no rotated files kept, only the current file is read.
    let log = DecisionLog::open_with(
        &dir,
        Retention {
            keep: 0,
            ..retention
        },
    );
    assert_eq!(log.recent(KEEP).len(), current);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The history read is bounded across all the files, never a whole file.
#[test]
fn history_read_is_bounded() {
    let dir = temp_dir("bounded");
    let retention = Retention {
        max_size: 20 * line_len(),
        keep: 5,
    };
    let log = DecisionLog::open_inline(&dir, retention);
    for i in 1000..1100 {
        log.append(&decision(i));
    }
    let path = dir.join(FILE_NAME);
    // 30 whole lines and a piece: the last 30 lines, across the current file and `.1`.
    let got = load_history(&path, retention.keep, 30 * line_len() + 7);
    assert_eq!(got, (1070..1100).map(decision).collect::<Vec<_>>());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A line cut by a crash is ended before the next one, which stays readable.
#[test]
fn a_cut_last_line_is_ended_before_the_next() {
    let dir = temp_dir("cut");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(FILE_NAME);
    let first = serde_json::to_string(&decision(1)).unwrap();
    std::fs::write(&path, format!("{first}\n{{\"action\":\"hea")).unwrap();
    let log = DecisionLog::open(&dir);
    log.append(&decision(2));
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[1], "{\"action\":\"hea");
    assert_eq!(
        serde_json::from_str::<Decision>(lines[2]).unwrap(),
        decision(2)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A stalled disk (a FIFO nobody reads: the writer blocks in `write`) never blocks `append`:
/// past the queue lines are dropped from the file, counted, and kept in memory; `flush` gives
/// up at its bound, and succeeds once the disk moves again.
#[test]
fn a_full_queue_drops_lines_counted_and_never_blocks() {
    let dir = temp_dir("stall");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(FILE_NAME);
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    // A reader that reads nothing (yet), so that the writer's open does not block.
    let mut reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    let log = DecisionLog::open_with(&dir, Retention::default());
    let n = 5 * QUEUE as u64;
    let started = Instant::now();
    for i in 0..n {
        log.append(&decision(i as usize));
    }
    assert!(started.elapsed() < Duration::from_secs(5), "append waited");
    let dropped = metric(&log, "canaryd_decision_log_dropped_total");
    assert!(dropped > 0, "nothing dropped");
    assert_eq!(log.recent(1), [decision(n as usize - 1)]);
    assert_eq!(log.recent(KEEP).len(), KEEP);
    // The disk is stalled: flush gives up at its bound.
    let started = Instant::now();
    assert!(!log.flush(Duration::from_millis(100)));
    assert!(started.elapsed() < Duration::from_secs(2));

    // The disk moves again: everything queued is written.
    let done = Arc::new(AtomicBool::new(false));
    let drain = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let mut buf = [0u8; 1 << 16];
            loop {
                match std::io::Read::read(&mut reader, &mut buf) {
                    Ok(0) => break,
                    Ok(k) => bytes.extend_from_slice(&buf[..k]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if done.load(Ordering::Acquire) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            bytes
        })
    };
    assert!(log.flush(Duration::from_secs(10)));
    done.store(true, Ordering::Release);
    let bytes = drain.join().unwrap();
    let written = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
    assert_eq!(written + dropped, n);
    assert_eq!(metric(&log, "canaryd_decision_log_write_errors_total"), 0);
    drop(log);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A full disk (`/dev/full`: every write fails with ENOSPC) costs the file its lines, counted,
/// never a panic or a stall; memory keeps them; writing resumes when the disk does.
#[test]
fn a_write_error_is_counted_and_writing_resumes() {
    let dir = temp_dir("full");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(FILE_NAME);
    std::os::unix::fs::symlink("/dev/full", &path).unwrap();
    let log = DecisionLog::open_with(&dir, Retention::default());
    for i in 0..3 {
        log.append(&decision(i));
    }
    assert!(log.flush(Duration::from_secs(10)));
    assert_eq!(metric(&log, "canaryd_decision_log_write_errors_total"), 3);
    assert_eq!(log.recent(KEEP), (0..3).map(decision).collect::<Vec<_>>());
    // Space again (the file is replaced by a regular one): the next line is written.
    std::fs::remove_file(&path).unwrap();
    log.append(&decision(3));
    assert!(log.flush(Duration::from_secs(10)));
    assert_eq!(file_lines(&path), [decision(3)]);
    assert_eq!(metric(&log, "canaryd_decision_log_write_errors_total"), 3);
    assert_eq!(metric(&log, "canaryd_decision_log_dropped_total"), 0);
    drop(log);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A state directory that cannot be created: lines are counted as write errors and kept in
/// memory; nothing panics.
#[test]
fn an_unusable_directory_keeps_lines_in_memory() {
    let dir = temp_dir("nodir");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("file"), "").unwrap();
    let log = DecisionLog::open_with(&dir.join("file"), Retention::default());
    log.append(&decision(1));
    assert!(log.flush(Duration::from_secs(10)));
    assert_eq!(log.last(), Some(decision(1)));
    assert_eq!(metric(&log, "canaryd_decision_log_write_errors_total"), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A logrotate left in place (rename and create): the next line goes to the file at the path.
#[test]
fn a_moved_file_is_followed() {
    let dir = temp_dir("moved");
    let path = dir.join(FILE_NAME);
    let log = DecisionLog::open(&dir);
    log.append(&decision(1));
    std::fs::rename(&path, dir.join("elsewhere")).unwrap();
    log.append(&decision(2));
    assert_eq!(file_lines(&dir.join("elsewhere")), [decision(1)]);
    assert_eq!(file_lines(&path), [decision(2)]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn render_has_help_type_and_every_counter() {
    let dir = temp_dir("render");
    let log = DecisionLog::open(&dir);
    let mut out = String::new();
    log.render(&mut out);
    for name in [
        "canaryd_decision_log_dropped_total",
        "canaryd_decision_log_write_errors_total",
        "canaryd_decision_log_rotations_total",
    ] {
        assert!(
            out.contains(&format!("# TYPE {name} counter\n{name} 0\n")),
            "{out}"
        );
        assert!(out.contains(&format!("# HELP {name} ")), "{out}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
