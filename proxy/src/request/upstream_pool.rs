//! The per-worker upstream keepalive pool: idle connections to upstream servers, kept on the
//! worker thread that used them (nginx's per-worker `keepalive`).
//!
//! Each worker runs every connection it accepts on its own thread from start to end, so its
//! pool is a thread-local: taking or returning a connection is a `RefCell` borrow and a `Vec`
//! push or pop — no lock, no task, no channel, no system call. Limits (`keepalive_pool` idle
//! connections per worker, `upstream_idle_timeout`) are applied lazily: an expired connection
//! is closed when the pool is next used for its server, and a full pool closes the connection
//! being returned.
//!
//! A connection the upstream closed while idle is noticed without a system call when its
//! readiness is already known (the reactor saw the FIN): [`take`] polls it once with an empty
//! buffer and a no-op waker and drops it if it is readable. One that closes after that check is
//! caught by the request loop, which retries it on a fresh connection (see `session.rs`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use pingora_core::protocols::Stream;
use tokio::io::{AsyncRead, ReadBuf};

use crate::clock::now_ms;
use crate::metrics::PoolCounters;

/// An idle connection and when it became idle.
struct IdleConn {
    stream: Stream,
    since_ms: u64,
}

/// This worker's idle connections, newest last per (pool key, server).
#[derive(Default)]
struct Idle {
    by_server: HashMap<(u32, SocketAddr), Vec<IdleConn>, KeyHash>,
    /// Idle connections per pool key.
    by_pool: HashMap<u32, usize, KeyHash>,
    total: usize,
}

/// The maps' hasher. Their keys are pool keys and server addresses from the configuration,
/// not input from clients, so nothing needs SipHash's flood resistance; SipHash's four lookups
/// per request cost more than the rest of the pool.
type KeyHash = BuildHasherDefault<MixHasher>;

/// Multiply-and-rotate over the key's words (FxHash's mixing step).
#[derive(Default)]
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(n.into());
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(n.into());
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n.into());
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Idle {
    fn forget(&mut self, key: u32, n: usize) {
        self.total -= n;
        if let Some(c) = self.by_pool.get_mut(&key) {
            *c -= n;
        }
    }
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

/// Takes an idle connection to `addr` (a server of the pool `key`, counted in `counters`)
/// that is neither expired nor closed by the upstream.
pub fn take(
    counters: &PoolCounters,
    key: u32,
    addr: SocketAddr,
    idle_timeout_ms: u64,
) -> Option<Stream> {
    let now = now_ms();
    loop {
        let conn = IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let idle = &mut *idle;
            let list = idle.by_server.get_mut(&(key, addr))?;
            let conn = list.pop()?;
            let expired = if now.saturating_sub(conn.since_ms) >= idle_timeout_ms {
                // The newest is expired, so are the older ones.
                std::mem::take(list)
            } else {
                Vec::new()
            };
            idle.forget(key, 1 + expired.len());
            Some((conn, expired))
        });
        let (mut conn, expired) = conn?;
        counters.upstream_idle(-1 - expired.len() as i64);
        // Closed outside the borrow.
        drop(expired);
        if now.saturating_sub(conn.since_ms) >= idle_timeout_ms {
            return None;
        }
        if is_open(&mut conn.stream) {
            return Some(conn.stream);
        }
        tracing::debug!(server = %addr, "pooled upstream connection closed while idle");
    }
}

/// Returns a connection whose last response is complete; closes it when the worker's pool
/// (`max_idle`) or the upstream's share of it (`pool_max`) is full.
pub fn put(
    counters: &PoolCounters,
    key: u32,
    addr: SocketAddr,
    stream: Stream,
    max_idle: usize,
    pool_max: Option<usize>,
) {
    let rejected = IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let of_pool = idle.by_pool.get(&key).copied().unwrap_or(0);
        if idle.total >= max_idle || pool_max.is_some_and(|m| of_pool >= m) {
            return Some(stream);
        }
        idle.total += 1;
        *idle.by_pool.entry(key).or_default() += 1;
        counters.upstream_idle(1);
        idle.by_server
            .entry((key, addr))
            .or_default()
            .push(IdleConn {
                stream,
                since_ms: now_ms(),
            });
        None
    });
    drop(rejected);
}

/// True when nothing is waiting to be read on `stream`: no FIN, no reset, no stray bytes.
/// Polls it once with an empty buffer; when the reactor has not seen it readable this is a
/// flag check, no system call.
fn is_open(stream: &mut Stream) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let mut empty = [0u8; 0];
    let mut buf = ReadBuf::new(&mut empty);
    matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}
