//! `canaryd`: the command line and the wiring of the daemon. Logic lives in the `proxy` and
//! `controller` crates; this file parses arguments, loads configuration, starts the control
//! runtime (admin listener, health checks, controller, systemd notifications, reload) and
//! hands the main thread to the Pingora server. The operator subcommands are thin clients of
//! the admin API.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use canaryd_controller::admin_client::AdminClient;
use canaryd_controller::controller::{Controller, Handle, LiveSources, Settings};
use canaryd_controller::decision_log::DecisionLog;
use canaryd_controller::notify::Notifier;
use canaryd_controller::policy::{Policy, SourceKind};
use canaryd_controller::prometheus::PromClient;
use canaryd_controller::state_store::StateStore;
use canaryd_controller::status::Board;
use canaryd_controller::token::{check_exposure, Token};
use canaryd_controller::{admin, nginx_import, status_view, systemd, Config};
use canaryd_proxy::{ProxyServer, RoutingHandle};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

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
    /// Run the proxy, the controller and the admin listener (systemd ExecStart).
    Serve {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate the configuration and the policy; exit 0, or 1 with located errors.
    Check {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show the rollout: state, split, the step's hold and every rule against its threshold.
    Status {
        /// Redraw every second (plain lines when stdout is not a terminal).
        #[arg(long)]
        watch: bool,
        /// Print the raw status JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Start a rollout of the configured policy from its first step.
    Start(ActionArgs),
    /// Pause the rollout: the split stays, the hold clock stops.
    Pause(ActionArgs),
    /// Resume a paused rollout at its step's weight.
    Resume(ActionArgs),
    /// Promote now: 100 % canary, rollout done.
    Promote(ActionArgs),
    /// Roll back now: 0 % canary; stays rolled back until `start`.
    Rollback(ActionArgs),
    /// Abort the rollout: 0 % canary.
    Abort(ActionArgs),
    /// Set the split by hand (pauses a running rollout).
    SetWeight {
        /// Canary share, 0 to 100.
        percent: f64,
        #[command(flatten)]
        action: ActionArgs,
    },
    /// Translate an nginx front (upstream + server blocks) into a canaryd.toml on stdout;
    /// directives that cannot be translated are listed on stderr and as comments.
    ImportNginx {
        /// nginx file: a conf.d file (`upstream`, `server`, `map` at top level) or an
        /// nginx.conf with `http { … }`; `include`s are followed.
        file: PathBuf,
        /// Address of a canary server in the upstream (repeatable); needed when the upstream
        /// has more than two servers or two of equal weight.
        #[arg(long = "canary", value_name = "ADDR")]
        canary: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct AdminArgs {
    /// Admin API of the daemon.
    #[arg(long, env = "CANARYD_ADMIN", default_value = "http://127.0.0.1:9180")]
    admin: String,
}

#[derive(Debug, Args)]
struct ActionArgs {
    /// Why: recorded in the decision log and sent to webhooks.
    #[arg(long, default_value = "")]
    reason: String,
    /// File holding the admin token (or set CANARYD_ADMIN_TOKEN).
    #[arg(long, env = "CANARYD_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    admin: AdminArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::Check { config } => check(&config),
        Command::Status { watch, json, admin } => client(|| status(&admin.admin, watch, json)),
        Command::Start(a) => client(|| action("start", json!({}), a)),
        Command::Pause(a) => client(|| action("pause", json!({}), a)),
        Command::Resume(a) => client(|| action("resume", json!({}), a)),
        Command::Promote(a) => client(|| action("promote", json!({}), a)),
        Command::Rollback(a) => client(|| action("rollback", json!({}), a)),
        Command::Abort(a) => client(|| action("abort", json!({}), a)),
        Command::SetWeight { percent, action: a } => {
            client(|| action("weight", json!({ "percent": percent }), a))
        }
        Command::ImportNginx { file, canary } => import_nginx(&file, canary),
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
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if std::env::var("CANARYD_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

// === operator client ===

fn client<F, Fut>(f: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?
        .block_on(f())
}

fn token(args: &ActionArgs) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.token_file {
        let t = std::fs::read_to_string(path)
            .with_context(|| format!("--token-file {}", path.display()))?;
        return Ok(Some(t.trim().to_string()));
    }
    Ok(std::env::var("CANARYD_ADMIN_TOKEN").ok())
}

async fn action(name: &str, mut body: serde_json::Value, args: ActionArgs) -> anyhow::Result<()> {
    body["reason"] = json!(args.reason);
    let c = AdminClient::new(&args.admin.admin, token(&args)?)?;
    let status = c.action(name, body).await?;
    print!("{}", status_view::render(&status));
    Ok(())
}

async fn status(admin: &str, watch: bool, json: bool) -> anyhow::Result<()> {
    let c = AdminClient::new(admin, None)?;
    if !watch {
        let s = c.status().await?;
        if json {
            println!("{s:#}");
        } else {
            print!("{}", status_view::render(&s));
        }
        return Ok(());
    }
    let tty = std::io::stdout().is_terminal();
    let mut last = String::new();
    loop {
        let shown = match c.status().await {
            Ok(s) if json => s.to_string(),
            Ok(s) if tty => status_view::render(&s),
            Ok(s) => status_view::line(&s),
            Err(e) => format!("{e}"),
        };
        if tty {
            // Clear and redraw.
            print!("\x1b[2J\x1b[H{shown}");
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
        } else if shown != last {
            println!(
                "{} {shown}",
                humantime::format_rfc3339_seconds(std::time::SystemTime::now())
            );
            last = shown;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

// === import-nginx ===

fn import_nginx(file: &Path, canary: Vec<String>) -> anyhow::Result<()> {
    let out = nginx_import::import_file(file, &nginx_import::Options { canary })?;
    for f in &out.untranslated {
        eprintln!("{f}");
    }
    for n in &out.notes {
        eprintln!("note: {n}");
    }
    if !out.untranslated.is_empty() {
        eprintln!(
            "canaryd import-nginx: {} directive(s) not translated (listed above and as `# untranslated:` comments)",
            out.untranslated.len()
        );
    }
    print!("{}", out.toml);
    Ok(())
}

// === check ===

fn check(path: &Path) -> anyhow::Result<()> {
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
fn policy_path(cfg: &Config, config: &Path) -> Option<PathBuf> {
    let p = cfg.rollout.policy.as_ref()?;
    Some(if p.is_absolute() {
        p.clone()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    })
}

fn load_policy(cfg: &Config, config: &Path) -> anyhow::Result<Option<Policy>> {
    let Some(path) = policy_path(cfg, config) else {
        return Ok(None);
    };
    let policy = Policy::load(&path)?;
    let needs_prometheus = policy
        .rules
        .iter()
        .any(|r| r.source == SourceKind::Prometheus);
    if needs_prometheus && cfg.prometheus.is_none() {
        anyhow::bail!(
            "{}: policy has PromQL rules but {} has no [prometheus] section (key `prometheus.url`)",
            path.display(),
            config.display()
        );
    }
    Ok(Some(policy))
}

fn load_token(cfg: &Config) -> anyhow::Result<Option<Token>> {
    let token = cfg
        .admin
        .token_file
        .as_deref()
        .map(Token::load)
        .transpose()?;
    let listen = cfg.admin.listen.parse().context("admin.listen")?;
    check_exposure(listen, token.as_ref())?;
    Ok(token)
}

// === serve ===

fn serve(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    let policy = load_policy(&cfg, path)?;
    let token = load_token(&cfg)?;
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

    // The control runtime: admin API, health checks, controller. Separate from Pingora's
    // workers.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let control = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("canaryd-control")
        .enable_all()
        .build()
        .context("starting the control runtime")?;
    let board = Arc::new(Board::default());
    let (controller_done_tx, controller_done_rx) = std::sync::mpsc::channel::<()>();
    let mut handle: Option<Handle> = None;
    let notifier = {
        let _guard = control.enter();
        Notifier::start(&cfg.notify)
    };
    let decisions = match policy {
        Some(policy) => {
            let log = Arc::new(DecisionLog::open(&cfg.rollout.state_dir));
            let prom = cfg
                .prometheus
                .as_ref()
                .map(|p| PromClient::new(&p.url, p.timeout))
                .transpose()
                .context("prometheus.url")?;
            let mut controller = {
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
            let webhooks = notifier.clone();
            controller.on_transition(Arc::new(move |line| webhooks.notify(line)));
            handle = Some(controller.handle());
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
        controller: handle.clone(),
        token,
        extra_metrics: Some(Arc::new(move |out: &mut String| notifier.render(out))),
    });
    {
        let _guard = control.enter();
        let listener =
            tokio::net::TcpListener::from_std(admin_listener).context("admin listener")?;
        control.spawn(admin::run(listener, admin_state, stop_rx.clone()));
        // Health checkers run per generation of upstreams; dropping the switch stops them.
        let (health_stop, health_rx) = tokio::sync::watch::channel(false);
        canaryd_proxy::spawn_health_checks(&plane.upstreams(), &dp_cfg, health_rx);
        control.spawn(reload_on_sighup(
            path.to_path_buf(),
            cfg.clone(),
            plane.clone(),
            handle,
            health_stop,
        ));
        if let Some(every) = systemd::watchdog_interval() {
            control.spawn(watchdog(every));
        }
        control.spawn(ready_when_listening(cfg.proxy.listen.clone()));
        control.spawn(stopping_on_term());
    }
    std::thread::Builder::new()
        .name("canaryd-control".into())
        .spawn(move || control.block_on(std::future::pending::<()>()))
        .context("starting the control thread")?;

    tracing::info!(
        config = %path.display(),
        listen = ?cfg.proxy.listen,
        admin = %cfg.admin.listen,
        "canaryd serving"
    );
    server.run(Box::new(move || {
        let _ = systemd::notify("STOPPING=1");
        // Stop the control tasks and give the controller a moment to persist its state.
        let _ = stop_tx.send(true);
        let _ = controller_done_rx.recv_timeout(Duration::from_secs(2));
    }));
    Ok(())
}

/// READY=1 once every proxy listener accepts connections (Pingora binds them as its service
/// starts) — the admin listener is bound and the rollout state loaded before this runs.
async fn ready_when_listening(listen: Vec<String>) {
    for addr in &listen {
        let Ok(mut a) = addr.parse::<std::net::SocketAddr>() else {
            continue;
        };
        if a.ip().is_unspecified() {
            a.set_ip(if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
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

/// Tells systemd we are alive, at half its watchdog interval.
async fn watchdog(every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let _ = systemd::notify("WATCHDOG=1");
    }
}

/// SIGHUP: re-read the config and the policy, validate everything, then apply what can change
/// live (pools, routing, timeouts, health checks, rule thresholds, holds). On any error the
/// running configuration is kept and the log says why.
async fn reload_on_sighup(
    config: PathBuf,
    mut running: Config,
    plane: Arc<canaryd_proxy::DataPlane>,
    controller: Option<Handle>,
    mut health_stop: tokio::sync::watch::Sender<bool>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot listen for SIGHUP; reload is unavailable");
        return;
    };
    while hup.recv().await.is_some() {
        let _ = systemd::notify(&systemd::reloading_message());
        match reload(&config, &running, &plane, controller.as_ref()).await {
            Ok((cfg, stop)) => {
                running = cfg;
                // The old generation's health checkers stop with their switch.
                let _ = health_stop.send(true);
                health_stop = stop;
                tracing::info!(config = %config.display(), "configuration reloaded");
            }
            Err(e) => tracing::error!(
                error = %format!("{e:#}"),
                "reload failed; the running configuration is kept"
            ),
        }
        let _ = systemd::notify("READY=1\nSTATUS=serving");
    }
}

async fn reload(
    config: &Path,
    running: &Config,
    plane: &canaryd_proxy::DataPlane,
    controller: Option<&Handle>,
) -> anyhow::Result<(Config, tokio::sync::watch::Sender<bool>)> {
    let cfg = Config::load(config)?;
    let policy = load_policy(&cfg, config)?;
    if policy.is_some() != controller.is_some() {
        anyhow::bail!("adding or removing [rollout] policy needs a restart");
    }
    let (p, r) = (&cfg.proxy, &running.proxy);
    for (key, same) in [
        ("proxy.listen", p.listen == r.listen),
        ("proxy.threads", p.threads == r.threads),
        ("proxy.keepalive_pool", p.keepalive_pool == r.keepalive_pool),
        (
            "proxy.keepalive_requests",
            p.keepalive_requests == r.keepalive_requests,
        ),
        ("proxy.shutdown_grace", p.shutdown_grace == r.shutdown_grace),
        ("admin.listen", cfg.admin.listen == running.admin.listen),
        (
            "admin.token_file",
            cfg.admin.token_file == running.admin.token_file,
        ),
        (
            "rollout.state_dir",
            cfg.rollout.state_dir == running.rollout.state_dir,
        ),
        (
            "prometheus.url",
            cfg.prometheus.as_ref().map(|p| &p.url) == running.prometheus.as_ref().map(|p| &p.url),
        ),
    ] {
        if !same {
            tracing::warn!(key, "changed in the file, but only a restart applies it");
        }
    }
    // Validate everything before changing anything. The policy swap can still be refused by
    // the controller, so it goes after the data plane is prepared and before it is applied.
    let prepared = canaryd_proxy::prepare_reload(plane, &cfg.data_plane())?;
    if let (Some(p), Some(c)) = (policy, controller) {
        c.replace_policy(p)
            .await
            .map_err(|r| anyhow::anyhow!("{} ({})", r.error, r.hint))?;
    }
    let stop = canaryd_proxy::apply_reload(plane, prepared);
    Ok((cfg, stop))
}
