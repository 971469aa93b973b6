//! Judging the whole fleet with local rules: every member publishes, once a second, a
//! [`Report`] under its own lease at `PREFIX/members/NAME` — for each window its policy's local
//! rules read, the requests, 5xx and latency-bucket counts per variant, plus its cumulative
//! counters — and reads everyone's. The leader's local rules then judge the **sums** of those
//! counters (error ratios and quantiles are computed from the summed counts and buckets, never
//! averaged), and only when a quorum (a majority) of the live members sent a fresh report on
//! the current epoch: otherwise there is no data and the rollout holds.
//!
//! A member whose lease expired (dead, cut off) has no key any more and is not live; a
//! report older than [`STALE_MS`] by the reader's clock does not count (members' clocks are
//! assumed within a second of each other, as NTP keeps them).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use canaryd_proxy::{Metrics, Variant, WindowStats};
use etcd_client::{GetOptions, PutOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::timeout;

use super::Inner;
use crate::control::{traffic_of, wall_ms};
use crate::policy::{Counts, Histogram, Traffic};

/// How often a member publishes and reads reports.
const EVERY: Duration = Duration::from_secs(1);
/// A report older than this is not counted.
pub const STALE_MS: u64 = 3_000;

/// What the control loop tells the reports task: the split it applies and the windows its
/// local rules read.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MemberState {
    pub epoch: u64,
    pub applied_percent: f64,
    pub windows: Vec<Duration>,
}

/// One member's report (`PREFIX/members/NAME`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub name: String,
    pub admin: String,
    pub connected: bool,
    /// The epoch of the split this member applies.
    pub epoch: u64,
    pub applied_percent: f64,
    /// Wall clock when written, ms since the epoch.
    pub ts_ms: u64,
    pub windows: Vec<WindowReport>,
    /// The cumulative counters behind `test` rules and the traffic-share check.
    pub traffic: Traffic,
}

/// One window's counts per variant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowReport {
    pub window_ms: u64,
    pub canary: VariantCounts,
    pub stable: VariantCounts,
}

/// Requests, 5xx and latency buckets (non-cumulative) of one variant in one window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VariantCounts {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub buckets: Vec<u64>,
}

impl From<WindowStats> for VariantCounts {
    fn from(s: WindowStats) -> Self {
        Self {
            requests: s.requests,
            errors: s.errors,
            seconds: s.seconds,
            buckets: s.buckets,
        }
    }
}

/// The fleet as the last read of `PREFIX/members/` saw it, and the epoch the leader judges.
#[derive(Debug, Default)]
pub struct Fleet {
    reports: ArcSwap<Vec<Report>>,
    mine: ArcSwap<Report>,
    epoch: AtomicU64,
    /// The cumulative counters' sum since the epoch began: per member, its counters when
    /// first counted on this epoch and when last counted.
    since: Mutex<Since>,
}

/// Per member, on `epoch`: its counters when first counted and when last counted, and what
/// it had added before it restarted.
#[derive(Debug, Default)]
struct Since {
    epoch: u64,
    members: HashMap<String, Counted>,
}

#[derive(Debug, Clone, Copy)]
struct Counted {
    base: Traffic,
    last: Traffic,
    carried: Traffic,
}

impl Fleet {
    /// Every live member's report, by name.
    pub fn reports(&self) -> Arc<Vec<Report>> {
        self.reports.load_full()
    }

    /// This member's last report (also when it could not be published).
    pub fn mine(&self) -> Arc<Report> {
        self.mine.load_full()
    }

    /// The epoch whose reports count (the leader's current split).
    pub fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    pub(crate) fn store(&self, reports: Vec<Report>) {
        self.reports.store(Arc::new(reports));
    }

    /// The reports that count — fresh, on the current epoch — when they are a quorum of the
    /// live members; `None` otherwise (no data).
    fn counted(&self, now_ms: u64) -> Option<Vec<Report>> {
        let all = self.reports();
        let live = all.len();
        let epoch = self.epoch.load(Ordering::Relaxed);
        let counted: Vec<Report> = all
            .iter()
            .filter(|r| r.epoch == epoch && now_ms.saturating_sub(r.ts_ms) <= STALE_MS)
            .cloned()
            .collect();
        (live > 0 && counted.len() > live / 2).then_some(counted)
    }

    /// The summed window of `variant` over the counted members; `None` without a quorum or
    /// when a member does not report that window.
    pub fn stats(&self, variant: Variant, window: Duration) -> Option<WindowStats> {
        sum_window(&self.counted(wall_ms())?, variant, window)
    }

