//! `canaryd`: the command line. This file parses arguments and dispatches; the daemon is built
//! and run by [`daemon`], SIGHUP's reload plan is [`reload`], the operator commands are thin
//! clients of the admin API in [`cli`], and [`systemd`] speaks `sd_notify`.
//!
//! # Layout
//!
//! - [`daemon`]: `canaryd serve` — load the files, build the data plane, start the control
//!   runtime (admin listener, health checks, controller, webhooks, signals), run Pingora;
//!   `--upgrade` takes the sockets and the rollout from the running process.
//! - [`control`]: the controller and the admin listener as one unit only one process runs at a
//!   time (stopped and resumed around an upgrade).
//! - [`reload`]: SIGHUP — which changed keys apply live, which need a restart, which only
//!   matter at first start; computed against the configuration in force.
//! - [`files`]: loading `canaryd.toml`, the policy it names and the admin token, as `serve`,
//!   `check` and reload need them.
//! - [`cli`]: `status`, the operator actions, `check`, `import-nginx` and `replay`.
//! - [`systemd`]: `READY=1`, `RELOADING=1`, `STOPPING=1`, `WATCHDOG=1` without libsystemd.

mod cli;
mod control;
mod daemon;
mod files;
mod reload;
mod systemd;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cli::{ActionArgs, AdminArgs, ReplayArgs};

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
        /// Take over from the canaryd running with this configuration: its listening sockets
        /// (over `[proxy] upgrade_socket`), then its rollout; it drains and exits. Without one
        /// running, an error.
        #[arg(long)]
        upgrade: bool,
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
    /// Approve a step waiting in `awaiting_approval`: move to the next step (or promote from
    /// the last). Refused unless awaiting approval and every rule is healthy.
    Approve(ActionArgs),
    /// Set the split by hand (pauses a running rollout).
    SetWeight {
        /// Canary share, 0 to 100.
        percent: f64,
        #[command(flatten)]
        action: ActionArgs,
    },
    /// What the policy would have decided over history: its PromQL rules evaluated with
    /// Prometheus range queries at the policy interval, through the controller's rules and
    /// state machine (local rules cannot be replayed and are left out, said so).
    Replay(ReplayArgs),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve { config, upgrade } => daemon::serve(&config, upgrade),
        Command::Check { config } => cli::check(&config),
        Command::Status { watch, json, admin } => cli::status(&admin, watch, json),
        Command::Start(a) => cli::action(cli::Action::Start, a),
        Command::Pause(a) => cli::action(cli::Action::Pause, a),
        Command::Resume(a) => cli::action(cli::Action::Resume, a),
        Command::Promote(a) => cli::action(cli::Action::Promote, a),
        Command::Rollback(a) => cli::action(cli::Action::Rollback, a),
        Command::Abort(a) => cli::action(cli::Action::Abort, a),
        Command::Approve(a) => cli::action(cli::Action::Approve, a),
        Command::SetWeight { percent, action } => {
            cli::action(cli::Action::SetWeight { percent }, action)
        }
        Command::ImportNginx { file, canary } => cli::import_nginx(&file, canary),
        Command::Replay(args) => cli::replay(&args),
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
