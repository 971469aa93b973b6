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
mod tests;
