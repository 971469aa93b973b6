//! The access log (`[proxy.access_log]`): one line per request, nginx's `combined` or JSON,
//! written off the request path.
//!
//! - `format`: a line, formatted straight into a buffer ([`Entry`] is what the request loop
//!   hands over when a request ends).
//! - `time`: the time strings, refreshed once a second.
//! - `writer`: the writer thread (one `write` per block, drops on failure, reopen on SIGUSR1).
//!
//! Each worker thread formats its lines into a thread-local 64 KiB buffer (no lock, no
//! syscall, no allocation per request); the buffer is handed to the writer thread over a
//! bounded queue when it is nearly full, or by the worker's once-a-second ticker. A full queue
//! (the disk is slower than the traffic) drops the block, counted in
//! `canaryd_access_log_dropped_total{reason="queue"}`; requests never wait for the disk. On a
//! graceful stop, [`AccessLog::flush`] has every worker hand over its buffer and waits for the
//! writer, so no line is lost.

mod format;
mod time;
mod writer;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use canaryd_config::{AccessLogConfig, AccessLogFormat};
use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

pub use format::Entry;
use time::Now;
use writer::{Msg, Sink, Writer};

/// A worker's buffer; handed over once it holds this much.
const BUF: usize = 64 * 1024;
const HAND_OVER_AT: usize = BUF - 4 * 1024;
/// Blocks the writer may be behind (4 MiB) before workers drop theirs.
const QUEUE: usize = 64;
/// How often a worker hands over what it has.
const TICK: Duration = Duration::from_secs(1);

/// Why the access log cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    #[error("proxy.access_log.path: cannot open {path} for appending: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("proxy.access_log: cannot start the writer thread: {0}")]
    Thread(std::io::Error),
}

/// The running access log, shared by every worker.
#[derive(Debug)]
pub struct AccessLog {
    format: AccessLogFormat,
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
    reopen: Arc<AtomicBool>,
    /// Blocks are being dropped (reported once per episode).
    overflowing: AtomicBool,
    /// Bumped by [`flush`](Self::flush); each worker's ticker answers with its buffer.
    flush_epoch: watch::Sender<u64>,
    tickers: AtomicUsize,
    /// (epoch, tickers that handed over their buffer for it).
    flushed: Mutex<(u64, usize)>,
    flushed_cv: Condvar,
}

/// What `/metrics` shows of the access log.
#[derive(Debug, Default)]
pub struct Counters {
    lines: AtomicU64,
    dropped_queue: AtomicU64,
    dropped_write: AtomicU64,
    reopens: AtomicU64,
}

/// A worker's lines not yet handed over.
struct Local {
    buf: Vec<u8>,
    lines: u64,
    now: Now,
    /// The log these lines belong to.
    log: Option<Arc<AccessLog>>,
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local {
        buf: Vec::new(),
        lines: 0,
        now: Now::default(),
        log: None,
    });
}

// === impl AccessLog ===

impl AccessLog {
    /// Opens the file (or standard output) and starts the writer thread.
    pub fn open(cfg: &AccessLogConfig) -> Result<Arc<Self>, AccessLogError> {
        let sink = if cfg.is_stdout() {
            Sink::Stdout
        } else {
            let path = PathBuf::from(&cfg.path);
            let file = writer::open(&path).map_err(|source| AccessLogError::Open {
                path: cfg.path.clone(),
                source,
            })?;
            Sink::File { path, file }
        };
        let counters = Arc::new(Counters::default());
        let reopen = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let writer = Writer::new(sink, counters.clone(), reopen.clone());
        std::thread::Builder::new()
            .name("canaryd-accesslog".into())
            .spawn(move || writer.run(rx))
            .map_err(AccessLogError::Thread)?;
        Ok(Arc::new(Self {
            format: cfg.format,
            tx,
            counters,
            reopen,
            overflowing: AtomicBool::new(false),
            flush_epoch: watch::Sender::new(0),
            tickers: AtomicUsize::new(0),
            flushed: Mutex::new((0, 0)),
            flushed_cv: Condvar::new(),
        }))
    }

