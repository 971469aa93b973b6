//! Building and running the Pingora server: worker threads, listeners running canaryd's own
//! request loop (`request/`), and a graceful stop bounded by `shutdown_grace`.
//!
//! Pingora's own SIGTERM path sleeps the full grace period and then drops whatever is still
//! running. canaryd instead watches its in-flight counter: on SIGTERM it stops accepting and
//! keeping connections alive, and exits as soon as the last request has finished, or when
//! `shutdown_grace` runs out, whichever comes first. SIGINT stops at once. Either way the access
//! log's buffered lines are written before the process ends. An upgrade that
//! handed the sockets to a new process ([`StopHandle`]) stops the same way as SIGTERM.
//!
//! The listening sockets come from [`Listeners`] (bound here, inherited from systemd, or taken
//! from the process being upgraded; `handover/`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use canaryd_config::DataPlaneConfig;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, SignalKind};

use crate::access_log::AccessLog;
use crate::handover::{HandoverError, Listeners};
use crate::listener::WorkerService;
use crate::plane::{DataPlane, Drain};
use crate::request::ProxyApp;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Listeners(#[from] HandoverError),
    #[error("proxy.listen: cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("proxy.tls.listen: cannot listen on {addr}: {source}")]
    TlsListen {
        addr: String,
        source: std::io::Error,
    },
}

/// What to run once the proxy has drained, right before the process exits (flush state, tell
/// systemd). Runs on the drain thread.
pub type OnExit = Box<dyn FnOnce() + Send>;

/// A configured, not yet running, proxy server.
pub struct ProxyServer {
    server: Server,
    drain: Arc<Drain>,
    grace: Duration,
    stop: StopHandle,
    access_log: Option<Arc<AccessLog>>,
}

/// Starts the graceful stop from outside the signal handlers: after an upgrade handed the
/// listening sockets to a new process, this one stops accepting and drains.
#[derive(Debug, Clone, Default)]
pub struct StopHandle(Arc<tokio::sync::Notify>);

impl StopHandle {
    /// Stop accepting and drain, as on SIGTERM.
    pub fn graceful(&self) {
        self.0.notify_one();
    }
}

impl std::fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyServer")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

// === impl ProxyServer ===

impl ProxyServer {
    /// Binds every listen address once, up front (a busy port is a clear error at start-up, not
    /// a panic inside a worker), then builds the Pingora server: one single-threaded worker
    /// service per thread, each accepting on its own duplicate of those sockets.
    pub fn build(cfg: &DataPlaneConfig, plane: Arc<DataPlane>) -> Result<Self, ServerError> {
        Self::build_on(cfg, plane, &mut Listeners::bind_here())
    }

