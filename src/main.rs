//! `canaryd`: the command line and the wiring of the daemon. Logic lives in the `proxy` and
//! `controller` crates; this file parses arguments, loads configuration, starts the control
//! runtime (admin listener, health checks) and hands the main thread to the Pingora server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use canaryd_controller::controller::{Controller, LiveSources, Settings};
use canaryd_controller::decision_log::DecisionLog;
use canaryd_controller::policy::Policy;
use canaryd_controller::prometheus::PromClient;
use canaryd_controller::state_store::StateStore;
use canaryd_controller::status::Board;
use canaryd_controller::{admin, Config};
use canaryd_proxy::{ProxyServer, RoutingHandle};
use clap::{Parser, Subcommand};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_CONFIG: &str = "/etc/canaryd/canaryd.toml";

#[derive(Debug, Parser)]
#[command(
    name = "canaryd",
    version,
    about = "Progressive-delivery traffic controller"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy and the admin listener (systemd ExecStart).
    Serve {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the configuration; exit 0 when valid, 1 with located errors otherwise.
    Check {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Check { config } => check(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("canaryd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CANARYD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if std::env::var("CANARYD_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    println!(
        "{}: ok ({} stable server(s), {} canary server(s), listen {})",
        path.display(),
        cfg.backends.stable.servers.len(),
        cfg.backends.canary.servers.len(),
        cfg.proxy.listen.join(", ")
    );
    if let Some(policy) = load_policy(&cfg, path)? {
        println!(
            "{}: ok (policy {:?}: steps {:?}, {} rule(s))",
            policy_path(&cfg, path).unwrap_or_default().display(),
            policy.name,
            policy.weights(),
            policy.rules.len()
        );
    }
    Ok(())
}

/// `[rollout] policy`, relative to the config file's directory when not absolute.
fn policy_path(cfg: &Config, config: &std::path::Path) -> Option<PathBuf> {
    let p = cfg.rollout.policy.as_ref()?;
    Some(if p.is_absolute() {
        p.clone()
    } else {
        config.parent().unwrap_or(std::path::Path::new(".")).join(p)
    })
}

fn load_policy(cfg: &Config, config: &std::path::Path) -> anyhow::Result<Option<Policy>> {
    let Some(path) = policy_path(cfg, config) else {
        return Ok(None);
    };
    let policy = Policy::load(&path)?;
    let needs_prometheus = policy
        .rules
        .iter()
        .any(|r| r.source == canaryd_controller::policy::SourceKind::Prometheus);
    if needs_prometheus && cfg.prometheus.is_none() {
        anyhow::bail!(
            "{}: policy has PromQL rules but {} has no [prometheus] section (key `prometheus.url`)",
            path.display(),
            config.display()
        );
    }
    Ok(Some(policy))
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let policy = load_policy(&cfg, path)?;
    let dp_cfg = cfg.data_plane();
    let table = RoutingHandle::new(RoutingHandle::percent_to_bp(cfg.rollout.initial_percent));
    let plane =
        canaryd_proxy::build_data_plane(&dp_cfg, table).context("building upstream pools")?;

    let admin_listener = std::net::TcpListener::bind(&cfg.admin.listen)
        .with_context(|| format!("admin.listen: cannot listen on {}", cfg.admin.listen))?;
    admin_listener
        .set_nonblocking(true)
        .context("admin listener")?;
    let server = ProxyServer::build(&dp_cfg, plane.clone())?;

    // The control runtime: admin API, health checks. Separate from Pingora's workers.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("canaryd-control")
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let board = Arc::new(Board::default());
    let (controller_done_tx, controller_done_rx) = std::sync::mpsc::channel::<()>();
    let decisions = match policy {
        Some(policy) => {
            let log = Arc::new(DecisionLog::open(&cfg.rollout.state_dir));
            let prom = cfg
                .prometheus
                .as_ref()
                .map(|p| PromClient::new(&p.url, p.timeout))
                .transpose()
                .context("prometheus.url")?;
            let controller = {
                let _guard = control.enter();
                Controller::new(
                    policy,
                    Settings {
                        initial_percent: cfg.rollout.initial_percent,
                        autostart: cfg.rollout.autostart,
                    },
                    StateStore::new(&cfg.rollout.state_dir),
                    log.clone(),
                    plane.table.clone(),
                    LiveSources {
                        prom,
                        metrics: plane.metrics.clone(),
                    },
                    board.clone(),
                )
            };
            let stop = stop_rx.clone();
            control.spawn(async move {
                controller.run(stop).await;
                let _ = controller_done_tx.send(());
            });
            Some(log)
        }
        None => {
            drop(controller_done_tx);
            None
        }
    };
    let admin_state = Arc::new(admin::AdminState {
        plane: plane.clone(),
        board,
        decisions,
    });
    {
        let _guard = control.enter();
        let listener =
            tokio::net::TcpListener::from_std(admin_listener).context("admin listener")?;
        control.spawn(admin::run(listener, admin_state, stop_rx.clone()));
        canaryd_proxy::spawn_health_checks(&plane, &dp_cfg, stop_rx.clone());
        control.spawn(ignore_sighup());
    }
    std::thread::Builder::new()
        .name("canaryd-control".into())
        .spawn(move || control.block_on(std::future::pending::<()>()))
        .context("starting the control thread")?;

    tracing::info!(
        config = %path.display(),
        listen = ?cfg.proxy.listen,
        admin = %cfg.admin.listen,
        canary_percent = cfg.rollout.initial_percent,
        "canaryd serving"
    );
    server.run(Box::new(move || {
        // Stop the control tasks and give the controller a moment to persist its state.
        let _ = stop_tx.send(true);
        let _ = controller_done_rx.recv_timeout(std::time::Duration::from_secs(2));
    }));
    Ok(())
}

/// SIGHUP must not kill the daemon (its default action). Live reload comes with the operate
/// issue; until then the signal is logged and ignored.
async fn ignore_sighup() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    while hup.recv().await.is_some() {
        tracing::warn!(
            "SIGHUP received: live reload is not implemented yet; restart to apply changes"
        );
    }
}
