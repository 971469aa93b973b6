//! From the nginx directive tree to a [`Plan`]: the canaryd settings, each with the nginx
//! directive it came from, plus what canaryd handles without a setting and what it cannot
//! translate.
//!
//! Two passes, because nginx merges settings after reading a whole `http {}`: first every
//! directive is collected (upstreams, maps, server blocks with their locations, settings per
//! level) and classified; then the front is resolved:
//!
//! - the server block that proxies (the first one with a `proxy_pass`) is the front; its
//!   main location is `location /` (else the first that proxies);
//! - the main `proxy_pass` names an upstream (its servers are split into stable and canary:
//!   `--canary`, else the smaller of two weights) or `http://${var}_suffix` with a `map` on a
//!   `$http_…` header (the default value's upstream is stable, the others canary; the map's
//!   values become `[routing] canary_values` / `stable_values`);
//! - timeouts are inherited http → server → location as in nginx; `location /` (else the
//!   server) gives `[proxy]`, a prefix location whose values differ, or that streams
//!   (`proxy_buffering off`), becomes a `[[proxy.routes]]` entry.

use std::sync::Arc;

use super::catalog::{self, Verdict};
use super::parser::Directive;
use super::units::{self, Ms};
use super::{Finding, ImportError, Options};

/// nginx's `proxy_connect_timeout`, `proxy_read_timeout` and `proxy_send_timeout` default.
const NGINX_PROXY_TIMEOUT: Ms = 60_000;
/// nginx's `max_fails` and `fail_timeout` defaults (also canaryd's).
const NGINX_MAX_FAILS: u32 = 1;
const NGINX_FAIL_TIMEOUT: Ms = 10_000;
/// canaryd's largest server weight.
const MAX_WEIGHT: u32 = 1000;

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
    pub stable: PoolPlan,
    pub canary: PoolPlan,
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
    pub threads: Option<Setting<usize>>,
    pub connect_timeout: Setting<Ms>,
    pub read_timeout: Setting<Ms>,
    pub write_timeout: Setting<Ms>,
    pub upstream_idle_timeout: Option<Setting<Ms>>,
    pub keepalive_pool: Option<Setting<usize>>,
    pub keepalive_timeout: Option<Setting<Ms>>,
    pub keepalive_requests: Option<Setting<u64>>,
    pub client_timeout: Option<Setting<Ms>>,
}

/// `[[proxy.routes]]`.
#[derive(Debug, Clone)]
pub struct RoutePlan {
    pub prefix: String,
    pub comment: String,
    pub connect_timeout: Option<Setting<Ms>>,
    pub read_timeout: Option<Setting<Ms>>,
    pub write_timeout: Option<Setting<Ms>>,
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

/// Translates the directives of a file (includes expanded).
pub fn translate(directives: &[Directive], opts: &Options) -> Result<Plan, ImportError> {
    let mut tx = Tx::new(opts);
    tx.main_block(directives)?;
    tx.finish(directives)
}

// === collected model ===

/// A directive's place and text, for comments and findings.
#[derive(Debug, Clone)]
struct Src {
    file: Arc<str>,
    line: usize,
    text: String,
}

impl Src {
    fn of(d: &Directive) -> Self {
        Src {
            file: d.file.clone(),
            line: d.line,
            text: d.text(),
        }
    }

    fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    fn cite(&self) -> String {
        format!("{}:{}: {}", self.file, self.line, self.text)
    }

    fn finding(&self, reason: impl Into<String>) -> Finding {
        Finding {
            file: self.file.to_string(),
            line: self.line,
            directive: self.text.clone(),
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Val<T> {
    value: T,
    src: Src,
}

/// Settings nginx inherits http → server → location.
#[derive(Debug, Clone, Default)]
struct Level {
    connect: Option<Val<Ms>>,
    read: Option<Val<Ms>>,
    send: Option<Val<Ms>>,
    /// `proxy_buffering off`.
    streaming: Option<Src>,
    /// This level has `proxy_set_header` directives (nginx then ignores the inherited ones):
    /// `Some(true)` when one of them sets Host.
    sets_host: Option<bool>,
}

impl Level {
    fn under(&self, parent: &Level) -> Level {
        Level {
            connect: self.connect.clone().or_else(|| parent.connect.clone()),
            read: self.read.clone().or_else(|| parent.read.clone()),
            send: self.send.clone().or_else(|| parent.send.clone()),
            streaming: self.streaming.clone().or_else(|| parent.streaming.clone()),
            sets_host: self.sets_host.or(parent.sets_host),
        }
    }

    /// connect, read, send — with nginx's default where unset.
    fn timeouts(&self) -> [Ms; 3] {
        [&self.connect, &self.read, &self.send]
            .map(|v| v.as_ref().map_or(NGINX_PROXY_TIMEOUT, |v| v.value))
    }

    fn timeout_vals(&self) -> [&Option<Val<Ms>>; 3] {
        [&self.connect, &self.read, &self.send]
    }
}

/// Client-connection settings (http and server level only).
#[derive(Debug, Clone, Default)]
struct Wide {
    keepalive_timeout: Option<Val<Ms>>,
    keepalive_requests: Option<Val<u64>>,
    client_timeout: Option<Val<Ms>>,
}

impl Wide {
    fn under(&self, parent: &Wide) -> Wide {
        Wide {
            keepalive_timeout: self
                .keepalive_timeout
                .clone()
                .or_else(|| parent.keepalive_timeout.clone()),
            keepalive_requests: self
                .keepalive_requests
                .clone()
                .or_else(|| parent.keepalive_requests.clone()),
            client_timeout: self
                .client_timeout
                .clone()
                .or_else(|| parent.client_timeout.clone()),
        }
    }
}

/// Findings collected inside a block, kept apart until we know whether the block is used.
#[derive(Debug, Default)]
struct Sink {
    handled: Vec<Finding>,
    untranslated: Vec<Finding>,
}

impl Sink {
    fn append(&mut self, other: Sink) {
        self.handled.extend(other.handled);
        self.untranslated.extend(other.untranslated);
    }
}

#[derive(Debug)]
struct UpServer {
    addr: String,
    weight: u32,
    max_fails: Option<u32>,
    fail_timeout: Option<Ms>,
    src: Src,
    /// `backup` / `down`: left out of the pools (reported).
    excluded: bool,
}

#[derive(Debug)]
struct Upstream {
    name: String,
    /// `None` for the one-server group of `proxy_pass http://ADDR`.
    src: Option<Src>,
    servers: Vec<UpServer>,
    keepalive: Option<Val<usize>>,
    idle_timeout: Option<Val<Ms>>,
    sink: Sink,
}

#[derive(Debug)]
struct MapDef {
    source: String,
    var: String,
    src: Src,
    default: Option<Val<String>>,
    entries: Vec<MapEntry>,
    /// `hostnames`, `volatile`: reported when the map is used.
    extras: Vec<Src>,
}

#[derive(Debug)]
struct MapEntry {
    key: String,
    value: String,
    src: Src,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LocKind {
    Prefix(String),
    /// Exact (`=`) or regular-expression (`~`, `~*`) location.
    Other,
}

#[derive(Debug)]
struct Loc {
    src: Src,
    kind: LocKind,
    own: Level,
    /// Index of the enclosing location; `None` for the server.
    parent: Option<usize>,
    targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Name(String),
    Var {
        var: String,
        prefix: String,
        suffix: String,
    },
}

#[derive(Debug)]
struct Target {
    src: Src,
    host: Host,
}

#[derive(Debug)]
struct ServerBlock {
    src: Src,
    listens: Vec<Val<String>>,
    own: Level,
    wide: Wide,
    locs: Vec<Loc>,
    sink: Sink,
}

/// What a `proxy_pass` resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Upstream(usize),
    Map {
        map: usize,
        prefix: String,
        suffix: String,
    },
}

struct Tx<'o> {
    opts: &'o Options,
    sink: Sink,
    notes: Vec<String>,
    upstreams: Vec<Upstream>,
    maps: Vec<MapDef>,
    servers: Vec<ServerBlock>,
    http: Level,
    http_wide: Wide,
    threads: Option<Setting<usize>>,
    body_size_set: bool,
}

fn invalid(d: &Directive, message: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        at: d.at(),
        message: message.into(),
    }
}

fn one_arg(d: &Directive) -> Result<&str, ImportError> {
    match d.args() {
        [a] => Ok(&a.value),
        args => Err(invalid(
            d,
            format!(
                "`{}` expects 1 argument, found {} (a missing `;`?)",
                d.name(),
                args.len()
            ),
        )),
    }
}

fn time_arg(d: &Directive, s: &str) -> Result<Ms, ImportError> {
    units::parse_time(s).ok_or_else(|| {
        invalid(
            d,
            format!(
                "`{}`: invalid time {s:?}; expected e.g. 30s, 5m, 1h or 500ms",
                d.name()
            ),
        )
    })
}

fn number<T: std::str::FromStr>(d: &Directive, what: &str, s: &str) -> Result<T, ImportError> {
    s.parse().map_err(|_| {
        invalid(
            d,
            format!("`{}`: invalid {what} {s:?}; expected a number", d.name()),
        )
    })
}

// === collection ===

impl<'o> Tx<'o> {
    fn new(opts: &'o Options) -> Self {
        Tx {
            opts,
            sink: Sink::default(),
            notes: Vec::new(),
            upstreams: Vec::new(),
            maps: Vec::new(),
            servers: Vec::new(),
            http: Level::default(),
            http_wide: Wide::default(),
            threads: None,
            body_size_set: false,
        }
    }

