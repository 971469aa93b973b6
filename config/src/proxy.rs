//! Typed configuration of the data plane: the `[proxy]`, `[backends]` and `[routing]` sections
//! of `canaryd.toml` (named upstreams are in `upstreams.rs`, header rules in `headers.rs`).
//!
//! Parsing (serde) rejects unknown keys and wrong types; [`DataPlaneConfig::validate`] then checks
//! what types cannot express (addresses parse, weights are positive, prefixes start with `/`) and
//! reports every problem with the dotted key it belongs to, so the loader can name file, key and
//! expectation in one line.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::access_log::AccessLogConfig;
use crate::check::{byte_size, is_header_name};
use crate::de::{cidrs, duration, opt_duration};
use crate::headers::{check_rules, opt_byte_size, ErrorPage, Rules};
use crate::problem::Invalid;
use crate::tls::{default_redirect_except, pem_file, server_target, TlsConfig};
use crate::upstreams::{check_upstreams, UpstreamsConfig};

/// The three data-plane sections, as they appear in the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataPlaneConfig {
    #[serde(default)]
    pub proxy: ProxyConfig,
    pub backends: BackendsConfig,
    #[serde(default)]
    pub routing: RoutingConfig,
    #[serde(default)]
    pub upstreams: UpstreamsConfig,
}

/// `[proxy]`: listeners, timeouts, connection handling.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    pub listen: Vec<String>,
    /// Worker threads; `None` means one per CPU.
    pub threads: Option<usize>,
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub read_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub write_timeout: Duration,
    /// How long an idle upstream keepalive connection is kept in the pool.
    #[serde(deserialize_with = "duration")]
    pub upstream_idle_timeout: Duration,
    /// Idle upstream connections kept for reuse (nginx `keepalive`).
    pub keepalive_pool: usize,
    /// Downstream keepalive timeout (nginx `keepalive_timeout`, 75 s).
    #[serde(deserialize_with = "duration")]
    pub keepalive_timeout: Duration,
    /// Requests served on one downstream connection before it is closed (nginx
    /// `keepalive_requests`, 1000).
    pub keepalive_requests: u32,
    /// Time a client has to send the next chunk of its body or accept the next chunk of the
    /// response (nginx `client_body_timeout` / `send_timeout`, 60 s).
    #[serde(deserialize_with = "duration")]
    pub client_timeout: Duration,
    /// Time a client has to send a whole request header, from its first byte (or from the
    /// connection's start for its first request); past it the connection is closed (nginx
    /// `client_header_timeout`, 60 s).
    #[serde(deserialize_with = "duration")]
    pub client_header_timeout: Duration,
    /// Upper bound on a graceful stop: in-flight requests get this long to finish.
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// Largest request body (nginx `client_max_body_size`); 0: no limit.
    #[serde(deserialize_with = "byte_size")]
    pub max_body_size: u64,
    pub set_request_headers: BTreeMap<String, String>,
    pub add_response_headers: BTreeMap<String, String>,
    pub hide_response_headers: Vec<String>,
    /// Pages for the answers canaryd generates itself, by status.
    pub error_pages: BTreeMap<String, ErrorPage>,
    /// Where the running canaryd hands its listening sockets to `canaryd serve --upgrade`;
    /// `None` means `upgrade.sock` in `[rollout] state_dir` ([`crate::Config::upgrade_socket`]).
    pub upgrade_socket: Option<std::path::PathBuf>,
    pub routes: Vec<RouteConfig>,
    /// `[proxy.tls]`: listeners that terminate TLS (see `tls.rs`).
    pub tls: Option<TlsConfig>,
    /// Plain listeners answer `301 https://$host$request_uri` (except the paths below).
    pub https_redirect: bool,
    /// Path prefixes proxied as usual on plain listeners despite `https_redirect`.
    pub https_redirect_except: Vec<String>,
    /// `[proxy.access_log]`; absent: no access log.
    pub access_log: Option<AccessLogConfig>,
}

impl ProxyConfig {
    /// `max_body_size` when not set: 1 MiB, as nginx.
    pub const DEFAULT_MAX_BODY_SIZE: u64 = 1 << 20;
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            listen: vec!["0.0.0.0:80".to_string()],
            threads: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            upstream_idle_timeout: Duration::from_secs(60),
            keepalive_pool: 256,
            keepalive_timeout: Duration::from_secs(75),
            keepalive_requests: 1000,
            client_timeout: Duration::from_secs(60),
            client_header_timeout: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(30),
            max_body_size: Self::DEFAULT_MAX_BODY_SIZE,
            set_request_headers: BTreeMap::new(),
            add_response_headers: BTreeMap::new(),
            hide_response_headers: Vec::new(),
            error_pages: BTreeMap::new(),
            upgrade_socket: None,
            routes: Vec::new(),
            tls: None,
            https_redirect: false,
            https_redirect_except: default_redirect_except(),
            access_log: None,
        }
    }
}

