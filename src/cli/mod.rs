//! The commands that do not run the daemon: the operator client of the admin API (`status`,
//! `start`, `pause`, …, `set-weight`, `approve`) and the offline tools (`check`, `import-nginx`,
//! `replay`).
//!
//! - [`client`]: the admin API's HTTP client.
//! - [`view`]: the terminal rendering of the status document.
//! - [`replay`]: `canaryd replay`, a policy's PromQL rules over Prometheus history.

mod client;
mod replay;
mod view;

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use canaryd_controller::ActionRequest;
use canaryd_nginx_import as nginx_import;
use clap::Args;

use crate::files;
use client::AdminClient;
pub use replay::{replay, ReplayArgs};

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Admin API of the daemon.
    #[arg(long, env = "CANARYD_ADMIN", default_value = "http://127.0.0.1:9180")]
    admin: String,
}

#[derive(Debug, Args)]
pub struct ActionArgs {
    /// Why: recorded in the decision log and sent to webhooks.
    #[arg(long, default_value = "")]
    reason: String,
    /// File holding the admin token (or set CANARYD_ADMIN_TOKEN).
    #[arg(long, env = "CANARYD_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(flatten)]
    admin: AdminArgs,
}

/// An operator action, as the admin API names it.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Start,
    Pause,
    Resume,
    Promote,
    Rollback,
    Abort,
    SetWeight { percent: f64 },
    Approve,
}

// === impl Action ===

impl Action {
    /// The endpoint: `POST /api/v1/<path>`.
    fn path(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Promote => "promote",
            Action::Rollback => "rollback",
            Action::Abort => "abort",
            Action::SetWeight { .. } => "weight",
            Action::Approve => "approve",
        }
    }
}

/// Sends one action and prints the status it answers with.
pub fn action(action: Action, args: ActionArgs) -> anyhow::Result<()> {
    run(async move {
        let body = ActionRequest {
            percent: match action {
                Action::SetWeight { percent } => Some(percent),
                _ => None,
            },
            reason: args.reason.clone(),
        };
        let c = AdminClient::new(&args.admin.admin, token(&args)?)?;
        let status = c.action(action.path(), &body).await?;
        print!("{}", view::render(&status));
        Ok(())
    })
}

/// `canaryd status [--watch] [--json]`.
pub fn status(admin: &AdminArgs, watch: bool, json: bool) -> anyhow::Result<()> {
    run(async move {
        let c = AdminClient::new(&admin.admin, None)?;
        if !watch {
            let s = c.status().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                print!("{}", view::render(&s));
            }
            return Ok(());
        }
        let tty = std::io::stdout().is_terminal();
        let mut last = String::new();
        loop {
            let shown = match c.status().await {
                Ok(s) if json => serde_json::to_string(&s)?,
                Ok(s) if tty => view::render(&s),
                Ok(s) => view::line(&s),
                Err(e) => format!("{e}"),
            };
            if tty {
                // Clear and redraw.
                print!("\x1b[2J\x1b[H{shown}");
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
    })
}

/// `canaryd check`: the configuration and the policy it names, every problem located.
pub fn check(path: &Path) -> anyhow::Result<()> {
    let cfg = files::load_config(path)?;
    println!(
        "{}: ok ({} stable server(s), {} canary server(s), listen {})",
        path.display(),
        cfg.backends.stable.servers.len(),
        cfg.backends.canary.servers.len(),
        cfg.proxy.listen.join(", ")
    );
    if let Some(policy) = files::load_policy(&cfg, path)? {
        println!(
            "{}: ok (policy {:?}: steps {:?}, {} rule(s))",
            files::policy_path(&cfg, path).unwrap_or_default().display(),
            policy.name,
            policy.weights(),
            policy.rules.len()
        );
    }
    if let Some(c) = files::cluster_options(&cfg)? {
        println!(
            "{}: ok (fleet member {:?}: etcd {}, prefix {}, lease_ttl {:?})",
            path.display(),
            c.name,
            c.endpoints.join(", "),
            c.prefix,
            c.lease_ttl
        );
    }
    Ok(())
}

/// `canaryd import-nginx`: the translation on stdout, what was not translated on stderr.
pub fn import_nginx(file: &Path, canary: Vec<String>) -> anyhow::Result<()> {
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

/// Runs a client future on a small current-thread runtime.
fn run<F, T>(f: F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the client runtime")?
        .block_on(f)
}

/// The admin token: `--token-file`, else `CANARYD_ADMIN_TOKEN`.
fn token(args: &ActionArgs) -> anyhow::Result<Option<String>> {
    if let Some(path) = &args.token_file {
        let t = std::fs::read_to_string(path)
            .with_context(|| format!("--token-file {}", path.display()))?;
        return Ok(Some(t.trim().to_string()));
    }
    Ok(std::env::var("CANARYD_ADMIN_TOKEN").ok())
}
