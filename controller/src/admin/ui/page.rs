//! The status page at the admin listener's `/`: one self-contained HTML document (inline CSS
//! and script, server-rendered SVG charts from [`crate::admin::ui::chart`]; nothing is loaded from
//! elsewhere, machines may have no internet).
//!
//! It shows the split, the step timeline with the hold's progress, the canary weight and each
//! rule's value against its threshold over time (from the decision log), each rule's last
//! outcome and the last decisions with their reasons. The live part is also served alone at
//! `GET /ui/fragment`; the page's script fetches it every [`REFRESH_MS`] and swaps it in
//! (without JavaScript a `<noscript>` meta refresh reloads the page).
//!
//! Operator buttons POST to the same `/api/v1/*` endpoints as the CLI, with the token the
//! operator types once: it is kept in the tab's `sessionStorage` and sent only as
//! `Authorization: Bearer`; the server never renders it. A refusal's `{error, hint}` is shown
//! as it is. Buttons the current phase forbids are disabled ([`allowed_actions`], the rules of
//! `Rollout::apply`). Every response carries a nonce-based Content-Security-Policy.

use std::fmt::Write as _;

use super::chart::{self as status_chart, clock, escape, fmt_num, parse_ts, History};
use crate::api::{
    ClusterRole, ClusterStatus, Decision, Kind, RolloutStatus, RuleCompare, RuleStatus, State,
    Status,
};

/// How often the page fetches the live fragment.
pub const REFRESH_MS: u32 = 2_000;

/// Rows of the decision list (after folding repeated evaluations).
const DECISION_ROWS: usize = 12;

/// What the page is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct PageData<'a> {
    /// `GET /api/v1/status`.
    pub status: &'a Status,
    /// Decision-log lines, oldest first.
    pub decisions: &'a [Decision],
    /// The split in force (the routing table's), shown when no policy runs.
    pub weight_percent: f64,
    /// Whether `[admin] token_file` is set (otherwise every action is refused).
    pub token_configured: bool,
    /// Wall clock, ms since the epoch: the right end of the charts.
    pub now_ms: u64,
}

/// Operator actions: API path segment and button label.
const ACTIONS: [(&str, &str); 7] = [
    ("approve", "Approve"),
    ("start", "Start"),
    ("pause", "Pause"),
    ("resume", "Resume"),
    ("promote", "Promote"),
    ("rollback", "Roll back"),
    ("abort", "Abort"),
];

/// The actions the API accepts for `status`: its state's ([`allowed_actions`]), less `approve`
/// while a rule holds and `promote` of a rollout paused during a gradual rollback — the two
/// refusals that depend on more than the state.
pub fn allowed_for(status: &RolloutStatus) -> Vec<&'static str> {
    allowed_actions(status.state)
        .iter()
        .copied()
        .filter(|a| match *a {
            "approve" => !status.holding,
            "promote" => status.paused_from != Some(State::RollingBack),
            _ => true,
        })
        .collect()
}

/// The actions the API accepts in rollout state `state`; the same rules as `Rollout::apply`,
/// so a disabled button is one the API would refuse with 409 ([`allowed_for`] adds the two
/// refusals that depend on more than the state).
pub fn allowed_actions(state: State) -> &'static [&'static str] {
    match state {
        State::Idle => &["start", "weight"],
        State::Progressing => &["pause", "promote", "rollback", "abort", "weight"],
        State::AwaitingApproval => &["approve", "pause", "promote", "rollback", "abort", "weight"],
        State::Paused => &["resume", "promote", "rollback", "abort", "weight"],
        State::RollingBack => &["pause", "rollback", "abort", "weight"],
        State::Promoted => &["start", "rollback", "weight"],
        State::RolledBack | State::Aborted => &["start", "weight"],
        // Without a policy the split is the operator's.
        State::Manual => &["weight"],
        // Blocked refuses everything but a start; disabled has no controller.
        State::Blocked => &["start"],
        State::Disabled => &[],
    }
}

