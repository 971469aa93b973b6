//! The member's lease and the election.
//!
//! One task per member: it grants a lease of `lease_ttl`, renews it every `lease_ttl / 4`, and
//! every 250 ms runs one txn on `PREFIX/leader` — "if the key does not exist, create it under
//! my lease, else read it". Creating it makes this member the leader with a fence (the key's
//! create revision); reading it tells a follower who leads (and a leader whether the key is
//! still its own). A leader acts only while [`Leadership::until`] — the send time of the last
//! renewal etcd confirmed plus two thirds of the TTL — lies ahead: etcd expires the lease no
//! earlier than a full TTL after that renewal arrived, so the leader has stopped acting before
//! anyone else can be elected. A newly elected member reads the shared state before it acts,
//! so it continues from the newest one even when its watch is behind. A lease etcd no longer
//! knows (expired while cut off) is given up and a new one granted. On SIGTERM the leader deletes the key (guarded by its fence) and
//! revokes its lease: a follower wins at its next attempt, within 250 ms.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, Identity, PutOptions, TlsOptions, Txn,
    TxnOp, TxnOpResponse,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{timeout, Instant, MissedTickBehavior};

use super::{Inner, LeaderInfo, Leadership};

/// How often a member tries to become (or checks that it still is) the leader.
const CAMPAIGN_EVERY: Duration = Duration::from_millis(250);
/// Pause before retrying after etcd failed.
const RETRY: Duration = Duration::from_millis(250);

/// Builds the client (retried: with authentication it must reach etcd to get a token).
pub(super) async fn connect(inner: Arc<Inner>, tx: watch::Sender<Option<Client>>) {
    let o = &inner.opts;
    let t = o.call_timeout();
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(t)
        .with_timeout(t)
        .with_keep_alive(t, t)
        .with_keep_alive_while_idle(true);
    if o.ca_pem.is_some() || o.identity_pem.is_some() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &o.ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &o.identity_pem {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        opts = opts.with_tls(tls);
    }
    if let Some((user, password)) = &o.user {
        opts = opts
            .with_user(user.clone(), password.clone())
            .with_auto_token_refresh(true);
    }
    loop {
        match Client::connect(&o.endpoints, Some(opts.clone())).await {
            Ok(c) => {
                let _ = tx.send(Some(c));
                return;
            }
            Err(e) => {
                inner.set_connected(false);
                tracing::warn!(error = %e, "cannot connect to etcd; retrying");
                tokio::time::sleep(RETRY * 4).await;
            }
        }
    }
}

/// What the controller asks of the election task.
#[derive(Debug)]
pub(super) enum Order {
    /// Step down and revoke the lease (the controller stopped: SIGTERM, or the old side of an
    /// upgrade); answered once done. The member campaigns no more until [`Order::Rejoin`].
    Resign(oneshot::Sender<()>),
    /// The controller runs (again): campaign. Nothing to do unless resigned.
    Rejoin,
}

/// The election task: lease, renewals, campaign; resigns when asked (the controller asks once
/// it has written its last state at the stop: [`super::Cluster::resign`]) and campaigns again
/// when its controller runs again ([`super::Cluster::rejoin`]: an upgrade that failed).
pub(super) async fn run(inner: Arc<Inner>, mut resign: mpsc::Receiver<Order>) {
    let mut client = inner.client().await;
    let ttl = inner.opts.lease_ttl;
    let t = inner.opts.call_timeout();
    loop {
        // A lease.
        let asked = Instant::now();
        let lease = match timeout(t, client.lease_grant(ttl.as_secs() as i64, None)).await {
            Ok(Ok(l)) => l.id(),
            other => {
                inner.set_connected(false);
                tracing::debug!(error = ?other.err(), "lease grant failed");
                if pause_or_resign(&mut resign).await && !resigned(&mut resign).await {
                    return;
                }
                continue;
            }
        };
        inner.set_connected(true);
        let _ = inner.lease.send_replace(Some(lease));
        let mut renewed = asked;
        let mut fence: Option<i64> = None;
        let mut renew = tokio::time::interval(ttl / 4);
        renew.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut campaign = tokio::time::interval(CAMPAIGN_EVERY);
        campaign.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let keeper = timeout(t, client.lease_keep_alive(lease)).await;
        let Ok(Ok((mut keeper, mut stream))) = keeper else {
            inner.set_connected(false);
            continue;
        };
        let lost = loop {
            tokio::select! {
                _ = renew.tick() => {
                    let sent = Instant::now();
                    let answer = timeout(t, async {
                        keeper.keep_alive().await?;
                        stream.message().await
                    })
                    .await;
                    match answer {
                        Ok(Ok(Some(r))) if r.ttl() > 0 => {
                            renewed = sent;
                            inner.set_connected(true);
                        }
                        Ok(Ok(Some(_))) => break "the lease expired in etcd",
                        _ => {
                            inner.set_connected(false);
                            if sent.saturating_duration_since(renewed) >= ttl {
                                break "no renewal for a whole lease_ttl";
                            }
                            // The stream may be broken: a new one for the next renewal.
                            if let Ok(Ok((k, s))) = timeout(t, client.lease_keep_alive(lease)).await {
                                (keeper, stream) = (k, s);
                            }
                        }
                    }
                }
                _ = campaign.tick() => {
                    match timeout(t, campaign_once(&inner, &mut client, lease)).await {
                        // Newly elected: the shared state is read first, so the new leader
                        // continues from the newest one even when its watch is behind (it
                        // was cut off until just now); until that read succeeds it does not act.
                        Ok(Ok(Some(_))) if fence.is_none() && !read_state(&inner, &mut client).await => {}
                        Ok(Ok(f)) => {
                            if f != fence {
                                match f {
                                    Some(rev) => tracing::info!(member = %inner.opts.name, fence = rev, "elected leader"),
                                    None if fence.is_some() => tracing::warn!(member = %inner.opts.name, "no longer the leader"),
                                    None => {}
                                }
                            }
                            fence = f;
                        }
                        _ => inner.set_connected(false),
                    }
                }
                Some(order) = resign.recv() => {
                    let Order::Resign(done) = order else { continue };
                    step_down(&inner, &mut client, fence, lease).await;
                    let _ = inner.lease.send_replace(None);
                    let _ = done.send(());
                    if !resigned(&mut resign).await {
                        return;
                    }
                    break "resigned, and rejoining";
                }
            }
            publish(&inner, fence, renewed);
        };
        tracing::warn!(member = %inner.opts.name, reason = lost, "lease lost; granting a new one");
        let _ = inner.lease.send_replace(None);
        publish(&inner, None, renewed);
    }
}

