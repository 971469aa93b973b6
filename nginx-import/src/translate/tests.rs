use super::*;
use crate::parser::parse;

fn plan(src: &str) -> Plan {
    plan_with(src, &[]).unwrap()
}

fn plan_with(src: &str, canary: &[&str]) -> Result<Plan, ImportError> {
    let ds = parse("f.conf", src).unwrap();
    translate(
        &ds,
        &Options {
            canary: canary.iter().map(|s| s.to_string()).collect(),
        },
    )
}

fn addrs(p: &PoolPlan) -> Vec<&str> {
    p.servers.iter().map(|s| s.value.addr.as_str()).collect()
}

/// `LINE: directive`, in line order (the caller, `super::super::finish`, sorts too).
fn untranslated(p: &Plan) -> Vec<String> {
    let mut u: Vec<_> = p.untranslated.iter().collect();
    u.sort_by_key(|f| f.line);
    u.iter()
        .map(|f| format!("{}: {}", f.line, f.directive))
        .collect()
}

const SEED: &str = r#"upstream veloz_gateway {
    # Python Gateway (fallback)
    server 127.0.0.1:8080 weight=95 max_fails=3 fail_timeout=30s;

    # C++ Gateway (canary)
    server 127.0.0.1:8081 weight=5 max_fails=3 fail_timeout=30s;

    keepalive 100;
}

server {
    listen 80;
    server_name veloz.example.com;

    location /health {
        proxy_pass http://veloz_gateway/health;
        access_log off;
    }

    location /api/ {
        proxy_pass http://veloz_gateway;
        proxy_set_header Host $host;
        proxy_connect_timeout 5s;
        proxy_send_timeout 30s;
        proxy_read_timeout 30s;
    }

    location /api/stream {
        proxy_pass http://veloz_gateway/api/stream;
        proxy_set_header Host $host;
        proxy_buffering off;
        proxy_read_timeout 3600s;
    }
}
"#;

#[test]
fn weighted_upstream_splits_on_the_smaller_weight() {
    let p = plan(SEED);
    assert_eq!(addrs(&p.stable), ["127.0.0.1:8080"]);
    assert_eq!(addrs(&p.canary), ["127.0.0.1:8081"]);
    assert_eq!(p.initial_percent.value, 5.0);
    assert_eq!(p.stable.max_fails.value, 3);
    assert_eq!(p.canary.fail_timeout.value, 30_000);
    assert_eq!(p.proxy.listen[0].value, "0.0.0.0:80");
    assert_eq!(p.proxy.keepalive_pool.as_ref().unwrap().value, 100);
    assert!(p.routing.is_none());
    assert_eq!(p.health_path.as_deref(), Some("/health"));
    assert!(p.untranslated.is_empty(), "{:?}", untranslated(&p));
}

#[test]
fn timeouts_inherit_and_become_routes() {
    let p = plan(SEED);
    // No `location /`: the server level, i.e. nginx's 60 s defaults.
    assert_eq!(p.proxy.read_timeout.value, 60_000);
    assert!(p.proxy.read_timeout.comment.contains("nginx default"));
    let routes: Vec<_> = p.routes.iter().map(|r| r.prefix.as_str()).collect();
    assert_eq!(routes, ["/api/", "/api/stream"]);
    let api = &p.routes[0];
    assert_eq!(api.connect_timeout.as_ref().unwrap().value, 5_000);
    assert_eq!(api.read_timeout.as_ref().unwrap().value, 30_000);
    assert_eq!(api.write_timeout.as_ref().unwrap().value, 30_000);
    let stream = &p.routes[1];
    assert_eq!(stream.read_timeout.as_ref().unwrap().value, 3_600_000);
    // /api/stream does not inherit from /api/ in nginx: connect and send are the defaults.
    assert!(stream.connect_timeout.is_none());
    assert!(stream.write_timeout.is_none());
    assert!(p.notes.iter().any(|n| n.contains("404")), "{:?}", p.notes);
}

