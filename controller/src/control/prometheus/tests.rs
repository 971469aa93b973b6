//! Unit tests of `prometheus.rs`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use canaryd_config::PrometheusBasicAuth;
use serde_json::{json, Value};

use super::*;

#[test]
fn render_replaces_every_variant_placeholder() {
    assert_eq!(
        render(r#"rate(x{variant="{{variant}}"}[5m])"#, "canary"),
        r#"rate(x{variant="canary"}[5m])"#
    );
    assert_eq!(
        render("{{ variant }}/{{variant}}/{{  variant\t}}", "stable"),
        "stable/stable/stable"
    );
    assert_eq!(render("no placeholder", "canary"), "no placeholder");
    assert_eq!(render("", "canary"), "");
}

#[test]
fn render_leaves_other_braces_alone() {
    assert_eq!(render("{{other}} {{variant}}", "c"), "{{other}} c");
    assert_eq!(render("{{variant", "c"), "{{variant");
    assert_eq!(render("{{{variant}}}", "c"), "{{{variant}}}");
    assert_eq!(render("{{variants}}", "c"), "{{variants}}");
    assert_eq!(render("a{{b{{variant}}", "c"), "a{{bc");
    assert_eq!(render("ünï{{variant}}cødé", "c"), "ünïccødé");
}

#[test]
fn short_query_collapses_whitespace_and_truncates() {
    assert_eq!(
        short_query("  sum(rate(a[5m]))\n         / sum(rate(b[5m]))\t\n"),
        "sum(rate(a[5m])) / sum(rate(b[5m]))"
    );
    assert_eq!(short_query("up"), "up");
    assert_eq!(short_query(" \n "), "");
    let long = "é".repeat(300);
    let shown = short_query(&long);
    assert_eq!(shown.chars().count(), QUERY_TEXT_MAX + 1);
    assert!(shown.ends_with('…'));
    assert_eq!(short_query(&"x".repeat(200)), "x".repeat(200));
}

#[test]
fn new_rejects_bad_urls_naming_them() {
    let t = Duration::from_secs(1);
    for (url, needle) in [
        ("localhost:9090", "scheme"),
        ("not a url", "not a url"),
        ("ftp://prom", "ftp"),
        ("http://prom:9090/?x=1", "query"),
    ] {
        let err = PromClient::new(url, t).expect_err(url).to_string();
        assert!(err.starts_with("prometheus.url: "), "{err}");
        assert!(err.contains(url), "{err}");
        assert!(err.contains(needle), "{err}");
    }
    let err = PromClient::new("http://prom:9090", Duration::ZERO).unwrap_err();
    assert!(err.to_string().starts_with("prometheus.timeout: "), "{err}");
}

#[test]
fn new_accepts_http_and_https_with_or_without_prefix() {
    let t = Duration::from_secs(1);
    let c = PromClient::new("http://127.0.0.1:9090/", t).unwrap();
    assert_eq!(c.url(), "http://127.0.0.1:9090");
    assert_eq!(c.endpoint.as_str(), "http://127.0.0.1:9090/api/v1/query");
    let c = PromClient::new("https://prom.internal/prometheus/", t).unwrap();
    assert_eq!(c.url(), "https://prom.internal/prometheus");
    assert_eq!(
        c.endpoint.as_str(),
        "https://prom.internal/prometheus/api/v1/query"
    );
    assert_eq!(c.timeout(), t);
    assert_eq!(c.max_response_size(), 1 << 20);
}

/// A temp dir with secrets files, removed on drop.
struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("canaryd-prom-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, contents: &str, mode: u32) -> std::path::PathBuf {
        let f = self.0.join(name);
        std::fs::write(&f, contents).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
        f
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config() -> PrometheusConfig {
    PrometheusConfig::new("https://prom.example/prometheus", Duration::from_secs(1))
}

#[test]
fn credentials_go_into_a_sensitive_authorization_header_and_nowhere_else() {
    let dir = Dir::new("creds");
    let token = dir.file("token", "tok3n-s3cret\n", 0o600);
    let password = dir.file("password", " pa55-s3cret \n", 0o600);

    let cfg = PrometheusConfig {
        bearer_token_file: Some(token),
        headers: BTreeMap::from([("X-Scope-OrgID".to_owned(), "tenant-1".to_owned())]),
        ..config()
    };
    let (headers, auth) = credentials(&cfg).unwrap();
    assert_eq!(auth, Auth::Bearer);
    let value = &headers[AUTHORIZATION];
    assert_eq!(value.as_bytes(), b"Bearer tok3n-s3cret");
    assert!(value.is_sensitive());
    let client = PromClient::from_config(&cfg).unwrap();
    let debug = format!("{client:?}");
    assert!(!debug.contains("s3cret"), "{debug}");
    assert!(
        debug.contains("Bearer") && debug.contains("X-Scope-OrgID"),
        "{debug}"
    );

    let cfg = PrometheusConfig {
        basic_auth: Some(PrometheusBasicAuth {
            username: "user".into(),
            password_file: password,
        }),
        ..config()
    };
    let (headers, auth) = credentials(&cfg).unwrap();
    assert_eq!(auth, Auth::Basic);
    // base64("user:pa55-s3cret")
    assert_eq!(
        headers[AUTHORIZATION].as_bytes(),
        b"Basic dXNlcjpwYTU1LXMzY3JldA=="
    );
    assert!(headers[AUTHORIZATION].is_sensitive());
    let debug = format!("{:?}", PromClient::from_config(&cfg).unwrap());
    assert!(
        !debug.contains("s3cret") && !debug.contains("dXNl"),
        "{debug}"
    );
}

#[test]
fn secrets_files_are_mode_checked_and_named_by_key() {
    let dir = Dir::new("modes");
    let open = dir.file("token", "s3cret", 0o644);
    let cfg = PrometheusConfig {
        bearer_token_file: Some(open.clone()),
        ..config()
    };
    let err = PromClient::from_config(&cfg).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "prometheus.bearer_token_file: {0} is readable by other users (mode 644); run `chmod 600 {0}`",
            open.display()
        )
    );
    let empty = dir.file("password", "\n", 0o600);
    let cfg = PrometheusConfig {
        basic_auth: Some(PrometheusBasicAuth {
            username: "u".into(),
            password_file: empty.clone(),
        }),
        ..config()
    };
    let err = PromClient::from_config(&cfg).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "prometheus.basic_auth.password_file: {} is empty",
            empty.display()
        )
    );
    let cfg = PrometheusConfig {
        bearer_token_file: Some(dir.0.join("missing")),
        ..config()
    };
    let err = PromClient::from_config(&cfg).unwrap_err().to_string();
    assert!(
        err.starts_with("prometheus.bearer_token_file: cannot read "),
        "{err}"
    );
    let bad = dir.file("bad", "a\u{1}b", 0o600);
    let cfg = PrometheusConfig {
        bearer_token_file: Some(bad),
        ..config()
    };
    let err = PromClient::from_config(&cfg).unwrap_err().to_string();
    assert!(
        err.starts_with("prometheus.bearer_token_file: ") && err.contains("cannot carry"),
        "{err}"
    );
    assert!(!err.contains("a\u{1}b"), "{err}");
}

