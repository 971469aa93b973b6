//! The admin listener (hyper, HTTP/1.1): `/metrics`, `/healthz`, `/ready`, the read side of the
//! API (`GET /api/v1/status`, `GET /api/v1/decisions?limit=N`) and operator actions
//! (`POST /api/v1/{start,pause,resume,promote,rollback,abort,approve}`, `POST /api/v1/weight`), which
//! need `Authorization: Bearer <token>`. Errors are `{"error", "hint"}` with a 4xx code.
//! `GET /` is the status page and `GET /ui/fragment` its live part ([`ui`]);
//! like the other reads they need no token (the page's buttons send it with each action).
//!
//! It runs on the control runtime, apart from the proxy's workers, so a flood of proxied
//! traffic never delays a scrape or a health probe. [`run`] takes a bound listener and a
//! shutdown signal so tests can drive it directly.

mod token;
mod ui;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use canaryd_proxy::{render_process_metrics, DataPlane, Variant};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use token::{check_exposure, Token, TokenError};

use crate::api::{ActionRequest, ApiError, ClusterRole, DecisionList, Readiness};
use crate::control::{Board, Handle};
use crate::rollout::Command;
use crate::store::DecisionLog;

/// Appends more metrics to a `/metrics` answer.
pub type MetricsHook = Arc<dyn Fn(&mut String) + Send + Sync>;

/// What the admin endpoints read.
pub struct AdminState {
    pub plane: Arc<DataPlane>,
    pub board: Arc<Board>,
    /// Absent when no policy is configured.
    pub decisions: Option<Arc<DecisionLog>>,
    /// Absent when no policy is configured.
    pub controller: Option<Handle>,
    /// Absent: mutations are refused.
    pub token: Option<Token>,
    /// Extra metrics (webhook counters).
    pub extra_metrics: Option<MetricsHook>,
}

impl std::fmt::Debug for AdminState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminState").finish_non_exhaustive()
    }
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
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
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

/// Largest request body accepted (operator actions carry a reason).
const MAX_BODY: usize = 64 * 1024;

/// Status page renders in flight at once; each runs on the blocking pool, so a client
/// reloading the page in a loop never delays the controller's ticks on the control runtime.
static PAGE_RENDERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn handle(state: &Arc<AdminState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if req.method() == Method::GET && (path == "/" || path == "/ui/fragment") {
        let whole = path == "/";
        let Ok(_permit) = PAGE_RENDERS.acquire().await else {
            return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down", ENDPOINTS);
        };
        let st = state.clone();
        return match tokio::task::spawn_blocking(move || status_page(&st, whole)).await {
            Ok(resp) => resp,
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("status page failed: {e}"),
                "see canaryd's log",
            ),
        };
    }
    if let Some(action) = path.strip_prefix("/api/v1/") {
        return match api(state, action, req).await {
            Some(resp) => resp,
            None => error(
                StatusCode::NOT_FOUND,
                format!("no such endpoint: {path}"),
                ENDPOINTS,
            ),
        };
    }
    read_endpoint(state, req)
}

const ENDPOINTS: &str = "GET / (status page), /metrics, /healthz, /ready, /api/v1/status, /api/v1/decisions?limit=N; POST /api/v1/{start,pause,resume,promote,rollback,abort,approve}, /api/v1/weight";

fn error(
    code: StatusCode,
    error: impl Into<String>,
    hint: impl Into<String>,
) -> Response<Full<Bytes>> {
    let body = ApiError {
        error: error.into(),
        hint: hint.into(),
        leader_admin: None,
    };
    json(code, &body)
}

/// `value` as a JSON answer.
fn json(code: StatusCode, value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_string(value) {
        Ok(body) => respond(code, "application/json", body),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an admin API answer");
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                r#"{"error":"cannot encode the answer","hint":"see canaryd's log"}"#.into(),
            )
        }
    }
}

/// A fleet's follower answers operator actions with 421 and the leader's admin address: the
/// command belongs to the one member that acts. (Not forwarded: the operator sees which
/// member acted, a follower cut off from etcd cannot say wrongly that it forwarded, and the
/// token is sent only where the operator sent it. `canaryd` CLI verbs follow the 421 once.)
fn misdirected(state: &AdminState) -> Option<Response<Full<Bytes>>> {
    let status = state.board.status();
    let c = status.rollout()?.cluster.as_ref()?;
    if c.role != ClusterRole::Follower {
        return None;
    }
    let body = ApiError {
        error: match &c.leader {
            Some(l) => format!(
                "this member ({}) is a follower; the fleet's leader is {l}",
                c.name
            ),
            None => format!(
                "this member ({}) is a follower and no leader is known",
                c.name
            ),
        },
        hint: match &c.leader_admin {
            Some(a) => format!("send the command to the leader's admin API at {a}"),
            None => "retry once a leader is elected (`canaryd status` shows cluster.leader)".into(),
        },
        leader_admin: c.leader_admin.clone(),
    };
    Some(json(StatusCode::MISDIRECTED_REQUEST, &body))
}

