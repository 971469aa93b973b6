use super::*;

const GOOD: &str = r#"
[proxy]
listen = ["127.0.0.1:8000"]

[backends.stable]
servers = ["127.0.0.1:8080"]

[backends.canary]
servers = ["127.0.0.1:8081"]

[rollout]
initial_percent = 5
"#;

fn err(src: &str) -> String {
    Config::from_source("canaryd.toml", src, false)
        .unwrap_err()
        .to_string()
}

#[test]
fn good_config_loads() {
    let c = Config::from_source("canaryd.toml", GOOD, false).unwrap();
    assert_eq!(c.rollout.initial_percent, 5.0);
    assert_eq!(c.admin.listen, "127.0.0.1:9180");
}

#[test]
fn wrong_type_names_file_line_key_and_expectation() {
    let src = GOOD.replace("[proxy]\n", "[proxy]\nthreads = \"two\"\n");
    let e = err(&src);
    assert!(
        e.starts_with("canaryd.toml:3: key `proxy.threads`: "),
        "{e}"
    );
    assert!(e.contains("expected"), "{e}");
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let src = GOOD.replace(
        "initial_percent = 5",
        "initial_percent = 5\nauto_start = true",
    );
    let e = err(&src);
    assert!(
        e.starts_with("canaryd.toml:13: key `rollout.auto_start`: unknown key"),
        "{e}"
    );
    assert!(e.contains("`autostart`"), "{e}");
}

#[test]
fn missing_section_is_named() {
    let e = err("[proxy]\nlisten = [\"127.0.0.1:1\"]\n");
    assert!(e.contains("key `backends`: missing"), "{e}");
}

#[test]
fn semantic_errors_are_located() {
    let src = GOOD
        .replace("127.0.0.1:8000", "localhost")
        .replace("initial_percent = 5", "initial_percent = 150");
    let e = err(&src);
    assert!(e.contains("canaryd.toml:3: key `proxy.listen[0]`"), "{e}");
    assert!(
        e.contains("canaryd.toml:12: key `rollout.initial_percent`: expected a percentage"),
        "{e}"
    );
}

#[test]
fn route_errors_point_into_the_array_of_tables() {
    let src =
        format!("{GOOD}\n[[proxy.routes]]\nprefix = \"/a\"\n[[proxy.routes]]\nprefix = \"b\"\n");
    let e = err(&src);
    assert!(
        e.contains("canaryd.toml:17: key `proxy.routes[1].prefix`"),
        "{e}"
    );
}