/// A fresh random nonce for the page's `<script>` and `<style>` (CSP).
pub fn nonce() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: std's randomly keyed hasher, seeded with the time.
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        bytes[..8].copy_from_slice(&h.finish().to_le_bytes());
        bytes[8..].copy_from_slice(&h.finish().rotate_left(17).to_le_bytes());
    }
    bytes.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Response headers for the page and the fragment: only this document's own nonce'd script
/// and style run, fetches go to this origin only, no framing, no caching, no sniffing.
pub fn headers(nonce: &str) -> [(&'static str, String); 5] {
    [
        (
            "content-security-policy",
            format!(
                "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
                 connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'"
            ),
        ),
        ("x-content-type-options", "nosniff".into()),
        ("cache-control", "no-store".into()),
        ("referrer-policy", "no-referrer".into()),
        ("x-frame-options", "DENY".into()),
    ]
}

fn secs(s: f64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s.max(0.0).round() as u64))
        .to_string()
}

/// The whole page.
pub fn page(d: &PageData<'_>, nonce: &str) -> String {
    let policy = d.status.rollout().map_or("", |r| r.policy.as_str());
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"icon\" href=\"data:,\">\
         <noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>\
         <style nonce=\"{nonce}\">{CSS}</style></head><body>\
         <header><h1>canaryd</h1><span class=\"policy\">{policy}</span>\
         <span id=\"conn\" class=\"conn\">server-rendered</span></header>\
         <noscript><p class=\"note\">JavaScript is off: this page reloads every 5 s and the \
         operator buttons do not work (use <code>canaryd pause</code> etc.).</p></noscript>\
         <div class=\"layout\"><main id=\"live\" aria-live=\"polite\">",
        title = escape(&title(d)),
        policy = if policy.is_empty() {
            String::new()
        } else {
            format!("policy <b>{}</b>", escape(policy))
        },
    );
    out.push_str(&fragment(d));
    out.push_str("</main>");
    ops_panel(&mut out, d);
    let _ = write!(
        out,
        "</div><script nonce=\"{nonce}\">const REFRESH_MS = {REFRESH_MS};\n{SCRIPT}</script></body></html>\n"
    );
    out
}

/// The split to show: the rollout's, or the routing table's without a policy.
fn canary_percent(d: &PageData<'_>) -> f64 {
    d.status
        .rollout()
        .map_or(d.weight_percent, |r| r.canary_percent)
}

fn title(d: &PageData<'_>) -> String {
    let state = d.status.state();
    format!(
        "canaryd · {state} · {} % canary",
        fmt_num(canary_percent(d))
    )
}

/// The live part: summary, steps, charts, rules and decisions.
pub fn fragment(d: &PageData<'_>) -> String {
    let allowed = allowed(d).join(" ");
    let mut out = String::with_capacity(48 * 1024);
    let _ = write!(
        out,
        "<div id=\"allowed\" hidden data-actions=\"{}\" data-title=\"{}\"></div>",
        escape(&allowed),
        escape(&title(d))
    );
    summary(&mut out, d);
    if let Some(r) = d.status.rollout() {
        steps(&mut out, r);
    }
    let history = History::from_log(d.decisions);
    let span = history.span(d.now_ms);
    out.push_str("<section class=\"card\"><h2>Canary weight</h2>");
    out.push_str(&status_chart::weight_svg(&history, span));
    out.push_str("</section>");
    rules(
        &mut out,
        d.status.rollout().map_or(&[][..], |r| &r.rules),
        &history,
        span,
    );
    decisions(&mut out, d.decisions);
    out
}

