//! `canaryd serve`: builds the daemon from its files and runs it.
//!
//! Two runtimes: Pingora's workers carry the requests ([`canaryd_proxy::ProxyServer`]); one
//! control runtime on its own thread carries everything else — the admin listener, health
//! checks, the controller, webhooks, SIGHUP reloads and systemd notifications — so neither can
//! delay the other. The main thread is handed to Pingora until the graceful stop ends.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use canaryd_controller::{
    run_admin, AdminState, Board, Cluster, Controller, DecisionLog, LiveSources, Notifier,
    PromClient, Settings, StateStore,
};
use canaryd_proxy::{ProxyServer, RoutingHandle};

use crate::{files, reload, systemd};

/// Loads the files, starts the control runtime and runs the proxy until a graceful stop.
pub fn serve(path: &Path) -> anyhow::Result<()> {
    let cfg = files::load_config(path)?;
    let policy = files::load_policy(&cfg, path)?;
    let token = files::load_token(&cfg)?;
    // `[cluster] store = "etcd"`: its files are read now, so a fleet config `serve` cannot use
    // is refused before anything listens.
    let cluster_opts = files::cluster_options(&cfg)?;
    let dp_cfg = cfg.data_plane();
    let table = RoutingHandle::new(RoutingHandle::percent_to_bp(cfg.rollout.initial_percent));
    let plane =
        canaryd_proxy::build_data_plane(&dp_cfg, table).context("building the data plane")?;

    let admin_listener = std::net::TcpListener::bind(&cfg.admin.listen)
        .with_context(|| format!("admin.listen: cannot listen on {}", cfg.admin.listen))?;
    admin_listener
        .set_nonblocking(true)
        .context("admin listener")?;
    let server = ProxyServer::build(&dp_cfg, plane.clone())?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("canaryd-control")
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let board = Arc::new(Board::default());
    let (controller_done_tx, controller_done_rx) = std::sync::mpsc::channel::<()>();
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
    let prom = cfg
        .prometheus
        .as_ref()
        .map(PromClient::from_config)
        .transpose()
        .with_context(|| format!("{}", path.display()))?;
    let sources = LiveSources::new(prom, plane.metrics.clone());
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
    let stop = stop_rx.clone();
    let flushed = log.clone();
    control.spawn(async move {
        controller.run(stop).await;
        // The last decisions reach the file before the process exits.
        let _ = tokio::task::spawn_blocking(move || flushed.flush(Duration::from_secs(1))).await;
        let _ = controller_done_tx.send(());
    });
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
        decisions: Some(log),
        controller: Some(handle.clone()),
        token,
        extra_metrics: Some(Arc::new(extra_metrics)),
    });
    {
        let _guard = control.enter();
        let listener =
            tokio::net::TcpListener::from_std(admin_listener).context("admin listener")?;
        control.spawn(run_admin(listener, admin_state, stop_rx.clone()));
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

    tracing::info!(
        config = %path.display(),
        listen = ?cfg.proxy.listen,
        tls_listen = ?cfg.proxy.tls.as_ref().map(|t| &t.listen),
        admin = %cfg.admin.listen,
        "canaryd serving"
    );
    server.run(Box::new(move || {
        let _ = systemd::notify("STOPPING=1");
        // Stop the control tasks and give the controller a moment to persist its state and
        // flush its decision log.
        let _ = stop_tx.send(true);
        let _ = controller_done_rx.recv_timeout(Duration::from_secs(3));
    }));
    Ok(())
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
