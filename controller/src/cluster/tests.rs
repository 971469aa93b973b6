//! The fence, the epoch and the summing of reports, against a real etcd (the e2e `fleet`
//! module covers the whole daemons).

use std::sync::Arc;
use std::time::Duration;

use canaryd_proxy::{Metrics, Variant};
use tokio::time::Instant;

use super::reports::{sum_window, Report, VariantCounts, WindowReport};
use super::*;
use crate::policy::Policy;
use crate::rollout::Rollout;

fn opts(etcd: &testkit::Etcd, name: &str) -> ClusterOptions {
    ClusterOptions {
        endpoints: vec![etcd.url()],
        prefix: "/canaryd/test".into(),
        name: name.into(),
        admin: format!("127.0.0.1:9{name}"),
        lease_ttl: Duration::from_secs(2),
        ca_pem: None,
        identity_pem: None,
        user: None,
    }
}

async fn elected(link: &ClusterLink) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(f) = link.leadership.borrow().acting(Instant::now()) {
            return f;
        }
        assert!(Instant::now() < deadline, "not elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn state(percent: f64) -> RolloutState {
    let mut r = Rollout::idle(Policy::manual(), percent, 0);
    r.state.reason = "test".into();
    r.state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leaders_write_is_refused_inside_etcd() {
    let Some(etcd) = testkit::Etcd::start() else {
        testkit::tool_missing("etcd");
        return;
    };
    let metrics = Arc::new(Metrics::new());
    let mut a = Cluster::start(opts(&etcd, "a"), metrics.clone());
    let fence_a = elected(&a).await;
    assert_eq!(a.cluster.write(fence_a, &state(5.0)).await, Ok(1));
    // Same split: same epoch; a new split: the next one.
    assert_eq!(a.cluster.write(fence_a, &state(5.0)).await, Ok(1));
    assert_eq!(a.cluster.write(fence_a, &state(25.0)).await, Ok(2));
    // A move towards stable is written in the background; its outcome is an event.
    a.cluster.write_later(fence_a, &state(10.0));
    loop {
        match tokio::time::timeout(Duration::from_secs(5), a.events.recv()).await {
            Ok(Some(Event::Written(r))) => {
                assert_eq!(r, Ok(3));
                break;
            }
            Ok(Some(Event::Shared(_))) => continue,
            other => panic!("no write outcome: {other:?}"),
        }
    }

    // A's report is out under its lease.
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.cluster.fleet().reports().len() != 1 {
        assert!(
            Instant::now() < deadline,
            "no report: {:?}",
            etcd.get("/canaryd/test/members/a")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = Cluster::start(opts(&etcd, "b"), metrics);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        b.leadership.borrow().acting(Instant::now()).is_none(),
        "two leaders"
    );
    a.cluster.resign().await;
    let fence_b = elected(&b).await;
    assert_ne!(fence_a, fence_b);
    // A, deposed, still holding its old fence: etcd refuses.
    assert_eq!(
        a.cluster.write(fence_a, &state(100.0)).await,
        Err(WriteError::Fenced)
    );
    let stored: SharedState =
        serde_json::from_str(&etcd.get("/canaryd/test/state").expect("state")).unwrap();
    assert_eq!(stored.state.canary_percent, 10.0);
    assert_eq!(stored.leader, "a");
    // B continues from what it read: epoch 4 for a new split.
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.cluster.last_shared().is_none() {
        assert!(Instant::now() < deadline, "b never saw the shared state");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.cluster.write(fence_b, &state(50.0)).await, Ok(4));
    let status = b.cluster.status(Instant::now());
    assert_eq!(status.role, crate::api::ClusterRole::Leader);
    assert_eq!(status.leader.as_deref(), Some("b"));
}

fn report(name: &str, epoch: u64, requests: u64, errors: u64, buckets: Vec<u64>) -> Report {
    let v = VariantCounts {
        requests,
        errors,
        seconds: 10.0,
        buckets,
    };
    Report {
        name: name.into(),
        epoch,
        ts_ms: crate::control::wall_ms(),
        windows: vec![WindowReport {
            window_ms: 10_000,
            canary: v.clone(),
            stable: v,
        }],
        ..Report::default()
    }
}

#[test]
fn counters_and_buckets_are_summed_never_ratios() {
    let reports = [
        report("a", 1, 100, 1, vec![100, 0]),
        report("b", 1, 10, 10, vec![0, 10]),
    ];
    let s = sum_window(&reports, Variant::Canary, Duration::from_secs(10)).unwrap();
    assert_eq!((s.requests, s.errors), (110, 11));
    // 11/110, not the mean of 0.01 and 1.0.
    assert_eq!(s.error_ratio(), Some(0.1));
    assert_eq!(s.buckets, vec![100, 10]);
    // A window a member does not report: no sum.
    assert!(sum_window(&reports, Variant::Canary, Duration::from_secs(5)).is_none());
}

#[test]
fn without_a_quorum_on_the_current_epoch_there_is_no_data() {
    let fleet = Fleet::default();
    fleet.store(vec![
        report("a", 2, 10, 0, vec![10]),
        report("b", 1, 10, 0, vec![10]),
        report("c", 1, 10, 0, vec![10]),
    ]);
    fleet.set_epoch(2);
    assert!(fleet
        .stats(Variant::Canary, Duration::from_secs(10))
        .is_none());
    fleet.set_epoch(1);
    let s = fleet
        .stats(Variant::Canary, Duration::from_secs(10))
        .unwrap();
    assert_eq!(s.requests, 20, "b and c, a majority of three");
    assert!(fleet.traffic().is_some());
}

/// `[cluster]` as a fleet member writes it, files read by [`ClusterOptions::from_config`].
fn config(etcd: &testkit::Etcd) -> canaryd_config::ClusterConfig {
    canaryd_config::ClusterConfig {
        store: canaryd_config::StoreKind::Etcd,
        endpoints: vec![etcd.url()],
        prefix: "/canaryd/secure".into(),
        name: "s".into(),
        lease_ttl: Duration::from_secs(2),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reaches_etcd_over_mutual_tls() {
    let Some(etcd) = testkit::Etcd::start_tls() else {
        testkit::tool_missing("etcd or openssl");
        return;
    };
    let tls = etcd.tls().expect("tls").clone();
    let mut c = config(&etcd);
    c.ca_file = Some(tls.ca);
    c.cert = Some(tls.client_cert);
    c.key = Some(tls.client_key);
    let opts = ClusterOptions::from_config(&c, "127.0.0.1:9180").expect("files read");
    let link = Cluster::start(opts, Arc::new(Metrics::new()));
    let fence = elected(&link).await;
    assert_eq!(link.cluster.write(fence, &state(5.0)).await, Ok(1));
    assert!(etcd.get("/canaryd/secure/state").is_some());

    // Without the client certificate etcd refuses: never elected, never connected.
    let mut c = config(&etcd);
    c.ca_file = etcd.tls().map(|t| t.ca.clone());
    let opts = ClusterOptions::from_config(&c, "127.0.0.1:9181").expect("files read");
    let anon = Cluster::start(opts, Arc::new(Metrics::new()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!anon.cluster.connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_authenticates_with_its_password_file() {
    use std::os::unix::fs::PermissionsExt;
    let Some(mut etcd) = testkit::Etcd::start() else {
        testkit::tool_missing("etcd");
        return;
    };
    etcd.enable_auth("canaryd", "s3cret-pass");
    let dir = testkit::TempDir::new("cluster-auth");
    let password = dir.path().join("etcd.password");
    std::fs::write(&password, "s3cret-pass\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut c = config(&etcd);
    c.username = Some("canaryd".into());
    c.password_file = Some(password.clone());
    let opts = ClusterOptions::from_config(&c, "127.0.0.1:9180").expect("files read");
    let link = Cluster::start(opts, Arc::new(Metrics::new()));
    let fence = elected(&link).await;
    assert_eq!(link.cluster.write(fence, &state(5.0)).await, Ok(1));

    // A readable password file is refused before anything connects, naming key and file.
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = ClusterOptions::from_config(&c, "127.0.0.1:9180").unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cluster.password_file: cannot read"),
        "{e}"
    );
}

#[test]
fn the_fleets_counts_grow_from_the_epoch_on_whoever_joins_or_restarts() {
    let with = |name: &str, requests: u64| {
        let mut r = report(name, 1, 0, 0, vec![0]);
        r.traffic.canary = crate::policy::Counts {
            requests,
            errors: requests / 10,
        };
        r
    };
    let fleet = Fleet::default();
    fleet.set_epoch(1);
    fleet.store(vec![with("a", 1000), with("b", 500)]);
    assert_eq!(
        fleet.traffic().unwrap().canary.requests,
        0,
        "from the epoch on"
    );
    fleet.store(vec![with("a", 1100), with("b", 550)]);
    assert_eq!(fleet.traffic().unwrap().canary.requests, 150);
    // c joins with a long history: none of it counts.
    fleet.store(vec![with("a", 1100), with("b", 550), with("c", 9000)]);
    assert_eq!(fleet.traffic().unwrap().canary.requests, 150);
    // b restarts (its counters begin again) and c goes on.
    fleet.store(vec![with("a", 1100), with("b", 20), with("c", 9010)]);
    assert_eq!(fleet.traffic().unwrap().canary.requests, 150 + 20 + 10);
    // A new epoch starts from zero.
    fleet.set_epoch(2);
    fleet.store(vec![{
        let mut r = with("a", 1200);
        r.epoch = 2;
        r
    }]);
    assert_eq!(fleet.traffic().unwrap().canary.requests, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_resigned_campaigns_again_when_its_controller_runs_again() {
    let Some(etcd) = testkit::Etcd::start() else {
        testkit::tool_missing("etcd");
        return;
    };
    let a = Cluster::start(opts(&etcd, "a"), Arc::new(Metrics::new()));
    let first = elected(&a).await;
    a.cluster.resign().await;
    assert!(a.leadership.borrow().acting(Instant::now()).is_none());
    assert!(etcd.get("/canaryd/test/leader").is_none(), "resigned");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        etcd.get("/canaryd/test/leader").is_none(),
        "campaigned while resigned"
    );
    // A failed upgrade: the old process's controller runs again.
    a.cluster.rejoin();
    let again = elected(&a).await;
    assert!(again > first);
}
