//! The Prometheus metric source: PromQL instant queries for `source = "prometheus"` rules,
//! and range queries for `canaryd replay`.
//!
//! [`PromClient::query`] runs one instant query at Prometheus's "now" and folds the answer into
//! a [`Sample`]: one number, no data, or an error whose message always ends with the query text
//! (normalised by [`short_query`]) so the decision log can show what was asked.
//! [`PromClient::query_range`] evaluates a query at every step of a time range
//! (`/api/v1/query_range`) and folds each step the same way: what an instant query at that time
//! would have answered (one series: its value; none, or NaN: no data; several: an error).
//!
//! The client is reqwest (rustls; the system's roots, or only `ca_file`'s) sending
//! `GET <url>/api/v1/query?query=…&timeout=…`, so `url` may be `https://` and carry a path
//! prefix. Credentials (`bearer_token_file`, `basic_auth`) are read once, through the
//! mode-checked secrets files of `secret.rs`, into a sensitive `Authorization` default header;
//! neither they nor the files' contents appear in messages or in `Debug`.
//!
//! Answers are bounded: the body is read chunk by chunk and abandoned at `max_response_size`
//! (a `Content-Length` over it is refused before reading), then decoded into typed structs
//! that keep only what a rule needs (the series count and the first series' value), never a
//! JSON tree. A larger answer, a non-JSON body, a non-success HTTP status, `status: "error"`,
//! several series, a range vector or a string are all [`Sample::Error`].

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use canaryd_config::{check_prometheus, PrometheusConfig};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, LOCATION};
use reqwest::{StatusCode, Url};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::policy::Sample;
use crate::secret::{read_secret, SecretError};

/// Longest query text (in characters) quoted in an error message.
const QUERY_TEXT_MAX: usize = 200;
/// Longest slice of a non-JSON answer body quoted in an error message.
const BODY_SNIPPET_MAX: usize = 200;
/// Of a non-success answer, at most this much is read (for its message).
const ERROR_BODY_MAX: usize = 64 * 1024;

/// A Prometheus HTTP API client for instant queries. Cheap to clone (the connection pool is
/// shared).
#[derive(Clone)]
pub struct PromClient {
    http: reqwest::Client,
    /// `<url>/api/v1/query`.
    endpoint: Url,
    /// `<url>/api/v1/query_range`.
    range_endpoint: Url,
    /// The URL as configured (without trailing `/`), for messages.
    url: String,
    timeout: Duration,
    max_response_size: usize,
    /// Which credentials are sent, for `Debug` (never the credentials).
    auth: Auth,
    /// The names of the extra headers, for `Debug`.
    header_names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    None,
    Bearer,
    Basic,
}

/// Why a client could not be built. Messages start with the config key.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// A value `check_prometheus` refuses (the same message `canaryd check` prints).
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    /// A secrets file refused (mode, empty, unreadable).
    #[error("{key}: {error}")]
    Secret {
        key: &'static str,
        error: SecretError,
    },
    /// `ca_file` unreadable or without a certificate.
    #[error("prometheus.ca_file: {message}")]
    CaFile { message: String },
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

