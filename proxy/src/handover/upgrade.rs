//! `canaryd serve --upgrade`: a new process takes the listening sockets from the running one
//! over the running one's upgrade socket (`[proxy] upgrade_socket`), so that no connection is
//! refused and only one controller ever acts. One exchange, one message each way at a time:
//!
//! ```text
//! new → old  hello <pid>
//! old → new  listeners <pid>\n<key> <addr>\n…   + every listening socket (SCM_RIGHTS)
//!            | refused <reason>                   (stopping already, another user)
//!   new: matches them to its configuration, builds its data plane (the old one still serves)
//! new → old  take                                 | abort <reason>   (old: nothing changed)
//!   old: stops its controller and admin listener; the rollout state and decision log are on disk
//! old → new  stopped                              | refused <reason>
//!   new: loads the rollout state, starts its workers on the sockets (both accept for a moment)
//! new → old  serving
//!   old: stops accepting, drains within shutdown_grace, exits
//! old → new  draining
//!   new: starts its controller and admin listener
//! ```
//!
//! If the connection ends (the new process failed or died) between `stopped` and `serving`, the
//! old process runs its controller and admin listener again: a failed upgrade leaves it serving
//! as before. A new process that gets no `draining` exits without ever running its controller.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fdpass::{self, Channel};
use super::{HandoverError, Listeners, Origin};
use crate::plane::Drain;

/// What the old process does at each step; implemented by the binary, which owns the
/// controller. Called on the upgrade thread.
pub trait UpgradeHooks: Send + 'static {
    /// Stops the controller and the admin listener; returns once the rollout state and the
    /// decision log are on disk. An error refuses the upgrade and leaves both running.
    fn stop_control(&mut self) -> Result<(), String>;
    /// The upgrade failed after [`stop_control`](Self::stop_control): run them again.
    fn resume_control(&mut self);
    /// The new process serves: stop accepting, drain within `shutdown_grace`, exit.
    fn hand_over(&mut self);
}

/// How long the old process waits for the new one to build its data plane (`take`), and then
/// to serve (`serving`).
const OLD_WAITS_TAKE: Duration = Duration::from_secs(30);
const OLD_WAITS_SERVING: Duration = Duration::from_secs(60);
/// How long the new process waits for each answer (the controller's last save included).
const NEW_WAITS: Duration = Duration::from_secs(15);

/// Serves upgrade requests at `path` on a thread of its own, handing over every socket
/// `listeners` claimed. Refuses while `drain` says the process is stopping. Ends after one
/// successful hand-over.
pub fn serve_upgrades(
    path: &Path,
    listeners: Listeners,
    drain: std::sync::Arc<Drain>,
    mut hooks: impl UpgradeHooks,
) -> Result<(), HandoverError> {
    let err = |reason: String| HandoverError::Upgrade {
        path: path.display().to_string(),
        reason,
    };
    let socket = fdpass::listen(path).map_err(|e| err(format!("cannot listen: {e}")))?;
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("canaryd-upgrade".into())
        .spawn(move || loop {
            let conn = match socket.accept() {
                Ok((conn, _)) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, path = %path.display(), "upgrade socket: accept failed");
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            match Channel::new(conn, OLD_WAITS_TAKE)
                .map(|ch| hand_over(&ch, &listeners, &drain, &mut hooks))
            {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "upgrade socket: connection failed"),
            }
        })
        .map_err(|e| err(format!("cannot start its thread: {e}")))?;
    Ok(())
}

/// The old process's side of one exchange; `true` once it handed over.
fn hand_over(
    ch: &Channel,
    listeners: &Listeners,
    drain: &Drain,
    hooks: &mut impl UpgradeHooks,
) -> bool {
    let refuse = |reason: &str| {
        tracing::warn!(reason, "upgrade refused");
        let _ = ch.send(&format!("refused {reason}"));
        false
    };
    let me = std::process::id();
    let peer = match ch.recv() {
        Ok((hello, _)) => match hello.strip_prefix("hello ").map(str::parse::<u32>) {
            Some(Ok(pid)) => pid,
            _ => return refuse("not a canaryd upgrade request"),
        },
        Err(e) => {
            tracing::warn!(error = %e, "upgrade socket: no request");
            return false;
        }
    };
    // Beside the socket's 0600 mode: the sockets give whoever takes them all the traffic.
    // SAFETY: geteuid has no preconditions and cannot fail.
    let my_uid = unsafe { libc::geteuid() };
    match ch.peer_uid() {
        Ok(uid) if uid == my_uid || uid == 0 => {}
        Ok(uid) => {
            return refuse(&format!(
                "uid {uid} may not take over canaryd (uid {my_uid})"
            ))
        }
        Err(e) => return refuse(&format!("cannot check the caller: {e}")),
    }
    if drain.is_draining() {
        return refuse("this canaryd is stopping");
    }
    tracing::info!(
        new_pid = peer,
        "upgrade requested: handing over the listening sockets"
    );
    let mut manifest = format!("listeners {me}\n");
    for c in listeners.claimed() {
        manifest.push_str(&format!("{} {}\n", c.key, c.addr));
    }
    let fds: Vec<_> = listeners.claimed().iter().map(|c| c.fd()).collect();
    if let Err(e) = ch.send_with_fds(&manifest, &fds) {
        tracing::warn!(error = %e, "upgrade: cannot send the listening sockets");
        return false;
    }
    match ch.recv() {
        Ok((answer, _)) if answer == "take" => {}
        Ok((answer, _)) => {
            let reason = answer
                .strip_prefix("abort ")
                .unwrap_or("the connection closed");
            tracing::warn!(
                new_pid = peer,
                reason,
                "upgrade abandoned by the new process; serving on"
            );
            return false;
        }
        Err(e) => {
            tracing::warn!(new_pid = peer, error = %e, "upgrade abandoned; serving on");
            return false;
        }
    }
    if let Err(reason) = hooks.stop_control() {
        return refuse(&format!("cannot stop the controller: {reason}"));
    }
    tracing::info!(
        new_pid = peer,
        "controller stopped and state persisted for the new process"
    );
    let serving = ch.send("stopped").and_then(|()| {
        ch.set_timeout(OLD_WAITS_SERVING)?;
        ch.recv()
    });
    match serving {
        Ok((answer, _)) if answer == "serving" => {
            tracing::info!(
                new_pid = peer,
                "the new process serves: stopping accepting, draining"
            );
            hooks.hand_over();
            let _ = ch.send("draining");
            true
        }
        other => {
            let why = match other {
                Ok((answer, _)) if answer.is_empty() => "the new process went away".to_string(),
                Ok((answer, _)) => format!("unexpected answer {answer:?}"),
                Err(e) => e.to_string(),
            };
            tracing::error!(new_pid = peer, reason = %why, "upgrade failed after the controller stopped; resuming the controller and admin listener");
            hooks.resume_control();
            false
        }
    }
}

