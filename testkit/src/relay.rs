//! A TCP relay that stands between one client and its server so a test can cut the path on
//! one machine: [`Relay::pass`] forwards bytes both ways; [`Relay::pause`] stops forwarding
//! (connections stay open and hang, new ones are accepted and hang too — a partition whose
//! packets are dropped); [`Relay::reset`] closes every connection with a TCP RST and resets
//! new ones at once (a peer that refuses). Fleet tests give each canaryd its own relay to
//! etcd.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const PASS: u8 = 0;
const PAUSE: u8 = 1;
const RESET: u8 = 2;

/// A running relay; stopped on drop.
#[derive(Debug)]
pub struct Relay {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    mode: AtomicU8,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

impl Relay {
    /// Listens on a free loopback port and forwards to `target`.
    ///
    /// # Panics
    /// When it cannot listen.
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay listen");
        let addr = listener.local_addr().expect("relay addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if s.mode.load(Ordering::Relaxed) == RESET {
                            rst(&client);
                            continue;
                        }
                        let Ok(server) = TcpStream::connect(target) else {
                            rst(&client);
                            continue;
                        };
                        if let Ok(mut c) = s.conns.lock() {
                            c.extend(client.try_clone().ok());
                            c.extend(server.try_clone().ok());
                        }
                        pump(&s, &client, &server);
                        pump(&s, &server, &client);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Relay { addr, shared }
    }

    /// `http://ADDR`, as a `[cluster] endpoints` entry.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Forward bytes (again). Connections that were paused resume where they stopped.
    pub fn pass(&self) {
        self.shared.mode.store(PASS, Ordering::Relaxed);
    }

    /// Stop forwarding; connections hang.
    pub fn pause(&self) {
        self.shared.mode.store(PAUSE, Ordering::Relaxed);
    }

    /// RST every connection, and every new one until [`pass`](Self::pass).
    pub fn reset(&self) {
        self.shared.mode.store(RESET, Ordering::Relaxed);
        if let Ok(mut c) = self.shared.conns.lock() {
            for s in c.drain(..) {
                rst(&s);
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.reset();
    }
}

/// Closes `s` with a RST (SO_LINGER 0).
fn rst(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = s.shutdown(Shutdown::Both);
}

/// Copies `from` → `to` on a thread, holding bytes while paused, ending on reset or EOF.
fn pump(shared: &Arc<Shared>, from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    let s = shared.clone();
    thread::spawn(move || {
        let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            if s.stop.load(Ordering::Relaxed) || s.mode.load(Ordering::Relaxed) == RESET {
                rst(&from);
                rst(&to);
                return;
            }
            if s.mode.load(Ordering::Relaxed) == PAUSE {
                thread::sleep(Duration::from_millis(10));
                continue;
            }
            match from.read(&mut buf) {
                Ok(0) => {
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        rst(&from);
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => {
                    rst(&to);
                    return;
                }
            }
        }
    });
}
