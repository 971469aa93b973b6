//! `GET /ws`: a WebSocket echo server. The HTTP/1.1 upgrade is answered here
//! (101 with `Sec-WebSocket-Accept` per RFC 6455); the upgraded connection is
//! then driven by tokio-tungstenite, echoing text and binary messages and
//! answering pings and close frames.

use futures_util::{SinkExt, StreamExt};
use http::header::{HeaderValue, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use super::body::{self, RespBody};

/// Answers the upgrade request and spawns the echo loop for the upgraded
/// connection.
pub fn upgrade(mut req: Request<Incoming>) -> Response<RespBody> {
    let headers = req.headers();
    let wants_websocket = headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = headers.get(SEC_WEBSOCKET_KEY) else {
        return body::text(StatusCode::BAD_REQUEST, "missing sec-websocket-key\n");
    };
    if !wants_websocket {
        return body::text(
            StatusCode::BAD_REQUEST,
            "expected a websocket upgrade (upgrade: websocket)\n",
        );
    }
    let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) else {
        return body::text(StatusCode::INTERNAL_SERVER_ERROR, "bad accept key\n");
    };

    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                echo(ws).await;
            }
            Err(e) => eprintln!("fake-gateway: websocket upgrade failed: {e}"),
        }
    });

    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    resp
}

/// Echoes data messages until the peer closes or the connection fails.
/// Pings and close frames are answered by tungstenite itself while reading.
async fn echo<S>(mut ws: WebSocketStream<S>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(msg) if msg.is_text() || msg.is_binary() => {
                if ws.send(msg).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}
