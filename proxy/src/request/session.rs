//! One request, from its parsed header to the end of its response: match the route (by host,
//! then prefix), decide the variant when the route goes through the split, refuse a body over
//! the route's `max_body_size`, read a small body ahead (for replay), then attempt upstreams
//! until one answers or there is nothing left to try, and relay the answer with the route's
//! header rules applied. A route to a named upstream has one pool: no variant, no fallback to
//! another pool, and its outcomes are counted for that upstream, never for the rollout.
//!
//! Attempts, in order:
//! - a server is picked from the variant's pool; none available → the other pool once
//!   (fallback `unavailable`), none there either → 502;
//! - a pooled connection to it, or a new one; a failed connect counts against the server
//!   (`max_fails`) and the variant (a 502 attempt), then the other pool once (`connect_error`);
//! - a pooled connection that turns out closed before any byte of the response (the upstream
//!   closed it while idle) is retried on a fresh connection to the same server — a request
//!   that was fully written only if it is idempotent — and counts against nothing;
//! - a canary that answers 502/503/504, or breaks before anything reached the client, to an
//!   idempotent request whose body can be replayed: counted against the canary, retried on
//!   stable (`canary_error`) when `retry_on_canary_error` is on;
//! - anything else that fails before the response header: 504 for a timeout, 502 otherwise.
//!
//! A request moves to the other pool at most once. Every failed attempt is recorded against the
//! variant that failed, so the controller sees a broken canary even when its users were served
//! by stable. When the request ends — a stream when it closes — it is logged, if
//! `[proxy.access_log]` is set (`access_log/`).

use std::net::IpAddr;
use std::time::Instant;

use http::HeaderValue;
use pingora_core::protocols::http::v1::client::HttpSession as ClientSession;
use pingora_core::protocols::Stream;

use super::downstream::Downstream;
use super::retry::RequestBody;
use super::upstream::{self, AttemptError, RelayEnd};
use super::{h1, own_response, redirect, shadow, upgrade, upstream_pool, upstream_wire};
use crate::header_rules::Vars;
use crate::metrics::{FailureKind, FallbackReason, PoolCounters, UpstreamConnState};
use crate::plane::{DataPlane, NamedUpstream, Upstreams};
use crate::pool::Pool;
use crate::request_id::{RequestId, X_REQUEST_ID};
use crate::routes::{Route, Target};
use crate::routing::{Decision, Variant};

/// Fresh connections tried after stale pooled ones, per request.
const STALE_RETRIES: u32 = 2;

/// Where one request stands.
pub(super) struct Request<'a> {
    plane: &'a DataPlane,
    up: &'a Upstreams,
    start: Instant,
    attempt_start: Instant,
    /// The side of the split serving the request (unused for a named upstream).
    variant: Variant,
    pub(super) route: &'a Route,
    /// The named upstream serving the route, outside the split.
    named: Option<&'a NamedUpstream>,
    /// `X-Request-Id`: the client's, or generated (also for the access log).
    pub(super) request_id: RequestId,
    /// The `Host` header, kept when the route's header rules use `$host`.
    host: Option<HeaderValue>,
    client_ip: Option<IpAddr>,
    scheme: &'static str,
    /// The server of the current attempt, when picked.
    server: Option<usize>,
    /// A request moves to the other pool at most once.
    moved: bool,
    /// The outcome is already in the metrics (a stream at its header, a final connect failure).
    recorded: bool,
}

// === impl Request ===

