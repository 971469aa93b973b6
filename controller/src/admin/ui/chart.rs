//! Server-rendered SVG charts for the status page (`GET /`): the canary weight over time as a
//! step line, and one small chart per rule with its value, its threshold (dashed) and the
//! evaluations that failed (red dots). Pure functions from decision-log lines to SVG text: the
//! history is the decision log's in-memory tail ([`crate::store::KEEP`] lines, each
//! with a timestamp, the split and every rule's value and outcome), so no other state is kept.
//!
//! Every text that reaches the SVG (rule names and thresholds come from config, reasons from
//! operators) goes through [`escape`], and every series is thinned to at most [`MAX_POINTS`]
//! vertices whatever the length of the log. Times are labelled in UTC (the server does not
//! know the viewer's zone).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use crate::api::Decision;
use crate::policy::Outcome;

/// Most vertices drawn for one series (and most markers for one chart).
pub const MAX_POINTS: usize = 360;

/// Shortest time span a chart covers, so a single point is not a degenerate axis.
const MIN_SPAN_MS: u64 = 30_000;

/// Escapes text for HTML and SVG, in element content and in quoted attributes alike.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One evaluation of one rule, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct RulePoint {
    pub t_ms: u64,
    /// The value judged; `None` for no-data and errors (a gap in the line).
    pub value: Option<f64>,
    /// The number of the rule's `fail_when` at that time (it can change on reload).
    pub threshold: Option<f64>,
    pub failed: bool,
}

/// One rule's history.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSeries {
    pub name: String,
    /// The latest `fail_when` as written (`> 0.01`).
    pub threshold_text: String,
    pub points: Vec<RulePoint>,
}

/// What the charts draw, read from decision-log lines.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct History {
    /// (time, canary percent) of every line, in time order.
    pub weight: Vec<(u64, f64)>,
    /// Rules in order of first appearance.
    pub rules: Vec<RuleSeries>,
}

