//! The decision log: one NDJSON line per evaluation and per transition, with every rule's
//! value and outcome, appended to `state_dir/decisions.ndjson` and kept in memory (the last
//! [`KEEP`] lines) for `GET /api/v1/decisions` and the status page. Each line is a
//! [`Decision`].
//!
//! Retention is built in ([`Retention`], `[rollout] decision_log_max_size` and
//! `decision_log_keep`): a line that would take the file past the size first renames it to
//! `decisions.ndjson.1` (`.1` becomes `.2`, … up to `.keep`; the oldest is deleted) and
//! starts a new file (`writer.rs`).
//!
//! The controller never waits on the disk for the log: [`DecisionLog::open_with`] (what the
//! daemon uses) hands every line to a writer thread of its own through a bounded queue
//! ([`QUEUE`] lines). [`DecisionLog::append`] only updates the in-memory ring and queues the
//! line; when the queue is full (the disk stalled) the line is dropped from the file — it stays
//! in memory — and counted. [`DecisionLog::flush`] waits, with a bound, for what is queued.
//! [`DecisionLog::render`] exports the counters.
//!
//! At start the ring is filled from the tail of the current file and, when that holds fewer
//! than [`KEEP`] lines, of the rotated ones, newest first — [`TAIL_BYTES`] read at most in all,
//! however large the files.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use canaryd_config::RolloutConfig;

use crate::api::Decision;

mod writer;

use writer::{rotated, FileWriter};

/// Lines kept in memory.
pub const KEEP: usize = 1_000;

/// Lines the writer thread's queue holds (at one line a second and a few per transition,
/// minutes of a stalled disk); beyond that new lines are dropped from the file.
pub const QUEUE: usize = 1_024;

/// Bytes read, across the current and the rotated files, to recover recent decisions at start.
pub const TAIL_BYTES: u64 = 4 << 20;

/// The log's file name in `state_dir`.
pub const FILE_NAME: &str = "decisions.ndjson";

/// How much of the log is kept on disk: `[rollout] decision_log_max_size` and
/// `decision_log_keep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Size in bytes past which the file is rotated (a single longer line still gets a file of
    /// its own).
    pub max_size: u64,
    /// Rotated files kept, `decisions.ndjson.1` (newest) to `.keep`; 0 keeps none (the full
    /// file is deleted).
    pub keep: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_size: RolloutConfig::DEFAULT_DECISION_LOG_MAX_SIZE,
            keep: RolloutConfig::DEFAULT_DECISION_LOG_KEEP,
        }
    }
}

impl From<&RolloutConfig> for Retention {
    fn from(r: &RolloutConfig) -> Self {
        Self {
            max_size: r.decision_log_max_size,
            keep: r.decision_log_keep,
        }
    }
}

/// What went wrong with the file, for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    /// Lines not queued: the writer's queue was full (or the writer is gone).
    dropped: AtomicU64,
    /// Lines the writer could not write (open or write failed).
    write_errors: AtomicU64,
    /// Rotations done.
    rotations: AtomicU64,
}

/// How many queued lines the writer has finished with (written or failed), for
/// [`DecisionLog::flush`].
#[derive(Debug, Default)]
struct Progress {
    done: Mutex<u64>,
    cv: Condvar,
}

impl Progress {
    fn advance(&self) {
        if let Ok(mut done) = self.done.lock() {
            *done += 1;
        }
        self.cv.notify_all();
    }
}

/// Where appended lines go.
#[derive(Debug)]
enum Sink {
    /// Written by the caller, before `append` returns ([`DecisionLog::open`]).
    Inline(Mutex<FileWriter>),
    /// Queued for the writer thread ([`DecisionLog::open_with`]).
    Queue {
        tx: SyncSender<Decision>,
        /// Lines queued so far.
        queued: AtomicU64,
        progress: Arc<Progress>,
        /// In a streak of full-queue drops (logged once per streak).
        overflowing: AtomicBool,
    },
    /// The writer thread could not be started: memory only.
    Memory,
}