/// The new process's side: the connection to the running canaryd, from `hello` to `serving`.
#[derive(Debug)]
pub struct Upgrade {
    ch: Channel,
    path: PathBuf,
    /// The old process.
    pid: u32,
}

// === impl Upgrade ===

impl Upgrade {
    /// Asks the canaryd serving at `path` for its listening sockets.
    pub fn connect(path: &Path) -> Result<(Self, Listeners), HandoverError> {
        let err = |reason: String| HandoverError::Upgrade {
            path: path.display().to_string(),
            reason,
        };
        let ch = Channel::connect(path, NEW_WAITS).map_err(|e| {
            err(match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => format!(
                    "no running canaryd to upgrade from ({e}); start canaryd without --upgrade"
                ),
                _ => format!("cannot connect: {e}"),
            })
        })?;
        ch.send(&format!("hello {}", std::process::id()))
            .map_err(|e| err(format!("cannot ask: {e}")))?;
        let (answer, fds) = ch
            .recv()
            .map_err(|e| err(format!("no answer from the running canaryd: {e}")))?;
        let (pid, expected) = parse_manifest(&answer).map_err(err)?;
        if fds.len() != expected {
            return Err(err(format!(
                "the running canaryd (pid {pid}) announced {expected} listening sockets but sent {}",
                fds.len()
            )));
        }
        let listeners = Listeners::inherited(Origin::Upgrade { pid }, fds).map_err(err)?;
        tracing::info!(
            old_pid = pid,
            sockets = expected,
            "received the listening sockets"
        );
        Ok((
            Self {
                ch,
                path: path.to_path_buf(),
                pid,
            },
            listeners,
        ))
    }

    /// The old process.
    pub fn old_pid(&self) -> u32 {
        self.pid
    }

    /// Asks the old process to stop its controller and admin listener; returns once its
    /// rollout state is on disk. From here on the old process waits for [`serving`](Self::serving)
    /// and resumes if this process ends first.
    pub fn take_control(&self) -> Result<(), HandoverError> {
        self.ch
            .send("take")
            .map_err(|e| self.err(format!("cannot ask: {e}")))?;
        self.expect("stopped")
    }

    /// Tells the old process this one serves; returns once it drains (its controller will not
    /// come back), so this process may start its own.
    pub fn serving(self) -> Result<(), HandoverError> {
        self.ch
            .send("serving")
            .map_err(|e| self.err(format!("cannot tell: {e}")))?;
        self.expect("draining")
    }

    /// Gives up before [`take_control`](Self::take_control): the old process keeps everything.
    pub fn abort(self, reason: &str) {
        let _ = self.ch.send(&format!("abort {reason}"));
    }

    fn expect(&self, what: &str) -> Result<(), HandoverError> {
        match self.ch.recv() {
            Ok((answer, _)) if answer == what => Ok(()),
            Ok((answer, _)) => Err(self.err(match answer.strip_prefix("refused ") {
                Some(reason) => format!("the running canaryd (pid {}) refused: {reason}", self.pid),
                None if answer.is_empty() => {
                    format!("the running canaryd (pid {}) went away", self.pid)
                }
                None => format!("unexpected answer {answer:?}"),
            })),
            Err(e) => Err(self.err(format!(
                "no answer from the running canaryd (pid {}): {e}",
                self.pid
            ))),
        }
    }

    fn err(&self, reason: String) -> HandoverError {
        HandoverError::Upgrade {
            path: self.path.display().to_string(),
            reason,
        }
    }
}

/// `listeners <pid>\n<key> <addr>\n…` → (pid, number of sockets); `refused <reason>` → why.
pub(super) fn parse_manifest(text: &str) -> Result<(u32, usize), String> {
    if let Some(reason) = text.strip_prefix("refused ") {
        return Err(format!("the running canaryd refused: {reason}"));
    }
    let mut lines = text.lines();
    let pid = lines
        .next()
        .and_then(|l| l.strip_prefix("listeners "))
        .and_then(|p| p.parse::<u32>().ok())
        .ok_or_else(|| format!("not a canaryd upgrade answer: {text:?}"))?;
    Ok((pid, lines.filter(|l| !l.is_empty()).count()))
}
