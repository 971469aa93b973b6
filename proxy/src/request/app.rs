//! One client connection: the pingora-core `ServerApp` each worker runs for every connection it
//! accepts.
//!
//! HTTP/1 is a loop on this task: wait for the next request's first byte (holding no buffer
//! while idle), read its header under `client_header_timeout`, serve it (`session.rs`), finish
//! the response, and go round again while the connection is kept alive. The wait is
//! `keepalive_timeout` between requests and `client_header_timeout` before the first one, as in
//! nginx; a header that does not complete in time closes the connection. A prior-knowledge
//! HTTP/2 (h2c) connection is recognised by its preface and each of its streams is served by
//! the same request code on a task of its own.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::http::v2::server::{self as h2_server, H2Accept};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::{Digest, Stream};
use pingora_core::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::session;
use crate::metrics::ConnState;
use crate::plane::DataPlane;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Size of the buffer a request header is read into; taken when the request's first byte
/// arrives, released when the request is done.
const HEADER_BUF: usize = 4096;

/// The per-connection application handed to every worker's listening service.
#[derive(Debug)]
pub struct ProxyApp {
    plane: Arc<DataPlane>,
}

// === impl ProxyApp ===

impl ProxyApp {
    pub fn new(plane: Arc<DataPlane>) -> Self {
        Self { plane }
    }

    /// Serves an HTTP/1 connection until it is closed, not kept alive, or idle too long.
    async fn serve_h1(
        &self,
        mut stream: Stream,
        mut first: BytesMut,
        client_ip: Option<IpAddr>,
        shutdown: &ShutdownWatch,
    ) {
        let metrics = &self.plane.metrics;
        let mut served: u32 = 0;
        let mut prefix = Some(std::mem::take(&mut first));
        loop {
            let up = self.plane.upstreams();
            if prefix.is_none() {
                // Idle between requests: no buffer held, only the socket.
                let _idle = metrics.conn_state(ConnState::Idle);
                if self.plane.drain.is_draining() || *shutdown.borrow() {
                    return;
                }
                let mut stop = shutdown.clone();
                tokio::select! {
                    ready = tokio::time::timeout(up.keepalive_timeout, wait_readable(&mut stream)) => {
                        match ready {
                            Ok(Ok(())) => {}
                            Ok(Err(_)) | Err(_) => return,
                        }
                    }
                    _ = stop.changed() => return,
                }
            }
            let _reading = metrics.conn_state(ConnState::Reading);
            let mut ds = ServerSession::new_http1(stream);
            if let Some(p) = prefix.take().filter(|p| !p.is_empty()) {
                ds.set_pipelined_prefix(p);
            }
            ds.set_read_timeout(Some(up.client_header_timeout));
            match tokio::time::timeout(up.client_header_timeout, ds.read_request()).await {
                Err(_) => {
                    tracing::debug!("client_header_timeout: closing the connection");
                    return;
                }
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => return,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "bad request header");
                    let status = super::upstream::client_status(&e);
                    if status != 0 {
                        ds.set_keepalive(None);
                        let _ = ds.respond_error(status).await;
                    }
                    return;
                }
            }
            drop(_reading);
            served += 1;
            let keep = ds.get_keepalive().is_some()
                && served < up.keepalive_requests
                && !self.plane.drain.is_draining();
            if keep {
                ds.set_keepalive(Some(up.keepalive_timeout.as_secs().max(1)));
            } else {
                ds.set_keepalive(None);
            }
            ds.set_read_timeout(Some(up.client_timeout));
            ds.set_write_timeout(Some(up.client_timeout));
            {
                let _writing = metrics.conn_state(ConnState::Writing);
                // Boxed: the request's state is only held while a request runs, so an idle
                // connection's future stays small.
                Box::pin(session::serve(&self.plane, &up, &mut ds, client_ip)).await;
            }
            match ds.finish().await {
                Ok(Some(reusable)) => {
                    let (s, p) = reusable.into_parts();
                    stream = s;
                    prefix = p;
                }
                _ => return,
            }
        }
    }

    /// Serves a prior-knowledge HTTP/2 connection: one task per stream.
    async fn serve_h2(
        self: &Arc<Self>,
        stream: Stream,
        client_ip: Option<IpAddr>,
        shutdown: &ShutdownWatch,
    ) {
        let digest = Arc::new(Digest {
            ssl_digest: stream.get_ssl_digest(),
            timing_digest: stream.get_timing_digest(),
            proxy_digest: stream.get_proxy_digest(),
            socket_digest: stream.get_socket_digest(),
        });
        let mut conn = match h2_server::handshake(stream, None).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "h2 handshake failed");
                return;
            }
        };
        let mut stop = shutdown.clone();
        let mut stopping = *stop.borrow();
        loop {
            let accepted = if stopping {
                h2_server::HttpSession::from_h2_conn(&mut conn, digest.clone()).await
            } else {
                tokio::select! {
                    a = h2_server::HttpSession::from_h2_conn(&mut conn, digest.clone()) => a,
                    _ = stop.changed() => {
                        // A graceful stop: GOAWAY, let the open streams finish.
                        conn.graceful_shutdown();
                        stopping = true;
                        continue;
                    }
                }
            };
            match accepted {
                Ok(Some(H2Accept::Session(h2))) => {
                    let app = self.clone();
                    tokio::spawn(async move {
                        let up = app.plane.upstreams();
                        let mut ds = ServerSession::new_http2(h2);
                        ds.set_write_timeout(Some(up.client_timeout));
                        session::serve(&app.plane, &up, &mut ds, client_ip).await;
                        let _ = ds.finish().await;
                    });
                }
                Ok(Some(H2Accept::Rejected)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    }
}

#[async_trait]
impl ServerApp for ProxyApp {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let metrics = &self.plane.metrics;
        let _conn = metrics.connection();
        let client_ip = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let header_timeout = self.plane.upstreams().client_header_timeout;
        // The first request: its first bytes, within client_header_timeout.
        let first = {
            let _reading = metrics.conn_state(ConnState::Reading);
            let read = async {
                wait_readable(&mut stream).await?;
                let mut buf = BytesMut::with_capacity(HEADER_BUF);
                while buf.len() < H2_PREFACE.len() {
                    let n = stream.read_buf(&mut buf).await?;
                    if n == 0 || !H2_PREFACE.starts_with(&buf) {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(buf)
            };
            match tokio::time::timeout(header_timeout, read).await {
                Ok(Ok(buf)) if !buf.is_empty() => buf,
                _ => return None,
            }
        };
        if first.starts_with(H2_PREFACE) {
            // The h2 server session reads the preface itself: hand the bytes back.
            let Ok(mut l4) = stream.into_any().downcast::<L4Stream>() else {
                return None;
            };
            l4.rewind(&first);
            drop(first);
            self.serve_h2(l4, client_ip, shutdown).await;
        } else {
            self.serve_h1(stream, first, client_ip, shutdown).await;
        }
        None
    }
}

/// Waits until `stream` is readable without reading: a read into an empty buffer completes
/// when data (or the end) is there, and takes no memory while the connection is idle.
async fn wait_readable(stream: &mut Stream) -> std::io::Result<()> {
    std::future::poll_fn(|cx| {
        let mut empty = [0u8; 0];
        let mut buf = ReadBuf::new(&mut empty);
        Pin::new(&mut *stream).poll_read(cx, &mut buf)
    })
    .await
}
