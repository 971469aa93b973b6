//! Per-request costs of the data plane's hot path: routing decisions, table load, metrics
//! recording, route matching and server picking; plus rendering the metrics page.
//!
//! `cargo bench -p canaryd-proxy --bench hot_path`

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use canaryd_config::{
    PoolConfig, ProxyConfig, RouteConfig, RoutingConfig, ServerEntry, StickyConfig, StickyKey,
};
use canaryd_proxy::Pool;
use canaryd_proxy::Router;
use canaryd_proxy::{Metrics, RoutingHandle, RoutingTable, Variant};
use canaryd_proxy::{RouteStats, Routes};
use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};

fn routing(key: Option<StickyKey>) -> RoutingConfig {
    RoutingConfig {
        header: Some("X-Gateway-Version".into()),
        canary_values: vec!["cpp".into(), "canary".into()],
        stable_values: vec!["python".into()],
        trusted_cidrs: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        strip_header: true,
        sticky: key.map(|key| StickyConfig {
            key,
            cookie: "canaryd_bucket".into(),
            max_age: Duration::from_secs(86_400),
        }),
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

/// A header map shaped like a real browser request, with the given extras.
fn realistic(extra: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = headers(&[
        ("host", "app.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0",
        ),
        ("accept", "text/html,application/xhtml+xml,*/*;q=0.8"),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
    ]);
    for (k, v) in extra {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

fn proxy_config() -> ProxyConfig {
    ProxyConfig {
        routes: vec![
            RouteConfig::new("/api/"),
            RouteConfig {
                read_timeout: Some(Duration::from_secs(3600)),
                ..RouteConfig::new("/api/stream")
            },
        ],
        ..ProxyConfig::default()
    }
}

fn decide(c: &mut Criterion) {
    let by_cookie = Router::new(&routing(Some(StickyKey::Cookie)));
    let by_header = Router::new(&routing(Some(StickyKey::Header("X-User".into()))));
    let by_ip = Router::new(&routing(Some(StickyKey::Ip)));
    let random = Router::new(&routing(None));
    let table = RoutingTable {
        weight_bp: 2_500,
        generation: 0,
    };
    let handle = RoutingHandle::new(2_500);
    let trusted: Option<IpAddr> = Some("10.1.2.3".parse().unwrap());
    let client: Option<IpAddr> = Some("192.0.2.7".parse().unwrap());

    let plain = realistic(&[]);
    let overridden = realistic(&[("x-gateway-version", "cpp")]);
    let cookie = realistic(&[("cookie", "session=abcdef0123456789; canaryd_bucket=42")]);
    let user = realistic(&[("x-user", "user-1234")]);

    let mut g = c.benchmark_group("decide");
    g.bench_function("random_no_sticky", |b| {
        b.iter(|| random.decide(black_box(&table), black_box(&plain), client))
    });
    g.bench_function("new_cookie_client", |b| {
        b.iter(|| by_cookie.decide(black_box(&table), black_box(&plain), client))
    });
    g.bench_function("header_override_trusted", |b| {
        b.iter(|| by_cookie.decide(black_box(&table), black_box(&overridden), trusted))
    });
    g.bench_function("sticky_cookie", |b| {
        b.iter(|| by_cookie.decide(black_box(&table), black_box(&cookie), client))
    });
    g.bench_function("sticky_header_x_user", |b| {
        b.iter(|| by_header.decide(black_box(&table), black_box(&user), client))
    });
    g.bench_function("sticky_ip", |b| {
        b.iter(|| by_ip.decide(black_box(&table), black_box(&plain), client))
    });
    g.bench_function("handle_load_then_sticky_cookie", |b| {
        b.iter(|| {
            let t = handle.load();
            by_cookie.decide(&t, black_box(&cookie), client)
        })
    });
    g.finish();
}

fn metrics(c: &mut Criterion) {
    let m = Metrics::new();
    let route = RouteStats::new("/api/".into(), None);
    let mut g = c.benchmark_group("metrics");
    g.bench_function("record", |b| {
        b.iter(|| {
            m.record(
                black_box(Variant::Canary),
                black_box(&route),
                black_box(200),
                black_box(Duration::from_micros(1_200)),
            )
        })
    });
    let mut out = String::new();
    m.render(&mut out, 2_500);
    g.bench_function("render_reused_string", |b| {
        b.iter(|| {
            out.clear();
            m.render(&mut out, black_box(2_500));
            black_box(out.len())
        })
    });
    g.finish();
}

fn routes_and_pool(c: &mut Criterion) {
    let routes = Routes::new(&proxy_config(), &[], &[]);
    c.bench_function("routes/match_path", |b| {
        b.iter(|| routes.match_path(black_box(b"/api/users/1234")))
    });
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
    .expect("literal addresses resolve");
    c.bench_function("pool/pick", |b| b.iter(|| pool.pick()));
}

criterion_group!(benches, decide, metrics, routes_and_pool);
criterion_main!(benches);
