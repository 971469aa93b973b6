//! [`PromClient::from_config`] against a real Prometheus run as production ones are: behind its
//! own `--web.config.file` with TLS (a self-signed certificate for 127.0.0.1 made here with the
//! `openssl` CLI) and basic auth (a bcrypt hash from `htpasswd`, Debian's `apache2-utils`).
//!
//! With `ca_file` and the right password a rule query returns a value; without the CA the
//! handshake fails naming the certificate; with a wrong password the answer is HTTP 401.
//! Skipped with a notice when a tool is missing, and failed instead under `scripts/test`
//! (`CANARYD_REQUIRE_TOOLS=1`).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use canaryd_config::{PrometheusBasicAuth, PrometheusConfig};
use canaryd_controller::{PromClient, Sample};
use testkit::{FakeGateway, Prometheus, TempDir};

const TIMEOUT: Duration = Duration::from_secs(5);
const USER: &str = "canaryd";
const PASSWORD: &str = "correct horse battery staple";

/// Runs a tool; `None` when it is not installed.
fn run(tool: &str, args: &[&str], dir: &Path) -> Option<String> {
    let output = match Command::new(tool).args(args).current_dir(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("cannot run {tool}: {e}"),
    };
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A self-signed P-256 server certificate for IP 127.0.0.1 (its own trust anchor, as
/// `ca_file`): (cert.pem, key.pem).
fn self_signed(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    run(
        "openssl",
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            // `req -x509` marks the certificate as a CA by default, which webpki refuses as a
            // server's certificate (CaUsedAsEndEntity).
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
        dir,
    )?;
    Some((dir.join("cert.pem"), dir.join("key.pem")))
}

/// The bcrypt hash of `password` for Prometheus's `basic_auth_users`.
fn bcrypt(password: &str, dir: &Path) -> Option<String> {
    let line = run("htpasswd", &["-nbBC", "10", USER, password], dir)?;
    let (_, hash) = line
        .trim()
        .split_once(':')
        .expect("htpasswd prints user:hash");
    Some(hash.to_owned())
}

fn secret(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("write secret");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

#[track_caller]
fn expect_error(sample: Sample, needles: &[&str]) -> String {
    let Sample::Error(message) = sample else {
        panic!("expected an error containing {needles:?}, got {sample:?}");
    };
    for needle in needles {
        assert!(
            message.contains(needle),
            "error {message:?} should contain {needle:?}"
        );
    }
    message
}

#[test]
fn tls_and_basic_auth_through_from_config() {
    let dir = TempDir::new("canaryd-prom-tls");
    let Some((cert, key)) = self_signed(dir.path()) else {
        testkit::tool_missing("openssl");
        return;
    };
    let Some(hash) = bcrypt(PASSWORD, dir.path()) else {
        testkit::tool_missing("htpasswd (apache2-utils)");
        return;
    };
    let web_config = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  {USER}: '{hash}'\n",
        cert.display(),
        key.display()
    );
    let gw = FakeGateway::spawn("gw", &[]);
    let Some(prom) = Prometheus::start_with_web_config(&[("gw", gw.addr)], &web_config, "https")
    else {
        testkit::tool_missing("prometheus");
        return;
    };
    let url = prom.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let good = PrometheusConfig {
        ca_file: Some(cert.clone()),
        basic_auth: Some(PrometheusBasicAuth {
            username: USER.into(),
            password_file: secret(dir.path(), "password", &format!("{PASSWORD}\n")),
        }),
        ..PrometheusConfig::new(format!("{url}/"), TIMEOUT)
    };
    let client = PromClient::from_config(&good).expect("client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let q = |client: &PromClient, promql: &str| rt.block_on(client.query(promql));

    // Prometheus listens before its storage is ready (503 meanwhile), and scrapes every second:
    // poll until the gateway's `up` is there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let rule = r#"max(up{job="gw"})"#;
    loop {
        match q(&client, rule) {
            Sample::Value(v) => {
                assert_eq!(v, 1.0);
                break;
            }
            other => assert!(
                Instant::now() < deadline,
                "no value through TLS and basic auth within 30 s; last: {other:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(q(&client, "scalar(vector(2))"), Sample::Value(2.0));
    expect_error(q(&client, "sum("), &["bad_data", ": sum("]);

    // Without the CA: the system's roots do not know the self-signed certificate.
    let no_ca = PromClient::from_config(&PrometheusConfig {
        ca_file: None,
        ..good.clone()
    })
    .expect("client");
    let message = expect_error(
        q(&no_ca, rule),
        &[
            &format!("TLS handshake with Prometheus at {url} failed"),
            "certificate",
            "prometheus.ca_file",
        ],
    );
    assert!(message.ends_with(&format!(": {rule}")), "{message}");
    eprintln!("without ca_file: {message}");

    // A wrong password: Prometheus answers 401.
    let wrong = PromClient::from_config(&PrometheusConfig {
        basic_auth: Some(PrometheusBasicAuth {
            username: USER.into(),
            password_file: secret(dir.path(), "wrong", "not-the-password\n"),
        }),
        ..good.clone()
    })
    .expect("client");
    let message = expect_error(
        q(&wrong, rule),
        &[
            "answered HTTP 401 Unauthorized",
            "check prometheus.basic_auth",
        ],
    );
    assert!(!message.contains("not-the-password"), "{message}");
    eprintln!("wrong password: {message}");

    // No credentials at all: 401 too.
    let anonymous = PromClient::from_config(&PrometheusConfig {
        basic_auth: None,
        ..good.clone()
    })
    .expect("client");
    expect_error(q(&anonymous, rule), &["HTTP 401"]);

    // Plain http to the TLS port: Prometheus answers 400 in plain text.
    let plain = PromClient::from_config(&PrometheusConfig {
        url: url.replacen("https://", "http://", 1),
        ..good
    })
    .expect("client");
    expect_error(q(&plain, rule), &["HTTP 400"]);
}
