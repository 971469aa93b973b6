//! Every member follows `PREFIX/state`: read it (the value and the store's revision), then
//! watch it from that revision + 1, so no write between the read and the watch is missed. A
//! watch that etcd cancels (its start revision was compacted), a stream that breaks, or etcd
//! becoming reachable again after a cut (the stream may have died silently) all lead to the
//! same recovery: read again, watch again. Each version goes to the control loop as an
//! [`Event::Shared`]; the loop applies it (or, on the leader, knows it already).

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::store::parse;
use super::{Event, Inner};

/// Pause before reading again after a failure.
const RETRY: Duration = Duration::from_millis(200);

pub(super) async fn run(inner: Arc<Inner>, events: mpsc::UnboundedSender<Event>) {
    let mut client = inner.client().await;
    let key = inner.keys().state;
    let t = inner.opts.call_timeout();
    let mut reconnects = inner.reconnects.subscribe();
    loop {
        reconnects.borrow_and_update();
        let read = match timeout(t, client.get(key.as_str(), None)).await {
            Ok(Ok(r)) => r,
            _ => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let rev = read.header().map_or(0, |h| h.revision());
        if let Some(kv) = read.kvs().first() {
            if let Some(shared) = parse(kv.value()).filter(|s| inner.seen(kv.mod_revision(), s)) {
                if events.send(Event::Shared(shared)).is_err() {
                    return;
                }
            }
        }
        let opts = WatchOptions::new().with_start_revision(rev + 1);
        let mut stream = match timeout(t, client.watch(key.as_str(), Some(opts))).await {
            Ok(Ok(s)) => s,
            _ => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        tracing::debug!(revision = rev, "watching the shared rollout state");
        loop {
            tokio::select! {
                msg = stream.message() => match msg {
                    Ok(Some(resp)) => {
                        if resp.canceled() || resp.compact_revision() > 0 {
                            tracing::info!(compact_revision = resp.compact_revision(), "watch canceled (compaction); reading the state again");
                            break;
                        }
                        for ev in resp.events() {
                            if ev.event_type() != EventType::Put {
                                continue;
                            }
                            let Some(kv) = ev.kv() else { continue };
                            if let Some(shared) = parse(kv.value()).filter(|s| inner.seen(kv.mod_revision(), s)) {
                                if events.send(Event::Shared(shared)).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    _ => {
                        tracing::debug!("watch stream ended; reading the state again");
                        break;
                    }
                },
                _ = reconnects.changed() => {
                    tracing::debug!("etcd reachable again; reading the state again");
                    break;
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}
