//! `[[notify]]` webhooks: every decision the controller takes, POSTed to each target.
//!
//! [`Notifier::notify`] is called on the controller's path, so it only queues: one bounded
//! queue ([`QUEUE`] events) and one delivery task per target. The task delivers its events one
//! at a time, in order: an HTTP POST with the target's `timeout`; a 2xx answer is success,
//! anything else (another status, a connection error, a timeout) is retried `retries` times
//! after [`backoff`] (0.5 s, 1 s, 2 s, …). A slow or dead target only fills its own queue; when
//! the queue is full new events for it are dropped (counted, and logged once per overflow).
//!
//! Formats: `json` sends the decision line ([`Decision`]) as it is logged; `slack` sends
//! `{"text": ...}` with a one-line summary ([`slack_text`]).
//!
//! Counters per target (by its index in `[[notify]]`): `canaryd_notifications_total`
//! `{target, result="sent|failed|dropped"}`, see [`Notifier::render`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{self, error::TrySendError};

use canaryd_config::{NotifyConfig, NotifyFormat};

use crate::api::{Action, Decision};

/// Events waiting per target; beyond this new events are dropped.
pub const QUEUE: usize = 256;

/// Wait before the first retry; doubled for each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// Sends every decision to each `[[notify]]` target, off the controller's path.
#[derive(Debug, Clone)]
pub struct Notifier {
    targets: Arc<[Target]>,
}

/// The caller's side of one target: its queue and its counters.
#[derive(Debug)]
struct Target {
    index: usize,
    /// For logs: scheme, host and first path segment only (webhook URLs carry secrets).
    url: String,
    tx: mpsc::Sender<Arc<Decision>>,
    counts: Arc<Counts>,
    /// Events dropped since the queue last accepted one (0: not overflowing).
    overflow: AtomicU64,
}

#[derive(Debug, Default)]
struct Counts {
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

/// The delivery task's side of one target.
struct Delivery {
    index: usize,
    url: String,
    shown_url: String,
    format: NotifyFormat,
    timeout: Duration,
    retries: u32,
    client: reqwest::Client,
    counts: Arc<Counts>,
}

// === impl Notifier ===

impl Notifier {
    /// Spawns one delivery task per target on the current tokio runtime. Outside a runtime,
    /// or when the HTTP client cannot be built, webhooks are disabled and the log says why.
    pub fn start(targets: &[NotifyConfig]) -> Notifier {
        if targets.is_empty() {
            return Notifier::disabled();
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("Notifier::start called outside a tokio runtime: [[notify]] disabled");
            return Notifier::disabled();
        };
        let client = match client() {
            Ok(c) => c,
            Err(e) => {
                // Only a broken TLS setup gets here; the daemon keeps running without webhooks.
                tracing::error!(error = %e, "cannot build the webhook HTTP client: [[notify]] disabled");
                return Notifier::disabled();
            }
        };
        let targets = targets
            .iter()
            .enumerate()
            .map(|(index, cfg)| {
                let (tx, rx) = mpsc::channel(QUEUE);
                let counts = Arc::new(Counts::default());
                let shown_url = redact(&cfg.url);
                let delivery = Delivery {
                    index,
                    url: cfg.url.trim().to_owned(),
                    shown_url: shown_url.clone(),
                    format: cfg.format,
                    timeout: cfg.timeout,
                    retries: cfg.retries,
                    client: client.clone(),
                    counts: counts.clone(),
                };
                runtime.spawn(delivery.run(rx));
                Target {
                    index,
                    url: shown_url,
                    tx,
                    counts,
                    overflow: AtomicU64::new(0),
                }
            })
            .collect();
        Notifier { targets }
    }

    /// No targets: notify() does nothing.
    pub fn disabled() -> Notifier {
        Notifier {
            targets: Arc::new([]),
        }
    }