/// Milliseconds since the epoch of an RFC 3339 timestamp (`2024-05-01T12:00:03.123Z`).
pub fn parse_ts(ts: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(ts).ok()?;
    t.duration_since(UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// The number in a threshold such as `> 0.01` or `<= 0.99`.
fn threshold_number(text: &str) -> Option<f64> {
    text.trim_start_matches(['<', '>', '=', ' '])
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

impl History {
    /// Reads decision-log lines (any order; lines whose timestamp does not parse are
    /// skipped).
    pub fn from_log(lines: &[Decision]) -> Self {
        let mut timed: Vec<(u64, &Decision)> = lines
            .iter()
            .filter_map(|l| Some((parse_ts(&l.ts)?, l)))
            .collect();
        timed.sort_by_key(|(t, _)| *t);
        let mut h = History::default();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (t, line) in timed {
            h.weight.push((t, line.canary_percent));
            for r in line.rules() {
                let i = *index.entry(r.name.clone()).or_insert_with(|| {
                    h.rules.push(RuleSeries {
                        name: r.name.clone(),
                        ..RuleSeries::default()
                    });
                    h.rules.len() - 1
                });
                let series = &mut h.rules[i];
                if !r.threshold.is_empty() {
                    series.threshold_text.clone_from(&r.threshold);
                }
                series.points.push(RulePoint {
                    t_ms: t,
                    value: r.value.filter(|v| v.is_finite()),
                    threshold: threshold_number(&r.threshold),
                    failed: r.outcome == Some(Outcome::Fail),
                });
            }
        }
        h
    }

    /// The time range every chart shares: from the first line to `now_ms` (at least
    /// 30 seconds).
    pub fn span(&self, now_ms: u64) -> (u64, u64) {
        let first = self
            .weight
            .first()
            .map(|p| p.0)
            .into_iter()
            .chain(
                self.rules
                    .iter()
                    .filter_map(|r| r.points.first())
                    .map(|p| p.t_ms),
            )
            .min()
            .unwrap_or(now_ms);
        let last = self
            .weight
            .last()
            .map(|p| p.0)
            .into_iter()
            .chain(
                self.rules
                    .iter()
                    .filter_map(|r| r.points.last())
                    .map(|p| p.t_ms),
            )
            .fold(now_ms, u64::max);
        (first.min(last.saturating_sub(MIN_SPAN_MS)), last)
    }

    /// The series of rule `name` (empty when the log has none).
    pub fn rule(&self, name: &str) -> RuleSeries {
        self.rules
            .iter()
            .find(|r| r.name == name)
            .cloned()
            .unwrap_or_else(|| RuleSeries {
                name: name.to_string(),
                ..RuleSeries::default()
            })
    }
}

// === geometry ===

/// A chart's plot area and its mapping from (time, value) to SVG coordinates.
#[derive(Debug, Clone, Copy)]
struct Frame {
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    t0: u64,
    t1: u64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn plot_w(&self) -> f64 {
        self.width - self.left - self.right
    }

    fn plot_h(&self) -> f64 {
        self.height - self.top - self.bottom
    }

    fn x(&self, t: u64) -> f64 {
        let span = self.t1.saturating_sub(self.t0).max(1) as f64;
        let f = (t.clamp(self.t0, self.t1) - self.t0) as f64 / span;
        self.left + f * self.plot_w()
    }

    fn y(&self, v: f64) -> f64 {
        let range = (self.y1 - self.y0).max(f64::MIN_POSITIVE);
        let f = ((v - self.y0) / range).clamp(0.0, 1.0);
        self.top + (1.0 - f) * self.plot_h()
    }

    /// Opens the `<svg>` and draws the frame, the value grid and the time axis.
    fn open(
        &self,
        out: &mut String,
        class: &str,
        attrs: &str,
        title: &str,
        y_ticks: &[(f64, String)],
    ) {
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart {class}\"{attrs} viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
            self.width,
            self.height,
            t = escape(title)
        );
        let _ = write!(
            out,
            "<rect class=\"plot\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>",
            self.left,
            self.top,
            self.plot_w(),
            self.plot_h()
        );
        for (v, label) in y_ticks {
            let y = self.y(*v);
            let _ = write!(
                out,
                "<line class=\"grid\" x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\"/><text class=\"axis y-label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                self.left,
                self.left + self.plot_w(),
                self.left - 5.0,
                y + 3.5,
                escape(label)
            );
        }
        let base = self.top + self.plot_h();
        for (t, label) in time_ticks(self.t0, self.t1) {
            let x = self.x(t);
            // Labels near the right edge end at their tick instead of overflowing.
            let anchor = if x + 24.0 > self.width {
                "end"
            } else {
                "middle"
            };
            let _ = write!(
                out,
                "<line class=\"tick\" x1=\"{x:.1}\" y1=\"{base:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\"/><text class=\"axis x-label\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                base + 4.0,
                base + 16.0,
                escape(&label)
            );
        }
        let _ = write!(
            out,
            "<text class=\"axis utc\" x=\"2\" y=\"{:.1}\">UTC</text>",
            self.height - 2.0
        );
    }
}

/// `HH:MM:SS` (or shorter forms) of a time in ms, UTC.
pub fn clock(ms: u64, with_seconds: bool, with_date: bool) -> String {
    let s = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string();
    // "YYYY-MM-DDTHH:MM:SSZ"
    let time = s.get(11..if with_seconds { 19 } else { 16 }).unwrap_or("");
    match (with_date, s.get(5..10)) {
        (true, Some(date)) => format!("{date} {time}"),
        _ => time.to_string(),
    }
}

/// Evenly spaced, round time ticks over `[t0, t1]` (at most six).
fn time_ticks(t0: u64, t1: u64) -> Vec<(u64, String)> {
    const STEPS_S: [u64; 22] = [
        1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1_800, 3_600, 7_200, 10_800, 21_600, 43_200,
        86_400, 172_800, 604_800, 2_592_000, 31_536_000,
    ];
    let span = t1.saturating_sub(t0);
    let step = STEPS_S
        .iter()
        .map(|s| s * 1000)
        .find(|s| span / s <= 5)
        .unwrap_or(31_536_000_000);
    let with_seconds = step < 60_000;
    let with_date = span > 86_400_000;
    let mut t = t0.div_ceil(step) * step;
    let mut out = Vec::new();
    while t <= t1 && out.len() < 8 {
        out.push((t, clock(t, with_seconds, with_date)));
        t += step;
    }
    out
}

/// A compact number: up to four significant digits, exponent for very large or small values.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        return format!("{v:.2e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Round value ticks covering `[lo, hi]`; returns the widened range and the ticks.
fn value_ticks(lo: f64, hi: f64) -> (f64, f64, Vec<(f64, String)>) {
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo, lo + 1.0) };
    let raw = (hi - lo) / 3.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let (a, b) = ((lo / step).floor() * step, (hi / step).ceil() * step);
    let n = ((b - a) / step).round() as usize;
    let ticks = (0..=n.min(10))
        .map(|i| {
            let v = a + i as f64 * step;
            (v, fmt_num(v))
        })
        .collect();
    (a, b, ticks)
}

