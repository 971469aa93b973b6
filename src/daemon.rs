//! `canaryd serve`: builds the daemon from its files and runs it.
//!
//! Two runtimes: Pingora's workers carry the requests ([`canaryd_proxy::ProxyServer`]); one
//! control runtime on its own thread carries everything else — the admin listener, health
//! checks, the controller, webhooks, SIGHUP reloads and systemd notifications — so neither can
//! delay the other. The main thread is handed to Pingora until the graceful stop ends.
//!
//! The listening sockets are bound here, inherited from systemd socket activation, or — with
//! `--upgrade` — taken from the running canaryd, which keeps serving until this process has
//! built its data plane, then stops its controller for this one to load the rollout state, and
//! drains once this one serves (`canaryd_proxy::Upgrade`, `control.rs`).

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use canaryd_config::Config;
use canaryd_controller::{
    AdminState, Board, Cluster, Controller, DecisionLog, LiveSources, Notifier, PromClient,
    Settings, StateStore,
};
use canaryd_proxy::{DataPlane, Listeners, Origin, ProxyServer, RoutingHandle, Upgrade};
use pingora_core::server::ExecutionPhase;

use crate::control::{self, Orders, Upgrading};
use crate::{files, reload, systemd};

/// Loads the files, starts the control runtime and runs the proxy until a graceful stop. With
/// `upgrade`, takes the listening sockets, and then the rollout, from the running canaryd.
pub fn serve(path: &Path, upgrade: bool) -> anyhow::Result<()> {
    let cfg = files::load_config(path)?;
    let policy = files::load_policy(&cfg, path)?;
    let token = files::load_token(&cfg)?;
    // `[cluster] store = "etcd"`: its files are read now, so a fleet config `serve` cannot use
    // is refused before anything listens.
    let cluster_opts = files::cluster_options(&cfg)?;
    let dp_cfg = cfg.data_plane();
    let (upgrade, mut listeners) = if upgrade {
        let (u, l) = Upgrade::connect(&cfg.upgrade_socket())?;
        (Some(u), l)
    } else {
        let inherited = Listeners::from_systemd()?;
        (None, inherited.unwrap_or_else(Listeners::bind_here))
    };
    // Everything that can fail before the running canaryd gives anything up.
    let built = build_proxy(&cfg, &mut listeners).and_then(|b| {
        let prom = cfg
            .prometheus
            .as_ref()
            .map(PromClient::from_config)
            .transpose()
            .with_context(|| format!("{}", path.display()))?;
        Ok((b, prom))
    });
    let ((plane, admin_listener, server), prom) = match (built, upgrade.as_ref()) {
        (Ok(b), _) => b,
        (Err(e), Some(_)) => {
            if let Some(u) = upgrade {
                u.abort(&format!("{e:#}"));
            }
            return Err(e.context("upgrade abandoned; the running canaryd serves on"));
        }
        (Err(e), None) => return Err(e),
    };
    if let Some(u) = &upgrade {
        // The old process stops its controller and admin listener; its state is on disk.
        u.take_control()?;
    }

    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("canaryd-control")
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let board = Arc::new(Board::default());
    // Webhook targets, replaced whole when a reload changes `[[notify]]` (the old queues
    // deliver what they hold, then end).
    let notifier = {
        let _guard = control.enter();
        Arc::new(ArcSwap::from_pointee(Notifier::start(&cfg.notify)))
    };
    // Without a policy the controller runs in manual mode: the split is the operator's.
    let log = {
        let _guard = control.enter();
        Arc::new(DecisionLog::from_config(&cfg.rollout))
    };
    let sources = LiveSources::new(prom, plane.metrics.clone()).with_table(plane.table.clone());
    // A fleet member: elected, fenced and watched through etcd (its tasks start here and
    // never hold up the start); local rules judge the fleet's summed reports.
    let link = cluster_opts.map(|o| {
        let _guard = control.enter();
        Cluster::start(o, plane.metrics.clone())
    });
    let cluster = link.as_ref().map(|l| l.cluster());
    let sources = match &cluster {
        Some(c) => sources.with_fleet(c.fleet()),
        None => sources,
    };
    let webhooks = notifier.clone();
    let settings = Settings {
        initial_percent: cfg.rollout.initial_percent,
        // In a fleet only an elected leader starts a rollout.
        autostart: cfg.rollout.autostart && link.is_none(),
        on_transition: Some(Arc::new(move |line| webhooks.load().notify(line))),
    };
    let controller = {
        let _guard = control.enter();
        let c = Controller::with_policy(
            policy,
            settings,
            StateStore::new(&cfg.rollout.state_dir),
            log.clone(),
            plane.table.clone(),
            sources.clone(),
            board.clone(),
        );
        match link {
            Some(link) => c.with_cluster(link, cfg.rollout.autostart),
            None => c,
        }
    };
    let handle = controller.handle();
    let extra_metrics = {
        let (notifier, log) = (notifier.clone(), log.clone());
        let access_log = plane.access_log.clone();
        move |out: &mut String| {
            notifier.load().render(out);
            log.render(out);
            if let Some(c) = &cluster {
                c.render(out);
            }
            if let Some(access_log) = &access_log {
                access_log.render(out);
            }
        }
    };
    let admin_state = Arc::new(AdminState {
        plane: plane.clone(),
        board,
        decisions: Some(log.clone()),
        controller: Some(handle.clone()),
        token,
        extra_metrics: Some(Arc::new(extra_metrics)),
    });
    let orders = {
        let _guard = control.enter();
        control::spawn(control::Session {
            controller,
            log: log.clone(),
            admin: admin_listener,
            admin_state,
        })
    };
    {
        let _guard = control.enter();
        // Health checkers run per generation of upstreams; dropping the switch stops them.
        let (health_stop, health_rx) = tokio::sync::watch::channel(false);
        canaryd_proxy::spawn_health_checks(&plane.upstreams(), &dp_cfg, health_rx);
        // Installed before READY=1: SIGUSR1's default action would end the process.
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
            Ok(usr1) => {
                control.spawn(reopen_on_sigusr1(usr1, plane.access_log.clone()));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGUSR1; the access log cannot be reopened")
            }
        }
        control.spawn(reload::on_sighup(
            path.to_path_buf(),
            cfg.clone(),
            reload::Live {
                plane: plane.clone(),
                controller: handle,
                sources,
                notifier,
            },
            health_stop,
        ));
        if let Some(every) = systemd::watchdog_interval() {
            control.spawn(watchdog(every));
        }
        let tls_listen = cfg.proxy.tls.iter().flat_map(|t| t.listen.iter());
        control.spawn(ready_when_listening(
            cfg.proxy.listen.iter().chain(tls_listen).cloned().collect(),
        ));
        control.spawn(stopping_on_term());
    }
    std::thread::Builder::new()
        .name("canaryd-control".into())
        .spawn(move || control.block_on(std::future::pending::<()>()))
        .context("starting the control thread")?;

    let upgrade_socket = cfg.upgrade_socket();
    let hooks = Upgrading {
        orders: orders.clone(),
        stop: server.stop_handle(),
    };
    match upgrade {
        None => {
            orders.run();
            serve_upgrades(&upgrade_socket, listeners, &plane, hooks);
        }
        Some(u) => {
            let phases = server.phases();
            let orders = orders.clone();
            let plane = plane.clone();
            std::thread::Builder::new()
                .name("canaryd-upgrade".into())
                .spawn(move || {
                    finish_upgrade(u, phases, &orders);
                    serve_upgrades(&upgrade_socket, listeners, &plane, hooks);
                })
                .context("starting the upgrade thread")?;
        }
    }

    tracing::info!(
        config = %path.display(),
        listen = ?cfg.proxy.listen,
        tls_listen = ?cfg.proxy.tls.as_ref().map(|t| &t.listen),
        admin = %cfg.admin.listen,
        "canaryd serving"
    );
    server.run(Box::new(move || {
        let _ = systemd::notify("STOPPING=1");
        // Stop the controller and give it a moment to persist its state and flush its decision
        // log.
        let _ = orders.stop(Duration::from_secs(3));
    }));
    Ok(())
}

