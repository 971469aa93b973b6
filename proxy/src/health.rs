//! Active HTTP health checks: one task per server that asks `GET <path>` every `interval` and
//! flips the server's verdict after `fails` consecutive failures or `passes` consecutive
//! successes. A 2xx or 3xx status within `timeout` is a success. An `https://` server is
//! asked over TLS, verified as requests are. Runs on the control runtime,
//! never on the proxy's worker threads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use canaryd_config::HealthConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::pool::Pool;
use crate::tls::UpstreamTls;

/// Spawns a checker per server of `pool` (if the pool has a `health` section) on the current
/// tokio runtime. Tasks end when `shutdown` turns true.
pub fn spawn(pool: Arc<Pool>, cfg: Option<HealthConfig>, shutdown: watch::Receiver<bool>) {
    let Some(cfg) = cfg else {
        return;
    };
    for idx in 0..pool.servers.len() {
        let pool = pool.clone();
        let cfg = cfg.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut streak: (bool, u32) = (true, 0);
            let mut tick = tokio::time::interval(cfg.interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                let server = &pool.servers[idx];
                let result = match &server.tls {
                    Some(tls) => probe_tls(server.addr, tls, &cfg.path, cfg.timeout).await,
                    None => probe(server.addr, &cfg.path, cfg.timeout).await,
                };
                let ok = result.is_ok();
                streak = if streak.0 == ok {
                    (ok, streak.1 + 1)
                } else {
                    (ok, 1)
                };
                let need = if ok { cfg.passes } else { cfg.fails };
                if streak.1 >= need && server.is_up() != ok && server.set_up(ok) {
                    match &result {
                        Ok(status) => tracing::info!(
                            pool = %pool.section, server = %server.addr, status,
                            "backend healthy again"
                        ),
                        Err(reason) => tracing::warn!(
                            pool = %pool.section, server = %server.addr, %reason,
                            "backend marked down by health check"
                        ),
                    }
                }
            }
        });
    }
}

/// One health request; `Ok(status)` for 2xx/3xx, `Err(reason)` otherwise.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    let attempt = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        ask(stream, addr, path).await
    };
    verdict(tokio::time::timeout(timeout, attempt).await, timeout)
}

/// [`probe`] to an `https://` server: the same request after the TLS handshake.
async fn probe_tls(
    addr: SocketAddr,
    tls: &UpstreamTls,
    path: &str,
    timeout: Duration,
) -> Result<u16, String> {
    let attempt = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let stream = tls.wrap(tcp).await.map_err(|e| format!("TLS: {e}"))?;
        ask(stream, addr, path).await
    };
    verdict(tokio::time::timeout(timeout, attempt).await, timeout)
}

/// `GET path` on a connected stream; the status of the answer.
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    addr: SocketAddr,
    path: &str,
) -> Result<u16, String> {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: canaryd-health\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let r = stream
            .read(&mut buf[n..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        if r == 0 {
            break;
        }
        n += r;
    }
    parse_status(&buf[..n]).ok_or_else(|| "not an HTTP response".to_string())
}

fn verdict(
    result: Result<Result<u16, String>, tokio::time::error::Elapsed>,
    timeout: Duration,
) -> Result<u16, String> {
    match result {
        Err(_) => Err(format!("timed out after {timeout:?}")),
        Ok(Err(e)) => Err(e),
        Ok(Ok(status)) if (200..400).contains(&status) => Ok(status),
        Ok(Ok(status)) => Err(format!("status {status}")),
    }
}

fn parse_status(head: &[u8]) -> Option<u16> {
    let rest = head.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    async fn server(response: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(response).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn probe_outcomes() {
        let ok = server(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await;
        assert_eq!(probe(ok, "/health", Duration::from_secs(1)).await, Ok(200));
        let bad = server(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").await;
        assert!(probe(bad, "/health", Duration::from_secs(1)).await.is_err());
        let garbage = server(b"hello").await;
        assert!(probe(garbage, "/health", Duration::from_secs(1))
            .await
            .is_err());
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(probe(closed, "/health", Duration::from_secs(1))
            .await
            .is_err());
    }
}