impl<'a> Request<'a> {
    fn pool(&self) -> &'a Pool {
        match self.named {
            Some(n) => &n.pool,
            None => &self.up.pools[self.variant.index()],
        }
    }

    /// What is counted for the pool serving the request now.
    fn counters(&self) -> &'a PoolCounters {
        match self.named {
            Some(n) => &n.stats.counters,
            None => self.plane.metrics.pool(self.variant),
        }
    }

    /// Records one answer (or failed attempt) of the pool serving the request now.
    fn record(&self, status: u16, elapsed: std::time::Duration) {
        match self.named {
            Some(n) => n.stats.record(&self.route.stats, status, elapsed),
            None => self
                .plane
                .metrics
                .record(self.variant, &self.route.stats, status, elapsed),
        }
    }

    /// What the route's header templates see.
    pub(super) fn vars(&self) -> Vars<'_> {
        Vars {
            host: self.host.as_ref().map_or(&b""[..], |h| h.as_bytes()),
            remote_addr: self.client_ip,
            scheme: self.scheme,
            request_id: &self.request_id,
        }
    }

    /// `retry_on_canary_error`: a canary attempt that failed with `status` (answered 502/503/504,
    /// or broke before any byte reached the client) is counted against the canary, and a
    /// request that can be sent again (`replayable`: idempotent, body fully buffered) moves to
    /// stable. Returns whether it moved.
    fn canary_error_to_stable(&mut self, status: u16, replayable: bool) -> bool {
        if self.named.is_some()
            || self.variant != Variant::Canary
            || !self.up.retry_on_canary_error
            || !replayable
        {
            return false;
        }
        let failed_start = self.attempt_start;
        if !self.move_to_other_pool(FallbackReason::CanaryError) {
            return false;
        }
        self.plane.metrics.record(
            Variant::Canary,
            &self.route.stats,
            status,
            failed_start.elapsed(),
        );
        true
    }

    /// Moves the request to the other pool if it has not moved yet and the other pool can
    /// serve. Returns whether it moved.
    fn move_to_other_pool(&mut self, reason: FallbackReason) -> bool {
        let other = self.variant.other();
        if self.named.is_some() || self.moved || !self.up.pools[other.index()].has_available() {
            return false;
        }
        self.plane.metrics.fallback(self.variant, reason);
        tracing::debug!(
            from = self.variant.as_str(),
            to = other.as_str(),
            ?reason,
            "request moved to the other pool"
        );
        self.moved = true;
        self.variant = other;
        self.server = None;
        true
    }

    /// Records a failed attempt of the current pool as a `status` of that pool.
    fn record_attempt(&self, status: u16) {
        self.record(status, self.attempt_start.elapsed());
    }

    /// How the request ended, answered with `status`.
    fn outcome(&self, status: u16) -> Outcome {
        Outcome {
            status,
            upstream: self
                .server
                .map(|idx| (self.pool().servers[idx].addr, self.attempt_start)),
        }
    }

    /// A passive failure of the current server (`max_fails`).
    fn server_failed(&self) {
        if let Some(idx) = self.server {
            if self.pool().record_failure(idx) {
                tracing::warn!(
                    pool = %self.pool().section,
                    server = %self.pool().servers[idx].addr,
                    "backend out of rotation after max_fails failures"
                );
            }
        }
    }
}

/// How a request ended, for the access log.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    /// As sent to the client; 499: the client went away before an answer (as nginx).
    status: u16,
    /// The server of the last attempt, and since when it was tried.
    upstream: Option<(std::net::SocketAddr, Instant)>,
}

/// Serves one request whose header `ds` has read, then logs it; `tls`: it came over a TLS
/// listener. Leaves `ds` ready for `finish()`; an answer that is not a complete response turns
/// keepalive off.
pub async fn serve(
    plane: &DataPlane,
    up: &Upstreams,
    ds: &mut Downstream,
    client_ip: Option<IpAddr>,
    tls: bool,
) {
    let start = Instant::now();
    if let Downstream::Session(s) = ds {
        if !tls && up.https_redirect && redirect::applies(up, s.req_header()) {
            redirect::to_https(s).await;
            let status = s.response_written().map_or(499, |r| r.status.as_u16());
            // Logged as nginx logs its `return 301`: answered before any routing, so no
            // variant and no upstream; the route is the one the request would have taken.
            if plane.access_log.is_some() {
                let req = ds.head();
                let route = up
                    .routes
                    .get(up.routes.match_request(req.host(), req.path()));
                let done = Outcome {
                    status,
                    upstream: None,
                };
                let request_id = req.get(&X_REQUEST_ID);
                log(
                    plane,
                    ds,
                    client_ip,
                    start,
                    &done,
                    (request_id, None, &route.label),
                );
            }
            return;
        }
    }
    let _inflight = plane.drain.enter();
    let (mut r, decision, idempotent, upgrade, expect_continue, too_large) =
        start_request(plane, up, ds, client_ip, tls, start);
    shadow::mirror(plane, up, decision, ds, client_ip, r.scheme);
    let done = answer(
        &mut r,
        decision,
        ds,
        (idempotent, upgrade, expect_continue, too_large),
    )
    .await;
    log(
        plane,
        ds,
        client_ip,
        start,
        &done,
        (
            Some(r.request_id.as_bytes()),
            r.named.is_none().then_some(r.variant),
            &r.route.label,
        ),
    );
}

