//! The routing decision through the real binary: split accuracy, exact 0 % and 100 %, header
//! override (and `trusted_cidrs`), sticky buckets across weight changes.

use std::collections::HashMap;

use crate::common::{count_served_by, Canaryd, FakeGateway, Setup};

fn gateways() -> (FakeGateway, FakeGateway) {
    (
        FakeGateway::spawn("stable", &[]),
        FakeGateway::spawn("canary", &[]),
    )
}

#[test]
fn five_percent_split_is_accurate_and_extremes_are_exact() {
    let (stable, canary) = gateways();

    let d = Canaryd::start(&Setup::new(&stable, &canary, 5.0));
    let counts = count_served_by(d.proxy, 20_000, 4, &[]);
    let on_canary = counts.get("canary").copied().unwrap_or(0);
    let share = on_canary as f64 / 20_000.0 * 100.0;
    assert!(
        (share - 5.0).abs() <= 0.7,
        "canary share {share:.2} % is not within 5 ± 0.7 %: {counts:?}"
    );
    assert_eq!(d.metric("canaryd_canary_weight_percent"), 5.0);
    d.wait_metric(
        r#"canaryd_requests_total{variant="canary",code="2xx",route="default"}"#,
        on_canary as f64,
    );
    drop(d);

    let d = Canaryd::start(&Setup::new(&stable, &canary, 0.0));
    let counts = count_served_by(d.proxy, 5_000, 4, &[]);
    assert_eq!(counts, HashMap::from([("stable".to_string(), 5_000)]));
    drop(d);

    let d = Canaryd::start(&Setup::new(&stable, &canary, 100.0));
    let counts = count_served_by(d.proxy, 5_000, 4, &[]);
    assert_eq!(counts, HashMap::from([("canary".to_string(), 5_000)]));
}

const HEADER_ROUTING: &str = r#"
[routing]
header = "X-Gateway-Version"
canary_values = ["cpp", "canary"]
stable_values = ["python", "stable"]
"#;

#[test]
fn header_override_both_ways() {
    let (stable, canary) = gateways();
    for (percent, value, expect) in [(0.0, "cpp", "canary"), (100.0, "python", "stable")] {
        let mut setup = Setup::new(&stable, &canary, percent);
        setup.tail = HEADER_ROUTING.to_string();
        let d = Canaryd::start(&setup);
        let counts = count_served_by(d.proxy, 200, 2, &[("X-Gateway-Version", value)]);
        assert_eq!(
            counts,
            HashMap::from([(expect.to_string(), 200)]),
            "{value}"
        );
        // An unknown value falls through to the split.
        let counts = count_served_by(d.proxy, 50, 1, &[("X-Gateway-Version", "rust")]);
        let split = if percent == 0.0 { "stable" } else { "canary" };
        assert_eq!(counts, HashMap::from([(split.to_string(), 50)]));
    }
}

#[test]
fn header_from_outside_trusted_cidrs_is_ignored() {
    let (stable, canary) = gateways();
    for (cidr, expect) in [("10.0.0.0/8", "stable"), ("127.0.0.0/8", "canary")] {
        let mut setup = Setup::new(&stable, &canary, 0.0);
        setup.tail = format!("{HEADER_ROUTING}trusted_cidrs = [\"{cidr}\"]\n");
        let d = Canaryd::start(&setup);
        let counts = count_served_by(d.proxy, 100, 1, &[("X-Gateway-Version", "canary")]);
        assert_eq!(
            counts,
            HashMap::from([(expect.to_string(), 100)]),
            "trusted {cidr}"
        );
    }
}

/// 1 000 clients keep their cookie while the weight goes 5 → 25 → 50 → 0 %: nobody moves
/// canary → stable while the weight grows, and at 0 % nobody is on the canary.
#[test]
fn sticky_cookie_is_monotonic_through_the_steps() {
    let (stable, canary) = gateways();
    let sticky =
        "[routing]\nsticky = { key = \"cookie\", cookie = \"canaryd_bucket\", max_age = \"1h\" }\n";

    let mut cookies: Vec<String> = Vec::with_capacity(1_000);
    let mut on_canary = vec![false; 1_000];
    for (step, percent) in [5.0, 25.0, 50.0, 0.0].into_iter().enumerate() {
        let mut setup = Setup::new(&stable, &canary, percent);
        setup.tail = sticky.to_string();
        let d = Canaryd::start(&setup);
        let mut c = d.client();
        let mut canary_count = 0;
        for i in 0..1_000 {
            let r = if step == 0 {
                let r = c.get("/").expect("first visit");
                let set = r
                    .header("set-cookie")
                    .expect("a new client gets a bucket cookie");
                assert!(set.contains("Max-Age=3600"), "{set}");
                let pair = set.split(';').next().unwrap_or_default().to_string();
                cookies.push(pair);
                r
            } else {
                let r = c
                    .request("GET", "/", &[("Cookie", &cookies[i])], b"")
                    .expect("returning visit");
                assert!(r.header("set-cookie").is_none(), "known client re-cookied");
                r
            };
            assert_eq!(r.status, 200);
            let now_canary = r.text() == "canary";
            if percent == 0.0 {
                assert!(!now_canary, "client {i} on the canary at 0 %");
            } else {
                assert!(
                    !on_canary[i] || now_canary,
                    "client {i} moved canary -> stable at {percent} %"
                );
            }
            on_canary[i] = now_canary;
            canary_count += usize::from(now_canary);
        }
        // Loose bound: 1 000 clients, so the share is within a few points of the weight.
        let share = canary_count as f64 / 10.0;
        assert!(
            (share - percent).abs() <= 5.0,
            "{share} % of clients on the canary at {percent} %"
        );
    }
}

#[test]
fn sticky_by_header_and_by_ip() {
    let (stable, canary) = gateways();
    // By header: the same user always lands on the same side; users spread out.
    let mut setup = Setup::new(&stable, &canary, 50.0);
    setup.tail = "[routing]\nsticky = { key = \"header:X-User\" }\n".to_string();
    let d = Canaryd::start(&setup);
    let mut c = d.client();
    let mut sides = HashMap::new();
    for user in 0..200 {
        let id = format!("user-{user}");
        let first = c
            .request("GET", "/", &[("X-User", &id)], b"")
            .unwrap()
            .text();
        for _ in 0..3 {
            let again = c
                .request("GET", "/", &[("X-User", &id)], b"")
                .unwrap()
                .text();
            assert_eq!(again, first, "{id} changed sides");
        }
        *sides.entry(first).or_insert(0) += 1;
    }
    assert_eq!(
        sides.len(),
        2,
        "users should spread over both sides: {sides:?}"
    );
    drop(d);

    // By IP: every request from 127.0.0.1 lands on one side.
    let mut setup = Setup::new(&stable, &canary, 50.0);
    setup.tail = "[routing]\nsticky = { key = \"ip\" }\n".to_string();
    let d = Canaryd::start(&setup);
    let counts = count_served_by(d.proxy, 200, 2, &[]);
    assert_eq!(counts.len(), 1, "one client IP, one side: {counts:?}");
}
