use std::error::Error as _;

use super::*;

/// `{:#}` as anyhow prints it: the error, then each `source()` after `: `.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(": {s}"));
        source = s.source();
    }
    out
}

#[test]
fn an_unreadable_file_names_the_os_error_once() {
    let e = crate::Config::load(std::path::Path::new("/nonexistent/canaryd.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e:?}");
    // The message is complete on its own; no source repeats it.
    assert!(e.source().is_none(), "{:?}", e.source());
    let shown = chain(&e);
    assert_eq!(
        shown,
        format!(
            "/nonexistent/canaryd.toml: cannot read: {}",
            std::io::Error::from_raw_os_error(2)
        )
    );
    assert_eq!(shown.matches("os error 2").count(), 1, "{shown}");
}

#[test]
fn problems_render_one_per_line_located_or_not() {
    let e = ConfigError::Invalid {
        file: "f.toml".into(),
        problems: vec![
            Problem {
                line: Some(3),
                key: "proxy.threads".into(),
                message: "expected a number".into(),
            },
            Problem {
                line: None,
                key: "admin.listen".into(),
                message: "expected \"ip:port\"".into(),
            },
        ],
    };
    assert_eq!(
        chain(&e),
        "f.toml:3: key `proxy.threads`: expected a number\nf.toml: key `admin.listen`: expected \"ip:port\""
    );
}
