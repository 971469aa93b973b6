//! [`LiveSources`]: the Prometheus client is swapped for every clone (as the daemon does on
//! SIGHUP) while a query runs; the running query finishes with the client it started with, the
//! next one uses the new client, and no client makes PromQL rules errors.

use std::sync::Arc;
use std::time::Duration;

use canaryd_controller::{LiveSources, Policy, PromClient, Sample, Sources};
use canaryd_proxy::{Metrics, Variant};
use testkit::prom_standin::Answer;
use testkit::PromStandIn;

const POLICY: &str = r#"
name = "swap"
interval = "1s"
[[steps]]
weight = 100
hold = "1m"
[[rules]]
name = "errors"
source = "prometheus"
query = 'sum(rate(x{variant="{{variant}}"}[1m]))'
fail_when = "> 0.1"
"#;

#[test]
fn a_swapped_client_serves_the_next_query_and_a_running_one_keeps_its_own() {
    let old = PromStandIn::start(Answer::Value(1.0));
    old.set_delay(Duration::from_millis(800));
    let new = PromStandIn::start(Answer::Value(2.0));
    let client = |prom: &PromStandIn| PromClient::new(&prom.url(), Duration::from_secs(5)).unwrap();
    let rule = Policy::from_source("swap.toml", POLICY)
        .expect("policy")
        .rules
        .remove(0);
    let sources = LiveSources::new(Some(client(&old)), Arc::new(Metrics::new()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // The loop's way: a clone sampled in a task of its own.
    let running = {
        let sources = sources.clone();
        let rule = rule.clone();
        rt.spawn(async move { sources.sample(&rule, Variant::Canary).await })
    };
    assert!(old.wait_for_queries(1, Duration::from_secs(5)));
    sources.set_prometheus(Some(client(&new)));
    assert_eq!(
        sources.prometheus().map(|p| p.url().to_owned()),
        Some(new.url())
    );
    assert_eq!(
        rt.block_on(sources.sample(&rule, Variant::Stable)),
        Sample::Value(2.0)
    );
    assert_eq!(
        new.last_request().and_then(|r| r.query).as_deref(),
        Some(r#"sum(rate(x{variant="stable"}[1m]))"#)
    );
    assert_eq!(rt.block_on(running).expect("task"), Sample::Value(1.0));
    assert_eq!(
        old.last_request().and_then(|r| r.query).as_deref(),
        Some(r#"sum(rate(x{variant="canary"}[1m]))"#)
    );
    assert_eq!(old.queries(), 1);

    sources.set_prometheus(None);
    assert!(sources.prometheus().is_none());
    match rt.block_on(sources.sample(&rule, Variant::Canary)) {
        Sample::Error(message) => assert!(message.contains("no [prometheus] section"), "{message}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(new.queries(), 1);
}
