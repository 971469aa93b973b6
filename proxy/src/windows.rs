//! The proxy's own sliding windows, per variant: requests, 5xx responses and a latency histogram
//! over the last `window` seconds (up to [`MAX_WINDOW_S`]).
//!
//! The controller's `source = "local"` rules judge the canary from these instead of scraping a
//! Prometheus server: error ratio (5xx / requests), requests per second and latency quantiles,
//! for stable and canary side by side, over the same window. A third series, [`Lane::Shadow`],
//! holds the canary's answers to shadow traffic (`request/shadow.rs`): what a dark step (weight
//! 0, `shadow` > 0) is judged on, never mixed with what clients were served.
//!
//! # How
//!
//! Per variant, a ring of [`RING`] one-second slots. A slot holds the second (since process
//! start, [`crate::clock::now_ms`]` / 1000`) it counts, a request count, a 5xx count and the same
//! latency buckets as [`crate::metrics::LATENCY_BOUNDS_S`] plus one overflow bucket (> 60 s).
//! Everything is preallocated once; recording is a load, at most one `compare_exchange` per
//! second, and three relaxed `fetch_add`s: no lock, no allocation.
//!
//! A recorder that finds its slot holding an older second claims it with `compare_exchange` on
//! `second` and zeroes the counters; exactly one recorder wins. Increments made by other threads
//! into the same slot between the claim and the zeroing are lost: a handful of requests, at most
//! once per second, in the first microseconds of that second. Within a second nothing is lost.
//! A record whose slot already holds a *later* second (a thread delayed by more than
//! `RING - 1` seconds) is dropped.
//!
//! Reading sums every slot whose second overlaps `(now - window, now]`: the current, partial
//! second and the seconds before it back to the one `now - window` falls in, so a window read
//! right after a second boundary still covers a whole window (a reader that ticks at a fixed
//! phase would otherwise always see a sliver). [`WindowStats::seconds`] is the time those slots
//! actually cover (from the start of the oldest one, or from process start if that is later,
//! to now) — between `window` and `window + 1 s` — so [`WindowStats::rps`] stays honest.
//!
//! Reads are not a snapshot: a slot being recorded into while it is read may be counted with a
//! few increments more in one counter than in another (e.g. `requests` vs `buckets`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::clock;
use crate::metrics::LATENCY_BOUNDS_S;
use crate::routing::Variant;

/// One-second slots per variant.
pub const RING: usize = 128;
/// Longest window [`Windows::stats`] can answer, in seconds; longer windows are clamped. One
/// less than [`RING`] so that the slot being claimed for the next second is never read.
pub const MAX_WINDOW_S: u64 = RING as u64 - 1;
/// Latency buckets: one per bound of [`LATENCY_BOUNDS_S`], then the overflow bucket.
pub const N_BUCKETS: usize = LATENCY_BOUNDS_S.len() + 1;

/// Rings: stable, canary, then the canary's shadow answers ([`Lane::Shadow`]).
const LANES: usize = 3;

/// Whose answers a window counts: a variant's, or the canary's answers to shadow traffic
/// (`request/shadow.rs`), kept apart so they never mix with what clients were served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Variant(Variant),
    Shadow,
}

impl Lane {
    fn index(self) -> usize {
        match self {
            Lane::Variant(v) => v.index(),
            Lane::Shadow => 2,
        }
    }
}

impl From<Variant> for Lane {
    fn from(v: Variant) -> Self {
        Lane::Variant(v)
    }
}

/// Per-variant sliding windows of request counts, 5xx counts and latencies.
pub struct Windows {
    /// `[variant][second % RING]`, flattened; allocated once.
    slots: Box<[Slot]>,
}

/// Counters of one second of one variant.
#[derive(Default)]
struct Slot {
    /// The second (since process start) these counters belong to.
    second: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    /// Non-cumulative; the last one counts latencies above the last bound.
    buckets: [AtomicU64; N_BUCKETS],
}

/// What a window holds for one variant.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowStats {
    pub requests: u64,
    /// Responses with a 5xx status.
    pub errors: u64,
    /// Time the window actually covers, in seconds (see the module doc).
    pub seconds: f64,
    /// Latency counts per bucket of [`LATENCY_BOUNDS_S`], non-cumulative, plus the overflow
    /// bucket last: `N_BUCKETS` entries.
    pub buckets: Vec<u64>,
}

// === impl Windows ===

impl Windows {
    pub fn new() -> Self {
        Self {
            slots: (0..LANES * RING).map(|_| Slot::default()).collect(),
        }
    }

    /// One response (or failed upstream attempt) of `variant`, now.
    pub fn record(&self, variant: impl Into<Lane>, status: u16, elapsed: Duration) {
        self.record_at(variant.into(), status, elapsed, clock::now_ms() / 1000);
    }