/// The decision log: the file (with its retention) and the last [`KEEP`] lines in memory.
#[derive(Debug)]
pub struct DecisionLog {
    sink: Sink,
    recent: Mutex<VecDeque<Decision>>,
    counters: Arc<Counters>,
}

impl DecisionLog {
    /// Opens (appends to) `dir/decisions.ndjson` with the default [`Retention`], writing each
    /// line before [`append`](Self::append) returns: for tests and tools that read the file
    /// right after. The daemon uses [`open_with`](Self::open_with) /
    /// [`from_config`](Self::from_config), which never make the caller wait on the disk.
    pub fn open(dir: &Path) -> Self {
        Self::open_inline(dir, Retention::default())
    }

    /// Like [`open`](Self::open) with `retention`: lines are written by the caller.
    pub fn open_inline(dir: &Path, retention: Retention) -> Self {
        let path = dir.join(FILE_NAME);
        let recent = load_history(&path, retention.keep, TAIL_BYTES);
        let counters = Arc::new(Counters::default());
        let writer = FileWriter::new(path, retention, counters.clone());
        Self {
            sink: Sink::Inline(Mutex::new(writer)),
            recent: Mutex::new(recent),
            counters,
        }
    }

    /// `[rollout] state_dir`'s log with the section's retention ([`open_with`](Self::open_with)).
    pub fn from_config(rollout: &RolloutConfig) -> Self {
        Self::open_with(&rollout.state_dir, Retention::from(rollout))
    }

    /// Opens (appends to) `dir/decisions.ndjson`, keeping it to `retention`, and starts the
    /// thread that writes it: [`append`](Self::append) never waits on the disk. A log that
    /// cannot be opened is reported once; its lines are counted as write errors (and kept in
    /// memory) until it can.
    pub fn open_with(dir: &Path, retention: Retention) -> Self {
        let path = dir.join(FILE_NAME);
        let recent = load_history(&path, retention.keep, TAIL_BYTES);
        let counters = Arc::new(Counters::default());
        let writer = FileWriter::new(path, retention, counters.clone());
        let progress = Arc::new(Progress::default());
        let (tx, rx) = mpsc::sync_channel::<Decision>(QUEUE);
        let thread = {
            let progress = progress.clone();
            std::thread::Builder::new()
                .name("canaryd-declog".into())
                .spawn(move || {
                    let mut writer = writer;
                    // Ends once the log is dropped, after the lines still queued.
                    while let Ok(line) = rx.recv() {
                        writer.write(&line);
                        progress.advance();
                    }
                })
        };
        let sink = match thread {
            Ok(_) => Sink::Queue {
                tx,
                queued: AtomicU64::new(0),
                progress,
                overflowing: AtomicBool::new(false),
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the decision log writer; decisions are kept in memory only");
                Sink::Memory
            }
        };
        Self {
            sink,
            recent: Mutex::new(recent),
            counters,
        }
    }

    /// Appends one decision: to memory at once, to the file through the writer's queue (or
    /// inline, for a log from [`open`](Self::open)). Never waits on the disk with
    /// [`open_with`](Self::open_with): a full queue drops the line from the file, counted.
    pub fn append(&self, line: &Decision) {
        match &self.sink {
            Sink::Inline(writer) => {
                if let Ok(mut w) = writer.lock() {
                    w.write(line);
                }
            }
            Sink::Queue {
                tx,
                queued,
                overflowing,
                ..
            } => match tx.try_send(line.clone()) {
                Ok(()) => {
                    queued.fetch_add(1, Ordering::AcqRel);
                    if overflowing.swap(false, Ordering::AcqRel) {
                        tracing::info!(
                            dropped_total = self.counters.dropped.load(Ordering::Relaxed),
                            "decision log writer caught up; writing lines again"
                        );
                    }
                }
                Err(TrySendError::Full(_)) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    if !overflowing.swap(true, Ordering::AcqRel) {
                        tracing::warn!(
                            queue = QUEUE,
                            "decision log writer queue full (disk stalled?): dropping new lines \
                             from the file; they are kept in memory"
                        );
                    }
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            },
            Sink::Memory => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == KEEP {
                recent.pop_front();
            }
            recent.push_back(line.clone());
        }
    }

