//! Header rules, body limit and error pages of `[proxy]` and of each `[[proxy.routes]]`:
//! `set_request_headers`, `add_response_headers`, `hide_response_headers`, `max_body_size`,
//! `error_pages` — their value templates (`$host`, `$remote_addr`, `$scheme`, `$request_id`)
//! and their validation.
//!
//! A template is parsed here once ([`parse_template`]): validation refuses what does not parse,
//! naming the key, and the proxy compiles its rules from the same parts, so the daemon never
//! parses a template per request and never disagrees with `canaryd check`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use crate::check::{byte_size, is_header_name, is_header_value};
use crate::problem::Invalid;

/// A variable a header value may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    /// The request's host (the `Host` header or the HTTP/2 authority), lower case, no port.
    Host,
    /// The client's address (the TCP peer).
    RemoteAddr,
    /// `http` or `https`.
    Scheme,
    /// The request id: the client's `X-Request-Id`, or 32 hex digits canaryd generated.
    RequestId,
}

/// One piece of a header value template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Var(Var),
}

/// Headers canaryd frames or manages itself: never set, added or hidden by a rule.
const FRAMING: [&str; 5] = [
    "connection",
    "content-length",
    "transfer-encoding",
    "upgrade",
    "keep-alive",
];

/// The variables, as written after `$`.
const VARS: [(&str, Var); 4] = [
    ("host", Var::Host),
    ("remote_addr", Var::RemoteAddr),
    ("scheme", Var::Scheme),
    ("request_id", Var::RequestId),
];

/// `error_pages = { 502 = "/etc/canaryd/502.html" }`: a file read when the configuration is
/// loaded (so `canaryd check` and a reload refuse one that cannot be read, naming the key),
/// and again on every reload.
#[derive(Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub path: PathBuf,
    pub body: Arc<[u8]>,
}

/// Largest error page: it is held in memory and written whole.
pub const MAX_ERROR_PAGE: usize = 1 << 20;

/// The rules `[proxy]` and a route share (a route's own keys override `[proxy]`'s).
pub trait Rules {
    fn set_request_headers(&self) -> &BTreeMap<String, String>;
    fn add_response_headers(&self) -> &BTreeMap<String, String>;
    fn hide_response_headers(&self) -> &[String];
    fn error_pages(&self) -> &BTreeMap<String, ErrorPage>;
}

/// Parses a header value template: `$name` or `${name}` is a variable, any other `$` is
/// literal. Errors complete "expected …".
pub fn parse_template(value: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        literal.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => return Err(format!("a closing '}}' after \"${{\" in {value:?}")),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            // `$5`, `$ `, a lone `$`: literal.
            literal.push('$');
            rest = after;
            continue;
        }
        let Some(&(_, var)) = VARS.iter().find(|(n, _)| *n == name) else {
            return Err(format!(
                "a variable among $host, $remote_addr, $scheme, $request_id, found ${name} in {value:?}"
            ));
        };
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(Part::Var(var));
        rest = &after[consumed..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    if !is_header_value(value) {
        return Err(format!(
            "a header value without control characters, found {value:?}"
        ));
    }
    Ok(parts)
}

/// Checks the header rules and error pages of `[proxy]` or a route; `at` is its dotted key.
pub fn check_rules(at: &str, r: &impl Rules, out: &mut Vec<Invalid>) {
    let mut bad = |key: String, message: String| out.push(Invalid { key, message });
    let name_ok = |name: &str| -> Result<(), String> {
        if !is_header_name(name) {
            return Err(format!("an HTTP header name, found {name:?}"));
        }
        if FRAMING.iter().any(|f| f.eq_ignore_ascii_case(name)) {
            return Err(format!(
                "a header other than {name}: canaryd frames the message itself"
            ));
        }
        Ok(())
    };
    for (field, map) in [
        ("set_request_headers", r.set_request_headers()),
        ("add_response_headers", r.add_response_headers()),
    ] {
        for (name, value) in map {
            let key = format!("{at}.{field}.{name}");
            if let Err(e) = name_ok(name) {
                bad(key, format!("expected {e}"));
            } else if let Err(e) = parse_template(value) {
                bad(key, format!("expected {e}"));
            }
        }
    }
    for (i, name) in r.hide_response_headers().iter().enumerate() {
        if let Err(e) = name_ok(name) {
            bad(
                format!("{at}.hide_response_headers[{i}]"),
                format!("expected {e}"),
            );
        }
    }
    for status in r.error_pages().keys() {
        if !status
            .parse::<u16>()
            .is_ok_and(|s| (400..=599).contains(&s))
        {
            // Written as figment writes a numeric key.
            let key = if status.bytes().all(|b| b.is_ascii_digit()) {
                format!("{at}.error_pages[{status}]")
            } else {
                format!("{at}.error_pages.{status}")
            };
            bad(
                key,
                format!("expected an error status from 400 to 599 as the key, found {status:?}"),
            );
        }
    }
}

/// `max_body_size` of a route: like `[proxy]`'s, optional.
pub(crate) fn opt_byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    byte_size(d).map(Some)
}

impl fmt::Debug for ErrorPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ErrorPage({:?}, {} bytes)", self.path, self.body.len())
    }
}

impl<'de> Deserialize<'de> for ErrorPage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let path = PathBuf::deserialize(d)?;
        let body = std::fs::read(&path).map_err(|e| {
            de::Error::custom(format!(
                "expected a readable file, cannot read {}: {e}",
                path.display()
            ))
        })?;
        if body.len() > MAX_ERROR_PAGE {
            return Err(de::Error::custom(format!(
                "expected a page of at most 1 MiB, {} has {} bytes",
                path.display(),
                body.len()
            )));
        }
        Ok(Self {
            path,
            body: body.into(),
        })
    }
}

#[cfg(test)]
mod tests;