    /// What the counted members counted since the epoch began, summed: each member from the
    /// moment it was first counted on this epoch (a member joining late adds none of its
    /// history; one restarted starts again), and a member no longer counted keeps what it
    /// added — so the sum only grows, as `test` rules and the traffic-share check expect.
    pub fn traffic(&self) -> Option<Traffic> {
        let counted = self.counted(wall_ms())?;
        let epoch = self.epoch.load(Ordering::Relaxed);
        let mut since = self.since.lock().ok()?;
        if since.epoch != epoch {
            *since = Since {
                epoch,
                members: HashMap::new(),
            };
        }
        for r in &counted {
            let now = r.traffic;
            let m = since.members.entry(r.name.clone()).or_insert(Counted {
                base: now,
                last: now,
                carried: Traffic::default(),
            });
            if now.canary.requests < m.last.canary.requests
                || now.stable.requests < m.last.stable.requests
            {
                // Restarted: its counters began again from zero; keep what it had added.
                m.carried = plus(m.carried, m.last.since(m.base));
                m.base = Traffic::default();
            }
            m.last = now;
        }
        Some(since.members.values().fold(Traffic::default(), |t, m| {
            plus(t, plus(m.carried, m.last.since(m.base)))
        }))
    }
}

/// `a + b`, counter by counter.
fn plus(a: Traffic, b: Traffic) -> Traffic {
    let add = |x: Counts, y: Counts| Counts {
        requests: x.requests + y.requests,
        errors: x.errors + y.errors,
    };
    Traffic {
        canary: add(a.canary, b.canary),
        stable: add(a.stable, b.stable),
        fallbacks_from_canary: a.fallbacks_from_canary + b.fallbacks_from_canary,
        fallbacks_from_stable: a.fallbacks_from_stable + b.fallbacks_from_stable,
        canary_latency: sum(a.canary_latency, &b.canary_latency),
        stable_latency: sum(a.stable_latency, &b.stable_latency),
    }
}

/// `a + b`, bucket by bucket.
fn sum(mut a: Histogram, b: &Histogram) -> Histogram {
    a.add(b);
    a
}

/// Sums counts and buckets (never ratios or quantiles) of `window` across `reports`.
pub(crate) fn sum_window(
    reports: &[Report],
    variant: Variant,
    window: Duration,
) -> Option<WindowStats> {
    let ms = window.as_millis() as u64;
    let mut sum = WindowStats {
        requests: 0,
        errors: 0,
        seconds: 0.0,
        buckets: Vec::new(),
    };
    for r in reports {
        let w = r.windows.iter().find(|w| w.window_ms == ms)?;
        let v = match variant {
            Variant::Canary => &w.canary,
            Variant::Stable => &w.stable,
        };
        sum.requests += v.requests;
        sum.errors += v.errors;
        sum.seconds = sum.seconds.max(v.seconds);
        if sum.buckets.len() < v.buckets.len() {
            sum.buckets.resize(v.buckets.len(), 0);
        }
        for (s, b) in sum.buckets.iter_mut().zip(&v.buckets) {
            *s += b;
        }
    }
    Some(sum)
}

/// This member's report now.
fn report(inner: &Inner, metrics: &Metrics, m: &MemberState) -> Report {
    let windows = m
        .windows
        .iter()
        .map(|&w| WindowReport {
            window_ms: w.as_millis() as u64,
            canary: metrics.windows().stats(Variant::Canary, w).into(),
            stable: metrics.windows().stats(Variant::Stable, w).into(),
        })
        .collect();
    Report {
        name: inner.opts.name.clone(),
        admin: inner.opts.admin.clone(),
        connected: inner.connected.load(Ordering::Relaxed),
        epoch: m.epoch,
        applied_percent: m.applied_percent,
        ts_ms: wall_ms(),
        windows,
        traffic: traffic_of(metrics),
    }
}

/// Publishes this member's report and reads the fleet's, every second.
pub(super) async fn run(
    inner: Arc<Inner>,
    metrics: Arc<Metrics>,
    member: watch::Receiver<MemberState>,
) {
    let mut client = inner.client().await;
    let keys = inner.keys();
    let t = inner.opts.call_timeout();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mine = report(&inner, &metrics, &member.borrow().clone());
        inner.fleet.mine.store(Arc::new(mine.clone()));
        let lease = *inner.lease.borrow();
        if let (Some(lease), Ok(body)) = (lease, serde_json::to_vec(&mine)) {
            let put = client.put(
                keys.member(&mine.name),
                body,
                Some(PutOptions::new().with_lease(lease)),
            );
            match timeout(t, put).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "could not publish this member's report"),
                Err(_) => tracing::debug!("could not publish this member's report: no answer"),
            }
        }
        match timeout(
            t,
            client.get(keys.members.as_str(), Some(GetOptions::new().with_prefix())),
        )
        .await
        {
            Ok(Ok(resp)) => {
                let reports = resp
                    .kvs()
                    .iter()
                    .filter_map(|kv| match serde_json::from_slice::<Report>(kv.value()) {
                        Ok(r) => Some(r),
                        Err(e) => {
                            tracing::warn!(key = %String::from_utf8_lossy(kv.key()), error = %e, "a member's report is not valid; ignored");
                            None
                        }
                    })
                    .collect();
                inner.fleet.store(reports);
            }
            _ => tracing::debug!("could not read the fleet's reports"),
        }
    }
}
