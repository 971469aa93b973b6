//! The decision log's built-in retention, end to end: canaryd with the smallest
//! `decision_log_max_size` (64 KiB) and `decision_log_keep = 2` under steady traffic and a
//! running policy whose evaluation lines are large (many local rules, one line a second) —
//! the log rotates to `.1`, `.2`, the oldest file is deleted, no file passes the size,
//! `/api/v1/decisions` still answers the lines no longer on disk, every line in memory is on
//! disk after a graceful stop, and after a restart the history is read back across the
//! rotated files.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::{wait_until, Canaryd, FakeGateway, Setup, Traffic};

const MAX_SIZE: u64 = 64 << 10;
const KEEP: u32 = 2;

/// A policy that stays at 5 % for an hour, judged by `rules` local rules with long names, so
/// that each evaluation line is some 15 KB: a rotation every few seconds.
fn big_policy(dir: &Path, rules: usize) -> std::path::PathBuf {
    let mut text = String::from(
        "name = \"retention\"\ninterval = \"1s\"\n\
         [[steps]]\nweight = 5\nhold = \"1h\"\n\
         [[steps]]\nweight = 100\nhold = \"1h\"\n",
    );
    for i in 0..rules {
        text.push_str(&format!(
            "[[rules]]\nname = \"canary-error-ratio-judged-locally-to-fill-the-decision-log-{i:03}\"\n\
             source = \"local\"\nsignal = \"error_ratio\"\nwindow = \"5s\"\n\
             fail_when = \"> 0.99\"\non_fail = \"alert\"\non_no_data = \"pass\"\n"
        ));
    }
    let path = dir.join("retention.toml");
    std::fs::write(&path, text).expect("write policy");
    path
}

fn log_path(d: &Canaryd, n: u32) -> std::path::PathBuf {
    match n {
        0 => d.dir.path().join("decisions.ndjson"),
        n => d.dir.path().join(format!("decisions.ndjson.{n}")),
    }
}

/// The lines of one file, each parsed (a cut or empty line fails the test).
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {e}: {l}", path.display())))
        .collect()
}

#[test]
fn the_log_rotates_at_its_size_and_history_reads_across_the_rotation() {
    let policy_dir = testkit::TempDir::new("canaryd-policy");
    let policy = big_policy(policy_dir.path(), 80);
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.rollout = format!(
        "policy = \"{}\"\nautostart = true\ndecision_log_max_size = \"64KiB\"\ndecision_log_keep = {KEEP}\n",
        policy.display()
    );
    let mut d = Canaryd::start(&setup);
    let traffic = Traffic::start(d.proxy, 2);

    // The first line ever logged is the rollout's start; once `.2` no longer begins with it,
    // the first file has been rotated out: at least three rotations.
    wait_until("the first decision", Duration::from_secs(10), || {
        !d.decisions().is_empty()
    });
    let first = d.decisions()[0].clone();
    assert_eq!(first["action"], "start", "{first:#}");
    wait_until(
        "three rotations of decisions.ndjson",
        Duration::from_secs(120),
        || {
            let oldest = lines(&log_path(&d, KEEP));
            oldest.first().is_some_and(|l| *l != first)
        },
    );
    assert!(
        d.metric("canaryd_decision_log_rotations_total") >= 3.0,
        "{}",
        d.metric("canaryd_decision_log_rotations_total")
    );
    assert_eq!(d.metric("canaryd_decision_log_dropped_total"), 0.0);
    assert_eq!(d.metric("canaryd_decision_log_write_errors_total"), 0.0);

    // Memory still has everything since the start, files rotated out included.
    let in_memory = d.decisions();
    assert_eq!(in_memory.first(), Some(&first));
    let status = d.status();
    assert_eq!(status["state"], "progressing", "{status:#}");

    // A graceful stop writes out what is queued; then the files are still.
    let answers = traffic.stop();
    assert_eq!(
        answers.keys().copied().collect::<Vec<_>>(),
        [200],
        "{answers:?}"
    );
    d.signal(libc::SIGTERM);
    assert!(
        d.wait_exit(Duration::from_secs(15)).is_some(),
        "canaryd did not stop; log:\n{}",
        d.log()
    );

    // `.1` and `.2`, no `.3`; none past the size.
    for n in 0..=KEEP {
        let size = std::fs::metadata(log_path(&d, n))
            .unwrap_or_else(|e| panic!("{}: {e}", log_path(&d, n).display()))
            .len();
        assert!(
            size <= MAX_SIZE,
            "{}: {size} bytes",
            log_path(&d, n).display()
        );
    }
    assert!(!log_path(&d, KEEP + 1).exists());
    let mut on_disk = Vec::new();
    for n in (0..=KEEP).rev() {
        on_disk.extend(lines(&log_path(&d, n)));
    }
    assert!(!on_disk.contains(&first), "the first file was not deleted");
    // Every line the API showed from the oldest one still on disk on is on disk, in order.
    let from = in_memory
        .iter()
        .position(|l| *l == on_disk[0])
        .expect("the oldest line on disk was in memory");
    let shown = &in_memory[from..];
    assert!(on_disk.len() >= shown.len(), "lines missing on disk");
    assert_eq!(shown, &on_disk[..shown.len()]);

    // After a restart the history is read back from the current file and then `.1`, `.2`.
    d.kill9_and_restart();
    let reloaded = d.decisions();
    assert!(reloaded.len() >= on_disk.len(), "{} lines", reloaded.len());
    assert_eq!(&reloaded[..on_disk.len()], &on_disk[..]);
}
