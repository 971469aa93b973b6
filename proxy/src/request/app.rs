//! One client connection: what each worker runs for every connection it accepts
//! (`listener.rs`).
//!
//! HTTP/1 is a loop on this task: wait for the next request's first bytes (holding no buffer
//! while idle: they are read into the worker's scratch buffer and copied out), read its header under `client_header_timeout`, serve it (`session.rs`), finish
//! the response, and go round again while the connection is kept alive. The wait is
//! `keepalive_timeout` between requests and `client_header_timeout` before the first one, as in
//! nginx; a header that does not complete in time closes the connection. A prior-knowledge
//! HTTP/2 (h2c) connection is recognised by its preface and each of its streams is served by
//! the same request code on a task of its own.
//!
//! On a TLS listener the app first completes the handshake (within `client_header_timeout`,
//! counted from the accept), then serves the decrypted stream the same way: HTTP/2 when ALPN
//! chose `h2`, HTTP/1 otherwise. Requests learn only that they came over TLS (`$scheme`).

use std::cell::RefCell;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::BytesMut;
use pingora_core::protocols::http::v2::server::{self as h2_server, H2Accept};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::{Digest, Stream};
use pingora_core::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use super::downstream::{self, Downstream};
use super::{h1, session};
use crate::metrics::ConnState;
use crate::plane::{DataPlane, Upstreams};
use crate::tls::Termination;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Size of the buffer a request header is read into; taken when the request's first bytes
/// arrive, released when the request is done.
const HEADER_BUF: usize = 4096;

/// The per-connection application handed to every worker's listening service.
#[derive(Debug)]
pub struct ProxyApp {
    plane: Arc<DataPlane>,
    /// Set on the TLS listeners' app: the handshake comes first.
    tls: Option<Arc<Termination>>,
}

// === impl ProxyApp ===

impl ProxyApp {
    pub fn new(plane: Arc<DataPlane>) -> Self {
        Self { plane, tls: None }
    }

    /// The app of the TLS listeners.
    pub fn tls(plane: Arc<DataPlane>, tls: Arc<Termination>) -> Self {
        Self {
            plane,
            tls: Some(tls),
        }
    }

    /// Serves an HTTP/1 connection until it is closed, not kept alive, or idle too long.
    /// `first` holds the first bytes of the first request.
    async fn serve_h1(&self, mut stream: Stream, first: BytesMut, client_ip: Option<IpAddr>) {
        let metrics = &self.plane.metrics;
        let mut served: u32 = 0;
        let mut prefix = first;
        // This connection's upstreams generation, refreshed before each request.
        let mut up = self.plane.upstreams();
        loop {
            if prefix.is_empty() {
                // Idle between requests: no buffer held (an empty remainder may still share the
                // last request's), only the socket.
                drop(std::mem::take(&mut prefix));
                let _idle = metrics.conn_state(ConnState::Idle);
                if self.plane.drain.is_draining() {
                    return;
                }
                let keepalive = up.keepalive_timeout;
                // No wait on the shutdown signal here: registering with it costs a shared lock
                // per request. On a graceful stop the process exits once in-flight requests are
                // done (see server.rs), which closes idle connections; a request that arrives
                // before then is served with `Connection: close`.
                match tokio::time::timeout(keepalive, read_first(&mut stream)).await {
                    Ok(Ok(data)) if !data.is_empty() => prefix = data,
                    _ => return,
                }
            }
            served += 1;
            self.plane.refresh_upstreams(&mut up);
            // Boxed: a request's state (sessions, buffers, timers) exists only while it runs,
            // so an idle connection's future stays small.
            let next = Box::pin(self.one_request(&up, stream, prefix, served, client_ip)).await;
            match next {
                Some((s, p)) => {
                    stream = s;
                    prefix = p;
                }
                None => return,
            }
        }
    }

    /// Reads one request header (starting with `prefix`, already read) under
    /// `client_header_timeout`, serves the request and finishes its response. Returns the
    /// connection and the bytes already read of the next request when it is kept alive.
    ///
    /// A header complete in `prefix` that canaryd's own HTTP/1 session serves (`h1/`) is
    /// parsed in place; any other request goes to pingora-core's session.
    async fn one_request(
        &self,
        up: &Upstreams,
        stream: Stream,
        prefix: BytesMut,
        served: u32,
        client_ip: Option<IpAddr>,
    ) -> Option<(Stream, BytesMut)> {
        let metrics = &self.plane.metrics;
        let reading = metrics.conn_state(ConnState::Reading);
        // `https_redirect` answers through pingora-core's session.
        let parsed = if self.tls.is_some() || !up.https_redirect {
            h1::Head::parse(prefix)
        } else {
            Err(prefix)
        };
        let mut ds = match parsed {
            Ok(head) => Downstream::H1(h1::Session::new(stream, head)),
            Err(prefix) => Downstream::Session(self.read_header(up, stream, prefix).await?),
        };
        drop(reading);
        let keep = served < up.keepalive_requests && !self.plane.drain.is_draining();
        match &mut ds {
            Downstream::Session(s) => downstream::configure(s, up, keep),
            _ if !keep => ds.close_after(),
            _ => {}
        }
        {
            let _writing = metrics.conn_state(ConnState::Writing);
            session::serve(&self.plane, up, &mut ds, client_ip, self.tls.is_some()).await;
        }
        ds.finish().await
    }