// === thinning ===

/// At most `max` points of a series, keeping each bucket's lowest and highest value (in time
/// order) so spikes survive. Series no longer than `max` are returned as they are.
fn thin(points: &[(u64, f64)], max: usize) -> Vec<(u64, f64)> {
    if points.len() <= max {
        return points.to_vec();
    }
    let buckets = (max / 2).max(1);
    let per = points.len().div_ceil(buckets);
    let mut out = Vec::with_capacity(max);
    for chunk in points.chunks(per) {
        let lo = chunk
            .iter()
            .enumerate()
            .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
            .map_or(0, |(i, _)| i);
        let hi = chunk
            .iter()
            .enumerate()
            .max_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
            .map_or(0, |(i, _)| i);
        let (first, second) = (lo.min(hi), lo.max(hi));
        out.push(chunk[first]);
        if second != first {
            out.push(chunk[second]);
        }
    }
    out
}

/// Drops points that repeat the previous value (a step line only needs the changes).
fn changes(points: &[(u64, f64)]) -> Vec<(u64, f64)> {
    let mut out: Vec<(u64, f64)> = Vec::new();
    for p in points {
        if out.last().is_none_or(|l| l.1 != p.1) {
            out.push(*p);
        }
    }
    out
}

/// Vertices of a step line through `points`, held until `end`.
fn step_vertices(points: &[(u64, f64)], end: u64) -> Vec<(u64, f64)> {
    let mut out = Vec::with_capacity(points.len() * 2 + 1);
    for (i, &(t, v)) in points.iter().enumerate() {
        if i > 0 {
            out.push((t, points[i - 1].1));
        }
        out.push((t, v));
    }
    if let Some(&(t, v)) = points.last() {
        if end > t {
            out.push((end, v));
        }
    }
    out
}

fn polyline(out: &mut String, class: &str, frame: &Frame, pts: &[(u64, f64)], extra: &str) {
    let mut p = String::with_capacity(pts.len() * 12);
    for (t, v) in pts {
        let _ = write!(p, "{:.1},{:.1} ", frame.x(*t), frame.y(*v));
    }
    let _ = write!(
        out,
        "<polyline class=\"{class}\" points=\"{}\"{extra}/>",
        p.trim_end()
    );
}

// === charts ===

/// The canary weight (0–100 %) over `span` as a step line, held to the end of the span.
/// The polyline carries `data-values`: the percent at each vertex.
pub fn weight_svg(h: &History, span: (u64, u64)) -> String {
    let (y0, y1) = (0.0, 100.0);
    let frame = Frame {
        width: 720.0,
        height: 190.0,
        left: 46.0,
        right: 14.0,
        top: 12.0,
        bottom: 26.0,
        t0: span.0,
        t1: span.1,
        y0,
        y1,
    };
    let ticks: Vec<(f64, String)> = [0.0, 25.0, 50.0, 75.0, 100.0]
        .iter()
        .map(|v| (*v, format!("{v} %")))
        .collect();
    let mut out = String::with_capacity(8 * 1024);
    frame.open(
        &mut out,
        "weight-chart",
        "",
        "Canary weight (%) over time",
        &ticks,
    );
    let changes = thin(&changes(&h.weight), MAX_POINTS / 2);
    if changes.is_empty() {
        let _ = write!(
            out,
            "<text class=\"empty\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no decisions logged yet</text></svg>",
            frame.left + frame.plot_w() / 2.0,
            frame.top + frame.plot_h() / 2.0
        );
        return out;
    }
    let vertices = step_vertices(&changes, span.1);
    let values: Vec<String> = vertices.iter().map(|(_, v)| fmt_num(*v)).collect();
    polyline(
        &mut out,
        "weight-line",
        &frame,
        &vertices,
        &format!(" data-values=\"{}\"", values.join(" ")),
    );
    for (t, v) in &changes {
        let _ = write!(
            out,
            "<circle class=\"weight-point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"><title>{} UTC: {} % canary</title></circle>",
            frame.x(*t),
            frame.y(*v),
            clock(*t, true, false),
            fmt_num(*v)
        );
    }
    if let Some((_, v)) = changes.last() {
        let _ = write!(
            out,
            "<text class=\"weight-now\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{} %</text>",
            frame.left + frame.plot_w() - 4.0,
            (frame.y(*v) - 6.0).max(frame.top + 11.0),
            fmt_num(*v)
        );
    }
    out.push_str("</svg>");
    out
}

