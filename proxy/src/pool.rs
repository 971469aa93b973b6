//! Upstream pools: the servers of one side of the split or of one named upstream, how one is
//! picked, and when one is out.
//!
//! Selection is nginx's smooth weighted round-robin, precomputed once into a schedule and walked
//! with an atomic cursor, so picking is lock- and allocation-free. A server is available when its
//! active health check says up and it is not inside a passive `fail_timeout` ban (nginx
//! `max_fails`/`fail_timeout` semantics). A pool none of whose servers is available answers
//! `None` after looking at each server once, not after walking the whole schedule.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use canaryd_config::{resolve, server_target, PoolConfig};

use crate::clock::now_ms;
use crate::tls::{client_config, UpstreamTls};

/// One upstream server.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub weight: u32,
    /// Set for a server written `https://host:port`.
    pub tls: Option<Arc<UpstreamTls>>,
    /// Active health check verdict (starts up, like nginx).
    up: AtomicBool,
    /// Passive failures in the current window.
    fails: AtomicU32,
    window_start_ms: AtomicU64,
    /// Out of rotation until this time (0 = not banned).
    down_until_ms: AtomicU64,
}

/// The servers of one pool.
#[derive(Debug)]
pub struct Pool {
    /// Its section, for logs: `backends.stable`, `upstreams.api`.
    pub section: String,
    /// Its idle connections' key in the per-worker keepalive pool (0 stable, 1 canary, 2 and
    /// up a named upstream).
    pub key: u32,
    /// Idle connections kept per worker (`keepalive`), within `[proxy] keepalive_pool`.
    pub keepalive: Option<usize>,
    pub servers: Vec<Server>,
    schedule: Vec<usize>,
    cursor: AtomicUsize,
    max_fails: u32,
    fail_timeout_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("{section}.servers[{index}]: cannot resolve {addr:?}")]
    Unresolvable {
        section: String,
        index: usize,
        addr: String,
    },
    #[error("{section}: {message}")]
    Tls { section: String, message: String },
}

// === impl Server ===

impl Server {
    /// Is the server usable now?
    pub fn available(&self, now: u64) -> bool {
        self.up.load(Ordering::Relaxed) && self.down_until_ms.load(Ordering::Relaxed) <= now
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records the active health check verdict; returns true when it changed.
    pub fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Ordering::Relaxed) != up
    }
}

// === impl Pool ===

impl Pool {
    /// The pool of `section` (`backends.stable`) under `key`.
    pub fn new(section: &str, key: u32, cfg: &PoolConfig) -> Result<Self, PoolError> {
        let mut servers = Vec::with_capacity(cfg.servers.len());
        let tls_err = |message: String| PoolError::Tls {
            section: section.to_string(),
            message,
        };
        // One client configuration (roots, session cache) for the pool's https:// servers.
        let https = cfg.servers.iter().any(|s| server_target(&s.addr).0);
        let client = https
            .then(|| client_config(cfg.ca_file.as_deref()))
            .transpose()
            .map_err(tls_err)?;
        for (index, entry) in cfg.servers.iter().enumerate() {
            let (is_tls, target) = server_target(&entry.addr);
            let addr = resolve(target).ok_or_else(|| PoolError::Unresolvable {
                section: section.to_string(),
                index,
                addr: entry.addr.clone(),
            })?;
            let tls = match (&client, is_tls) {
                (Some(client), true) => Some(Arc::new(
                    UpstreamTls::new(client.clone(), target).map_err(tls_err)?,
                )),
                _ => None,
            };
            servers.push(Server {
                addr,
                weight: entry.weight.max(1),
                tls,
                up: AtomicBool::new(true),
                fails: AtomicU32::new(0),
                window_start_ms: AtomicU64::new(0),
                down_until_ms: AtomicU64::new(0),
            });
        }
        let weights: Vec<u32> = servers.iter().map(|s| s.weight).collect();
        Ok(Self {
            section: section.to_string(),
            key,
            keepalive: cfg.keepalive,
            schedule: smooth_wrr_schedule(&weights),
            servers,
            cursor: AtomicUsize::new(0),
            max_fails: cfg.max_fails,
            fail_timeout_ms: cfg.fail_timeout.as_millis() as u64,
        })
    }

