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

/// The issue's file: a bad port, a string for `threads`, a bad server address and no
/// `[backends.canary]` — each reported, located, in file order, in one run.
const FOUR_MISTAKES: &str = r#"[proxy]
listen = ["127.0.0.1:99999"]
threads = "two"

[backends.stable]
servers = ["127.0.0.1:8080", "not an address"]
"#;

#[test]
fn every_mistake_is_reported_at_once() {
    assert_eq!(
        err(FOUR_MISTAKES),
        [
            r#"canaryd.toml:2: key `proxy.listen[0]`: expected "ip:port" like "0.0.0.0:80", found "127.0.0.1:99999""#,
            r#"canaryd.toml:3: key `proxy.threads`: invalid type: found string "two", expected usize"#,
            "canaryd.toml:5: key `backends.canary`: missing; this key is required",
            r#"canaryd.toml:6: key `backends.stable.servers[1]`: expected "host:port" that resolves, found "not an address""#,
        ]
        .join("\n")
    );
}

#[test]
fn unknown_key_and_wrong_type_in_one_section_are_both_reported() {
    let src = GOOD.replace(
        "[proxy]\n",
        "[proxy]\nthreads = \"two\"\nlisten_on = [\"127.0.0.1:1\"]\n",
    );
    let e = err(&src);
    assert!(
        e.contains("canaryd.toml:3: key `proxy.threads`: invalid type"),
        "{e}"
    );
    assert!(
        e.contains("canaryd.toml:4: key `proxy.listen_on`: unknown key; expected one of"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 2, "{e}");
}

#[test]
fn every_bad_element_of_an_array_of_tables_is_reported() {
    let src = format!(
        "{GOOD}\n[[proxy.routes]]\nprefix = 5\n[[proxy.routes]]\nprefix = \"/a\"\n\
         [[proxy.routes]]\nprefix = \"/b\"\nread_timeout = 30\nwrite_timout = \"1s\"\n\
         [[proxy.routes]]\nprefix = \"c\"\n"
    );
    let e = err(&src);
    let lines: Vec<&str> = e.lines().collect();
    assert_eq!(
        lines,
        [
            "canaryd.toml:15: key `proxy.routes[0].prefix`: invalid type: found signed int `5`, expected a string",
            "canaryd.toml:20: key `proxy.routes[2].read_timeout`: invalid type: found signed int `30`, expected a duration string like \"30s\", \"5m\" or \"1h\"",
            "canaryd.toml:21: key `proxy.routes[2].write_timout`: unknown key; expected one of `prefix`, `hosts`, `upstream`, `max_body_size`, `set_request_headers`, `add_response_headers`, `hide_response_headers`, `error_pages`, `connect_timeout`, `read_timeout`, `write_timeout`",
            "canaryd.toml:23: key `proxy.routes[3].prefix`: expected a path prefix starting with '/', found \"c\"",
        ],
        "{e}"
    );
}

#[test]
fn bad_array_elements_keep_their_index() {
    let src = GOOD.replace(
        r#"servers = ["127.0.0.1:8080"]"#,
        r#"servers = [7, { weight = 2 }, "nowhere", { addr = "127.0.0.1:1", weight = 0 }]"#,
    );
    let e = err(&src);
    let keys: Vec<&str> = e
        .lines()
        .map(|l| l.split('`').nth(1).unwrap_or_default())
        .collect();
    assert_eq!(
        keys,
        [
            "backends.stable.servers[0]",
            "backends.stable.servers[1].addr",
            "backends.stable.servers[2]",
            "backends.stable.servers[3].weight",
        ],
        "{e}"
    );
    assert!(
        e.contains("servers[1].addr`: missing; this key is required"),
        "{e}"
    );
    assert!(
        e.contains("servers[2]`: expected \"host:port\" that resolves"),
        "{e}"
    );
}

#[test]
fn repaired_keys_cause_no_follow_on_problems() {
    // A pool whose `servers` has the wrong type has no "at least one server" too; a server
    // without `addr` no "does not resolve"; a missing `[backends]` nothing about its pools;
    // a `stable_values` of the wrong type no "`header` needs values".
    let src =
        GOOD.replace(
            r#"servers = ["127.0.0.1:8081"]"#,
            "servers = \"127.0.0.1:8081\"",
        )
        .replace(
            r#"servers = ["127.0.0.1:8080"]"#,
            r#"servers = [{ weight = 2 }]"#,
        ) + "\n[routing]\nheader = \"X-V\"\nstable_values = \"v2\"\n";
    let e = err(&src);
    assert_eq!(
        e.lines()
            .map(|l| l.split('`').nth(1).unwrap_or_default())
            .collect::<Vec<_>>(),
        [
            "backends.stable.servers[0].addr",
            "backends.canary.servers",
            "routing.stable_values"
        ],
        "{e}"
    );
    let e = err("[proxy]\nthreads = 0\n");
    assert_eq!(
        e,
        "canaryd.toml:1: key `backends`: missing; this key is required\n\
         canaryd.toml:2: key `proxy.threads`: expected a positive number of worker threads (omit for one per CPU)"
    );
}

#[test]
fn problems_come_in_file_order_each_once() {
    // Extraction visits the sections alphabetically (admin before proxy before rollout);
    // the report follows the file.
    let src = r#"[rollout]
initial_percent = "five"
autostart = 1

[proxy]
threads = "two"
shutdown_grace = "0s"

[admin]
listen = 9180

[backends.stable]
servers = ["127.0.0.1:8080"]
[backends.canary]
servers = ["127.0.0.1:8081"]
"#;
    let e = err(src);
    let lines: Vec<usize> = e
        .lines()
        .map(|l| {
            l.split(':')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(lines, [2, 3, 6, 7, 10], "{e}");
}

#[test]
fn environment_problems_name_their_variable_next_to_the_files() {
    // Only `Config::from_source(.., true)` reads CANARYD_*; no other test of this binary does.
    std::env::set_var("CANARYD_PROXY__THREADS", "zero");
    std::env::set_var("CANARYD_ROLLOUT__INITIAL_PERCENT", "200");
    let src = GOOD.replace("127.0.0.1:8000", "localhost");
    let result = Config::from_source("canaryd.toml", &src, true);
    std::env::remove_var("CANARYD_PROXY__THREADS");
    std::env::remove_var("CANARYD_ROLLOUT__INITIAL_PERCENT");
    let e = result.unwrap_err().to_string();
    assert!(
        e.contains(
            "canaryd.toml:2: key `proxy.threads`: invalid type: found string \"zero\", expected usize \
             (from environment variable CANARYD_PROXY__THREADS)"
        ),
        "{e}"
    );
    assert!(e.contains("canaryd.toml:3: key `proxy.listen[0]`"), "{e}");
    assert!(
        e.contains("key `rollout.initial_percent`: expected a percentage from 0 to 100, found 200"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 3, "{e}");
}
