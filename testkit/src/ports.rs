//! Free TCP ports on the loopback interface, for tests that must tell a
//! process which address to listen on before it starts.
//!
//! The port is found by binding a port and dropping the listener, so another process could
//! grab it in between; tests that can instead let the server pick (`--listen 127.0.0.1:0`) and
//! report its port should prefer that. It is picked at random below the kernel's ephemeral range
//! (`net.ipv4.ip_local_port_range`, 32768–60999 by default): a port the kernel hands out for
//! `:0` is also the next one it may give an outgoing connection's source address, and with
//! many tests connecting over loopback at once that race was lost often enough to fail tests.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};

/// Where ports are picked: above the well-known and registered ports most daemons use, below
/// the ephemeral range.
const RANGE: std::ops::Range<u16> = 20_000..32_768;

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    for _ in 0..64 {
        let port = fastrand::u16(RANGE);
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    // Every try was taken: let the kernel pick one.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the local address of a bound listener: {e}"))
        .port()
}

/// `127.0.0.1:<free_port()>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_addr_is_loopback_and_bindable() {
        let addr = free_addr();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
        TcpListener::bind(addr).expect("the free port should be bindable");
    }
}