    fn handled(&mut self, d: &Directive, reason: impl Into<String>) {
        self.sink.handled.push(Finding::new(d, reason));
    }

    fn untranslated(&mut self, d: &Directive, reason: impl Into<String>) {
        self.sink.untranslated.push(Finding::new(d, reason));
    }

    fn verdict(&mut self, d: &Directive) {
        if d.name() == "client_max_body_size" {
            self.body_size_set = true;
        }
        match catalog::classify(d) {
            Verdict::Handled(r) => self.handled(d, r),
            Verdict::Untranslated(r) => self.untranslated(d, r),
        }
    }

    /// The main context (`nginx.conf`), which also holds conf.d-style top-level blocks.
    fn main_block(&mut self, ds: &[Directive]) -> Result<(), ImportError> {
        for d in ds {
            match (d.name(), &d.block) {
                ("http", Some(block)) => {
                    for d in block {
                        self.http_directive(d)?;
                    }
                }
                ("events", Some(block)) => {
                    for d in block {
                        self.verdict(d);
                    }
                }
                ("worker_processes", None) => self.worker_processes(d)?,
                _ => self.http_directive(d)?,
            }
        }
        Ok(())
    }

    fn worker_processes(&mut self, d: &Directive) -> Result<(), ImportError> {
        let arg = one_arg(d)?;
        if arg == "auto" {
            self.handled(
                d,
                "canaryd runs one proxy thread per CPU by default (`[proxy] threads`)",
            );
        } else {
            let n: usize = number(d, "number of workers", arg)?;
            if n == 0 {
                return Err(invalid(d, "`worker_processes` must be at least 1"));
            }
            self.threads = Some(Setting {
                value: n,
                comment: Src::of(d).cite(),
            });
        }
        Ok(())
    }

    fn http_directive(&mut self, d: &Directive) -> Result<(), ImportError> {
        match (d.name(), &d.block) {
            ("upstream", Some(block)) => self.upstream(d, block),
            ("map", Some(block)) => self.map(d, block),
            ("server", Some(block)) => self.server(d, block),
            ("location", Some(_)) | ("proxy_pass", _) => {
                self.verdict(d);
                Ok(())
            }
            _ => {
                let mut level = std::mem::take(&mut self.http);
                let mut wide = std::mem::take(&mut self.http_wide);
                let r = self.setting(d, &mut level, Some(&mut wide));
                self.http = level;
                self.http_wide = wide;
                r
            }
        }
    }

    /// A directive of http, server or location level (`wide` is `None` in a location).
    fn setting(
        &mut self,
        d: &Directive,
        level: &mut Level,
        wide: Option<&mut Wide>,
    ) -> Result<(), ImportError> {
        let name = d.name();
        match name {
            "proxy_connect_timeout" | "proxy_read_timeout" | "proxy_send_timeout" => {
                let v = Val {
                    value: time_arg(d, one_arg(d)?)?,
                    src: Src::of(d),
                };
                match name {
                    "proxy_connect_timeout" => level.connect = Some(v),
                    "proxy_read_timeout" => level.read = Some(v),
                    _ => level.send = Some(v),
                }
            }
            "proxy_buffering" => {
                if one_arg(d)? == "off" {
                    level.streaming = Some(Src::of(d));
                }
                self.verdict(d);
            }
            "proxy_set_header" => {
                let host = d.arg(0).is_some_and(|h| h.eq_ignore_ascii_case("host"));
                level.sets_host = Some(level.sets_host.unwrap_or(false) || host);
                self.verdict(d);
            }
            "keepalive_timeout" | "keepalive_requests" | "client_body_timeout" | "send_timeout" => {
                match wide {
                    Some(wide) => self.wide_setting(d, wide)?,
                    None => self.untranslated(
                        d,
                        "canaryd applies this to every client connection; it cannot differ per location",
                    ),
                }
            }
            _ => self.verdict(d),
        }
        Ok(())
    }