    /// [`build`](Self::build) on the sockets `listeners` gives: each listen address claims
    /// one (bound here, inherited from systemd, or taken from the process being upgraded).
    pub fn build_on(
        cfg: &DataPlaneConfig,
        plane: Arc<DataPlane>,
        listeners: &mut Listeners,
    ) -> Result<Self, ServerError> {
        let sockets = cfg
            .proxy
            .listen
            .iter()
            .map(|addr| listeners.claim("proxy.listen", addr))
            .collect::<Result<Vec<_>, HandoverError>>()?;
        let tls_addrs = cfg.proxy.tls.as_ref().map_or(&[][..], |t| &t.listen[..]);
        let tls_sockets = tls_addrs
            .iter()
            .map(|addr| listeners.claim("proxy.tls.listen", addr))
            .collect::<Result<Vec<_>, HandoverError>>()?;
        let threads = cfg.proxy.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
        });
        let grace = cfg.proxy.shutdown_grace;
        let conf = ServerConf {
            threads,
            // Each worker is a one-thread service (see listener.rs); `true` gives it a tokio
            // multi-thread runtime with one worker, `false` Pingora's no-steal flavour.
            work_stealing: true,
            // The drain thread exits before Pingora's fixed sleep would end.
            grace_period_seconds: Some(grace.as_secs() + 1),
            graceful_shutdown_timeout_seconds: Some(1),
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();

        let drain = plane.drain.clone();
        let access_log = plane.access_log.clone();
        for worker in 0..threads {
            let app = ProxyApp::new(plane.clone());
            let listeners = sockets
                .iter()
                .zip(&cfg.proxy.listen)
                .map(|(socket, addr)| {
                    let dup = socket.try_clone().map_err(|source| ServerError::Listen {
                        addr: addr.clone(),
                        source,
                    })?;
                    Ok((addr.clone(), dup))
                })
                .collect::<Result<Vec<_>, ServerError>>()?;
            let mut service = WorkerService::new(
                format!("canaryd-w{worker}"),
                app,
                listeners,
                plane.access_log.clone(),
            );
            if let Some(tls) = &plane.tls {
                let listeners = tls_sockets
                    .iter()
                    .zip(tls_addrs)
                    .map(|(socket, addr)| {
                        let dup = socket
                            .try_clone()
                            .map_err(|source| ServerError::TlsListen {
                                addr: addr.clone(),
                                source,
                            })?;
                        Ok((addr.clone(), dup))
                    })
                    .collect::<Result<Vec<_>, ServerError>>()?;
                service = service.with_tls(ProxyApp::tls(plane.clone(), tls.clone()), listeners);
            }
            server.add_service(service);
        }
        Ok(Self {
            server,
            drain,
            grace,
            stop: StopHandle::default(),
            access_log,
        })
    }

    /// Starts the graceful stop without a signal (an upgrade handed the sockets over).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Watches the server's start: `Running` once every worker service was started.
    pub fn phases(&self) -> tokio::sync::broadcast::Receiver<pingora_core::server::ExecutionPhase> {
        self.server.watch_execution_phase()
    }

    /// Runs until SIGTERM (graceful, bounded by `shutdown_grace`) or SIGINT (immediate).
    /// `on_exit` runs once, right before the process ends.
    pub fn run(self, on_exit: OnExit) {
        // The access log's last lines are written before anything else stops.
        let access_log = self.access_log;
        let on_exit: OnExit = Box::new(move || {
            if let Some(log) = access_log {
                log.flush(ACCESS_LOG_FLUSH);
            }
            on_exit();
        });
        let watch = SignalWatch {
            stop: self.stop,
            drain: self.drain,
            grace: self.grace,
            on_exit: std::sync::Mutex::new(Some(on_exit)),
        };
        self.server.run(RunArgs {
            shutdown_signal: Box::new(watch),
        });
    }
}

/// How long the exit path waits for the access log's last lines to be written.
const ACCESS_LOG_FLUSH: Duration = Duration::from_secs(2);

struct SignalWatch {
    stop: StopHandle,
    drain: Arc<Drain>,
    grace: Duration,
    on_exit: std::sync::Mutex<Option<OnExit>>,
}

impl SignalWatch {
    fn take_on_exit(&self) -> OnExit {
        self.on_exit
            .lock()
            .ok()
            .and_then(|mut g| g.take())
            .unwrap_or_else(|| Box::new(|| {}))
    }
}

#[async_trait]
impl ShutdownSignalWatch for SignalWatch {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        let graceful = tokio::select! {
            _ = term.recv() => true,
            _ = quit.recv() => true,
            _ = int.recv() => false,
            () = self.stop.0.notified() => true,
        };
        let on_exit = self.take_on_exit();
        if !graceful {
            tracing::info!("SIGINT: stopping now");
            on_exit();
            return ShutdownSignal::FastShutdown;
        }
        tracing::info!(
            inflight = self.drain.inflight(),
            grace_s = self.grace.as_secs_f64(),
            "graceful stop: no new connections, draining in-flight requests"
        );
        self.drain.start();
        let drain = self.drain.clone();
        let grace = self.grace;
        std::thread::spawn(move || {
            let started = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(20));
                let inflight = drain.inflight();
                if inflight == 0 && started.elapsed() >= Duration::from_millis(100) {
                    tracing::info!(
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "drained; exiting"
                    );
                    break;
                }
                if started.elapsed() >= grace {
                    tracing::warn!(
                        inflight,
                        "shutdown_grace expired; exiting with requests in flight"
                    );
                    break;
                }
            }
            on_exit();
            std::process::exit(0);
        });
        ShutdownSignal::GracefulTerminate
    }
}
