//! `[cluster]`: where the rollout state lives. `store = "file"` (the default) keeps it in
//! `[rollout] state_dir` on this machine; `store = "etcd"` shares one rollout between every
//! canaryd of a fleet through etcd — one elected controller acts, every member applies the
//! split it writes under `prefix`.
//!
//! Only the model and its checks live here (no etcd client): `canaryd check` judges a fleet
//! config exactly as `serve` does. The daemon's etcd side is `canaryd-controller`'s `cluster/`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::de::duration;
use crate::problem::Invalid;

/// Shortest `lease_ttl`: the leader renews its lease three times per TTL and stops acting
/// after two thirds of it, so below 2 s a busy machine could lose leadership to a hiccup.
pub const MIN_LEASE_TTL: Duration = Duration::from_secs(2);
/// Longest `lease_ttl`: a dead leader blocks the rollout for up to this long.
pub const MAX_LEASE_TTL: Duration = Duration::from_secs(300);

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    pub store: StoreKind,
    /// etcd client URLs (`http://host:2379`, or `https://` with the TLS keys below).
    pub endpoints: Vec<String>,
    /// The key prefix of this rollout, e.g. `/canaryd/checkout`: one per rollout (service).
    pub prefix: String,
    /// This member's name in the election and in `status`; empty = the machine's hostname.
    pub name: String,
    /// The leader's lease: a leader that stops renewing loses leadership within this time.
    #[serde(deserialize_with = "duration")]
    pub lease_ttl: Duration,
    /// PEM CA certificate(s) trusted for `https://` endpoints.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS; needs `key`.
    pub cert: Option<PathBuf>,
    /// Client key (PEM) for mutual TLS; needs `cert`.
    pub key: Option<PathBuf>,
    /// etcd authentication: the user; needs `password_file`.
    pub username: Option<String>,
    /// File holding the etcd user's password (mode-checked like the admin token).
    pub password_file: Option<PathBuf>,
}

/// `[cluster] store`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// `state_dir/state.json` on this machine.
    #[default]
    File,
    /// Shared through etcd.
    Etcd,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            store: StoreKind::File,
            endpoints: Vec::new(),
            prefix: String::new(),
            name: String::new(),
            lease_ttl: Self::DEFAULT_LEASE_TTL,
            ca_file: None,
            cert: None,
            key: None,
            username: None,
            password_file: None,
        }
    }
}

impl ClusterConfig {
    /// `lease_ttl` when not set.
    pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

    /// Whether the rollout is shared through etcd.
    pub fn is_etcd(&self) -> bool {
        self.store == StoreKind::Etcd
    }

    /// Every problem of the section; none for the file store (its other keys are ignored
    /// there, but still checked when set, so a half-written fleet config is caught early).
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        let bad = |key: &str, message: String| Invalid {
            key: format!("cluster.{key}"),
            message,
        };
        if !self.is_etcd() {
            if !self.endpoints.is_empty() {
                out.push(bad(
                    "store",
                    "expected \"etcd\" when `cluster.endpoints` is set (the file store uses no endpoints), found \"file\"".into(),
                ));
            }
            return out;
        }
        if self.endpoints.is_empty() {
            out.push(bad(
                "endpoints",
                "expected at least one etcd URL like \"http://127.0.0.1:2379\" with store = \"etcd\"".into(),
            ));
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            if let Err(why) = check_endpoint(e) {
                out.push(bad(&format!("endpoints[{i}]"), why));
            }
        }
        if !self.prefix.starts_with('/') || self.prefix.len() < 2 || self.prefix.ends_with('/') {
            out.push(bad(
                "prefix",
                format!(
                    "expected a key prefix like \"/canaryd/checkout\" (starts with '/', does not end with one), found {:?}",
                    self.prefix
                ),
            ));
        }
        if self.name.chars().any(|c| c == '/' || c.is_control()) {
            out.push(bad(
                "name",
                format!(
                    "expected a member name without '/' or control characters, found {:?}",
                    self.name
                ),
            ));
        }
        if self.lease_ttl < MIN_LEASE_TTL || self.lease_ttl > MAX_LEASE_TTL {
            out.push(bad(
                "lease_ttl",
                format!(
                    "expected a duration from \"2s\" to \"5m\" (whole seconds), found {:?}",
                    self.lease_ttl
                ),
            ));
        } else if self.lease_ttl.subsec_nanos() != 0 {
            out.push(bad(
                "lease_ttl",
                format!(
                    "expected whole seconds (etcd leases count seconds), found {:?}",
                    self.lease_ttl
                ),
            ));
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => out.push(bad(
                "key",
                "missing; `cluster.cert` needs the client key beside it".into(),
            )),
            (None, Some(_)) => out.push(bad(
                "cert",
                "missing; `cluster.key` needs the client certificate beside it".into(),
            )),
            _ => {}
        }
        let tls = self.ca_file.is_some() || self.cert.is_some();
        if tls {
            for (i, e) in self.endpoints.iter().enumerate() {
                if e.starts_with("http://") {
                    out.push(bad(
                        &format!("endpoints[{i}]"),
                        format!("expected an https:// URL when `cluster.ca_file` or `cluster.cert` is set, found {e:?}"),
                    ));
                }
            }
        }
        match (&self.username, &self.password_file) {
            (Some(_), None) => out.push(bad(
                "password_file",
                "missing; `cluster.username` needs a password file".into(),
            )),
            (None, Some(_)) => out.push(bad(
                "username",
                "missing; `cluster.password_file` needs a user".into(),
            )),
            (Some(u), Some(_)) if u.is_empty() => {
                out.push(bad("username", "expected a user name, found \"\"".into()))
            }
            _ => {}
        }
        out
    }
}

/// An etcd endpoint: `http://host:port` or `https://host:port`, nothing after the port.
fn check_endpoint(e: &str) -> Result<(), String> {
    let expected = || {
        format!("expected an etcd URL like \"http://127.0.0.1:2379\" (http:// or https://, host and port), found {e:?}")
    };
    let url = url::Url::parse(e).map_err(|_| expected())?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none_or(str::is_empty)
        || url.port().is_none()
        || !matches!(url.path(), "" | "/")
        || url.query().is_some()
    {
        return Err(expected());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
