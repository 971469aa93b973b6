//! The request path allocates nothing: routing decisions (every branch), loading the routing
//! table, recording metrics, matching a route and picking a server; the access log allocates
//! only a new 64 KiB buffer when it hands a full one to its writer, never per line.
//!
//! A counting global allocator wraps the system one. Only allocations made by this test's own
//! thread while it is "armed" are counted, so the test harness's threads cannot interfere. All
//! checks live in one `#[test]` so they run in sequence on that one thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use canaryd_config::{
    PoolConfig, ProxyConfig, RouteConfig, RoutingConfig, ServerEntry, StickyConfig, StickyKey,
};
use canaryd_proxy::Pool;
use canaryd_proxy::Routes;
use canaryd_proxy::{Metrics, RoutingHandle, RoutingTable, Variant};
use canaryd_proxy::{Reason, Router};
use http::{HeaderMap, HeaderValue};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` initialisation: reading it never allocates nor registers a destructor.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn note() {
    // `try_with`: the allocator may run while this thread's locals are being torn down.
    if ARMED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const ITERATIONS: usize = 10_000;

/// Allocations `f` makes on this thread over `ITERATIONS` calls, after one warm-up call (first
/// calls may lazily initialise thread-locals, the clock, arc-swap's debt list...).
fn allocations(mut f: impl FnMut()) -> usize {
    f();
    ALLOCATIONS.store(0, Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    for _ in 0..ITERATIONS {
        f();
    }
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.load(Ordering::Relaxed)
}

fn sticky(key: StickyKey) -> Option<StickyConfig> {
    Some(StickyConfig {
        key,
        cookie: "canaryd_bucket".into(),
        max_age: Duration::from_secs(86_400),
    })
}

fn routing(key: StickyKey) -> RoutingConfig {
    RoutingConfig {
        header: Some("X-Gateway-Version".into()),
        canary_values: vec!["cpp".into(), "canary".into()],
        stable_values: vec!["python".into()],
        trusted_cidrs: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        strip_header: true,
        sticky: sticky(key),
        ..RoutingConfig::default()
    }
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

#[test]
fn hot_path_does_not_allocate() {
    // --- Build everything up front: construction may allocate freely. ---
    let by_cookie = Router::new(&routing(StickyKey::Cookie));
    let by_header = Router::new(&routing(StickyKey::Header("X-User".into())));
    let by_ip = Router::new(&routing(StickyKey::Ip));
    let no_sticky = Router::new(&RoutingConfig {
        sticky: None,
        ..routing(StickyKey::Cookie)
    });
    let table = RoutingTable {
        weight_bp: 2_500,
        generation: 0,
    };
    let handle = RoutingHandle::new(2_500);
    let trusted: Option<IpAddr> = Some("10.1.2.3".parse().unwrap());
    let untrusted: Option<IpAddr> = Some("192.0.2.7".parse().unwrap());

    let none = HeaderMap::new();
    let overridden = headers(&[("x-gateway-version", " CPP ")]);
    let cookie = headers(&[("cookie", "a=1; canaryd_bucket=42; b=2")]);
    let user = headers(&[("x-user", "user-1234")]);
    let mixed = headers(&[
        ("x-gateway-version", "python"),
        ("cookie", "canaryd_bucket=9000"),
        ("x-user", "someone"),
    ]);

    let proxy = ProxyConfig {
        routes: vec![
            RouteConfig::new("/api/"),
            RouteConfig {
                read_timeout: Some(Duration::from_secs(3600)),
                ..RouteConfig::new("/api/stream")
            },
        ],
        ..ProxyConfig::default()
    };
    let routes = Routes::new(&proxy, &[], &[]);
    let metrics = Metrics::new();
    let pool = Pool::new(
        "backends.stable",
        0,
        &PoolConfig {
            servers: vec![
                ServerEntry {
                    addr: "127.0.0.1:18081".into(),
                    weight: 3,
                },
                ServerEntry {
                    addr: "127.0.0.1:18082".into(),
                    weight: 1,
                },
            ],
            health: None,
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            keepalive: None,
            ca_file: None,
        },
    )
    .unwrap();

    // --- Sanity: each case takes the branch it is meant to exercise. ---
    let d = no_sticky.decide(&table, &none, None);
    assert_eq!((d.reason, d.new_cookie), (Reason::Random, None));
    let d = by_cookie.decide(&table, &none, None);
    assert_eq!(d.reason, Reason::Sticky);
    assert!(d.new_cookie.is_some());
    let d = by_cookie.decide(&table, &overridden, trusted);
    assert_eq!((d.variant, d.reason), (Variant::Canary, Reason::Header));
    let d = by_cookie.decide(&table, &cookie, None);
    assert_eq!(
        (d.variant, d.reason, d.new_cookie),
        (Variant::Canary, Reason::Sticky, None)
    );
    let d = by_header.decide(&table, &user, None);
    assert_eq!((d.reason, d.new_cookie), (Reason::Sticky, None));
    let d = by_ip.decide(&table, &none, untrusted);
    assert_eq!(d.reason, Reason::Sticky);
    let d = by_cookie.decide(&table, &mixed, untrusted);
    assert_eq!((d.variant, d.reason), (Variant::Stable, Reason::Sticky));
    assert_eq!(routes.match_path(b"/api/stream/x"), 2);
    assert!(pool.pick().is_some());

    // --- The checks. ---
    let mut failures = Vec::new();
    let mut check = |name: &str, n: usize| {
        if n != 0 {
            failures.push(format!("{name}: {n} allocations in {ITERATIONS} calls"));
        }
    };

    check(
        "decide: no sticky, weighted random",
        allocations(|| {
            black_box(no_sticky.decide(black_box(&table), black_box(&none), None));
        }),
    );
    check(
        "decide: new cookie client (fresh bucket)",
        allocations(|| {
            black_box(by_cookie.decide(black_box(&table), black_box(&none), None));
        }),
    );
    check(
        "decide: header override from trusted client",
        allocations(|| {
            black_box(by_cookie.decide(black_box(&table), black_box(&overridden), trusted));
        }),
    );
    check(
        "decide: header override from untrusted client (ignored)",
        allocations(|| {
            black_box(by_cookie.decide(black_box(&table), black_box(&overridden), untrusted));
        }),
    );
    check(
        "decide: existing sticky cookie",
        allocations(|| {
            black_box(by_cookie.decide(black_box(&table), black_box(&cookie), None));
        }),
    );
    check(
        "decide: sticky header:X-User",
        allocations(|| {
            black_box(by_header.decide(black_box(&table), black_box(&user), None));
        }),
    );
    check(
        "decide: sticky ip",
        allocations(|| {
            black_box(by_ip.decide(black_box(&table), black_box(&none), untrusted));
        }),
    );
    check(
        "RoutingHandle::load + decide",
        allocations(|| {
            let t = handle.load();
            black_box(by_cookie.decide(&t, black_box(&cookie), None));
        }),
    );
    let mut i = 0u16;
    check(
        "Metrics::record",
        allocations(|| {
            i = i.wrapping_add(1);
            let variant = Variant::ALL[usize::from(i & 1)];
            let status = [200, 302, 404, 503][usize::from(i % 4)];
            metrics.record(
                variant,
                &routes.all()[usize::from(i % 3)].stats,
                status,
                Duration::from_micros(u64::from(i)),
            );
        }),
    );
    check(
        "Routes::match_path",
        allocations(|| {
            black_box(routes.match_path(black_box(b"/api/stream/events")));
            black_box(routes.match_path(black_box(b"/api/users/1")));
            black_box(routes.match_path(black_box(b"/health")));
            black_box(routes.match_request(black_box(b"App.Example.com"), black_box(b"/api/x")));
        }),
    );
    check(
        "Pool::pick",
        allocations(|| {
            black_box(pool.pick());
        }),
    );

    // An access log line: formatted into the worker's buffer; a new buffer per ~64 KiB.
    let dir = std::env::temp_dir().join(format!("canaryd-zero-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = canaryd_proxy::AccessLog::open(&canaryd_config::AccessLogConfig {
        path: dir.join("access.log").display().to_string(),
        format: canaryd_config::AccessLogFormat::Combined,
    })
    .unwrap();
    let mut req = pingora_http::RequestHeader::build("GET", b"/api/orders?id=7", None).unwrap();
    req.append_header(
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
    )
    .unwrap();
    req.append_header("Referer", "https://shop.example.com/cart")
        .unwrap();
    let entry = canaryd_proxy::AccessLogEntry {
        req: &req,
        http2: false,
        client: trusted,
        status: 200,
        bytes: 612,
        duration: Duration::from_micros(4_200),
        upstream: Some("127.0.0.1:8080".parse().unwrap()),
        upstream_time: Some(Duration::from_micros(3_900)),
        request_id: Some(b"4f1c2a9e0b7d4c13a5e8f60d9b2c7e11"),
        variant: Some(Variant::Stable),
        route: "default",
    };
    let n = allocations(|| log.record(black_box(&entry)));
    // A line is ~150 bytes: ~400 lines per buffer, so ~25 new buffers in 10 000 lines.
    if n > ITERATIONS / 200 {
        failures.push(format!(
            "AccessLog::record: {n} allocations in {ITERATIONS} lines (one per 64 KiB expected)"
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);

    assert!(
        failures.is_empty(),
        "the hot path allocated:\n{}",
        failures.join("\n")
    );
    // The counter itself works: an allocation while armed is seen.
    assert_eq!(
        allocations(|| {
            black_box(Vec::<u8>::with_capacity(8));
        }),
        ITERATIONS
    );
}
