//! The command line: `canaryd check` names file, line, key and expectation for every mistake;
//! `canaryd serve` refuses to start on a bad config or a busy port, with a clear message.

use std::process::Command;

use crate::common::{binary, TempDir};

const GOOD: &str = r#"[proxy]
listen = ["127.0.0.1:0"]

[backends.stable]
servers = ["127.0.0.1:8080"]

[backends.canary]
servers = ["127.0.0.1:8081"]
"#;

fn check(src: &str) -> (bool, String, String) {
    let dir = TempDir::new("canaryd-cli");
    let path = dir.path().join("canaryd.toml");
    std::fs::write(&path, src).unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("CANARYD_PROXY__THREADS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "FILE");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        stderr,
    )
}

#[test]
fn check_accepts_a_good_config() {
    let (ok, stdout, stderr) = check(GOOD);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn check_names_file_line_key_and_expectation() {
    let cases = [
        (
            GOOD.replace("[proxy]\n", "[proxy]\nthreads = \"many\"\n"),
            "FILE:2: key `proxy.threads`: invalid type: found string \"many\", expected",
        ),
        (
            GOOD.replace("[backends.canary]\n", "[backends.canary]\nmax_fail = 3\n"),
            "FILE:8: key `backends.canary.max_fail`: unknown key; expected one of",
        ),
        (
            GOOD.replace("127.0.0.1:8081", "nowhere"),
            "FILE:8: key `backends.canary.servers[0]`: expected \"host:port\"",
        ),
        (
            format!("{GOOD}[routing]\nsticky = {{ key = \"session\" }}\n"),
            "key `routing.sticky.key`",
        ),
        (format!("{GOOD}[proxy.x]\n"), "key `proxy.x`: unknown key"),
    ];
    for (src, expect) in cases {
        let (ok, _, stderr) = check(&src);
        assert!(!ok, "accepted:\n{src}");
        assert!(stderr.contains(expect), "expected {expect:?} in:\n{stderr}");
    }
}

#[test]
fn env_overrides_apply_and_are_checked() {
    let dir = TempDir::new("canaryd-cli");
    let path = dir.path().join("canaryd.toml");
    std::fs::write(&path, GOOD).unwrap();
    let out = Command::new(binary())
        .args(["check", "--config"])
        .arg(&path)
        .env("CANARYD_PROXY__THREADS", "zero")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("key `proxy.threads`") && stderr.contains("CANARYD_PROXY__THREADS"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_busy_port_clearly() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let dir = TempDir::new("canaryd-cli");
    let path = dir.path().join("canaryd.toml");
    let admin = testkit::free_addr();
    std::fs::write(
        &path,
        GOOD.replace("127.0.0.1:0", &addr.to_string())
            + &format!("[admin]\nlisten = \"{admin}\"\n"),
    )
    .unwrap();
    let out = Command::new(binary())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("proxy.listen: cannot listen on {addr}")),
        "{stderr}"
    );
}

#[test]
fn check_reports_every_mistake_at_once_in_file_order() {
    let src = "[proxy]\nlisten = [\"127.0.0.1:99999\"]\nthreads = \"two\"\n\n[backends.stable]\nservers = [\"127.0.0.1:8080\", \"not an address\"]\n";
    let (ok, _, stderr) = check(src);
    assert!(!ok);
    assert_eq!(
        stderr,
        "canaryd: FILE:2: key `proxy.listen[0]`: expected \"ip:port\" like \"0.0.0.0:80\", found \"127.0.0.1:99999\"\n\
         FILE:3: key `proxy.threads`: invalid type: found string \"two\", expected usize\n\
         FILE:5: key `backends.canary`: missing; this key is required\n\
         FILE:6: key `backends.stable.servers[1]`: expected \"host:port\" that resolves, found \"not an address\"\n"
    );
}

#[test]
fn check_names_an_unreadable_file_and_its_os_error_once() {
    let dir = TempDir::new("canaryd-cli");
    let run = |config: &std::path::Path| {
        let out = Command::new(binary())
            .args(["check", "--config"])
            .arg(config)
            .env_remove("CANARYD_PROXY__THREADS")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let absent = dir.path().join("absent.toml");
    assert_eq!(
        run(&absent),
        format!(
            "canaryd: {}: cannot read: {}\n",
            absent.display(),
            std::io::Error::from_raw_os_error(2)
        )
    );
    let config = dir.path().join("canaryd.toml");
    std::fs::write(
        &config,
        format!("{GOOD}[rollout]\npolicy = \"absent-policy.toml\"\n"),
    )
    .unwrap();
    let stderr = run(&config);
    assert!(
        stderr.contains("absent-policy.toml: cannot read: "),
        "{stderr}"
    );
    assert_eq!(stderr.matches("os error 2").count(), 1, "{stderr}");
}