#[test]
fn location_slash_gives_the_proxy_values() {
    let p = plan(
            "upstream u { server 10.0.0.1:80 weight=9; server 10.0.0.2:80; }\n\
             server { proxy_read_timeout 20s;\n location / { proxy_pass http://u; proxy_connect_timeout 2s; }\n\
             location /slow { proxy_pass http://u; proxy_read_timeout 20s; proxy_connect_timeout 2s; }\n\
             location /sse { proxy_pass http://u; proxy_buffering off; } }\n",
        );
    assert_eq!(p.proxy.connect_timeout.value, 2_000);
    assert_eq!(p.proxy.read_timeout.value, 20_000);
    assert_eq!(p.proxy.listen[0].comment, "nginx default `listen *:80`");
    let routes: Vec<_> = p.routes.iter().map(|r| r.prefix.as_str()).collect();
    // /slow equals `/` once inherited values are counted; /sse streams.
    assert_eq!(routes, ["/sse"]);
    assert_eq!(p.routes[0].read_timeout.as_ref().unwrap().value, 20_000);
    // /sse inherits connect 60 s (server level) while `/` says 2 s.
    assert_eq!(p.routes[0].connect_timeout.as_ref().unwrap().value, 60_000);
    assert_eq!(p.initial_percent.value, 10.0);
    assert_eq!(addrs(&p.canary), ["10.0.0.2:80"]);
}

#[test]
fn a_longer_prefix_with_default_values_still_gets_a_route_under_a_shorter_one() {
    let p = plan(
        "upstream u { server 10.0.0.1:80 weight=9; server 10.0.0.2:80; }\n\
             server { location /api/ { proxy_pass http://u; proxy_read_timeout 5s; }\n\
             location /api/export { proxy_pass http://u; } }\n",
    );
    let routes: Vec<_> = p
        .routes
        .iter()
        .map(|r| (r.prefix.as_str(), r.read_timeout.as_ref().map(|s| s.value)))
        .collect();
    assert_eq!(routes, [("/api/", Some(5_000)), ("/api/export", None)]);
}

#[test]
fn map_on_a_header_selects_between_two_upstreams() {
    let p = plan(
        r#"map $http_x_gateway_version $backend {
    default "python";
    "cpp" "cpp";
}

upstream python_gateway { server 127.0.0.1:8080; }
upstream cpp_gateway { server 127.0.0.1:8081; }

server {
    location / {
        proxy_pass http://${backend}_gateway;
    }
}
"#,
    );
    assert_eq!(addrs(&p.stable), ["127.0.0.1:8080"]);
    assert_eq!(addrs(&p.canary), ["127.0.0.1:8081"]);
    assert_eq!(p.initial_percent.value, 0.0);
    let r = p.routing.unwrap();
    assert_eq!(r.header.value, "X-Gateway-Version");
    assert_eq!(r.canary_values, ["cpp"]);
    assert!(r.stable_values.is_empty());
    assert!(p.untranslated.is_empty(), "{:?}", p.untranslated);
}

#[test]
fn map_values_naming_the_default_upstream_are_stable_values() {
    let p = plan(
        "map $http_x_v $b { default py; python py; cpp cc; canary cc; ~^c cc; }\n\
             upstream py_gw { server 127.0.0.1:1; }\nupstream cc_gw { server 127.0.0.1:2; }\n\
             server { location / { proxy_pass http://${b}_gw; } }\n",
    );
    let r = p.routing.as_ref().unwrap();
    assert_eq!(r.header.value, "X-V");
    assert_eq!(r.canary_values, ["cpp", "canary"]);
    assert_eq!(r.stable_values, ["python"]);
    assert_eq!(untranslated(&p), ["1: ~^c cc"]);
}