    fn wide_setting(&mut self, d: &Directive, wide: &mut Wide) -> Result<(), ImportError> {
        match d.name() {
            "keepalive_timeout" => {
                let (t, header) = match d.args() {
                    [t] => (&t.value, None),
                    [t, h] => (&t.value, Some(&h.value)),
                    args => {
                        return Err(invalid(
                            d,
                            format!(
                                "`keepalive_timeout` expects 1 or 2 arguments, found {}",
                                args.len()
                            ),
                        ))
                    }
                };
                let ms = time_arg(d, t)?;
                if header.is_some() {
                    self.untranslated(
                        d,
                        "the second value (a `Keep-Alive: timeout=` response header) is not sent by canaryd; the first is translated",
                    );
                }
                if ms == 0 {
                    self.untranslated(
                        d,
                        "canaryd always keeps client connections alive; it cannot turn keepalive off",
                    );
                } else {
                    wide.keepalive_timeout = Some(Val {
                        value: ms,
                        src: Src::of(d),
                    });
                }
            }
            "keepalive_requests" => {
                let n: u64 = number(d, "number of requests", one_arg(d)?)?;
                if n == 0 {
                    return Err(invalid(d, "`keepalive_requests` must be at least 1"));
                }
                wide.keepalive_requests = Some(Val {
                    value: n,
                    src: Src::of(d),
                });
            }
            _ => {
                // client_body_timeout / send_timeout: one canaryd key for both.
                let ms = time_arg(d, one_arg(d)?)?;
                match &wide.client_timeout {
                    Some(prev) if prev.value != ms => {
                        let why = format!(
                            "canaryd has one `client_timeout` for client_body_timeout and send_timeout; it keeps {} from {}",
                            units::duration(prev.value),
                            prev.src.at()
                        );
                        self.untranslated(d, why);
                    }
                    Some(_) => self.handled(
                        d,
                        "same value as the other client timeout: canaryd's `client_timeout` covers both",
                    ),
                    None => {
                        wide.client_timeout = Some(Val {
                            value: ms,
                            src: Src::of(d),
                        })
                    }
                }
            }
        }
        Ok(())
    }

    fn upstream(&mut self, d: &Directive, block: &[Directive]) -> Result<(), ImportError> {
        let name = one_arg(d)?.to_string();
        if let Some(prev) = self.upstreams.iter().find(|u| u.name == name) {
            let first = prev.src.as_ref().map(Src::at).unwrap_or_default();
            return Err(invalid(
                d,
                format!("duplicate upstream `{name}` (first defined at {first})"),
            ));
        }
        let outer = std::mem::take(&mut self.sink);
        let mut up = Upstream {
            name,
            src: Some(Src::of(d)),
            servers: Vec::new(),
            keepalive: None,
            idle_timeout: None,
            sink: Sink::default(),
        };
        let mut result = Ok(());
        for c in block {
            let r = match (c.name(), &c.block) {
                ("server", None) => self.up_server(c).map(|s| up.servers.extend(s)),
                ("keepalive", None) => one_arg(c)
                    .and_then(|a| number(c, "number of connections", a))
                    .map(|n| {
                        up.keepalive = Some(Val {
                            value: n,
                            src: Src::of(c),
                        })
                    }),
                ("keepalive_timeout", None) => one_arg(c).and_then(|a| time_arg(c, a)).map(|ms| {
                    up.idle_timeout = Some(Val {
                        value: ms,
                        src: Src::of(c),
                    })
                }),
                ("keepalive_requests", None) => {
                    self.untranslated(
                        c,
                        "canaryd has no limit on the requests sent over one upstream connection",
                    );
                    Ok(())
                }
                _ => {
                    self.verdict(c);
                    Ok(())
                }
            };
            if r.is_err() {
                result = r;
                break;
            }
        }
        up.sink = std::mem::replace(&mut self.sink, outer);
        result?;
        self.upstreams.push(up);
        Ok(())
    }

    /// `server ADDR [weight=N] [max_fails=N] [fail_timeout=T] [backup] [down] …`.
    fn up_server(&mut self, d: &Directive) -> Result<Option<UpServer>, ImportError> {
        let Some(raw) = d.arg(0) else {
            return Err(invalid(d, "`server` expects an address"));
        };
        let Some(addr) = units::server_addr(raw) else {
            self.untranslated(
                d,
                "canaryd connects to upstream servers by \"host:port\" only (no unix sockets); this server is left out",
            );
            return Ok(None);
        };
        let mut s = UpServer {
            addr,
            weight: 1,
            max_fails: None,
            fail_timeout: None,
            src: Src::of(d),
            excluded: false,
        };
        for p in &d.args()[1..] {
            let p = p.value.as_str();
            if let Some(w) = p.strip_prefix("weight=") {
                s.weight = number(d, "weight", w)?;
                if s.weight == 0 {
                    return Err(invalid(d, "`weight` must be at least 1"));
                }
            } else if let Some(n) = p.strip_prefix("max_fails=") {
                s.max_fails = Some(number(d, "max_fails", n)?);
            } else if let Some(t) = p.strip_prefix("fail_timeout=") {
                s.fail_timeout = Some(time_arg(d, t)?);
            } else if p == "backup" {
                s.excluded = true;
                self.untranslated(
                    d,
                    "canaryd has no backup servers (when a pool has no available server, its requests go to the other pool); this server is left out",
                );
            } else if p == "down" {
                s.excluded = true;
                self.untranslated(
                    d,
                    "server marked `down`: left out of the pools; add it to `servers` when it is back",
                );
            } else {
                self.untranslated(
                    d,
                    format!("parameter `{p}`: canaryd has no such per-server setting; the rest of the line is translated"),
                );
            }
        }
        Ok(Some(s))
    }

    fn map(&mut self, d: &Directive, block: &[Directive]) -> Result<(), ImportError> {
        let [source, var] = d.args() else {
            return Err(invalid(
                d,
                format!(
                    "`map` expects a source and a variable, found {} argument(s)",
                    d.args().len()
                ),
            ));
        };
        let mut m = MapDef {
            source: source.value.clone(),
            var: var.value.trim_start_matches('$').to_string(),
            src: Src::of(d),
            default: None,
            entries: Vec::new(),
            extras: Vec::new(),
        };
        for c in block {
            match (c.name(), c.args(), &c.block) {
                ("hostnames" | "volatile", [], None) => m.extras.push(Src::of(c)),
                ("default", [v], None) => {
                    m.default = Some(Val {
                        value: v.value.clone(),
                        src: Src::of(c),
                    })
                }
                (key, [v], None) => m.entries.push(MapEntry {
                    key: key.to_string(),
                    value: v.value.clone(),
                    src: Src::of(c),
                }),
                _ => {
                    return Err(invalid(
                        c,
                        "a `map` entry is `VALUE RESULT;` (one key and one result)",
                    ))
                }
            }
        }
        self.maps.push(m);
        Ok(())
    }