    /// Logs one request: formatted into this worker's buffer, handed over when it is nearly
    /// full. Never waits, never makes a syscall.
    pub fn record(self: &Arc<Self>, entry: &Entry<'_>) {
        LOCAL.with(|cell| {
            let Ok(mut local) = cell.try_borrow_mut() else {
                // Not reached: nothing logs while a line is being formatted on this thread.
                self.counters.dropped_queue.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let local = &mut *local;
            if !local.log.as_ref().is_some_and(|l| Arc::ptr_eq(l, self)) {
                local.hand_over();
                local.log = Some(self.clone());
            }
            if local.buf.capacity() == 0 {
                local.buf.reserve_exact(BUF);
            }
            local.now.refresh();
            match self.format {
                AccessLogFormat::Combined => format::combined(&mut local.buf, entry, &local.now),
                AccessLogFormat::Json => format::json(&mut local.buf, entry, &local.now),
            }
            local.lines += 1;
            if local.buf.len() >= HAND_OVER_AT {
                local.hand_over();
            }
        });
    }

    /// Hands a block to the writer, or drops it (counted) when the writer is behind.
    fn send(&self, buf: Vec<u8>, lines: u64) {
        match self.tx.try_send(Msg::Block(buf, lines)) {
            Ok(()) => {
                if self.overflowing.load(Ordering::Relaxed)
                    && self.overflowing.swap(false, Ordering::AcqRel)
                {
                    tracing::info!("access log writer caught up; lines are written again");
                }
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters
                    .dropped_queue
                    .fetch_add(lines, Ordering::Relaxed);
                if !self.overflowing.swap(true, Ordering::AcqRel) {
                    tracing::warn!(
                        queue_blocks = QUEUE,
                        "access log writer is behind (slow disk?): dropping lines; see \
                         canaryd_access_log_dropped_total"
                    );
                }
            }
        }
    }

    /// The worker's ticker: hands over this thread's buffer every [`TICK`], and at once when
    /// [`flush`](Self::flush) asks. Runs on each worker thread for the life of the process.
    pub async fn ticker(self: Arc<Self>) {
        let mut epoch = self.flush_epoch.subscribe();
        self.tickers.fetch_add(1, Ordering::AcqRel);
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let flush = tokio::select! {
                _ = tick.tick() => None,
                changed = epoch.changed() => match changed {
                    Ok(()) => Some(*epoch.borrow_and_update()),
                    Err(_) => return,
                },
            };
            LOCAL.with(|cell| {
                if let Ok(mut local) = cell.try_borrow_mut() {
                    local.hand_over();
                }
            });
            if let Some(e) = flush {
                let mut done = self.flushed.lock();
                if done.0 < e {
                    *done = (e, 0);
                }
                if done.0 == e {
                    done.1 += 1;
                }
                self.flushed_cv.notify_all();
            }
        }
    }

    /// For the exit path: every worker hands over its buffer, then the writer writes
    /// everything queued; waits at most `within`. True when all of it was written (or failed
    /// to be, counted).
    pub fn flush(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut epoch = 0;
        self.flush_epoch.send_modify(|e| {
            *e += 1;
            epoch = *e;
        });
        let tickers = self.tickers.load(Ordering::Acquire);
        {
            let mut done = self.flushed.lock();
            while !(done.0 == epoch && done.1 >= tickers) {
                if self.flushed_cv.wait_until(&mut done, deadline).timed_out() {
                    tracing::warn!("access log: a worker did not hand over its lines in time");
                    return false;
                }
            }
        }
        let (ack, acked) = mpsc::sync_channel(1);
        let mut msg = Msg::Flush(ack);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    msg = m;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
        acked
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }

    /// Asks the writer to reopen the file (SIGUSR1); standard output is left as it is.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// Appends the access log's metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let c = &self.counters;
        let _ = write!(
            out,
            "# HELP canaryd_access_log_lines_total Access log lines written.\n\
             # TYPE canaryd_access_log_lines_total counter\n\
             canaryd_access_log_lines_total {}\n\
             # HELP canaryd_access_log_dropped_total Access log lines dropped: the writer was behind (queue) or the write failed (write: disk full, I/O error).\n\
             # TYPE canaryd_access_log_dropped_total counter\n\
             canaryd_access_log_dropped_total{{reason=\"queue\"}} {}\n\
             canaryd_access_log_dropped_total{{reason=\"write\"}} {}\n\
             # HELP canaryd_access_log_reopens_total Times the access log file was reopened (SIGUSR1).\n\
             # TYPE canaryd_access_log_reopens_total counter\n\
             canaryd_access_log_reopens_total {}\n",
            c.lines.load(Ordering::Relaxed),
            c.dropped_queue.load(Ordering::Relaxed),
            c.dropped_write.load(Ordering::Relaxed),
            c.reopens.load(Ordering::Relaxed),
        );
    }
}

// === impl Local ===

impl Local {
    /// Hands the lines held to their log's writer.
    fn hand_over(&mut self) {
        if self.lines == 0 {
            return;
        }
        let Some(log) = &self.log else {
            return;
        };
        let buf = std::mem::replace(&mut self.buf, Vec::with_capacity(BUF));
        log.send(buf, std::mem::take(&mut self.lines));
    }
}