/// Writes the access log line of a finished request (when `[proxy.access_log]` is set). `who`:
/// its request id, the side of the split (none for a named upstream or a redirect) and its
/// route's label.
fn log(
    plane: &DataPlane,
    ds: &Downstream,
    client_ip: Option<IpAddr>,
    start: Instant,
    done: &Outcome,
    who: (Option<&[u8]>, Option<Variant>, &str),
) {
    let Some(log) = &plane.access_log else { return };
    let (request_id, variant, route) = who;
    log.record(&crate::access_log::Entry {
        req: ds.head(),
        http2: ds.is_http2(),
        client: client_ip,
        status: done.status,
        bytes: ds.body_bytes_sent(),
        duration: start.elapsed(),
        upstream: done.upstream.map(|(addr, _)| addr),
        upstream_time: done.upstream.map(|(_, since)| since.elapsed()),
        request_id,
        variant,
        route,
    });
}

/// The parts of a request known from its header: its route (and named upstream), the split's
/// decision, the request id, and (idempotent, upgrade, expect 100-continue, Content-Length over
/// `max_body_size`).
fn start_request<'a>(
    plane: &'a DataPlane,
    up: &'a Upstreams,
    ds: &Downstream,
    client_ip: Option<IpAddr>,
    tls: bool,
    start: Instant,
) -> (Request<'a>, Option<Decision>, bool, bool, bool, bool) {
    let req = ds.head();
    let route = up
        .routes
        .get(up.routes.match_request(req.host(), req.path()));
    let named = match route.target {
        Target::Upstream(i) => up.named.get(i),
        Target::Split => None,
    };
    let decision = match named {
        Some(_) => None,
        None => {
            let table = plane.table.load();
            let d = up.router.decide(&table, req, client_ip);
            tracing::debug!(
                variant = d.variant.as_str(),
                reason = ?d.reason,
                weight_bp = table.weight_bp,
                path = %String::from_utf8_lossy(req.path()),
                "routed"
            );
            Some(d)
        }
    };
    // canaryd's own HTTP/1 session takes no request with `Expect` or a body.
    let (expect, too_large) = match ds {
        Downstream::Session(_) => (
            req.get(&http::header::EXPECT)
                .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue")),
            route.max_body_size > 0
                && req
                    .get(&http::header::CONTENT_LENGTH)
                    .and_then(|v| std::str::from_utf8(v).ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .is_some_and(|len| len > route.max_body_size),
        ),
        _ => (false, false),
    };
    let r = Request {
        plane,
        up,
        start,
        attempt_start: start,
        variant: decision.map_or(Variant::Stable, |d| d.variant),
        route,
        named,
        request_id: RequestId::of(req),
        host: route
            .headers
            .uses_host()
            .then(|| HeaderValue::from_bytes(req.host()).ok())
            .flatten(),
        client_ip,
        scheme: if tls { "https" } else { "http" },
        server: None,
        moved: false,
        recorded: false,
    };
    (
        r,
        decision,
        req.method().is_idempotent(),
        matches!(ds, Downstream::Session(s) if s.is_upgrade_req()),
        expect,
        too_large,
    )
}

/// Serves one request: refuse a body too large, read ahead, attempt, relay.
async fn answer(
    r: &mut Request<'_>,
    decision: Option<Decision>,
    ds: &mut Downstream,
    (idempotent, upgrade, expect_continue, too_large): (bool, bool, bool, bool),
) -> Outcome {
    let (up, start, client_ip) = (r.up, r.start, r.client_ip);
    let route = r.route;
    if too_large {
        // As nginx: refused before the body is read or an upstream is contacted.
        return finish_error(r, ds, 413).await;
    }

    // A bodiless HTTP/1 request is written upstream straight from its header; canaryd's own
    // HTTP/1 session (`h1/`) only serves such requests, and hands any other over.
    let direct = match ds {
        Downstream::Session(s) => upstream_wire::applies(s, upgrade, &route.headers),
        Downstream::H1(_) => upstream_wire::rules_allow(&route.headers),
        Downstream::Lost(_) => false,
    };
    if !direct && ds.session(up).await.is_none() {
        return finish_error(r, ds, 0).await;
    }

    // The body, read ahead so a small one can be replayed.
    let mut body = match ds {
        Downstream::Session(s) if !upgrade => {
            if expect_continue && !s.is_http2() {
                // As nginx: canaryd asks for the body itself (and drops upstream 100s).
                if s.write_continue_response().await.is_err() {
                    return finish_error(r, ds, 0).await;
                }
            }
            match RequestBody::read_ahead(s, route.max_body_size).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!(error = %e, "reading the request body failed");
                    return finish_error(r, ds, upstream::client_status(&e)).await;
                }
            }
        }
        _ => RequestBody::none(),
    };

    let mut stale_retries = 0;
    let mut fresh_only = false;
    loop {
        // A server.
        let idx = match r.server {
            Some(idx) => idx,
            None => match r.pool().pick() {
                Some(idx) => idx,
                None => {
                    if r.move_to_other_pool(FallbackReason::Unavailable) {
                        continue;
                    }
                    tracing::debug!("no available server in either pool");
                    return finish_error(r, ds, 502).await;
                }
            },
        };
        r.server = Some(idx);
        r.attempt_start = Instant::now();
        let addr = r.pool().servers[idx].addr;
        let server_tls = r.pool().servers[idx].tls.as_deref();
        let timeouts = route.timeouts;

        // A connection.
        let pooled = if fresh_only {
            None
        } else {
            upstream_pool::take(
                r.counters(),
                r.pool().key,
                addr,
                up.upstream_idle_timeout.as_millis() as u64,
            )
        };
        let reused = pooled.is_some();
        let stream = match pooled {
            Some(s) => s,
            None => match upstream::connect(addr, server_tls, timeouts.connect).await {
                Ok(s) => s,
                Err(kind) => {
                    r.counters().upstream_failure(FailureKind::Connect);
                    r.record_attempt(502);
                    r.server_failed();
                    tracing::debug!(server = %addr, ?kind, "connect failed");
                    if r.move_to_other_pool(FallbackReason::ConnectError) {
                        continue;
                    }
                    // This attempt's 502 is the request's answer, already recorded.
                    r.recorded = true;
                    return finish_error(r, ds, 502).await;
                }
            },
        };
        let in_use = r.counters().upstream_conn(UpstreamConnState::InUse);
        let strip = if r.named.is_none() {
            up.router.header_to_strip()
        } else {
            None
        };
        let mut stream = stream;
        let wrote = if direct {
            let edits = upstream_wire::Edits {
                client_ip,
                scheme: r.scheme,
                strip,
                request_id: r.request_id.generated(),
                rules: &route.headers,
                vars: r.vars(),
            };
            Some(upstream_wire::write(&mut stream, ds.head(), &edits, timeouts.write).await)
        } else {
            None
        };

        // The request, and the response header: read by canaryd for its own HTTP/1 session,
        // by pingora-core's client session otherwise.
        let sent = match (wrote, &mut *ds) {
            (Some(Err(e)), _) => Err(upstream::write_failed(&e, reused)),
            (Some(Ok(())), Downstream::H1(_)) => {
                match h1::read_response(&mut stream, reused, timeouts.read).await {
                    Ok(resp) => Ok(Exchange::H1(stream, resp)),
                    Err(e) => Err(e),
                }
            }
            (Some(Ok(())), _) => {
                let mut us = client_session(stream, &timeouts);
                upstream::read_response_header(&mut us, reused)
                    .await
                    .map(|()| Exchange::Session(us))
            }
            (None, Downstream::Session(s)) => {
                let mut us = client_session(stream, &timeouts);
                let mut req = upstream::upstream_header(s, upgrade);
                crate::forwarding::apply(&mut req, client_ip, r.scheme);
                if let Some(h) = strip {
                    req.remove_header(h);
                }
                if let Some(id) = r.request_id.to_forward() {
                    let _ = req.insert_header(X_REQUEST_ID, id);
                }
                route.headers.apply_request(&mut req, &r.vars());
                upstream::send_request(s, &mut us, req, &mut body, reused)
                    .await
                    .map(|()| Exchange::Session(us))
            }
            // Not reached: a request that is not written directly has a pingora-core session.
            (None, _) => return finish_error(r, ds, 502).await,
        };
        let exchange = match sent {
            Ok(exchange) => exchange,
            Err(AttemptError::Client(status)) => return finish_error(r, ds, status).await,
            Err(AttemptError::Upstream { kind, stale, sent }) => {
                // A request that was fully written may have reached the application: only an
                // idempotent one is sent again.
                if stale
                    && body.replayable()
                    && (idempotent || !sent)
                    && stale_retries < STALE_RETRIES
                {
                    tracing::debug!(server = %addr, "pooled connection was closed; retrying on a fresh one");
                    stale_retries += 1;
                    fresh_only = true;
                    continue;
                }
                r.counters().upstream_failure(kind);
                if !stale {
                    r.server_failed();
                }
                let status = if kind == FailureKind::Timeout {
                    504
                } else {
                    502
                };
                if r.canary_error_to_stable(502, idempotent && body.replayable()) {
                    fresh_only = false;
                    continue;
                }
                return finish_error(r, ds, status).await;
            }
        };
        let Some(status) = exchange.status() else {
            return finish_error(r, ds, 502).await;
        };

        // A canary gateway error to a request that can go elsewhere.
        if matches!(status, 502..=504)
            && r.canary_error_to_stable(status, idempotent && body.replayable())
        {
            fresh_only = false;
            continue;
        }

        // The answer.
        let is_stream = status == 101 || exchange.is_event_stream();
        let new_cookie = decision
            .and_then(|d| d.new_cookie)
            .zip(up.router.sticky_cookie());
        let _stream = if is_stream {
            // Recorded now, in the second it belongs to: its length is how long the user
            // stayed, not its latency.
            r.recorded = true;
            r.record(status, start.elapsed());
            Some(r.counters().stream())
        } else {
            None
        };
        let mut bytes_out = 0;
        let (end, reusable) = match exchange {
            Exchange::H1(mut stream, mut resp) => {
                let Downstream::H1(client) = &mut *ds else {
                    // Not reached: canaryd reads the answer only for its own HTTP/1 session.
                    return finish_error(r, ds, 502).await;
                };
                let vars = r.vars();
                let add = |out: &mut Vec<u8>| {
                    route.headers.write_response_wire(out, &vars);
                    if let Some((bucket, name)) = new_cookie {
                        out.extend_from_slice(b"Set-Cookie: ");
                        sticky_cookie(out, name, bucket, up.cookie_max_age_s);
                        out.extend_from_slice(b"\r\n");
                    }
                };
                let hides = |name: &[u8]| route.headers.hides(name);
                let edits = h1::Edits {
                    add: &add,
                    hides: &hides,
                    keepalive: client.keepalive(),
                    read_timeout: timeouts.read,
                    write_timeout: up.client_timeout,
                };
                let relayed = client.relay(&mut resp, &mut stream, &edits).await;
                bytes_out = relayed.body_bytes;
                (relayed.end, relayed.upstream_reusable.then_some(stream))
            }
            Exchange::Session(mut us) => {
                let Some(ds) = ds.session(up).await else {
                    return r.outcome(499);
                };
                let Some(resp) = us.resp_header() else {
                    return r.outcome(502);
                };
                let mut resp = Box::new(resp.clone());
                route.headers.apply_response(&mut resp, &r.vars());
                if let Some((bucket, name)) = new_cookie {
                    let mut cookie = Vec::with_capacity(96);
                    sticky_cookie(&mut cookie, name, bucket, up.cookie_max_age_s);
                    if let Ok(v) = HeaderValue::from_bytes(&cookie) {
                        let _ = resp.append_header("Set-Cookie", v);
                    }
                }
                let mut bytes_in = 0;
                let end = if status == 101 && us.was_upgraded() {
                    match ds.write_response_header(resp).await {
                        Ok(()) => upgrade::tunnel(ds, &mut us, &mut bytes_in, &mut bytes_out).await,
                        Err(_) => RelayEnd::Client,
                    }
                } else {
                    upstream::relay_response(ds, &mut us, resp, &mut bytes_out).await
                };
                // Counts the read-ahead, the streamed rest and a tunnel's client side alike.
                let _ = bytes_in;
                let reusable = if end == RelayEnd::Complete && status != 101 {
                    us.respect_keepalive();
                    us.reuse().await
                } else {
                    None
                };
                (end, reusable)
            }
        };
        r.counters().bytes(ds.body_bytes_read(), bytes_out);
        if !r.recorded {
            r.record(status, start.elapsed());
        }
        match end {
            RelayEnd::Complete => {
                if let Some(stream) = reusable {
                    drop(in_use);
                    let pool = r.pool();
                    upstream_pool::put(
                        r.counters(),
                        pool.key,
                        addr,
                        stream,
                        up.keepalive_pool,
                        pool.keepalive,
                    );
                }
            }
            RelayEnd::Upstream(kind) => {
                r.counters().upstream_failure(kind);
                r.server_failed();
                ds.close_after();
            }
            RelayEnd::Client => ds.close_after(),
        }
        return r.outcome(status);
    }
}