    fn server(&mut self, d: &Directive, block: &[Directive]) -> Result<(), ImportError> {
        let outer = std::mem::take(&mut self.sink);
        let r = self.server_body(d, block);
        let sink = std::mem::replace(&mut self.sink, outer);
        let mut srv = r?;
        srv.sink = sink;
        self.servers.push(srv);
        Ok(())
    }

    fn server_body(
        &mut self,
        d: &Directive,
        block: &[Directive],
    ) -> Result<ServerBlock, ImportError> {
        let mut srv = ServerBlock {
            src: Src::of(d),
            listens: Vec::new(),
            own: Level::default(),
            wide: Wide::default(),
            locs: Vec::new(),
            sink: Sink::default(),
        };
        let mut locations = Vec::new();
        for c in block {
            match (c.name(), &c.block) {
                ("listen", None) => self.listen(c, &mut srv.listens)?,
                ("location", Some(_)) => locations.push(c),
                _ => self.setting(c, &mut srv.own, Some(&mut srv.wide))?,
            }
        }
        for c in locations {
            self.location(c, None, &mut srv.locs)?;
        }
        Ok(srv)
    }

    fn listen(&mut self, d: &Directive, out: &mut Vec<Val<String>>) -> Result<(), ImportError> {
        let Some(raw) = d.arg(0) else {
            return Err(invalid(d, "`listen` expects an address or a port"));
        };
        for p in &d.args()[1..] {
            match p.value.as_str() {
                "default_server" | "default" => {}
                "ssl" | "quic" => {
                    self.untranslated(d, catalog::TLS);
                    return Ok(());
                }
                "proxy_protocol" => {
                    self.untranslated(
                        d,
                        "canaryd does not read the PROXY protocol; this listener is left out",
                    );
                    return Ok(());
                }
                "http2" | "spdy" => self.untranslated(
                    d,
                    "canaryd serves clients HTTP/1.1 (`http2` is dropped; the address is translated)",
                ),
                other => self.untranslated(
                    d,
                    format!("parameter `{other}`: canaryd sets no listener socket options; the address is translated"),
                ),
            }
        }
        let addr = if raw.bytes().all(|b| b.is_ascii_digit()) {
            Some(format!("0.0.0.0:{raw}"))
        } else if let Some(port) = raw.strip_prefix("*:") {
            Some(format!("0.0.0.0:{port}"))
        } else if let Some(port) = raw.strip_prefix("localhost:") {
            Some(format!("127.0.0.1:{port}"))
        } else if raw.parse::<std::net::SocketAddr>().is_ok() {
            Some(raw.to_string())
        } else if raw.parse::<std::net::Ipv4Addr>().is_ok()
            || (raw.starts_with('[') && raw.ends_with(']'))
        {
            Some(format!("{raw}:80"))
        } else {
            None
        };
        match addr.filter(|a| a.parse::<std::net::SocketAddr>().is_ok()) {
            Some(value) => out.push(Val {
                value,
                src: Src::of(d),
            }),
            None => self.untranslated(
                d,
                "canaryd listens on \"ip:port\" addresses only (no unix sockets or host names)",
            ),
        }
        Ok(())
    }

    fn location(
        &mut self,
        d: &Directive,
        parent: Option<usize>,
        out: &mut Vec<Loc>,
    ) -> Result<(), ImportError> {
        let kind = match d.args() {
            [p] if p.value.starts_with('@') => {
                self.verdict(d);
                return Ok(());
            }
            [p] if p.value.starts_with(['=', '~']) => LocKind::Other,
            [p] => LocKind::Prefix(p.value.clone()),
            [m, p] if m.value == "^~" => LocKind::Prefix(p.value.clone()),
            [m, _] if ["=", "~", "~*"].contains(&m.value.as_str()) => LocKind::Other,
            _ => {
                return Err(invalid(
                    d,
                    "`location` expects [= | ~ | ~* | ^~] URI, or @name",
                ))
            }
        };
        let mut loc = Loc {
            src: Src::of(d),
            kind,
            own: Level::default(),
            parent,
            targets: Vec::new(),
        };
        let mut nested = Vec::new();
        for c in d.block.as_deref().unwrap_or(&[]) {
            match (c.name(), &c.block) {
                ("proxy_pass", None) => {
                    if let Some(t) = self.target(c, &loc.kind)? {
                        loc.targets.push(t);
                    }
                }
                ("location", Some(_)) => nested.push(c),
                _ => self.setting(c, &mut loc.own, None)?,
            }
        }
        let index = out.len();
        out.push(loc);
        for c in nested {
            self.location(c, Some(index), out)?;
        }
        Ok(())
    }

    /// `proxy_pass http://HOST[/URI]`; `HOST` may hold one `$var` / `${var}`.
    fn target(&mut self, d: &Directive, kind: &LocKind) -> Result<Option<Target>, ImportError> {
        let url = one_arg(d)?;
        let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(r), _) => (false, r),
            (None, Some(r)) => (true, r),
            _ => {
                self.untranslated(
                    d,
                    "canaryd can translate `proxy_pass http://UPSTREAM[/path]` or `http://${var}_suffix` with a `map`, not this form",
                );
                return Ok(None);
            }
        };
        if https {
            self.untranslated(
                d,
                "canaryd connects to upstreams over plain HTTP; the servers are translated, TLS to them is not",
            );
        }
        let (host, uri) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i..])),
            None => (rest, None),
        };
        match (uri, kind) {
            (None | Some("$request_uri"), _) => {}
            (Some(u), LocKind::Prefix(p)) if u == p => self.handled(
                d,
                "the URI equals the location prefix, so the path is forwarded unchanged, as canaryd does",
            ),
            (Some(u), _) => self.untranslated(
                d,
                format!("canaryd forwards the path unchanged; nginx replaced the matched location with `{u}`. The upstream is translated"),
            ),
        }
        let host = match host.find('$') {
            None => Host::Name(host.to_string()),
            Some(i) => {
                let after = &host[i + 1..];
                let (var, suffix) = if let Some(braced) = after.strip_prefix('{') {
                    match braced.split_once('}') {
                        Some((v, s)) => (v, s),
                        None => return Err(invalid(d, "`${` without a closing `}`")),
                    }
                } else {
                    let end = after
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .unwrap_or(after.len());
                    after.split_at(end)
                };
                if var.is_empty() || suffix.contains('$') {
                    self.untranslated(
                        d,
                        "canaryd can translate one variable set by a `map` in the upstream name, not this form",
                    );
                    return Ok(None);
                }
                Host::Var {
                    var: var.to_string(),
                    prefix: host[..i].to_string(),
                    suffix: suffix.to_string(),
                }
            }
        };
        Ok(Some(Target {
            src: Src::of(d),
            host,
        }))
    }
}

