//! The sequential test: known values of the boundary, its verdicts, and simulations with a
//! seeded generator (A/A false positives at most alpha; a 4× worse canary caught).

use super::*;

use crate::policy::test_rng::Rng;

/// One run at 1000 req/s, 5 % canary: the second the test first says `fail` (None: never,
/// within `seconds`).
fn first_fail(
    rng: &mut Rng,
    p_stable: f64,
    p_canary: f64,
    margin: Margin,
    seconds: u64,
) -> Option<u64> {
    let (mut c, mut s) = (Counts::default(), Counts::default());
    for t in 1..=seconds {
        c.requests += 50;
        c.errors += rng.binomial(50, p_canary);
        s.requests += 950;
        s.errors += rng.binomial(950, p_stable);
        if judge(c, s, margin, 0.01, 0).is_some_and(|j| j.outcome == Outcome::Fail) {
            return Some(t);
        }
    }
    None
}

#[test]
fn the_boundary_has_its_known_value() {
    // w = 1e-4, τ = 0.01, α = 0.05: sqrt(2e-4 · (2 ln 20 + ln 2)) = 0.036564…
    let r = radius(1e-4, 0.01, 0.05);
    assert!((r - 0.036_564).abs() < 1e-5, "{r}");
    // At the boundary the likelihood ratio is exactly 1/α.
    let l = log_lr(0.5 + r, 0.5, 1e-4, 0.01);
    assert!((l - 20f64.ln()).abs() < 1e-9, "{l}");
    // A smaller alpha, a wider interval; more data, a narrower one.
    assert!(radius(1e-4, 0.01, 0.001) > r);
    assert!(radius(1e-5, 0.01, 0.05) < r);
    assert!(radius(0.0, 0.01, 0.05).is_infinite());
}

#[test]
fn too_few_requests_is_no_data() {
    let c = Counts {
        requests: 49,
        errors: 0,
    };
    let s = Counts {
        requests: 10_000,
        errors: 100,
    };
    assert_eq!(judge(c, s, Margin::Absolute(0.005), 0.01, 0), None);
    let c = Counts {
        requests: 500,
        errors: 0,
    };
    assert_eq!(judge(c, s, Margin::Absolute(0.005), 0.01, 1_000), None);
    assert!(judge(c, s, Margin::Absolute(0.005), 0.01, 100).is_some());
}

#[test]
fn verdicts() {
    let stable = Counts {
        requests: 100_000,
        errors: 1_000,
    };
    // 4 % against 1 % on 5 000 requests: worse by more than half a point.
    let j = judge(
        Counts {
            requests: 5_000,
            errors: 200,
        },
        stable,
        Margin::Absolute(0.005),
        0.01,
        0,
    )
    .unwrap();
    assert_eq!(j.outcome, Outcome::Fail, "{j:?}");
    assert!(j.interval.0 > 0.005 && (j.difference - 0.03).abs() < 1e-12);
    assert!(j.statistic > 100f64.ln());
    // 1 % against 1 % on 20 000: shown not worse by half a point.
    let j = judge(
        Counts {
            requests: 20_000,
            errors: 200,
        },
        stable,
        Margin::Absolute(0.005),
        0.01,
        0,
    )
    .unwrap();
    assert_eq!(j.outcome, Outcome::Pass, "{j:?}");
    assert!(j.interval.1 < 0.005);
    // 1.2 % on 500 requests: cannot tell yet.
    let j = judge(
        Counts {
            requests: 500,
            errors: 6,
        },
        stable,
        Margin::Absolute(0.005),
        0.01,
        0,
    )
    .unwrap();
    assert_eq!(j.outcome, Outcome::Inconclusive, "{j:?}");
    assert!(j.statistic < 100f64.ln());
    // A relative margin is a share of stable's ratio: 50 % of 1 % = 0.005.
    let j = judge(
        Counts {
            requests: 5_000,
            errors: 200,
        },
        stable,
        Margin::Relative(0.5),
        0.01,
        0,
    )
    .unwrap();
    assert!((j.margin - 0.005).abs() < 1e-12);
    assert_eq!(j.outcome, Outcome::Fail);
}

#[test]
fn no_errors_anywhere_does_not_prove_anything_on_little_traffic() {
    let zero = |n| Counts {
        requests: n,
        errors: 0,
    };
    let j = judge(zero(100), zero(2_000), Margin::Absolute(0.005), 0.01, 0).unwrap();
    assert_eq!(j.outcome, Outcome::Inconclusive, "{j:?}");
    let j = judge(
        zero(20_000),
        zero(400_000),
        Margin::Absolute(0.005),
        0.01,
        0,
    )
    .unwrap();
    assert_eq!(j.outcome, Outcome::Pass, "{j:?}");
}

#[test]
fn a_a_false_positives_stay_below_alpha_when_checked_every_second() {
    // 200 runs of 10 minutes, judged every second, margin 0 (the strictest): the chance of
    // ever failing an equal canary must stay ≤ alpha = 1 % (slack for 200 runs: ≤ 3 %).
    let mut rng = Rng::seeded(42);
    let runs = 200;
    let fails = (0..runs)
        .filter(|_| first_fail(&mut rng, 0.01, 0.01, Margin::Absolute(0.0), 600).is_some())
        .count();
    assert!(
        fails as f64 / runs as f64 <= 0.03,
        "{fails} of {runs} A/A runs failed"
    );
    // With a real margin an equal canary essentially never fails.
    let fails = (0..runs)
        .filter(|_| first_fail(&mut rng, 0.01, 0.01, Margin::Absolute(0.005), 600).is_some())
        .count();
    assert!(
        fails <= 2,
        "{fails} of {runs} A/A runs failed with margin 0.005"
    );
}

#[test]
fn a_canary_four_times_worse_is_caught() {
    let mut rng = Rng::seeded(7);
    let runs = 50;
    let times: Vec<u64> = (0..runs)
        .filter_map(|_| first_fail(&mut rng, 0.01, 0.04, Margin::Absolute(0.005), 600))
        .collect();
    assert_eq!(
        times.len(),
        runs,
        "every 4× canary is failed within 10 minutes"
    );
    // Typically within a couple of minutes at 50 canary requests per second.
    let mean = times.iter().sum::<u64>() as f64 / runs as f64;
    assert!(mean < 180.0, "mean time to fail {mean} s");
}
