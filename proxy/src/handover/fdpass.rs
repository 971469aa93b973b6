//! Messages with file descriptors over a `SOCK_SEQPACKET` unix socket (`SCM_RIGHTS`): each
//! message arrives whole, with the descriptors sent along with it, or not at all. Received
//! descriptors are close-on-exec.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use socket2::{Domain, SockAddr, Socket, Type};

/// Most descriptors one message carries (the kernel's `SCM_MAX_FD` is 253).
pub(super) const MAX_FDS: usize = 64;

/// Largest message.
const MAX_MESSAGE: usize = 16 * 1024;

/// A connected `SOCK_SEQPACKET` unix socket, every read and write bounded by a timeout.
#[derive(Debug)]
pub(super) struct Channel {
    socket: Socket,
}

// === impl Channel ===

impl Channel {
    pub(super) fn connect(path: &Path, timeout: Duration) -> io::Result<Self> {
        let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
        socket.connect(&SockAddr::unix(path)?)?;
        Self::new(socket, timeout)
    }

    pub(super) fn new(socket: Socket, timeout: Duration) -> io::Result<Self> {
        let me = Self { socket };
        me.set_timeout(timeout)?;
        Ok(me)
    }

    pub(super) fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.socket.set_read_timeout(Some(timeout))?;
        self.socket.set_write_timeout(Some(timeout))
    }

    /// The uid of the process at the other end.
    pub(super) fn peer_uid(&self) -> io::Result<u32> {
        let cred =
            nix::sys::socket::getsockopt(&self.socket, nix::sys::socket::sockopt::PeerCredentials)?;
        Ok(cred.uid())
    }

    pub(super) fn send(&self, text: &str) -> io::Result<()> {
        self.send_with_fds(text, &[])
    }

    pub(super) fn send_with_fds(&self, text: &str, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        if fds.len() > MAX_FDS || text.len() > MAX_MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "message too large",
            ));
        }
        let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
        let rights = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
        let sent = sendmsg::<()>(
            self.socket.as_raw_fd(),
            &[IoSlice::new(text.as_bytes())],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        )?;
        if sent != text.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "message cut short",
            ));
        }
        Ok(())
    }

    /// The next message and the descriptors that came with it; an empty message is the other
    /// end closing.
    pub(super) fn recv(&self) -> io::Result<(String, Vec<OwnedFd>)> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut fds = Vec::new();
        let (bytes, whole) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = recvmsg::<()>(
                self.socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            )
            .map_err(|e| match e {
                nix::errno::Errno::EAGAIN => {
                    io::Error::new(io::ErrorKind::TimedOut, "no answer within the timeout")
                }
                e => e.into(),
            })?;
            // Owned before anything can fail, so none leaks.
            let cmsgs = msg.cmsgs();
            let whole = cmsgs.is_ok() && !msg.flags.contains(MsgFlags::MSG_TRUNC);
            for c in cmsgs.into_iter().flatten() {
                if let ControlMessageOwned::ScmRights(raw) = c {
                    // SAFETY: the kernel installed these descriptors in this process for this
                    // message (SCM_RIGHTS); nothing else refers to them yet.
                    fds.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
            (msg.bytes, whole)
        };
        if !whole {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message or descriptors cut short",
            ));
        }
        buf.truncate(bytes);
        let text = String::from_utf8(buf)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "message is not UTF-8"))?;
        Ok((text, fds))
    }
}

/// A listening `SOCK_SEQPACKET` unix socket at `path`, mode 0600: only this user (or root) can
/// connect. A socket file left there by an earlier process is replaced; any other file is an
/// error.
pub(super) fn listen(path: &Path) -> io::Result<Socket> {
    use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a socket",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let socket = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
    socket.bind(&SockAddr::unix(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    socket.listen(4)?;
    Ok(socket)
}