/// `/api/v1/*`, reads and operator actions; `None` for unknown paths.
async fn api(
    state: &AdminState,
    action: &str,
    req: Request<Incoming>,
) -> Option<Response<Full<Bytes>>> {
    use http_body_util::BodyExt;
    let cmd = match action {
        "status" | "decisions" => {
            return Some(if req.method() == Method::GET {
                read_endpoint(state, req)
            } else {
                error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("use GET for /api/v1/{action}"),
                    ENDPOINTS,
                )
            })
        }
        "start" => Some(Command::Start),
        "pause" => Some(Command::Pause),
        "resume" => Some(Command::Resume),
        "promote" => Some(Command::Promote),
        "rollback" => Some(Command::Rollback),
        "abort" => Some(Command::Abort),
        "approve" => Some(Command::Approve),
        "weight" => None,
        _ => return None,
    };
    if req.method() != Method::POST {
        return Some(error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("use POST for /api/v1/{action}"),
            ENDPOINTS,
        ));
    }
    let Some(token) = &state.token else {
        return Some(error(
            StatusCode::FORBIDDEN,
            "operator actions are disabled: no [admin] token_file is configured",
            "set [admin] token_file to a file (mode 600) holding a long random token",
        ));
    };
    let auth = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !token.authorizes(auth) {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
            "send `Authorization: Bearer <token>` with the token from [admin] token_file (canaryd … --token-file FILE)",
        ));
    }
    let Some(controller) = &state.controller else {
        return Some(error(
            StatusCode::CONFLICT,
            "no rollout policy is configured",
            "set [rollout] policy in the config and restart (or reload) canaryd",
        ));
    };
    if let Some(refused) = misdirected(state) {
        return Some(refused);
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return Some(error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
                "send at most 64 KiB of JSON",
            ))
        }
    };
    let request: ActionRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ActionRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                // Valid JSON of the wrong shape (`{"reason": 5}`) is a data error.
                return Some(if e.is_data() {
                    error(
                        StatusCode::BAD_REQUEST,
                        format!("the body is not an action request: {e}"),
                        r#"{"reason": "…"}, and "percent" (a number) for /api/v1/weight"#,
                    )
                } else {
                    error(
                        StatusCode::BAD_REQUEST,
                        format!("the body is not JSON: {e}"),
                        r#"e.g. {"reason": "canary looks good"}"#,
                    )
                });
            }
        }
    };
    let reason = request.reason;
    let cmd = match cmd {
        Some(c) => c,
        None => match request.percent {
            Some(p) => Command::SetWeight(p),
            None => {
                return Some(error(
                    StatusCode::BAD_REQUEST,
                    "missing `percent`",
                    r#"POST /api/v1/weight {"percent": 25, "reason": "…"}"#,
                ))
            }
        },
    };
    Some(match controller.send(cmd, reason).await {
        Ok(status) => json(StatusCode::OK, &status),
        Err(r) => error(StatusCode::CONFLICT, r.error, r.hint),
    })
}

fn read_endpoint(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/metrics") => {
            let mut out = String::with_capacity(16 * 1024);
            state.plane.render_metrics(&mut out);
            state.board.render(&mut out);
            if let Some(extra) = &state.extra_metrics {
                extra(&mut out);
            }
            render_process_metrics(&mut out);
            respond(StatusCode::OK, "text/plain; version=0.0.4", out)
        }
        (&Method::GET, "/healthz") => respond(StatusCode::OK, "text/plain", "ok\n".to_string()),
        (&Method::GET, "/ready") => {
            let up = state.plane.upstreams();
            let stable = up.pools[Variant::Stable.index()].has_available();
            let canary = up.pools[Variant::Canary.index()].has_available();
            let ready = stable || canary;
            let body = Readiness {
                canary_available: canary,
                draining: state.plane.drain.is_draining(),
                ready,
                stable_available: stable,
            };
            let code = if ready && !body.draining {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(code, &body)
        }
        (&Method::GET, "/api/v1/status") => json(StatusCode::OK, &state.board.status()),
        (&Method::GET, "/api/v1/decisions") => {
            let limit = req
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit=")))
                .map(|v| v.parse::<usize>());
            let limit = match limit {
                None => 100,
                Some(Ok(n)) => n.min(crate::store::KEEP),
                Some(Err(_)) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "`limit` must be a whole number",
                        "GET /api/v1/decisions?limit=50",
                    )
                }
            };
            let decisions = state
                .decisions
                .as_ref()
                .map(|d| d.recent(limit))
                .unwrap_or_default();
            json(StatusCode::OK, &DecisionList { decisions })
        }
        _ => error(
            StatusCode::NOT_FOUND,
            format!("no such endpoint: {} {}", req.method(), req.uri().path()),
            ENDPOINTS,
        ),
    }
}

/// The status page (`whole`) or its live fragment, with the page's security headers.
fn status_page(state: &AdminState, whole: bool) -> Response<Full<Bytes>> {
    use ui::{fragment, headers, nonce, page, PageData};
    let status = state.board.status();
    let decisions = state
        .decisions
        .as_ref()
        .map(|d| d.recent(crate::store::KEEP))
        .unwrap_or_default();
    let data = PageData {
        status: &status,
        decisions: &decisions,
        weight_percent: f64::from(state.plane.table.weight_bp()) / 100.0,
        token_configured: state.token.is_some(),
        now_ms: crate::control::wall_ms(),
    };
    let nonce = nonce();
    let body = if whole {
        page(&data, &nonce)
    } else {
        fragment(&data)
    };
    let mut resp = respond(StatusCode::OK, "text/html; charset=utf-8", body);
    for (name, value) in headers(&nonce) {
        match http::HeaderValue::from_str(&value) {
            Ok(v) => {
                resp.headers_mut().insert(name, v);
            }
            Err(e) => tracing::error!(header = name, error = %e, "invalid status page header"),
        }
    }
    resp
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
