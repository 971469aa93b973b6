//! [`PromClient`] against the Prometheus stand-in (`testkit::PromStandIn`): the answers a real
//! Prometheus cannot be made to give on demand — a 200 000-series vector (refused at
//! `max_response_size`, with the test process's peak RSS measured), garbage, HTTP errors, a
//! slow or silent server, redirects — and what the client sends: the path prefix, the query
//! timeout, credentials from secrets files and extra headers.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use canaryd_config::{PrometheusBasicAuth, PrometheusConfig};
use canaryd_controller::{PromClient, Sample};
use testkit::prom_standin::Answer;
use testkit::{PromStandIn, TempDir};

const TIMEOUT: Duration = Duration::from_secs(5);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn client(prom: &PromStandIn) -> PromClient {
    PromClient::new(&prom.url(), TIMEOUT).expect("client")
}

fn query(client: &PromClient, promql: &str) -> Sample {
    runtime().block_on(client.query(promql))
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

/// A secrets file with mode 600.
fn secret(dir: &TempDir, name: &str, contents: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("write secret");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// The process's peak resident set size (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

const RSS_CHILD: &str = "CANARYD_TEST_RSS_CHILD";
const SERIES: usize = 200_000;
const MAX_GROWTH_KIB: u64 = 30 * 1024;

/// The measurement runs in a child process (this test binary, this test only, one thread),
/// so that other tests running in parallel cannot raise the peak.
#[test]
fn huge_vector_is_an_error_at_the_size_limit_and_memory_stays_bounded() {
    if std::env::var_os(RSS_CHILD).is_some() {
        return huge_vector_in_this_process();
    }
    let exe = std::env::current_exe().expect("current exe");
    let output = Command::new(exe)
        .args([
            "--exact",
            "prometheus_standin::huge_vector_is_an_error_at_the_size_limit_and_memory_stays_bounded",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(RSS_CHILD, "1")
        .output()
        .expect("run the measuring child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "child failed: {}\n{stdout}\n{stderr}",
        output.status
    );
    let line = stdout
        .lines()
        .chain(stderr.lines())
        .find_map(|l| l.find("peak RSS growth").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("the child did not measure (ran 0 tests?)\n{stdout}\n{stderr}"));
    eprintln!("{line}");
}

fn huge_vector_in_this_process() {
    let prom = PromStandIn::start(Answer::Value(1.0));
    let client = client(&prom);
    let rt = runtime();
    // Warm up: the runtime, the connection machinery, the first answer.
    assert_eq!(rt.block_on(client.query("up")), Sample::Value(1.0));
    let before = peak_rss_kib();

    prom.set(Answer::Series(SERIES));
    let started = Instant::now();
    let sample = rt.block_on(client.query("up"));
    let message = expect_error(
        sample,
        &[
            "answered more than 1 MiB",
            "prometheus.max_response_size",
            "sum()",
        ],
    );
    assert!(message.ends_with(": up"), "{message}");
    assert!(started.elapsed() < TIMEOUT, "took {:?}", started.elapsed());
    // And again: nothing accumulates from one refused answer to the next.
    expect_error(rt.block_on(client.query("up")), &["max_response_size"]);

    let after = peak_rss_kib();
    let growth = after.saturating_sub(before);
    println!(
        "peak RSS growth for a {SERIES}-series answer (about {} MB, refused at 1 MiB): {growth} KiB \
         (VmHWM {before} → {after} KiB)",
        SERIES * 110 / 1_000_000
    );
    assert!(
        growth < MAX_GROWTH_KIB,
        "peak RSS grew by {growth} KiB (limit {MAX_GROWTH_KIB} KiB)"
    );
    assert_eq!(prom.queries(), 3);

    // With the limit raised above the answer, it is read whole and decoded without a JSON
    // tree: the series are counted, their labels skipped. The peak grows by about the body
    // (a buffer of up to twice its size), not by the tens of bytes per label a tree costs.
    let roomy = PromClient::from_config(&PrometheusConfig {
        max_response_size: 64 << 20,
        ..PrometheusConfig::new(prom.url(), TIMEOUT)
    })
    .expect("client");
    expect_error(
        rt.block_on(roomy.query("up")),
        &[&format!("query returned {SERIES} series")],
    );
    let whole = peak_rss_kib().saturating_sub(after);
    println!("(read whole and decoded with max_response_size = 64 MiB: peak RSS +{whole} KiB)");
    assert!(
        whole < 80 * 1024,
        "decoding a {SERIES}-series answer grew the peak by {whole} KiB"
    );
}

#[test]
fn answers_within_the_limit_fold_as_before() {
    let prom = PromStandIn::start(Answer::Value(0.25));
    let c = client(&prom);
    assert_eq!(query(&c, "up"), Sample::Value(0.25));
    prom.set(Answer::Scalar(2.0));
    assert_eq!(query(&c, "up"), Sample::Value(2.0));
    prom.set(Answer::Value(f64::NAN));
    assert_eq!(query(&c, "up"), Sample::NoData);
    prom.set(Answer::Empty);
    assert_eq!(query(&c, "up"), Sample::NoData);
    prom.set(Answer::Series(3));
    let message = expect_error(query(&c, "up"), &["3 series", "sum()"]);
    assert!(message.ends_with(": up"), "{message}");
    // Several series, still well under the limit, are counted without being kept.
    prom.set(Answer::Series(5_000));
    expect_error(query(&c, "up"), &["5000 series"]);
}

#[test]
fn garbage_is_an_error_quoting_the_body() {
    let prom = PromStandIn::start(Answer::Garbage);
    let message = expect_error(
        query(&client(&prom), "sum(x)"),
        &[
            &format!(
                "Prometheus at {} answered HTTP 200 OK without a JSON body",
                prom.url()
            ),
            "this is not the Prometheus API",
        ],
    );
    assert!(message.ends_with(": sum(x)"), "{message}");
    prom.set(Answer::Raw {
        status: 200,
        content_type: "application/json".into(),
        body: r#"{"status":"success","data":{"resultType":"vector","result":{"not":"a list"}}}"#
            .into(),
    });
    expect_error(
        query(&client(&prom), "up"),
        &["malformed answer from Prometheus"],
    );
}

#[test]
fn http_errors_name_the_status() {
    let prom = PromStandIn::start(Answer::Status(500));
    let c = client(&prom);
    let message = expect_error(
        query(&c, "up"),
        &[
            "answered HTTP 500 Internal Server Error",
            "stand-in: HTTP 500",
        ],
    );
    assert!(message.ends_with(": up"), "{message}");
    prom.set(Answer::Status(401));
    expect_error(
        query(&c, "up"),
        &["HTTP 401 Unauthorized", "check prometheus.basic_auth"],
    );
    prom.set(Answer::Error {
        status: 422,
        error_type: "execution".into(),
        message: "query processing would load too many samples into memory".into(),
    });
    expect_error(
        query(&c, "up"),
        &[
            "Prometheus rejected the query (HTTP 422 Unprocessable Entity, execution)",
            "too many samples",
        ],
    );
    prom.set(Answer::Raw {
        status: 302,
        content_type: "text/plain".into(),
        body: String::new(),
    });
    expect_error(
        query(&c, "up"),
        &["HTTP 302 Found", "does not follow redirects"],
    );
    // A 200 whose status field says error (a proxy rewriting codes): still an error.
    prom.set(Answer::Raw {
        status: 200,
        content_type: "application/json".into(),
        body: r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#.into(),
    });
    expect_error(
        query(&c, "up"),
        &["Prometheus rejected the query (bad_data): parse error"],
    );
}

#[test]
fn content_length_over_the_limit_is_refused_unread() {
    let prom = PromStandIn::start(Answer::Raw {
        status: 200,
        content_type: "application/json".into(),
        body: format!(
            r#"{{"status":"success","data":{{"resultType":"scalar","result":[1,"1"]}},"pad":"{}"}}"#,
            "x".repeat(4096)
        ),
    });
    let cfg = PrometheusConfig {
        max_response_size: 1024,
        ..PrometheusConfig::new(prom.url(), TIMEOUT)
    };
    let c = PromClient::from_config(&cfg).expect("client");
    expect_error(
        query(&c, "up"),
        &["answered more than 1 KiB", "max_response_size"],
    );
    let cfg = PrometheusConfig {
        max_response_size: 8192,
        ..cfg
    };
    let c = PromClient::from_config(&cfg).expect("client");
    assert_eq!(query(&c, "up"), Sample::Value(1.0));
}

#[test]
fn a_slow_answer_beyond_the_timeout_is_an_error() {
    let prom = PromStandIn::start(Answer::Value(1.0));
    prom.set_delay(Duration::from_secs(3));
    let c = PromClient::new(&prom.url(), Duration::from_millis(500)).expect("client");
    let started = Instant::now();
    let sample = query(&c, "up");
    let elapsed = started.elapsed();
    expect_error(
        sample,
        &[
            &format!("Prometheus at {} timed out after 0.5s", prom.url()),
            ": up",
        ],
    );
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(2),
        "took {elapsed:?}"
    );
    // Within the timeout it is a value.
    prom.set_delay(Duration::from_millis(100));
    assert_eq!(query(&c, "up"), Sample::Value(1.0));
}

#[test]
fn a_hanging_server_times_out_and_is_let_go() {
    let prom = PromStandIn::start(Answer::Hang);
    let c = PromClient::new(&prom.url(), Duration::from_millis(300)).expect("client");
    let started = Instant::now();
    expect_error(query(&c, "up"), &["timed out after 0.3s"]);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The client hung up: the stand-in's answer ends too.
    let deadline = Instant::now() + Duration::from_secs(5);
    while prom.in_flight() > 0 {
        assert!(Instant::now() < deadline, "the client kept the connection");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sends_the_prefix_the_timeout_credentials_and_headers() {
    let prom = PromStandIn::start(Answer::Value(3.0));
    let dir = TempDir::new("canaryd-prom-creds");
    let token = secret(&dir, "token", "t0ken-s3cret\n");
    let cfg = PrometheusConfig {
        bearer_token_file: Some(token),
        headers: BTreeMap::from([
            ("X-Scope-OrgID".to_owned(), "tenant-1".to_owned()),
            ("X-Extra".to_owned(), "a b".to_owned()),
        ]),
        ..PrometheusConfig::new(
            format!("{}/select/0/prometheus/", prom.url()),
            Duration::from_millis(2500),
        )
    };
    let c = PromClient::from_config(&cfg).expect("client");
    let promql = r#"sum(rate(x{variant="canary", code=~"5.."}[1m])) / 2"#;
    assert_eq!(query(&c, promql), Sample::Value(3.0));
    let asked = prom.last_request().expect("a request");
    assert_eq!(asked.method, "GET");
    assert_eq!(asked.path, "/select/0/prometheus/api/v1/query");
    assert_eq!(asked.query.as_deref(), Some(promql));
    assert_eq!(asked.timeout.as_deref(), Some("2500ms"));
    assert_eq!(asked.header("authorization"), Some("Bearer t0ken-s3cret"));
    assert_eq!(asked.header("x-scope-orgid"), Some("tenant-1"));
    assert_eq!(asked.header("x-extra"), Some("a b"));
    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cret"), "{debug}");

    let password = secret(&dir, "password", "pa55\n");
    let cfg = PrometheusConfig {
        basic_auth: Some(PrometheusBasicAuth {
            username: "12345".into(),
            password_file: password,
        }),
        ..PrometheusConfig::new(prom.url(), TIMEOUT)
    };
    let c = PromClient::from_config(&cfg).expect("client");
    assert_eq!(query(&c, "up"), Sample::Value(3.0));
    let asked = prom.last_request().expect("a request");
    // base64("12345:pa55")
    assert_eq!(
        asked.header("authorization"),
        Some("Basic MTIzNDU6cGE1NQ==")
    );
    assert_eq!(asked.header("x-scope-orgid"), None);
    // An error message carries the URL, never the credentials.
    prom.set(Answer::Status(403));
    let message = expect_error(query(&c, "up"), &["HTTP 403"]);
    assert!(
        !message.contains("pa55") && !message.contains("MTIzNDU6"),
        "{message}"
    );
}

#[test]
fn a_secrets_file_readable_by_others_is_refused_naming_the_key() {
    let dir = TempDir::new("canaryd-prom-mode");
    let token = secret(&dir, "token", "t0ken");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let cfg = PrometheusConfig {
        bearer_token_file: Some(token.clone()),
        ..PrometheusConfig::new("https://prom.example", TIMEOUT)
    };
    let err = PromClient::from_config(&cfg).expect_err("world-readable token");
    assert_eq!(
        err.to_string(),
        format!(
            "prometheus.bearer_token_file: {0} is readable by other users (mode 644); run `chmod 600 {0}`",
            token.display()
        )
    );
}
