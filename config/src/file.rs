//! `canaryd.toml` as a whole: [`Config`] is the data-plane sections (see `proxy.rs`) plus the
//! control plane's `[admin]`, `[prometheus]`, `[rollout]` and `[[notify]]`. It is loaded with
//! figment (TOML, then `CANARYD_SECTION__KEY` environment overrides), rejecting unknown keys,
//! and validated; every problem is reported at once (see `collect.rs`).
//!
//! Every error names the file, the line when the key is in the file, the dotted key and what
//! was expected, e.g.
//! `/etc/canaryd/canaryd.toml:12: key `proxy.threads`: invalid type: found string "two", expected usize`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::Env;
use serde::Deserialize;

use crate::check::{byte_size, check_prometheus, check_url};
use crate::cluster::ClusterConfig;
use crate::collect::Loader;
use crate::de::duration;
use crate::problem::read_source;
use crate::problem::{ConfigError, Invalid};
use crate::proxy::{BackendsConfig, DataPlaneConfig, ProxyConfig, RoutingConfig};
use crate::upstreams::UpstreamsConfig;

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub proxy: ProxyConfig,
    pub backends: BackendsConfig,
    #[serde(default)]
    pub routing: RoutingConfig,
    /// `[upstreams.NAME]`: pools outside the split.
    #[serde(default)]
    pub upstreams: UpstreamsConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub prometheus: Option<PrometheusConfig>,
    #[serde(default)]
    pub rollout: RolloutConfig,
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
    /// `[cluster]`: the file store (default) or a fleet sharing the rollout through etcd.
    #[serde(default)]
    pub cluster: ClusterConfig,
}

/// `[admin]`: the admin listener (metrics, health, API).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: String,
    /// Bearer token for mutating API calls; absent means mutations are refused.
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9180".to_string(),
            token_file: None,
        }
    }
}

/// `[prometheus]`: where PromQL rules are evaluated, and how to reach it (TLS roots,
/// credentials, extra headers). Validated by [`check_prometheus`](crate::check_prometheus).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    /// `http://` or `https://`, optionally with a path prefix; queries go to
    /// `<url>/api/v1/query`.
    pub url: String,
    #[serde(default = "default_prom_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Largest answer read, in bytes; a larger one is an `error` outcome.
    #[serde(
        default = "default_prom_max_response_size",
        deserialize_with = "byte_size"
    )]
    pub max_response_size: u64,
    /// PEM file with the CA certificate(s) to trust for `https://` (instead of the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// File holding a bearer token (mode-checked like the admin token).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// HTTP basic authentication; exclusive with `bearer_token_file`.
    #[serde(default)]
    pub basic_auth: Option<PrometheusBasicAuth>,
    /// Extra request headers (e.g. `X-Scope-OrgID`); `Authorization` is refused.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// `[prometheus] basic_auth = { username = "…", password_file = "…" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusBasicAuth {
    pub username: String,
    /// File holding the password (mode-checked like the admin token).
    pub password_file: PathBuf,
}

impl PrometheusConfig {
    /// `max_response_size` when not set: 1 MiB.
    pub const DEFAULT_MAX_RESPONSE_SIZE: u64 = 1 << 20;

    /// A section with `url`, `timeout` and every other key at its default.
    pub fn new(url: impl Into<String>, timeout: Duration) -> Self {
        Self {
            url: url.into(),
            timeout,
            max_response_size: Self::DEFAULT_MAX_RESPONSE_SIZE,
            ca_file: None,
            bearer_token_file: None,
            basic_auth: None,
            headers: BTreeMap::new(),
        }
    }
}

fn default_prom_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_prom_max_response_size() -> u64 {
    PrometheusConfig::DEFAULT_MAX_RESPONSE_SIZE
}

/// `[rollout]`: the policy and where its state lives.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    pub policy: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub autostart: bool,
    /// Canary share before any rollout has run (no state yet).
    pub initial_percent: f64,
    /// Size in bytes past which `decisions.ndjson` is rotated to `decisions.ndjson.1`.
    #[serde(deserialize_with = "byte_size")]
    pub decision_log_max_size: u64,
    /// Rotated decision logs kept (`.1` … `.keep`); 0 keeps none.
    pub decision_log_keep: u32,
}

impl RolloutConfig {
    /// `decision_log_max_size` when not set: 64 MiB.
    pub const DEFAULT_DECISION_LOG_MAX_SIZE: u64 = 64 << 20;
    /// Smallest `decision_log_max_size`: 64 KiB.
    pub const MIN_DECISION_LOG_MAX_SIZE: u64 = 64 << 10;
    /// `decision_log_keep` when not set.
    pub const DEFAULT_DECISION_LOG_KEEP: u32 = 5;
    /// Largest `decision_log_keep`.
    pub const MAX_DECISION_LOG_KEEP: u32 = 100;
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            policy: None,
            state_dir: PathBuf::from("/var/lib/canaryd"),
            autostart: false,
            initial_percent: 0.0,
            decision_log_max_size: Self::DEFAULT_DECISION_LOG_MAX_SIZE,
            decision_log_keep: Self::DEFAULT_DECISION_LOG_KEEP,
        }
    }
}

/// `[[notify]]`: a webhook told about every transition (the controller's `notify` module).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    pub url: String,
    #[serde(default)]
    pub format: NotifyFormat,
    /// Bound on one delivery attempt (connect, send, answer).
    #[serde(default = "default_notify_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Further attempts after a failed one, waiting 0.5 s, 1 s, 2 s, … in between.
    #[serde(default = "default_notify_retries")]
    pub retries: u32,
}