fn summary(out: &mut String, d: &PageData<'_>) {
    let state = d.status.state().as_str();
    let canary = canary_percent(d).clamp(0.0, 100.0);
    let _ = write!(
        out,
        "<section class=\"card summary\"><div class=\"state-line\">\
         <span id=\"state\" class=\"badge state-{cls}\">{state}</span>",
        cls = escape(&state.replace('_', "-")),
        state = escape(&state.replace('_', " ")),
    );
    if let Some(r) = d.status.rollout() {
        let _ = write!(
            out,
            "<span class=\"step-of\">step <b id=\"step\">{}</b> of {}</span>",
            r.step + 1,
            r.steps.len()
        );
    }
    out.push_str("</div>");
    // The split as text and as a bar (an SVG: the CSP allows no inline style attributes).
    let _ = write!(
        out,
        "<div class=\"split\"><span id=\"split\" data-canary=\"{c}\"><b class=\"canary\">{c} %</b> canary \
         / <b class=\"stable\">{st} %</b> stable</span>\
         <svg class=\"split-bar\" viewBox=\"0 0 100 6\" preserveAspectRatio=\"none\" aria-hidden=\"true\">\
         <rect class=\"bar-stable\" x=\"0\" y=\"0\" width=\"100\" height=\"6\"/>\
         <rect class=\"bar-canary\" x=\"0\" y=\"0\" width=\"{cw:.2}\" height=\"6\"/></svg></div>",
        c = fmt_num(canary),
        st = fmt_num(100.0 - canary),
        cw = canary,
    );
    let Some(s) = d.status.rollout() else {
        out.push_str(
            "<p class=\"reason\">No rollout policy is configured: canaryd is a plain splitting \
             proxy. Set <code>[rollout] policy</code> to run one.</p></section>",
        );
        return;
    };
    if let Some(e) = &s.error {
        let _ = write!(out, "<p class=\"error\">{}</p>", escape(e));
    }
    if let Some(e) = &s.save_error {
        let _ = write!(
            out,
            "<p class=\"error\" id=\"save-error\">state not saved: {}</p>",
            escape(e)
        );
    }
    if let Some(c) = &s.cluster {
        fleet(out, c);
    }
    let _ = write!(
        out,
        "<p class=\"reason\"><span class=\"label\">reason</span> <span id=\"reason\">{}</span></p>",
        escape(&s.reason)
    );
    let _ = write!(
        out,
        "<p class=\"muted\">last change {} UTC</p>",
        escape(&short_ts(&s.updated_at))
    );
    out.push_str("</section>");
}

/// A fleet: this member's role, the leader, and each live member's split and epoch.
fn fleet(out: &mut String, c: &ClusterStatus) {
    let role = match c.role {
        ClusterRole::Leader => "leader",
        ClusterRole::Follower => "follower",
    };
    let _ = write!(
        out,
        "<p class=\"fleet\" id=\"fleet\" data-role=\"{role}\"><span class=\"label\">fleet</span> \
         <b>{}</b> is {role}; leader <b id=\"fleet-leader\">{}</b>{}</p><ul class=\"members\">",
        escape(&c.name),
        escape(c.leader.as_deref().unwrap_or("none known")),
        if c.connected {
            ""
        } else {
            " — <span class=\"error\">etcd unreachable: the split is kept, nothing moves</span>"
        }
    );
    for m in &c.members {
        let _ = write!(
            out,
            "<li>{} — {} % (epoch {}){}</li>",
            escape(&m.name),
            fmt_num(m.applied_percent),
            m.epoch,
            if m.connected { "" } else { ", cut off" }
        );
    }
    out.push_str("</ul>");
}

/// `2024-05-01 12:00:03` from an RFC 3339 timestamp.
fn short_ts(ts: &str) -> String {
    parse_ts(ts).map_or_else(
        || ts.to_string(),
        |ms| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
            )
            .to_string()
            .replace('T', " ")
            .trim_end_matches('Z')
            .to_string()
        },
    )
}

