use super::*;
use crate::parser::parse;

fn verdict(src: &str) -> Verdict {
    classify(&parse("f", src).unwrap()[0])
}

#[test]
fn standard_forwarding_headers_are_handled() {
    for src in [
        "proxy_set_header Host $host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Connection \"\";",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_http_version 1.1;",
        "proxy_buffering off;",
        "proxy_cache off;",
        "access_log off;",
    ] {
        assert!(matches!(verdict(src), Verdict::Handled(_)), "{src}");
    }
}

#[test]
fn other_headers_and_features_are_untranslated_with_a_reason() {
    for (src, reason) in [
        (
            "proxy_set_header X-Env prod;",
            "write it as `set_request_headers`",
        ),
        ("proxy_set_header X-Forwarded-For $remote_addr;", "appends"),
        ("gzip on;", "does not compress"),
        ("rewrite ^/old /new permanent;", "unchanged"),
        ("limit_req zone=one burst=5;", "no rate"),
        ("ssl_certificate /x.pem;", "TLS"),
        ("client_header_timeout 10s;", "fixed at 60 s"),
        ("proxy_http_version 1.0;", "HTTP/1.1"),
        ("frobnicate;", "not supported"),
    ] {
        match verdict(src) {
            Verdict::Untranslated(r) => assert!(r.contains(reason), "{src}: {r}"),
            v => panic!("{src}: {v:?}"),
        }
    }
    assert!(matches!(
        verdict("client_header_timeout 1m;"),
        Verdict::Handled(_)
    ));
}
