//! Unit tests of `chart.rs`.

use super::*;
use crate::api::tests::decision;
use serde_json::{json, Value};

const T0: u64 = 1_714_564_800_000; // 2024-05-01T12:00:00Z

fn ts(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn line(ms: u64, percent: f64, rules: Value) -> Decision {
    decision(json!({"ts": ts(ms), "action": "healthy", "canary_percent": percent, "rules": rules}))
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

fn points_of<'a>(svg: &'a str, class: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let key = format!("<polyline class=\"{class}\" points=\"");
    let mut rest = svg;
    while let Some(i) = rest.find(&key) {
        rest = &rest[i + key.len()..];
        let end = rest.find('"').unwrap();
        out.extend(rest[..end].split(' '));
    }
    out
}

#[test]
fn escapes_everything_that_comes_from_config_or_operators() {
    assert_eq!(
        escape(r#"<a href="x">&'"#),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
    );
    let evil = "<script>alert(1)</script>\"'&";
    let h = History::from_log(&[line(
        T0,
        5.0,
        json!([{"name": evil, "value": 0.5, "threshold": "> 0.1 <b>", "outcome": "fail"}]),
    )]);
    let svg = rule_svg(&h.rules[0], h.span(T0 + 1000));
    assert!(!svg.contains("<script"), "{svg}");
    assert!(!svg.contains("<b>"), "{svg}");
    assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
    assert!(svg.contains("data-rule=\"&lt;script&gt;"), "{svg}");
}

#[test]
fn empty_log_draws_axes_and_says_so() {
    let h = History::from_log(&[]);
    let span = h.span(T0);
    assert_eq!(span, (T0 - MIN_SPAN_MS, T0));
    let svg = weight_svg(&h, span);
    assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    assert!(svg.contains("no decisions logged yet"));
    assert!(!svg.contains("weight-line"));
    let r = rule_svg(&h.rule("errors"), span);
    assert!(r.contains("no values yet") && r.contains("data-rule=\"errors\""));
    assert!(!r.contains("threshold-line") && !r.contains("value-line"));
}

#[test]
fn single_point_is_a_visible_line_and_dot() {
    let h = History::from_log(&[line(
        T0,
        5.0,
        json!([{"name": "errors", "value": 0.002, "threshold": "> 0.01", "outcome": "pass"}]),
    )]);
    let span = h.span(T0);
    assert_eq!(span, (T0 - MIN_SPAN_MS, T0));
    let w = weight_svg(&h, span);
    assert!(w.contains("data-values=\"5\""), "{w}");
    assert_eq!(points_of(&w, "weight-line").len(), 1);
    let r = rule_svg(&h.rules[0], span);
    assert!(r.contains("class=\"value-dot\""), "{r}");
    assert!(r.contains("class=\"threshold-line\""), "{r}");
    assert!(r.contains("fail when &gt; 0.01"), "{r}");
    assert!(!r.contains("fail-point"));
    // The threshold is inside the value range, which starts at zero.
    assert!(r.contains(">0</text>"), "{r}");
}

#[test]
fn weight_is_a_step_line_through_each_change() {
    let lines: Vec<Decision> = [(0, 5.0), (1, 5.0), (2, 25.0), (3, 25.0), (4, 50.0)]
        .iter()
        .map(|(s, w)| line(T0 + s * 10_000, *w, json!([])))
        .collect();
    let h = History::from_log(&lines);
    let svg = weight_svg(&h, h.span(T0 + 60_000));
    // 5 → (25 at the same x) → 25 → 50 → held to the end.
    assert!(svg.contains("data-values=\"5 5 25 25 50 50\""), "{svg}");
    let pts = points_of(&svg, "weight-line");
    assert_eq!(pts.len(), 6);
    let ys: Vec<f64> = pts
        .iter()
        .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(
        ys.windows(2).all(|w| w[1] <= w[0]),
        "weight only rises: {ys:?}"
    );
    assert_eq!(count(&svg, "class=\"weight-point\""), 3);
    assert!(svg.contains("12:00:20 UTC: 25 % canary"), "{svg}");
}

#[test]
fn gaps_fails_and_threshold_changes() {
    let r = |v: Value, th: &str, o: &str| json!([{"name": "p99", "value": v, "threshold": th, "outcome": o}]);
    let lines = vec![
        line(T0, 5.0, r(json!(0.001), "> 0.005", "pass")),
        line(T0 + 1000, 5.0, r(json!(0.002), "> 0.005", "pass")),
        line(T0 + 2000, 5.0, r(Value::Null, "> 0.005", "no_data")),
        line(T0 + 3000, 5.0, r(json!(0.009), "> 0.005", "fail")),
        line(T0 + 4000, 5.0, r(json!(0.010), "> 0.02", "pass")),
    ];
    let h = History::from_log(&lines);
    let svg = rule_svg(&h.rules[0], h.span(T0 + 5000));
    assert_eq!(count(&svg, "class=\"value-line\""), 2, "{svg}");
    assert_eq!(count(&svg, "class=\"fail-point\""), 1);
    assert_eq!(count(&svg, "class=\"threshold-line\""), 1);
    // Threshold 0.005 then 0.02: a step (two y levels).
    let th = points_of(&svg, "threshold-line");
    let ys: std::collections::BTreeSet<&str> =
        th.iter().map(|p| p.split(',').nth(1).unwrap()).collect();
    assert_eq!(ys.len(), 2, "{th:?}");
    assert!(svg.contains("fail when &gt; 0.02"));
}

#[test]
fn many_points_are_bounded() {
    let n = 20_000u64;
    let lines: Vec<Decision> = (0..n)
        .map(|i| {
            let v = (i as f64 / 7.0).sin().abs();
            line(
                T0 + i * 1000,
                (i % 3) as f64 * 10.0,
                json!([{"name": "e", "value": v, "threshold": "> 0.5", "outcome": if v > 0.5 { "fail" } else { "pass" }}]),
            )
        })
        .collect();
    let h = History::from_log(&lines);
    let span = h.span(T0 + n * 1000);
    let w = weight_svg(&h, span);
    assert!(
        points_of(&w, "weight-line").len() <= MAX_POINTS + 2,
        "weight"
    );
    assert!(count(&w, "weight-point") <= MAX_POINTS);
    let r = rule_svg(&h.rules[0], span);
    assert!(points_of(&r, "value-line").len() <= MAX_POINTS, "values");
    assert!(count(&r, "fail-point") <= MAX_POINTS, "markers");
    assert!(r.len() < 64 * 1024, "{} bytes", r.len());
    // The spikes survive thinning: the top of the range is drawn.
    assert!(r.contains("class=\"value-line\""));
}

#[test]
fn numbers_and_time_ticks() {
    assert_eq!(fmt_num(0.01), "0.01");
    assert_eq!(fmt_num(0.0123456), "0.01235");
    assert_eq!(fmt_num(25.0), "25");
    assert_eq!(fmt_num(1234.0), "1234");
    assert_eq!(fmt_num(2.5e-5), "2.50e-5");
    assert_eq!(fmt_num(-3.0), "-3");
    let ticks = time_ticks(T0 + 500, T0 + 60_000);
    assert!(ticks.len() <= 6 && !ticks.is_empty(), "{ticks:?}");
    assert_eq!(ticks[0].1, "12:00:10");
    let long = time_ticks(T0, T0 + 3 * 86_400_000);
    assert!(long[0].1.contains("05-0"), "{long:?}");
    assert_eq!(parse_ts("2024-05-01T12:00:00.250Z"), Some(T0 + 250));
    assert_eq!(threshold_number(">= 2"), Some(2.0));
    assert_eq!(threshold_number("bigger"), None);
}
