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
//!
//! # Layout
//!
//! - this file: the entry point, the model the first pass collects ([`Tx`] and the blocks it
//!   holds) and the first pass's walk of the main and http contexts.
//! - `plan.rs`: the output, [`Plan`].
//! - `args.rs`: a directive's arguments (one, a time, a number), with located errors.
//! - `settings.rs`: settings inherited http → server → location, and client connections.
//! - `upstream.rs`: `upstream` blocks and their servers; the servers the front uses.
//! - `server.rs`: `server` blocks, listeners and `server_name` → `hosts`; `location.rs`: locations and `proxy_pass`.
//! - `map.rs`: `map` on a header → the upstream of each value and `[routing]`.
//! - `split.rs`: which servers are the canary, the two pools, `initial_percent`.
//! - `proxy.rs`: `[proxy]` and `[[proxy.routes]]`, with their header rules; prefix locations proxying to another
//!   upstream become `[upstreams.NAME]` and a route with `upstream` (`finish.rs`).
//! - `error_page.rs`: `error_page` → `error_pages` (a URI resolved to a file through `root`).
//! - `access_log.rs`: `access_log` and `log_format` → `[proxy.access_log]`.
//! - `tls.rs`: `listen … ssl`, `ssl_*`, `http2` → `[proxy.tls]`; the redirect-only server →
//!   `https_redirect`.
//! - `finish.rs`: the second pass, step by step, ending in the [`Plan`].

mod access_log;
mod args;
mod error_page;
mod finish;
mod location;
mod map;
mod plan;
mod proxy;
mod server;
mod settings;
mod split;
mod tls;
mod upstream;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::catalog::{self, Verdict};
use crate::parser::Directive;
use crate::units::Ms;
use crate::{Finding, ImportError, Options};

use args::{invalid, number, one_arg};
pub(crate) use plan::{Plan, PoolPlan, ServerOut, Setting, TlsPlan};

/// nginx's `proxy_connect_timeout`, `proxy_read_timeout` and `proxy_send_timeout` default.
const NGINX_PROXY_TIMEOUT: Ms = 60_000;
/// nginx's `max_fails` and `fail_timeout` defaults (also canaryd's).
const NGINX_MAX_FAILS: u32 = 1;
const NGINX_FAIL_TIMEOUT: Ms = 10_000;
/// canaryd's largest server weight.
const MAX_WEIGHT: u32 = 1000;

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
    /// The first `access_log` of this level.
    access_log: Option<Val<access_log::LogTarget>>,
    /// `client_max_body_size`, bytes.
    body_size: Option<Val<u64>>,
    /// This level's `add_header`s (nginx then ignores the inherited ones): (name, value).
    add_headers: Option<Vec<Val<(String, String)>>>,
    /// This level's `proxy_set_header`s canaryd does not do by itself: (name, value).
    set_headers: Option<Vec<Val<(String, String)>>>,
    /// This level's `proxy_hide_header`s (nginx then ignores the inherited ones): (name, "").
    hide_headers: Option<Vec<Val<(String, String)>>>,
    /// This level's `error_page`s for statuses canaryd generates (nginx then ignores the
    /// inherited ones): (status, URI), resolved to a file in the second pass.
    error_pages: Option<Vec<Val<(String, String)>>>,
    /// `root`: where `error_page` URIs resolve to files.
    root: Option<Val<String>>,
}

/// Client-connection settings (http and server level only).
#[derive(Debug, Clone, Default)]
struct Wide {
    keepalive_timeout: Option<Val<Ms>>,
    keepalive_requests: Option<Val<u64>>,
    client_timeout: Option<Val<Ms>>,
    tls: tls::TlsWide,
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
    /// The URI of an exact (`=`) location.
    exact: Option<String>,
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
    /// `listen … ssl`.
    tls_listens: Vec<Val<String>>,
    /// A `listen … http2` of this server.
    listen_http2: Option<Src>,
    /// Its server-level `return 301 https://$host$request_uri`.
    redirect: Option<Src>,
    own: Level,
    wide: Wide,
    locs: Vec<Loc>,
    sink: Sink,
    /// `server_name`s canaryd can match (`hosts`): exact, lower case, or `*.suffix`.
    names: Vec<String>,
    /// `server_name _` / `""`, or `listen … default_server`: it answers any Host.
    catch_all: bool,
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

/// A prefix location proxying to another upstream than the main one.
struct NamedRoute {
    prefix: String,
    hosts: Vec<String>,
    upstream: usize,
    src: Src,
}

/// A server of the front: its upstream and its place there.
struct Member {
    upstream: usize,
    server: usize,
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
    log_formats: Vec<access_log::LogFormat>,
    /// Prefix locations proxying to another upstream than the main one.
    named_routes: Vec<NamedRoute>,
    /// Other server blocks that proxy, for names of their own: their locations become routes
    /// with `hosts`.
    hosted: Vec<ServerBlock>,
    /// The front is nginx's default server for its listeners (it answers any Host).
    front_default: bool,
    /// Listeners of the server blocks that only redirect to https.
    redirect_listens: Vec<Val<String>>,
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
            log_formats: Vec::new(),
            redirect_listens: Vec::new(),
            named_routes: Vec::new(),
            hosted: Vec::new(),
            front_default: true,
        }
    }

    fn handled(&mut self, d: &Directive, reason: impl Into<String>) {
        self.sink.handled.push(Finding::new(d, reason));
    }

    fn untranslated(&mut self, d: &Directive, reason: impl Into<String>) {
        self.sink.untranslated.push(Finding::new(d, reason));
    }

    fn verdict(&mut self, d: &Directive) {
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
}
