//! The latency test: U and its z-score against scipy's `mannwhitneyu` on binned samples, the
//! Hodges–Lehmann shift on known histograms, the verdicts for each direction, and simulations
//! with a seeded generator (A/A false positives at most alpha when looked at every second; a
//! +30 % median caught).

use super::*;
use crate::policy::test_rng::Rng;

/// Bucket index → count.
fn hist(counts: &[(usize, u64)]) -> Histogram {
    let mut h = Histogram::default();
    for &(i, n) in counts {
        h.counts[i] = n;
    }
    h
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn u_and_z_match_scipy_on_binned_samples() {
    // Each sample is its bucket index, so the ties are the buckets. The reference values are
    // scipy 1.17's `mannwhitneyu(canary, stable, method="asymptotic", use_continuity=False)`:
    // its statistic, and z = ±Φ⁻¹(1 − p/2) from its two-sided p-value.
    let cases = [
        // (canary, stable, U, z)
        (
            hist(&[(7, 3), (8, 5), (9, 2)]),
            hist(&[(6, 2), (7, 4), (8, 3)]),
            67.5,
            1.963_468_976_287_042,
        ),
        (
            hist(&[(8, 10), (9, 25), (10, 5)]),
            hist(&[(7, 5), (8, 20), (9, 10)]),
            1075.0,
            4.361_012_298_403_791,
        ),
        (
            hist(&[(9, 4), (19, 2)]),
            hist(&[(9, 6), (10, 1)]),
            26.0,
            0.968_478_671_913_294,
        ),
    ];
    for (c, s, u, z) in cases {
        let (got_u, got_z) = u_test(&c, &s);
        assert_eq!(got_u, u);
        assert!(close(got_z, z, 1e-9), "z {got_z} vs scipy {z}");
        // Swapped, the same test from the other side.
        let (u2, z2) = u_test(&s, &c);
        assert_eq!(u2, (c.total() * s.total()) as f64 - u);
        assert!(close(z2, -z, 1e-9));
    }
    // All in one bucket: scipy's p is NaN (zero variance); here z = 0.
    assert_eq!(u_test(&hist(&[(8, 10)]), &hist(&[(8, 12)])), (60.0, 0.0));
}

#[test]
fn the_shift_of_spread_buckets_is_known() {
    // Canary evenly over (25, 50] ms, stable over (10, 25] ms: D = X − Y is symmetric around
    // 37.5 − 17.5 = 20 ms.
    let c = hist(&[(9, 1000)]);
    let s = hist(&[(8, 1000)]);
    assert!(close(difference_quantile(&c, &s, 0.5), 0.020, 1e-6));
    assert!(close(difference_cdf(&c, &s, 0.020), 0.5, 1e-12));
    // The whole range of D: [25 − 25, 50 − 10] ms.
    assert!(close(difference_cdf(&c, &s, 0.0), 0.0, 1e-12));
    assert!(close(difference_cdf(&c, &s, 0.040), 1.0, 1e-12));
    // Equal histograms: no shift.
    assert!(close(difference_quantile(&c, &c, 0.5), 0.0, 1e-6));
    // A point (the overflow bucket, 60 s) against a bucket: the point minus the bucket.
    let over = hist(&[(19, 10)]);
    assert!(close(
        difference_quantile(&over, &s, 0.5),
        60.0 - 0.0175,
        1e-6
    ));
    assert!(close(difference_cdf(&over, &over, 0.0), 1.0, 1e-12));
    // Quantiles of the histogram interpolate like histogram_quantile.
    assert!(close(s.quantile(0.5).unwrap(), 0.0175, 1e-12));
    assert!(close(
        hist(&[(8, 1), (9, 1)]).quantile(0.5).unwrap(),
        0.025,
        1e-12
    ));
    assert_eq!(Histogram::default().quantile(0.5), None);
}

#[test]
fn observe_counts_like_the_proxy() {
    let mut h = Histogram::default();
    h.observe(0.000_05);
    h.observe(0.02);
    h.observe(0.025);
    h.observe(61.0);
    assert_eq!(h.counts[0], 1);
    assert_eq!(h.counts[8], 2);
    assert_eq!(h.counts[N_BUCKETS - 1], 1);
    assert_eq!(h.total(), 4);
    let later = {
        let mut l = h;
        l.observe(0.02);
        l
    };
    assert_eq!(later.since(h), hist(&[(8, 1)]));
    assert_eq!(h.since(later), Histogram::default());
}

#[test]
fn too_few_requests_is_no_data() {
    let c = hist(&[(8, 49)]);
    let s = hist(&[(8, 1000)]);
    let m = Margin::Relative(0.1);
    assert!(judge(c, s, m, Direction::Increase, 0.01, 0).is_none());
    assert!(judge(hist(&[(8, 50)]), s, m, Direction::Increase, 0.01, 0).is_some());
    assert!(judge(hist(&[(8, 50)]), s, m, Direction::Increase, 0.01, 100).is_none());
}

#[test]
fn verdicts_follow_the_direction() {
    // Slower: canary (25, 50] ms, stable (10, 25] ms, shift 20 ms.
    let slow = hist(&[(9, 2000)]);
    let base = hist(&[(8, 20_000)]);
    let ms = |v: f64| Margin::Absolute(v / 1000.0);
    let outcome = |c, s, m, d| judge(c, s, m, d, 0.01, 0).map(|j| j.outcome);
    assert_eq!(
        outcome(slow, base, ms(5.0), Direction::Increase),
        Some(Outcome::Fail)
    );
    assert_eq!(
        outcome(slow, base, ms(5.0), Direction::Either),
        Some(Outcome::Fail)
    );
    // Faster is fine when only slower fails, and shown so.
    assert_eq!(
        outcome(slow, base, ms(5.0), Direction::Decrease),
        Some(Outcome::Pass)
    );
    // A margin above the whole shift passes; one inside the interval is inconclusive.
    assert_eq!(
        outcome(slow, base, ms(45.0), Direction::Increase),
        Some(Outcome::Pass)
    );
    let j = judge(slow, base, ms(20.0), Direction::Increase, 0.01, 0).unwrap();
    assert_eq!(j.outcome, Outcome::Inconclusive);
    assert!(j.interval.0 < 0.020 && 0.020 < j.interval.1, "{j:?}");
    assert!(close(j.difference, 0.020, 1e-6));
    let l = j.latency.unwrap();
    assert!(close(l.canary_median, 0.0375, 1e-12) && close(l.stable_median, 0.0175, 1e-12));
    assert_eq!(l.u, 2000.0 * 20_000.0);
    assert!(j.statistic > 50.0);
    assert_eq!(j.values(), (l.canary_median, l.stable_median));
    // Faster: the same the other way round.
    assert_eq!(
        outcome(base, slow, ms(5.0), Direction::Decrease),
        Some(Outcome::Fail)
    );
    assert_eq!(
        outcome(base, slow, ms(5.0), Direction::Either),
        Some(Outcome::Fail)
    );
    assert_eq!(
        outcome(base, slow, ms(5.0), Direction::Increase),
        Some(Outcome::Pass)
    );
    // Equal: pass in every direction once there is enough data (margin 10 % of 17.5 ms).
    let equal = hist(&[(8, 2000)]);
    for d in [Direction::Increase, Direction::Decrease, Direction::Either] {
        assert_eq!(
            outcome(equal, base, Margin::Relative(0.1), d),
            Some(Outcome::Pass),
            "{d:?}"
        );
    }
    // A relative margin is taken of stable's median.
    let j = judge(
        equal,
        base,
        Margin::Relative(0.1),
        Direction::Increase,
        0.01,
        0,
    )
    .unwrap();
    assert!(close(j.margin, 0.001_75, 1e-12));
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut Rng) -> f64 {
    let u1 = rng.uniform().max(1e-300);
    let u2 = rng.uniform();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// One run at 1000 req/s, 5 % canary, log-normal latencies (stable's median 40 ms, σ 0.5):
/// the second the test first says `fail` (None: never within `seconds`), judged every second.
fn first_fail(rng: &mut Rng, canary_factor: f64, margin: Margin, seconds: u64) -> Option<u64> {
    let (mut c, mut s) = (Histogram::default(), Histogram::default());
    for t in 1..=seconds {
        for _ in 0..50 {
            c.observe(0.040 * canary_factor * (0.5 * normal(rng)).exp());
        }
        for _ in 0..950 {
            s.observe(0.040 * (0.5 * normal(rng)).exp());
        }
        if judge(c, s, margin, Direction::Increase, 0.01, 0)
            .is_some_and(|j| j.outcome == Outcome::Fail)
        {
            return Some(t);
        }
    }
    None
}

#[test]
fn a_a_false_positives_stay_below_alpha_when_checked_every_second() {
    // alpha = 0.01 with margin 0 (the hardest case: any slowdown counts): a fixed-sample
    // test looked at 180 times would fail a large share of these.
    let mut rng = Rng::seeded(7);
    let runs = 200;
    let failed = (0..runs)
        .filter(|_| first_fail(&mut rng, 1.0, Margin::Absolute(0.0), 180).is_some())
        .count();
    assert!(
        failed <= 6,
        "{failed} of {runs} equal canaries failed (alpha 1 %)"
    );
}

#[test]
fn a_canary_thirty_percent_slower_is_caught() {
    let mut rng = Rng::seeded(11);
    for _ in 0..5 {
        let t = first_fail(&mut rng, 1.3, Margin::Relative(0.1), 300);
        assert!(t.is_some_and(|t| t <= 120), "caught after {t:?} s");
    }
}
