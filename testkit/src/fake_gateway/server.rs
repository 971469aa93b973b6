//! The fake gateway's HTTP/1.1 server: shared state, the accept loop
//! (keep-alive, upgrades enabled for `/ws`), and the per-response wrapper
//! that stamps `x-served-by` and counts status codes.

use std::convert::Infallible;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::body::RespBody;
use super::knobs::{KnobValues, Knobs};
use super::routes;
use super::stats::Stats;

/// Header on every response naming the gateway that answered.
pub const X_SERVED_BY: HeaderName = HeaderName::from_static("x-served-by");

/// Paths whose responses `gateway_requests_total` does not count.
const CONTROL_PATHS: [&str; 3] = ["/health", "/metrics", "/__knobs"];

/// Everything the handlers share.
#[derive(Debug)]
pub struct State {
    pub name: String,
    pub served_by: HeaderValue,
    pub knobs: Knobs,
    pub stats: Stats,
}

impl State {
    pub fn new(name: String, knobs: KnobValues) -> io::Result<State> {
        let served_by = HeaderValue::from_str(&name).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("name {name:?} is not a valid header value"),
            )
        })?;
        Ok(State {
            name,
            served_by,
            knobs: Knobs::new(knobs),
            stats: Stats::default(),
        })
    }
}

/// Accepts connections forever, one task per connection.
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // E.g. out of file descriptors: back off instead of spinning.
                eprintln!("fake-gateway: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            // Errors here are clients hanging up mid-request; nothing to do.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

/// Routes the request, then stamps and counts the response.
async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Response<RespBody> {
    let control = CONTROL_PATHS.contains(&req.uri().path());
    let mut resp = routes::route(state, req).await;
    resp.headers_mut()
        .insert(X_SERVED_BY, state.served_by.clone());
    if !control {
        state.stats.count_response(resp.status().as_u16());
    }
    resp
}
