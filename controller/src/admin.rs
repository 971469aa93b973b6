//! The admin listener (hyper, HTTP/1.1): `/metrics`, `/healthz`, `/ready`, and the read side of
//! the API: `GET /api/v1/status`, `GET /api/v1/decisions?limit=N`.
//!
//! It runs on the control runtime, apart from the proxy's workers, so a flood of proxied
//! traffic never delays a scrape or a health probe. [`run`] takes a bound listener and a
//! shutdown signal so tests can drive it directly.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use canaryd_proxy::{process_metrics, DataPlane, Variant};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::decision_log::DecisionLog;
use crate::status::Board;

/// What the admin endpoints read.
#[derive(Debug)]
pub struct AdminState {
    pub plane: Arc<DataPlane>,
    pub board: Arc<Board>,
    /// Absent when no policy is configured.
    pub decisions: Option<Arc<DecisionLog>>,
}

/// Serves admin requests on `listener` until `shutdown` turns true.
pub async fn run(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}

fn handle(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let mut out = String::with_capacity(16 * 1024);
            let p = &state.plane;
            p.metrics.render(&mut out, p.table.weight_bp());
            state.board.render(&mut out);
            process_metrics::render(&mut out);
            respond(StatusCode::OK, "text/plain; version=0.0.4", out)
        }
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n".to_string()),
        (&Method::GET, "/ready") => {
            let stable = state.plane.pools[Variant::Stable.index()].has_available();
            let canary = state.plane.pools[Variant::Canary.index()].has_available();
            let ready = stable || canary;
            let body = serde_json::json!({
                "ready": ready,
                "stable_available": stable,
                "canary_available": canary,
                "draining": state.plane.drain.is_draining(),
            });
            let code = if ready && !state.plane.drain.is_draining() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            respond(code, "application/json", body.to_string())
        }
        (&Method::GET, "/api/v1/status") => respond(
            StatusCode::OK,
            "application/json",
            state.board.status().to_string(),
        ),
        (&Method::GET, "/api/v1/decisions") => {
            let limit = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit=")))
                .map(|v| v.parse::<usize>());
            let limit = match limit {
                None => 100,
                Some(Ok(n)) => n.min(crate::decision_log::KEEP),
                Some(Err(_)) => {
                    let body = serde_json::json!({
                        "error": "`limit` must be a whole number",
                        "hint": "GET /api/v1/decisions?limit=50",
                    });
                    return respond(
                        StatusCode::BAD_REQUEST,
                        "application/json",
                        body.to_string(),
                    );
                }
            };
            let lines = state
                .decisions
                .as_ref()
                .map(|d| d.recent(limit))
                .unwrap_or_default();
            respond(
                StatusCode::OK,
                "application/json",
                serde_json::json!({ "decisions": lines }).to_string(),
            )
        }
        _ => {
            let body = serde_json::json!({
                "error": format!("no such endpoint: {} {}", req.method(), req.uri().path()),
                "hint": "endpoints: GET /metrics, /healthz, /ready, /api/v1/status, /api/v1/decisions?limit=N",
            });
            respond(StatusCode::NOT_FOUND, "application/json", body.to_string())
        }
    }
}

fn respond(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    resp
}
