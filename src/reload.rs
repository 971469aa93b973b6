//! SIGHUP: re-read the files, validate everything, then apply what can change live — pools,
//! named upstreams, routes (hosts, targets, header rules, limits, error pages, re-read),
//! routing, timeouts, health checks, the policy's thresholds and holds, the Prometheus client
//! (`[prometheus]`: URL, TLS, credentials, timeout) and the webhook targets (`[[notify]]`) —
//! and say which changed keys are not applied and why. On any error (a secrets file that cannot
//! be read, say) the running configuration is kept whole and the log says why.
//!
//! The [`Plan`] is computed against the configuration **in force**, not the last file read:
//! a restart-only key changed in the file keeps its running value in [`Plan::in_force`], so
//! it is reported again on every reload until a restart applies it, and a later reload that
//! puts the old value back reports nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use canaryd_config::Config;
use canaryd_controller::{Handle, LiveSources, Notifier, PromClient};
use canaryd_proxy::DataPlane;
use tokio::sync::watch;

use crate::{files, systemd};

/// How a change of a key takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    /// Only a restart applies it (listeners, threads, the admin listener, the state files).
    Restart,
    /// Read only when there is no rollout state yet; a running daemon has nothing to apply.
    FirstStart,
}

/// A key whose change a reload does not apply: how to compare it and how to keep the running
/// value.
struct Key {
    name: &'static str,
    effect: Effect,
    same: fn(&Config, &Config) -> bool,
    keep: fn(&mut Config, &Config),
}

macro_rules! key {
    ($effect:ident, $name:literal, $($field:ident).+) => {
        Key {
            name: $name,
            effect: Effect::$effect,
            same: |a, b| a.$($field).+ == b.$($field).+,
            keep: |to, from| to.$($field).+ = from.$($field).+.clone(),
        }
    };
}

/// Every key a reload does not apply. Anything else in `[proxy]`, `[backends]`, `[upstreams]`,
/// `[routing]`, `[prometheus]`, `[[notify]]` and the policy applies live — `[proxy.tls]
/// certificates` included, whose files are read again on every reload.
fn not_live() -> [Key; 16] {
    [
        Key {
            name: "proxy.tls (listen, protocols, http2)",
            effect: Effect::Restart,
            same: |a, b| tls_listeners(a) == tls_listeners(b),
            keep: |to, from| match (&mut to.proxy.tls, &from.proxy.tls) {
                (Some(to), Some(from)) => {
                    to.listen = from.listen.clone();
                    to.protocols = from.protocols.clone();
                    to.http2 = from.http2;
                }
                (to, from) => *to = from.clone(),
            },
        },
        key!(Restart, "proxy.listen", proxy.listen),
        key!(Restart, "proxy.threads", proxy.threads),
        key!(Restart, "proxy.keepalive_pool", proxy.keepalive_pool),
        key!(
            Restart,
            "proxy.keepalive_requests",
            proxy.keepalive_requests
        ),
        key!(Restart, "proxy.shutdown_grace", proxy.shutdown_grace),
        key!(Restart, "proxy.upgrade_socket", proxy.upgrade_socket),
        // The file is opened and its writer started once; SIGUSR1 reopens the same path.
        key!(Restart, "proxy.access_log", proxy.access_log),
        key!(Restart, "admin.listen", admin.listen),
        key!(Restart, "admin.token_file", admin.token_file),
        key!(Restart, "rollout.state_dir", rollout.state_dir),
        key!(
            Restart,
            "rollout.decision_log_max_size",
            rollout.decision_log_max_size
        ),
        key!(
            Restart,
            "rollout.decision_log_keep",
            rollout.decision_log_keep
        ),
        // The fleet's store, etcd and this member's name: read at start only.
        key!(Restart, "cluster", cluster),
        key!(FirstStart, "rollout.autostart", rollout.autostart),
        key!(
            FirstStart,
            "rollout.initial_percent",
            rollout.initial_percent
        ),
    ]
}

/// What a TLS listener is, beyond its certificates: only a restart rebinds or reconfigures it.
fn tls_listeners(c: &Config) -> Option<(&[String], &[String], bool)> {
    c.proxy
        .tls
        .as_ref()
        .map(|t| (&t.listen[..], &t.protocols[..], t.http2))
}