/// `1048576` → `1 MiB`, `524288` → `512 KiB`, `1000` → `1000 bytes` (whole units only).
fn show_size(bytes: usize) -> String {
    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

// === impl PromClient ===

impl PromClient {
    /// A client for the Prometheus at `url` (`http://` or `https://host:port`, optionally with
    /// a path prefix) without credentials, trusting the system's roots; every query gives up
    /// after `timeout`, and answers over 1 MiB are refused.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, PromError> {
        Self::from_config(&PrometheusConfig::new(url, timeout))
    }

    /// A client for a `[prometheus]` section: validates it as `canaryd check` does, reads
    /// `ca_file` and the secrets files (`bearer_token_file`, `basic_auth.password_file`:
    /// refused when readable by other users or empty), and builds the HTTP client. Errors
    /// start with the key (`prometheus.bearer_token_file: /etc/… is empty`).
    pub fn from_config(cfg: &PrometheusConfig) -> Result<Self, PromError> {
        if let Some(first) = check_prometheus(cfg).into_iter().next() {
            return Err(PromError::Invalid {
                key: first.key,
                message: first.message,
            });
        }
        let url = cfg.url.trim().trim_end_matches('/').to_owned();
        let endpoint =
            Url::parse(&format!("{url}/api/v1/query")).map_err(|e| PromError::Invalid {
                key: "prometheus.url".into(),
                message: format!("invalid Prometheus URL {url:?}: {e}"),
            })?;
        let range_endpoint =
            Url::parse(&format!("{url}/api/v1/query_range")).map_err(|e| PromError::Invalid {
                key: "prometheus.url".into(),
                message: format!("invalid Prometheus URL {url:?}: {e}"),
            })?;
        let (mut headers, auth) = credentials(cfg)?;
        let mut header_names = Vec::with_capacity(cfg.headers.len());
        for (name, value) in &cfg.headers {
            let invalid = || PromError::Invalid {
                key: format!("prometheus.headers.{name}"),
                message: "expected an HTTP header name and value".into(),
            };
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
            headers.insert(header, value);
            header_names.push(name.clone());
        }
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // A redirect would carry the extra headers elsewhere; say where it points instead.
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(headers);
        if let Some(path) = &cfg.ca_file {
            builder = builder.tls_certs_only(ca_certificates(path)?);
        }
        let http = builder.build().map_err(|source| PromError::Client {
            url: url.clone(),
            source,
        })?;
        Ok(Self {
            http,
            endpoint,
            range_endpoint,
            url,
            timeout: cfg.timeout,
            max_response_size: usize::try_from(cfg.max_response_size).unwrap_or(usize::MAX),
            auth,
            header_names,
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

    /// The largest answer read, in bytes.
    pub fn max_response_size(&self) -> usize {
        self.max_response_size
    }

    /// Runs `promql` as an instant query at Prometheus's current time.
    ///
    /// A scalar or a one-series vector gives [`Sample::Value`]; an empty vector or NaN gives
    /// [`Sample::NoData`]; anything else is a [`Sample::Error`] whose message ends with
    /// `: <query>` ([`short_query`]). Never takes (much) longer than the timeout, and never
    /// holds more than `max_response_size` bytes of the answer.
    pub async fn query(&self, promql: &str) -> Sample {
        let outcome = match tokio::time::timeout(self.timeout, self.fetch(promql)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(self.timed_out()),
        };
        match outcome {
            Ok(sample) => sample,
            Err(reason) => Sample::Error(format!("{reason}: {}", short_query(promql))),
        }
    }

    async fn fetch(&self, promql: &str) -> Result<Sample, String> {
        let mut url = self.endpoint.clone();
        url.query_pairs_mut().append_pair("query", promql);
        decode(self.get::<Answer>(url).await?)
    }

    /// Evaluates `promql` at `start`, `start + step`, … up to `end` (Unix milliseconds) with
    /// one range query: element k of the answer is the sample at `start + k × step`, folded as
    /// [`query`](Self::query) folds an instant answer (NaN or no series: no data; several
    /// series at that time: an error for that step). An unusable answer as a whole (refused
    /// query, unreachable, too large, timeout) is an error whose message ends with the query.
    pub async fn query_range(
        &self,
        promql: &str,
        start_ms: u64,
        end_ms: u64,
        step: Duration,
    ) -> Result<Vec<Sample>, String> {
        let step_ms = step.as_millis().max(1) as u64;
        let points = (end_ms.saturating_sub(start_ms) / step_ms + 1) as usize;
        let seconds = |ms: u64| format!("{}.{:03}", ms / 1000, ms % 1000);
        let mut url = self.range_endpoint.clone();
        url.query_pairs_mut()
            .append_pair("query", promql)
            .append_pair("start", &seconds(start_ms))
            .append_pair("end", &seconds(end_ms))
            .append_pair("step", &seconds(step_ms));
        let fetched = match tokio::time::timeout(self.timeout, self.get::<RangeAnswer>(url)).await {
            Ok(fetched) => fetched.and_then(|a| decode_range(a, start_ms, step_ms, points)),
            Err(_) => Err(self.timed_out()),
        };
        fetched.map_err(|reason| format!("{reason}: {}", short_query(promql)))
    }

    /// GETs `url` (plus `timeout=`) and decodes the JSON answer, bounded by
    /// `max_response_size`; a non-success status is described by [`Self::refusal`].
    async fn get<T: serde::de::DeserializeOwned>(&self, mut url: Url) -> Result<T, String> {
        let timeout_ms = self.timeout.as_millis().max(1);
        // Lets Prometheus abandon an expensive evaluation we would no longer wait for.
        url.query_pairs_mut()
            .append_pair("timeout", &format!("{timeout_ms}ms"));
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(self.refusal(status, &mut response).await);
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_response_size as u64)
        {
            return Err(self.too_large());
        }
        let (body, complete) = read_limited(&mut response, self.max_response_size)
            .await
            .map_err(|e| self.transport_error(&e))?;
        if !complete {
            return Err(self.too_large());
        }
        match serde_json::from_slice::<T>(&body) {
            Ok(answer) => Ok(answer),
            Err(e) if e.classify() == serde_json::error::Category::Data => Err(format!(
                "malformed answer from Prometheus at {}: {e}",
                self.url
            )),
            Err(_) => Err(format!(
                "Prometheus at {} answered HTTP {status} without a JSON body: {:?}",
                self.url,
                snippet(&body)
            )),
        }
    }

    /// Describes a non-success answer: Prometheus's own error when the body is one, else the
    /// status, a hint for the usual causes and the start of the body.
    async fn refusal(&self, status: StatusCode, response: &mut reqwest::Response) -> String {
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let limit = ERROR_BODY_MAX.min(self.max_response_size);
        let body = match read_limited(response, limit).await {
            Ok((body, _)) => body,
            Err(e) if e.is_timeout() => return self.timed_out(),
            Err(_) => Vec::new(),
        };
        if let Ok(Answer {
            status: s,
            error_type,
            error,
            ..
        }) = serde_json::from_slice::<Answer>(&body)
        {
            if s == "error" {
                return format!(
                    "Prometheus rejected the query (HTTP {status}, {}): {}",
                    error_type.as_deref().unwrap_or("error"),
                    error.as_deref().unwrap_or("(no message)")
                );
            }
        }
        let hint = match status.as_u16() {
            401 | 403 => {
                " (check prometheus.basic_auth, prometheus.bearer_token_file and prometheus.headers)"
                    .to_owned()
            }
            300..=399 => format!(
                " (redirect to {}; canaryd does not follow redirects: set prometheus.url to \
                 the final address)",
                location.as_deref().unwrap_or("nowhere")
            ),
            _ => String::new(),
        };
        let text = snippet(&body);
        if text.is_empty() {
            format!("Prometheus at {} answered HTTP {status}{hint}", self.url)
        } else {
            format!(
                "Prometheus at {} answered HTTP {status}{hint}: {text:?}",
                self.url
            )
        }
    }

    fn too_large(&self) -> String {
        format!(
            "Prometheus at {} answered more than {}, the limit set by \
             prometheus.max_response_size (aggregate the query with sum(), max() …, or raise \
             the limit)",
            self.url,
            show_size(self.max_response_size)
        )
    }

    fn timed_out(&self) -> String {
        format!(
            "Prometheus at {} timed out after {}s",
            self.url,
            self.timeout.as_secs_f64()
        )
    }

    /// Describes a failed exchange: timeout, TLS, connect failure, or another transport error.
    fn transport_error(&self, e: &reqwest::Error) -> String {
        let cause = root_cause(e);
        if e.is_timeout() {
            self.timed_out()
        } else if cause.contains("certificate") {
            format!(
                "TLS handshake with Prometheus at {} failed: {cause} (set prometheus.ca_file \
                 to the CA that signed its certificate)",
                self.url
            )
        } else if e.is_connect() {
            format!("Prometheus at {} unreachable: {cause}", self.url)
        } else {
            format!("request to Prometheus at {} failed: {cause}", self.url)
        }
    }
}

impl fmt::Debug for PromClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromClient")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("max_response_size", &self.max_response_size)
            .field("auth", &self.auth)
            .field("headers", &self.header_names)
            .finish_non_exhaustive()
    }
}

