//! The split changed at run time through the `RoutingHandle` (the controller's write path)
//! while clients hammer the proxy: no request fails, and once a swap returns every new request
//! follows the new weight. Runs the real Pingora server in this process against real upstream
//! processes, so the handle can be driven directly.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canaryd_config::DataPlaneConfig;
use canaryd_proxy::{build_data_plane, ProxyServer, RoutingHandle};
use testkit::{free_addr, wait_for_port, Client, FakeGateway};

#[test]
fn fifty_swaps_under_load_fail_nothing_and_take_effect_at_once() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let listen = free_addr();
    let cfg: DataPlaneConfig = toml::from_str(&format!(
        "[proxy]\nlisten = [\"{listen}\"]\nthreads = 2\n\
         [backends.stable]\nservers = [\"{}\"]\n[backends.canary]\nservers = [\"{}\"]\n",
        stable.addr, canary.addr
    ))
    .unwrap();
    assert!(cfg.validate().is_empty());
    let handle = RoutingHandle::new(0);
    let plane = build_data_plane(&cfg, handle.clone()).unwrap();
    let server = ProxyServer::build(&cfg, plane).unwrap();
    std::thread::spawn(move || server.run(Box::new(|| {})));
    wait_for_port(listen, Duration::from_secs(10));

    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(listen).unwrap();
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match c.get("/") {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => failures.push(format!("status {}", r.status)),
                        Err(e) => failures.push(e.to_string()),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();

    let mut probe = Client::connect(listen).unwrap();
    for i in 0..50 {
        let (bp, expect) = if i % 2 == 0 {
            (10_000, "canary")
        } else {
            (0, "stable")
        };
        let table = handle.set_weight_bp(bp);
        assert_eq!(table.generation, i + 1);
        for _ in 0..20 {
            let r = probe.get("/").unwrap();
            assert_eq!(r.text(), expect, "swap {i} to {bp} bp not in force");
        }
    }
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = load.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(
        failures.is_empty(),
        "failed requests under swaps: {failures:?}"
    );
    assert!(
        done.load(Ordering::Relaxed) > 500,
        "load generator barely ran"
    );
}
