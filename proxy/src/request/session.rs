//! One request, from its parsed header to the end of its response: decide the variant and
//! route, read a small body ahead (for replay), then attempt upstreams until one answers or
//! there is nothing left to try, and relay the answer.
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
//! by stable.

use std::net::IpAddr;
use std::time::Instant;

use pingora_core::protocols::http::v1::client::HttpSession as ClientSession;
use pingora_core::protocols::http::ServerSession;

use super::retry::RequestBody;
use super::upstream::{self, AttemptError, RelayEnd};
use super::{redirect, upgrade, upstream_pool, upstream_wire};
use crate::metrics::{FailureKind, FallbackReason, UpstreamConnState};
use crate::plane::{DataPlane, Upstreams};
use crate::pool::Pool;
use crate::routing::Variant;

/// Fresh connections tried after stale pooled ones, per request.
const STALE_RETRIES: u32 = 2;

/// Where one request stands.
struct Request<'a> {
    plane: &'a DataPlane,
    up: &'a Upstreams,
    start: Instant,
    attempt_start: Instant,
    variant: Variant,
    route: usize,
    /// The server of the current attempt, when picked.
    server: Option<usize>,
    /// A request moves to the other pool at most once.
    moved: bool,
    /// The outcome is already in the metrics (a stream at its header, a final connect failure).
    recorded: bool,
}

// === impl Request ===