// === resolution ===

/// A server of the front: its upstream and its place there.
struct Member {
    upstream: usize,
    server: usize,
}

impl Tx<'_> {
    fn finish(mut self, directives: &[Directive]) -> Result<Plan, ImportError> {
        let Some(front) = self
            .servers
            .iter()
            .position(|s| s.locs.iter().any(|l| !l.targets.is_empty()))
        else {
            let file = directives
                .first()
                .map(|d| d.file.to_string())
                .unwrap_or_default();
            return Err(ImportError::Nothing {
                file,
                why: "no `server` block has a `location` with `proxy_pass http://…`".into(),
            });
        };
        let servers = std::mem::take(&mut self.servers);
        let front_at = servers[front].src.at();
        let mut srv = None;
        for (i, s) in servers.into_iter().enumerate() {
            if i == front {
                srv = Some(s);
                continue;
            }
            let proxies = s.locs.iter().any(|l| !l.targets.is_empty());
            let reason = if proxies {
                format!("canaryd has one front (one set of listeners and routes); only the server block at {front_at} is translated")
            } else {
                "this server block proxies nothing; canaryd has no equivalent (it proxies every request)".to_string()
            };
            self.sink.untranslated.push(s.src.finding(reason));
        }
        let Some(mut srv) = srv else {
            return Err(ImportError::Nothing {
                file: front_at,
                why: "no front server block".into(),
            });
        };
        let sink = std::mem::take(&mut srv.sink);
        self.sink.append(sink);

        // Effective levels, nginx-style inheritance.
        let http = self.http.clone();
        let srv_eff = srv.own.under(&http);
        let mut eff: Vec<Level> = Vec::with_capacity(srv.locs.len());
        for loc in &srv.locs {
            let parent = loc.parent.and_then(|p| eff.get(p)).unwrap_or(&srv_eff);
            let e = loc.own.under(parent);
            eff.push(e);
        }

        // The main location and what it proxies to.
        let slash = srv
            .locs
            .iter()
            .position(|l| l.kind == LocKind::Prefix("/".into()));
        let Some(main_target) = slash
            .and_then(|i| srv.locs.get(i))
            .and_then(|l| l.targets.first())
            .or_else(|| srv.locs.iter().find_map(|l| l.targets.first()))
        else {
            return Err(ImportError::Nothing {
                file: srv.src.file.to_string(),
                why: "no `location` with `proxy_pass http://…`".into(),
            });
        };
        let main_key = self.key(main_target)?;
        let main_src = main_target.src.clone();
        for loc in &srv.locs {
            for t in &loc.targets {
                let key = match self.key(t) {
                    Ok(key) => key,
                    Err(ImportError::Invalid { message, .. }) => {
                        self.sink.untranslated.push(t.src.finding(message));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if key != main_key {
                    let why = format!(
                        "this location proxies to `{}`, the main one ({}) to `{}`; canaryd sends every path through the same stable/canary split",
                        self.describe(&key),
                        main_src.at(),
                        self.describe(&main_key)
                    );
                    self.sink.untranslated.push(t.src.finding(why));
                }
            }
        }

        // The upstreams of the front: the default one first.
        let (default_up, map_ups) = match &main_key {
            Key::Upstream(i) => (*i, Vec::new()),
            Key::Map {
                map,
                prefix,
                suffix,
            } => self.map_upstreams(*map, prefix, suffix)?,
        };
        let mut used = vec![default_up];
        for (_, up) in &map_ups {
            if !used.contains(up) {
                used.push(*up);
            }
        }
        let members = self.members(&used)?;

        // Which servers are the canary.
        let canary = self.canary_set(&members, default_up, &map_ups, &main_src)?;
        let (mut stable_m, mut canary_m) = (Vec::new(), Vec::new());
        for (i, m) in members.iter().enumerate() {
            if canary.contains(&i) {
                canary_m.push(m);
            } else {
                stable_m.push(m);
            }
        }
        if stable_m.is_empty() {
            return Err(ImportError::NoStable {
                servers: members
                    .iter()
                    .map(|m| self.server_of(m).addr.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let stable = self.pool("stable", &stable_m);
        let canary_pool = self.pool("canary", &canary_m);

        // The split before any rollout: the canary's share of the default upstream.
        let initial_percent = self.initial_percent(default_up, &members, &canary, &main_key);
        let routing = match &main_key {
            Key::Map { map, .. } => self.routing(*map, &map_ups, &members, &canary),
            Key::Upstream(_) => None,
        };

        // [proxy] and routes.
        let base = slash
            .map(|i| eff[i].clone())
            .unwrap_or_else(|| srv_eff.clone());
        let routes = self.routes(&srv, &eff, &base);
        let base_t = base.timeouts();
        let names = [
            ("proxy_connect_timeout", "5s"),
            ("proxy_read_timeout", "30s"),
            ("proxy_send_timeout", "30s"),
        ];
        let [connect_timeout, read_timeout, write_timeout] = [0, 1, 2].map(|k| Setting {
            value: base_t[k],
            comment: match base.timeout_vals()[k] {
                Some(v) => v.src.cite(),
                None => format!(
                    "nginx default {} (canaryd's own default is {})",
                    names[k].0, names[k].1
                ),
            },
        });
        let wide = srv.wide.under(&self.http_wide);
        let keepalive_pool = used
            .iter()
            .filter_map(|&u| self.upstreams[u].keepalive.as_ref())
            .max_by_key(|v| v.value)
            .map(|v| Setting {
                value: v.value,
                comment: v.src.cite(),
            });
        if keepalive_pool.is_none() {
            self.notes.push(
                "nginx kept no idle upstream connections (no `keepalive` in the upstream); canaryd reuses up to `[proxy] keepalive_pool` (256) of them".into(),
            );
        }
        let upstream_idle_timeout = used
            .iter()
            .find_map(|&u| self.upstreams[u].idle_timeout.as_ref())
            .map(|v| Setting {
                value: v.value,
                comment: v.src.cite(),
            });
        let mut listen: Vec<Setting<String>> = Vec::new();
        for l in &srv.listens {
            if !listen.iter().any(|s| s.value == l.value) {
                listen.push(Setting {
                    value: l.value.clone(),
                    comment: l.src.cite(),
                });
            }
        }
        if listen.is_empty() {
            let comment = if !self.has_listen_findings() {
                "nginx default `listen *:80`".to_string()
            } else {
                "REVIEW: no nginx listener could be translated (see untranslated above); canaryd's default".to_string()
            };
            listen.push(Setting {
                value: "0.0.0.0:80".into(),
                comment,
            });
        }
        let proxy = ProxyPlan {
            listen,
            threads: self.threads.clone(),
            connect_timeout,
            read_timeout,
            write_timeout,
            upstream_idle_timeout,
            keepalive_pool,
            keepalive_timeout: wide.keepalive_timeout.map(|v| Setting {
                value: v.value,
                comment: v.src.cite(),
            }),
            keepalive_requests: wide.keepalive_requests.map(|v| Setting {
                value: v.value,
                comment: v.src.cite(),
            }),
            client_timeout: wide.client_timeout.map(|v| Setting {
                value: v.value,
                comment: v.src.cite(),
            }),
        };

        self.behaviour_notes(&srv, &eff, slash);
        let health_path = srv
            .locs
            .iter()
            .filter(|l| !l.targets.is_empty())
            .find_map(|l| match &l.kind {
                LocKind::Prefix(p) if ["/health", "/healthz", "/ready"].contains(&p.as_str()) => {
                    Some(p.clone())
                }
                _ => None,
            });

        // Blocks the front does not use, and the findings of those it does.
        let upstreams = std::mem::take(&mut self.upstreams);
        for (i, mut u) in upstreams.into_iter().enumerate() {
            if used.contains(&i) {
                let sink = std::mem::take(&mut u.sink);
                self.sink.append(sink);
            } else if let Some(src) = &u.src {
                self.sink.untranslated.push(src.finding(
                    "upstream not used by the translated front (no translated proxy_pass reaches it)",
                ));
            }
        }
        let used_map = match &main_key {
            Key::Map { map, .. } => Some(*map),
            Key::Upstream(_) => None,
        };
        for (i, m) in self.maps.iter().enumerate() {
            if Some(i) != used_map {
                self.sink.untranslated.push(m.src.finding(
                    "map not used by the translated front (no translated proxy_pass reads its variable)",
                ));
            }
        }
        if !self.body_size_set {
            self.notes.push(
                "nginx refused request bodies over 1 MB with 413 (`client_max_body_size` default); canaryd has no body size limit".into(),
            );
        }

        Ok(Plan {
            proxy,
            routes,
            stable,
            canary: canary_pool,
            routing,
            initial_percent,
            health_path,
            handled: self.sink.handled,
            untranslated: self.sink.untranslated,
            notes: self.notes,
        })
    }

    fn has_listen_findings(&self) -> bool {
        self.sink
            .untranslated
            .iter()
            .any(|f| f.directive.starts_with("listen "))
    }

    /// Resolves a `proxy_pass` host to an upstream (creating the one-server group of a plain
    /// address) or a map.
    fn key(&mut self, t: &Target) -> Result<Key, ImportError> {
        match &t.host {
            Host::Name(name) => self.upstream_named(name, &t.src).map(Key::Upstream),
            Host::Var {
                var,
                prefix,
                suffix,
            } => {
                let Some(map) = self.maps.iter().position(|m| &m.var == var) else {
                    return Err(ImportError::Invalid {
                        at: t.src.at(),
                        message: format!(
                            "`${var}` is not set by a `map`; canaryd can translate a variable upstream name only when a `map` on a request header sets it"
                        ),
                    });
                };
                Ok(Key::Map {
                    map,
                    prefix: prefix.clone(),
                    suffix: suffix.clone(),
                })
            }
        }
    }

    fn upstream_named(&mut self, name: &str, src: &Src) -> Result<usize, ImportError> {
        if let Some(i) = self.upstreams.iter().position(|u| u.name == name) {
            return Ok(i);
        }
        let Some(addr) = units::server_addr(name) else {
            return Err(ImportError::Invalid {
                at: src.at(),
                message: format!("`{name}` is neither an upstream nor a \"host:port\" address"),
            });
        };
        if let Some(i) = self.upstreams.iter().position(|u| u.name == addr) {
            return Ok(i);
        }
        self.upstreams.push(Upstream {
            name: addr.clone(),
            src: None,
            servers: vec![UpServer {
                addr,
                weight: 1,
                max_fails: None,
                fail_timeout: None,
                src: src.clone(),
                excluded: false,
            }],
            keepalive: None,
            idle_timeout: None,
            sink: Sink::default(),
        });
        Ok(self.upstreams.len() - 1)
    }

    fn describe(&self, key: &Key) -> String {
        match key {
            Key::Upstream(i) => self.upstreams[*i].name.clone(),
            Key::Map {
                map,
                prefix,
                suffix,
            } => format!("{prefix}${{{}}}{suffix}", self.maps[*map].var),
        }
    }

    /// The default value's upstream, and `(map entry index, upstream)` for every entry.
    fn map_upstreams(
        &mut self,
        map: usize,
        prefix: &str,
        suffix: &str,
    ) -> Result<(usize, Vec<(usize, usize)>), ImportError> {
        let Some(default) = self.maps[map].default.clone() else {
            return Err(ImportError::Invalid {
                at: self.maps[map].src.at(),
                message: format!(
                    "map `${}` has no `default`: canaryd needs the upstream that requests without the header go to (the stable one)",
                    self.maps[map].var
                ),
            });
        };
        let default_up = self.map_upstream(prefix, &default.value, suffix, &default.src)?;
        let entries: Vec<(String, Src)> = self.maps[map]
            .entries
            .iter()
            .map(|e| (e.value.clone(), e.src.clone()))
            .collect();
        let mut out = Vec::new();
        for (i, (value, src)) in entries.into_iter().enumerate() {
            let up = self.map_upstream(prefix, &value, suffix, &src)?;
            out.push((i, up));
        }
        Ok((default_up, out))
    }

    /// The upstream a map value selects: it must be defined (nginx would need a `resolver`
    /// and resolve the name per request otherwise).
    fn map_upstream(
        &self,
        prefix: &str,
        value: &str,
        suffix: &str,
        src: &Src,
    ) -> Result<usize, ImportError> {
        let name = format!("{prefix}{value}{suffix}");
        let known: Vec<String> = self
            .upstreams
            .iter()
            .filter(|u| u.src.is_some())
            .map(|u| format!("`{}`", u.name))
            .collect();
        self.upstreams
            .iter()
            .position(|u| u.name == name && u.src.is_some())
            .ok_or_else(|| ImportError::Invalid {
                at: src.at(),
                message: format!(
                    "the map value `{value}` selects upstream `{name}`, which is not defined (upstreams: {}; is it in an include that was not found?)",
                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                ),
            })
    }

    /// The servers of `used` (in order, without `backup`/`down`, each address once).
    fn members(&mut self, used: &[usize]) -> Result<Vec<Member>, ImportError> {
        let mut out: Vec<Member> = Vec::new();
        for &u in used {
            for (s, server) in self.upstreams[u].servers.iter().enumerate() {
                if server.excluded || out.iter().any(|m| self.server_of(m).addr == server.addr) {
                    continue;
                }
                out.push(Member {
                    upstream: u,
                    server: s,
                });
            }
        }
        if out.is_empty() {
            let up = &self.upstreams[used[0]];
            return Err(ImportError::Invalid {
                at: up.src.as_ref().map(Src::at).unwrap_or_default(),
                message: format!("upstream `{}` has no server canaryd can use", up.name),
            });
        }
        Ok(out)
    }

    fn server_of(&self, m: &Member) -> &UpServer {
        &self.upstreams[m.upstream].servers[m.server]
    }

    /// Indices into `members` of the canary servers.
    fn canary_set(
        &self,
        members: &[Member],
        default_up: usize,
        map_ups: &[(usize, usize)],
        main_src: &Src,
    ) -> Result<Vec<usize>, ImportError> {
        let addrs: Vec<&str> = members
            .iter()
            .map(|m| self.server_of(m).addr.as_str())
            .collect();
        if !self.opts.canary.is_empty() {
            let mut out = Vec::new();
            for c in &self.opts.canary {
                let want = units::server_addr(c).unwrap_or_else(|| c.clone());
                match addrs.iter().position(|a| *a == want || *a == c) {
                    Some(i) => {
                        if !out.contains(&i) {
                            out.push(i)
                        }
                    }
                    None => {
                        let mut ups: Vec<&str> = Vec::new();
                        for m in members {
                            let n = self.upstreams[m.upstream].name.as_str();
                            if !ups.contains(&n) {
                                ups.push(n);
                            }
                        }
                        return Err(ImportError::UnknownCanary {
                            addr: c.clone(),
                            upstreams: ups
                                .iter()
                                .map(|u| format!("`{u}`"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            servers: addrs.join(", "),
                        });
                    }
                }
            }
            return Ok(out);
        }
        if !map_ups.is_empty() {
            let out: Vec<usize> = members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.upstream != default_up)
                .map(|(i, _)| i)
                .collect();
            if !out.is_empty() {
                return Ok(out);
            }
        }
        let in_default: Vec<usize> = members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.upstream == default_up)
            .map(|(i, _)| i)
            .collect();
        let up = &self.upstreams[default_up];
        let at = up.src.as_ref().unwrap_or(main_src).at();
        let list = in_default
            .iter()
            .map(|&i| {
                let s = self.server_of(&members[i]);
                format!("{} weight={}", s.addr, s.weight)
            })
            .collect::<Vec<_>>()
            .join(", ");
        match in_default.as_slice() {
            [_] => Err(ImportError::Invalid {
                at,
                message: format!(
                    "upstream `{}` has one server ({list}): nothing to split between stable and canary. Add the canary server to it (e.g. `server HOST:PORT weight=5;`) and import again",
                    up.name
                ),
            }),
            &[a, b] => {
                let (wa, wb) = (
                    self.server_of(&members[a]).weight,
                    self.server_of(&members[b]).weight,
                );
                if wa == wb {
                    Err(ImportError::NeedCanary {
                        at,
                        upstream: up.name.clone(),
                        why: format!("both servers have the same weight ({list})"),
                    })
                } else {
                    Ok(vec![if wa < wb { a } else { b }])
                }
            }
            _ => Err(ImportError::NeedCanary {
                at,
                upstream: up.name.clone(),
                why: format!("it has {} servers ({list})", in_default.len()),
            }),
        }
    }

    fn pool(&mut self, name: &str, members: &[&Member]) -> PoolPlan {
        let mut servers = Vec::new();
        let mut ups: Vec<String> = Vec::new();
        for m in members {
            let s = self.server_of(m);
            let weight = s.weight.min(MAX_WEIGHT);
            let src = s.src.clone();
            let addr = s.addr.clone();
            if s.weight > MAX_WEIGHT {
                self.sink.untranslated.push(src.finding(format!(
                    "canaryd's largest weight is {MAX_WEIGHT}; this server gets {MAX_WEIGHT}"
                )));
            }
            let u = self.upstreams[m.upstream].name.clone();
            if !ups.contains(&u) {
                ups.push(u);
            }
            servers.push(Setting {
                value: ServerOut { addr, weight },
                comment: src.cite(),
            });
        }
        let weighted = servers
            .windows(2)
            .any(|w| w[0].value.weight != w[1].value.weight);
        let first = members.first().map(|m| self.server_of(m));
        let max_fails = first.and_then(|s| s.max_fails);
        let fail_timeout = first.and_then(|s| s.fail_timeout);
        let first_at = first.map(|s| s.src.at()).unwrap_or_default();
        let mut differing = Vec::new();
        for m in members.iter().skip(1) {
            let s = self.server_of(m);
            if s.max_fails.unwrap_or(NGINX_MAX_FAILS) != max_fails.unwrap_or(NGINX_MAX_FAILS)
                || s.fail_timeout.unwrap_or(NGINX_FAIL_TIMEOUT)
                    != fail_timeout.unwrap_or(NGINX_FAIL_TIMEOUT)
            {
                differing.push(s.src.finding(format!(
                    "canaryd has one `max_fails` / `fail_timeout` per pool; the {name} pool uses those of {first_at}"
                )));
            }
        }
        self.sink.untranslated.extend(differing);
        PoolPlan {
            comment: format!(
                "from upstream {}",
                ups.iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            servers,
            weighted,
            max_fails: Setting {
                value: max_fails.unwrap_or(NGINX_MAX_FAILS),
                comment: match max_fails {
                    Some(n) => format!("nginx max_fails={n}"),
                    None => format!("nginx default max_fails={NGINX_MAX_FAILS}"),
                },
            },
            fail_timeout: Setting {
                value: fail_timeout.unwrap_or(NGINX_FAIL_TIMEOUT),
                comment: match fail_timeout {
                    Some(t) => format!("nginx fail_timeout={}", units::duration(t)),
                    None => "nginx default fail_timeout=10s".to_string(),
                },
            },
        }
    }

    fn initial_percent(
        &self,
        default_up: usize,
        members: &[Member],
        canary: &[usize],
        key: &Key,
    ) -> Setting<f64> {
        let (mut total, mut on_canary) = (0u64, 0u64);
        for (i, m) in members.iter().enumerate() {
            if m.upstream == default_up {
                let w = u64::from(self.server_of(m).weight.min(MAX_WEIGHT));
                total += w;
                if canary.contains(&i) {
                    on_canary += w;
                }
            }
        }
        let pct = if total == 0 {
            0.0
        } else {
            (on_canary as f64 * 10_000.0 / total as f64).round() / 100.0
        };
        let up = &self.upstreams[default_up].name;
        let comment = match key {
            Key::Map { map, .. } => format!(
                "nginx sent requests without the header (map `${}` default) to `{up}`: {pct}% canary",
                self.maps[*map].var
            ),
            Key::Upstream(_) => format!(
                "nginx weights in upstream `{up}`: {on_canary} of {total} on the canary"
            ),
        };
        Setting {
            value: pct,
            comment,
        }
    }

    fn routing(
        &mut self,
        map: usize,
        map_ups: &[(usize, usize)],
        members: &[Member],
        canary: &[usize],
    ) -> Option<RoutingPlan> {
        let m = &self.maps[map];
        let mut findings = Vec::new();
        for e in &m.extras {
            findings.push(e.finding("canaryd matches header values exactly (case-insensitive)"));
        }
        let header = units::header_of_variable(&m.source);
        let result = match header {
            None => {
                findings.push(m.src.finding(format!(
                    "canaryd routes on a request header only (`$http_…`), not on `{}`; the upstreams are translated, the routing is not",
                    m.source
                )));
                None
            }
            Some(header) => {
                let (mut canary_values, mut stable_values) = (Vec::new(), Vec::new());
                for &(entry, up) in map_ups {
                    let e = &m.entries[entry];
                    if e.key.starts_with('~') {
                        findings.push(e.src.finding(
                            "canaryd matches header values exactly; regular expressions have no equivalent",
                        ));
                        continue;
                    }
                    let sides: Vec<bool> = members
                        .iter()
                        .enumerate()
                        .filter(|(_, mm)| mm.upstream == up)
                        .map(|(i, _)| canary.contains(&i))
                        .collect();
                    if !sides.is_empty() && sides.iter().all(|&c| c) {
                        canary_values.push(e.key.clone());
                    } else if sides.iter().all(|&c| !c) {
                        stable_values.push(e.key.clone());
                    } else {
                        findings.push(e.src.finding(format!(
                            "upstream `{}` has both stable and canary servers; canaryd's override header picks one pool",
                            self.upstreams[up].name
                        )));
                    }
                }
                if canary_values.is_empty() && stable_values.is_empty() {
                    None
                } else {
                    Some(RoutingPlan {
                        header: Setting {
                            value: header,
                            comment: m.src.cite(),
                        },
                        canary_values,
                        stable_values,
                    })
                }
            }
        };
        self.sink.untranslated.extend(findings);
        result
    }

    /// `[[proxy.routes]]` for the prefix locations canaryd must treat differently from
    /// `[proxy]`; settings of other locations that would need one are untranslated.
    fn routes(&mut self, srv: &ServerBlock, eff: &[Level], base: &Level) -> Vec<RoutePlan> {
        let base_t = base.timeouts();
        let mut order: Vec<usize> = (0..srv.locs.len())
            .filter(|&i| matches!(&srv.locs[i].kind, LocKind::Prefix(p) if p != "/"))
            .collect();
        order.sort_by_key(|&i| match &srv.locs[i].kind {
            LocKind::Prefix(p) => p.len(),
            LocKind::Other => 0,
        });
        let mut emitted: Vec<(String, [Ms; 3])> = Vec::new();
        let mut routes = Vec::new();
        for i in order {
            let loc = &srv.locs[i];
            let LocKind::Prefix(prefix) = &loc.kind else {
                continue;
            };
            if emitted.iter().any(|(p, _)| p == prefix) {
                continue;
            }
            let t = eff[i].timeouts();
            let cover = emitted
                .iter()
                .filter(|(p, _)| prefix.starts_with(p.as_str()))
                .max_by_key(|(p, _)| p.len())
                .map_or(base_t, |(_, t)| *t);
            let streaming = loc.own.streaming.is_some();
            if t == cover && !streaming {
                continue;
            }
            let vals = eff[i].timeout_vals();
            let field = |k: usize| {
                (t[k] != base_t[k] || (k == 1 && streaming)).then(|| Setting {
                    value: t[k],
                    comment: match vals[k] {
                        Some(v) => v.src.cite(),
                        None => "nginx default".to_string(),
                    },
                })
            };
            let mut comment = loc.src.cite();
            if streaming {
                comment.push_str(" (proxy_buffering off: streamed, as every canaryd response)");
            }
            routes.push(RoutePlan {
                prefix: prefix.clone(),
                comment,
                connect_timeout: field(0),
                read_timeout: field(1),
                write_timeout: field(2),
            });
            emitted.push((prefix.clone(), t));
        }
        // Exact and regex locations: their own timeouts cannot be given a route.
        let mut findings = Vec::new();
        for (i, loc) in srv.locs.iter().enumerate() {
            if loc.kind != LocKind::Other {
                continue;
            }
            for (k, v) in loc.own.timeout_vals().iter().enumerate() {
                if let Some(v) = v {
                    if eff[i].timeouts()[k] != base_t[k] {
                        findings.push(v.src.finding(format!(
                            "canaryd routes by path prefix only, so `{}` ({}) has no route; its requests get the [proxy] value {}",
                            loc.src.text,
                            loc.src.at(),
                            units::duration(base_t[k])
                        )));
                    }
                }
            }
        }
        self.sink.untranslated.extend(findings);
        routes
    }

    fn behaviour_notes(&mut self, srv: &ServerBlock, eff: &[Level], slash: Option<usize>) {
        if slash.is_none() {
            let prefixes: Vec<String> = srv
                .locs
                .iter()
                .map(|l| {
                    l.src
                        .text
                        .trim_start_matches("location ")
                        .replace(" { … }", "")
                })
                .collect();
            self.notes.push(format!(
                "nginx answered 404 to paths outside its locations ({}); canaryd proxies every path",
                prefixes.join(", ")
            ));
        }
        let no_host: Vec<String> = srv
            .locs
            .iter()
            .enumerate()
            .filter(|(i, l)| !l.targets.is_empty() && eff[*i].sets_host != Some(true))
            .map(|(_, l)| l.src.text.replace(" { … }", ""))
            .collect();
        if !no_host.is_empty() {
            self.notes.push(format!(
                "nginx sent the upstream name as Host (its default `$proxy_host`) for {}; canaryd forwards the client's Host",
                no_host.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests;
