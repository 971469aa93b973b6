//! The Pingora `ProxyHttp` implementation: one request's path through canaryd.
//!
//! `request_filter` decides the variant and route; `upstream_peer` picks a server (falling back
//! to the other pool when one has none available); `fail_to_connect` retries once on the other
//! pool; `upstream_response_filter` turns a canary 502/503/504 to an idempotent request into a
//! retry on stable, and `error_while_proxy` does the same when the canary breaks (garbage,
//! reset, timeout) before anything reached the client; `logging` records the final response. Every failed upstream attempt is also
//! recorded against the variant that failed, so the controller sees a broken canary even when
//! users do not.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};

use crate::forwarding;
use crate::metrics::{FailureKind, FallbackReason, Metrics};
use crate::pool::Pool;
use crate::routes::Routes;
use crate::routing::{Router, RoutingHandle, Variant};

/// Everything a request needs, shared by all worker threads.
#[derive(Debug)]
pub struct DataPlane {
    /// The split; written by the controller.
    pub table: RoutingHandle,
    pub metrics: Arc<Metrics>,
    pub drain: Arc<Drain>,
    /// What a reload (SIGHUP) can replace; each request keeps the generation it started with.
    upstreams: ArcSwap<Upstreams>,
}

/// The reloadable part of the data plane: routing rules, pools, per-route timeouts.
#[derive(Debug)]
pub struct Upstreams {
    pub router: Router,
    /// Indexed by [`Variant::index`].
    pub pools: [Arc<Pool>; 2],
    pub routes: Routes,
    pub retry_on_canary_error: bool,
    /// `Max-Age` of the sticky cookie, seconds.
    pub cookie_max_age_s: u64,
    pub keepalive_timeout_s: u64,
    pub client_timeout: Duration,
}

/// In-flight accounting for graceful stops.
#[derive(Debug, Default)]
pub struct Drain {
    inflight: AtomicUsize,
    draining: AtomicBool,
}

/// The proxy service handed to Pingora.
#[derive(Debug, Clone)]
pub struct CanaryProxy {
    plane: Arc<DataPlane>,
}

/// Per-request state.
#[derive(Debug)]
pub struct RequestCtx {
    /// The upstreams generation this request uses from start to end.
    up: Arc<Upstreams>,
    start: Instant,
    attempt_start: Instant,
    variant: Variant,
    route: usize,
    server: Option<usize>,
    /// A request is moved to the other pool at most once.
    moved: bool,
    new_cookie: Option<u16>,
    client_ip: Option<IpAddr>,
    /// The request's outcome is already in the metrics, so `logging` does not record it again:
    /// a stream (SSE, an upgraded connection) is recorded when its response header arrives
    /// (its length is how long the user stayed, not its latency), and a final connect failure
    /// when it happens.
    recorded: bool,
    _inflight: InflightGuard,
}

#[derive(Debug)]
struct InflightGuard(Arc<Drain>);

// === impl RequestCtx ===

impl RequestCtx {
    /// The pool of `v` in this request's upstreams generation.
    fn pool(&self, v: Variant) -> &Pool {
        &self.up.pools[v.index()]
    }
}

// === impl DataPlane ===

impl DataPlane {
    pub fn new(table: RoutingHandle, metrics: Arc<Metrics>, upstreams: Upstreams) -> Self {
        Self {
            table,
            metrics,
            drain: Arc::new(Drain::default()),
            upstreams: ArcSwap::from_pointee(upstreams),
        }
    }

    /// The upstreams in force now.
    pub fn upstreams(&self) -> Arc<Upstreams> {
        self.upstreams.load_full()
    }

    /// Replaces the upstreams; requests already running finish on the old ones.
    pub fn replace_upstreams(&self, new: Upstreams) {
        self.upstreams.store(Arc::new(new));
    }
}

// === impl Drain ===

impl Drain {
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Stop keeping client connections alive; called when a graceful stop begins.
    pub fn start(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    fn enter(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::AcqRel);
        InflightGuard(self.clone())
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
    }
}

// === impl CanaryProxy ===

impl CanaryProxy {
    pub fn new(plane: Arc<DataPlane>) -> Self {
        Self { plane }
    }

