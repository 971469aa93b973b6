//! Header rules of a route, compiled once when the configuration is loaded: the request
//! headers set or removed before forwarding (`set_request_headers`), the response headers
//! added (`add_response_headers`, also on canaryd's own error answers, like nginx's
//! `add_header … always`) and hidden (`hide_response_headers`).
//!
//! A route's rules are `[proxy]`'s with the route's own on top (the route wins for a header
//! both name; an empty value in the route cancels `[proxy]`'s). The `Proxy` request header is
//! removed unless a rule sets it (httpoxy: a backend's CGI layer would read it as
//! `HTTP_PROXY`). Values are parsed templates: a value without variables is one shared
//! `HeaderValue`; one with variables is rendered per request into one buffer — the only
//! allocation a rule makes besides the header's name for names the `http` crate does not know.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};
use canaryd_config::{parse_template, Part, Rules, Var};
use http::{HeaderName, HeaderValue};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::request_id::RequestId;

/// What a template's variables stand for in one request.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// The `Host` (or HTTP/2 authority), without its port.
    pub host: &'a [u8],
    pub remote_addr: Option<IpAddr>,
    pub scheme: &'static str,
    pub request_id: &'a RequestId,
}

/// A header value: fixed, or pieces rendered per request.
#[derive(Debug, Clone)]
enum Value {
    Fixed(HeaderValue),
    Template(Box<[Piece]>),
}

#[derive(Debug, Clone)]
enum Piece {
    Literal(Bytes),
    Var(Var),
}

/// One header a rule writes: its name (as configured, for the wire) and value.
#[derive(Debug, Clone)]
struct Rule {
    name: HeaderName,
    /// The name as written in the file, sent with that case.
    wire: Bytes,
    value: Value,
}

/// The compiled rules of one route.
#[derive(Debug, Clone, Default)]
pub struct HeaderRules {
    set_request: Vec<Rule>,
    remove_request: Vec<HeaderName>,
    add_response: Vec<Rule>,
    hide_response: Vec<HeaderName>,
    /// Some value uses `$host` (the request keeps its `Host` for it).
    uses_host: bool,
}

/// Removed from every request unless a rule sets it (httpoxy).
const PROXY: HeaderName = HeaderName::from_static("proxy");

// === impl HeaderRules ===

impl HeaderRules {
    /// `base`'s rules (`[proxy]`) with `route`'s on top. The configuration is validated, so
    /// every name and template parses; one that does not is skipped.
    pub fn compile(base: &impl Rules, route: Option<&impl Rules>) -> Self {
        let mut rules = Self::default();
        for (name, value) in merged(
            base.set_request_headers(),
            route.map(|r| r.set_request_headers()),
        ) {
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            if value.is_empty() {
                rules.remove_request.push(header);
            } else if let Some(rule) = Rule::new(header, name, value) {
                rules.set_request.push(rule);
            }
        }
        let sets_proxy = rules.set_request.iter().any(|r| r.name == PROXY);
        if !sets_proxy && !rules.remove_request.contains(&PROXY) {
            rules.remove_request.push(PROXY);
        }
        for (name, value) in merged(
            base.add_response_headers(),
            route.map(|r| r.add_response_headers()),
        ) {
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                continue;
            };
            if let Some(rule) = (!value.is_empty())
                .then(|| Rule::new(header, name, value))
                .flatten()
            {
                rules.add_response.push(rule);
            }
        }
        let hidden = base
            .hide_response_headers()
            .iter()
            .chain(route.map_or(&[][..], |r| r.hide_response_headers()));
        for name in hidden {
            if let Ok(h) = HeaderName::from_bytes(name.as_bytes()) {
                if !rules.hide_response.contains(&h) {
                    rules.hide_response.push(h);
                }
            }
        }
        rules.uses_host = rules
            .set_request
            .iter()
            .chain(&rules.add_response)
            .any(|r| r.value.uses(Var::Host));
        rules
    }

    /// Whether a value uses `$host`.
    pub fn uses_host(&self) -> bool {
        self.uses_host
    }

    /// Applies the request rules to the header sent upstream.
    pub fn apply_request(&self, req: &mut RequestHeader, vars: &Vars<'_>) {
        for name in &self.remove_request {
            req.remove_header(name);
        }
        for rule in &self.set_request {
            if let Some(v) = rule.value.render(vars) {
                let _ = req.insert_header(rule.wire.clone(), v);
            }
        }
    }

    /// The request headers the rules remove or set.
    pub fn request_names(&self) -> impl Iterator<Item = &HeaderName> {
        self.remove_request
            .iter()
            .chain(self.set_request.iter().map(|r| &r.name))
    }

    /// Appends the header lines the request rules set to `out`, as [`Self::apply_request`]
    /// sets them (for a request written straight to the wire, which leaves out the client's
    /// headers of [`Self::request_names`]).
    pub fn write_request_wire(&self, out: &mut Vec<u8>, vars: &Vars<'_>) {
        write_wire(&self.set_request, out, vars);
    }

    /// Appends the `add_response_headers` lines to a response header written by canaryd
    /// (`request/h1/`).
    pub fn write_response_wire(&self, out: &mut Vec<u8>, vars: &Vars<'_>) {
        write_wire(&self.add_response, out, vars);
    }

    /// Whether `hide_response_headers` hides the header `name`.
    pub fn hides(&self, name: &[u8]) -> bool {
        self.hide_response
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h.as_str().as_bytes()))
    }

    /// Hides and adds response headers on an upstream's answer.
    pub fn apply_response(&self, resp: &mut ResponseHeader, vars: &Vars<'_>) {
        for name in &self.hide_response {
            resp.remove_header(name);
        }
        self.add_to(resp, vars);
    }

    /// Adds the response headers (also to canaryd's own answers).
    pub fn add_to(&self, resp: &mut ResponseHeader, vars: &Vars<'_>) {
        for rule in &self.add_response {
            if let Some(v) = rule.value.render(vars) {
                let _ = resp.append_header(rule.wire.clone(), v);
            }
        }
    }
}