    /// What the last `window` of `variant` holds. `window` is rounded up to whole seconds and
    /// clamped to `1..=MAX_WINDOW_S`.
    pub fn stats(&self, variant: impl Into<Lane>, window: Duration) -> WindowStats {
        self.stats_at(variant.into(), window, clock::now_ms())
    }

    fn slot(&self, lane: Lane, second: u64) -> &Slot {
        &self.slots[lane.index() * RING + (second % RING as u64) as usize]
    }

    /// [`Windows::record`] in second `now_s` (since process start).
    fn record_at(&self, lane: impl Into<Lane>, status: u16, elapsed: Duration, now_s: u64) {
        let slot = self.slot(lane.into(), now_s);
        let mut seen = slot.second.load(Relaxed);
        while seen != now_s {
            if seen > now_s {
                // The slot was reused for a later second: this record is too late to count.
                return;
            }
            match slot
                .second
                .compare_exchange_weak(seen, now_s, Relaxed, Relaxed)
            {
                Ok(_) => {
                    slot.reset();
                    break;
                }
                Err(actual) => seen = actual,
            }
        }
        slot.requests.fetch_add(1, Relaxed);
        if (500..600).contains(&status) {
            slot.errors.fetch_add(1, Relaxed);
        }
        slot.buckets[bucket_of(elapsed)].fetch_add(1, Relaxed);
    }

    /// [`Windows::stats`] at `now_ms` milliseconds on the [`clock`].
    fn stats_at(&self, lane: impl Into<Lane>, window: Duration, now_ms: u64) -> WindowStats {
        let lane = lane.into();
        let now_s = now_ms / 1000;
        let window_s =
            (window.as_secs() + u64::from(window.subsec_nanos() > 0)).clamp(1, MAX_WINDOW_S);
        // Every second that overlaps (now - window, now]: the current partial second and
        // the whole or partial seconds before it, so a read just after a second boundary
        // still covers a full window, whatever phase the reader ticks at.
        let first = now_ms
            .saturating_sub(window_s * 1000)
            .div_euclid(1000)
            .min(now_s);
        let mut stats = WindowStats {
            requests: 0,
            errors: 0,
            // From the start of the oldest second (or process start) to now; at least 1 ms.
            seconds: now_ms.saturating_sub(first * 1000).max(1) as f64 / 1000.0,
            buckets: vec![0; N_BUCKETS],
        };
        for second in first..=now_s {
            let slot = self.slot(lane, second);
            if slot.second.load(Relaxed) != second {
                continue;
            }
            let requests = slot.requests.load(Relaxed);
            let errors = slot.errors.load(Relaxed);
            let mut buckets = [0; N_BUCKETS];
            for (b, c) in buckets.iter_mut().zip(&slot.buckets) {
                *b = c.load(Relaxed);
            }
            // Claimed for another second meanwhile: what we read may be half reset.
            if slot.second.load(Relaxed) != second {
                continue;
            }
            stats.requests += requests;
            stats.errors += errors;
            for (total, b) in stats.buckets.iter_mut().zip(buckets) {
                *total += b;
            }
        }
        stats
    }
}

impl Default for Windows {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Windows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Windows")
            .field("ring", &RING)
            .finish_non_exhaustive()
    }
}

// === impl Slot ===

impl Slot {
    fn reset(&self) {
        self.requests.store(0, Relaxed);
        self.errors.store(0, Relaxed);
        for b in &self.buckets {
            b.store(0, Relaxed);
        }
    }
}

/// Index of the bucket counting `elapsed`: the first bound it does not exceed, else overflow.
fn bucket_of(elapsed: Duration) -> usize {
    let secs = elapsed.as_secs_f64();
    LATENCY_BOUNDS_S
        .iter()
        .position(|&b| secs <= b)
        .unwrap_or(LATENCY_BOUNDS_S.len())
}

// === impl WindowStats ===

impl WindowStats {
    /// 5xx / requests; `None` without requests.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }

    /// Requests per second over the covered time; 0 when nothing is covered.
    pub fn rps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The `q`-quantile (0..=1) of latency in seconds, computed like Prometheus'
    /// `histogram_quantile`: linear interpolation inside the bucket holding rank `q × count`,
    /// the first bucket starting at 0; a rank in the overflow bucket gives the last finite bound
    /// (60 s). `q = 0` gives the lower bound of the first non-empty bucket (where Prometheus may
    /// answer NaN). `None` without requests, or for `q` outside `0..=1`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.requests == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let mut below = 0u64;
        for (i, &count) in self.buckets.iter().enumerate() {
            let cumulative = below + count;
            if count > 0 && cumulative as f64 >= rank {
                let Some(&end) = LATENCY_BOUNDS_S.get(i) else {
                    break; // Overflow bucket.
                };
                let start = if i == 0 { 0.0 } else { LATENCY_BOUNDS_S[i - 1] };
                return Some(start + (end - start) * ((rank - below as f64) / count as f64));
            }
            below = cumulative;
        }
        LATENCY_BOUNDS_S.last().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(buckets: &[(usize, u64)], errors: u64) -> WindowStats {
        let mut b = vec![0; N_BUCKETS];
        for &(i, n) in buckets {
            b[i] = n;
        }
        WindowStats {
            requests: b.iter().sum(),
            errors,
            seconds: 10.0,
            buckets: b,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn bucket_bounds_match_metrics() {
        assert_eq!(bucket_of(Duration::from_micros(50)), 0);
        assert_eq!(bucket_of(Duration::from_micros(51)), 1);
        assert_eq!(bucket_of(Duration::from_millis(2)), 5);
        assert_eq!(
            bucket_of(Duration::from_secs(60)),
            LATENCY_BOUNDS_S.len() - 1
        );
        assert_eq!(bucket_of(Duration::from_secs(61)), LATENCY_BOUNDS_S.len());
    }

    #[test]
    fn error_ratio_and_rps() {
        let s = stats(&[(5, 100)], 7);
        assert_eq!(s.error_ratio(), Some(0.07));
        assert!(close(s.rps(), 10.0));
        let empty = stats(&[], 0);
        assert_eq!(empty.error_ratio(), None);
        assert_eq!(empty.rps(), 0.0);
        assert_eq!(empty.quantile(0.5), None);
        let zero_time = WindowStats {
            seconds: 0.0,
            ..s.clone()
        };
        assert_eq!(zero_time.rps(), 0.0);
    }

    #[test]
    fn quantiles_like_histogram_quantile() {
        // 100 requests in (1 ms, 2.5 ms]: Prometheus interpolates linearly inside the bucket.
        let s = stats(&[(5, 100)], 0);
        assert!(close(s.quantile(0.5).unwrap(), 0.00175));
        assert!(close(s.quantile(0.9).unwrap(), 0.001 + 0.0015 * 0.9));
        assert!(close(s.quantile(1.0).unwrap(), 0.0025));
        assert!(close(s.quantile(0.0).unwrap(), 0.001));
        assert_eq!(s.quantile(1.5), None);
        assert_eq!(s.quantile(f64::NAN), None);

        // First bucket starts at 0: 10 in [0, 50 µs] → p50 = 25 µs.
        let s = stats(&[(0, 10)], 0);
        assert!(close(s.quantile(0.5).unwrap(), 0.000_025));

        // 90 in (1, 2.5] ms, 9 in (5, 10] ms, 1 in (0.5, 1] s. Prometheus, on the cumulative
        // buckets le=0.0025:90, le=0.01:99, le=1:100:
        //   p50: rank 50 in (0.001, 0.0025] → 0.001 + 0.0015 × 50/90
        //   p90: rank 90 → upper bound 0.0025
        //   p99: rank 99 in (0.005, 0.01] with 9 → 0.005 + 0.005 × 9/9 = 0.01
        //   p999: rank 99.9 in (0.5, 1] with 1 → 0.5 + 0.5 × 0.9 = 0.95
        let s = stats(&[(5, 90), (7, 9), (13, 1)], 0);
        assert!(close(
            s.quantile(0.5).unwrap(),
            0.001 + 0.0015 * 50.0 / 90.0
        ));
        assert!(close(s.quantile(0.9).unwrap(), 0.0025));
        assert!(close(s.quantile(0.99).unwrap(), 0.01));
        assert!(close(s.quantile(0.999).unwrap(), 0.95));

        // A rank in the overflow bucket gives the last finite bound.
        let s = stats(&[(5, 1), (N_BUCKETS - 1, 1)], 0);
        assert_eq!(s.quantile(0.99), Some(60.0));
        assert!(close(s.quantile(0.5).unwrap(), 0.0025));
    }

    #[test]
    fn records_into_the_current_window() {
        let w = Windows::new();
        w.record(Variant::Canary, 200, Duration::from_millis(2));
        w.record(Variant::Canary, 503, Duration::from_millis(2));
        w.record(Variant::Canary, 404, Duration::from_secs(90));
        let s = w.stats(Variant::Canary, Duration::from_secs(60));
        assert_eq!(s.requests, 3);
        assert_eq!(s.errors, 1);
        assert_eq!(s.buckets.len(), N_BUCKETS);
        assert_eq!(s.buckets[5], 2);
        assert_eq!(s.buckets[N_BUCKETS - 1], 1);
        assert!(s.seconds > 0.0 && s.seconds <= 60.0);
        let stable = w.stats(Variant::Stable, Duration::from_secs(60));
        assert_eq!(stable.requests, 0);
        assert_eq!(stable.buckets, vec![0; N_BUCKETS]);
    }

    #[test]
    fn shadow_answers_have_their_own_lane() {
        let w = Windows::new();
        w.record(Lane::Shadow, 500, Duration::from_millis(2));
        w.record(Lane::Shadow, 200, Duration::from_millis(2));
        w.record(Variant::Canary, 200, Duration::from_millis(2));
        let shadow = w.stats(Lane::Shadow, Duration::from_secs(10));
        assert_eq!((shadow.requests, shadow.errors), (2, 1));
        let canary = w.stats(Variant::Canary, Duration::from_secs(10));
        assert_eq!((canary.requests, canary.errors), (1, 0));
        assert_eq!(
            w.stats(Variant::Stable, Duration::from_secs(10)).requests,
            0
        );
    }

    #[test]
    fn window_excludes_older_seconds() {
        let w = Windows::new();
        let ms = Duration::from_millis(1);
        w.record_at(Variant::Stable, 500, ms, 10);
        w.record_at(Variant::Stable, 200, ms, 41);
        w.record_at(Variant::Stable, 200, ms, 100);
        w.record_at(Variant::Stable, 200, ms, 100);

        // At 100.5 s a 60 s window reaches back to 40.5 s: the seconds 40..=100 overlap it.
        let s = w.stats_at(Variant::Stable, Duration::from_secs(60), 100_500);
        assert_eq!((s.requests, s.errors), (3, 0));
        assert!(close(s.seconds, 60.5));
        assert!(close(s.rps(), 3.0 / 60.5));
        // 1.5 s rounds up to 2: seconds 98..=100.
        let s = w.stats_at(Variant::Stable, Duration::from_millis(1500), 100_500);
        assert_eq!(s.requests, 2);
        assert!(close(s.seconds, 2.5));
        // Just after a second boundary a 1 s window still covers the second before.
        let s = w.stats_at(Variant::Stable, Duration::from_secs(1), 101_050);
        assert_eq!(s.requests, 2);
        assert!(close(s.seconds, 1.05));
        // Later, 41 has left the window.
        let s = w.stats_at(Variant::Stable, Duration::from_secs(60), 102_000);
        assert_eq!(s.requests, 2);
        // A young process: the window covers only the time since start.
        let s = w.stats_at(Variant::Stable, Duration::from_secs(60), 30_250);
        assert_eq!((s.requests, s.errors), (1, 1));
        assert!(close(s.seconds, 30.25));
        // Windows beyond the ring are clamped.
        let s = w.stats_at(Variant::Stable, Duration::from_secs(1000), 100_500);
        assert_eq!(s.requests, 4);
        assert!(close(s.seconds, 100.5));
    }

    #[test]
    fn stale_slots_are_reset_and_late_records_dropped() {
        let w = Windows::new();
        let ms = Duration::from_millis(1);
        w.record_at(Variant::Canary, 502, ms, 5);
        w.record_at(Variant::Canary, 502, ms, 5);
        // Same slot, 128 s later: the old counts go.
        w.record_at(Variant::Canary, 200, ms, 5 + RING as u64);
        let s = w.stats_at(
            Variant::Canary,
            Duration::from_secs(1),
            (5 + RING as u64) * 1000,
        );
        assert_eq!((s.requests, s.errors), (1, 0));
        // A record for second 5 arriving now is too late.
        w.record_at(Variant::Canary, 200, ms, 5);
        let s = w.stats_at(
            Variant::Canary,
            Duration::from_secs(1),
            (5 + RING as u64) * 1000,
        );
        assert_eq!(s.requests, 1);
        assert_eq!(
            w.stats_at(Variant::Canary, Duration::from_secs(1), 5_500)
                .requests,
            0
        );
    }

    #[test]
    fn concurrent_records_within_a_second_are_exact() {
        let w = Windows::new();
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let w = &w;
                scope.spawn(move || {
                    for i in 0..100_000u64 {
                        let status = if i % 10 == 0 { 500 } else { 200 };
                        w.record_at(Variant::Canary, status, Duration::from_micros(t * 300), 7);
                    }
                });
            }
        });
        let s = w.stats_at(Variant::Canary, Duration::from_secs(10), 7_999);
        assert_eq!(s.requests, 400_000);
        assert_eq!(s.errors, 40_000);
        assert_eq!(s.buckets.iter().sum::<u64>(), 400_000);
        assert_eq!(s.error_ratio(), Some(0.1));
    }
}
