//! Where the listening sockets come from, and how they outlive a process: bound here, inherited
//! from systemd socket activation (`LISTEN_FDS`), or taken from the running canaryd over its
//! upgrade socket (`canaryd serve --upgrade`, see `upgrade.rs`; the fd passing itself is
//! `fdpass.rs`).
//!
//! Every listening socket canaryd uses — each proxy listener, the admin listener, whatever kind
//! is added later — is claimed through one [`Listeners`] by its configured address. Inherited
//! sockets are matched to those addresses by `getsockname`, so the order systemd or the old
//! process hands them over in does not matter; a configured address with no inherited socket,
//! or an inherited socket no configured address claims, is an error naming both sides (a
//! changed `listen` needs a full restart). [`Listeners`] keeps one duplicate of each claimed
//! socket, which is what a later upgrade hands over: the kernel's accept queue lives as long as
//! any process holds it, so a connection is never refused while the sockets change hands.

mod fdpass;
mod upgrade;

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub use upgrade::{serve_upgrades, Upgrade, UpgradeHooks};

/// Why the listening sockets cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    #[error("{key}: cannot listen on {addr}: {source}")]
    Bind {
        key: String,
        addr: String,
        source: std::io::Error,
    },
    #[error("{key}: {origin} hands over no socket for {addr} (it hands over {offered}); a changed listen address needs a full restart (or a matching socket unit)")]
    NotInherited {
        key: String,
        addr: String,
        origin: Origin,
        offered: String,
    },
    #[error("{origin} hands over {unclaimed} which the configuration does not listen on (configured: {configured}); a changed listen address needs a full restart (or a matching socket unit)")]
    Unclaimed {
        origin: Origin,
        unclaimed: String,
        configured: String,
    },
    #[error("systemd socket activation: {0}")]
    Systemd(String),
    #[error("upgrade socket {path}: {reason}")]
    Upgrade { path: String, reason: String },
}

/// Where inherited sockets came from (for messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// None inherited: every address is bound here.
    Bound,
    /// `LISTEN_FDS` from systemd (or `systemd-socket-activate`).
    Systemd,
    /// The running canaryd, over its upgrade socket.
    Upgrade { pid: u32 },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Bound => f.write_str("this process"),
            Origin::Systemd => f.write_str("systemd (LISTEN_FDS)"),
            Origin::Upgrade { pid } => write!(f, "the running canaryd (pid {pid})"),
        }
    }
}

/// One listening socket in use: the configuration key and address that claimed it, and a
/// duplicate kept for handing over.
#[derive(Debug)]
pub struct Claimed {
    pub key: String,
    pub addr: String,
    socket: OwnedFd,
}

impl Claimed {
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// The process's listening sockets: inherited ones waiting to be claimed, and every one
/// claimed so far.
#[derive(Debug)]
pub struct Listeners {
    origin: Origin,
    inherited: Vec<(SocketAddr, OwnedFd)>,
    claimed: Vec<Claimed>,
}

// === impl Listeners ===

impl Listeners {
    /// Nothing inherited: every claimed address is bound.
    pub fn bind_here() -> Self {
        Self {
            origin: Origin::Bound,
            inherited: Vec::new(),
            claimed: Vec::new(),
        }
    }

    /// Sockets handed over by `origin`, each a listening TCP socket.
    fn inherited(origin: Origin, fds: Vec<OwnedFd>) -> Result<Self, String> {
        let inherited = fds
            .into_iter()
            .enumerate()
            .map(|(i, fd)| {
                let sock = socket2::SockRef::from(&fd);
                let local = sock
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_socket())
                    .ok_or_else(|| format!("socket #{i} is not a TCP socket"))?;
                match (sock.r#type(), sock.is_listener()) {
                    (Ok(t), Ok(true)) if t == socket2::Type::STREAM => {}
                    _ => {
                        return Err(format!(
                            "socket #{i} ({local}) is not a listening TCP socket"
                        ))
                    }
                }
                // Tokio adopts it as is; the flag is shared by every duplicate.
                sock.set_nonblocking(true)
                    .map_err(|e| format!("socket #{i} ({local}): {e}"))?;
                Ok((local, fd))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            origin,
            inherited,
            claimed: Vec::new(),
        })
    }

