//! The traffic-share check: a share within the band passes, a silent drop is a mismatch,
//! fallbacks are not counted twice, A/A traffic does not alarm.

use super::*;
use crate::policy::test_rng::Rng;

fn traffic(canary: u64, stable: u64) -> Traffic {
    Traffic {
        canary: Counts {
            requests: canary,
            errors: 0,
        },
        stable: Counts {
            requests: stable,
            errors: 0,
        },
        ..Traffic::default()
    }
}

#[test]
fn nothing_to_check() {
    assert_eq!(check(traffic(5, 95), 5.0), None, "too few requests");
    assert_eq!(check(traffic(100_000, 0), 100.0), None, "all on the canary");
    assert_eq!(check(traffic(0, 100_000), 0.0), None);
}

#[test]
fn the_expected_share_passes_and_a_silent_drop_does_not() {
    let ok = check(traffic(5_000, 95_000), 5.0).unwrap();
    assert!(!ok.mismatch, "{ok:?}");
    assert!((ok.observed - 0.05).abs() < 1e-12 && ok.expected == 0.05);
    // Half the canary's share gone: 2.5 % instead of 5 %.
    let bad = check(traffic(2_500, 97_500), 5.0).unwrap();
    assert!(bad.mismatch, "{bad:?}");
    assert!(bad.describe().contains("2.50 %") && bad.describe().contains("weight is 5 %"));
    // Too much is a mismatch as well.
    assert!(check(traffic(10_000, 90_000), 5.0).unwrap().mismatch);
    // Within the band (20 % of the weight): 5.5 % is tolerated.
    assert!(!check(traffic(5_500, 94_500), 5.0).unwrap().mismatch);
}

#[test]
fn fallbacks_are_counted_where_they_were_routed() {
    // 5 000 routed to the canary, 1 000 of them retried on stable (counted on both).
    let mut t = traffic(5_000, 96_000);
    t.fallbacks_from_canary = 1_000;
    assert_eq!(t.routed(), (5_000, 95_000));
    assert!(!check(t, 5.0).unwrap().mismatch);
}

#[test]
fn a_a_traffic_does_not_alarm() {
    // 200 steps of 10 minutes at 1000 req/s, 5 %, checked every second.
    let mut rng = Rng::seeded(3);
    let mut alarms = 0;
    for _ in 0..200 {
        let mut t = Traffic::default();
        for _ in 0..600 {
            let c = rng.binomial(1_000, 0.05);
            t.canary.requests += c;
            t.stable.requests += 1_000 - c;
            if check(t, 5.0).is_some_and(|s| s.mismatch) {
                alarms += 1;
                break;
            }
        }
    }
    assert_eq!(alarms, 0);
}