/// The `Authorization` header for the configured credentials (marked sensitive, so reqwest
/// never prints it), read from their secrets files.
fn credentials(cfg: &PrometheusConfig) -> Result<(HeaderMap, Auth), PromError> {
    let mut headers = HeaderMap::new();
    let (value, auth) = if let Some(path) = &cfg.bearer_token_file {
        const KEY: &str = "prometheus.bearer_token_file";
        let token = read_secret(path).map_err(|error| PromError::Secret { key: KEY, error })?;
        let mut value = b"Bearer ".to_vec();
        value.extend_from_slice(token.expose());
        let value = HeaderValue::from_bytes(&value).map_err(|_| PromError::Invalid {
            key: KEY.into(),
            message: format!(
                "{} holds characters an HTTP header cannot carry (line breaks or other \
                 control characters inside the token)",
                path.display()
            ),
        })?;
        (value, Auth::Bearer)
    } else if let Some(basic) = &cfg.basic_auth {
        let password = read_secret(&basic.password_file).map_err(|error| PromError::Secret {
            key: "prometheus.basic_auth.password_file",
            error,
        })?;
        let mut pair = basic.username.as_bytes().to_vec();
        pair.push(b':');
        pair.extend_from_slice(password.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(&pair);
        let value =
            HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| PromError::Invalid {
                key: "prometheus.basic_auth".into(),
                message: "cannot encode the credentials".into(),
            })?;
        (value, Auth::Basic)
    } else {
        return Ok((headers, Auth::None));
    };
    let mut value = value;
    value.set_sensitive(true);
    headers.insert(AUTHORIZATION, value);
    Ok((headers, auth))
}

