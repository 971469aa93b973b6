//! The decision log: one NDJSON line per evaluation and per transition, with every rule's
//! value and outcome, appended to `state_dir/decisions.ndjson` and kept in memory (the last
//! [`KEEP`] lines) for `GET /api/v1/decisions`.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use serde_json::Value;

/// The last [`KEEP`] decisions of an existing log, so the API shows history across restarts.
/// Lines that are not JSON (a line cut by a crash) are skipped.
fn load_tail(path: &Path) -> VecDeque<Value> {
    let mut recent = VecDeque::with_capacity(KEEP);
    let Ok(text) = std::fs::read_to_string(path) else {
        return recent;
    };
    for line in text.lines().rev().take(KEEP) {
        if let Ok(v) = serde_json::from_str::<Value>(line) {
            recent.push_front(v);
        }
    }
    recent
}

/// Lines kept in memory.
pub const KEEP: usize = 1_000;

#[derive(Debug)]
pub struct DecisionLog {
    file: Mutex<Option<File>>,
    recent: Mutex<VecDeque<Value>>,
}

impl DecisionLog {
    /// Opens (appends to) `dir/decisions.ndjson`. A log that cannot be opened is reported once
    /// and decisions are then kept in memory only.
    pub fn open(dir: &Path) -> Self {
        let path = dir.join("decisions.ndjson");
        let recent = load_tail(&path);
        let file = std::fs::create_dir_all(dir)
            .and_then(|_| OpenOptions::new().create(true).append(true).open(&path));
        let file = match file {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot open the decision log; decisions are kept in memory only");
                None
            }
        };
        Self {
            file: Mutex::new(file),
            recent: Mutex::new(recent),
        }
    }

    /// Appends one decision.
    pub fn append(&self, line: Value) {
        if let Ok(mut guard) = self.file.lock() {
            if let Some(f) = guard.as_mut() {
                let mut bytes = line.to_string().into_bytes();
                bytes.push(b'\n');
                if let Err(e) = f.write_all(&bytes) {
                    tracing::error!(error = %e, "cannot append to the decision log");
                }
            }
        }
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == KEEP {
                recent.pop_front();
            }
            recent.push_back(line);
        }
    }

    /// The last `limit` decisions, oldest first.
    pub fn recent(&self, limit: usize) -> Vec<Value> {
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

    pub fn last(&self) -> Option<Value> {
        self.recent.lock().ok().and_then(|r| r.back().cloned())
    }
}