    /// Reads a request header with pingora-core's session (starting with `prefix`, already
    /// read) under `client_header_timeout`; a malformed one is answered (400, 408 …).
    async fn read_header(
        &self,
        up: &Upstreams,
        stream: Stream,
        prefix: BytesMut,
    ) -> Option<ServerSession> {
        let mut ds = ServerSession::new_http1(stream);
        ds.set_pipelined_prefix(prefix);
        ds.set_read_timeout(Some(up.client_header_timeout));
        match tokio::time::timeout(up.client_header_timeout, ds.read_request()).await {
            Err(_) => {
                tracing::debug!("client_header_timeout: closing the connection");
                None
            }
            Ok(Ok(true)) => Some(ds),
            Ok(Ok(false)) => None,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "bad request header");
                let status = super::upstream::client_status(&e);
                if status != 0 {
                    ds.set_keepalive(None);
                    let _ = ds.respond_error(status).await;
                }
                None
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
                        let tls = app.tls.is_some();
                        let mut ds = Downstream::Session(ds);
                        session::serve(&app.plane, &up, &mut ds, client_ip, tls).await;
                        let _ = ds.finish().await;
                    });
                }
                Ok(Some(H2Accept::Rejected)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    }
}

impl ProxyApp {
    /// Completes the TLS handshake of a connection accepted on a TLS listener (within
    /// `deadline`) and serves it when ALPN chose HTTP/2; returns the decrypted stream for
    /// HTTP/1. Boxed by the caller: the handshake's state and the TLS stream (over 1 KiB)
    /// stay out of every connection's future.
    async fn tls_accept(
        self: &Arc<Self>,
        tls: &Termination,
        stream: Stream,
        deadline: tokio::time::Instant,
        client_ip: Option<IpAddr>,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _reading = self.plane.metrics.conn_state(ConnState::Reading);
        let accept = Box::pin(tls.accept(stream));
        let tls = match tokio::time::timeout_at(deadline, accept).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!("TLS handshake: client_header_timeout");
                return None;
            }
        };
        if tls.alpn() == Some(b"h2") {
            drop(_reading);
            Box::pin(self.serve_h2(Box::new(tls), client_ip, shutdown)).await;
            return None;
        }
        Some(Box::new(tls))
    }

    /// Serves one accepted connection (from `listener.rs`) until it closes.
    pub async fn serve(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) {
        let metrics = &self.plane.metrics;
        let _conn = metrics.connection();
        let client_ip = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        let header_timeout = self.plane.upstreams().client_header_timeout;
        let deadline = tokio::time::Instant::now() + header_timeout;
        if let Some(tls) = &self.tls {
            let accepted = Box::pin(self.tls_accept(tls, stream, deadline, client_ip, shutdown));
            match accepted.await {
                Some(decrypted) => stream = decrypted,
                None => return,
            }
        }
        // The first request: its first bytes, within client_header_timeout.
        let first = {
            let _reading = metrics.conn_state(ConnState::Reading);
            let read = async {
                let mut buf = read_first(&mut stream).await?;
                // Enough to tell a prior-knowledge HTTP/2 preface from an HTTP/1 request.
                while self.tls.is_none()
                    && !buf.is_empty()
                    && buf.len() < H2_PREFACE.len()
                    && H2_PREFACE.starts_with(&buf)
                {
                    if stream.read_buf(&mut buf).await? == 0 {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(buf)
            };
            match tokio::time::timeout_at(deadline, read).await {
                Ok(Ok(buf)) if !buf.is_empty() => buf,
                _ => return,
            }
        };
        if self.tls.is_none() && first.starts_with(H2_PREFACE) {
            // The h2 server session reads the preface itself: hand the bytes back.
            let Ok(mut l4) = stream.into_any().downcast::<L4Stream>() else {
                return;
            };
            l4.rewind(&first);
            drop(first);
            // Boxed: rare, and its futures are large.
            Box::pin(self.serve_h2(l4, client_ip, shutdown)).await;
        } else {
            self.serve_h1(stream, first, client_ip).await;
        }
    }
}

thread_local! {
    /// Each worker's buffer for the first read of a request; its bytes are copied out.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; HEADER_BUF].into_boxed_slice());
}

/// Waits for the next request's first bytes without holding a buffer while the connection is
/// idle: each poll reads into the worker's scratch buffer, and only bytes that arrived are
/// copied into a request buffer of their own. Empty: the client closed the connection.
async fn read_first(stream: &mut Stream) -> std::io::Result<BytesMut> {
    std::future::poll_fn(|cx| {
        SCRATCH.with(|scratch| {
            let mut poll = |bytes: &mut [u8]| {
                let mut buf = ReadBuf::new(bytes);
                match Pin::new(&mut *stream).poll_read(cx, &mut buf) {
                    Poll::Ready(Ok(())) => {
                        let mut out = BytesMut::with_capacity(HEADER_BUF);
                        out.extend_from_slice(buf.filled());
                        Poll::Ready(Ok(out))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            };
            match scratch.try_borrow_mut() {
                Ok(mut scratch) => poll(&mut scratch[..]),
                // Not reached (nothing polls two reads at once on one thread); stay correct.
                Err(_) => poll(&mut vec![0u8; HEADER_BUF]),
            }
        })
    })
    .await
}
