//! `canaryd`: the command line and the wiring of the daemon. Logic lives in the `proxy` and
//! `controller` crates; this file parses arguments, loads configuration, starts the control
//! runtime (admin listener, health checks) and hands the main thread to the Pingora server.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
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
    Ok(())
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
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
    let admin_state = Arc::new(admin::AdminState {
        plane: plane.clone(),
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
        let _ = stop_tx.send(true);
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
