//! `canaryd.toml`: the whole file, loaded with figment (TOML, then `CANARYD_SECTION__KEY`
//! environment overrides), rejecting unknown keys, and validated.
//!
//! Every error names the file, the line when the key is in the file, the dotted key and what
//! was expected, e.g.
//! `/etc/canaryd/canaryd.toml:12: key `proxy.threads`: invalid type: found string "two", expected usize`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use canaryd_proxy::config::{
    duration, BackendsConfig, DataPlaneConfig, Invalid, ProxyConfig, RoutingConfig,
};
use figment::providers::{Env, Format, Toml};
use figment::Figment;

use crate::toml_location::line_of;
use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub proxy: ProxyConfig,
    pub backends: BackendsConfig,
    #[serde(default)]
    pub routing: RoutingConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub prometheus: Option<PrometheusConfig>,
    #[serde(default)]
    pub rollout: RolloutConfig,
    #[serde(default)]
    pub notify: Vec<NotifyConfig>,
}

/// `[admin]`: the admin listener (metrics, health, API).
#[derive(Debug, Clone, Deserialize)]
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

/// `[prometheus]`: where PromQL rules are evaluated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusConfig {
    pub url: String,
    #[serde(default = "default_prom_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn default_prom_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `[rollout]`: the policy and where its state lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutConfig {
    pub policy: Option<PathBuf>,
    pub state_dir: PathBuf,
    pub autostart: bool,
    /// Canary share before any rollout has run (no state yet).
    pub initial_percent: f64,
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            policy: None,
            state_dir: PathBuf::from("/var/lib/canaryd"),
            autostart: false,
            initial_percent: 0.0,
        }
    }
}

/// `[[notify]]`: a webhook told about every transition (see [`crate::notify`]).
#[derive(Debug, Clone, Deserialize)]
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

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{}", render(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

/// Converts figment's errors (wrong type, unknown key, missing key) into located problems.
pub(crate) fn figment_problems(e: figment::Error, src: &str) -> Vec<Problem> {
    e.into_iter()
        .map(|e| {
            let mut key = dotted(&e.path);
            let message = match &e.kind {
                figment::error::Kind::UnknownField(field, expected) => {
                    push_field(&mut key, field);
                    format!("unknown key; expected one of {}", list(expected))
                }
                figment::error::Kind::MissingField(field) => {
                    push_field(&mut key, field);
                    "missing; this key is required".to_string()
                }
                kind => {
                    let from_env = e
                        .metadata
                        .as_ref()
                        .is_some_and(|m| m.name.contains("environment"));
                    if from_env {
                        format!(
                            "{kind} (from environment variable CANARYD_{})",
                            env_name(&key)
                        )
                    } else {
                        kind.to_string()
                    }
                }
            };
            Problem {
                line: line_of(src, &key),
                key,
                message,
            }
        })
        .collect()
}

