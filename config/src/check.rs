//! Checks of single values that types cannot express and that need neither a network nor the
//! daemon's HTTP stack: HTTP header names and values, webhook URLs, the `[prometheus]` section
//! (URL, size limit, credentials, extra headers) and byte sizes such as `"1MiB"`.
//!
//! They accept and refuse exactly what the daemon's own clients do (the `http` crate's header
//! names and values, the notifier's and the Prometheus client's URL rules) and word their
//! refusals the same way, so `canaryd check` and `import-nginx` judge a file as the daemon
//! would without compiling its TLS stack. The Prometheus client runs [`check_prometheus`]
//! itself before it reads any file, so there is one copy of these rules.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use url::Url;

use crate::file::PrometheusConfig;
use crate::problem::Invalid;

/// Longest header name the `http` crate accepts.
const MAX_HEADER_NAME_LEN: usize = (1 << 16) - 1;

/// Largest `[prometheus] max_response_size`: the client may hold this much per query.
pub const MAX_PROMETHEUS_RESPONSE_SIZE: u64 = 1 << 30;

/// An HTTP header name as the `http` crate accepts it: 1 to 65535 `tchar`s (RFC 9110 token:
/// letters, digits and ``!#$%&'*+-.^_`|~``).
pub fn is_header_name(name: &str) -> bool {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty() && name.len() <= MAX_HEADER_NAME_LEN && name.bytes().all(tchar)
}

/// An HTTP header value as the `http` crate accepts it: tabs and bytes from 0x20 on, except
/// DEL (no other control characters, so no line breaks).
pub fn is_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// A `[[notify]]` webhook URL: `http://` or `https://` with a host. The error completes
/// "expected …".
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| format!("an http:// or https:// URL, found {url:?} ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "an http:// or https:// URL, found {url:?} (scheme {:?})",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "an http:// or https:// URL with a host, found {url:?}"
        ));
    }
    Ok(())
}

/// The `[prometheus]` URL and timeout as the daemon's Prometheus client accepts them:
/// `http://` or `https://host[:port][/prefix]` (a trailing `/` is ignored; no user name or
/// password, query or fragment) and a positive timeout. The error reads as the client's own.
pub fn check_prometheus_url(url: &str, timeout: Duration) -> Result<(), String> {
    prometheus_url_problem(url)?;
    if timeout.is_zero() {
        return Err(format!(
            "invalid Prometheus timeout for {url}: must be greater than zero"
        ));
    }
    Ok(())
}

fn prometheus_url_problem(url: &str) -> Result<(), String> {
    let invalid = |reason: &str| format!("invalid Prometheus URL {url:?}: {reason}");
    let trimmed = url.trim().trim_end_matches('/');
    let base = Url::parse(trimmed).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(base.scheme(), "http" | "https") {
        return Err(invalid(&format!(
            "expected an http:// or https:// URL, found scheme {:?}",
            base.scheme()
        )));
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if !base.username().is_empty() || base.password().is_some() {
        // The URL is not quoted: it holds the password.
        return Err(
            "invalid Prometheus URL: must not carry a user name or password (they would \
             appear in logs); use prometheus.basic_auth or prometheus.bearer_token_file"
                .to_owned(),
        );
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    Ok(())
}

/// Every problem of a `[prometheus]` section, keyed `prometheus.*`: the URL (see
/// [`check_prometheus_url`]), a positive timeout, `max_response_size` from 1 byte to 1 GiB,
/// `bearer_token_file` and `basic_auth` not both, a basic-auth user name without `:` or
/// control characters, and `headers` with valid names and values and no `Authorization`
/// (credentials have their own keys, whose files are mode-checked and never logged).
///
/// Files are not read here (`canaryd check` does not read secrets); the daemon's client does.
pub fn check_prometheus(p: &PrometheusConfig) -> Vec<Invalid> {
    let mut out = Vec::new();
    let mut problem = |key: &str, message: String| {
        out.push(Invalid {
            key: key.to_owned(),
            message,
        })
    };
    if let Err(e) = prometheus_url_problem(&p.url) {
        problem(
            "prometheus.url",
            format!("expected a usable http:// or https:// URL: {e}"),
        );
    }
    if p.timeout.is_zero() {
        problem(
            "prometheus.timeout",
            "expected a positive duration like \"5s\", found 0".into(),
        );
    }
    if p.max_response_size == 0 {
        problem(
            "prometheus.max_response_size",
            "expected a positive size like \"1MiB\" or 1048576 (bytes), found 0".into(),
        );
    } else if p.max_response_size > MAX_PROMETHEUS_RESPONSE_SIZE {
        problem(
            "prometheus.max_response_size",
            format!(
                "expected at most \"1GiB\" ({MAX_PROMETHEUS_RESPONSE_SIZE} bytes), found {} bytes",
                p.max_response_size
            ),
        );
    }
    if let Some(basic) = &p.basic_auth {
        if p.bearer_token_file.is_some() {
            problem(
                "prometheus.basic_auth",
                "expected either prometheus.bearer_token_file or prometheus.basic_auth, \
                 found both; keep the one your Prometheus expects"
                    .into(),
            );
        }
        let user = &basic.username;
        if user.contains(':') || !user.bytes().all(|b| b >= 0x20 && b != 0x7f) {
            problem(
                "prometheus.basic_auth.username",
                format!("expected a user name without `:` or control characters, found {user:?}"),
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in &p.headers {
        // A name with `.` or `[` cannot be a dotted-key segment: locate the table instead.
        let key = if name.contains(['.', '[']) {
            "prometheus.headers".to_owned()
        } else {
            format!("prometheus.headers.{name}")
        };
        if !is_header_name(name) {
            problem(
                &key,
                format!(
                    "expected an HTTP header name (letters, digits and !#$%&'*+-.^_`|~), \
                     found {name:?}"
                ),
            );
        } else if name.eq_ignore_ascii_case("authorization") {
            problem(
                &key,
                "expected a header other than Authorization: credentials go in \
                 prometheus.bearer_token_file or prometheus.basic_auth (their files are \
                 mode-checked and never logged)"
                    .into(),
            );
        } else if !seen.insert(name.to_ascii_lowercase()) {
            problem(
                &key,
                format!("expected each header once, found {name:?} again (names ignore case)"),
            );
        } else if !is_header_value(value) {
            problem(
                &key,
                format!(
                    "expected an HTTP header value (no line breaks or control characters) \
                     for {name}"
                ),
            );
        }
    }
    out
}

/// A byte size: a whole number of bytes, or a string `"<n><unit>"` with the unit one of `B`,
/// `KiB`, `MiB`, `GiB` (powers of 1024) or `KB`, `MB`, `GB` (powers of 1000), spaces allowed
/// between. The error completes "expected …".
pub fn parse_size(text: &str) -> Result<u64, String> {
    let expected =
        || format!("a size like \"1MiB\", \"512KiB\" or a number of bytes, found {text:?}");
    let s = text.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(expected()),
    };
    n.checked_mul(factor).ok_or_else(expected)
}

/// serde: a byte size written as an integer (bytes) or a string (see [`parse_size`]).
pub fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size like \"1MiB\", \"512KiB\" or a number of bytes")
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| {
                E::custom(format!(
                    "expected a size like \"1MiB\", \"512KiB\" or a number of bytes, found {v}"
                ))
            })
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v).map_err(|e| E::custom(format!("expected {e}")))
        }
    }
    d.deserialize_any(V)
}

#[cfg(test)]
mod tests;