    /// Picks the next available server, or `None` when the pool has none.
    pub fn pick(&self) -> Option<usize> {
        let len = self.schedule.len();
        if len == 0 {
            return None;
        }
        let now = now_ms();
        // A pool with nothing available is the common case when one is down: answer after
        // looking at each server once, not after walking the whole schedule.
        if !self.servers.iter().any(|s| s.available(now)) {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed);
        (0..len)
            .map(|i| self.schedule[(start + i) % len])
            .find(|&s| self.servers[s].available(now))
    }

    pub fn has_available(&self) -> bool {
        let now = now_ms();
        self.servers.iter().any(|s| s.available(now))
    }

    /// A passive failure (connect error, timeout) of server `idx`. Returns true when it took the
    /// server out of rotation for `fail_timeout`.
    pub fn record_failure(&self, idx: usize) -> bool {
        if self.max_fails == 0 {
            return false;
        }
        let Some(s) = self.servers.get(idx) else {
            return false;
        };
        let now = now_ms();
        let start = s.window_start_ms.load(Ordering::Relaxed);
        let fails = if now.saturating_sub(start) > self.fail_timeout_ms {
            s.window_start_ms.store(now, Ordering::Relaxed);
            s.fails.store(1, Ordering::Relaxed);
            1
        } else {
            s.fails.fetch_add(1, Ordering::Relaxed) + 1
        };
        if fails >= self.max_fails {
            s.fails.store(0, Ordering::Relaxed);
            s.down_until_ms
                .store(now + self.fail_timeout_ms, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// nginx's smooth weighted round-robin, unrolled over one full cycle (sum of weights).
/// Weights are capped so the schedule stays small.
fn smooth_wrr_schedule(weights: &[u32]) -> Vec<usize> {
    let weights: Vec<i64> = weights
        .iter()
        .map(|&w| i64::from(w.clamp(1, 1000)))
        .collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..weights.len() {
            current[i] += weights[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use canaryd_config::ServerEntry;
    use std::time::Duration;

    fn pool(weights: &[u32], max_fails: u32) -> Pool {
        let cfg = PoolConfig {
            servers: weights
                .iter()
                .enumerate()
                .map(|(i, &w)| ServerEntry {
                    addr: format!("127.0.0.1:{}", 10_000 + i),
                    weight: w,
                })
                .collect(),
            health: None,
            max_fails,
            fail_timeout: Duration::from_secs(30),
            keepalive: None,
            ca_file: None,
        };
        Pool::new("backends.stable", 0, &cfg).unwrap()
    }

    #[test]
    fn smooth_wrr_interleaves() {
        assert_eq!(smooth_wrr_schedule(&[5, 1, 1]), [0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_wrr_schedule(&[1]), [0]);
    }

    #[test]
    fn picks_follow_weights_and_skip_unavailable() {
        let p = pool(&[3, 1], 0);
        let mut counts = [0; 2];
        for _ in 0..400 {
            counts[p.pick().unwrap()] += 1;
        }
        assert_eq!(counts, [300, 100]);
        p.servers[0].set_up(false);
        assert!((0..10).all(|_| p.pick() == Some(1)));
        p.servers[1].set_up(false);
        assert_eq!(p.pick(), None);
        assert!(!p.has_available());
    }

    #[test]
    fn passive_failures_ban_for_fail_timeout() {
        let p = pool(&[1, 1], 3);
        assert!(!p.record_failure(0));
        assert!(!p.record_failure(0));
        assert!(p.record_failure(0));
        assert!((0..10).all(|_| p.pick() == Some(1)));
        let disabled = pool(&[1], 0);
        assert!((0..10).all(|_| !disabled.record_failure(0)));
        assert_eq!(disabled.pick(), Some(0));
    }
}