    /// Records a failed attempt of `ctx.variant` as a 502 of that variant.
    fn record_failed_attempt(&self, ctx: &RequestCtx, kind: FailureKind) {
        let m = &self.plane.metrics;
        m.upstream_failure(ctx.variant, kind);
        m.record(ctx.variant, ctx.route, 502, ctx.attempt_start.elapsed());
    }

    /// Moves the request to the other pool if it has not moved yet and the other pool can
    /// serve. Returns whether it moved.
    fn move_to_other_pool(&self, ctx: &mut RequestCtx, reason: FallbackReason) -> bool {
        let other = ctx.variant.other();
        if ctx.moved || !ctx.pool(other).has_available() {
            return false;
        }
        self.plane.metrics.fallback(ctx.variant, reason);
        tracing::debug!(
            from = ctx.variant.as_str(),
            to = other.as_str(),
            ?reason,
            "request moved to the other pool"
        );
        ctx.moved = true;
        ctx.variant = other;
        ctx.server = None;
        true
    }
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Status for an error response, as nginx would answer (0: the client is gone).
fn error_status(e: &Error) -> u16 {
    use ErrorType::*;
    match (e.esource(), e.etype()) {
        (_, HTTPStatus(code)) => *code,
        (ErrorSource::Upstream, ConnectTimedout | ReadTimedout | WriteTimedout) => 504,
        (ErrorSource::Upstream, _) => 502,
        (ErrorSource::Downstream, WriteError | ReadError | ConnectionClosed) => 0,
        (ErrorSource::Downstream, ReadTimedout) => 408,
        (ErrorSource::Downstream, _) => 400,
        _ => 500,
    }
}

fn failure_kind(e: &Error) -> Option<FailureKind> {
    if *e.esource() != ErrorSource::Upstream {
        return None;
    }
    match e.etype() {
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => Some(FailureKind::Timeout),
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError => {
            Some(FailureKind::Reset)
        }
        ErrorType::InvalidHTTPHeader | ErrorType::H1Error | ErrorType::InvalidH2 => {
            Some(FailureKind::Protocol)
        }
        _ => None,
    }
}

#[async_trait]
impl ProxyHttp for CanaryProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        let now = Instant::now();
        RequestCtx {
            up: self.plane.upstreams(),
            start: now,
            attempt_start: now,
            recorded: false,
            variant: Variant::Stable,
            route: 0,
            server: None,
            moved: false,
            new_cookie: None,
            client_ip: None,
            _inflight: self.plane.drain.enter(),
        }
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if self.plane.drain.is_draining() {
            session.set_keepalive(None);
        } else {
            session.set_keepalive(Some(ctx.up.keepalive_timeout_s));
        }
        session.set_read_timeout(Some(ctx.up.client_timeout));
        session.set_write_timeout(Some(ctx.up.client_timeout));
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.client_ip = client_ip(session);
        let req = session.req_header();
        ctx.route = ctx.up.routes.match_path(req.uri.path().as_bytes());
        let table = self.plane.table.load();
        let d = ctx.up.router.decide(&table, &req.headers, ctx.client_ip);
        ctx.variant = d.variant;
        ctx.new_cookie = d.new_cookie;
        tracing::debug!(
            variant = d.variant.as_str(),
            reason = ?d.reason,
            weight_bp = table.weight_bp,
            path = %req.uri.path(),
            "routed"
        );
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let mut picked = ctx.pool(ctx.variant).pick();
        if picked.is_none() && self.move_to_other_pool(ctx, FallbackReason::Unavailable) {
            picked = ctx.pool(ctx.variant).pick();
        }
        let Some(idx) = picked else {
            return Err(Error::explain(
                ErrorType::HTTPStatus(502),
                "no available server in either pool",
            ));
        };
        ctx.server = Some(idx);
        ctx.attempt_start = Instant::now();
        let server = &ctx.pool(ctx.variant).servers[idx];
        Ok(Box::new(server.peer(ctx.route).clone()))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.record_failed_attempt(ctx, FailureKind::Connect);
        if let Some(idx) = ctx.server {
            if ctx.pool(ctx.variant).record_failure(idx) {
                tracing::warn!(
                    variant = ctx.variant.as_str(),
                    server = %ctx.pool(ctx.variant).servers[idx].addr,
                    "backend out of rotation after max_fails connect failures"
                );
            }
        }
        let retry = self.move_to_other_pool(ctx, FallbackReason::ConnectError);
        // Without a retry this attempt's 502 is the request's answer, already recorded above.
        ctx.recorded = !retry;
        e.set_retry(retry);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("peer: {peer}"));
        let kind = failure_kind(&e);
        if let (Some(kind), Some(idx)) = (kind, ctx.server) {
            self.plane.metrics.upstream_failure(ctx.variant, kind);
            ctx.pool(ctx.variant).record_failure(idx);
        }
        // Pingora's default policy: only idempotent requests whose body can be replayed.
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
            return e;
        }
        e.retry.decide_reuse(client_reused);
        if e.retry() {
            // A stale pooled connection: Pingora retries on a fresh one, same pool.
            return e;
        }
        // A canary that broke before anything reached the client (garbage, reset, timeout):
        // count it against the canary and serve the request from stable.
        if kind.is_some()
            && ctx.variant == Variant::Canary
            && ctx.up.retry_on_canary_error
            && session.response_written().is_none()
        {
            let started = ctx.attempt_start;
            if self.move_to_other_pool(ctx, FallbackReason::CanaryError) {
                self.plane
                    .metrics
                    .record(Variant::Canary, ctx.route, 502, started.elapsed());
                e.set_retry(true);
            }
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        forwarding::apply(upstream, ctx.client_ip, "http");
        if let Some(h) = ctx.up.router.header_to_strip() {
            upstream.remove_header(h);
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = resp.status.as_u16();
        if is_stream(status, resp) && !ctx.recorded {
            // Recorded now, in the second it belongs to, not when the stream ends.
            ctx.recorded = true;
            self.plane
                .metrics
                .record(ctx.variant, ctx.route, status, ctx.start.elapsed());
        }
        if ctx.variant == Variant::Canary
            && matches!(status, 502..=504)
            && ctx.up.retry_on_canary_error
            && session.req_header().method.is_idempotent()
            && !session.as_ref().retry_buffer_truncated()
        {
            let failed = ctx.variant;
            let started = ctx.attempt_start;
            if self.move_to_other_pool(ctx, FallbackReason::CanaryError) {
                self.plane
                    .metrics
                    .record(failed, ctx.route, status, started.elapsed());
                let mut e = Error::explain(
                    ErrorType::HTTPStatus(status),
                    "canary answered with a gateway error; retrying on stable",
                );
                e.set_retry(true);
                return Err(e);
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(bucket), Some(name)) = (ctx.new_cookie, ctx.up.router.sticky_cookie()) {
            let cookie = format!(
                "{}={bucket}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
                String::from_utf8_lossy(name),
                ctx.up.cookie_max_age_s
            );
            resp.append_header("Set-Cookie", cookie)?;
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let m = &self.plane.metrics;
        let status = session
            .response_written()
            .map(|r| r.status.as_u16())
            .unwrap_or(0);
        // A stream was recorded when its header arrived.
        if status != 0 && !ctx.recorded {
            m.record(ctx.variant, ctx.route, status, ctx.start.elapsed());
        }
        if let Some(e) = e {
            tracing::debug!(
                variant = ctx.variant.as_str(),
                status,
                error = %e,
                "request failed"
            );
        }
    }

    /// The error page for a request that could not be proxied, with nginx's status codes:
    /// 504 when the upstream timed out, 502 for other upstream failures, 400 for a bad
    /// request, nothing when the client is already gone.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = error_status(e);
        if code > 0 {
            if let Err(write) = session.respond_error(code).await {
                tracing::debug!(error = %write, "could not send the error page");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        // Per-request failures are counted in metrics and logged at debug in `logging`.
        true
    }

    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        _ctx: &RequestCtx,
        _error: &Error,
        _context: ProxyWarnLogContext,
    ) -> bool {
        true
    }
}

/// A response that streams for as long as the client stays: Server-Sent Events, or a
/// connection upgraded to another protocol (WebSocket). Its latency is time to the header.
fn is_stream(status: u16, resp: &ResponseHeader) -> bool {
    status == 101
        || resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.as_bytes().get(..b"text/event-stream".len()))
            .is_some_and(|t| t.eq_ignore_ascii_case(b"text/event-stream"))
}