/// One attempt's upstream side once the request is written: canaryd's own reading of the
/// answer (for its HTTP/1 session) or pingora-core's client session.
// Lives in the request's boxed future for one attempt; the h1 side's line offsets are its
// size, and boxing them would be an allocation per request.
#[allow(clippy::large_enum_variant)]
enum Exchange {
    H1(Stream, h1::Response),
    Session(ClientSession),
}

impl Exchange {
    fn status(&self) -> Option<u16> {
        match self {
            Exchange::H1(_, resp) => Some(resp.status()),
            Exchange::Session(us) => us.resp_header().map(|r| r.status.as_u16()),
        }
    }

    fn is_event_stream(&self) -> bool {
        match self {
            Exchange::H1(_, resp) => resp.is_event_stream(),
            Exchange::Session(us) => us.resp_header().is_some_and(is_event_stream),
        }
    }
}

/// pingora-core's client session over `stream`, with the route's timeouts.
fn client_session(stream: Stream, timeouts: &crate::routes::Timeouts) -> ClientSession {
    let mut us = ClientSession::new(stream);
    us.read_timeout = Some(timeouts.read);
    us.write_timeout = Some(timeouts.write);
    us
}

/// The sticky cookie's value: `NAME=BUCKET; Path=/; Max-Age=…; HttpOnly; SameSite=Lax`.
fn sticky_cookie(out: &mut Vec<u8>, name: &[u8], bucket: u16, max_age_s: u64) {
    out.extend_from_slice(name);
    out.push(b'=');
    out.extend_from_slice(itoa::Buffer::new().format(bucket).as_bytes());
    out.extend_from_slice(b"; Path=/; Max-Age=");
    out.extend_from_slice(itoa::Buffer::new().format(max_age_s).as_bytes());
    out.extend_from_slice(b"; HttpOnly; SameSite=Lax");
}

/// Answers with an error status (0: nothing, the client is gone) — the route's error page and
/// response headers included —, closes the client connection afterwards, and records the
/// answer unless an attempt already did.
async fn finish_error(r: &mut Request<'_>, ds: &mut Downstream, status: u16) -> Outcome {
    ds.close_after();
    if status != 0 {
        match ds.session(r.up).await {
            Some(s) => {
                s.set_keepalive(None);
                if let Err(e) = own_response::send(r, s, status).await {
                    tracing::debug!(error = %e, "could not send the error page");
                }
            }
            None => tracing::debug!("the connection was lost before the error page"),
        }
        if !r.recorded {
            r.record(status, r.start.elapsed());
        }
    }
    r.outcome(if status == 0 { 499 } else { status })
}

/// Server-Sent Events: a response that streams for as long as the client stays.
fn is_event_stream(resp: &pingora_http::ResponseHeader) -> bool {
    resp.headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.as_bytes().get(..b"text/event-stream".len()))
        .is_some_and(|t| t.eq_ignore_ascii_case(b"text/event-stream"))
}