    /// Waits until every line appended before this call is written (or has failed to be), at
    /// most `within`; true when they all were. For the daemon's exit path. A log from
    /// [`open`](Self::open) has nothing queued.
    pub fn flush(&self, within: Duration) -> bool {
        let Sink::Queue {
            queued, progress, ..
        } = &self.sink
        else {
            return true;
        };
        let target = queued.load(Ordering::Acquire);
        let deadline = Instant::now() + within;
        let Ok(mut done) = progress.done.lock() else {
            return false;
        };
        while *done < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    pending = target - *done,
                    waited_ms = within.as_millis() as u64,
                    "decision log lines still queued (disk stalled?)"
                );
                return false;
            }
            done = match progress.cv.wait_timeout(done, left) {
                Ok((d, _)) => d,
                Err(_) => return false,
            };
        }
        true
    }

    /// The last `limit` decisions, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<Decision> {
        self.recent
            .lock()
            .map(|r| {
                r.iter()
                    .skip(r.len().saturating_sub(limit))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The newest decision.
    pub fn last(&self) -> Option<Decision> {
        self.recent.lock().ok().and_then(|r| r.back().cloned())
    }

    /// Appends the log's metrics (Prometheus text, with # HELP/# TYPE):
    /// `canaryd_decision_log_dropped_total`, `canaryd_decision_log_write_errors_total`,
    /// `canaryd_decision_log_rotations_total`.
    pub fn render(&self, out: &mut String) {
        let c = &self.counters;
        for (name, help, v) in [
            (
                "canaryd_decision_log_dropped_total",
                "Decision lines not written to decisions.ndjson because the writer's queue was full (disk stalled); they are kept in memory.",
                &c.dropped,
            ),
            (
                "canaryd_decision_log_write_errors_total",
                "Decision lines that could not be written to decisions.ndjson (disk full, permissions, read-only mount).",
                &c.write_errors,
            ),
            (
                "canaryd_decision_log_rotations_total",
                "Rotations of decisions.ndjson at decision_log_max_size.",
                &c.rotations,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// The last [`KEEP`] decisions of the log at `path` and, while there are fewer, of its rotated
/// files `.1` … `.keep`, oldest first: at most `budget` bytes read in all, from the end of each
/// file. Lines that are not a decision (a line cut by a crash, the first, partial line of a
/// tail, a line edited by hand or written by a newer canaryd with an action this one does not
/// know) are skipped; so are files that are missing, unreadable or not regular files.
fn load_history(path: &Path, keep: u32, budget: u64) -> VecDeque<Decision> {
    let mut recent = VecDeque::with_capacity(KEEP);
    let mut budget = budget;
    let files = std::iter::once(path.to_path_buf()).chain((1..=keep).map(|n| rotated(path, n)));
    for file in files {
        if recent.len() >= KEEP || budget == 0 {
            break;
        }
        let Some(bytes) = read_tail(&file, budget) else {
            continue;
        };
        budget = budget.saturating_sub(bytes.len() as u64);
        let text = String::from_utf8_lossy(&bytes);
        let want = KEEP - recent.len();
        let older: Vec<Decision> = text
            .lines()
            .rev()
            .filter_map(|l| serde_json::from_str::<Decision>(l).ok())
            .take(want)
            .collect();
        for d in older {
            recent.push_front(d);
        }
    }
    recent
}

/// The last `budget` bytes of the regular file at `path` (all of it when smaller).
fn read_tail(path: &Path, budget: u64) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut f = File::open(path).ok()?;
    let len = f.metadata().map_or(0, |m| m.len());
    f.seek(SeekFrom::Start(len.saturating_sub(budget))).ok()?;
    let mut bytes = Vec::new();
    f.take(budget).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests;
