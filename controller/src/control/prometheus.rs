//! The Prometheus metric source: PromQL instant queries for `source = "prometheus"` rules.
//!
//! [`PromClient::query`] runs one instant query at Prometheus's "now" and folds the answer into
//! a [`Sample`]: one number, no data, or an error whose message always ends with the query text
//! (normalised by [`short_query`]) so the decision log can show what was asked.
//!
//! Requests go through `prometheus-http-query` (plain http, no TLS). Its typed answer cannot
//! represent a `string` result, so the JSON answer is decoded here.

use std::fmt;
use std::time::Duration;

use prometheus_http_query::reqwest;
use serde_json::Value;

use crate::policy::Sample;

/// Longest query text (in characters) quoted in an error message.
const QUERY_TEXT_MAX: usize = 200;
/// Longest slice of a non-JSON answer body quoted in an error message.
const BODY_SNIPPET_MAX: usize = 200;

/// A Prometheus HTTP API client for instant queries.
#[derive(Clone)]
pub struct PromClient {
    inner: prometheus_http_query::Client,
    /// The URL as configured (without trailing `/`), for messages.
    url: String,
    timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("invalid Prometheus URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("invalid Prometheus timeout for {url}: must be greater than zero")]
    ZeroTimeout { url: String },
    #[error("cannot build the HTTP client for Prometheus at {url}: {source}")]
    Client {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// Replaces every `{{variant}}` (also `{{ variant }}`) in `template` with `variant`; any other
/// `{{...}}` is left as it is.
pub fn render(template: &str, variant: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let placeholder = after
            .trim_start()
            .strip_prefix("variant")
            .map(str::trim_start)
            .and_then(|tail| tail.strip_prefix("}}"));
        match placeholder {
            Some(tail) => {
                out.push_str(variant);
                rest = tail;
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The query as error messages show it: trimmed, every whitespace run collapsed to one space,
/// cut to 200 characters (marked with `…`).
pub fn short_query(promql: &str) -> String {
    let collapsed = promql.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate(&collapsed, QUERY_TEXT_MAX)
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

// === impl PromClient ===

impl PromClient {
    /// A client for the Prometheus at `url` (`http://host:port`, optionally with a path prefix);
    /// every query gives up after `timeout`.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, PromError> {
        let invalid = |reason: String| PromError::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let trimmed = url.trim().trim_end_matches('/');
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|source| PromError::Client {
                url: url.to_owned(),
                source,
            })?;
        let inner = prometheus_http_query::Client::from(http, trimmed).map_err(|e| {
            let cause = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string());
            invalid(cause)
        })?;
        let base = inner.base_url();
        match base.scheme() {
            "http" => {}
            "https" => {
                return Err(invalid(
                    "https is not supported (canaryd's Prometheus client is built without TLS); \
                     use http://"
                        .to_owned(),
                ))
            }
            other => {
                return Err(invalid(format!(
                    "expected an http:// URL, found scheme {other:?}"
                )))
            }
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("no host".to_owned()));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("must not have a query or fragment".to_owned()));
        }
        if timeout.is_zero() {
            return Err(PromError::ZeroTimeout {
                url: url.to_owned(),
            });
        }
        Ok(Self {
            inner,
            url: trimmed.to_owned(),
            timeout,
        })
    }

    /// The URL as configured (without a trailing `/`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The per-query timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `promql` as an instant query at Prometheus's current time.
    ///
    /// A scalar or a one-series vector gives [`Sample::Value`]; an empty vector or NaN gives
    /// [`Sample::NoData`]; anything else is a [`Sample::Error`] whose message ends with
    /// `: <query>` ([`short_query`]).
    pub async fn query(&self, promql: &str) -> Sample {
        match self.fetch(promql).await {
            Ok(sample) => sample,
            Err(reason) => Sample::Error(format!("{reason}: {}", short_query(promql))),
        }
    }

    async fn fetch(&self, promql: &str) -> Result<Sample, String> {
        let timeout_ms = i64::try_from(self.timeout.as_millis()).unwrap_or(i64::MAX);
        let response = self
            .inner
            .query(promql)
            // Lets Prometheus abandon an expensive evaluation we would no longer wait for.
            .timeout(timeout_ms.max(1))
            .get_raw()
            .await
            .map_err(|e| match e {
                prometheus_http_query::Error::Client(c) => match c.inner() {
                    Some(source) => self.transport_error(source),
                    None => format!("request to Prometheus at {} failed: {c}", self.url),
                },
                other => format!("request to Prometheus at {} failed: {other}", self.url),
            })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let answer: Value = serde_json::from_slice(&body).map_err(|_| {
            let text = String::from_utf8_lossy(&body);
            format!(
                "Prometheus at {} answered HTTP {status} without a JSON body: {:?}",
                self.url,
                truncate(text.trim(), BODY_SNIPPET_MAX)
            )
        })?;
        decode(&answer)
    }

    /// Describes a failed exchange: timeout, connect failure, or another transport error.
    fn transport_error(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            format!(
                "Prometheus at {} timed out after {}s",
                self.url,
                self.timeout.as_secs_f64()
            )
        } else if e.is_connect() {
            format!("Prometheus at {} unreachable: {}", self.url, root_cause(e))
        } else {
            format!(
                "request to Prometheus at {} failed: {}",
                self.url,
                root_cause(e)
            )
        }
    }
}

impl fmt::Debug for PromClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromClient")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The innermost error's message (e.g. `Connection refused (os error 111)`), which reqwest's
/// own message (`error sending request for url (...)`) hides.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Folds a `/api/v1/query` JSON answer into a sample, or the reason it is unusable.
fn decode(answer: &Value) -> Result<Sample, String> {
    match answer["status"].as_str() {
        Some("success") => {}
        Some("error") => {
            let kind = answer["errorType"].as_str().unwrap_or("error");
            let message = answer["error"].as_str().unwrap_or("(no message)");
            return Err(format!("Prometheus rejected the query ({kind}): {message}"));
        }
        _ => return Err(format!("unexpected answer from Prometheus: {answer}")),
    }
    let data = &answer["data"];
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("scalar") => sample_value(result).map(to_sample),
        Some("vector") => {
            let series = result
                .as_array()
                .ok_or("malformed vector result from Prometheus")?;
            match series.as_slice() {
                [] => Ok(Sample::NoData),
                [one] => sample_value(&one["value"]).map(to_sample),
                many => Err(format!(
                    "query returned {} series, expected one (aggregate with sum(), max() …)",
                    many.len()
                )),
            }
        }
        Some("matrix") => Err(
            "query returned a range vector (matrix), expected a scalar or a one-series \
             instant vector (drop the trailing [range] or wrap it in rate(), avg_over_time() …)"
                .to_owned(),
        ),
        Some("string") => Err(
            "query returned a string, expected a scalar or a one-series instant vector".to_owned(),
        ),
        Some(other) => Err(format!(
            "query returned result type {other:?}, expected a scalar or a one-series instant vector"
        )),
        None => Err(format!("Prometheus answer has no resultType: {data}")),
    }
}

/// The value of a `[timestamp, "value"]` pair (`"NaN"`, `"+Inf"` and `"-Inf"` included).
fn sample_value(pair: &Value) -> Result<f64, String> {
    pair[1]
        .as_str()
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| format!("malformed sample from Prometheus: {pair}"))
}

fn to_sample(v: f64) -> Sample {
    if v.is_nan() {
        Sample::NoData
    } else {
        Sample::Value(v)
    }
}

#[cfg(test)]
mod tests;