/// One rule's value over `span`, its threshold as a dashed step line, failed evaluations as
/// red dots; gaps where the rule had no value (no data, errors).
pub fn rule_svg(r: &RuleSeries, span: (u64, u64)) -> String {
    let values: Vec<f64> = r.points.iter().filter_map(|p| p.value).collect();
    let thresholds: Vec<f64> = r.points.iter().filter_map(|p| p.threshold).collect();
    let all = values.iter().chain(&thresholds);
    let lo = all.clone().copied().fold(0.0_f64, f64::min);
    let hi = all.copied().fold(f64::NEG_INFINITY, f64::max);
    let hi = if hi.is_finite() { hi * 1.1 } else { 1.0 };
    let (y0, y1, ticks) = value_ticks(lo, hi);
    let frame = Frame {
        width: 360.0,
        height: 170.0,
        left: 46.0,
        right: 10.0,
        top: 30.0,
        bottom: 26.0,
        t0: span.0,
        t1: span.1,
        y0,
        y1,
    };
    let mut out = String::with_capacity(4 * 1024);
    let title = if r.threshold_text.is_empty() {
        format!("{}: value over time", r.name)
    } else {
        format!("{}: value against fail_when {}", r.name, r.threshold_text)
    };
    frame.open(
        &mut out,
        "rule-chart",
        &format!(" data-rule=\"{}\"", escape(&r.name)),
        &title,
        &ticks,
    );
    let _ = write!(
        out,
        "<text class=\"chart-title\" x=\"{:.1}\" y=\"14\">{}</text>",
        frame.left,
        escape(&r.name)
    );
    if !r.threshold_text.is_empty() {
        let _ = write!(
            out,
            "<text class=\"chart-sub\" x=\"{:.1}\" y=\"14\" text-anchor=\"end\">fail when {}</text>",
            frame.width - frame.right,
            escape(&r.threshold_text)
        );
    }
    // Threshold: a dashed step line (a reload can change it).
    let th: Vec<(u64, f64)> = r
        .points
        .iter()
        .filter_map(|p| p.threshold.map(|v| (p.t_ms, v)))
        .collect();
    let th = thin(&changes(&th), MAX_POINTS / 4);
    if !th.is_empty() {
        let mut v = step_vertices(&th, span.1);
        if let Some(first) = v.first().copied() {
            if first.0 > span.0 {
                v.insert(0, (span.0, first.1));
            }
        }
        polyline(
            &mut out,
            "threshold-line",
            &frame,
            &v,
            " stroke-dasharray=\"6 4\"",
        );
    }
    // Value: one polyline per stretch with values; a lone point is a dot.
    let mut segments: Vec<Vec<(u64, f64)>> = vec![Vec::new()];
    for p in &r.points {
        match p.value {
            Some(v) => {
                if let Some(s) = segments.last_mut() {
                    s.push((p.t_ms, v));
                }
            }
            None => {
                if segments.last().is_some_and(|s| !s.is_empty()) {
                    segments.push(Vec::new());
                }
            }
        }
    }
    segments.retain(|s| !s.is_empty());
    let total: usize = segments.iter().map(Vec::len).sum();
    // Budget vertices across segments, in proportion to their length.
    let mut budget_left = MAX_POINTS;
    for s in &segments {
        if budget_left < 2 {
            break;
        }
        let share = ((s.len() * MAX_POINTS) / total.max(1)).clamp(2, budget_left);
        let pts = thin(s, share);
        budget_left = budget_left.saturating_sub(pts.len());
        if pts.len() == 1 {
            let _ = write!(
                out,
                "<circle class=\"value-dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"/>",
                frame.x(pts[0].0),
                frame.y(pts[0].1)
            );
        } else {
            polyline(&mut out, "value-line", &frame, &pts, "");
        }
    }
    // Failed evaluations: at most one marker per pixel column.
    let mut last_col = None;
    let mut marks = 0;
    for p in r.points.iter().filter(|p| p.failed) {
        let Some(v) = p.value else { continue };
        let col = frame.x(p.t_ms).round() as i64;
        if last_col == Some(col) || marks >= MAX_POINTS {
            continue;
        }
        last_col = Some(col);
        marks += 1;
        let _ = write!(
            out,
            "<circle class=\"fail-point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\"><title>{} UTC: {} (fail)</title></circle>",
            frame.x(p.t_ms),
            frame.y(v),
            clock(p.t_ms, true, false),
            fmt_num(v)
        );
    }
    if values.is_empty() {
        let _ = write!(
            out,
            "<text class=\"empty\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no values yet</text>",
            frame.left + frame.plot_w() / 2.0,
            frame.top + frame.plot_h() / 2.0
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests;
