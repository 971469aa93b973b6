//! A real Prometheus (when installed) scrapes a fake gateway and answers
//! PromQL about it: checks [`Prometheus`] end to end. Skipped, with a note,
//! when `/usr/bin/prometheus` is absent.

use std::time::Duration;

use testkit::{get, FakeGateway, Prometheus};

#[test]
fn scrapes_a_fake_gateway() {
    let gw = FakeGateway::spawn("scraped", &[]);
    let Some(prom) = Prometheus::start(&[("canary", gw.addr)]) else {
        eprintln!("skipping: /usr/bin/prometheus is not installed");
        return;
    };
    let dir = prom.dir().to_path_buf();
    assert!(dir.join("prometheus.yml").is_file());
    for _ in 0..3 {
        assert_eq!(get(gw.addr, "/").unwrap().status, 200);
    }
    prom.wait_for_series(
        r#"gateway_requests_total{job="canary",code="200"} >= 3"#,
        Duration::from_secs(20),
    );
    assert_eq!(
        prom.query_value(r#"sum(gateway_requests_total{job="canary"})"#),
        Some(3.0)
    );
    let answer = prom.query("up");
    assert_eq!(answer["status"], "success");
    assert_eq!(prom.query_value("scalar(up)"), Some(1.0));
    drop(prom);
    assert!(!dir.exists(), "temp dir removed on drop");
}