fn steps(out: &mut String, s: &RolloutStatus) {
    let state = s.state;
    let current = s.step;
    out.push_str("<section class=\"card\"><h2>Steps</h2><ol class=\"steps\" id=\"steps\">");
    for (i, w) in s.steps.iter().enumerate() {
        let class = match state {
            State::Promoted => "done",
            State::Idle => "pending",
            _ if i < current => "done",
            _ if i == current => match state {
                State::RolledBack | State::Aborted => "stopped",
                _ => "current",
            },
            _ => "pending",
        };
        let _ = write!(
            out,
            "<li class=\"step {class}\"><span class=\"w\">{} %</span>",
            fmt_num(*w)
        );
        if class == "current" {
            let hold = s.step_hold_s;
            let held = s.step_held_s.min(hold);
            let left = s.step_hold_remaining_s;
            let _ = write!(
                out,
                "<progress id=\"hold\" max=\"{:.3}\" value=\"{:.3}\"></progress>\
                 <span class=\"hold-text\">{} of {} held · {} left{}</span>",
                hold.max(0.001),
                held,
                secs(held),
                secs(hold),
                secs(left),
                match state {
                    State::Paused => " · paused",
                    State::AwaitingApproval => " · awaiting approval",
                    _ => "",
                }
            );
        } else {
            let _ = write!(
                out,
                "<span class=\"hold-text\">{}</span>",
                match class {
                    "done" => "done",
                    "stopped" => "stopped here",
                    _ => "",
                }
            );
        }
        out.push_str("</li>");
    }
    out.push_str("</ol></section>");
}

fn rules(out: &mut String, listed: &[RuleStatus], history: &History, span: (u64, u64)) {
    // The policy's rules in its order; without a policy, whatever the log holds.
    let names: Vec<String> = if listed.is_empty() {
        history.rules.iter().map(|r| r.name.clone()).collect()
    } else {
        listed.iter().map(|r| r.name.clone()).collect()
    };
    if names.is_empty() {
        return;
    }
    out.push_str("<section class=\"card\"><h2>Rules</h2>");
    if !listed.is_empty() {
        out.push_str(
            "<table class=\"rules\" id=\"rules\"><thead><tr><th>rule</th><th>value</th>\
             <th>fail when</th><th>outcome</th><th>breaching</th></tr></thead><tbody>",
        );
        for r in listed {
            let outcome = r.outcome.map_or("-", |o| o.as_str());
            let mut value = r.value.map_or("-".into(), fmt_num);
            if r.compare == Some(RuleCompare::Baseline) {
                let _ = write!(
                    value,
                    " <small>(canary {} / stable {})</small>",
                    r.canary().map_or("-".into(), fmt_num),
                    r.stable().map_or("-".into(), fmt_num)
                );
            }
            let _ = write!(
                out,
                "<tr data-rule=\"{n}\"><td>{n}{dry}<br><small>{src} · on fail {on_fail}</small></td>\
                 <td class=\"num\">{value}</td><td>{th}</td>\
                 <td><span class=\"badge outcome-{oc}\">{o}</span></td><td>{b}</td></tr>",
                n = escape(&r.name),
                dry = if r.dry_run {
                    " <span class=\"tag\">dry run</span>"
                } else {
                    ""
                },
                src = escape(r.source.as_str()),
                on_fail = escape(r.on_fail.as_str()),
                th = escape(&r.threshold),
                oc = escape(&outcome.replace('_', "-")),
                o = escape(&outcome.replace('_', " ")),
                b = if r.breaching_for_s > 0.0 {
                    format!("{} of {}", secs(r.breaching_for_s), secs(r.for_s))
                } else {
                    String::new()
                },
            );
            if let Some(e) = &r.error {
                let _ = write!(
                    out,
                    "<tr class=\"rule-error\"><td colspan=\"5\">error: {}</td></tr>",
                    escape(e)
                );
            }
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("<div class=\"rule-charts\">");
    for name in &names {
        out.push_str(&status_chart::rule_svg(&history.rule(name), span));
    }
    out.push_str("</div></section>");
}

/// What a decision line adds to its reason: failed rules, hold reasons, alerts, steps, a
/// failed save, every rule's value.
fn details(l: &Decision) -> Vec<String> {
    let mut out = Vec::new();
    let list =
        |v: &Option<Vec<String>>| v.as_deref().map(|a| a.join(", ")).filter(|s| !s.is_empty());
    if let Some(f) = list(&l.failed_rules) {
        out.push(format!("failed: {f}"));
    }
    if let Some(h) = list(&l.hold_reasons) {
        out.push(format!("holding: {h}"));
    }
    if let Some(a) = &l.alert_rule {
        out.push(format!("alert: {a}"));
    }
    if let (Some(from), Some(to)) = (l.from_step, l.to_step) {
        out.push(format!("step {} → {}", from + 1, to + 1));
    }
    if let Some(e) = &l.save_error {
        out.push(format!("state not saved: {e}"));
    }
    let vals: Vec<String> = l
        .rules()
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.name,
                r.value.map_or("-".into(), fmt_num),
                r.outcome.map_or("-", |o| o.as_str())
            )
        })
        .collect();
    if !vals.is_empty() {
        out.push(vals.join(" · "));
    }
    out
}