#[test]
fn more_than_two_servers_need_canary() {
    let src =
        "upstream u { server 10.0.0.1:80; server 10.0.0.2:80; server 10.0.0.3:80 weight=2; }\n\
                   server { location / { proxy_pass http://u; } }\n";
    let e = plan_with(src, &[]).unwrap_err().to_string();
    assert!(e.starts_with("f.conf:1: "), "{e}");
    assert!(e.contains("Pass --canary ADDR"), "{e}");
    assert!(e.contains("it has 3 servers"), "{e}");

    let p = plan_with(src, &["10.0.0.3:80"]).unwrap();
    assert_eq!(addrs(&p.stable), ["10.0.0.1:80", "10.0.0.2:80"]);
    assert_eq!(addrs(&p.canary), ["10.0.0.3:80"]);
    assert_eq!(p.initial_percent.value, 50.0);
    assert!(!p.stable.weighted);

    let e = plan_with(src, &["10.0.0.9:80"]).unwrap_err().to_string();
    assert!(e.contains("--canary 10.0.0.9:80"), "{e}");
    assert!(e.contains("10.0.0.1:80, 10.0.0.2:80, 10.0.0.3:80"), "{e}");

    let e = plan_with(src, &["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("at least one must stay on stable"), "{e}");
}

#[test]
fn equal_weights_and_single_servers_are_explained() {
    let e = plan_with(
            "upstream u { server 10.0.0.1:80; server 10.0.0.2:80; }\nserver { location / { proxy_pass http://u; } }\n",
            &[],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("same weight") && e.contains("--canary"), "{e}");
    let e = plan_with(
        "upstream u { server 10.0.0.1:80; }\nserver { location / { proxy_pass http://u; } }\n",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("has one server"), "{e}");
    let e = plan_with("server { listen 80; }\n", &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing to translate"), "{e}");
}

#[test]
fn pools_keep_weights_and_report_differing_max_fails() {
    let p = plan_with(
        "upstream u { server 10.0.0.1:80 weight=3; server 10.0.0.2:80 weight=1 max_fails=5;\n\
             server 10.0.0.3:80 weight=1; server 10.0.0.4:80 backup; zone u 64k; ip_hash; }\n\
             server { location / { proxy_pass http://u; } }\n",
        &["10.0.0.3:80"],
    )
    .unwrap();
    assert!(p.stable.weighted);
    assert_eq!(p.stable.max_fails.value, 1);
    assert_eq!(p.initial_percent.value, 20.0);
    let u = untranslated(&p);
    assert!(
        u.iter().any(|f| f.starts_with("1: server 10.0.0.2:80")),
        "{u:?}"
    );
    assert!(
        u.iter()
            .any(|f| f.starts_with("2: server 10.0.0.4:80 backup")),
        "{u:?}"
    );
    assert!(u.iter().any(|f| f == "2: ip_hash"), "{u:?}");
    assert!(p.handled.iter().any(|f| f.directive == "zone u 64k"));
}

#[test]
fn other_upstreams_per_location_and_unused_blocks_are_reported() {
    let p = plan(
            "upstream u { server 10.0.0.1:80 weight=9; server 10.0.0.2:80; }\n\
             upstream admin { server 10.0.0.9:80; }\nupstream spare { server 10.0.0.8:80; }\n\
             server { listen 8080;\n location / { proxy_pass http://u; }\n\
             location /admin/ { proxy_pass http://admin; }\n location /v2/ { proxy_pass http://u/; } }\n\
             server { listen 81; return 301 https://example.com; }\n",
        );
    let u = untranslated(&p);
    // Another upstream of a prefix location: a named upstream and its route.
    assert!(!u.iter().any(|f| f.contains("admin")), "{u:?}");
    assert_eq!(p.upstreams[0].0, "admin");
    let admin = p.routes.iter().find(|r| r.prefix == "/admin/").unwrap();
    assert_eq!(admin.upstream.as_deref(), Some("admin"));
    assert!(u.contains(&"7: proxy_pass http://u/".to_string()), "{u:?}");
    assert!(u.contains(&"3: upstream spare { … }".to_string()), "{u:?}");
    assert!(u.contains(&"8: server { … }".to_string()), "{u:?}");
    // The unused server block's own directives are reported with the block, not one by one.
    assert!(!u.iter().any(|f| f.contains("return 301")), "{u:?}");
    assert_eq!(p.proxy.listen[0].value, "0.0.0.0:8080");
}

#[test]
fn listeners_and_connection_settings() {
    let p = plan(
            "http { keepalive_timeout 65s 60s; keepalive_requests 500; client_body_timeout 20s; send_timeout 30s;\n\
             upstream u { server 10.0.0.1:80 weight=9; server 10.0.0.2:80; keepalive 32; keepalive_timeout 90s; }\n\
             server { listen 127.0.0.1:8080 default_server; listen [::]:8080; listen 443 ssl; listen 8081 reuseport;\n\
             location / { proxy_pass http://u; keepalive_timeout 5s; } } }\n",
        );
    let l: Vec<_> = p.proxy.listen.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(l, ["127.0.0.1:8080", "[::]:8080", "0.0.0.0:8081"]);
    // The TLS listener has no certificate: [proxy.tls] is written for review.
    let tls = p.tls.as_ref().unwrap();
    assert_eq!(tls.listen[0].value, "0.0.0.0:443");
    assert!(tls.certificates.is_empty());
    assert_eq!(p.proxy.keepalive_timeout.as_ref().unwrap().value, 65_000);
    assert_eq!(p.proxy.keepalive_requests.as_ref().unwrap().value, 500);
    assert_eq!(p.proxy.client_timeout.as_ref().unwrap().value, 20_000);
    assert_eq!(p.proxy.keepalive_pool.as_ref().unwrap().value, 32);
    assert_eq!(
        p.proxy.upstream_idle_timeout.as_ref().unwrap().value,
        90_000
    );
    let u = untranslated(&p);
    for want in [
        "1: keepalive_timeout 65s 60s",
        "1: send_timeout 30s",
        "3: listen 8081 reuseport",
        "4: keepalive_timeout 5s",
    ] {
        assert!(u.contains(&want.to_string()), "{want} not in {u:?}");
    }
}

#[test]
fn bad_values_are_located_errors() {
    for (src, want) in [
            (
                "upstream u { server 10.0.0.1:80 weight=x; }",
                "f.conf:1: `server`: invalid weight \"x\"",
            ),
            (
                "server { location / { proxy_read_timeout soon; } }",
                "f.conf:1: `proxy_read_timeout`: invalid time \"soon\"",
            ),
            (
                "server {\n location / {\n proxy_read_timeout 5s 6s; } }",
                "f.conf:3: `proxy_read_timeout` expects 1 argument, found 2",
            ),
            (
                "upstream u { server 10.0.0.1:80; }\nupstream u { server 10.0.0.2:80; }",
                "f.conf:2: duplicate upstream `u` (first defined at f.conf:1)",
            ),
            (
                "server { location / { proxy_pass http://$nowhere; } }",
                "f.conf:1: `$nowhere` is not set by a `map`",
            ),
            (
                "map $http_x $b { default a; }\nserver { location / { proxy_pass http://${b}_gw; } }",
                "f.conf:1: the map value `a` selects upstream `a_gw`, which is not defined (upstreams: none;",
            ),
            (
                "map $http_x $b { \"a\" \"b\"; }\nserver { location / { proxy_pass http://$b; } }",
                "f.conf:1: map `$b` has no `default`",
            ),
        ] {
            let e = plan_with(src, &[]).unwrap_err().to_string();
            assert!(e.starts_with(want), "{src}\n{e}");
        }
}

#[test]
fn exact_regex_and_named_locations() {
    let p = plan(
            "upstream u { server 10.0.0.1:80 weight=9; server 10.0.0.2:80; }\n\
             server { location / { proxy_pass http://u; }\n\
             location ~ ^/report { proxy_pass http://u; proxy_read_timeout 300s; }\n\
             location = /ping { proxy_pass http://u; proxy_read_timeout 60s; }\n\
             location @fallback { proxy_pass http://u; }\n\
             location /nested { proxy_read_timeout 5s;\n location /nested/deep { proxy_pass http://u; } } }\n",
        );
    let u = untranslated(&p);
    // The regex location's own timeout differs from [proxy]; the exact one's does not.
    assert_eq!(
        u,
        ["3: proxy_read_timeout 300s", "5: location @fallback { … }"]
    );
    // A nested location inherits from its parent, as in nginx, so /nested covers it.
    let routes: Vec<_> = p
        .routes
        .iter()
        .map(|r| (r.prefix.as_str(), r.read_timeout.as_ref().map(|s| s.value)))
        .collect();
    assert_eq!(routes, [("/nested", Some(5_000))]);
}

#[test]
fn plain_address_upstreams_and_https() {
    let p = plan(
            "upstream u { server 10.0.0.1:80 weight=9; server 10.0.0.2:80; server unix:/run/x.sock; }\n\
             server { location / { proxy_pass https://u; }\n\
             location /legacy/ { proxy_pass http://10.0.0.5:8080; } }\n",
        );
    let u = untranslated(&p);
    assert_eq!(
        u,
        ["1: server unix:/run/x.sock", "2: proxy_pass https://u",]
    );
    assert_eq!(addrs(&p.stable), ["10.0.0.1:80"]);
    // A plain address of a prefix location: a named upstream of its own.
    assert_eq!(p.upstreams[0].0, "10_0_0_5_8080");
    assert_eq!(addrs(&p.upstreams[0].1), ["10.0.0.5:8080"]);
}

#[test]
fn events_and_main_context() {
    let p = plan(
            "user nginx;\nworker_processes 4;\nevents { worker_connections 1024; }\nhttp {\n gzip on;\n\
             upstream u { server 10.0.0.1:80 weight=9; server 10.0.0.2:80; }\n\
             server { location / { proxy_pass http://u; proxy_set_header X-Custom 1; } } }\n",
        );
    assert_eq!(p.proxy.threads.as_ref().unwrap().value, 4);
    assert_eq!(
        untranslated(&p),
        ["3: worker_connections 1024", "5: gzip on"]
    );
    // An arbitrary request header: translated.
    let set = &p.proxy.set_request_headers[0].value;
    assert_eq!((set.0.as_str(), set.1.as_str()), ("X-Custom", "1"));
    assert!(p.handled.iter().any(|f| f.directive == "user nginx"));
}

#[test]
fn access_log_becomes_the_proxy_access_log() {
    let front = |log: &str| {
        format!(
            "{log}\nupstream u {{ server 127.0.0.1:1 weight=9; server 127.0.0.1:2; }}\n\
             server {{ listen 80; location / {{ proxy_pass http://u; }} }}\n"
        )
    };
    // Predefined combined, at http level, inherited by the front.
    let p = plan(&front("access_log /var/log/nginx/a.log combined;"));
    assert_eq!(p.access_log.unwrap().path.value, "/var/log/nginx/a.log");
    let p = plan(&front("access_log /dev/stdout;"));
    assert_eq!(p.access_log.unwrap().path.value, "stdout");

    // A log_format that spells combined is combined, without a note.
    let p = plan(&front(
        "log_format c '$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"';\naccess_log /l c;",
    ));
    assert!(p.access_log.is_some());
    assert!(
        !p.notes.iter().any(|n| n.contains("log_format")),
        "{:?}",
        p.notes
    );

    // Another format is written as combined, the difference noted.
    let p = plan(&front(
        "log_format short '$remote_addr $status';\naccess_log /l short;",
    ));
    assert!(p.access_log.is_some());
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("`log_format short` is not `combined`")),
        "{:?}",
        p.notes
    );

    // off: no log, handled; no directive: nginx's default log is noted.
    let p = plan(&front("access_log off;"));
    assert!(p.access_log.is_none() && p.untranslated.is_empty());
    assert!(p.handled.iter().any(|f| f.directive == "access_log off"));
    let p = plan(&front(""));
    assert!(p.access_log.is_none());
    assert!(
        p.notes.iter().any(|n| n.contains("logs/access.log")),
        "{:?}",
        p.notes
    );

    // What a file cannot hold.
    for log in [
        "access_log syslog:server=unix:/dev/log;",
        "access_log logs/a.log;",
    ] {
        let p = plan(&front(log));
        assert!(p.access_log.is_none(), "{log}");
        assert_eq!(untranslated(&p).len(), 1, "{log}");
    }
}

const TLS_FRONT: &str = "http {
ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
ssl_ciphers HIGH:!aNULL;
upstream u { server 10.0.0.1:80 weight=95; server 10.0.0.2:80 weight=5; }
server {
    listen 80;
    listen [::]:80;
    server_name shop.example.com;
    location /.well-known/acme-challenge/ { root /var/www/certbot; }
    return 301 https://$host$request_uri;
}
server {
    listen 443 ssl http2;
    listen [::]:443 ssl;
    server_name shop.example.com;
    ssl_certificate /etc/letsencrypt/live/shop/fullchain.pem;
    ssl_certificate_key /etc/letsencrypt/live/shop/privkey.pem;
    ssl_certificate /etc/ssl/shop-rsa.pem;
    ssl_certificate_key /etc/ssl/shop-rsa.key;
    ssl_stapling on;
    ssl_session_cache shared:SSL:10m;
    location / { proxy_pass http://u; proxy_set_header Host $host; }
}
}
";

#[test]
fn tls_front_and_its_redirect_server() {
    let p = plan(TLS_FRONT);
    let l: Vec<_> = p.proxy.listen.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(
        l,
        ["0.0.0.0:80", "[::]:80"],
        "the redirect server's listeners"
    );
    assert_eq!(p.proxy.https_redirect.as_ref().map(|s| s.value), Some(true));
    let tls = p.tls.as_ref().unwrap();
    let tl: Vec<_> = tls.listen.iter().map(|s| s.value.as_str()).collect();
    assert_eq!(tl, ["0.0.0.0:443", "[::]:443"]);
    assert_eq!(tls.certificates.len(), 1);
    assert_eq!(
        tls.certificates[0].0.value,
        "/etc/letsencrypt/live/shop/fullchain.pem"
    );
    assert_eq!(
        tls.certificates[0].1.value,
        "/etc/letsencrypt/live/shop/privkey.pem"
    );
    let protocols = tls.protocols.as_ref().unwrap();
    assert_eq!(protocols.value, ["TLSv1.2", "TLSv1.3"]);
    assert!(protocols.comment.contains("TLSv1, TLSv1.1 dropped"));
    assert!(tls.http2.value, "listen … http2");
    let u = untranslated(&p);
    assert_eq!(
        u,
        [
            "9: location /.well-known/acme-challenge/ { … }",
            "18: ssl_certificate /etc/ssl/shop-rsa.pem",
            "20: ssl_stapling on",
        ],
        "{u:?}"
    );
    let handled: Vec<_> = p.handled.iter().map(|f| f.directive.as_str()).collect();
    assert!(
        handled.contains(&"return 301 https://$host$request_uri"),
        "{handled:?}"
    );
    assert!(handled.contains(&"ssl_ciphers HIGH:!aNULL"), "{handled:?}");
    assert!(
        handled.contains(&"ssl_session_cache shared:SSL:10m"),
        "{handled:?}"
    );

    // http2 on (nginx 1.25.1+), and nginx's default without it.
    let on = plan(&TLS_FRONT.replace("listen 443 ssl http2;", "listen 443 ssl; http2 on;"));
    assert!(on.tls.unwrap().http2.value);
    let off = plan(&TLS_FRONT.replace("listen 443 ssl http2;", "listen 443 ssl;"));
    assert!(!off.tls.unwrap().http2.value);
}

#[test]
fn client_max_body_size_becomes_max_body_size_for_proxy_and_routes() {
    let p = plan(
        r#"upstream g { server 127.0.0.1:8080 weight=9; server 127.0.0.1:8081 weight=1; }
server {
    listen 80;
    client_max_body_size 80m;
    location / { proxy_pass http://g; }
    location /upload/ { proxy_pass http://g; client_max_body_size 1G; }
    location /small/ { proxy_pass http://g; client_max_body_size 512k; }
    location /same/ { proxy_pass http://g; client_max_body_size 80M; }
}"#,
    );
    assert_eq!(p.proxy.max_body_size.as_ref().unwrap().value, 80 << 20);
    let route = |prefix: &str| p.routes.iter().find(|r| r.prefix == prefix);
    assert_eq!(
        route("/upload/")
            .unwrap()
            .max_body_size
            .as_ref()
            .unwrap()
            .value,
        1 << 30
    );
    assert_eq!(
        route("/small/")
            .unwrap()
            .max_body_size
            .as_ref()
            .unwrap()
            .value,
        512 << 10
    );
    assert!(route("/same/").is_none(), "the same limit needs no route");
    assert!(untranslated(&p).is_empty(), "{:?}", untranslated(&p));
    let bad = plan_with(
        "upstream g { server 127.0.0.1:1; }\nserver { client_max_body_size 5x; location / { proxy_pass http://g; } }",
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains("expected a size like `80m`, found `5x`"),
        "{bad}"
    );
}

#[test]
fn add_header_follows_nginx_inheritance_into_proxy() {
    let p = plan(
        r#"upstream g { server 127.0.0.1:8080 weight=9; server 127.0.0.1:8081 weight=1; }
server {
    listen 80;
    add_header Strict-Transport-Security "max-age=63072000" always;
    add_header X-Host $host;
    location / { proxy_pass http://g; }
    location /api/ { proxy_pass http://g; add_header X-Api yes; }
    location /bad/ { proxy_pass http://g; add_header X-Up $upstream_addr; }
}"#,
    );
    let headers: Vec<_> = p
        .proxy
        .add_response_headers
        .iter()
        .map(|s| (s.value.0.as_str(), s.value.1.as_str()))
        .collect();
    assert_eq!(
        headers,
        [
            ("Strict-Transport-Security", "max-age=63072000"),
            ("X-Host", "$host")
        ]
    );
    // /api/ replaces the inherited set (nginx): its route adds X-Api; canaryd would still add
    // [proxy]'s there, which is reported.
    let api = p.routes.iter().find(|r| r.prefix == "/api/").unwrap();
    let api_headers: Vec<_> = api
        .rules
        .add_response_headers
        .iter()
        .map(|s| s.value.clone())
        .collect();
    assert_eq!(api_headers, [("X-Api".to_string(), "yes".to_string())]);
    assert_eq!(
        untranslated(&p),
        [
            "4: add_header Strict-Transport-Security \"max-age=63072000\" always",
            "5: add_header X-Host $host",
            "8: add_header X-Up $upstream_addr"
        ]
    );
}

#[test]
fn location_header_rules_become_route_rules() {
    let p = plan(
        r#"upstream g { server 127.0.0.1:8080 weight=9; server 127.0.0.1:8081 weight=1; }
server {
    listen 80;
    proxy_set_header X-Env prod;
    location / { proxy_pass http://g; }
    location /api/ { proxy_pass http://g; proxy_set_header X-Env prod; proxy_set_header X-Api v1; }
    location /api/v2/ { proxy_pass http://g; proxy_set_header X-Env prod; proxy_set_header X-Api v1; proxy_read_timeout 5s; }
    location /static/ { proxy_pass http://g; }
}"#,
    );
    assert_eq!(p.proxy.set_request_headers.len(), 1);
    let prefixes: Vec<_> = p.routes.iter().map(|r| r.prefix.as_str()).collect();
    assert_eq!(prefixes, ["/api/", "/api/v2/"]);
    let set: Vec<_> = p.routes[0]
        .rules
        .set_request_headers
        .iter()
        .map(|s| s.value.0.as_str())
        .collect();
    assert_eq!(set, ["X-Env", "X-Api"]);
    // /api/v2/ repeats its parent's set (nginx needs that to add a timeout there).
    assert_eq!(p.routes[1].rules.set_request_headers.len(), 2);
    assert!(untranslated(&p).is_empty(), "{:?}", untranslated(&p));
}

#[test]
fn proxy_hide_header_follows_nginx_inheritance() {
    let p = plan(
        r#"upstream g { server 127.0.0.1:8080 weight=9; server 127.0.0.1:8081 weight=1; }
proxy_hide_header X-Powered-By;
server {
    listen 80;
    location / { proxy_pass http://g; }
    location /raw/ { proxy_pass http://g; proxy_hide_header X-Powered-By; proxy_hide_header Server; }
}"#,
    );
    let names =
        |r: &[Setting<(String, String)>]| r.iter().map(|s| s.value.0.clone()).collect::<Vec<_>>();
    assert_eq!(names(&p.proxy.hide_response_headers), ["X-Powered-By"]);
    assert_eq!(p.routes.len(), 1);
    assert_eq!(
        names(&p.routes[0].rules.hide_response_headers),
        ["X-Powered-By", "Server"]
    );
    assert!(untranslated(&p).is_empty(), "{:?}", untranslated(&p));
    let toml = crate::render::render("f.conf", &p);
    assert!(
        toml.contains("hide_response_headers = [\"X-Powered-By\"]"),
        "{toml}"
    );
}

#[test]
fn error_page_resolves_through_the_root_of_its_location() {
    let p = plan(
        r#"upstream g { server 127.0.0.1:8080 weight=9; server 127.0.0.1:8081 weight=1; }
server {
    listen 80;
    error_page 500 502 503 504 /50x.html;
    location / { proxy_pass http://g; }
    location = /50x.html { root /usr/share/nginx/html; }
}"#,
    );
    let pages: Vec<_> = p
        .proxy
        .error_pages
        .iter()
        .map(|s| (s.value.0.as_str(), s.value.1.as_str()))
        .collect();
    assert_eq!(
        pages,
        [
            ("502", "/usr/share/nginx/html/50x.html"),
            ("504", "/usr/share/nginx/html/50x.html")
        ]
    );
    let errs: Vec<_> = p
        .untranslated
        .iter()
        .filter(|f| f.directive.starts_with("error_page"))
        .map(|f| f.reason.as_str())
        .collect();
    assert_eq!(errs.len(), 1);
    assert!(errs[0].contains("500, 503"), "{errs:?}");
}

#[test]
fn error_page_without_a_file_is_untranslated() {
    let p = plan(
        r#"upstream g { server 127.0.0.1:8080 weight=9; server 127.0.0.1:8081 weight=1; }
server {
    listen 80;
    error_page 502 /oops.html;
    error_page 504 =200 /fine.html;
    location / { proxy_pass http://g; }
    location /api/ { proxy_pass http://g; error_page 502 /50x.html; }
    location /50x.html { root html; }
}"#,
    );
    assert!(p.proxy.error_pages.is_empty());
    let reasons: Vec<_> = p
        .untranslated
        .iter()
        .filter(|f| f.directive.starts_with("error_page"))
        .map(|f| format!("{}: {}", f.line, f.reason))
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons
        .iter()
        .any(|r| r.starts_with("4: ") && r.contains("is proxied by `location /")));
    assert!(reasons
        .iter()
        .any(|r| r.starts_with("5: ") && r.contains("=CODE")));
    assert!(reasons
        .iter()
        .any(|r| r.starts_with("7: ") && r.contains("relative")));
}

#[test]
fn server_names_become_hosts_of_their_routes() {
    let p = plan(
        r#"upstream g { server 127.0.0.1:8080 weight=9; server 127.0.0.1:8081 weight=1; }
upstream admin { server 127.0.0.1:9000; }
server {
    listen 80;
    server_name shop.example.com;
    location / { proxy_pass http://g; }
    location /slow/ { proxy_pass http://g; proxy_read_timeout 5m; }
}
server {
    listen 80;
    server_name admin.example.com .ops.example.com ~^adm\d+;
    location / { proxy_pass http://admin; }
}"#,
    );
    let routes: Vec<_> = p
        .routes
        .iter()
        .map(|r| (r.prefix.as_str(), r.hosts.join(" "), r.upstream.clone()))
        .collect();
    // The first server is nginx's default for :80: its routes match any host.
    assert_eq!(
        routes,
        [
            ("/slow/", String::new(), None),
            (
                "/",
                "admin.example.com ops.example.com *.ops.example.com".to_string(),
                Some("admin".to_string())
            )
        ]
    );
    assert_eq!(
        untranslated(&p),
        ["11: server_name admin.example.com .ops.example.com ~^adm\\d+"]
    );
}