/// Publishes whether this member acts, and until when.
fn publish(inner: &Inner, fence: Option<i64>, renewed: Instant) {
    let l = Leadership {
        fence,
        until: fence.map(|_| renewed + inner.opts.renew_deadline()),
    };
    inner.leadership.send_if_modified(|cur| {
        let changed = *cur != l;
        *cur = l;
        changed
    });
}

/// One round: create the leader key under `lease` if it is free, else read it. Answers this
/// member's fence (the key's create revision) when the key is its own.
async fn campaign_once(
    inner: &Inner,
    client: &mut Client,
    lease: i64,
) -> Result<Option<i64>, etcd_client::Error> {
    let key = inner.keys().leader;
    let me = LeaderInfo {
        name: inner.opts.name.clone(),
        admin: inner.opts.admin.clone(),
    };
    let value = serde_json::to_vec(&me).unwrap_or_default();
    let txn = Txn::new()
        .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key.as_str(),
            value,
            Some(PutOptions::new().with_lease(lease)),
        )])
        .or_else([TxnOp::get(key.as_str(), None)]);
    let resp = client.txn(txn).await?;
    inner.set_connected(true);
    if resp.succeeded() {
        inner.leader.store(Arc::new(Some(me)));
        return Ok(resp.header().map(|h| h.revision()));
    }
    for op in resp.op_responses() {
        if let TxnOpResponse::Get(g) = op {
            if let Some(kv) = g.kvs().first() {
                let info: Option<LeaderInfo> = serde_json::from_slice(kv.value()).ok();
                inner.leader.store(Arc::new(info));
                if kv.lease() == lease {
                    return Ok(Some(kv.create_revision()));
                }
            }
        }
    }
    Ok(None)
}

/// Reads `PREFIX/state` into the newest shared state known; `false` when etcd did not answer.
async fn read_state(inner: &Inner, client: &mut Client) -> bool {
    let key = inner.keys().state;
    match timeout(inner.opts.call_timeout(), client.get(key.as_str(), None)).await {
        Ok(Ok(r)) => {
            if let Some(kv) = r.kvs().first() {
                if let Some(s) = super::store::parse(kv.value()) {
                    inner.seen(kv.mod_revision(), &s);
                }
            }
            true
        }
        _ => false,
    }
}

/// Resigns: deletes the leader key if it is still this member's, then revokes the lease.
async fn step_down(inner: &Inner, client: &mut Client, fence: Option<i64>, lease: i64) {
    publish(inner, None, Instant::now());
    let t = inner.opts.call_timeout();
    if let Some(rev) = fence {
        let key = inner.keys().leader;
        let txn = Txn::new()
            .when([Compare::create_revision(
                key.as_str(),
                CompareOp::Equal,
                rev,
            )])
            .and_then([TxnOp::delete(key.as_str(), None)]);
        match timeout(t, client.txn(txn)).await {
            Ok(Ok(_)) => tracing::info!(member = %inner.opts.name, "resigned leadership"),
            other => {
                tracing::warn!(error = ?other.err(), "could not resign; the lease will expire")
            }
        }
    }
    let _ = timeout(t, client.lease_revoke(lease)).await;
}

/// Waits before the next try; `true` when the member resigns meanwhile.
async fn pause_or_resign(resign: &mut mpsc::Receiver<Order>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(RETRY) => false,
        Some(order) = resign.recv() => match order {
            Order::Resign(done) => { let _ = done.send(()); true }
            Order::Rejoin => false,
        },
    }
}

/// Resigned: waits until the controller runs again (`true`) or the member is gone (`false`).
async fn resigned(orders: &mut mpsc::Receiver<Order>) -> bool {
    loop {
        match orders.recv().await {
            Some(Order::Rejoin) => {
                tracing::info!("campaigning again: the controller runs again");
                return true;
            }
            Some(Order::Resign(done)) => {
                let _ = done.send(());
            }
            None => return false,
        }
    }
}