/// Appends `rules` as header lines (`Name: value\r\n`); a value that renders to bytes a header
/// may not hold is left out, as `HeaderValue` would refuse it.
fn write_wire(rules: &[Rule], out: &mut Vec<u8>, vars: &Vars<'_>) {
    for rule in rules {
        let line = out.len();
        out.extend_from_slice(&rule.wire);
        out.extend_from_slice(b": ");
        let value = out.len();
        rule.value.render_into(out, vars);
        // As `HeaderValue`: visible ASCII, obs-text and tab.
        if out[value..]
            .iter()
            .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
        {
            out.truncate(line);
            continue;
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// `base`'s entries with `over`'s on top (header names compare case-insensitively).
fn merged<'a>(
    base: &'a BTreeMap<String, String>,
    over: Option<&'a BTreeMap<String, String>>,
) -> Vec<(&'a str, &'a str)> {
    let mut out: Vec<(&str, &str)> = base.iter().map(|(k, v)| (&**k, &**v)).collect();
    for (name, value) in over.into_iter().flatten() {
        out.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        out.push((name, value));
    }
    out
}

// === impl Rule ===

impl Rule {
    fn new(name: HeaderName, wire: &str, value: &str) -> Option<Self> {
        let parts = parse_template(value).ok()?;
        let value = if parts.iter().all(|p| matches!(p, Part::Literal(_))) {
            Value::Fixed(HeaderValue::from_str(value).ok()?)
        } else {
            Value::Template(
                parts
                    .into_iter()
                    .map(|p| match p {
                        Part::Literal(s) => Piece::Literal(Bytes::from(s)),
                        Part::Var(v) => Piece::Var(v),
                    })
                    .collect(),
            )
        };
        Some(Self {
            name,
            wire: Bytes::copy_from_slice(wire.as_bytes()),
            value,
        })
    }
}

// === impl Value ===

impl Value {
    fn uses(&self, var: Var) -> bool {
        match self {
            Value::Fixed(_) => false,
            Value::Template(p) => p.iter().any(|p| matches!(p, Piece::Var(v) if *v == var)),
        }
    }

    /// The value for this request; `None` if it came out invalid (not reached: variables
    /// hold valid header bytes).
    fn render(&self, vars: &Vars<'_>) -> Option<HeaderValue> {
        let pieces = match self {
            Value::Fixed(v) => return Some(v.clone()),
            Value::Template(p) => p,
        };
        let mut out = BytesMut::with_capacity(64);
        render_pieces(pieces, &mut out, vars);
        HeaderValue::from_maybe_shared(out.freeze()).ok()
    }

    /// The value for this request, appended to `out`.
    fn render_into(&self, out: &mut impl BufMut, vars: &Vars<'_>) {
        match self {
            Value::Fixed(v) => out.put_slice(v.as_bytes()),
            Value::Template(p) => render_pieces(p, out, vars),
        }
    }
}

fn render_pieces(pieces: &[Piece], out: &mut impl BufMut, vars: &Vars<'_>) {
    for p in pieces {
        match p {
            Piece::Literal(b) => out.put_slice(b),
            Piece::Var(Var::Host) => {
                for b in vars.host {
                    out.put_u8(b.to_ascii_lowercase());
                }
            }
            Piece::Var(Var::RemoteAddr) => {
                let mut buf = [0u8; 48];
                out.put_slice(crate::forwarding::remote_addr(vars.remote_addr, &mut buf));
            }
            Piece::Var(Var::Scheme) => out.put_slice(vars.scheme.as_bytes()),
            Piece::Var(Var::RequestId) => out.put_slice(vars.request_id.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests;
