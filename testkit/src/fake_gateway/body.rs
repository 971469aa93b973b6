//! Response and request bodies for the fake gateway: the one boxed body type
//! every handler answers with, a channel-backed streaming body (SSE events
//! are flushed as they are sent), and counting a request body frame by frame
//! without buffering it.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use tokio::sync::mpsc;

/// The body type of every response.
pub type RespBody = UnsyncBoxBody<Bytes, Infallible>;

/// A body whose chunks come from a channel; it ends when every sender is
/// dropped. hyper writes (and flushes) each chunk as soon as it arrives.
pub struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    /// A sender/body pair buffering up to `capacity` chunks.
    pub fn pair(capacity: usize) -> (mpsc::Sender<Bytes>, ChannelBody) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, ChannelBody { rx })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|data| Ok(Frame::data(data))))
    }
}

/// Boxes a streaming body.
pub fn streaming(body: ChannelBody) -> RespBody {
    body.boxed_unsync()
}

/// An empty body.
pub fn empty() -> RespBody {
    Empty::new().boxed_unsync()
}

/// A response with a `text/plain` body.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<RespBody> {
    let mut resp = Response::new(Full::new(body.into()).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// A response with a JSON body.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<RespBody> {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Reads a request body to its end, frame by frame, counting data bytes.
pub async fn count_bytes(mut body: Incoming) -> Result<u64, hyper::Error> {
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            n += data.len() as u64;
        }
    }
    Ok(n)
}
