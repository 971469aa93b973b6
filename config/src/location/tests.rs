use super::*;

const SRC: &str = r#"# canaryd
[proxy]
listen = ["127.0.0.1:1"]

[backends.stable]
servers = ["127.0.0.1:8080"]

[[proxy.routes]]
prefix = "/a"
"#;

#[test]
fn keys_values_and_array_elements() {
    assert_eq!(line_of(SRC, "proxy.listen"), Some(3));
    assert_eq!(line_of(SRC, "proxy.listen[0]"), Some(3));
    assert_eq!(line_of(SRC, "backends.stable.servers[0]"), Some(6));
    assert_eq!(line_of(SRC, "proxy.routes[0].prefix"), Some(9));
}

#[test]
fn a_key_not_in_the_file_gets_its_nearest_table() {
    assert_eq!(line_of(SRC, "proxy.threads"), Some(2));
    assert_eq!(line_of(SRC, "backends.stable.health.path"), Some(5));
    assert_eq!(line_of(SRC, "proxy.routes[0].read_timeout"), Some(8));
}

#[test]
fn a_table_without_a_header_of_its_own_is_where_it_first_appears() {
    // `[backends]` is never written: a missing `backends.canary` points at
    // `[backends.stable]`, not at the top of the file.
    assert_eq!(line_of(SRC, "backends.canary"), Some(5));
    assert_eq!(line_of(SRC, "backends"), Some(5));
    let dotted = "name = \"x\"\n\nbackends.stable.servers = [\"127.0.0.1:1\"]\n";
    assert_eq!(line_of(dotted, "backends.canary"), Some(3));
}

#[test]
fn a_key_of_a_missing_section_gets_the_top_of_the_file() {
    assert_eq!(line_of(SRC, "rollout.initial_percent"), Some(1));
    assert_eq!(line_of("[proxy\n", "proxy"), None);
}
