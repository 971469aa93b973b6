//! Shadow traffic: a step's `shadow` share of the requests the split sent to stable is also
//! sent to a canary server, off the client's path, so local rules can judge a canary that serves
//! no real traffic yet (a "dark" step at 0 %).
//!
//! Only a GET or HEAD without a body, routed by the split (never a named upstream) to stable:
//! nothing that could change state is ever sent twice. The copy is the request header (the one
//! clone and the one spawned task per request this feature needs), with the forwarding headers,
//! sent on a fresh connection to a server of the canary pool under `[proxy] shadow_timeout`;
//! its answer is read to the end and discarded. It never touches the client's response, the
//! pool's passive health (`max_fails`) or the variants' metrics: it is counted in
//! `canaryd_shadow_requests_total{outcome}` and its status and latency go to the windows' own
//! [`Lane::Shadow`]. At most `[proxy] shadow_max_inflight` copies are in flight (an atomic
//! counter); over that a copy is dropped and counted, so a slow canary costs clients nothing.

use std::net::IpAddr;
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use pingora_core::protocols::http::v1::client::HttpSession as ClientSession;
use pingora_http::RequestHeader;

use super::downstream::Downstream;
use super::upstream;
use crate::plane::{DataPlane, Upstreams};
use crate::pool::Pool;
use crate::routing::{Decision, Variant};
use crate::windows::Lane;

/// Sends a copy of the request to the canary when the step shadows and the request may be
/// shadowed (see the module doc); returns at once.
pub(super) fn mirror(
    plane: &DataPlane,
    up: &Upstreams,
    decision: Option<Decision>,
    ds: &mut Downstream,
    client_ip: Option<IpAddr>,
    scheme: &'static str,
) {
    let Some(Decision {
        variant: Variant::Stable,
        shadow_bp,
        ..
    }) = decision
    else {
        return;
    };
    if shadow_bp == 0
        || !matches!(*ds.head().method(), Method::GET | Method::HEAD)
        || crate::sticky::random_bucket() >= shadow_bp
    {
        return;
    }
    let copy = match ds {
        Downstream::Session(s) => {
            (!s.is_upgrade_req() && s.is_body_empty()).then(|| upstream::upstream_header(s, false))
        }
        // Bodiless and not an upgrade.
        Downstream::H1(s) => s.head().to_request_header(),
        _ => None,
    };
    let Some(mut req) = copy else {
        return;
    };
    let counters = &plane.metrics.shadow;
    if counters.inflight.fetch_add(1, AcqRel) >= up.shadow_max_inflight {
        counters.inflight.fetch_sub(1, AcqRel);
        counters.dropped.fetch_add(1, Relaxed);
        return;
    }
    crate::forwarding::apply(&mut req, client_ip, scheme);
    if let Some(h) = up.router.header_to_strip() {
        req.remove_header(h);
    }
    let pool = Arc::clone(&up.pools[Variant::Canary.index()]);
    let metrics = Arc::clone(&plane.metrics);
    let timeout = up.shadow_timeout;
    tokio::spawn(async move {
        let start = Instant::now();
        let status = match tokio::time::timeout(timeout, send(&pool, req, timeout)).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(())) => Err(502),
            Err(_) => Err(504),
        };
        let shadow = &metrics.shadow;
        match status {
            Ok(status) => {
                shadow.sent.fetch_add(1, Relaxed);
                metrics
                    .windows()
                    .record(Lane::Shadow, status, start.elapsed());
            }
            Err(status) => {
                shadow.error.fetch_add(1, Relaxed);
                metrics
                    .windows()
                    .record(Lane::Shadow, status, start.elapsed());
            }
        }
        shadow.inflight.fetch_sub(1, AcqRel);
    });
}

/// One copy: a canary server, a fresh connection, the header, the whole answer read and
/// dropped. Returns the answer's status.
async fn send(pool: &Pool, req: Box<RequestHeader>, timeout: Duration) -> Result<u16, ()> {
    let idx = pool.pick().ok_or(())?;
    let server = &pool.servers[idx];
    let stream = upstream::connect(server.addr, server.tls.as_deref(), timeout)
        .await
        .map_err(|_| ())?;
    let mut us = ClientSession::new(stream);
    us.write_request_header(req).await.map_err(|_| ())?;
    let status = loop {
        us.read_response().await.map_err(|_| ())?;
        match us.resp_header().map(|r| r.status.as_u16()) {
            Some(100..=199) => continue,
            Some(status) => break status,
            None => return Err(()),
        }
    };
    while !us.is_body_done() {
        match us.read_body_ref().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => return Err(()),
        }
    }
    Ok(status)
}