pub(crate) fn render(file: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match p.line {
            Some(line) => format!("{file}:{line}: key `{}`: {}", p.key, p.message),
            None => format!("{file}: key `{}`: {}", p.key, p.message),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// === impl Config ===

impl Config {
    /// Loads `path`, applies `CANARYD_SECTION__KEY` overrides, and validates.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::from_source(&file, &src, true)
    }

    /// Parses `src` (named `file` in errors); `env` enables the environment overrides.
    pub fn from_source(file: &str, src: &str, env: bool) -> Result<Self, ConfigError> {
        let mut fig = Figment::from(Toml::string(src));
        if env {
            fig = fig.merge(
                Env::prefixed("CANARYD_")
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            );
        }
        let cfg: Config = fig.extract().map_err(|e| ConfigError::Invalid {
            file: file.to_string(),
            problems: figment_problems(e, src),
        })?;
        let problems = cfg.validate();
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                file: file.to_string(),
                problems: problems
                    .into_iter()
                    .map(|i| Problem {
                        line: line_of(src, &i.key),
                        key: i.key,
                        message: i.message,
                    })
                    .collect(),
            })
        }
    }

    /// The data-plane sections, for the proxy crate.
    pub fn data_plane(&self) -> DataPlaneConfig {
        DataPlaneConfig {
            proxy: self.proxy.clone(),
            backends: self.backends.clone(),
            routing: self.routing.clone(),
        }
    }

    fn validate(&self) -> Vec<Invalid> {
        let mut out = self.data_plane().validate();
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
        if let Some(prom) = &self.prometheus {
            if let Err(e) = crate::prometheus::PromClient::new(&prom.url, prom.timeout) {
                out.push(Invalid {
                    key: "prometheus.url".into(),
                    message: format!("expected a usable http:// URL: {e}"),
                });
            }
        }
        for (i, n) in self.notify.iter().enumerate() {
            if let Err(e) = crate::notify::check_url(&n.url) {
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

/// `["rules", "0", "name"]` → `rules[0].name`.
fn dotted(path: &[String]) -> String {
    let mut key = String::new();
    for seg in path {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            key.push('[');
            key.push_str(seg);
            key.push(']');
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(seg);
        }
    }
    key
}

/// figment sometimes already ends the path with the offending field.
fn push_field(key: &mut String, field: &str) {
    if key.rsplit('.').next() != Some(field) {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(field);
    }
}

fn list(expected: &[&str]) -> String {
    expected
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn env_name(key: &str) -> String {
    key.to_ascii_uppercase().replace('.', "__")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key `{}`: {}", self.key, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[proxy]
listen = ["127.0.0.1:8000"]

[backends.stable]
servers = ["127.0.0.1:8080"]

[backends.canary]
servers = ["127.0.0.1:8081"]

[rollout]
initial_percent = 5
"#;

    fn err(src: &str) -> String {
        Config::from_source("canaryd.toml", src, false)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn good_config_loads() {
        let c = Config::from_source("canaryd.toml", GOOD, false).unwrap();
        assert_eq!(c.rollout.initial_percent, 5.0);
        assert_eq!(c.admin.listen, "127.0.0.1:9180");
    }

    #[test]
    fn wrong_type_names_file_line_key_and_expectation() {
        let src = GOOD.replace("[proxy]\n", "[proxy]\nthreads = \"two\"\n");
        let e = err(&src);
        assert!(
            e.starts_with("canaryd.toml:3: key `proxy.threads`: "),
            "{e}"
        );
        assert!(e.contains("expected"), "{e}");
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let src = GOOD.replace(
            "initial_percent = 5",
            "initial_percent = 5\nauto_start = true",
        );
        let e = err(&src);
        assert!(
            e.starts_with("canaryd.toml:13: key `rollout.auto_start`: unknown key"),
            "{e}"
        );
        assert!(e.contains("`autostart`"), "{e}");
    }

    #[test]
    fn missing_section_is_named() {
        let e = err("[proxy]\nlisten = [\"127.0.0.1:1\"]\n");
        assert!(e.contains("key `backends`: missing"), "{e}");
    }

    #[test]
    fn semantic_errors_are_located() {
        let src = GOOD
            .replace("127.0.0.1:8000", "localhost")
            .replace("initial_percent = 5", "initial_percent = 150");
        let e = err(&src);
        assert!(e.contains("canaryd.toml:3: key `proxy.listen[0]`"), "{e}");
        assert!(
            e.contains("canaryd.toml:12: key `rollout.initial_percent`: expected a percentage"),
            "{e}"
        );
    }

    #[test]
    fn route_errors_point_into_the_array_of_tables() {
        let src = format!(
            "{GOOD}\n[[proxy.routes]]\nprefix = \"/a\"\n[[proxy.routes]]\nprefix = \"b\"\n"
        );
        let e = err(&src);
        assert!(
            e.contains("canaryd.toml:17: key `proxy.routes[1].prefix`"),
            "{e}"
        );
    }
}
