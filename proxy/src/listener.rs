//! Per-thread accept loops: one single-threaded Pingora service per worker, all accepting on
//! the same listening sockets, the way nginx workers share theirs.
//!
//! Pingora's own listening service runs every connection of a service on one work-stealing
//! runtime. Under load its workers keep waking each other to steal the other's tasks, and
//! those wake-ups (futex, context switches) cost more CPU than the proxying itself (see
//! docs/performance.md). Its no-steal flavour is worse: connections are accepted on one thread
//! and spawned on another, so every readiness event crosses threads.
//!
//! Here each worker is its own Pingora service with exactly one thread. It owns a duplicate of
//! every listening socket (bound once, up front, so a busy port is a clear start-up error),
//! registers it with its own reactor, and serves what it accepts on the same thread, start to
//! end: no cross-thread wake-ups. Every worker is woken for a new connection and whichever
//! accepts first keeps it for its whole life, so spreading is only as even as the workers are
//! free (a burst of connections can land on one); nothing moves a busy worker's connections to
//! an idle one. Each worker also has its own upstream keepalive pool, like nginx's per-worker
//! `keepalive`.
//!
//! The accept loop is canaryd's own, not pingora-core's listening service: that one runs each
//! connection in a task whose future also holds its TLS handshake state and the handshake's
//! timeout, and boxes the app's future again inside it — about 3.5 KiB per idle connection
//! (measured with massif). Here a connection's task holds the app's own future, and its
//! socket is a plain pingora-core L4 stream with no buffers (see [`accept_loop`]).

use std::net::TcpListener as StdListener;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::{GetSocketDigest, SocketDigest};
use pingora_core::server::{ListenFds, ShutdownWatch};
use pingora_core::services::Service;
use tokio::net::TcpListener;

use crate::access_log::AccessLog;
use crate::request::ProxyApp;

/// One worker: its own accept loop on each listening socket, on the one thread Pingora gives
/// the service.
pub struct WorkerService {
    name: String,
    /// (address as configured, this worker's duplicate of the bound socket, the app serving
    /// it: plain or TLS). Owned until the service starts, so a server built and then dropped
    /// closes them.
    listeners: Vec<(String, StdListener, Arc<ProxyApp>)>,
    /// Its ticker runs on this worker's thread (hands over the thread's access log lines).
    access_log: Option<Arc<AccessLog>>,
}

/// Pause after an accept error such as EMFILE (too many open files), which would otherwise
/// repeat at once in a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

// === impl WorkerService ===

impl WorkerService {
    /// `listeners` are (address as configured, this worker's duplicate of the bound socket).
    pub fn new(
        name: String,
        app: ProxyApp,
        listeners: Vec<(String, StdListener)>,
        access_log: Option<Arc<AccessLog>>,
    ) -> Self {
        let app = Arc::new(app);
        Self {
            name,
            listeners: listeners
                .into_iter()
                .map(|(addr, socket)| (addr, socket, app.clone()))
                .collect(),
            access_log,
        }
    }

    /// Adds the TLS listeners, served by `app` on the same thread.
    pub fn with_tls(mut self, app: ProxyApp, listeners: Vec<(String, StdListener)>) -> Self {
        let app = Arc::new(app);
        self.listeners.extend(
            listeners
                .into_iter()
                .map(|(addr, socket)| (addr, socket, app.clone())),
        );
        self
    }
}

#[async_trait]
impl Service for WorkerService {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        if let Some(log) = self.access_log.take() {
            // On this service's runtime, whose one thread is the worker's.
            tokio::spawn(log.ticker());
        }
        let mut loops = tokio::task::JoinSet::new();
        for (addr, socket, app) in self.listeners.drain(..) {
            let listener = socket
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(socket));
            match listener {
                Ok(listener) => {
                    loops.spawn(accept_loop(addr, listener, app, shutdown.clone()));
                }
                // Not reached: the socket was bound and listening when the server was built.
                Err(e) => {
                    tracing::error!(listen = %addr, error = %e, "cannot accept on the socket")
                }
            }
        }
        while loops.join_next().await.is_some() {}
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        // Nothing is taken from the server's own fd table.
        Some(Vec::new())
    }
}

/// Accepts connections on `listener` until the shutdown signal, each served by `app` on a task
/// of its own on this thread. The listening socket (this worker's duplicate) closes when the
/// loop ends.
async fn accept_loop(
    addr: String,
    listener: TcpListener,
    app: Arc<ProxyApp>,
    mut shutdown: ShutdownWatch,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
                let _ = digest.peer_addr.set(Some(PingoraAddr::Inet(peer)));
                // No L4 buffers (`From` gives none): the sessions read into buffers taken
                // when data arrives, and canaryd's own HTTP/1 session writes a response header
                // and its first body bytes in one write from the worker's buffer, so a buffer
                // per connection would only be memory every idle connection holds.
                let mut stream = L4Stream::from(tcp);
                stream.set_socket_digest(digest);
                let app = app.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move { app.serve(Box::new(stream), &shutdown).await });
            }
            Err(e) => {
                tracing::warn!(listen = %addr, error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