#[test]
fn invalid_sections_are_refused_as_canaryd_check_refuses_them() {
    let both = PrometheusConfig {
        bearer_token_file: Some("/t".into()),
        basic_auth: Some(PrometheusBasicAuth {
            username: "u".into(),
            password_file: "/p".into(),
        }),
        ..config()
    };
    let err = PromClient::from_config(&both).unwrap_err().to_string();
    assert!(err.starts_with("prometheus.basic_auth: "), "{err}");
    let auth_header = PrometheusConfig {
        headers: BTreeMap::from([("authorization".to_owned(), "Bearer x".to_owned())]),
        ..config()
    };
    let err = PromClient::from_config(&auth_header)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("prometheus.headers.authorization: "),
        "{err}"
    );
    let zero = PrometheusConfig {
        max_response_size: 0,
        ..config()
    };
    let err = PromClient::from_config(&zero).unwrap_err().to_string();
    assert!(err.starts_with("prometheus.max_response_size: "), "{err}");
}

#[test]
fn ca_file_must_hold_a_certificate() {
    let dir = Dir::new("ca");
    let not_pem = dir.file("ca.pem", "hello\n", 0o644);
    let cfg = PrometheusConfig {
        ca_file: Some(not_pem.clone()),
        ..config()
    };
    let err = PromClient::from_config(&cfg).unwrap_err().to_string();
    assert!(err.starts_with("prometheus.ca_file: "), "{err}");
    assert!(err.contains(&not_pem.display().to_string()), "{err}");
    let cfg = PrometheusConfig {
        ca_file: Some(dir.0.join("missing.pem")),
        ..config()
    };
    let err = PromClient::from_config(&cfg).unwrap_err().to_string();
    assert!(err.starts_with("prometheus.ca_file: cannot read "), "{err}");
}

#[test]
fn sizes_are_shown_in_whole_units() {
    assert_eq!(show_size(1 << 20), "1 MiB");
    assert_eq!(show_size(512 << 10), "512 KiB");
    assert_eq!(show_size(3 << 20), "3 MiB");
    assert_eq!(show_size(1000), "1000 bytes");
    assert_eq!(show_size(1), "1 bytes");
}

fn decode_json(answer: Value) -> Result<Sample, String> {
    decode(serde_json::from_value::<Answer>(answer).map_err(|e| e.to_string())?)
}

fn decode_text(answer: &str) -> Result<Sample, String> {
    decode(serde_json::from_str::<Answer>(answer).map_err(|e| e.to_string())?)
}

