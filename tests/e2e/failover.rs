//! Failures of the canary cost users nothing: a killed canary process, a canary answering
//! 503, a canary failing its health check. Fallbacks and the canary's own failures are counted.

use std::time::Duration;

use crate::common::{self, count_served_by, wait_until, Canaryd, FakeGateway, Setup};

#[test]
fn killed_canary_causes_no_client_errors_for_gets() {
    let stable = FakeGateway::spawn("stable", &[]);
    let mut canary = FakeGateway::spawn("canary", &[]);
    let d = Canaryd::start(&Setup::new(&stable, &canary, 50.0));

    // Warm the upstream keepalive pool to the canary, then kill it.
    let before = count_served_by(d.proxy, 400, 4, &[]);
    assert!(
        before.get("canary").copied().unwrap_or(0) > 100,
        "{before:?}"
    );
    canary.kill();

    // Every GET still succeeds (count_served_by panics on any non-200).
    let after = count_served_by(d.proxy, 2_000, 4, &[]);
    assert_eq!(after.get("stable").copied(), Some(2_000), "{after:?}");

    let m = d.metrics();
    let fallbacks: f64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("canaryd_fallbacks_total{from=\"canary\""))
        .map(|(_, v)| v)
        .sum();
    assert!(fallbacks > 0.0, "fallbacks not counted");
    assert!(
        m[r#"canaryd_upstream_failures_total{variant="canary",kind="connect"}"#] > 0.0,
        "connect failures not counted"
    );
    // The canary's failed attempts are visible to the controller as canary 5xx.
    assert!(m[r#"canaryd_requests_total{variant="canary",code="5xx",route="default"}"#] > 0.0);
}

#[test]
fn canary_503_is_retried_on_stable_but_counted_against_the_canary() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let d = Canaryd::start(&Setup::new(&stable, &canary, 100.0));
    canary.set_knobs("error_rate=1");
    // The fake gateway answers 500 to "errors": only 502/503/504 are retried.
    let mut c = d.client();
    let r = c.get("/").unwrap();
    assert_eq!(
        r.status, 500,
        "500 is the application's answer and is passed through"
    );

    // A canary that answers 503 (an overloaded gateway) is retried on stable for GETs.
    drop(d);
    let raw = common::raw_server(|_| (503, b"oops".to_vec()));
    let mut setup = Setup::new(&stable, &canary, 100.0);
    setup.canary = vec![raw];
    let d = Canaryd::start(&setup);
    let mut c = d.client();
    for _ in 0..50 {
        let r = c.get("/").unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, "stable"));
    }
    // POST is not idempotent: not retried, the client sees the canary's 503.
    let r = c.post("/", b"x").unwrap();
    assert_eq!(r.status, 503);
    d.wait_metric(
        r#"canaryd_requests_total{variant="canary",code="5xx",route="default"}"#,
        51.0,
    );
    d.wait_metric(
        r#"canaryd_fallbacks_total{from="canary",to="stable",reason="canary_error"}"#,
        50.0,
    );
    drop(d);

    // With the retry turned off, GETs see the 503 too.
    let mut setup = Setup::new(&stable, &canary, 100.0);
    setup.canary = vec![raw];
    setup.tail = "[routing]\nretry_on_canary_error = false\n".into();
    let d = Canaryd::start(&setup);
    assert_eq!(d.client().get("/").unwrap().status, 503);
}

#[test]
fn unhealthy_canary_is_taken_out_and_comes_back() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let mut setup = Setup::new(&stable, &canary, 100.0);
    setup.canary_extra =
        "health = { path = \"/health\", interval = \"100ms\", timeout = \"500ms\", fails = 2, passes = 2 }\n"
            .into();
    let d = Canaryd::start(&setup);
    assert_eq!(d.client().get("/").unwrap().text(), "canary");

    canary.set_knobs("healthy=false");
    wait_until("canary marked down", Duration::from_secs(5), || {
        testkit::get(d.proxy, "/")
            .map(|r| r.text() == "stable")
            .unwrap_or(false)
    });
    let counts = count_served_by(d.proxy, 100, 1, &[]);
    assert_eq!(counts.get("stable").copied(), Some(100));
    assert!(
        d.metric(r#"canaryd_fallbacks_total{from="canary",to="stable",reason="unavailable"}"#)
            >= 100.0
    );
    let ready = testkit::get(d.admin, "/ready").unwrap().json();
    assert_eq!(ready["canary_available"], false);

    canary.set_knobs("healthy=true");
    wait_until("canary back in rotation", Duration::from_secs(5), || {
        testkit::get(d.proxy, "/")
            .map(|r| r.text() == "canary")
            .unwrap_or(false)
    });
}

#[test]
fn both_pools_down_is_a_502() {
    let mut stable = FakeGateway::spawn("stable", &[]);
    let mut canary = FakeGateway::spawn("canary", &[]);
    let d = Canaryd::start(&Setup::new(&stable, &canary, 50.0));
    stable.kill();
    canary.kill();
    let r = d.client().get("/").unwrap();
    assert_eq!(r.status, 502);
    assert_eq!(testkit::get(d.admin, "/healthz").unwrap().status, 200);
}

#[test]
fn a_final_connect_failure_is_counted_once() {
    // Every failed connect attempt is one 5xx of its variant: the attempt that moved the
    // request to the other pool, and the last one, whose 502 is the client's answer (that one
    // used to be recorded again when the request was logged).
    let mut stable = FakeGateway::spawn("stable", &[]);
    let mut canary = FakeGateway::spawn("canary", &[]);
    let d = Canaryd::start(&Setup::new(&stable, &canary, 0.0));
    stable.kill();
    canary.kill();
    assert_eq!(d.client().get("/").unwrap().status, 502);
    let counts = || {
        let m = d.metrics();
        let sum = |prefix: &str| -> f64 {
            m.iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v)
                .sum()
        };
        ["stable", "canary"].map(|v| {
            (
                sum(&format!(
                    "canaryd_requests_total{{variant=\"{v}\",code=\"5xx\""
                )),
                sum(&format!(
                    "canaryd_upstream_failures_total{{variant=\"{v}\",kind=\"connect\""
                )),
            )
        })
    };
    // Recorded just after the client has its answer: wait for the attempts, then check the
    // counts stay equal (a second record of the same 502 would land within microseconds).
    wait_until("a connect failure recorded", Duration::from_secs(5), || {
        counts().iter().map(|(_, f)| f).sum::<f64>() >= 1.0
    });
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    while std::time::Instant::now() < deadline {
        for (requests, failures) in counts() {
            assert_eq!(
                requests,
                failures,
                "5xx recorded vs failed attempts: {:?}",
                counts()
            );
        }
    }
}