/// The certificates of the PEM file `ca_file`.
fn ca_certificates(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, PromError> {
    let file = path.display();
    let pem = std::fs::read(path).map_err(|e| PromError::CaFile {
        message: format!("cannot read {file}: {e}"),
    })?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| PromError::CaFile {
        message: format!("{file} is not a PEM certificate file: {}", root_cause(&e)),
    })?;
    if certs.is_empty() {
        return Err(PromError::CaFile {
            message: format!("{file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"),
        });
    }
    Ok(certs)
}

/// Reads the body up to `limit` bytes: the bytes and whether that was all of it. Never holds
/// more than `limit` bytes (plus the chunk being read).
async fn read_limited(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let expected = response
        .content_length()
        .map_or(8 * 1024, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let mut body = Vec::with_capacity(expected.min(limit));
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, true))
}

/// The start of a body for a message, whitespace trimmed.
fn snippet(body: &[u8]) -> String {
    let head = &body[..body.len().min(BODY_SNIPPET_MAX * 4)];
    truncate(String::from_utf8_lossy(head).trim(), BODY_SNIPPET_MAX)
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

// === the answer, typed ===

/// A `/api/v1/query` answer: what a rule needs of it, nothing more.
#[derive(Debug, Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Data {
    #[serde(default, rename = "resultType")]
    result_type: Option<String>,
    #[serde(default)]
    result: Shape,
}

/// `data.result` folded while it is read: a vector's or matrix's series are counted and only
/// the first one's value is kept (labels are skipped, never allocated); a scalar's or
/// string's `[time, "text"]` keeps its text.
#[derive(Debug, Default, PartialEq)]
struct Shape {
    /// Objects (series) in the array.
    series: usize,
    /// The first series' `value` text; `None` when it has none (a matrix, a histogram).
    first_value: Option<String>,
    /// The text of a `[time, "text"]` pair.
    text: Option<String>,
    /// Numbers (a pair's time).
    numbers: usize,
    /// Elements that are neither objects nor a pair's parts.
    other: usize,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shape;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Prometheus result array")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
                Ok(Shape::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut shape = Shape::default();
                while let Some(element) = seq.next_element::<Element>()? {
                    match element {
                        Element::Series(value) => {
                            shape.series += 1;
                            if shape.series == 1 {
                                shape.first_value = value;
                            }
                        }
                        Element::Text(text) if shape.text.is_none() => shape.text = Some(text),
                        Element::Number => shape.numbers += 1,
                        Element::Text(_) | Element::Other => shape.other += 1,
                    }
                }
                Ok(shape)
            }
        }
        d.deserialize_any(V)
    }
}