    /// The sockets systemd passed (`LISTEN_PID` is this process, `LISTEN_FDS` of them from fd
    /// 3), or `None` when not socket-activated. The variables are removed, so nothing this
    /// process starts inherits them.
    pub fn from_systemd() -> Result<Option<Self>, HandoverError> {
        let pid = std::env::var("LISTEN_PID").ok();
        let fds = std::env::var("LISTEN_FDS").ok();
        for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(var);
        }
        let Some(n) = listen_fds(pid.as_deref(), fds.as_deref(), std::process::id())
            .map_err(HandoverError::Systemd)?
        else {
            return Ok(None);
        };
        let fds = (0..n)
            .map(|i| {
                let fd = LISTEN_FDS_START + i as RawFd;
                // SAFETY: sd_listen_fds(3): systemd passes `LISTEN_FDS` open descriptors from
                // fd 3 to the process `LISTEN_PID` names, which was checked to be this one. They
                // are taken once (the variables are gone) and owned here from now on.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                set_cloexec(&fd).map(|()| fd)
            })
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|e| HandoverError::Systemd(e.to_string()))?;
        Self::inherited(Origin::Systemd, fds)
            .map(Some)
            .map_err(HandoverError::Systemd)
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The listening socket for `addr` (configuration key `key`, for messages): the inherited
    /// one whose local address it is, or a new one bound here when nothing was inherited.
    pub fn claim(&mut self, key: &str, addr: &str) -> Result<TcpListener, HandoverError> {
        let bind_err = |source| HandoverError::Bind {
            key: key.into(),
            addr: addr.into(),
            source,
        };
        let parsed: SocketAddr = addr
            .parse()
            .map_err(|e| bind_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let socket = if self.origin == Origin::Bound {
            bind(&parsed).map_err(bind_err)?
        } else {
            let Some(i) = self.inherited.iter().position(|(a, _)| *a == parsed) else {
                return Err(HandoverError::NotInherited {
                    key: key.into(),
                    addr: addr.into(),
                    origin: self.origin.clone(),
                    offered: self.describe_inherited(),
                });
            };
            TcpListener::from(self.inherited.swap_remove(i).1)
        };
        let keep = socket.try_clone().map_err(bind_err)?;
        self.claimed.push(Claimed {
            key: key.into(),
            addr: addr.into(),
            socket: keep.into(),
        });
        Ok(socket)
    }

    /// Call once every listener is claimed: an inherited socket left over is an error.
    pub fn finish(&self) -> Result<(), HandoverError> {
        if self.inherited.is_empty() {
            return Ok(());
        }
        Err(HandoverError::Unclaimed {
            origin: self.origin.clone(),
            unclaimed: self.describe_inherited(),
            configured: self
                .claimed
                .iter()
                .map(|c| format!("{} {}", c.key, c.addr))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Every listening socket in use, in the order claimed.
    pub fn claimed(&self) -> &[Claimed] {
        &self.claimed
    }

    fn describe_inherited(&self) -> String {
        if self.inherited.is_empty() {
            return "no other socket".into();
        }
        self.inherited
            .iter()
            .map(|(a, _)| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `sd_listen_fds(3)`: how many sockets systemd passed to process `me`; `None` when not
/// socket-activated (no `LISTEN_PID`, or another process's).
fn listen_fds(pid: Option<&str>, fds: Option<&str>, me: u32) -> Result<Option<usize>, String> {
    let Some(pid) = pid else { return Ok(None) };
    let pid: u32 = pid
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_PID={pid:?} is not a process id"))?;
    if pid != me {
        return Ok(None);
    }
    let fds = fds.ok_or("LISTEN_PID is set but LISTEN_FDS is not")?;
    let n: usize = fds
        .trim()
        .parse()
        .map_err(|_| format!("LISTEN_FDS={fds:?} is not a count"))?;
    if n == 0 {
        return Err("LISTEN_FDS=0: the socket unit passed no socket".into());
    }
    Ok(Some(n))
}

/// The first fd systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

fn set_cloexec(fd: &OwnedFd) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a descriptor this process owns; F_SETFD only changes its flags.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    if rc == -1 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Binds a listening socket: `SO_REUSEADDR`; an IPv6 address takes IPv6 only (`IPV6_V6ONLY`, as
/// nginx's default `ipv6only=on`), so list `0.0.0.0:80` too for IPv4. Pingora re-`listen`s each adopted fd with its own
/// backlog (65535, capped by `net.core.somaxconn`).
fn bind(addr: &SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(*addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // As nginx (`ipv6only=on`, its default): `[::]:80` takes IPv6 only, so the usual pair
        // `0.0.0.0:80` + `[::]:80` binds both instead of colliding on the IPv4 side.
        socket.set_only_v6(true)?;
    }
    socket.bind(&(*addr).into())?;
    socket.listen(LISTEN_BACKLOG)?;
    // Tokio adopts it as is; the flag is shared by every duplicate.
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Until Pingora adopts the socket and raises it.
const LISTEN_BACKLOG: i32 = 4096;

#[cfg(test)]
mod tests;