/// `[[proxy.routes]]`: per-host and per-prefix settings; routes match by host, then the
/// longest prefix wins. Keys left out take `[proxy]`'s.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default = "root")]
    pub prefix: String,
    /// Host names (`Host` header), exact or `*.example.com`; empty: any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// A named upstream (`[upstreams.NAME]`) serving the route outside the split.
    #[serde(default)]
    pub upstream: Option<String>,
    #[serde(default, deserialize_with = "opt_byte_size")]
    pub max_body_size: Option<u64>,
    #[serde(default)]
    pub set_request_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub add_response_headers: BTreeMap<String, String>,
    #[serde(default)]
    pub hide_response_headers: Vec<String>,
    #[serde(default)]
    pub error_pages: BTreeMap<String, ErrorPage>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub read_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub write_timeout: Option<Duration>,
}

fn root() -> String {
    "/".to_string()
}

impl RouteConfig {
    /// A route for `prefix` with every other key left out.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            hosts: Vec::new(),
            upstream: None,
            max_body_size: None,
            set_request_headers: BTreeMap::new(),
            add_response_headers: BTreeMap::new(),
            hide_response_headers: Vec::new(),
            error_pages: BTreeMap::new(),
            connect_timeout: None,
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// Its `route` label in metrics: the prefix, after the first host when it has hosts
    /// (`api.example.com/v1/`).
    pub fn label(&self) -> String {
        match self.hosts.first() {
            Some(h) => format!("{h}{}", self.prefix),
            None => self.prefix.clone(),
        }
    }
}

macro_rules! rules {
    ($t:ty) => {
        impl Rules for $t {
            fn set_request_headers(&self) -> &BTreeMap<String, String> {
                &self.set_request_headers
            }
            fn add_response_headers(&self) -> &BTreeMap<String, String> {
                &self.add_response_headers
            }
            fn hide_response_headers(&self) -> &[String] {
                &self.hide_response_headers
            }
            fn error_pages(&self) -> &BTreeMap<String, ErrorPage> {
                &self.error_pages
            }
        }
    };
}
rules!(ProxyConfig);
rules!(RouteConfig);

/// `[backends]`: the two pools.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendsConfig {
    pub stable: PoolConfig,
    pub canary: PoolConfig,
}

/// `[backends.stable]` / `[backends.canary]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    pub servers: Vec<ServerEntry>,
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// Passive failures within `fail_timeout` that take a server out (nginx `max_fails`, 1;
    /// 0 disables passive marking).
    #[serde(default = "default_max_fails")]
    pub max_fails: u32,
    #[serde(default = "default_fail_timeout", deserialize_with = "duration")]
    pub fail_timeout: Duration,
    /// Idle connections to this pool kept per worker (nginx `keepalive` in an `upstream`),
    /// within `[proxy] keepalive_pool`; none: only that limit.
    #[serde(default)]
    pub keepalive: Option<usize>,
    /// PEM CA certificate(s) that `https://` servers are verified with, instead of the
    /// system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_max_fails() -> u32 {
    1
}

fn default_fail_timeout() -> Duration {
    Duration::from_secs(10)
}

/// One upstream server: `"host:port"` or `{ addr = "host:port", weight = 2 }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEntry {
    pub addr: String,
    pub weight: u32,
}

/// Active health check of every server in a pool.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    pub path: String,
    #[serde(default = "default_health_interval", deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(default = "default_health_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// Consecutive failures that mark a server down.
    #[serde(default = "default_fails")]
    pub fails: u32,
    /// Consecutive successes that bring it back.
    #[serde(default = "default_passes")]
    pub passes: u32,
}

fn default_health_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_health_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_fails() -> u32 {
    3
}
fn default_passes() -> u32 {
    2
}

/// `[routing]`: header override, stickiness, canary-error retries.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    pub header: Option<String>,
    pub canary_values: Vec<String>,
    pub stable_values: Vec<String>,
    /// Who may use the override header; empty means everyone.
    #[serde(deserialize_with = "cidrs")]
    pub trusted_cidrs: Vec<IpNet>,
    pub strip_header: bool,
    pub sticky: Option<StickyConfig>,
    pub retry_on_canary_error: bool,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            header: None,
            canary_values: Vec::new(),
            stable_values: Vec::new(),
            trusted_cidrs: Vec::new(),
            strip_header: false,
            sticky: None,
            retry_on_canary_error: true,
        }
    }
}