fn default_notify_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_notify_retries() -> u32 {
    3
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    #[default]
    Json,
    Slack,
}

// === impl Config ===

impl Config {
    /// Loads `path`, applies `CANARYD_SECTION__KEY` overrides, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (file, src) = read_source(path)?;
        Self::from_source(&file, &src, true)
    }

    /// Parses `src` (named `file` in errors); `env` enables the environment overrides.
    ///
    /// Reports every problem at once ([`Loader`]): every type error, unknown and missing key,
    /// and every semantic problem of the parts that parsed, in file order.
    pub fn from_source(file: &str, src: &str, env: bool) -> Result<Self, ConfigError> {
        let mut loader = Loader::new(file, src)
            .placeholders(&["cookie"])
            .related(related_keys);
        if env {
            loader = loader.env(
                Env::prefixed("CANARYD_")
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            );
        }
        loader.load(Config::validate)
    }

    /// The data-plane sections, for the proxy crate.
    pub fn data_plane(&self) -> DataPlaneConfig {
        DataPlaneConfig {
            proxy: self.proxy.clone(),
            backends: self.backends.clone(),
            routing: self.routing.clone(),
            upstreams: self.upstreams.clone(),
        }
    }

    /// The unix socket `canaryd serve --upgrade` takes the listening sockets over:
    /// `[proxy] upgrade_socket`, or `upgrade.sock` in `[rollout] state_dir`.
    pub fn upgrade_socket(&self) -> PathBuf {
        self.proxy
            .upgrade_socket
            .clone()
            .unwrap_or_else(|| self.rollout.state_dir.join("upgrade.sock"))
    }

    fn validate(&self) -> Vec<Invalid> {
        let mut out = self.data_plane().validate();
        let upgrade = self.upgrade_socket();
        // sockaddr_un.sun_path: 108 bytes with the terminating NUL.
        if upgrade.as_os_str().is_empty() || upgrade.as_os_str().len() > 107 {
            out.push(Invalid {
                key: "proxy.upgrade_socket".into(),
                message: format!(
                    "expected a unix socket path of 1 to 107 bytes, found {:?}{}",
                    upgrade.display(),
                    if self.proxy.upgrade_socket.is_none() {
                        " (the default under rollout.state_dir; set it to a shorter path)"
                    } else {
                        ""
                    }
                ),
            });
        }
        if self.admin.listen.parse::<SocketAddr>().is_err() {
            out.push(Invalid {
                key: "admin.listen".into(),
                message: format!(
                    "expected \"ip:port\" like \"127.0.0.1:9180\", found {:?}",
                    self.admin.listen
                ),
            });
        }
        let p = self.rollout.initial_percent;
        if !(0.0..=100.0).contains(&p) {
            out.push(Invalid {
                key: "rollout.initial_percent".into(),
                message: format!("expected a percentage from 0 to 100, found {p}"),
            });
        }
        out.extend(check_decision_log(&self.rollout));
        out.extend(self.cluster.validate());
        if let Some(prom) = &self.prometheus {
            out.extend(check_prometheus(prom));
        }
        for (i, n) in self.notify.iter().enumerate() {
            if let Err(e) = check_url(&n.url) {
                out.push(Invalid {
                    key: format!("notify[{i}].url"),
                    message: format!("expected {e}"),
                });
            }
            if n.timeout.is_zero() {
                out.push(Invalid {
                    key: format!("notify[{i}].timeout"),
                    message: "expected a positive duration like \"5s\", found 0".into(),
                });
            }
            if n.retries > 10 {
                out.push(Invalid {
                    key: format!("notify[{i}].retries"),
                    message: format!("expected at most 10 retries, found {}", n.retries),
                });
            }
        }
        out
    }
}

/// `[rollout] decision_log_max_size` of at least 64 KiB, `decision_log_keep` at most 100.
fn check_decision_log(r: &RolloutConfig) -> Vec<Invalid> {
    let mut out = Vec::new();
    if r.decision_log_max_size < RolloutConfig::MIN_DECISION_LOG_MAX_SIZE {
        out.push(Invalid {
            key: "rollout.decision_log_max_size".into(),
            message: format!(
                "expected a size of at least \"64KiB\" (65536 bytes) like \"64MiB\", found {}",
                r.decision_log_max_size
            ),
        });
    }
    if r.decision_log_keep > RolloutConfig::MAX_DECISION_LOG_KEEP {
        out.push(Invalid {
            key: "rollout.decision_log_keep".into(),
            message: format!(
                "expected a number of rotated files from 0 to {}, found {}",
                RolloutConfig::MAX_DECISION_LOG_KEEP,
                r.decision_log_keep
            ),
        });
    }
    out
}

/// The keys a check reads besides the one it reports (see [`Loader::related`]): the header
/// override's three keys read each other; a server's address check reads its `addr`.
fn related_keys(key: &str) -> Vec<String> {
    let routing = [
        "routing.header",
        "routing.canary_values",
        "routing.stable_values",
    ];
    if routing.contains(&key) {
        return routing.iter().map(|k| k.to_string()).collect();
    }
    if (key.starts_with("backends.") || key.starts_with("upstreams."))
        && key.contains(".servers[")
        && key.ends_with(']')
    {
        return vec![format!("{key}.addr")];
    }
    Vec::new()
}

#[cfg(test)]
mod tests;
