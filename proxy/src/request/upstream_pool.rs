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
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use pingora_core::protocols::Stream;
use tokio::io::{AsyncRead, ReadBuf};

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::routing::Variant;

/// An idle connection and when it became idle.
struct IdleConn {
    stream: Stream,
    since_ms: u64,
}

/// This worker's idle connections, newest last per server.
#[derive(Default)]
struct Idle {
    by_server: HashMap<(Variant, SocketAddr), Vec<IdleConn>>,
    total: usize,
}

thread_local! {
    static IDLE: RefCell<Idle> = RefCell::new(Idle::default());
}

/// Takes an idle connection to `addr` (a server of `variant`) that is neither expired nor closed
/// by the upstream.
pub fn take(
    metrics: &Metrics,
    variant: Variant,
    addr: SocketAddr,
    idle_timeout_ms: u64,
) -> Option<Stream> {
    let now = now_ms();
    loop {
        let conn = IDLE.with(|idle| {
            let mut idle = idle.borrow_mut();
            let idle = &mut *idle;
            let list = idle.by_server.get_mut(&(variant, addr))?;
            let conn = list.pop()?;
            idle.total -= 1;
            if now.saturating_sub(conn.since_ms) >= idle_timeout_ms {
                // The newest is expired, so are the older ones.
                idle.total -= list.len();
                let expired = std::mem::take(list);
                return Some((conn, expired));
            }
            Some((conn, Vec::new()))
        });
        let (mut conn, expired) = conn?;
        metrics.upstream_idle(variant, -1 - expired.len() as i64);
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

/// Returns a connection whose last response is complete; closes it when the pool is full.
pub fn put(metrics: &Metrics, variant: Variant, addr: SocketAddr, stream: Stream, max_idle: usize) {
    let rejected = IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        if idle.total >= max_idle {
            return Some(stream);
        }
        idle.total += 1;
        metrics.upstream_idle(variant, 1);
        idle.by_server
            .entry((variant, addr))
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
