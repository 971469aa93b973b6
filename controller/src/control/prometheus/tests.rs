//! Unit tests of `prometheus.rs`.

use serde_json::json;

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
        ("https://prom:9090", "https"),
        ("ftp://prom", "ftp"),
        ("http://prom:9090/?x=1", "query"),
    ] {
        let err = PromClient::new(url, t).expect_err(url).to_string();
        assert!(err.contains(url), "{err}");
        assert!(err.contains(needle), "{err}");
    }
    let err = PromClient::new("http://prom:9090", Duration::ZERO).unwrap_err();
    assert!(err.to_string().contains("timeout"), "{err}");
}

#[test]
fn new_accepts_http_with_or_without_prefix() {
    let t = Duration::from_secs(1);
    let c = PromClient::new("http://127.0.0.1:9090/", t).unwrap();
    assert_eq!(c.url(), "http://127.0.0.1:9090");
    let c = PromClient::new("http://prom.internal/prometheus", t).unwrap();
    assert_eq!(c.url(), "http://prom.internal/prometheus");
    assert_eq!(c.timeout(), t);
}

fn vector(values: &[&str]) -> Value {
    let result: Vec<Value> = values
        .iter()
        .map(|v| json!({"metric": {}, "value": [1.0, v]}))
        .collect();
    json!({"status": "success", "data": {"resultType": "vector", "result": result}})
}

#[test]
fn decode_folds_result_shapes() {
    let scalar = |v: &str| json!({"status": "success", "data": {"resultType": "scalar", "result": [1.0, v]}});
    assert_eq!(decode(&scalar("2")), Ok(Sample::Value(2.0)));
    assert_eq!(decode(&scalar("NaN")), Ok(Sample::NoData));
    assert_eq!(decode(&scalar("+Inf")), Ok(Sample::Value(f64::INFINITY)));
    assert_eq!(decode(&vector(&[])), Ok(Sample::NoData));
    assert_eq!(decode(&vector(&["0.25"])), Ok(Sample::Value(0.25)));
    assert_eq!(decode(&vector(&["NaN"])), Ok(Sample::NoData));
    assert_eq!(
        decode(&vector(&["-Inf"])),
        Ok(Sample::Value(f64::NEG_INFINITY))
    );
    let err = decode(&vector(&["1", "2", "3"])).unwrap_err();
    assert!(err.contains("3 series"), "{err}");
    let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}});
    assert!(decode(&matrix).unwrap_err().contains("matrix"));
    let string =
        json!({"status": "success", "data": {"resultType": "string", "result": [1.0, "x"]}});
    assert!(decode(&string).unwrap_err().contains("string"));
    let bad = json!({"status": "error", "errorType": "bad_data", "error": "parse error"});
    assert_eq!(
        decode(&bad).unwrap_err(),
        "Prometheus rejected the query (bad_data): parse error"
    );
    assert!(decode(&scalar("abc")).unwrap_err().contains("malformed"));
}
