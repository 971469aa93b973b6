//! The translation's output: every canaryd setting with the nginx directive it came from (its
//! comment in the rendered file), grouped as `canaryd.toml` groups them. `render` writes it.

use crate::units::Ms;
use crate::Finding;

/// A value for a canaryd key and where it came from (shown as a comment).
#[derive(Debug, Clone, PartialEq)]
pub struct Setting<T> {
    pub value: T,
    pub comment: String,
}

/// Everything the rendered `canaryd.toml` says.
#[derive(Debug, Clone)]
pub struct Plan {
    pub proxy: ProxyPlan,
    pub routes: Vec<RoutePlan>,
    /// `[proxy.access_log]` (always `combined`).
    pub access_log: Option<AccessLogPlan>,
    /// `[proxy.tls]`, when the front has TLS listeners.
    pub tls: Option<TlsPlan>,
    pub stable: PoolPlan,
    pub canary: PoolPlan,
    /// `[upstreams.NAME]`: the upstreams of prefix locations other than the main one.
    pub upstreams: Vec<(String, PoolPlan)>,
    pub routing: Option<RoutingPlan>,
    pub initial_percent: Setting<f64>,
    /// A proxied health path to suggest for active checks (nginx open source has none).
    pub health_path: Option<String>,
    /// Directives canaryd implements without a setting.
    pub handled: Vec<Finding>,
    /// Directives canaryd cannot implement.
    pub untranslated: Vec<Finding>,
    /// Behaviour that differs without a directive to point at.
    pub notes: Vec<String>,
}

/// `[proxy]`.
#[derive(Debug, Clone)]
pub struct ProxyPlan {
    pub listen: Vec<Setting<String>>,
    /// Set when a server block only redirected to https.
    pub https_redirect: Option<Setting<bool>>,
    pub threads: Option<Setting<usize>>,
    pub connect_timeout: Setting<Ms>,
    pub read_timeout: Setting<Ms>,
    pub write_timeout: Setting<Ms>,
    pub upstream_idle_timeout: Option<Setting<Ms>>,
    pub keepalive_pool: Option<Setting<usize>>,
    pub keepalive_timeout: Option<Setting<Ms>>,
    pub keepalive_requests: Option<Setting<u64>>,
    pub client_timeout: Option<Setting<Ms>>,
    /// `client_max_body_size`, bytes.
    pub max_body_size: Option<Setting<u64>>,
    /// `add_header`: (name, value).
    pub add_response_headers: Vec<Setting<(String, String)>>,
    /// `proxy_set_header` canaryd does not do by itself: (name, value).
    pub set_request_headers: Vec<Setting<(String, String)>>,
    /// `proxy_hide_header`: (name, "").
    pub hide_response_headers: Vec<Setting<(String, String)>>,
    /// `error_page`: (status, file).
    pub error_pages: Vec<Setting<(String, String)>>,
}

/// `[proxy.tls]`.
#[derive(Debug, Clone)]
pub struct TlsPlan {
    pub listen: Vec<Setting<String>>,
    /// (cert, key) pairs; the first is the default.
    pub certificates: Vec<(Setting<String>, Setting<String>)>,
    /// Only when nginx set `ssl_protocols`.
    pub protocols: Option<Setting<Vec<String>>>,
    pub http2: Setting<bool>,
}

/// `[proxy.access_log]`.
#[derive(Debug, Clone)]
pub struct AccessLogPlan {
    pub path: Setting<String>,
}

/// `[[proxy.routes]]`.
#[derive(Debug, Clone, Default)]
pub struct RoutePlan {
    pub prefix: String,
    /// `server_name`s of a server block other than nginx's default one.
    pub hosts: Vec<String>,
    pub comment: String,
    pub connect_timeout: Option<Setting<Ms>>,
    pub read_timeout: Option<Setting<Ms>>,
    pub write_timeout: Option<Setting<Ms>>,
    /// A `client_max_body_size` of the location that differs from `[proxy]`'s.
    pub max_body_size: Option<Setting<u64>>,
    /// A named upstream serving the location outside the split.
    pub upstream: Option<String>,
    /// The location's header rules and error pages where they differ from `[proxy]`'s (nginx:
    /// a location's own set replaces the inherited one), as in [`ProxyPlan`].
    pub rules: Rules,
}

/// Header rules and error pages of `[proxy]` or a route: (name or status, value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub set_request_headers: Vec<Setting<(String, String)>>,
    pub add_response_headers: Vec<Setting<(String, String)>>,
    pub hide_response_headers: Vec<Setting<(String, String)>>,
    pub error_pages: Vec<Setting<(String, String)>>,
}

/// `[backends.stable]` / `[backends.canary]`.
#[derive(Debug, Clone)]
pub struct PoolPlan {
    pub comment: String,
    pub servers: Vec<Setting<ServerOut>>,
    /// Servers of different weights: written as `{ addr, weight }`.
    pub weighted: bool,
    pub max_fails: Setting<u32>,
    pub fail_timeout: Setting<Ms>,
}

/// One server of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOut {
    pub addr: String,
    pub weight: u32,
}

/// `[routing]` header override.
#[derive(Debug, Clone)]
pub struct RoutingPlan {
    pub header: Setting<String>,
    pub canary_values: Vec<String>,
    pub stable_values: Vec<String>,
}
