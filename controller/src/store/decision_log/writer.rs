//! Writing `decisions.ndjson`: one line at a time, rotating at the size, reopening the file
//! when it was moved or deleted behind canaryd's back, and surviving every disk error (counted,
//! logged once per streak, never a panic). Runs on the log's writer thread (or inline, for a
//! log from `DecisionLog::open`).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use canaryd_config::RolloutConfig;

use super::{Counters, Retention};
use crate::api::Decision;

/// `path.n`: the `n`-th newest rotated file.
pub(super) fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The log file and what is known of it.
#[derive(Debug)]
pub(super) struct FileWriter {
    path: PathBuf,
    retention: Retention,
    /// None until opened, and after an error (reopened for the next line).
    file: Option<File>,
    /// The file's size as last seen.
    size: u64,
    /// The file may end in the middle of a line (a crash, a partial write): the next line
    /// starts on a new one.
    cut: bool,
    /// In a streak of errors (its first one logged).
    failing: bool,
    /// Lines lost in the current streak.
    lost: u64,
    /// In a streak of failed rotations.
    rotate_failing: bool,
    counters: Arc<Counters>,
}

impl FileWriter {
    /// A writer for `path`, opened now so that a log that cannot be opened is reported at
    /// start-up.
    pub(super) fn new(path: PathBuf, retention: Retention, counters: Arc<Counters>) -> Self {
        let mut w = Self {
            path,
            retention,
            file: None,
            size: 0,
            cut: false,
            failing: false,
            lost: 0,
            rotate_failing: false,
            counters,
        };
        if let Err(e) = w.open_file() {
            tracing::error!(
                file = %w.path.display(),
                error = %e,
                "cannot open the decision log; decisions are kept in memory only until it can be"
            );
            // Reported: the first failed line does not log it again.
            w.failing = true;
        }
        w
    }

    /// Writes one line, rotating first when it would take the file past the size.
    pub(super) fn write(&mut self, line: &Decision) {
        let mut bytes = match serde_json::to_vec(line) {
            Ok(b) => b,
            Err(e) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "cannot encode a decision line");
                return;
            }
        };
        bytes.push(b'\n');
        self.follow_path();
        if self.file.is_none() {
            if let Err(e) = self.open_file() {
                self.failed("open", &e);
                return;
            }
        }
        let need = bytes.len() as u64 + u64::from(self.cut);
        if self.size > 0 && self.size.saturating_add(need) > self.retention.max_size {
            self.rotate();
            if self.file.is_none() {
                if let Err(e) = self.open_file() {
                    self.failed("open", &e);
                    return;
                }
            }
        }
        let prefix = usize::from(self.cut);
        if self.cut {
            bytes.insert(0, b'\n');
        }
        let Some(f) = self.file.as_mut() else {
            return;
        };
        match write_counted(f, &bytes) {
            Ok(()) => {
                self.size += bytes.len() as u64;
                self.cut = false;
                if self.failing {
                    tracing::info!(
                        file = %self.path.display(),
                        lost = self.lost,
                        "writing the decision log again"
                    );
                    self.failing = false;
                    self.lost = 0;
                }
            }
            Err((n, e)) => {
                self.size += n as u64;
                if n > 0 {
                    // Only the newline that ended a cut line got through: the file ends on a
                    // line again. More: it ends inside this one.
                    self.cut = n != prefix;
                }
                // Reopened for the next line (a file handle gone bad, a file replaced).
                self.file = None;
                self.failed("write", &e);
            }
        }
    }

    /// Counts a lost line; logs the first of a streak.
    fn failed(&mut self, op: &'static str, e: &io::Error) {
        self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
        self.lost += 1;
        if !self.failing {
            self.failing = true;
            tracing::error!(
                file = %self.path.display(),
                op,
                error = %e,
                "cannot write the decision log; decisions are kept in memory only until writing works again"
            );
        }
    }

    /// Opens (creates) the file for appending and learns its size and whether it ends on a
    /// line.
    fn open_file(&mut self) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        let meta = f.metadata()?;
        self.size = meta.len();
        self.cut = meta.is_file() && meta.len() > 0 && !ends_on_a_line(&self.path, meta.len());
        self.file = Some(f);
        Ok(())
    }

    /// Drops the handle when the file at `path` is no longer the one open (moved or deleted by
    /// hand or by a logrotate configuration left in place), and re-reads the size (emptied by
    /// `copytruncate`): the next line goes to the file at `path`.
    fn follow_path(&mut self) {
        let Some(f) = &self.file else { return };
        let (Ok(open), on_disk) = (f.metadata(), fs::metadata(&self.path)) else {
            return;
        };
        match on_disk {
            Ok(p) if p.dev() == open.dev() && p.ino() == open.ino() => self.size = open.len(),
            _ => {
                tracing::info!(
                    file = %self.path.display(),
                    "the decision log was moved or deleted; starting a new file"
                );
                self.file = None;
            }
        }
    }

    /// Renames the file to `.1` (shifting `.1` … to `.2` … `.keep`, the oldest deleted) or,
    /// with `keep = 0`, deletes it; the next line starts a new file. A failure is logged once
    /// per streak and writing goes on in the current file, past the size.
    fn rotate(&mut self) {
        self.file = None;
        match shift(&self.path, self.retention.keep) {
            Ok(()) => {
                self.counters.rotations.fetch_add(1, Ordering::Relaxed);
                self.size = 0;
                self.cut = false;
                if self.rotate_failing {
                    tracing::info!(file = %self.path.display(), "rotating the decision log again");
                    self.rotate_failing = false;
                }
                tracing::debug!(
                    file = %self.path.display(),
                    max_size = self.retention.max_size,
                    keep = self.retention.keep,
                    "decision log rotated"
                );
            }
            Err(e) => {
                if !self.rotate_failing {
                    tracing::error!(
                        file = %self.path.display(),
                        error = %e,
                        "cannot rotate the decision log; writing on past decision_log_max_size"
                    );
                    self.rotate_failing = true;
                }
            }
        }
    }
}

/// Shifts `path.keep-1` … `path.1` one up (`path.keep` is replaced: deleted), renames `path` to
/// `path.1`, or deletes `path` when `keep` is 0. Files past `keep` (left by a larger `keep`
/// before a restart) are deleted first.
fn shift(path: &Path, keep: u32) -> io::Result<()> {
    for n in keep.saturating_add(1)..=RolloutConfig::MAX_DECISION_LOG_KEEP {
        match fs::remove_file(rotated(path, n)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) => return Err(e),
        }
    }
    if keep == 0 {
        return missing_ok(fs::remove_file(path));
    }
    for n in (1..keep).rev() {
        missing_ok(fs::rename(rotated(path, n), rotated(path, n + 1)))?;
    }
    missing_ok(fs::rename(path, rotated(path, 1)))
}

fn missing_ok(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Whether the file of `len` bytes at `path` ends with a newline (unreadable: assumed so).
fn ends_on_a_line(path: &Path, len: u64) -> bool {
    let mut last = [0u8; 1];
    File::open(path)
        .and_then(|f| f.read_exact_at(&mut last, len - 1))
        .map_or(true, |()| last[0] == b'\n')
}

/// `write_all` that tells how many bytes got through before an error.
fn write_counted(f: &mut File, buf: &[u8]) -> Result<(), (usize, io::Error)> {
    let mut off = 0;
    while off < buf.len() {
        match f.write(&buf[off..]) {
            Ok(0) => {
                return Err((
                    off,
                    io::Error::new(io::ErrorKind::WriteZero, "wrote no bytes"),
                ))
            }
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((off, e)),
        }
    }
    Ok(())
}
