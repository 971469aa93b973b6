//! Templates and the header-rule checks: every mistake named with its key.

use super::*;
use crate::Config;

#[test]
fn templates_parse_variables_and_literal_dollars() {
    assert_eq!(
        parse_template("plain").unwrap(),
        [Part::Literal("plain".into())]
    );
    assert_eq!(
        parse_template("$scheme://${host}:$5/$request_id$").unwrap(),
        [
            Part::Var(Var::Scheme),
            Part::Literal("://".into()),
            Part::Var(Var::Host),
            Part::Literal(":$5/".into()),
            Part::Var(Var::RequestId),
            Part::Literal("$".into()),
        ]
    );
    assert_eq!(parse_template("").unwrap(), []);
    let e = parse_template("$http_upgrade").unwrap_err();
    assert!(
        e.contains("$http_upgrade") && e.contains("$remote_addr"),
        "{e}"
    );
    assert!(parse_template("${host").unwrap_err().contains("closing"));
    assert!(parse_template("a\nb").unwrap_err().contains("control"));
}

const BASE: &str = "[backends.stable]\nservers = [\"127.0.0.1:1\"]\n[backends.canary]\nservers = [\"127.0.0.1:2\"]\n";

fn errors(src: &str) -> String {
    match Config::from_source("canaryd.toml", &format!("{BASE}{src}"), false) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_rule_mistake_is_located() {
    let e = errors(
        "[proxy]\nmax_body_size = \"lots\"\nset_request_headers = { \"Bad Name\" = \"x\", \"X-Ok\" = \"$nope\" }\n\
         add_response_headers = { \"Content-Length\" = \"1\" }\n\
         hide_response_headers = [\"ok\", \"\"]\n\
         [[proxy.routes]]\nprefix = \"/a\"\nmax_body_size = -1\nerror_pages = { 502 = \"/nonexistent/502.html\" }\n",
    );
    for want in [
        "canaryd.toml:6: key `proxy.max_body_size`",
        "key `proxy.set_request_headers.Bad Name`: expected an HTTP header name",
        "key `proxy.set_request_headers.X-Ok`: expected a variable among",
        "key `proxy.add_response_headers.Content-Length`: expected a header other than Content-Length",
        "key `proxy.hide_response_headers[1]`",
        "canaryd.toml:12: key `proxy.routes[0].max_body_size`",
        "key `proxy.routes[0].error_pages[502]`: expected a readable file, cannot read /nonexistent/502.html",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}

#[test]
fn error_pages_are_read_at_load() {
    let dir = std::env::temp_dir().join(format!("canaryd-pages-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("502.html");
    std::fs::write(&page, "<h1>down</h1>").unwrap();
    let src = format!(
        "{BASE}[proxy]\nerror_pages = {{ 502 = \"{}\" }}\n[[proxy.routes]]\nprefix = \"/x\"\nerror_pages = {{ 99 = \"{}\" }}\n",
        page.display(),
        page.display()
    );
    let e = Config::from_source("canaryd.toml", &src, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(
            "key `proxy.routes[0].error_pages[99]`: expected an error status from 400 to 599"
        ),
        "{e}"
    );
    let ok = src.replace("99 =", "504 =");
    let cfg = Config::from_source("canaryd.toml", &ok, false).unwrap();
    assert_eq!(&*cfg.proxy.error_pages["502"].body, b"<h1>down</h1>");
    std::fs::remove_dir_all(&dir).unwrap();
}