/// One element of a result array.
enum Element {
    /// A series object, with its `value` text if it has one.
    Series(Option<String>),
    /// A number (a pair's time).
    Number,
    /// A string (a pair's value).
    Text(String),
    Other,
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Element;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a series, a time or a value")
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Element, E> {
                Ok(Element::Number)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Element, E> {
                Ok(Element::Number)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Element, E> {
                Ok(Element::Number)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Element, E> {
                Ok(Element::Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Element, E> {
                Ok(Element::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
                Ok(Element::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Element::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element, A::Error> {
                let mut value = None;
                while let Some(key) = map.next_key::<FieldName>()? {
                    match key {
                        FieldName::Value => value = Some(map.next_value::<Pair>()?.1),
                        FieldName::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Element::Series(value))
            }
        }
        d.deserialize_any(V)
    }
}

/// A series object's key: only `value` matters (`metric`, `values`, `histogram` are skipped).
enum FieldName {
    Value,
    Other,
}

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = FieldName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldName, E> {
                Ok(if v == "value" {
                    FieldName::Value
                } else {
                    FieldName::Other
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

/// `[time, "value"]`.
#[derive(Deserialize)]
struct Pair(IgnoredAny, String);

/// A `/api/v1/query_range` answer: each series' points (labels are skipped).
#[derive(Debug, Deserialize)]
struct RangeAnswer {
    status: String,
    #[serde(default)]
    data: Option<RangeData>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RangeData {
    #[serde(default, rename = "resultType")]
    result_type: Option<String>,
    #[serde(default)]
    result: Vec<RangeSeries>,
}

#[derive(Debug, Deserialize)]
struct RangeSeries {
    /// `[time, "value"]` pairs; absent for a native histogram series.
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Folds a range answer into one sample per step: `points` steps of `step_ms` from
/// `start_ms`. A point off the grid is an error (Prometheus aligns every point on it).
fn decode_range(
    answer: RangeAnswer,
    start_ms: u64,
    step_ms: u64,
    points: usize,
) -> Result<Vec<Sample>, String> {
    check_status(&answer.status, &answer.error_type, &answer.error)?;
    let Some(data) = answer.data else {
        return Err("Prometheus answer has no data".to_owned());
    };
    if data.result_type.as_deref() != Some("matrix") {
        return Err(format!(
            "range query returned result type {:?}, expected a matrix",
            data.result_type.as_deref().unwrap_or("(none)")
        ));
    }
    // Per step: how many series had a point there, and the value of the first.
    let mut found: Vec<(usize, f64)> = vec![(0, f64::NAN); points];
    for series in data.result {
        for (time, text) in series.values {
            let ms = (time * 1000.0).round();
            let offset = ms - start_ms as f64;
            let k = (offset / step_ms as f64).round();
            if offset < 0.0 || (k * step_ms as f64 - offset).abs() > 1.0 || k as usize >= points {
                return Err(format!(
                    "range answer has a point at {time}, off the asked grid"
                ));
            }
            let value = sample_value(Some(&text))?;
            let slot = &mut found[k as usize];
            if slot.0 == 0 {
                slot.1 = value;
            }
            slot.0 += 1;
        }
    }
    Ok(found
        .into_iter()
        .map(|(series, value)| match series {
            0 => Sample::NoData,
            1 => to_sample(value),
            many => Sample::Error(format!(
                "query returned {many} series, expected one (aggregate with sum(), max() …)"
            )),
        })
        .collect())
}

/// `status` of an answer: `success`, or the error Prometheus gave.
fn check_status(
    status: &str,
    error_type: &Option<String>,
    error: &Option<String>,
) -> Result<(), String> {
    match status {
        "success" => Ok(()),
        "error" => {
            let kind = error_type.as_deref().unwrap_or("error");
            let message = error.as_deref().unwrap_or("(no message)");
            Err(format!("Prometheus rejected the query ({kind}): {message}"))
        }
        other => Err(format!(
            "unexpected answer from Prometheus: status {:?}",
            truncate(other, BODY_SNIPPET_MAX)
        )),
    }
}

/// Folds a decoded `/api/v1/query` answer into a sample, or the reason it is unusable.
fn decode(answer: Answer) -> Result<Sample, String> {
    check_status(&answer.status, &answer.error_type, &answer.error)?;
    let Some(data) = answer.data else {
        return Err("Prometheus answer has no data".to_owned());
    };
    let result = data.result;
    match data.result_type.as_deref() {
        Some("scalar") => sample_value(result.text.as_deref()).map(to_sample),
        Some("vector") if result.other > 0 || result.numbers > 0 || result.text.is_some() => {
            Err("malformed vector result from Prometheus".to_owned())
        }
        Some("vector") => match result.series {
            0 => Ok(Sample::NoData),
            1 => sample_value(result.first_value.as_deref()).map(to_sample),
            many => Err(format!(
                "query returned {many} series, expected one (aggregate with sum(), max() …)"
            )),
        },
        Some("matrix") => Err(
            "query returned a range vector (matrix), expected a scalar or a one-series \
             instant vector (drop the trailing [range] or wrap it in rate(), avg_over_time() …)"
                .to_owned(),
        ),
        Some("string") => Err(
            "query returned a string, expected a scalar or a one-series instant vector".to_owned(),
        ),
        Some(other) => Err(format!(
            "query returned result type {:?}, expected a scalar or a one-series instant vector",
            truncate(other, BODY_SNIPPET_MAX)
        )),
        None => Err("Prometheus answer has no resultType".to_owned()),
    }
}

/// The number in a sample's value text (`"NaN"`, `"+Inf"` and `"-Inf"` included).
fn sample_value(text: Option<&str>) -> Result<f64, String> {
    match text {
        Some(v) => v.parse::<f64>().map_err(|_| {
            format!(
                "malformed sample from Prometheus: {:?}",
                truncate(v, BODY_SNIPPET_MAX)
            )
        }),
        None => Err(
            "malformed sample from Prometheus: the series has no \"value\" (a native \
             histogram? use histogram_quantile() or histogram_count())"
                .to_owned(),
        ),
    }
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
