//! Loading the files a daemon runs from: `canaryd.toml`, the policy it names (relative to the
//! config's directory) and the admin token — once for `serve`, `check` and every reload, so
//! the three agree on what a valid set of files is.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use canaryd_config::{line_of, read_source, Config, ConfigError, Problem};
use canaryd_controller::{check_exposure, ClusterOptions, Policy, SourceKind, Token};

/// `canaryd.toml`, with the environment overrides, validated — the `[proxy.tls]` certificates
/// too: each read, parsed and matched to its key, every problem located on its key's line.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    let cfg = Config::load(path)?;
    let errors = cfg
        .proxy
        .tls
        .as_ref()
        .map(canaryd_proxy::check_tls)
        .unwrap_or_default();
    if !errors.is_empty() {
        let (file, src) = read_source(path)?;
        let problems = errors
            .into_iter()
            .map(|e| Problem {
                line: line_of(&src, &e.key),
                message: format!("{}: {}", e.file, e.reason),
                key: e.key,
            })
            .collect();
        return Err(ConfigError::Invalid { file, problems }.into());
    }
    Ok(cfg)
}

/// `[rollout] policy`, relative to the config file's directory when not absolute.
pub fn policy_path(cfg: &Config, config: &Path) -> Option<PathBuf> {
    let p = cfg.rollout.policy.as_ref()?;
    Some(if p.is_absolute() {
        p.clone()
    } else {
        config.parent().unwrap_or(Path::new(".")).join(p)
    })
}

/// The policy `cfg` names, validated, and refused when it has PromQL rules without a
/// `[prometheus]` section.
pub fn load_policy(cfg: &Config, config: &Path) -> anyhow::Result<Option<Policy>> {
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

/// The admin token, and a refusal to expose the admin listener beyond loopback without one.
pub fn load_token(cfg: &Config) -> anyhow::Result<Option<Token>> {
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

/// A fleet's `[cluster]` with its files read (CA, client certificate and key, the etcd
/// password), `None` with the file store: `serve` and `check` refuse what they cannot read.
pub fn cluster_options(cfg: &Config) -> anyhow::Result<Option<ClusterOptions>> {
    if !cfg.cluster.is_etcd() {
        return Ok(None);
    }
    let opts = ClusterOptions::from_config(&cfg.cluster, &cfg.admin.listen)?;
    Ok(Some(opts))
}