/// `[routing] sticky = { key = "cookie", cookie = "canaryd_bucket", max_age = "24h" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickyConfig {
    pub key: StickyKey,
    #[serde(default = "default_cookie")]
    pub cookie: String,
    #[serde(default = "default_max_age", deserialize_with = "duration")]
    pub max_age: Duration,
}

fn default_cookie() -> String {
    "canaryd_bucket".to_string()
}
fn default_max_age() -> Duration {
    Duration::from_secs(24 * 3600)
}

/// What identifies a client for stickiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    Cookie,
    Header(String),
    Ip,
}

// === impl DataPlaneConfig ===

impl DataPlaneConfig {
    /// Checks everything serde cannot; returns every problem, not just the first.
    pub fn validate(&self) -> Vec<Invalid> {
        let mut out = Vec::new();
        self.check_proxy(&mut out);
        self.check_routes(&mut out);
        out.extend(check_upstreams(&self.upstreams, &self.proxy.routes));
        check_pool("backends.stable", &self.backends.stable, &mut out);
        check_pool("backends.canary", &self.backends.canary, &mut out);
        self.check_routing(&mut out);
        out
    }

    /// `[proxy]`'s own keys: listeners, threads, limits, header rules.
    fn check_proxy(&self, out: &mut Vec<Invalid>) {
        let mut bad = |key: &str, message: String| {
            out.push(Invalid {
                key: key.into(),
                message,
            })
        };
        if self.proxy.listen.is_empty() && self.proxy.tls.is_none() {
            bad(
                "proxy.listen",
                "expected at least one \"ip:port\" address (or a [proxy.tls] listener)".into(),
            );
        }
        for (i, l) in self.proxy.listen.iter().enumerate() {
            if l.parse::<SocketAddr>().is_err() {
                bad(
                    &format!("proxy.listen[{i}]"),
                    format!("expected \"ip:port\" like \"0.0.0.0:80\", found {l:?}"),
                );
            }
        }
        if self.proxy.threads == Some(0) {
            bad(
                "proxy.threads",
                "expected a positive number of worker threads (omit for one per CPU)".into(),
            );
        }
        if self.proxy.keepalive_requests == 0 {
            bad(
                "proxy.keepalive_requests",
                "expected at least 1 request per client connection".into(),
            );
        }
        if self.proxy.client_header_timeout.is_zero() {
            bad(
                "proxy.client_header_timeout",
                "expected a positive duration like \"60s\"".into(),
            );
        }
        if self.proxy.shutdown_grace.is_zero() {
            bad(
                "proxy.shutdown_grace",
                "expected a positive duration like \"30s\"".into(),
            );
        }
        if let Some(tls) = &self.proxy.tls {
            tls.validate(&self.proxy.listen, out);
        }
        for (i, p) in self.proxy.https_redirect_except.iter().enumerate() {
            if !p.starts_with('/') {
                out.push(Invalid {
                    key: format!("proxy.https_redirect_except[{i}]"),
                    message: format!("expected a path prefix starting with '/', found {p:?}"),
                });
            }
        }
        if let Some(log) = &self.proxy.access_log {
            log.validate(out);
        }
        check_rules("proxy", &self.proxy, out);
    }

    /// `[[proxy.routes]]`: prefixes, each (host, prefix) once, header rules.
    fn check_routes(&self, out: &mut Vec<Invalid>) {
        for (i, r) in self.proxy.routes.iter().enumerate() {
            let at = format!("proxy.routes[{i}]");
            if !r.prefix.starts_with('/') {
                out.push(Invalid {
                    key: format!("{at}.prefix"),
                    message: format!(
                        "expected a path prefix starting with '/', found {:?}",
                        r.prefix
                    ),
                });
            }
            let same_hosts = |o: &RouteConfig| {
                (o.hosts.is_empty() && r.hosts.is_empty())
                    || o.hosts.iter().any(|h| r.hosts.contains(h))
            };
            if self.proxy.routes[..i]
                .iter()
                .any(|o| o.prefix == r.prefix && same_hosts(o))
            {
                out.push(Invalid {
                    key: format!("{at}.prefix"),
                    message: format!(
                        "expected each prefix once per host, {:?} is repeated",
                        r.prefix
                    ),
                });
            }
            check_rules(&at, r, out);
        }
    }