    /// Queues `decision` for every target. Never blocks and never fails: when a target's
    /// queue ([`QUEUE`]) is full the event is dropped, counted and logged.
    pub fn notify(&self, decision: &Decision) {
        if self.targets.is_empty() {
            return;
        }
        let event = Arc::new(decision.clone());
        for t in self.targets.iter() {
            match t.tx.try_send(event.clone()) {
                Ok(()) => {
                    let dropped = t.overflow.swap(0, Ordering::Relaxed);
                    if dropped > 0 {
                        tracing::warn!(
                            notify_target = t.index,
                            url = %t.url,
                            dropped,
                            "webhook queue accepts events again after dropping some"
                        );
                    }
                }
                Err(TrySendError::Full(_)) => {
                    t.counts.dropped.fetch_add(1, Ordering::Relaxed);
                    if t.overflow.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::warn!(
                            notify_target = t.index,
                            url = %t.url,
                            queue = QUEUE,
                            "webhook queue full (target slow or down): dropping new events"
                        );
                    }
                }
                Err(TrySendError::Closed(_)) => {
                    // The runtime that ran the delivery task is gone (shutdown).
                    t.counts.dropped.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(
                        notify_target = t.index,
                        "webhook delivery task stopped: event dropped"
                    );
                }
            }
        }
    }

    /// Appends `canaryd_notifications_total{target="<index>",result="sent|failed|dropped"}`
    /// (Prometheus text, with # HELP/# TYPE).
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP canaryd_notifications_total Webhook notifications by [[notify]] target \
             (index in the config) and result.\n\
             # TYPE canaryd_notifications_total counter\n",
        );
        for t in self.targets.iter() {
            for (result, n) in [
                ("sent", &t.counts.sent),
                ("failed", &t.counts.failed),
                ("dropped", &t.counts.dropped),
            ] {
                let _ = writeln!(
                    out,
                    "canaryd_notifications_total{{target=\"{}\",result=\"{result}\"}} {}",
                    t.index,
                    n.load(Ordering::Relaxed)
                );
            }
        }
    }
}

// === impl Delivery ===

impl Delivery {
    async fn run(self, mut rx: mpsc::Receiver<Arc<Decision>>) {
        #[derive(serde::Serialize)]
        struct Slack {
            text: String,
        }
        while let Some(event) = rx.recv().await {
            let body = match self.format {
                NotifyFormat::Json => serde_json::to_string(&*event),
                NotifyFormat::Slack => serde_json::to_string(&Slack {
                    text: slack_text(&event),
                }),
            };
            drop(event);
            match body {
                Ok(body) => self.deliver(body).await,
                Err(e) => {
                    self.counts.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(notify_target = self.index, error = %e, "cannot encode a webhook body");
                }
            }
        }
    }

    /// One event: the first attempt and up to `retries` more.
    async fn deliver(&self, body: String) {
        let attempts = self.retries.saturating_add(1);
        for attempt in 1..=attempts {
            let error = match self.post(&body).await {
                Ok(()) => {
                    self.counts.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(e) => e,
            };
            if attempt == attempts {
                self.counts.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    notify_target = self.index,
                    url = %self.shown_url,
                    attempts,
                    error = %error,
                    "webhook notification failed"
                );
                return;
            }
            let wait = backoff(attempt - 1);
            tracing::debug!(
                notify_target = self.index,
                url = %self.shown_url,
                attempt,
                error = %error,
                retry_in = ?wait,
                "webhook attempt failed"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// One attempt: `Ok` on a 2xx answer, else what went wrong.
    async fn post(&self, body: &str) -> Result<(), String> {
        let answer = self
            .client
            .post(&self.url)
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_owned())
            .send()
            .await;
        let response = answer.map_err(|e| self.describe(&e))?;
        let status = response.status();
        // Read the answer (within the same timeout) so the connection can be reused.
        let text = response.text().await.unwrap_or_default();
        if status.is_success() {
            return Ok(());
        }
        let text: String = text.trim().chars().take(200).collect();
        Err(if text.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}: {text}")
        })
    }

    fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            )
        } else {
            root_cause(e)
        }
    }
}

/// Wait before retry number `retry` (0-based): 0.5 s, 1 s, 2 s, 4 s, …
pub fn backoff(retry: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX))
}

/// The one-line summary a `slack` target gets, e.g.
/// `canaryd gateway-migration: rollback at step 1 (25 % → 0 %): rule(s) error-rate failed`, or
/// `canaryd gateway-migration: awaiting approval at step 0 (5 % canary): step 0 held healthy
/// for 72h: ready for approval (…)`.
///
/// Built from the decision's fields; `from_percent` (the split before the decision) is used
/// when present, otherwise the current split is shown as `(0 % canary)`. A decision whose state
/// could not be saved says so at the end. `&`, `<` and `>` are escaped as Slack requires.
pub fn slack_text(decision: &Decision) -> String {
    let non_empty = |s: &str| !s.is_empty();
    let mut text = String::from("canaryd");
    if non_empty(&decision.policy) {
        let _ = write!(text, " {}", decision.policy);
    }
    // "ready for approval" reads as words.
    match decision.action {
        Action::AwaitingApproval => text.push_str(": awaiting approval"),
        action => {
            let _ = write!(text, ": {action}");
        }
    }
    match (decision.from_step, decision.to_step) {
        (Some(from), Some(to)) => {
            let _ = write!(text, " from step {from} to step {to}");
        }
        _ => {
            let _ = write!(text, " at step {}", decision.step);
        }
    }
    let to = decision.canary_percent;
    match decision.from_percent {
        Some(from) if from != to => {
            let _ = write!(text, " ({} % → {} %)", percent(from), percent(to));
        }
        _ => {
            let _ = write!(text, " ({} % canary)", percent(to));
        }
    }
    // An alert names its rule (and error); otherwise the state's reason says why.
    let detail = decision
        .alert_rule
        .as_deref()
        .filter(|s| non_empty(s))
        .or_else(|| Some(decision.reason.as_str()).filter(|s| non_empty(s)));
    if let Some(detail) = detail {
        let _ = write!(text, ": {detail}");
    }
    if let Some(e) = &decision.save_error {
        let _ = write!(text, " (state not saved: {e})");
    }
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `25` for 25.0, `2.5` for 2.5.
fn percent(p: f64) -> String {
    if p.fract() == 0.0 && p.abs() < 1e15 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

/// Checks a `[[notify]] url`; the message completes "expected ...". The rule lives in
/// `canaryd-config`, whose loader is its caller; this delegate remains for the tests here.
#[cfg(test)]
pub fn check_url(url: &str) -> Result<(), String> {
    canaryd_config::check_url(url)
}

/// `scheme://host[:port]/first-segment/…`: enough to recognise a target in logs without
/// printing the secret part of a webhook URL (Slack's token is in the path).
fn redact(url: &str) -> String {
    let Ok(u) = reqwest::Url::parse(url.trim()) else {
        return "(invalid url)".to_owned();
    };
    let mut out = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
    if let Some(port) = u.port() {
        let _ = write!(out, ":{port}");
    }
    let mut segments = u
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty());
    if let Some(first) = segments.next() {
        let _ = write!(out, "/{first}");
    }
    if segments.next().is_some() || u.query().is_some() {
        out.push_str("/…");
    }
    out
}

/// The HTTP client every target shares: no redirects (a 3xx is a failure: the target moved),
/// canaryd's user agent, and TLS with Mozilla's root certificates compiled in (webpki-roots),
/// so https webhooks need no system certificate store.
fn client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("canaryd/", env!("CARGO_PKG_VERSION")))
        .tls_backend_preconfigured(tls_config().map_err(|e| format!("TLS: {e}"))?)
        .build()
        .map_err(|e| root_cause(&e))
}

fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    // reqwest is built without HTTP/2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The innermost error's message (e.g. `Connection refused (os error 111)`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests;
