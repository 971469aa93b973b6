//! Polling waits with deadlines, so tests wait for a condition instead of
//! sleeping a guessed amount of time, and fail with a message naming what
//! they were waiting for.

use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

const POLL_EVERY: Duration = Duration::from_millis(20);

/// Calls `f` every 20 ms until it returns true.
///
/// # Panics
/// With `timed out after {timeout:?} waiting for {what}` when `f` has not
/// returned true within `timeout`.
pub fn wait_until<F: FnMut() -> bool>(what: &str, timeout: Duration, mut f: F) {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL_EVERY);
    }
}

/// Waits until a TCP connection to `addr` succeeds.
///
/// # Panics
/// When no connection succeeded within `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) {
    wait_until(&format!("TCP port {addr} to accept"), timeout, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_once_true() {
        let mut calls = 0;
        wait_until("third call", Duration::from_secs(5), || {
            calls += 1;
            calls >= 3
        });
        assert_eq!(calls, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for never")]
    fn wait_until_panics_on_timeout() {
        wait_until("never", Duration::from_millis(50), || false);
    }
}
