//! The status page at the admin listener's `/`, in a real headless Chromium (Debian
//! `chromium` + `chromium-driver`, driven over W3C WebDriver by `testkit::webdriver`): a
//! rollout is driven through two steps under traffic, then the page is checked against
//! `/api/v1/status` (state, split, step), its SVG charts (the weight's step line through the
//! steps taken, one chart per rule with a threshold line), the decision list, live refresh
//! without a reload, and the operator buttons (401 without a token, a real pause with it).
//! A screenshot is saved to `target/status-page.png`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::webdriver::{self, Browser};

use crate::common::{self, Canaryd, FakeGateway, Setup, Traffic};

const TOKEN: &str = "page-t0ken-for-tests";

/// A rule name that must be shown as text, never parsed as markup.
const TRICKY: &str = r#"p99 <b>latency</b> & "co""#;

fn policy() -> String {
    format!(
        r#"
name = "page-demo"
interval = "1s"
min_requests = 1
[[steps]]
weight = 5
hold = "2s"
[[steps]]
weight = 25
hold = "2s"
[[steps]]
weight = 50
hold = "1h"
[[steps]]
weight = 100
hold = "1h"
[[rules]]
name = "errors"
source = "local"
signal = "error_ratio"
window = "5s"
fail_when = "> 0.5"
on_no_data = "pass"
[[rules]]
name = '{TRICKY}'
source = "local"
signal = "latency_p99"
window = "5s"
fail_when = "> 0.25"
on_no_data = "pass"
"#
    )
}

fn post(d: &Canaryd, action: &str) -> (u16, Value) {
    let mut c = testkit::Client::connect(d.admin).unwrap();
    let auth = format!("Bearer {TOKEN}");
    let r = c
        .request(
            "POST",
            &format!("/api/v1/{action}"),
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            br#"{"reason": "status page test"}"#,
        )
        .unwrap();
    (r.status, r.json())
}

fn screenshot_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("status-page.png")
}

/// Polls the page until `css`'s text satisfies `f`.
fn wait_text(b: &mut Browser, what: &str, css: &str, f: impl Fn(&str) -> bool) -> String {
    b.wait_for(what, Duration::from_secs(15), |b| {
        Ok(b.text(css)?.filter(|t| f(t.trim())))
    })
}

