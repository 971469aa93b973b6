//! A fleet sharing one rollout through etcd (`[cluster] store = "etcd"`).
//!
//! Every member runs the same controller; the cluster layer decides which one acts and carries
//! the split to the others. Background tasks talk to etcd and hand the loop their results — a
//! [`Leadership`] it reads without waiting, shared states and write outcomes as [`Event`]s,
//! fleet reports in [`Fleet`]. The leader's fenced writes go through one writer task, in order:
//! a move that is in force already (towards stable, the same split, the periodic save of the
//! held time) is queued and the loop goes on, its outcome arriving as [`Event::Written`]; only
//! a move towards the canary waits for etcd's answer, bounded by `write_timeout`, because it
//! takes effect only once etcd has it — a slow etcd makes it late or not applied, never a
//! rollback late.
//!
//! - `election.rs`: the member's lease (kept alive every `lease_ttl / 4`) and the leader key
//!   (`PREFIX/leader`, created in a txn under the lease). The leader acts only until two thirds
//!   of its TTL after the last renewal it saw, so it stops before etcd can expire it; SIGTERM
//!   resigns (deletes the key, revokes the lease) and a follower takes over within 250 ms.
//! - `store.rs`: the keys, the shared state document ([`SharedState`]: rollout state, split,
//!   epoch, leader), the writer task and the fenced write — a txn that puts it only while the
//!   leader key still has the create revision this leader made it with, so a deposed leader's
//!   write fails inside etcd.
//! - `watch.rs`: every member reads the state, then watches it from the revision read + 1
//!   (compacted or broken: read again, watch again) and sends each version to the loop.
//! - `reports.rs`: every second each member publishes its window counters and histogram
//!   buckets per variant under its lease (`PREFIX/members/NAME`) and reads everyone's; the
//!   leader's local rules judge their sum over a quorum of live members on the current epoch.

mod election;
mod reports;
mod store;
mod watch;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use canaryd_config::ClusterConfig;
use canaryd_proxy::Metrics;
use tokio::sync::{mpsc, watch as tokio_watch};
use tokio::time::Instant;

use crate::api::{ClusterRole, ClusterStatus, MemberStatus};
use crate::rollout::RolloutState;

pub use reports::Fleet;
pub(crate) use reports::MemberState;
pub use store::{SharedState, WriteError};

/// Who this member is and how it reaches etcd (from `[cluster]`, with secrets read).
#[derive(Clone)]
pub struct ClusterOptions {
    pub endpoints: Vec<String>,
    pub prefix: String,
    /// This member's name (`[cluster] name`, or the hostname).
    pub name: String,
    /// Where this member's admin API listens: followers answer 421 naming the leader's.
    pub admin: String,
    pub lease_ttl: Duration,
    /// PEM: CA certificates, client certificate, client key.
    pub ca_pem: Option<Vec<u8>>,
    pub identity_pem: Option<(Vec<u8>, Vec<u8>)>,
    pub user: Option<(String, String)>,
}

impl std::fmt::Debug for ClusterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterOptions")
            .field("endpoints", &self.endpoints)
            .field("prefix", &self.prefix)
            .field("name", &self.name)
            .field("lease_ttl", &self.lease_ttl)
            .finish_non_exhaustive()
    }
}

impl ClusterOptions {
    /// The options of `[cluster]`, secrets and certificates read; `admin` is `[admin] listen`.
    pub fn from_config(c: &ClusterConfig, admin: &str) -> Result<Self, ClusterError> {
        let read = |key: &str, p: &std::path::Path| {
            std::fs::read(p).map_err(|e| ClusterError::File {
                key: format!("cluster.{key}"),
                file: p.display().to_string(),
                error: e.to_string(),
            })
        };
        let ca_pem = c
            .ca_file
            .as_deref()
            .map(|p| read("ca_file", p))
            .transpose()?;
        let identity_pem = match (&c.cert, &c.key) {
            (Some(cert), Some(key)) => Some((read("cert", cert)?, read("key", key)?)),
            _ => None,
        };
        let user = match (&c.username, &c.password_file) {
            (Some(u), Some(p)) => {
                let password = crate::secret::read_secret(p).map_err(|e| ClusterError::File {
                    key: "cluster.password_file".into(),
                    file: p.display().to_string(),
                    error: e.to_string(),
                })?;
                let password = String::from_utf8_lossy(password.expose())
                    .trim()
                    .to_string();
                Some((u.clone(), password))
            }
            _ => None,
        };
        let name = if c.name.is_empty() {
            hostname().ok_or(ClusterError::NoName)?
        } else {
            c.name.clone()
        };
        Ok(Self {
            endpoints: c.endpoints.clone(),
            prefix: c.prefix.clone(),
            name,
            admin: admin.to_string(),
            lease_ttl: c.lease_ttl,
            ca_pem,
            identity_pem,
            user,
        })
    }