/// What a reload of `file` over the configuration in force does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Sections whose changes apply live.
    pub live: Vec<&'static str>,
    /// Changed keys that need a restart; they keep their running value.
    pub restart: Vec<&'static str>,
    /// Changed keys that only matter at the first start.
    pub first_start: Vec<&'static str>,
    /// The configuration in force once the live part is applied: the file's live keys, the
    /// running values of the others.
    pub in_force: Config,
}

/// Compares the file with what is running.
pub fn plan(running: &Config, file: &Config) -> Plan {
    let mut in_force = file.clone();
    let (mut restart, mut first_start) = (Vec::new(), Vec::new());
    for k in not_live() {
        if !(k.same)(running, file) {
            match k.effect {
                Effect::Restart => restart.push(k.name),
                Effect::FirstStart => first_start.push(k.name),
            }
            (k.keep)(&mut in_force, running);
        }
    }
    let live = [
        ("proxy", in_force.proxy != running.proxy),
        ("backends", in_force.backends != running.backends),
        ("upstreams", in_force.upstreams != running.upstreams),
        ("routing", in_force.routing != running.routing),
        (
            "rollout.policy",
            in_force.rollout.policy != running.rollout.policy,
        ),
        ("prometheus", in_force.prometheus != running.prometheus),
        ("notify", in_force.notify != running.notify),
    ]
    .into_iter()
    .filter_map(|(name, changed)| changed.then_some(name))
    .collect();
    Plan {
        live,
        restart,
        first_start,
        in_force,
    }
}

/// What a reload can replace in the running daemon.
pub struct Live {
    pub plane: Arc<DataPlane>,
    /// The controller (a rollout's, or manual mode's without a policy).
    pub controller: Handle,
    /// The controller's sources: the Prometheus client is swapped here, for the loop's clone
    /// too.
    pub sources: LiveSources,
    /// The webhook targets every transition goes to.
    pub notifier: Arc<ArcSwap<Notifier>>,
}

/// Serves SIGHUP until the runtime stops. `running` is the configuration in force.
pub async fn on_sighup(
    config: PathBuf,
    mut running: Config,
    live: Live,
    mut health_stop: watch::Sender<bool>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot listen for SIGHUP; reload is unavailable");
        return;
    };
    while hup.recv().await.is_some() {
        let _ = systemd::notify(&systemd::reloading_message());
        match reload(&config, &running, &live).await {
            Ok((in_force, stop)) => {
                running = in_force;
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

/// One reload: validate and build everything before changing anything, then apply the live
/// part. Returns the configuration now in force and the new health checkers' stop switch.
async fn reload(
    config: &Path,
    running: &Config,
    live: &Live,
) -> anyhow::Result<(Config, watch::Sender<bool>)> {
    let file = files::load_config(config)?;
    let policy = files::load_policy(&file, config)?;
    if policy.is_some() != running.rollout.policy.is_some() {
        anyhow::bail!("adding or removing [rollout] policy needs a restart");
    }
    let plan = plan(running, &file);
    for key in &plan.restart {
        tracing::warn!(key, "changed in the file, but only a restart applies it");
    }
    for key in &plan.first_start {
        tracing::warn!(
            key,
            "changed in the file, but it is read only when there is no rollout state yet"
        );
    }
    // A new Prometheus client reads its secrets files now: a failure refuses the reload.
    let prometheus = if plan.live.contains(&"prometheus") {
        let client = plan
            .in_force
            .prometheus
            .as_ref()
            .map(PromClient::from_config);
        Some(
            client
                .transpose()
                .with_context(|| format!("{}: [prometheus]", config.display()))?,
        )
    } else {
        None
    };
    // The policy swap can still be refused by the controller, so it goes after the data plane
    // is prepared and before it is applied.
    let prepared = canaryd_proxy::prepare_reload(&live.plane, &plan.in_force.data_plane())?;
    if let Some(p) = policy {
        live.controller
            .replace_policy(p)
            .await
            .map_err(|r| anyhow::anyhow!("{} ({})", r.error, r.hint))?;
    }
    let stop = canaryd_proxy::apply_reload(&live.plane, prepared);
    if let Some(client) = prometheus {
        // Queries already running finish on the old client.
        live.sources.set_prometheus(client);
    }
    if plan.live.contains(&"notify") {
        // The old targets' queues deliver what they hold, then end.
        live.notifier
            .store(Arc::new(Notifier::start(&plan.in_force.notify)));
    }
    tracing::info!(live = ?plan.live, "reload applied");
    Ok((plan.in_force, stop))
}

#[cfg(test)]
mod tests;
