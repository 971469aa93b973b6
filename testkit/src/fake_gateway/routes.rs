//! The fake gateway's endpoints: dispatch on method and path, and one
//! handler per endpoint. See the module docs of `fake_gateway` for the list.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::body::{self, ChannelBody, RespBody};
use super::server::State;
use super::ws;

/// Answers one request.
pub async fn route(state: &Arc<State>, req: Request<Incoming>) -> Response<RespBody> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (method, path.as_str()) {
        (_, "/health") => health(state),
        (_, "/__knobs") => knobs(state, &req),
        (Method::GET, "/metrics") => metrics(state),
        (_, p) if p.starts_with("/echo") => echo(state, req).await,
        (Method::GET, p) if p.starts_with("/api/stream") => sse(&req),
        (Method::GET, "/ws") => ws::upgrade(req),
        (Method::POST, "/upload") => upload(req).await,
        (Method::GET, "/slow") => slow(&req).await,
        (_, p) if p.starts_with("/status/") => status(p),
        _ => normal(state, req).await,
    }
}

/// Value of query parameter `key`, if present.
fn query_param<'a>(req: &'a Request<Incoming>, key: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// A milliseconds query parameter, `default` when absent; the 400 message
/// when invalid.
fn ms_param(req: &Request<Incoming>, key: &str, default: u64) -> Result<Duration, String> {
    match query_param(req, key) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| format!("{key} must be a whole number of milliseconds, got {v:?}\n")),
    }
}

fn bad_body(e: hyper::Error) -> Response<RespBody> {
    body::text(
        StatusCode::BAD_REQUEST,
        format!("cannot read request body: {e}\n"),
    )
}

/// `/health`: 200 `ok`, or 503 `unhealthy` when the knob says so.
fn health(state: &State) -> Response<RespBody> {
    if state.knobs.healthy() {
        body::text(StatusCode::OK, "ok")
    } else {
        body::text(StatusCode::SERVICE_UNAVAILABLE, "unhealthy")
    }
}

/// `GET /__knobs` shows the knobs; `POST /__knobs?k=v&...` changes them.
fn knobs(state: &State, req: &Request<Incoming>) -> Response<RespBody> {
    match *req.method() {
        Method::GET => body::json(StatusCode::OK, &state.knobs.snapshot().to_json(&state.name)),
        Method::POST => match state.knobs.apply_query(req.uri().query().unwrap_or("")) {
            Ok(v) => body::json(StatusCode::OK, &v.to_json(&state.name)),
            Err(e) => body::text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        },
        _ => body::text(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n"),
    }
}

/// `GET /metrics`: Prometheus text format.
fn metrics(state: &State) -> Response<RespBody> {
    let mut resp = body::text(StatusCode::OK, state.stats.render(&state.name));
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// `/echo...`: the request as JSON (body only counted).
async fn echo(state: &State, req: Request<Incoming>) -> Response<RespBody> {
    let (parts, incoming) = req.into_parts();
    let mut headers: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.as_str())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    let body_len = match body::count_bytes(incoming).await {
        Ok(n) => n,
        Err(e) => return bad_body(e),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    body::json(
        StatusCode::OK,
        &serde_json::json!({
            "name": state.name,
            "method": parts.method.as_str(),
            "path": path,
            "headers": headers,
            "body_len": body_len,
        }),
    )
}

/// `GET /api/stream...`: SSE, `data: first` at once, `data: last` after
/// `hold_ms` (default 2000), then the end of the body.
fn sse(req: &Request<Incoming>) -> Response<RespBody> {
    let hold = match ms_param(req, "hold_ms", 2000) {
        Ok(hold) => hold,
        Err(msg) => return body::text(StatusCode::BAD_REQUEST, msg),
    };
    let (tx, stream) = ChannelBody::pair(4);
    tokio::spawn(async move {
        if tx
            .send(Bytes::from_static(b"data: first\n\n"))
            .await
            .is_err()
        {
            return;
        }
        tokio::time::sleep(hold).await;
        let _ = tx.send(Bytes::from_static(b"data: last\n\n")).await;
    });
    let mut resp = Response::new(body::streaming(stream));
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// `POST /upload`: counts the streamed body, `{"bytes":N}`.
async fn upload(req: Request<Incoming>) -> Response<RespBody> {
    match body::count_bytes(req.into_body()).await {
        Ok(n) => body::json(StatusCode::OK, &serde_json::json!({ "bytes": n })),
        Err(e) => bad_body(e),
    }
}

/// `GET /slow?ms=N` (default 1000): waits, then 200 `slow`.
async fn slow(req: &Request<Incoming>) -> Response<RespBody> {
    match ms_param(req, "ms", 1000) {
        Ok(wait) => {
            tokio::time::sleep(wait).await;
            body::text(StatusCode::OK, "slow")
        }
        Err(msg) => body::text(StatusCode::BAD_REQUEST, msg),
    }
}

/// `/status/NNN`: that status, with body `status NNN\n` (any method; an invalid code is 400).
fn status(path: &str) -> Response<RespBody> {
    let code = &path["/status/".len()..];
    match code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(s) => body::text(s, format!("status {code}\n")),
        None => body::text(
            StatusCode::BAD_REQUEST,
            format!("no such status {code:?}\n"),
        ),
    }
}

/// Everything else: latency, then 500 `error` (error rate), 401 for `/auth`
/// paths (auth-failure rate), else 200 with the gateway's name.
async fn normal(state: &State, req: Request<Incoming>) -> Response<RespBody> {
    let is_auth = req.uri().path().starts_with("/auth");
    if let Err(e) = body::count_bytes(req.into_body()).await {
        return bad_body(e);
    }
    let latency = state.knobs.latency_ms();
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if fastrand::f64() < state.knobs.error_rate() {
        return body::text(StatusCode::INTERNAL_SERVER_ERROR, "error");
    }
    if is_auth && fastrand::f64() < state.knobs.auth_fail_rate() {
        state.stats.count_auth_failure();
        return body::text(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    body::text(StatusCode::OK, state.name.clone())
}