    /// The leader's renew deadline: it acts no longer than this after the last renewal etcd
    /// confirmed (two thirds of the TTL, as Kubernetes' 10 s of 15 s).
    pub fn renew_deadline(&self) -> Duration {
        self.lease_ttl * 2 / 3
    }

    /// Bound on one etcd call (a hanging etcd is an error after this).
    pub fn call_timeout(&self) -> Duration {
        (self.lease_ttl / 4).clamp(Duration::from_millis(300), Duration::from_secs(2))
    }
}

/// Why the cluster layer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("{key}: cannot read {file}: {error}")]
    File {
        key: String,
        file: String,
        error: String,
    },
    #[error(
        "cluster.name is not set and the machine's hostname cannot be read; set [cluster] name"
    )]
    NoName,
    #[error("cluster.endpoints: cannot build an etcd client: {0}")]
    Client(String),
}

/// This machine's hostname (the default member name).
fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// Whether this member may act, and with which fence.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Leadership {
    /// The create revision of the leader key this member made: every write compares it.
    pub fence: Option<i64>,
    /// The leader acts until then (the last confirmed renewal + the renew deadline).
    pub until: Option<Instant>,
}

impl Leadership {
    /// Leader, and still inside the renew deadline.
    pub fn acting(&self, now: Instant) -> Option<i64> {
        match (self.fence, self.until) {
            (Some(f), Some(u)) if now < u => Some(f),
            _ => None,
        }
    }
}

/// What the background tasks tell the control loop.
#[derive(Debug)]
pub enum Event {
    /// The shared rollout state, as read or watched (newest last).
    Shared(SharedState),
    /// The outcome of a write queued with [`Cluster::write_later`]: the epoch written.
    Written(Result<u64, WriteError>),
}

/// The leader as the leader key names it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LeaderInfo {
    pub name: String,
    pub admin: String,
}

/// State the tasks share (cheap reads for status, metrics and the loop).
pub(crate) struct Inner {
    pub opts: ClusterOptions,
    pub client: tokio_watch::Receiver<Option<etcd_client::Client>>,
    /// The member's lease, once granted (reports are put under it).
    pub lease: tokio_watch::Sender<Option<i64>>,
    pub leadership: tokio_watch::Sender<Leadership>,
    /// The last etcd call of the election succeeded.
    pub connected: AtomicBool,
    /// Changes each time etcd is reached again after a failure (the watch reads again).
    pub reconnects: tokio_watch::Sender<u64>,
    pub leader: ArcSwap<Option<LeaderInfo>>,
    pub fleet: Arc<Fleet>,
    /// The last epoch this leader wrote (a new split: +1).
    pub epoch: AtomicU64,
    /// The shared state last seen (the watch) or written (the leader), with its revision.
    pub last_shared: Mutex<Option<(i64, SharedState)>>,
}

impl Inner {
    pub fn keys(&self) -> store::Keys {
        store::Keys::new(&self.opts.prefix)
    }

    pub fn set_connected(&self, ok: bool) {
        let was = self.connected.swap(ok, Ordering::Relaxed);
        if ok && !was {
            self.reconnects.send_modify(|n| *n += 1);
            tracing::info!("etcd reachable again");
        } else if !ok && was {
            tracing::warn!("etcd unreachable: this member keeps its split and does not act");
        }
    }