    /// `[routing]`: the override header and stickiness.
    fn check_routing(&self, out: &mut Vec<Invalid>) {
        let mut bad = |key: &str, message: String| {
            out.push(Invalid {
                key: key.into(),
                message,
            })
        };
        let r = &self.routing;
        if let Some(h) = &r.header {
            if !is_header_name(h) {
                bad(
                    "routing.header",
                    format!("expected an HTTP header name, found {h:?}"),
                );
            }
            if r.canary_values.is_empty() && r.stable_values.is_empty() {
                bad(
                    "routing.canary_values",
                    "expected at least one value in `canary_values` or `stable_values` when `header` is set".into(),
                );
            }
        } else if !r.canary_values.is_empty() || !r.stable_values.is_empty() {
            bad(
                "routing.header",
                "expected a header name: `canary_values`/`stable_values` are set but `header` is not".into(),
            );
        }
        if let Some(s) = &r.sticky {
            if let StickyKey::Header(h) = &s.key {
                if !is_header_name(h) {
                    bad(
                        "routing.sticky.key",
                        format!("expected \"header:NAME\" with a valid header name, found {h:?}"),
                    );
                }
            }
            if s.cookie.is_empty()
                || !s
                    .cookie
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                bad(
                    "routing.sticky.cookie",
                    format!(
                        "expected a cookie name of letters, digits, '_' or '-', found {:?}",
                        s.cookie
                    ),
                );
            }
        }
    }
}

/// Checks one pool (`[backends.stable]`, `[upstreams.api]`); `at` is its dotted key.
pub(crate) fn check_pool(at: &str, pool: &PoolConfig, out: &mut Vec<Invalid>) {
    let mut bad = |key: String, message: String| out.push(Invalid { key, message });
    if pool.servers.is_empty() {
        bad(
            format!("{at}.servers"),
            "expected at least one server \"host:port\"".into(),
        );
    }
    for (i, s) in pool.servers.iter().enumerate() {
        if resolve(server_target(&s.addr).1).is_none() {
            bad(
                format!("{at}.servers[{i}]"),
                format!("expected \"host:port\" that resolves, found {:?}", s.addr),
            );
        }
        if !(1..=1000).contains(&s.weight) {
            bad(
                format!("{at}.servers[{i}].weight"),
                format!("expected a weight from 1 to 1000, found {}", s.weight),
            );
        }
    }
    if let Some(ca) = &pool.ca_file {
        if let Err(e) = pem_file(ca, "CERTIFICATE") {
            bad(format!("{at}.ca_file"), e);
        }
    }
    if let Some(h) = &pool.health {
        if !h.path.starts_with('/') {
            bad(
                format!("{at}.health.path"),
                format!("expected a path starting with '/', found {:?}", h.path),
            );
        }
        if h.interval.is_zero() || h.timeout.is_zero() {
            bad(
                format!("{at}.health"),
                "expected positive `interval` and `timeout`".into(),
            );
        }
        if h.fails == 0 || h.passes == 0 {
            bad(
                format!("{at}.health"),
                "expected `fails` and `passes` of at least 1".into(),
            );
        }
    }
}

/// Resolves "host:port" to the first address, as nginx does at start-up.
pub fn resolve(addr: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    addr.to_socket_addrs().ok()?.next()
}

impl<'de> Deserialize<'de> for ServerEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ServerEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"host:port\" or { addr = \"host:port\", weight = N }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ServerEntry, E> {
                Ok(ServerEntry {
                    addr: v.to_string(),
                    weight: 1,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ServerEntry, A::Error> {
                let mut addr = None;
                let mut weight = None;
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "addr" => addr = Some(map.next_value::<String>()?),
                        "weight" => weight = Some(map.next_value::<u32>()?),
                        other => return Err(de::Error::unknown_field(other, &["addr", "weight"])),
                    }
                }
                Ok(ServerEntry {
                    addr: addr.ok_or_else(|| de::Error::missing_field("addr"))?,
                    weight: weight.unwrap_or(1),
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for StickyKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "cookie" => Ok(StickyKey::Cookie),
            "ip" => Ok(StickyKey::Ip),
            _ => match s.strip_prefix("header:") {
                Some(name) if !name.is_empty() => Ok(StickyKey::Header(name.to_string())),
                _ => Err(de::Error::custom(format!(
                    "expected \"cookie\", \"ip\" or \"header:NAME\", found {s:?}"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests;
