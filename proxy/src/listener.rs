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

use std::net::TcpListener as StdListener;
use std::os::fd::IntoRawFd;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::{Fds, ListenFds, ShutdownWatch};
use pingora_core::services::listening::Service as ListeningService;
use pingora_core::services::Service;

use crate::access_log::AccessLog;

/// One worker: Pingora's listening service pinned to one thread, handed its own duplicates of
/// the listening sockets through a private fd table (Pingora adopts, and later closes, what it
/// finds there; a shared table would make every worker adopt, and close, the same fd).
pub struct WorkerService<A> {
    inner: ListeningService<A>,
    /// Owned until the service starts, so a server built and then dropped closes them.
    listeners: Vec<(String, StdListener)>,
    /// The `[proxy.tls]` listeners: a service of their own (their app does the handshake),
    /// run on this worker's thread next to the plain one.
    tls: Option<Box<WorkerService<A>>>,
    /// Its ticker runs on this worker's thread (hands over the thread's access log lines).
    access_log: Option<Arc<AccessLog>>,
}

/// Per-connection write buffer: enough for a response header and a small body to leave in
/// one `send`; larger bodies are written straight through. (1 460, one TCP segment, cost
/// 0.4 KiB more per idle connection for no gain on small responses.)
const WRITE_BUF: usize = 1024;

// === impl WorkerService ===

impl<A: ServerApp + Send + Sync + 'static> WorkerService<A> {
    /// `listeners` are (address as configured, this worker's duplicate of the bound socket).
    pub fn new(
        name: String,
        app: A,
        listeners: Vec<(String, StdListener)>,
        access_log: Option<Arc<AccessLog>>,
    ) -> Self {
        // Its thread count is ours (`threads()` below); Pingora asks the outer service.
        let mut inner = ListeningService::new(name, app);
        for (addr, _) in &listeners {
            // No L4 read buffer: the HTTP sessions read into their own header and body
            // buffers, taken when data arrives, so an idle connection holds none. A small write
            // buffer lets a short response leave in one write.
            inner.add_listener(
                ListenerConfig::tcp(addr.as_str()).l4_buffer(L4BufferSettings::new(0, WRITE_BUF)),
            );
        }
        Self {
            inner,
            listeners,
            access_log,
            tls: None,
        }
    }

    /// Adds the TLS listeners, served by `app` on the same thread.
    pub fn with_tls(mut self, app: A, listeners: Vec<(String, StdListener)>) -> Self {
        let name = format!("{}-tls", self.inner.name());
        self.tls = Some(Box::new(Self::new(name, app, listeners, None)));
        self
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> Service for WorkerService<A> {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        let Self {
            inner,
            listeners,
            access_log,
            tls,
        } = self;
        let tls_service = tls
            .as_mut()
            .map(|t| t.start_service(None, shutdown.clone(), listeners_per_fd));
        // Ownership passes to Pingora here: it adopts each fd from the table exactly once.
        let mut fds = Fds::new();
        for (addr, socket) in listeners.drain(..) {
            fds.add(addr, socket.into_raw_fd());
        }
        let fds: ListenFds = Arc::new(parking_lot::Mutex::new(fds));
        if let Some(log) = access_log.take() {
            // On this service's runtime, whose one thread is the worker's.
            tokio::spawn(log.ticker());
        }
        let plain = inner.start_service(Some(fds), shutdown, listeners_per_fd);
        match tls_service {
            Some(tls) => {
                tokio::join!(plain, tls);
            }
            None => plain.await,
        }
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        // Nothing is taken from the server's own fd table.
        Some(Vec::new())
    }
}