    /// Keeps `s`, stored at `revision`, as the newest shared state; `false` when it is not
    /// newer than the one known (a leader's own write coming back, an older version).
    pub fn seen(&self, revision: i64, s: &SharedState) -> bool {
        let Ok(mut last) = self.last_shared.lock() else {
            return true;
        };
        if last.as_ref().is_some_and(|(r, _)| *r >= revision) {
            return false;
        }
        *last = Some((revision, s.clone()));
        true
    }

    /// The client once built (tasks wait for it).
    pub async fn client(&self) -> etcd_client::Client {
        let mut rx = self.client.clone();
        loop {
            if let Some(c) = rx.borrow_and_update().clone() {
                return c;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

/// The cluster layer of one member: its background tasks and what they share.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
    resign_tx: mpsc::Sender<election::Order>,
    writes: mpsc::UnboundedSender<store::Write>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

/// What the control loop holds: the cluster, its events and the member state it publishes.
pub struct ClusterLink {
    pub(crate) cluster: Cluster,
    pub(crate) events: mpsc::UnboundedReceiver<Event>,
    pub(crate) leadership: tokio_watch::Receiver<Leadership>,
    pub(crate) member: tokio_watch::Sender<MemberState>,
}

impl ClusterLink {
    /// The cluster (status, metrics, the fleet's reports) for the daemon to share.
    pub fn cluster(&self) -> Cluster {
        self.cluster.clone()
    }
}

impl std::fmt::Debug for ClusterLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterLink").finish_non_exhaustive()
    }
}

impl Cluster {
    /// Starts the member's tasks on the current runtime (the client connects, the lease is
    /// granted, the election runs, the state is watched, reports go out) and returns the
    /// link for the controller. Nothing waits for etcd here.
    pub fn start(opts: ClusterOptions, metrics: Arc<Metrics>) -> ClusterLink {
        let (client_tx, client_rx) = tokio_watch::channel(None);
        let (lease, _) = tokio_watch::channel(None);
        let (leadership, leadership_rx) = tokio_watch::channel(Leadership::default());
        let (reconnects, _) = tokio_watch::channel(0);
        let (member, member_rx) = tokio_watch::channel(MemberState::default());
        let (events_tx, events) = mpsc::unbounded_channel();
        let (resign_tx, resign_rx) = mpsc::channel(1);
        let inner = Arc::new(Inner {
            opts,
            client: client_rx,
            lease,
            leadership,
            connected: AtomicBool::new(false),
            reconnects,
            leader: ArcSwap::from_pointee(None),
            fleet: Arc::new(Fleet::default()),
            epoch: AtomicU64::new(0),
            last_shared: Mutex::new(None),
        });
        tokio::spawn(election::connect(inner.clone(), client_tx));
        tokio::spawn(election::run(inner.clone(), resign_rx));
        let (writes, writes_rx) = mpsc::unbounded_channel();
        tokio::spawn(store::writer(inner.clone(), writes_rx, events_tx.clone()));
        tokio::spawn(watch::run(inner.clone(), events_tx));
        tokio::spawn(reports::run(inner.clone(), metrics, member_rx));
        ClusterLink {
            cluster: Cluster {
                inner,
                resign_tx,
                writes,
            },
            events,
            leadership: leadership_rx,
            member,
        }
    }

    pub fn name(&self) -> &str {
        &self.inner.opts.name
    }

    /// The fleet's reports (the leader's local rules judge their sum).
    pub fn fleet(&self) -> Arc<Fleet> {
        self.inner.fleet.clone()
    }

    pub fn connected(&self) -> bool {
        self.inner.connected.load(Ordering::Relaxed)
    }

    /// The leader as last read from etcd.
    pub fn leader(&self) -> Option<LeaderInfo> {
        self.inner.leader.load().as_ref().clone()
    }

    /// The shared state last seen or written.
    pub fn last_shared(&self) -> Option<SharedState> {
        self.inner
            .last_shared
            .lock()
            .ok()
            .and_then(|s| s.as_ref().map(|(_, s)| s.clone()))
    }

    pub fn write_timeout(&self) -> Duration {
        self.inner.opts.call_timeout()
    }

    /// Writes `state` as the leader with `fence` and waits for etcd's answer, at most
    /// [`write_timeout`](Self::write_timeout): for moves towards the canary, which take effect
    /// only once etcd has them. Writes go out one at a time, in order (`store::writer`), so a
    /// late one is overwritten by the next. A new split is a new epoch.
    pub async fn write(&self, fence: i64, state: &RolloutState) -> Result<u64, WriteError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let write = store::Write {
            fence,
            state: state.clone(),
            reply: Some(tx),
        };
        if self.writes.send(write).is_err() {
            return Err(WriteError::Etcd("the writer stopped".into()));
        }
        let deadline = self.write_timeout();
        match tokio::time::timeout(deadline, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(WriteError::Etcd("the writer stopped".into())),
            Err(_) => Err(WriteError::Etcd(format!(
                "no answer from etcd within {deadline:?}"
            ))),
        }
    }

    /// Queues the write of `state` and returns at once: its outcome comes back as an
    /// [`Event::Written`]. For moves that are in force already (towards stable, the same split).
    pub fn write_later(&self, fence: i64, state: &RolloutState) {
        let _ = self.writes.send(store::Write {
            fence,
            state: state.clone(),
            reply: None,
        });
    }

    /// Resigns leadership and revokes the lease (the controller stopped), waiting at most a
    /// second; the member campaigns no more until [`rejoin`](Self::rejoin).
    pub async fn resign(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self
            .resign_tx
            .send(election::Order::Resign(tx))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
    }

    /// The controller runs (again, after a failed upgrade stopped it): campaign again.
    pub fn rejoin(&self) {
        let _ = self.resign_tx.try_send(election::Order::Rejoin);
    }

    /// The `cluster` part of the status document.
    pub fn status(&self, now: Instant) -> ClusterStatus {
        let me = &self.inner.opts.name;
        let leader = self.leader();
        let acting = self.inner.leadership.borrow().acting(now).is_some();
        let mut members: Vec<MemberStatus> = self
            .inner
            .fleet
            .reports()
            .iter()
            .map(|r| MemberStatus {
                name: r.name.clone(),
                connected: r.connected,
                applied_percent: r.applied_percent,
                epoch: r.epoch,
                last_seen: crate::control::rfc3339(r.ts_ms),
            })
            .collect();
        if !members.iter().any(|m| &m.name == me) {
            let mine = self.inner.fleet.mine();
            members.push(MemberStatus {
                name: me.clone(),
                connected: self.connected(),
                applied_percent: mine.applied_percent,
                epoch: mine.epoch,
                last_seen: crate::control::rfc3339(mine.ts_ms),
            });
        }
        for m in members.iter_mut().filter(|m| &m.name == me) {
            m.connected = self.connected();
        }
        members.sort_by(|a, b| a.name.cmp(&b.name));
        ClusterStatus {
            connected: self.connected(),
            leader: leader.as_ref().map(|l| l.name.clone()),
            leader_admin: leader.map(|l| l.admin),
            members,
            name: me.clone(),
            role: if acting {
                ClusterRole::Leader
            } else {
                ClusterRole::Follower
            },
        }
    }

    /// `canaryd_cluster_leader`, `canaryd_cluster_connected`, `canaryd_cluster_members`.
    pub fn render(&self, out: &mut String) {
        let leader = self
            .inner
            .leadership
            .borrow()
            .acting(Instant::now())
            .is_some();
        let _ = writeln!(
            out,
            "# HELP canaryd_cluster_leader 1 while this member is the fleet's acting leader.\n# TYPE canaryd_cluster_leader gauge\ncanaryd_cluster_leader {}",
            u8::from(leader)
        );
        let _ = writeln!(
            out,
            "# HELP canaryd_cluster_connected 1 while this member reaches etcd.\n# TYPE canaryd_cluster_connected gauge\ncanaryd_cluster_connected {}",
            u8::from(self.connected())
        );
        let _ = writeln!(
            out,
            "# HELP canaryd_cluster_members Live members of the fleet (leased reports in etcd).\n# TYPE canaryd_cluster_members gauge\ncanaryd_cluster_members {}",
            self.inner.fleet.reports().len()
        );
    }
}

#[cfg(test)]
mod tests;
