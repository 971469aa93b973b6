//! `canaryd.toml`: the typed configuration model, its validation, and errors that name file,
//! line, key and expectation.
//!
//! A crate of its own so that what only reads a configuration (`canaryd check`,
//! `canaryd import-nginx`, tests) does not compile the daemon: it depends on serde, figment,
//! toml_edit, humantime, ipnet, thiserror and url, and on nothing of Pingora, tokio or TLS.
//!
//! # Layout
//!
//! - `file`: [`Config`], the whole file (the data-plane sections plus `[admin]`,
//!   `[prometheus]`, `[rollout]`, `[[notify]]`): loading, environment overrides, validation.
//! - `access_log`: `[proxy.access_log]` ([`AccessLogConfig`]): path and line format.
//! - `proxy`: the data-plane sections `[proxy]`, `[backends]`, `[routing]`
//!   ([`DataPlaneConfig`]) and their validation; the proxy crate builds from these.
//! - `upstreams`: `[upstreams.NAME]`, pools outside the split, and the `upstream` and `hosts`
//!   of routes ([`UpstreamsConfig`]).
//! - `headers`: header rules, body limit and error pages of `[proxy]` and routes, and the
//!   value templates ([`parse_template`]).
//! - `tls`: `[proxy.tls]` (TLS listeners, certificates, protocols, ALPN), the
//!   `https_redirect` keys and `https://` servers ([`TlsConfig`], [`server_target`]); file and
//!   PEM checks only, no TLS library.
//! - `problem`: what is wrong and where — [`Invalid`], [`Problem`], [`ConfigError`], and
//!   figment's errors as problems ([`figment_problems`], also used by the policy loader).
//! - `cluster`: `[cluster]` ([`ClusterConfig`]): the file store or a fleet through etcd.
//! - `collect`: [`Loader`], which reports every mistake of a file at once: it records a
//!   figment error, repairs the value tree (drop the key, or a placeholder) and extracts
//!   again, then drops semantic problems that follow from a repaired key.
//! - `location`: [`line_of`], a dotted key's line in TOML source.
//! - `check`: value checks shared with the daemon's clients — header names, webhook and
//!   Prometheus URLs — written without their HTTP stack.
//! - `de`: serde helpers for values written as strings ([`duration`], CIDRs).

mod access_log;
mod check;
mod cluster;
mod collect;
mod de;
mod file;
mod headers;
mod location;
mod problem;
mod proxy;
mod tls;
mod upstreams;

pub use access_log::{AccessLogConfig, AccessLogFormat, STDOUT as ACCESS_LOG_STDOUT};
pub use check::{
    byte_size, check_prometheus, check_prometheus_url, check_url, is_header_name, is_header_value,
    parse_size, MAX_PROMETHEUS_RESPONSE_SIZE,
};
pub use cluster::{ClusterConfig, StoreKind, MAX_LEASE_TTL, MIN_LEASE_TTL};
pub use collect::{Loader, MAX_ROUNDS};
pub use de::duration;
pub use file::{
    AdminConfig, Config, NotifyConfig, NotifyFormat, PrometheusBasicAuth, PrometheusConfig,
    RolloutConfig,
};
pub use headers::{parse_template, ErrorPage, Part, Rules, Var, MAX_ERROR_PAGE};
pub use location::line_of;
pub use problem::{figment_problems, read_source, ConfigError, Invalid, Problem};
pub use proxy::{
    resolve, BackendsConfig, DataPlaneConfig, HealthConfig, PoolConfig, ProxyConfig, RouteConfig,
    RoutingConfig, ServerEntry, StickyConfig, StickyKey,
};
pub use tls::{server_target, CertificateConfig, TlsConfig, TLS_PROTOCOLS};
pub use upstreams::{is_host_pattern, UpstreamsConfig};
