//! systemd integration without libsystemd: the `sd_notify(3)` protocol (readiness, status,
//! reload, stop and watchdog messages as datagrams to `$NOTIFY_SOCKET`) and the watchdog period
//! from `$WATCHDOG_USEC` / `$WATCHDOG_PID` (`sd_watchdog_enabled(3)`).
//!
//! Everything here is a no-op outside systemd: without `$NOTIFY_SOCKET`, [`notify`] answers
//! `Ok(false)`, and without `$WATCHDOG_USEC`, [`watchdog_interval`] answers `None`.
//!
//! Used by `canaryd serve` with `Type=notify` (see `deploy/canaryd.service`):
//! `READY=1` once the listeners are bound and the state is loaded, `WATCHDOG=1` every
//! [`watchdog_interval`], `STOPPING=1` on SIGTERM, and on SIGHUP [`reloading_message`] then
//! `READY=1` when the reload is done.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Sends `msg` (e.g. `"READY=1\nSTATUS=serving"`) to `$NOTIFY_SOCKET`. `Ok(false)` when not run
/// by systemd (no `NOTIFY_SOCKET`); `Ok(true)` when the datagram was sent.
///
/// Errors (the socket is gone, an unsupported address such as `vsock:`) are worth a log line
/// but not a stop: systemd then restarts or times the unit out by itself.
pub fn notify(msg: &str) -> io::Result<bool> {
    notify_with(std::env::var_os("NOTIFY_SOCKET").as_deref(), msg)
}

/// Half of `$WATCHDOG_USEC` when the watchdog is enabled for this process (`$WATCHDOG_PID`
/// unset or equal to our pid), else `None`. Send `"WATCHDOG=1"` this often.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// `"RELOADING=1\nMONOTONIC_USEC=<CLOCK_MONOTONIC µs>"`, the message `Type=notify-reload`
/// expects at the start of a reload (systemd ≥ 253 uses the timestamp to tell this reload's
/// `READY=1` from an earlier one; older versions ignore it). Send `"READY=1"` when done.
pub fn reloading_message() -> String {
    format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec())
}

/// `CLOCK_MONOTONIC` in microseconds, the clock systemd compares `MONOTONIC_USEC=` against.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux, so
    // the call cannot fail (and if it did, `ts` stays zeroed).
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// [`notify`] with the value of `$NOTIFY_SOCKET` given; unset or empty means "not under
/// systemd", as for `sd_notify(3)`.
fn notify_with(socket: Option<&OsStr>, msg: &str) -> io::Result<bool> {
    match socket {
        None => Ok(false),
        Some(s) if s.is_empty() => Ok(false),
        Some(s) => {
            let s = s.to_str().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "NOTIFY_SOCKET is not valid UTF-8",
                )
            })?;
            notify_to(s, msg).map(|()| true)
        }
    }
}

/// Sends `msg` as one datagram to `socket`: a filesystem path (`/run/systemd/notify`) or an
/// abstract socket name (`@name`, as systemd writes it).
fn notify_to(socket: &str, msg: &str) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let sent = if let Some(name) = socket.strip_prefix('@') {
        let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(msg.as_bytes(), &addr)?
    } else if socket.starts_with('/') {
        sock.send_to(msg.as_bytes(), socket)?
    } else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("NOTIFY_SOCKET={socket:?}: only a path or an @abstract name is supported"),
        ));
    };
    if sent != msg.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("NOTIFY_SOCKET: sent {sent} of {} bytes", msg.len()),
        ));
    }
    Ok(())
}

/// `sd_watchdog_enabled(3)`: `usec` must be a positive integer, and `pid`, when present, must
/// be `me`. Returns half the timeout, as systemd recommends.
fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use testkit::TempDir;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a datagram within 5 s");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn sends_one_datagram_to_a_path() {
        let dir = TempDir::new("canaryd-sd-notify");
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let s = path.to_str().unwrap();

        notify_to(s, "READY=1\nSTATUS=serving").unwrap();
        assert_eq!(recv(&server), "READY=1\nSTATUS=serving");
        // Through the env-shaped entry point too.
        assert!(notify_with(Some(OsStr::new(s)), "WATCHDOG=1").unwrap());
        assert_eq!(recv(&server), "WATCHDOG=1");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "canaryd-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();

        notify_to(&format!("@{name}"), "STOPPING=1").unwrap();
        assert_eq!(recv(&server), "STOPPING=1");
    }

    #[test]
    fn without_notify_socket_nothing_is_sent() {
        assert!(!notify_with(None, "READY=1").unwrap());
        assert!(!notify_with(Some(OsStr::new("")), "READY=1").unwrap());
    }

    #[test]
    fn errors_are_reported() {
        let dir = TempDir::new("canaryd-sd-notify");
        let missing = dir.path().join("nobody-listens.sock");
        let e = notify_to(missing.to_str().unwrap(), "READY=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");

        let e = notify_to("vsock:2:1234", "READY=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
        assert!(e.to_string().contains("vsock:2:1234"), "{e}");

        let e = notify_to("relative.sock", "READY=1").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
    }

    #[test]
    fn watchdog_interval_is_half_the_timeout_for_our_pid_only() {
        let me = 4242;
        let half = Some(Duration::from_millis(200));
        assert_eq!(watchdog_interval_from(Some("400000"), None, me), half);
        assert_eq!(
            watchdog_interval_from(Some("400000"), Some("4242"), me),
            half
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), None, me),
            Some(Duration::from_secs(15))
        );
        // Meant for another process (e.g. inherited from a parent).
        assert_eq!(watchdog_interval_from(Some("400000"), Some("1"), me), None);
        // Disabled or malformed.
        assert_eq!(watchdog_interval_from(None, None, me), None);
        assert_eq!(watchdog_interval_from(None, Some("4242"), me), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, me), None);
        assert_eq!(watchdog_interval_from(Some("-5"), None, me), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, me), None);
        assert_eq!(watchdog_interval_from(Some("400000"), Some("x"), me), None);
    }

    #[test]
    fn reloading_message_carries_the_monotonic_clock() {
        let before = monotonic_usec();
        let msg = reloading_message();
        let after = monotonic_usec();
        let usec: u64 = msg
            .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
            .unwrap_or_else(|| panic!("unexpected message {msg:?}"))
            .parse()
            .unwrap();
        assert!(
            before <= usec && usec <= after,
            "{before} <= {usec} <= {after}"
        );
        // CLOCK_MONOTONIC, not wall-clock time: far below 2001-09-09 in µs since the epoch.
        assert!(usec < 1_000_000_000_000_000);
        assert!(usec > 0);
    }
}
