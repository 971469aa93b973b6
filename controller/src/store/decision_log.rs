//! The decision log: one NDJSON line per evaluation and per transition, with every rule's
//! value and outcome, appended to `state_dir/decisions.ndjson` and kept in memory (the last
//! [`KEEP`] lines) for `GET /api/v1/decisions`. Each line is a [`Decision`].

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::api::Decision;

/// Bytes read from the end of an existing log to recover recent decisions.
const TAIL_BYTES: u64 = 4 << 20;

/// The last [`KEEP`] decisions of an existing log (read from its last few MB only, however long
/// the file has grown), so the API shows history across restarts. Lines that are not a
/// decision (a line cut by a crash, the first, partial line of the tail, a line edited by
/// hand or written by a newer canaryd with an action this one does not know) are skipped.
fn load_tail(path: &Path) -> VecDeque<Decision> {
    use std::io::{Read, Seek, SeekFrom};
    let mut recent = VecDeque::with_capacity(KEEP);
    let Ok(mut f) = File::open(path) else {
        return recent;
    };
    let len = f.metadata().map_or(0, |m| m.len());
    if f.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .is_err()
    {
        return recent;
    }
    let mut bytes = Vec::new();
    if f.read_to_end(&mut bytes).is_err() {
        return recent;
    }
    let text = String::from_utf8_lossy(&bytes);
    for v in text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Decision>(l).ok())
        .take(KEEP)
    {
        recent.push_front(v);
    }
    recent
}

/// Lines kept in memory.
pub const KEEP: usize = 1_000;

#[derive(Debug)]
pub struct DecisionLog {
    file: Mutex<Option<File>>,
    recent: Mutex<VecDeque<Decision>>,
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
    pub fn append(&self, line: &Decision) {
        if let Ok(mut guard) = self.file.lock() {
            if let Some(f) = guard.as_mut() {
                match serde_json::to_vec(line) {
                    Ok(mut bytes) => {
                        bytes.push(b'\n');
                        if let Err(e) = f.write_all(&bytes) {
                            tracing::error!(error = %e, "cannot append to the decision log");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode a decision line"),
                }
            }
        }
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == KEEP {
                recent.pop_front();
            }
            recent.push_back(line.clone());
        }
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
}

#[cfg(test)]
mod tests;
