//! Checks of single values that types cannot express and that need neither a network nor the
//! daemon's HTTP stack: HTTP header names, webhook URLs and the Prometheus URL.
//!
//! They accept and refuse exactly what the daemon's own clients do (the `http` crate's header
//! names, the notifier's and the Prometheus client's URL rules) and word their refusals the
//! same way, so `canaryd check` and `import-nginx` judge a file as the daemon would without
//! compiling its TLS stack.

use std::time::Duration;

use url::Url;

/// Longest header name the `http` crate accepts.
const MAX_HEADER_NAME_LEN: usize = (1 << 16) - 1;

/// An HTTP header name as the `http` crate accepts it: 1 to 65535 `tchar`s (RFC 9110 token:
/// letters, digits and ``!#$%&'*+-.^_`|~``).
pub fn is_header_name(name: &str) -> bool {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    !name.is_empty() && name.len() <= MAX_HEADER_NAME_LEN && name.bytes().all(tchar)
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
/// `http://host[:port][/prefix]` (a trailing `/` is ignored; no https, query or fragment) and
/// a positive timeout. The error reads as the client's own.
pub fn check_prometheus_url(url: &str, timeout: Duration) -> Result<(), String> {
    let invalid = |reason: &str| format!("invalid Prometheus URL {url:?}: {reason}");
    let trimmed = url.trim().trim_end_matches('/');
    let base = Url::parse(trimmed).map_err(|e| invalid(&e.to_string()))?;
    match base.scheme() {
        "http" => {}
        "https" => {
            return Err(invalid(
                "https is not supported (canaryd's Prometheus client is built without TLS); \
                 use http://",
            ))
        }
        other => {
            return Err(invalid(&format!(
                "expected an http:// URL, found scheme {other:?}"
            )))
        }
    }
    if base.host_str().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    if base.query().is_some() || base.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    if timeout.is_zero() {
        return Err(format!(
            "invalid Prometheus timeout for {url}: must be greater than zero"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