impl Request<'_> {
    fn pool(&self) -> &Pool {
        &self.up.pools[self.variant.index()]
    }

    /// `retry_on_canary_error`: a canary attempt that failed with `status` (answered 502/503/504,
    /// or broke before any byte reached the client) is counted against the canary, and a
    /// request that can be sent again (`replayable`: idempotent, body fully buffered) moves to
    /// stable. Returns whether it moved.
    fn canary_error_to_stable(&mut self, status: u16, replayable: bool) -> bool {
        if self.variant != Variant::Canary || !self.up.retry_on_canary_error || !replayable {
            return false;
        }
        let failed_start = self.attempt_start;
        if !self.move_to_other_pool(FallbackReason::CanaryError) {
            return false;
        }
        self.plane
            .metrics
            .record(Variant::Canary, self.route, status, failed_start.elapsed());
        true
    }

    /// Moves the request to the other pool if it has not moved yet and the other pool can
    /// serve. Returns whether it moved.
    fn move_to_other_pool(&mut self, reason: FallbackReason) -> bool {
        let other = self.variant.other();
        if self.moved || !self.up.pools[other.index()].has_available() {
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

    /// Records a failed attempt of the current variant as a `status` of that variant.
    fn record_attempt(&self, status: u16) {
        self.plane.metrics.record(
            self.variant,
            self.route,
            status,
            self.attempt_start.elapsed(),
        );
    }

    fn outcome(&self, status: u16) -> Outcome {
        Outcome {
            status,
            variant: self.variant,
            route: self.route,
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
                    variant = self.variant.as_str(),
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
    variant: Variant,
    route: usize,
    /// The server of the last attempt, and since when it was tried.
    upstream: Option<(std::net::SocketAddr, Instant)>,
}

/// Serves one request whose header `ds` has read, then logs it; `tls`: it came over a TLS
/// listener. Leaves `ds` ready for `finish()`; an answer that is not a complete response turns
/// keepalive off.
pub async fn serve(
    plane: &DataPlane,
    up: &Upstreams,
    ds: &mut ServerSession,
    client_ip: Option<IpAddr>,
    tls: bool,
) {
    if !tls && up.https_redirect && redirect::applies(up, ds.req_header()) {
        return redirect::to_https(ds).await;
    }
    let start = Instant::now();
    let _inflight = plane.drain.enter();
    let done = answer(plane, up, ds, client_ip, tls, start).await;
    if let Some(log) = &plane.access_log {
        log.record(&crate::access_log::Entry {
            req: ds.req_header(),
            http2: ds.is_http2(),
            client: client_ip,
            status: done.status,
            bytes: ds.body_bytes_sent() as u64,
            duration: start.elapsed(),
            upstream: done.upstream.map(|(addr, _)| addr),
            upstream_time: done.upstream.map(|(_, since)| since.elapsed()),
            variant: done.variant,
            route: &up.routes.all()[done.route.min(up.routes.len() - 1)].label,
        });
    }
}

/// Serves one request: decide, attempt, relay.
async fn answer(
    plane: &DataPlane,
    up: &Upstreams,
    ds: &mut ServerSession,
    client_ip: Option<IpAddr>,
    tls: bool,
    start: Instant,
) -> Outcome {
    let (route, decision, idempotent, upgrade, expect_continue) = {
        let req = ds.req_header();
        let route = up.routes.match_path(req.uri.path().as_bytes());
        let table = plane.table.load();
        let d = up.router.decide(&table, &req.headers, client_ip);
        tracing::debug!(
            variant = d.variant.as_str(),
            reason = ?d.reason,
            weight_bp = table.weight_bp,
            path = %req.uri.path(),
            "routed"
        );
        let expect = req
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        (
            route,
            d,
            req.method.is_idempotent(),
            ds.is_upgrade_req(),
            expect,
        )
    };
    let mut r = Request {
        plane,
        up,
        start,
        attempt_start: start,
        variant: decision.variant,
        route,
        server: None,
        moved: false,
        recorded: false,
    };

    // The body, read ahead so a small one can be replayed.
    let mut body = if upgrade {
        RequestBody::none()
    } else {
        if expect_continue && !ds.is_http2() {
            // As nginx: canaryd asks for the body itself (and drops upstream 100s).
            if ds.write_continue_response().await.is_err() {
                return finish_error(&mut r, ds, 0).await;
            }
        }
        match RequestBody::read_ahead(ds).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(error = %e, "reading the request body failed");
                return finish_error(&mut r, ds, upstream::client_status(&e)).await;
            }
        }
    };

    // A bodiless HTTP/1 request is written upstream straight from its header.
    let direct = upstream_wire::applies(ds, upgrade);
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
                    return finish_error(&mut r, ds, 502).await;
                }
            },
        };
        r.server = Some(idx);
        r.attempt_start = Instant::now();
        let addr = r.pool().servers[idx].addr;
        let server_tls = r.pool().servers[idx].tls.as_deref();
        let timeouts = up.routes.all()[route.min(up.routes.len() - 1)].timeouts;

        // A connection.
        let pooled = if fresh_only {
            None
        } else {
            upstream_pool::take(
                &plane.metrics,
                r.variant,
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
                    plane
                        .metrics
                        .upstream_failure(r.variant, FailureKind::Connect);
                    r.record_attempt(502);
                    r.server_failed();
                    tracing::debug!(server = %addr, ?kind, "connect failed");
                    if r.move_to_other_pool(FallbackReason::ConnectError) {
                        continue;
                    }
                    // This attempt's 502 is the request's answer, already recorded.
                    r.recorded = true;
                    return finish_error(&mut r, ds, 502).await;
                }
            },
        };
        let in_use = plane
            .metrics
            .upstream_conn(r.variant, UpstreamConnState::InUse);
        let scheme = if tls { "https" } else { "http" };
        let mut stream = stream;
        let wrote = if direct {
            let edits = upstream_wire::Edits {
                client_ip,
                scheme,
                strip: up.router.header_to_strip(),
            };
            Some(upstream_wire::write(&mut stream, ds.req_header(), &edits, timeouts.write).await)
        } else {
            None
        };
        let mut us = ClientSession::new(stream);
        us.read_timeout = Some(timeouts.read);
        us.write_timeout = Some(timeouts.write);

        // The request, and the response header.
        let sent = match wrote {
            Some(Ok(())) => upstream::read_response_header(&mut us, reused).await,
            Some(Err(e)) => Err(upstream::write_failed(&e, reused)),
            None => {
                let mut req = upstream::upstream_header(ds, upgrade);
                crate::forwarding::apply(&mut req, client_ip, scheme);
                if let Some(h) = up.router.header_to_strip() {
                    req.remove_header(h);
                }
                upstream::send_request(ds, &mut us, req, &mut body, reused).await
            }
        };
        match sent {
            Ok(()) => {}
            Err(AttemptError::Client(status)) => return finish_error(&mut r, ds, status).await,
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
                plane.metrics.upstream_failure(r.variant, kind);
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
                return finish_error(&mut r, ds, status).await;
            }
        }
        let Some(resp) = us.resp_header() else {
            return finish_error(&mut r, ds, 502).await;
        };
        let status = resp.status.as_u16();

        // A canary gateway error to a request that can go elsewhere.
        if matches!(status, 502..=504)
            && r.canary_error_to_stable(status, idempotent && body.replayable())
        {
            fresh_only = false;
            continue;
        }

        // The answer.
        let is_stream = status == 101 || is_event_stream(resp);
        let mut resp = Box::new(resp.clone());
        if let (Some(bucket), Some(name)) = (decision.new_cookie, up.router.sticky_cookie()) {
            let cookie = format!(
                "{}={bucket}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
                String::from_utf8_lossy(name),
                up.cookie_max_age_s
            );
            let _ = resp.append_header("Set-Cookie", cookie);
        }
        let _stream = if is_stream {
            // Recorded now, in the second it belongs to: its length is how long the user
            // stayed, not its latency.
            r.recorded = true;
            plane
                .metrics
                .record(r.variant, route, status, start.elapsed());
            Some(plane.metrics.stream(r.variant))
        } else {
            None
        };
        let mut bytes_in = 0;
        let mut bytes_out = 0;
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
        plane
            .metrics
            .bytes(r.variant, ds.body_bytes_read() as u64, bytes_out);
        if !r.recorded {
            plane
                .metrics
                .record(r.variant, route, status, start.elapsed());
        }
        match end {
            RelayEnd::Complete if status != 101 => {
                us.respect_keepalive();
                if let Some(stream) = us.reuse().await {
                    drop(in_use);
                    upstream_pool::put(&plane.metrics, r.variant, addr, stream, up.keepalive_pool);
                }
            }
            RelayEnd::Complete => {}
            RelayEnd::Upstream(kind) => {
                plane.metrics.upstream_failure(r.variant, kind);
                r.server_failed();
                ds.set_keepalive(None);
            }
            RelayEnd::Client => ds.set_keepalive(None),
        }
        return r.outcome(status);
    }
}

/// Answers with an error status (0: nothing, the client is gone), closes the client connection
/// afterwards, and records the answer unless an attempt already did.
async fn finish_error(r: &mut Request<'_>, ds: &mut ServerSession, status: u16) -> Outcome {
    ds.set_keepalive(None);
    if status != 0 {
        if let Err(e) = ds.respond_error(status).await {
            tracing::debug!(error = %e, "could not send the error page");
        }
        if !r.recorded {
            r.plane
                .metrics
                .record(r.variant, r.route, status, r.start.elapsed());
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