fn vector(values: &[&str]) -> Value {
    let result: Vec<Value> = values
        .iter()
        .map(|v| json!({"metric": {"job": "x", "instance": "y"}, "value": [1.0, v]}))
        .collect();
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

#[test]
fn decode_folds_result_shapes() {
    let scalar = |v: &str| json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, v]}});
    assert_eq!(decode_json(scalar("2")), Ok(Sample::Value(2.0)));
    assert_eq!(decode_json(scalar("NaN")), Ok(Sample::NoData));
    assert_eq!(
        decode_json(scalar("+Inf")),
        Ok(Sample::Value(f64::INFINITY))
    );
    assert_eq!(decode_json(vector(&[])), Ok(Sample::NoData));
    assert_eq!(decode_json(vector(&["0.25"])), Ok(Sample::Value(0.25)));
    assert_eq!(decode_json(vector(&["NaN"])), Ok(Sample::NoData));
    assert_eq!(
        decode_json(vector(&["-Inf"])),
        Ok(Sample::Value(f64::NEG_INFINITY))
    );
    let err = decode_json(vector(&["1", "2", "3"])).unwrap_err();
    assert!(err.contains("3 series"), "{err}");
    let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[1.0, "1"], [2.0, "2"]]}
    ]}});
    assert!(decode_json(matrix).unwrap_err().contains("matrix"));
    let string =
        json!({"status": "success", "data": {"resultType": "string", "result": [1.0, "x"]}});
    assert!(decode_json(string).unwrap_err().contains("string"));
    let bad = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
    assert_eq!(
        decode_json(bad).unwrap_err(),
        "Prometheus rejected the query (bad_data): parse error"
    );
    assert!(decode_json(scalar("abc"))
        .unwrap_err()
        .contains("malformed"));
    let histogram = json!({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "histogram": [1.0, {"count": "2"}]}
    ]}});
    assert!(decode_json(histogram)
        .unwrap_err()
        .contains("native histogram"));
    let odd = json!({"status": "success", "data": {"resultType": "vector", "result": [1, 2]}});
    assert!(decode_json(odd).unwrap_err().contains("malformed vector"));
    let no_type = json!({"status": "success", "data": {"result": []}});
    assert!(decode_json(no_type).unwrap_err().contains("no resultType"));
    let pending = json!({"status": "pending"});
    assert!(decode_json(pending).unwrap_err().contains("\"pending\""));
}

#[test]
fn decode_keeps_the_first_series_and_skips_the_rest_whatever_the_key_order() {
    let answer = r#"{"data":{"result":[{"value":[1,"7"],"metric":{"a":"b"}}],
        "resultType":"vector"},"warnings":["w"],"status":"success"}"#;
    assert_eq!(decode_text(answer), Ok(Sample::Value(7.0)));
    let mut many = String::from(r#"{"status":"success","data":{"resultType":"vector","result":["#);
    for i in 0..1000 {
        if i > 0 {
            many.push(',');
        }
        many.push_str(&format!(
            r#"{{"metric":{{"__name__":"up","instance":"h{i}"}},"value":[1.5,"{i}"]}}"#
        ));
    }
    many.push_str("]}}");
    let err = decode_text(&many).unwrap_err();
    assert!(err.starts_with("query returned 1000 series"), "{err}");
    let shape: Shape =
        serde_json::from_str(r#"[{"metric":{},"value":[1,"4"]},{"metric":{},"value":[1,"5"]}]"#)
            .unwrap();
    assert_eq!(
        shape,
        Shape {
            series: 2,
            first_value: Some("4".into()),
            text: None,
            numbers: 0,
            other: 0
        }
    );
    let null: Data = serde_json::from_str(r#"{"resultType":"vector","result":null}"#).unwrap();
    assert_eq!(null.result, Shape::default());
}

fn decode_range_json(answer: Value, points: usize) -> Result<Vec<Sample>, String> {
    let answer = serde_json::from_value::<RangeAnswer>(answer).map_err(|e| e.to_string())?;
    // 1000 s, every 30 s.
    decode_range(answer, 1_000_000, 30_000, points)
}

#[test]
fn decode_range_folds_each_step_like_an_instant_answer() {
    let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"variant": "canary", "pod": "a"}, "values": [[1000, "0.5"], [1030, "NaN"], [1090, "1"]]},
        {"metric": {"variant": "canary", "pod": "b"}, "values": [[1090.0, "2"]]},
    ]}});
    assert_eq!(
        decode_range_json(matrix, 4),
        Ok(vec![
            Sample::Value(0.5),
            // NaN, and a step without a point: no data.
            Sample::NoData,
            Sample::NoData,
            Sample::Error(
                "query returned 2 series, expected one (aggregate with sum(), max() …)".into()
            ),
        ])
    );
    let off_grid = json!({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[1015, "1"]]},
    ]}});
    assert!(decode_range_json(off_grid, 4).is_err_and(|e| e.contains("off the asked grid")));
    let refused = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
    assert_eq!(
        decode_range_json(refused, 4),
        Err("Prometheus rejected the query (bad_data): parse error".into())
    );
    let vector = json!({"status": "success", "data": {"resultType": "vector", "result": []}});
    assert!(decode_range_json(vector, 4).is_err_and(|e| e.contains("expected a matrix")));
}
