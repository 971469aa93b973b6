//! Unit tests of `systemd.rs`.

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
