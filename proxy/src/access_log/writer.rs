//! The access log's writer thread: it receives full blocks of lines from the workers over a
//! bounded queue and writes each with one `write` (a file opened for appending, or standard
//! output). The workers never wait for it: when it is behind, they drop blocks (counted).
//!
//! A failed write (full disk, I/O error) drops the lines it did not write, counted, and is
//! reported once per episode; a line cut short by a full disk is truncated away, so the file
//! holds whole lines only. SIGUSR1 sets a flag that makes the thread reopen the path before
//! its next write, or within [`POLL`] when idle (logrotate's `postrotate kill -USR1`); a
//! reopen that fails keeps the file that is open, as nginx does.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use super::Counters;

/// How often an idle writer looks at the reopen flag.
const POLL: Duration = Duration::from_millis(200);

/// What the workers send.
#[derive(Debug)]
pub enum Msg {
    /// Whole lines, and how many.
    Block(Vec<u8>, u64),
    /// Answered once everything queued before it is written.
    Flush(SyncSender<()>),
}

/// Where the lines go.
#[derive(Debug)]
pub enum Sink {
    Stdout,
    File { path: PathBuf, file: File },
}

/// The writer's state, owned by its thread.
#[derive(Debug)]
pub struct Writer {
    pub sink: Sink,
    pub counters: Arc<Counters>,
    pub reopen: Arc<AtomicBool>,
    /// A write failed and nothing was written since (reported once).
    failing: bool,
    /// The last write stopped inside a line: end that line first.
    torn: bool,
}

/// Opens `path` for appending (created `0644` if missing, as nginx does).
pub fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(path)
}

// === impl Writer ===

impl Writer {
    pub fn new(sink: Sink, counters: Arc<Counters>, reopen: Arc<AtomicBool>) -> Self {
        Self {
            sink,
            counters,
            reopen,
            failing: false,
            torn: false,
        }
    }

    /// Runs until every sender is gone.
    pub fn run(mut self, rx: Receiver<Msg>) {
        loop {
            let msg = rx.recv_timeout(POLL);
            if self.reopen.swap(false, Ordering::AcqRel) {
                self.reopen_file();
            }
            match msg {
                Ok(Msg::Block(buf, lines)) => self.write(&buf, lines),
                Ok(Msg::Flush(done)) => {
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn reopen_file(&mut self) {
        let Sink::File { path, file } = &mut self.sink else {
            return;
        };
        match open(path) {
            Ok(f) => {
                *file = f;
                self.torn = false;
                self.counters.reopens.fetch_add(1, Ordering::Relaxed);
                tracing::info!(path = %path.display(), "access log reopened");
            }
            Err(e) => tracing::error!(
                path = %path.display(),
                error = %e,
                "cannot reopen the access log; writing to the file already open"
            ),
        }
    }

    /// Writes `buf` (`lines` whole lines); what could not be written is counted as dropped.
    fn write(&mut self, buf: &[u8], lines: u64) {
        if self.torn && self.write_all(b"\n").is_ok() {
            self.torn = false;
        }
        let (done, err) = match self.write_all(buf) {
            Ok(()) => (buf.len(), None),
            Err((done, e)) => (done, Some(e)),
        };
        let written = if done == buf.len() {
            lines
        } else {
            self.torn = done > 0 && buf[done - 1] != b'\n' && !self.cut_torn_line(buf, done);
            buf[..done].iter().filter(|&&b| b == b'\n').count() as u64
        };
        self.counters.lines.fetch_add(written, Ordering::Relaxed);
        let dropped = lines - written;
        if dropped > 0 {
            self.counters
                .dropped_write
                .fetch_add(dropped, Ordering::Relaxed);
        }
        match err {
            Some(e) if !self.failing => {
                self.failing = true;
                tracing::error!(
                    error = %e,
                    dropped,
                    "access log write failed (disk full?): dropping lines until writes succeed; \
                     see canaryd_access_log_dropped_total"
                );
            }
            None if self.failing => {
                self.failing = false;
                tracing::info!(
                    dropped_total = self.counters.dropped_write.load(Ordering::Relaxed),
                    "access log writes succeed again"
                );
            }
            _ => {}
        }
    }

    /// After a short write that stopped inside a line (the disk filled up), truncates the file
    /// back to the end of the last whole line. Whether it could.
    fn cut_torn_line(&mut self, buf: &[u8], done: usize) -> bool {
        let Sink::File { file, .. } = &mut self.sink else {
            return false;
        };
        let whole = buf[..done]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let torn = (done - whole) as u64;
        file.metadata()
            .and_then(|m| file.set_len(m.len().saturating_sub(torn)))
            .is_ok()
    }

    /// Writes all of `buf`; on an error, how much was written before it.
    fn write_all(&mut self, buf: &[u8]) -> Result<(), (usize, io::Error)> {
        let mut done = 0;
        while done < buf.len() {
            let r = match &mut self.sink {
                Sink::Stdout => io::stdout().lock().write(&buf[done..]),
                Sink::File { file, .. } => file.write(&buf[done..]),
            };
            match r {
                Ok(0) => return Err((done, io::ErrorKind::WriteZero.into())),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err((done, e)),
            }
        }
        if let Sink::Stdout = self.sink {
            if let Err(e) = io::stdout().lock().flush() {
                return Err((done, e));
            }
        }
        Ok(())
    }
}