fn decisions(out: &mut String, lines: &[Decision]) {
    out.push_str("<section class=\"card\"><h2>Last decisions</h2>");
    if lines.is_empty() {
        out.push_str("<p class=\"muted\" id=\"decisions\">No decisions logged yet.</p></section>");
        return;
    }
    // Newest first; a run of identical evaluations (same action and reason) is one row.
    let mut rows: Vec<(&Decision, usize)> = Vec::new();
    for l in lines.iter().rev() {
        if let Some((newest, n)) = rows.last_mut() {
            let same = l.kind == Kind::Evaluation
                && newest.kind == Kind::Evaluation
                && l.action == newest.action
                && l.reason == newest.reason;
            if same {
                *n += 1;
                continue;
            }
        }
        if rows.len() == DECISION_ROWS {
            break;
        }
        rows.push((l, 1));
    }
    out.push_str(
        "<table class=\"decisions\" id=\"decisions\"><thead><tr><th>time (UTC)</th>\
         <th>decision</th><th>split</th><th>reason</th></tr></thead><tbody>",
    );
    for (l, n) in rows {
        let ts = l.ts.as_str();
        let action = l.action.as_str();
        let by = match (l.by, l.kind) {
            (Some(by), _) => by.as_str(),
            (None, Kind::Evaluation) => "evaluation",
            (None, Kind::Transition) => "",
        };
        let _ = write!(
            out,
            "<tr class=\"decision kind-{kind}\"><td title=\"{ts}\">{time}</td>\
             <td><span class=\"badge action-{ac}\">{a}</span>{times}<br><small>{by}</small></td>\
             <td class=\"num\">{pct} %</td><td><span class=\"why\">{why}</span>",
            kind = escape(l.kind.as_str()),
            ts = escape(ts),
            time =
                escape(&parse_ts(ts).map_or_else(|| ts.to_string(), |ms| clock(ms, true, false))),
            ac = escape(&action.replace('_', "-")),
            a = escape(&action.replace('_', " ")),
            times = if n > 1 {
                format!(" <small>×{n}</small>")
            } else {
                String::new()
            },
            by = escape(by),
            pct = fmt_num(l.canary_percent),
            why = escape(&l.reason),
        );
        for d in details(l) {
            let _ = write!(out, "<br><small>{}</small>", escape(&d));
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table></section>");
}

/// The buttons to enable: none without a token.
fn allowed(d: &PageData<'_>) -> Vec<&'static str> {
    match d.status.rollout() {
        // A fleet's follower takes no command (421): they go to the leader's page.
        Some(r)
            if r.cluster
                .as_ref()
                .is_some_and(|c| c.role == ClusterRole::Follower) =>
        {
            Vec::new()
        }
        Some(r) if d.token_configured => allowed_for(r),
        _ => Vec::new(),
    }
}

fn ops_panel(out: &mut String, d: &PageData<'_>) {
    let allowed = allowed(d);
    out.push_str("<aside id=\"ops\" class=\"card\"><h2>Operator</h2>");
    if !d.token_configured {
        out.push_str(
            "<p class=\"error\">Operator actions are disabled: no <code>[admin] token_file</code> \
             is configured.</p>",
        );
    }
    let follower = d
        .status
        .rollout()
        .and_then(|r| r.cluster.as_ref())
        .filter(|c| c.role == ClusterRole::Follower);
    if let Some(c) = follower {
        let _ = write!(
            out,
            "<p class=\"error\">This member follows the fleet's leader: commands go to its admin \
             API at <code>{}</code>.</p>",
            escape(c.leader_admin.as_deref().unwrap_or("(no leader known)"))
        );
    }
    out.push_str(
        "<label for=\"token\">Admin token</label><div class=\"row\">\
         <input id=\"token\" type=\"password\" autocomplete=\"off\" spellcheck=\"false\" \
         placeholder=\"paste the token\">\
         <button type=\"button\" id=\"save-token\">Use</button>\
         <button type=\"button\" id=\"forget-token\" class=\"quiet\">Forget</button></div>\
         <p class=\"muted\" id=\"token-state\">No token set. It stays in this tab only and is \
         sent as an Authorization header.</p>\
         <label for=\"reason-input\">Reason (logged)</label>\
         <input id=\"reason-input\" type=\"text\" maxlength=\"500\" placeholder=\"from the status page\">\
         <div class=\"buttons\">",
    );
    for (action, label) in ACTIONS {
        let _ = write!(
            out,
            "<button type=\"button\" data-action=\"{action}\" class=\"act act-{action}\"{}>{label}</button>",
            if allowed.contains(&action) {
                ""
            } else {
                " disabled"
            }
        );
    }
    let _ = write!(
        out,
        "</div><label for=\"percent\">Set the split by hand (pauses the policy)</label>\
         <div class=\"row\"><input id=\"percent\" type=\"number\" min=\"0\" max=\"100\" step=\"any\" \
         placeholder=\"%\"><button type=\"button\" data-action=\"weight\" class=\"act\"{}>Set weight</button></div>\
         <div id=\"result\" class=\"result\" role=\"status\"></div></aside>",
        if allowed.contains(&"weight") {
            ""
        } else {
            " disabled"
        }
    );
}

const CSS: &str = r#"
:root{--fg:#1f2933;--muted:#66717d;--line:#d9dee3;--bg:#f4f6f8;--card:#fff;--canary:#d97706;--stable:#2563eb;--bad:#dc2626;--ok:#15803d}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{display:flex;align-items:baseline;gap:16px;padding:10px 20px;background:#111827;color:#fff}
header h1{font-size:18px;margin:0}
header .policy{color:#cbd5e1}
.conn{margin-left:auto;font-size:12px;color:#cbd5e1}
.conn.ok::before{content:"● ";color:#22c55e}
.conn.bad{color:#fca5a5}
.layout{display:grid;grid-template-columns:minmax(0,1fr) 300px;gap:16px;padding:16px 20px;align-items:start}
@media (max-width:900px){.layout{grid-template-columns:1fr}}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin-bottom:16px}
aside.card{position:sticky;top:12px}
h2{font-size:13px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);margin:0 0 8px}
.state-line{display:flex;align-items:center;gap:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;background:#e5e7eb}
#state{font-size:15px;padding:3px 12px}
.state-progressing,.state-promoted,.outcome-pass,.action-advance,.action-promote,.action-healthy{background:#dcfce7;color:#166534}
.state-awaiting-approval,.action-awaiting-approval{background:#dbeafe;color:#1e40af}
.action-approve{background:#dcfce7;color:#166534}
.state-paused,.outcome-no-data,.outcome-inconclusive,.action-pause,.action-hold,.action-paused,.action-set-weight{background:#fef3c7;color:#92400e}
.state-rolled-back,.state-rolling-back,.state-aborted,.state-blocked,.outcome-fail,.outcome-error,.action-rollback,.action-rolled-back,.action-abort,.action-alert{background:#fee2e2;color:#991b1b}
.split{margin:10px 0 4px;font-size:16px}
.split .canary{color:var(--canary)}.split .stable{color:var(--stable)}
.split-bar{display:block;width:100%;height:12px;margin-top:6px;border-radius:6px}
.bar-stable{fill:var(--stable);opacity:.35}.bar-canary{fill:var(--canary)}
.reason{margin:8px 0 0}.label{color:var(--muted);font-size:12px;text-transform:uppercase}
.muted{color:var(--muted);font-size:12px;margin:4px 0}
.error{color:var(--bad);font-weight:600}
.steps{display:flex;gap:8px;list-style:none;padding:0;margin:0;flex-wrap:wrap}
.step{flex:1 1 120px;border:1px solid var(--line);border-radius:6px;padding:6px 10px;min-width:120px}
.step .w{display:block;font-size:18px;font-weight:700}
.step.done{background:#f0fdf4;border-color:#86efac}.step.current{border-color:var(--canary);border-width:2px;background:#fffbeb}
.step.stopped{background:#fef2f2;border-color:#fca5a5}.step.pending{color:var(--muted)}
.hold-text{font-size:12px;color:var(--muted)}
progress{width:100%;height:8px;appearance:none;border:0;border-radius:4px;background:#e5e7eb;overflow:hidden}
progress::-webkit-progress-bar{background:#e5e7eb}
progress::-webkit-progress-value{background:var(--canary)}
progress::-moz-progress-bar{background:var(--canary)}
svg.chart{display:block;width:100%;height:auto;font-size:11px}
.plot{fill:#fafbfc;stroke:var(--line)}
.grid{stroke:#e8ebee}.tick{stroke:#9aa5b1}
.axis{fill:var(--muted);font-size:10px}
.weight-line{fill:none;stroke:var(--canary);stroke-width:2.5;stroke-linejoin:round}
.weight-point{fill:var(--canary)}
.weight-now{fill:var(--canary);font-weight:700;font-size:12px}
.value-line{fill:none;stroke:var(--stable);stroke-width:1.8;stroke-linejoin:round}
.value-dot{fill:var(--stable)}
.threshold-line{fill:none;stroke:var(--bad);stroke-width:1.4}
.fail-point{fill:var(--bad)}
.chart-title{font-weight:700;font-size:12px;fill:var(--fg)}
.chart-sub{fill:var(--bad);font-size:11px}
.empty{fill:var(--muted);font-size:12px}
.rule-charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px;margin-top:10px}
table{width:100%;border-collapse:collapse}
th{text-align:left;font-size:12px;color:var(--muted);font-weight:600;border-bottom:1px solid var(--line);padding:4px 6px}
td{border-bottom:1px solid #eef0f2;padding:5px 6px;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td small{color:var(--muted)}
.tag{font-size:11px;background:#e0e7ff;color:#3730a3;border-radius:4px;padding:0 4px}
.rule-error td{color:var(--bad);font-size:12px}
label{display:block;font-size:12px;color:var(--muted);margin:10px 0 3px}
input{width:100%;padding:6px 8px;border:1px solid var(--line);border-radius:5px;font:inherit}
.row{display:flex;gap:6px}.row input{flex:1}
button{padding:6px 10px;border:1px solid #9aa5b1;border-radius:5px;background:#fff;font:inherit;cursor:pointer}
button:hover:not(:disabled){background:#f1f5f9}
button:disabled{opacity:.4;cursor:not-allowed}
button.quiet{border-color:var(--line)}
.buttons{display:grid;grid-template-columns:1fr 1fr;gap:6px;margin-top:12px}
.act-rollback,.act-abort{border-color:#fca5a5;color:#991b1b}
.act-promote,.act-approve{border-color:#86efac;color:#166534}
.act-approve{grid-column:1/-1;font-weight:600}
.result{margin-top:12px;font-size:13px;min-height:1.4em;word-break:break-word}
.result.ok{color:var(--ok)}.result.bad{color:var(--bad)}.result.busy{color:var(--muted)}
.result .hint{display:block;color:var(--fg);font-weight:400;margin-top:3px}
code{background:#eef0f2;border-radius:3px;padding:0 3px}
.note{margin:12px 20px}
"#;

const SCRIPT: &str = r#""use strict";
(function () {
  var KEY = "canaryd.admin-token";
  var byId = function (id) { return document.getElementById(id); };
  var live = byId("live"), conn = byId("conn"), result = byId("result");
  var tokenInput = byId("token"), tokenState = byId("token-state");
  function token() { try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; } }
  function showToken() {
    tokenState.textContent = token()
      ? "Token set for this tab (sessionStorage); sent only as an Authorization header."
      : "No token set. It stays in this tab only and is sent as an Authorization header.";
  }
  function applyAllowed() {
    var a = byId("allowed");
    var ok = a ? (a.getAttribute("data-actions") || "").split(" ") : [];
    document.querySelectorAll("button[data-action]").forEach(function (b) {
      b.disabled = ok.indexOf(b.getAttribute("data-action")) < 0;
    });
    if (a && a.getAttribute("data-title")) { document.title = a.getAttribute("data-title"); }
  }
  var inflight = false;
  function refresh() {
    if (inflight) { return; }
    inflight = true;
    fetch("/ui/fragment", { cache: "no-store" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.text(); })
      .then(function (html) {
        live.innerHTML = html;
        applyAllowed();
        conn.textContent = "live · updated " + new Date().toISOString().slice(11, 19) + " UTC";
        conn.className = "conn ok";
      })
      .catch(function (e) {
        conn.textContent = "cannot reach canaryd (" + e.message + ")";
        conn.className = "conn bad";
      })
      .then(function () { inflight = false; });
  }
  function show(kind, text, hint) {
    result.className = "result " + kind;
    result.textContent = text;
    if (hint) {
      var h = document.createElement("span");
      h.className = "hint";
      h.textContent = "hint: " + hint;
      result.appendChild(h);
    }
  }
  function act(action) {
    var body = { reason: byId("reason-input").value.trim() || "from the status page" };
    if (action === "weight") {
      var p = parseFloat(byId("percent").value);
      if (isNaN(p)) { show("bad", "Enter a percentage from 0 to 100."); return; }
      body.percent = p;
    }
    var headers = { "Content-Type": "application/json" };
    var t = token();
    if (t) { headers.Authorization = "Bearer " + t; }
    show("busy", action + "…");
    fetch("/api/v1/" + action, { method: "POST", headers: headers, body: JSON.stringify(body), cache: "no-store" })
      .then(function (r) {
        return r.text().then(function (text) {
          var json = null;
          try { json = JSON.parse(text); } catch (e) { json = null; }
          return { status: r.status, ok: r.ok, json: json, text: text };
        });
      })
      .then(function (r) {
        if (r.ok) {
          var s = r.json || {};
          show("ok", action + ": done; the rollout is now " + s.state + " at " + s.canary_percent + " % canary.");
        } else {
          var e = r.json || {};
          show("bad", r.status + ": " + (e.error || r.text), e.hint);
        }
        refresh();
      })
      .catch(function (e) { show("bad", action + " failed: " + e.message); });
  }
  byId("ops").addEventListener("click", function (ev) {
    var b = ev.target.closest("button");
    if (!b || b.disabled) { return; }
    if (b.id === "save-token") {
      var v = tokenInput.value.trim();
      if (!v) { show("bad", "Paste the token first."); return; }
      try { sessionStorage.setItem(KEY, v); } catch (e) { show("bad", "cannot keep the token: " + e.message); return; }
      tokenInput.value = "";
      showToken();
      show("ok", "Token set for this tab.");
    } else if (b.id === "forget-token") {
      try { sessionStorage.removeItem(KEY); } catch (e) { /* nothing kept */ }
      showToken();
      show("ok", "Token forgotten.");
    } else if (b.hasAttribute("data-action")) {
      act(b.getAttribute("data-action"));
    }
  });
  tokenInput.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") { ev.preventDefault(); byId("save-token").click(); }
  });
  showToken();
  applyAllowed();
  conn.textContent = "live";
  conn.className = "conn ok";
  setInterval(refresh, REFRESH_MS);
})();
"#;

#[cfg(test)]
mod tests;