/// The data plane, the admin listener and the proxy server on the sockets `listeners` gives
/// (each configured address claims one; an inherited one left over is an error).
fn build_proxy(
    cfg: &Config,
    listeners: &mut Listeners,
) -> anyhow::Result<(Arc<DataPlane>, std::net::TcpListener, ProxyServer)> {
    let dp_cfg = cfg.data_plane();
    let table = RoutingHandle::new(RoutingHandle::percent_to_bp(cfg.rollout.initial_percent));
    let plane =
        canaryd_proxy::build_data_plane(&dp_cfg, table).context("building the data plane")?;
    let admin = listeners.claim("admin.listen", &cfg.admin.listen)?;
    let server = ProxyServer::build_on(&dp_cfg, plane.clone(), listeners)?;
    listeners.finish()?;
    if *listeners.origin() != Origin::Bound {
        tracing::info!(
            from = %listeners.origin(),
            sockets = listeners.claimed().len(),
            "listening on inherited sockets"
        );
    }
    Ok((plane, admin, server))
}

/// The new process's last step: once its workers run, tell the old process, which drains; then
/// start the controller and the admin listener. Should the old process not confirm while it
/// still runs, this one exits without having run its controller (the old one resumes).
fn finish_upgrade(
    upgrade: Upgrade,
    mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>,
    orders: &Orders,
) {
    loop {
        match phases.blocking_recv() {
            Ok(ExecutionPhase::Running) => break,
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
    let old = upgrade.old_pid();
    match upgrade.serving() {
        Ok(()) => tracing::info!(
            old_pid = old,
            "upgrade done: the old process drains; running the controller"
        ),
        Err(e) if process_alive(old) => {
            tracing::error!(error = %e, old_pid = old, "upgrade failed: the old process keeps the controller; exiting");
            std::process::exit(1);
        }
        Err(e) => {
            tracing::warn!(error = %e, old_pid = old, "the old process is gone; running the controller")
        }
    }
    orders.run();
}

/// Whether process `pid` still exists.
fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Serves later upgrades of this process (logged, not fatal: only upgrades need it).
fn serve_upgrades(path: &Path, listeners: Listeners, plane: &DataPlane, hooks: Upgrading) {
    if let Err(e) = canaryd_proxy::serve_upgrades(path, listeners, plane.drain.clone(), hooks) {
        tracing::warn!(error = %e, "`canaryd serve --upgrade` will not be able to take over from this process");
    }
}

/// READY=1 once every proxy listener accepts connections (Pingora binds them as its service
/// starts) — the admin listener is bound and the rollout state loaded before this runs.
async fn ready_when_listening(listen: Vec<String>) {
    for addr in &listen {
        let Ok(mut a) = addr.parse::<SocketAddr>() else {
            continue;
        };
        if a.ip().is_unspecified() {
            a.set_ip(if a.is_ipv4() {
                Ipv4Addr::LOCALHOST.into()
            } else {
                Ipv6Addr::LOCALHOST.into()
            });
        }
        for _ in 0..1000 {
            if tokio::net::TcpStream::connect(a).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let _ = systemd::notify("READY=1\nSTATUS=serving");
}

/// STOPPING=1 as soon as a graceful stop begins, not after the drain (which can take up to
/// `shutdown_grace`). Pingora's own handler runs the stop itself.
async fn stopping_on_term() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut quit)) =
        (signal(SignalKind::terminate()), signal(SignalKind::quit()))
    else {
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = quit.recv() => {}
    }
    let _ = systemd::notify("STOPPING=1");
}

/// SIGUSR1: the access log's writer reopens its file (logrotate's `postrotate`).
async fn reopen_on_sigusr1(
    mut usr1: tokio::signal::unix::Signal,
    access_log: Option<Arc<canaryd_proxy::AccessLog>>,
) {
    while usr1.recv().await.is_some() {
        match &access_log {
            Some(log) => log.reopen(),
            None => tracing::info!("SIGUSR1: no [proxy.access_log] to reopen"),
        }
    }
}

/// Tells systemd we are alive, at half its watchdog interval.
async fn watchdog(every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let _ = systemd::notify("WATCHDOG=1");
    }
}