#[test]
fn status_page_in_a_real_browser() {
    if !webdriver::available() {
        testkit::tool_missing("chromium / chromedriver");
        return;
    }
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let files = testkit::TempDir::new("canaryd-page");
    let token_file = common::write_token(files.path(), TOKEN);
    let policy_file = files.path().join("page-demo.toml");
    std::fs::write(&policy_file, policy()).unwrap();
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.rollout = format!("policy = \"{}\"\n", policy_file.display());
    let d = Canaryd::start_with_token(&setup, &token_file);

    // The page's HTTP contract: HTML, locked down by a nonce CSP, never cached.
    let r = testkit::get(d.admin, "/").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let csp = r.header("content-security-policy").unwrap_or_default();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap_or_else(|| panic!("no nonce in the CSP: {csp}"));
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(r.text().contains(&format!("<script nonce=\"{nonce}\">")));
    assert!(
        !r.text().contains(TOKEN),
        "the server never renders the token"
    );
    let fragment = testkit::get(d.admin, "/ui/fragment").unwrap();
    assert_eq!(fragment.status, 200);
    assert!(fragment.header("content-security-policy").is_some());
    assert!(fragment
        .text()
        .starts_with("<div id=\"allowed\" hidden data-actions=\"start weight\""));
    let again = testkit::get(d.admin, "/").unwrap();
    assert_ne!(
        again.header("content-security-policy"),
        Some(csp),
        "a fresh nonce per page"
    );

    // A rollout through two steps, under traffic so the rules have values.
    let traffic = Traffic::start(d.proxy, 2);
    let (code, body) = post(&d, "start");
    assert_eq!(code, 200, "{body}");
    d.wait_status("step 3 (50 %)", Duration::from_secs(30), |s| {
        s["state"] == "progressing" && s["canary_percent"] == 50.0
    });

    let mut b = Browser::launch(1280, 900).expect("launch chromium");
    let url = format!("http://{}/", d.admin);
    b.goto(&url).unwrap();

    // The inline script and style ran under the CSP (the nonce works).
    wait_text(&mut b, "the script to mark the page live", "#conn", |t| {
        t.starts_with("live")
    });
    let header_bg = b
        .execute(
            "return getComputedStyle(document.querySelector('header')).backgroundColor;",
            vec![],
        )
        .unwrap();
    assert_eq!(
        header_bg, "rgb(17, 24, 39)",
        "the inline stylesheet applies"
    );

    // State, split and step as /api/v1/status has them.
    let s = d.status();
    assert_eq!(
        b.text("#state").unwrap().as_deref(),
        s["state"].as_str(),
        "state"
    );
    let split = b.attr("#split", "data-canary").unwrap().unwrap();
    assert_eq!(split.parse::<f64>().ok(), s["canary_percent"].as_f64());
    assert!(b.text("#split").unwrap().unwrap().contains("50 % canary"));
    assert_eq!(
        b.text("#step").unwrap().unwrap(),
        (s["step"].as_u64().unwrap() + 1).to_string()
    );
    assert!(b.count(".steps .step.done").unwrap() == 2);
    assert!(b.count(".steps .step.current progress#hold").unwrap() == 1);

    // The weight chart: a step line through 5 → 25 → 50, higher weight drawn higher up.
    let values: Vec<f64> = b
        .attr("svg.weight-chart .weight-line", "data-values")
        .unwrap()
        .expect("a weight line")
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    let points: Vec<(f64, f64)> = b
        .attr("svg.weight-chart .weight-line", "points")
        .unwrap()
        .unwrap()
        .split(' ')
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    assert_eq!(values.len(), points.len());
    let mut steps = values.clone();
    steps.dedup();
    assert_eq!(steps, [5.0, 25.0, 50.0], "weights drawn: {values:?}");
    for (i, j) in [(0, 1), (1, 2)] {
        let y = |w: f64| points[values.iter().position(|v| *v == w).unwrap()].1;
        let (lo, hi) = (steps[i], steps[j]);
        assert!(y(hi) < y(lo), "{hi} % is drawn above {lo} %");
    }
    assert!(
        points.windows(2).all(|w| w[1].0 >= w[0].0),
        "time runs left to right: {points:?}"
    );

    // One chart per rule, each with its threshold line; the tricky name is text.
    let charts = b
        .execute(
            "return Array.from(document.querySelectorAll('svg.rule-chart')).map(c => ({
                rule: c.getAttribute('data-rule'),
                title: c.querySelector('.chart-title').textContent,
                thresholds: c.querySelectorAll('.threshold-line').length,
                values: c.querySelectorAll('.value-line, .value-dot').length,
             }));",
            vec![],
        )
        .unwrap();
    let names: Vec<&str> = s["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["errors", TRICKY]);
    let charts = charts.as_array().unwrap();
    assert_eq!(charts.len(), names.len(), "{charts:?}");
    for (c, name) in charts.iter().zip(&names) {
        assert_eq!(c["rule"], *name, "{c}");
        assert_eq!(c["title"], *name, "{c}");
        assert_eq!(c["thresholds"], 1, "{c}");
        assert!(c["values"].as_u64().unwrap() >= 1, "{c}");
    }
    assert_eq!(
        b.count("#live b").unwrap(),
        b.count("#live .split b, #live .step-of b").unwrap(),
        "no markup from a rule name"
    );

    // The decision list shows the latest decision's reason.
    b.wait_for(
        "the latest decision's reason on the page",
        Duration::from_secs(15),
        |b| {
            let latest = d.decisions().last().cloned().unwrap_or_default();
            let reason = latest["reason"].as_str().unwrap_or_default().to_string();
            let shown = b.text("#decisions tbody tr .why")?.unwrap_or_default();
            Ok((!reason.is_empty() && shown == reason).then_some(()))
        },
    );
    assert!(b
        .text("#decisions")
        .unwrap()
        .unwrap()
        .contains("step 2 → 3"));

    // Live refresh: a pause through the API shows up without a reload.
    b.execute("window.__noReload = 42; return null;", vec![])
        .unwrap();
    assert_eq!(post(&d, "pause").0, 200);
    wait_text(&mut b, "the page to show the pause", "#state", |t| {
        t == "paused"
    });
    assert_eq!(
        b.execute("return window.__noReload;", vec![]).unwrap(),
        json!(42),
        "the page was updated in place"
    );
    assert_eq!(post(&d, "resume").0, 200);
    wait_text(&mut b, "the page to show the resume", "#state", |t| {
        t == "progressing"
    });

    // Buttons follow the phase: Resume is disabled while progressing.
    let resume = b.find("button[data-action=resume]").unwrap();
    assert!(!b.is_enabled(&resume).unwrap());

    // Without a token: the API's 401, shown as it is; nothing changes.
    let pause = b.find("button[data-action=pause]").unwrap();
    b.click(&pause).unwrap();
    let shown = wait_text(&mut b, "the 401 on the page", "#result", |t| {
        t.starts_with("401")
    });
    assert!(shown.contains("missing or wrong bearer token"), "{shown}");
    assert!(
        shown.contains("hint: send `Authorization: Bearer"),
        "{shown}"
    );
    assert_eq!(d.status()["state"], "progressing");

    // With the token: a real pause.
    let input = b.find("#token").unwrap();
    b.send_keys(&input, TOKEN).unwrap();
    let save = b.find("#save-token").unwrap();
    b.click(&save).unwrap();
    wait_text(&mut b, "the token to be kept", "#token-state", |t| {
        t.starts_with("Token set")
    });
    let pause = b.find("button[data-action=pause]").unwrap();
    b.click(&pause).unwrap();
    let shown = wait_text(&mut b, "the pause to succeed", "#result", |t| {
        t.starts_with("pause: done")
    });
    assert!(shown.contains("paused"), "{shown}");
    let s = d.status();
    assert_eq!(s["state"], "paused", "{s}");
    assert!(
        s["reason"]
            .as_str()
            .unwrap()
            .contains("from the status page"),
        "{s}"
    );
    wait_text(&mut b, "the page to show its own pause", "#state", |t| {
        t == "paused"
    });
    let resume = b.find("button[data-action=resume]").unwrap();
    assert!(
        b.is_enabled(&resume).unwrap(),
        "Resume is enabled once paused"
    );
    // The token stays in the tab: not in the URL, not in the document.
    assert_eq!(b.url().unwrap(), url);
    let html = b
        .execute("return document.documentElement.outerHTML;", vec![])
        .unwrap();
    assert!(!html.as_str().unwrap().contains(TOKEN));

    // A screenshot of the whole page.
    let height = b
        .execute("return document.documentElement.scrollHeight;", vec![])
        .unwrap()
        .as_u64()
        .unwrap_or(900) as u32;
    b.set_window_size(1280, height.clamp(600, 4000) + 20)
        .unwrap();
    let path = b.save_screenshot(screenshot_path()).unwrap();
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    println!("status page screenshot: {}", path.display());

    drop(b);
    let answers = traffic.stop();
    assert_eq!(
        answers.keys().copied().collect::<Vec<_>>(),
        [200],
        "{answers:?}"
    );
}
