//! The controller on virtual time: scripted rule values, a real state store, decision log,
//! routing handle and board. One `tick` per virtual second, as `run` does.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::*;
use crate::policy::Outcome;
use crate::rollout::Command;
use tokio::sync::oneshot;

type Ctl = Controller<Arc<Scripted>>;

/// Rule values set by the test between ticks.
#[derive(Debug, Default)]
struct Scripted {
    /// Rule name → (canary, stable).
    values: Mutex<HashMap<String, (Sample, Sample)>>,
    /// Canary requests in any window.
    requests: AtomicU64,
    /// Calls to `sample`.
    samples: AtomicU64,
    /// Rule name → how long its answer takes (`None`: it never answers). The value is read
    /// when the sample is asked for, as a query is evaluated when it arrives.
    delays: Mutex<HashMap<String, Option<Duration>>>,
}

impl Scripted {
    /// `errors` at 0.1 %, `latency` at 20 ms, plenty of requests.
    fn healthy() -> Arc<Self> {
        let s = Self::default();
        s.requests.store(1_000_000, Ordering::Relaxed);
        s.set("errors", 0.001);
        s.set("latency", 0.02);
        Arc::new(s)
    }

    fn set(&self, rule: &str, v: f64) {
        self.set_sample(rule, Sample::Value(v));
    }

    fn set_sample(&self, rule: &str, s: Sample) {
        self.set_pair(rule, s.clone(), s);
    }

    fn set_pair(&self, rule: &str, canary: Sample, stable: Sample) {
        self.values
            .lock()
            .unwrap()
            .insert(rule.to_string(), (canary, stable));
    }

    fn set_requests(&self, n: u64) {
        self.requests.store(n, Ordering::Relaxed);
    }

    fn samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    /// `rule` answers after `delay`; `None`: it never answers.
    fn delay(&self, rule: &str, delay: Option<Duration>) {
        self.delays.lock().unwrap().insert(rule.to_string(), delay);
    }

    fn answer_at_once(&self, rule: &str) {
        self.delays.lock().unwrap().remove(rule);
    }
}

impl Sources for Arc<Scripted> {
    async fn sample(&self, rule: &Rule, variant: Variant) -> Sample {
        self.samples.fetch_add(1, Ordering::Relaxed);
        let answer = {
            let values = self.values.lock().unwrap();
            match (values.get(&rule.name), variant) {
                (Some((canary, _)), Variant::Canary) => canary.clone(),
                (Some((_, stable)), Variant::Stable) => stable.clone(),
                (None, _) => Sample::Error(format!("rule {} is not scripted", rule.name)),
            }
        };
        let delay = self.delays.lock().unwrap().get(&rule.name).copied();
        match delay {
            None => {}
            Some(Some(d)) => tokio::time::sleep(d).await,
            Some(None) => std::future::pending::<()>().await,
        }
        answer
    }

    fn requests(&self, _variant: Variant, _window: Duration) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = std::env::temp_dir().join(format!(
            "canaryd-controller-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Self(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Everything a controller is built on, kept by the test to look at.
struct Rig {
    dir: TempDir,
    src: Arc<Scripted>,
    table: RoutingHandle,
    board: Arc<Board>,
}

impl Rig {
    fn new(name: &str) -> Self {
        Self {
            dir: TempDir::new(name),
            src: Scripted::healthy(),
            table: RoutingHandle::new(0),
            board: Arc::default(),
        }
    }

    fn path(&self) -> &Path {
        &self.dir.0
    }

    fn boot(&self, policy: Policy, initial_percent: f64, autostart: bool) -> Ctl {
        boot(
            self.path(),
            policy,
            initial_percent,
            autostart,
            &self.table,
            &self.board,
            &self.src,
        )
    }

    fn persisted(&self) -> Option<RolloutState> {
        StateStore::new(self.path()).load().unwrap()
    }

    /// Every line of decisions.ndjson, each read as a decision.
    fn decisions(&self) -> Vec<Decision> {
        let text =
            std::fs::read_to_string(self.path().join("decisions.ndjson")).unwrap_or_default();
        text.lines()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("decision line is not a decision ({e}): {l}"))
            })
            .collect()
    }

    /// Actions of the decision lines of `kind` ("transition" or "evaluation").
    fn actions(&self, kind: &str) -> Vec<String> {
        self.decisions()
            .iter()
            .filter(|l| l.kind.as_str() == kind)
            .map(|l| l.action.as_str().to_string())
            .collect()
    }

    /// The first decision line with `action`.
    fn line(&self, action: &str) -> Decision {
        self.decisions()
            .into_iter()
            .find(|l| l.action.as_str() == action)
            .unwrap_or_else(|| panic!("no {action:?} line in {:#?}", self.decisions()))
    }

    /// The published status document.
    fn status(&self) -> RolloutStatus {
        rollout_of(self.board.status())
    }

    fn metrics(&self) -> String {
        let mut s = String::new();
        self.board.render(&mut s);
        s
    }
}

fn boot(
    dir: &Path,
    policy: Policy,
    initial_percent: f64,
    autostart: bool,
    table: &RoutingHandle,
    board: &Arc<Board>,
    src: &Arc<Scripted>,
) -> Ctl {
    Controller::new(
        policy,
        Settings {
            initial_percent,
            autostart,
            ..Settings::default()
        },
        StateStore::new(dir),
        Arc::new(DecisionLog::open(dir)),
        table.clone(),
        Arc::clone(src),
        Arc::clone(board),
    )
}

/// `n` virtual seconds, one tick each.
async fn secs(ctl: &mut Ctl, n: u64) {
    for _ in 0..n {
        tokio::time::advance(Duration::from_secs(1)).await;
        ctl.tick().await;
    }
}

/// One local rule (`errors`) and one PromQL rule (`latency`).
const RULES: &str = r#"
[[rules]]
name = "errors"
source = "local"
signal = "error_ratio"
window = "5s"
fail_when = "> 0.05"

[[rules]]
name = "latency"
source = "prometheus"
query = 'histogram_quantile(0.99, sum by (le) (rate(canaryd_request_duration_seconds_bucket{variant="canary"}[1m])))'
fail_when = "> 0.1"
"#;

/// 5 → 25 → 50 → 100 %, `holds` seconds each, PromQL every 2 s; `top` adds top-level keys.
fn policy_with(top: &str, holds: [u64; 4], rules: &str) -> Policy {
    let mut src = format!("name = \"unit\"\ninterval = \"2s\"\n{top}\n");
    for (weight, hold) in [5, 25, 50, 100].into_iter().zip(holds) {
        src.push_str(&format!(
            "[[steps]]\nweight = {weight}\nhold = \"{hold}s\"\n"
        ));
    }
    src.push_str(rules);
    Policy::from_source("unit.toml", &src).unwrap_or_else(|e| panic!("{e}\n{src}"))
}

fn policy(top: &str, rules: &str) -> Policy {
    policy_with(top, [3, 3, 3, 3], rules)
}

/// The rollout's document (not the disabled one).
fn rollout_of(status: Status) -> RolloutStatus {
    match status {
        Status::Rollout(r) => *r,
        Status::Disabled { .. } => panic!("the status is `disabled`"),
    }
}

/// The entry for rule `name` in a `rules` array.
fn rule<'a>(rules: &'a [RuleStatus], name: &str) -> &'a RuleStatus {
    rules
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no rule {name:?} in {rules:?}"))
}

/// Every decision line carries every rule with its value and outcome.
fn assert_lines_name_rules(lines: &[Decision], names: &[&str]) {
    assert!(!lines.is_empty());
    for l in lines {
        let rules = l
            .rules
            .as_ref()
            .unwrap_or_else(|| panic!("no rules: {l:?}"));
        let got: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(got, names, "{l:?}");
        // On the wire too: the keys are there even when null.
        let v = serde_json::to_value(l).unwrap();
        for r in v["rules"].as_array().unwrap() {
            let r = r.as_object().unwrap();
            assert!(r.contains_key("value") && r.contains_key("outcome"), "{v}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn autostart_start_reaches_the_transition_hook() {
    // The hook is part of the settings, so the start committed at construction is delivered
    // (it used to be committed before the daemon could install the hook, and never notified).
    let rig = Rig::new("autostart-hook");
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let heard = Arc::clone(&seen);
    let hook: DecisionHook = Arc::new(move |line: &Decision| {
        let action = line.action.as_str().to_string();
        heard.lock().unwrap().push(action);
    });
    let ctl = Controller::new(
        policy("", RULES),
        Settings {
            initial_percent: 0.0,
            autostart: true,
            on_transition: Some(hook),
        },
        StateStore::new(rig.path()),
        Arc::new(DecisionLog::open(rig.path())),
        rig.table.clone(),
        Arc::clone(&rig.src),
        Arc::clone(&rig.board),
    );
    assert_eq!(ctl.state().phase, Phase::Progressing);
    assert_eq!(*seen.lock().unwrap(), ["start"]);
}

#[tokio::test(start_paused = true)]
async fn autostart_walks_every_step_to_promotion() {
    let rig = Rig::new("promotion");
    let mut ctl = rig.boot(policy("", RULES), 0.0, true);
    // Started at construction, persisted and routed before the first tick.
    assert_eq!(
        (ctl.state().phase, ctl.state().step),
        (Phase::Progressing, 0),
        "{}",
        ctl.state().reason
    );
    assert_eq!(rig.table.weight_bp(), 500);
    let st = rig.persisted().expect("the start is persisted");
    assert_eq!(
        (st.phase, st.step, st.canary_percent),
        (Phase::Progressing, 0, 5.0)
    );

    ctl.tick().await;
    let mut moves = Vec::new();
    let mut last = (ctl.state().phase, ctl.state().step);
    for second in 1..=20 {
        secs(&mut ctl, 1).await;
        let s = ctl.state();
        assert_eq!(
            rig.table.weight_bp(),
            RoutingHandle::percent_to_bp(s.canary_percent),
            "second {second}: the routing table follows the rollout"
        );
        if (s.phase, s.step) != last {
            last = (s.phase, s.step);
            moves.push((second, s.phase, s.step, rig.table.weight_bp()));
        }
    }
    // Each step holds exactly 3 healthy seconds.
    assert_eq!(
        moves,
        [
            (3, Phase::Progressing, 1, 2_500),
            (6, Phase::Progressing, 2, 5_000),
            (9, Phase::Progressing, 3, 10_000),
            (12, Phase::Promoted, 3, 10_000),
        ]
    );
    assert_eq!(rig.persisted().unwrap().phase, Phase::Promoted);
    assert_eq!(rig.persisted().unwrap().canary_percent, 100.0);

    let lines = rig.decisions();
    assert_lines_name_rules(&lines, &["errors", "latency"]);
    assert_eq!(
        rig.actions("transition"),
        ["start", "advance", "advance", "advance", "promote"]
    );
    assert!(rig.actions("evaluation").iter().all(|a| a == "healthy"));
    let advances: Vec<_> = lines
        .iter()
        .filter(|l| l.action == Action::Advance)
        .collect();
    for (i, (l, percent)) in advances.iter().zip([25.0, 50.0, 100.0]).enumerate() {
        assert_eq!((l.from_step, l.to_step), (Some(i), Some(i + 1)), "{l:?}");
        assert_eq!(l.canary_percent, percent, "{l:?}");
        assert_eq!(l.policy, "unit");
    }
    let promote = rig.line("promote");
    assert_eq!(promote.state, Phase::Promoted);
    for l in advances.into_iter().chain([&promote]) {
        let errors = rule(l.rules(), "errors");
        assert_eq!(
            (errors.value, errors.outcome),
            (Some(0.001), Some(Outcome::Pass))
        );
        let latency = rule(l.rules(), "latency");
        assert_eq!(
            (latency.value, latency.outcome),
            (Some(0.02), Some(Outcome::Pass))
        );
    }

    // Nothing moves a promoted rollout, and nothing is judged any more.
    let samples = rig.src.samples();
    rig.src.set("errors", 0.9);
    secs(&mut ctl, 10).await;
    assert_eq!(rig.table.weight_bp(), 10_000);
    assert_eq!(rig.src.samples(), samples);
    assert_eq!(rig.decisions().len(), lines.len());
}

#[tokio::test(start_paused = true)]
async fn state_survives_a_restart_and_the_persisted_split_wins() {
    let rig = Rig::new("persistence");
    let pol = || policy_with("", [3, 20, 3, 3], RULES);
    let mut ctl = rig.boot(pol(), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 3).await;
    assert_eq!((ctl.state().step, rig.table.weight_bp()), (1, 2_500));
    secs(&mut ctl, 7).await;
    assert_eq!(ctl.state().held_ms, 7_000);
    let st = rig.persisted().unwrap();
    assert_eq!(
        (st.phase, st.step, st.canary_percent),
        (Phase::Progressing, 1, 25.0)
    );
    // Persisted at least once per interval (2 s).
    assert!(
        st.held_ms <= 7_000 && 7_000 - st.held_ms <= 2_000,
        "persisted held_ms {} for 7 s held",
        st.held_ms
    );
    drop(ctl);

    // A new daemon: another initial_percent, no autostart, a fresh routing table.
    let table = RoutingHandle::new(0);
    let board = Arc::new(Board::default());
    let mut ctl = boot(rig.path(), pol(), 50.0, false, &table, &board, &rig.src);
    assert_eq!(
        (ctl.state().phase, ctl.state().step, ctl.state().held_ms),
        (Phase::Progressing, 1, st.held_ms)
    );
    assert_eq!(
        table.weight_bp(),
        2_500,
        "the persisted split wins over initial_percent"
    );
    let remaining_s = (20_000 - st.held_ms) / 1_000;
    assert_eq!(
        rollout_of(board.status()).step_hold_remaining_s,
        remaining_s as f64
    );
    assert_eq!(rollout_of(board.status()).state, State::Progressing);
    assert_eq!(
        rig.actions("transition")
            .iter()
            .filter(|a| *a == "start")
            .count(),
        1
    );

    // It goes on from the held time: step 1 completes after the remaining seconds.
    ctl.tick().await;
    let mut advanced_at = None;
    for second in 1..=30 {
        secs(&mut ctl, 1).await;
        if ctl.state().step == 2 {
            advanced_at = Some(second);
            break;
        }
    }
    assert_eq!(advanced_at, Some(remaining_s));
    assert_eq!(table.weight_bp(), 5_000);
}

#[tokio::test(start_paused = true)]
async fn without_autostart_it_stays_idle_at_initial_percent() {
    let rig = Rig::new("idle");
    let mut ctl = rig.boot(policy("", RULES), 12.5, false);
    ctl.tick().await;
    secs(&mut ctl, 30).await;
    assert_eq!(ctl.state().phase, Phase::Idle);
    assert_eq!(rig.table.weight_bp(), 1_250);
    assert_eq!(rig.src.samples(), 0, "an idle rollout judges nothing");
    assert_eq!(rig.persisted(), None);
    assert!(rig.decisions().is_empty());
    let status = rig.status();
    assert_eq!(status.state, State::Idle);
    assert_eq!(status.canary_percent, 12.5);
    assert!(rig
        .metrics()
        .contains("canaryd_rollout_state{state=\"idle\"} 1\n"));
}

#[tokio::test(start_paused = true)]
async fn prometheus_no_data_holds_until_data_comes() {
    let rig = Rig::new("nodata");
    rig.src.set_sample("latency", Sample::NoData);
    let mut ctl = rig.boot(policy("", RULES), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 20).await;
    assert_eq!((ctl.state().step, ctl.state().held_ms), (0, 0));
    assert_eq!(rig.table.weight_bp(), 500);
    assert_eq!(rig.actions("transition"), ["start", "hold"]);
    let hold = rig.line("hold");
    assert_eq!(hold.hold_reasons, Some(vec!["latency no_data".to_string()]));
    let evaluations = rig.actions("evaluation");
    assert_eq!(evaluations.len(), 10, "one evaluation per interval");
    assert!(evaluations.iter().all(|a| a == "hold"), "{evaluations:?}");
    let latency = rule(&rig.status().rules, "latency").clone();
    assert_eq!(
        (latency.value, latency.outcome),
        (None, Some(Outcome::NoData))
    );

    // Data again: judged at the next evaluation (t = 22), then 3 healthy seconds.
    rig.src.set("latency", 0.02);
    secs(&mut ctl, 4).await;
    assert_eq!(ctl.state().step, 0);
    secs(&mut ctl, 1).await;
    assert_eq!((ctl.state().step, rig.table.weight_bp()), (1, 2_500));
    assert_eq!(
        rig.actions("transition"),
        ["start", "hold", "hold_end", "advance"]
    );
}

#[tokio::test(start_paused = true)]
async fn no_data_passes_when_the_rule_says_so() {
    let rig = Rig::new("nodata-pass");
    rig.src.set_sample("latency", Sample::NoData);
    let rules = RULES.replace(
        "fail_when = \"> 0.1\"",
        "fail_when = \"> 0.1\"\non_no_data = \"pass\"",
    );
    let mut ctl = rig.boot(policy("", &rules), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 3).await;
    assert_eq!((ctl.state().step, rig.table.weight_bp()), (1, 2_500));
    secs(&mut ctl, 9).await;
    assert_eq!(ctl.state().phase, Phase::Promoted);
    let advance = rig.line("advance");
    assert_eq!(
        rule(advance.rules(), "latency").outcome,
        Some(Outcome::NoData)
    );
}

#[tokio::test(start_paused = true)]
async fn too_few_requests_is_no_data_and_holds() {
    let rig = Rig::new("min-requests");
    rig.src.set_requests(10);
    let mut ctl = rig.boot(policy("min_requests = 100", RULES), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 10).await;
    assert_eq!((ctl.state().step, ctl.state().held_ms), (0, 0));
    let status = rig.status();
    for name in ["errors", "latency"] {
        let r = rule(&status.rules, name);
        assert_eq!((r.value, r.outcome), (None, Some(Outcome::NoData)), "{r:?}");
    }
    assert_eq!(rig.actions("transition"), ["start", "hold"]);
    assert_eq!(
        rig.src.samples(),
        0,
        "below min_requests the sources are not even asked"
    );

    rig.src.set_requests(100);
    secs(&mut ctl, 5).await;
    assert_eq!((ctl.state().step, rig.table.weight_bp()), (1, 2_500));
}

#[tokio::test(start_paused = true)]
async fn a_failing_rule_rolls_back_for_good() {
    let rig = Rig::new("rollback");
    let mut ctl = rig.boot(policy("", RULES), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 3).await;
    assert_eq!(rig.table.weight_bp(), 2_500);
    rig.src.set("errors", 0.5);
    secs(&mut ctl, 1).await;
    assert_eq!(rig.table.weight_bp(), 0);
    assert_eq!(
        (ctl.state().phase, ctl.state().canary_percent),
        (Phase::RolledBack, 0.0)
    );
    assert!(
        ctl.state().reason.contains("errors"),
        "{}",
        ctl.state().reason
    );

    let rollback = rig.line("rollback");
    assert_eq!(rollback.failed_rules, Some(vec!["errors".to_string()]));
    assert_eq!(rollback.gradual, Some(false));
    let errors = rule(rollback.rules(), "errors");
    assert_eq!(
        (errors.value, errors.outcome),
        (Some(0.5), Some(Outcome::Fail))
    );
    assert_eq!(
        rig.actions("transition"),
        ["start", "advance", "rollback", "rolled_back"]
    );
    assert_lines_name_rules(&rig.decisions(), &["errors", "latency"]);
    let st = rig.persisted().unwrap();
    assert_eq!((st.phase, st.canary_percent), (Phase::RolledBack, 0.0));
    assert_eq!(rig.status().state, State::RolledBack);
    drop(ctl);

    // A restart (even with autostart and another initial_percent) stays on stable.
    rig.src.set("errors", 0.0);
    let table = RoutingHandle::new(5_000);
    let board = Arc::new(Board::default());
    let mut ctl = boot(
        rig.path(),
        policy("", RULES),
        50.0,
        true,
        &table,
        &board,
        &rig.src,
    );
    assert_eq!(table.weight_bp(), 0);
    assert_eq!(ctl.state().phase, Phase::RolledBack);
    let lines = rig.decisions().len();
    ctl.tick().await;
    secs(&mut ctl, 10).await;
    assert_eq!(
        (table.weight_bp(), ctl.state().phase),
        (0, Phase::RolledBack)
    );
    assert_eq!(rig.decisions().len(), lines);
}

#[tokio::test(start_paused = true)]
async fn consecutive_errors_turn_into_on_fail() {
    let rig = Rig::new("errors");
    rig.src
        .set_sample("latency", Sample::Error("connection refused".into()));
    let mut ctl = rig.boot(policy("max_consecutive_errors = 3", RULES), 0.0, true);
    // PromQL is evaluated at t = 0, 2, 4: two errors hold ...
    ctl.tick().await;
    secs(&mut ctl, 3).await;
    assert_eq!(
        (ctl.state().phase, ctl.state().held_ms),
        (Phase::Progressing, 0)
    );
    assert_eq!(rig.table.weight_bp(), 500);
    let latency = rule(&rig.status().rules, "latency").clone();
    assert_eq!(latency.outcome, Some(Outcome::Error));
    assert!(
        latency
            .error
            .as_deref()
            .unwrap()
            .contains("connection refused"),
        "{latency:?}"
    );
    assert_eq!(
        rig.line("hold").hold_reasons,
        Some(vec!["latency error".to_string()])
    );
    // Errors hold *and* alert (DESIGN), once per streak of errors.
    let alert = rig.line("alert").alert_rule.unwrap();
    assert!(
        alert.contains("latency") && alert.contains("connection refused"),
        "{alert}"
    );
    // ... the third applies on_fail (rollback).
    secs(&mut ctl, 1).await;
    assert_eq!(
        (ctl.state().phase, rig.table.weight_bp()),
        (Phase::RolledBack, 0)
    );
    assert_eq!(
        rig.line("rollback").failed_rules,
        Some(vec!["latency".to_string()])
    );
    assert_eq!(
        rig.actions("transition"),
        ["start", "alert", "hold", "rollback", "rolled_back"]
    );
}

const BASELINE: &str = r#"
[[rules]]
name = "errors"
source = "local"
signal = "error_ratio"
fail_when = "> 0.05"

[[rules]]
name = "auth"
source = "prometheus"
query = 'sum(rate(auth_failures_total{variant="{{variant}}"}[1m]))'
compare = "baseline"
fail_when = "> 2.0"
on_fail = "rollback"
"#;

#[tokio::test(start_paused = true)]
async fn baseline_three_times_stable_rolls_back() {
    let rig = Rig::new("baseline-fail");
    rig.src
        .set_pair("auth", Sample::Value(3.0), Sample::Value(1.0));
    let mut ctl = rig.boot(policy("", BASELINE), 0.0, true);
    ctl.tick().await;
    assert_eq!(
        (ctl.state().phase, rig.table.weight_bp()),
        (Phase::RolledBack, 0)
    );
    let rollback = rig.line("rollback");
    assert_eq!(rollback.failed_rules, Some(vec!["auth".to_string()]));
    let auth = rule(rollback.rules(), "auth");
    assert_eq!(auth.value, Some(3.0));
    assert_eq!(
        (auth.canary_value, auth.stable_value),
        (Some(Some(3.0)), Some(Some(1.0)))
    );
    assert_eq!(auth.outcome, Some(Outcome::Fail));
    let m = rig.metrics();
    for line in [
        "canaryd_rule_value{rule=\"auth\",variant=\"canary\"} 3\n",
        "canaryd_rule_value{rule=\"auth\",variant=\"stable\"} 1\n",
        "canaryd_rule_value{rule=\"auth\",variant=\"ratio\"} 3\n",
    ] {
        assert!(m.contains(line), "{line} missing in\n{m}");
    }
}

#[tokio::test(start_paused = true)]
async fn baseline_both_zero_passes() {
    let rig = Rig::new("baseline-zero");
    rig.src
        .set_pair("auth", Sample::Value(0.0), Sample::Value(0.0));
    let mut ctl = rig.boot(policy("", BASELINE), 0.0, true);
    ctl.tick().await;
    let auth = rule(&rig.status().rules, "auth").clone();
    assert_eq!((auth.value, auth.outcome), (Some(1.0), Some(Outcome::Pass)));
    secs(&mut ctl, 3).await;
    assert_eq!((ctl.state().step, rig.table.weight_bp()), (1, 2_500));
}

#[tokio::test(start_paused = true)]
async fn a_dry_run_rule_never_acts() {
    let rig = Rig::new("dry-run");
    rig.src.set("watch", 1_000.0);
    let rules = format!(
        "{RULES}\n[[rules]]\nname = \"watch\"\nsource = \"local\"\nsignal = \"rps\"\nfail_when = \"> 1\"\non_fail = \"rollback\"\ndry_run = true\n"
    );
    let mut ctl = rig.boot(policy("", &rules), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 12).await;
    assert_eq!(
        (ctl.state().phase, rig.table.weight_bp()),
        (Phase::Promoted, 10_000)
    );
    assert_eq!(
        rig.actions("transition"),
        ["start", "advance", "advance", "advance", "promote"]
    );
    assert!(rig.actions("evaluation").iter().all(|a| a == "healthy"));
    let watch = rule(&rig.status().rules, "watch").clone();
    assert_eq!((watch.outcome, watch.dry_run), (Some(Outcome::Fail), true));
    assert_eq!(
        rule(rig.line("promote").rules(), "watch").value,
        Some(1_000.0)
    );
}

#[tokio::test(start_paused = true)]
async fn an_alert_rule_notifies_once_and_does_not_hold() {
    let rig = Rig::new("alert");
    rig.src.set("cpu", 0.95);
    let rules = format!(
        "{RULES}\n[[rules]]\nname = \"cpu\"\nsource = \"prometheus\"\nquery = 'max(rate(process_cpu_seconds_total[1m]))'\nfail_when = \"> 0.8\"\non_fail = \"alert\"\n"
    );
    let mut ctl = rig.boot(policy("", &rules), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 12).await;
    assert_eq!(ctl.state().phase, Phase::Promoted);
    assert_eq!(
        rig.actions("transition"),
        ["start", "alert", "advance", "advance", "advance", "promote"]
    );
    assert_eq!(rig.line("alert").alert_rule.as_deref(), Some("cpu"));
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_state_file_blocks_on_stable() {
    let rig = Rig::new("blocked");
    let state_file = rig.path().join("state.json");
    std::fs::write(&state_file, "garbage").unwrap();
    let table = RoutingHandle::new(5_000);
    let mut ctl = boot(
        rig.path(),
        policy("", RULES),
        50.0,
        true,
        &table,
        &rig.board,
        &rig.src,
    );
    assert_eq!(table.weight_bp(), 0);
    let status = rig.status();
    assert_eq!(status.state, State::Blocked);
    assert_eq!(status.canary_percent, 0.0);
    let error = status.error.as_deref().unwrap();
    assert!(error.contains(&state_file.display().to_string()), "{error}");

    ctl.tick().await;
    secs(&mut ctl, 10).await;
    assert_eq!(table.weight_bp(), 0);
    assert_eq!(rig.src.samples(), 0);
    assert_eq!(std::fs::read_to_string(&state_file).unwrap(), "garbage");
    assert!(rig.decisions().is_empty());
    assert_eq!(rig.status().state, State::Blocked);
    let m = rig.metrics();
    assert!(
        m.contains("canaryd_rollout_state{state=\"blocked\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("canaryd_rollout_state{state=\"idle\"} 0\n"),
        "{m}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_persisted_step_the_policy_lacks_blocks_on_stable() {
    let rig = Rig::new("blocked-step");
    let mut st = Rollout::idle(policy("", RULES), 0.0, 0).state;
    (st.phase, st.step, st.canary_percent) = (Phase::Progressing, 7, 50.0);
    StateStore::new(rig.path()).save(&st).unwrap();
    let mut ctl = rig.boot(policy("", RULES), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 5).await;
    assert_eq!(rig.table.weight_bp(), 0);
    let status = rig.status();
    assert_eq!(status.state, State::Blocked);
    let error = status.error.as_deref().unwrap();
    assert!(
        error.contains(&rig.path().join("state.json").display().to_string()),
        "{error}"
    );
    assert_eq!(
        rig.persisted().unwrap().step,
        7,
        "the operator's file is left alone"
    );
}

/// Advances to step 1, then `slow` breaches (for 30 s) from t = 4 to t = 7.
async fn breaching_at_step_1(rig: &Rig) -> Ctl {
    rig.src.set("slow", 0.1);
    let rules = format!(
        "{RULES}\n[[rules]]\nname = \"slow\"\nsource = \"local\"\nsignal = \"latency_p99\"\nfail_when = \"> 0.5\"\nfor = \"30s\"\n"
    );
    let mut ctl = rig.boot(policy("", &rules), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 3).await;
    assert_eq!(ctl.state().step, 1);
    rig.src.set("slow", 0.9);
    secs(&mut ctl, 4).await;
    ctl
}

#[tokio::test(start_paused = true)]
async fn status_document_has_the_design_fields() {
    let rig = Rig::new("status");
    let ctl = breaching_at_step_1(&rig).await;
    let s = rig.status();
    assert_eq!(s.state, State::Progressing);
    assert_eq!(s.policy, "unit");
    assert_eq!(s.step, 1);
    assert_eq!(s.steps, [5.0, 25.0, 50.0, 100.0]);
    assert_eq!(s.canary_percent, 25.0);
    let started = &s.step_started_at;
    humantime::parse_rfc3339(started).unwrap_or_else(|e| panic!("{started}: {e}"));
    // The breach holds: nothing of the 3 s hold has been served.
    assert_eq!(s.step_hold_remaining_s, 3.0);
    assert_eq!(ctl.state().held_ms, 0);
    let rules = &s.rules;
    assert_eq!(rules.len(), 3);
    for r in rules {
        let json = serde_json::to_value(r).unwrap();
        let o = json.as_object().unwrap();
        for key in ["name", "value", "outcome", "breaching_for_s"] {
            assert!(o.contains_key(key), "{key} missing in {json}");
        }
    }
    let slow = rule(&s.rules, "slow");
    assert_eq!((slow.value, slow.outcome), (Some(0.9), Some(Outcome::Fail)));
    assert_eq!(slow.breaching_for_s, 3.0);
    let errors = rule(&s.rules, "errors");
    assert_eq!(
        (errors.outcome, errors.breaching_for_s),
        (Some(Outcome::Pass), 0.0)
    );
    // The last decision is the evaluation at t = 6.
    let last = s.last_decision.as_ref().expect("a last decision");
    assert_eq!((last.kind, last.action), (Kind::Evaluation, Action::Hold));
    assert_eq!(*last, *rig.decisions().last().unwrap());
}

#[tokio::test(start_paused = true)]
async fn metrics_describe_the_rollout() {
    let rig = Rig::new("metrics");
    let _ctl = breaching_at_step_1(&rig).await;
    let m = rig.metrics();
    for line in [
        "canaryd_rollout_state{state=\"progressing\"} 1\n",
        "canaryd_rollout_state{state=\"idle\"} 0\n",
        "canaryd_rollout_state{state=\"blocked\"} 0\n",
        "canaryd_rollout_step 1\n",
        "canaryd_decisions_total{action=\"start\"} 1\n",
        "canaryd_decisions_total{action=\"advance\"} 1\n",
        "canaryd_rule_value{rule=\"slow\",variant=\"canary\"} 0.9\n",
        "canaryd_rule_outcome{rule=\"slow\",outcome=\"fail\"} 1\n",
        "canaryd_rule_outcome{rule=\"slow\",outcome=\"pass\"} 0\n",
        "canaryd_rule_outcome{rule=\"errors\",outcome=\"pass\"} 1\n",
    ] {
        assert!(m.contains(line), "{line} missing in\n{m}");
    }
    assert!(
        m.contains("canaryd_decisions_total{action=\"hold\"} "),
        "{m}"
    );
}

/// Steps 50 % then 100 %, long holds, PromQL every 5 s, rollback 20 points every 3 s.
fn gradual() -> Policy {
    let src = format!(
        "name = \"gradual\"\ninterval = \"5s\"\nrollback = {{ gradual = {{ step = 20, every = \"3s\" }} }}\n[[steps]]\nweight = 50\nhold = \"1h\"\n[[steps]]\nweight = 100\nhold = \"1h\"\n{RULES}"
    );
    Policy::from_source("gradual.toml", &src).unwrap()
}

/// Weight in bp after each of the next `n` seconds.
async fn weights(ctl: &mut Ctl, table: &RoutingHandle, n: u64) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        secs(ctl, 1).await;
        out.push(table.weight_bp());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn gradual_rollback_by_a_local_rule_drains_the_routing_table() {
    let rig = Rig::new("gradual-local");
    let mut ctl = rig.boot(gradual(), 0.0, true);
    ctl.tick().await;
    assert_eq!(rig.table.weight_bp(), 5_000);
    rig.src.set("errors", 0.5);
    secs(&mut ctl, 1).await;
    assert_eq!(
        (ctl.state().phase, rig.table.weight_bp()),
        (Phase::RollingBack, 3_000)
    );
    let st = rig.persisted().unwrap();
    assert_eq!((st.phase, st.canary_percent), (Phase::RollingBack, 30.0));
    assert_eq!(rig.line("rollback").gradual, Some(true));
    // Recovered within a second: the drain goes on, one step every 3 s.
    rig.src.set("errors", 0.001);
    assert_eq!(
        weights(&mut ctl, &rig.table, 6).await,
        [3_000, 3_000, 1_000, 1_000, 1_000, 0]
    );
    assert_eq!(ctl.state().phase, Phase::RolledBack);
    assert_eq!(
        rig.actions("transition"),
        [
            "start",
            "rollback",
            "rollback_step",
            "rollback_step",
            "rolled_back"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn gradual_rollback_by_a_promql_rule_is_not_rejudged_on_a_stale_verdict() {
    let rig = Rig::new("gradual-prom");
    let mut ctl = rig.boot(gradual(), 0.0, true);
    ctl.tick().await;
    rig.src.set("latency", 0.9);
    // The next PromQL evaluation (t = 5) fails and starts the drain.
    secs(&mut ctl, 5).await;
    assert_eq!(
        (ctl.state().phase, rig.table.weight_bp()),
        (Phase::RollingBack, 3_000)
    );
    // The metric recovers; the next evaluation (t = 10) will see it healthy. Until then
    // nothing new has been judged, so the drain keeps its pace: 3 s a step.
    rig.src.set("latency", 0.02);
    assert_eq!(
        weights(&mut ctl, &rig.table, 6).await,
        [3_000, 3_000, 1_000, 1_000, 1_000, 0]
    );
    assert_eq!(ctl.state().phase, Phase::RolledBack);
    assert_eq!(
        rig.actions("transition"),
        [
            "start",
            "rollback",
            "rollback_step",
            "rollback_step",
            "rolled_back"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn low_traffic_alone_never_rolls_back_gateway_migration() {
    let rig = Rig::new("low-traffic");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/gateway-migration.toml");
    let pol = Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pol.min_requests, 100);
    // Every rule healthy, the canary up; only the request count is low (a quiet night).
    for (name, v) in [
        ("error-rate", 0.0),
        ("p99-latency", 0.002),
        ("auth-failures-vs-baseline", 1.0),
        ("health-check", 1.0),
        ("canary-5xx-fast", 0.0),
        ("memory-growth", 0.0),
        ("p99-above-1ms", 0.0005),
        ("cpu-above-80pct", 0.1),
    ] {
        rig.src.set(name, v);
    }
    rig.src.set_requests(99);
    let mut ctl = rig.boot(pol, 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 600).await;
    // Silence holds (never advance on it), it does not roll back.
    assert_eq!(
        (ctl.state().phase, ctl.state().step),
        (Phase::Progressing, 0),
        "{}",
        ctl.state().reason
    );
    assert_eq!(rig.table.weight_bp(), 500);
    assert!(!rig.actions("transition").contains(&"rollback".to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_new_run_is_not_rolled_back_on_the_last_runs_promql_verdict() {
    let rig = Rig::new("restart-after-prom-rollback");
    let pol = policy_with("", [60, 60, 60, 60], RULES);
    let mut ctl = rig.boot(pol, 0.0, true);
    ctl.tick().await;
    rig.src.set("latency", 0.9);
    for _ in 0..5 {
        if ctl.state().phase == Phase::RolledBack {
            break;
        }
        secs(&mut ctl, 1).await;
    }
    assert_eq!(ctl.state().phase, Phase::RolledBack);
    // Fixed; the operator starts again at once, before the next 2 s PromQL evaluation
    // would have been due.
    rig.src.set("latency", 0.02);
    let (reply, rx) = oneshot::channel();
    ctl.command(Request {
        ask: Ask::Operator(Command::Start),
        reason: "fixed".into(),
        reply,
    })
    .await;
    assert!(rx.await.unwrap().is_ok());
    secs(&mut ctl, 1).await;
    assert_eq!(
        (ctl.state().phase, rig.table.weight_bp()),
        (Phase::Progressing, 500),
        "{}",
        ctl.state().reason
    );
}

/// Makes every save of `state.json` fail (a directory where the temp file goes: fails even
/// for root), or lets saves through again.
fn break_saves(rig: &Rig, broken: bool) {
    let tmp = rig.path().join("state.json.tmp");
    if broken {
        let _ = std::fs::remove_file(&tmp);
        std::fs::create_dir_all(tmp.join("in-the-way")).unwrap();
    } else {
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}

/// A controller whose transition hook (webhooks) records every line it is given.
fn boot_with_hook(rig: &Rig, policy: Policy, autostart: bool) -> (Ctl, Arc<Mutex<Vec<Decision>>>) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&heard);
    let hook: DecisionHook =
        Arc::new(move |line: &Decision| sink.lock().unwrap().push(line.clone()));
    let ctl = Controller::new(
        policy,
        Settings {
            initial_percent: 0.0,
            autostart,
            on_transition: Some(hook),
        },
        StateStore::new(rig.path()),
        Arc::new(DecisionLog::open(rig.path())),
        rig.table.clone(),
        Arc::clone(&rig.src),
        Arc::clone(&rig.board),
    );
    (ctl, heard)
}

async fn command(ctl: &mut Ctl, cmd: Command, reason: &str) -> Result<Status, Refusal> {
    let (reply, mut rx) = oneshot::channel();
    ctl.command(Request {
        ask: Ask::Operator(cmd),
        reason: reason.into(),
        reply,
    })
    .await;
    rx.try_recv().expect("answered at once")
}

/// The bug: the advance was kept from the routing table (no durable state, no move towards
/// the canary), but status, decision line and webhook all said 25 %. Now the rollout stays
/// where traffic is, says why, retries, and advances once the state can be saved.
#[tokio::test(start_paused = true)]
async fn an_advance_that_cannot_be_saved_is_not_applied_nor_reported_as_applied() {
    let rig = Rig::new("save-fails-advance");
    let (mut ctl, heard) = boot_with_hook(&rig, policy("", RULES), true);
    ctl.tick().await;
    break_saves(&rig, true);
    secs(&mut ctl, 3).await;

    // Traffic, rollout, status, log and webhook agree: still step 0 at 5 %.
    assert_eq!(rig.table.weight_bp(), 500);
    assert_eq!((ctl.state().step, ctl.state().canary_percent), (0, 5.0));
    let s = rig.status();
    assert_eq!(
        (s.state, s.step, s.canary_percent),
        (State::Progressing, 0, 5.0)
    );
    // Step 0's hold was served; the advance waits for a save.
    assert_eq!((s.step_held_s, s.step_hold_remaining_s), (3.0, 0.0));
    let save_error = s
        .save_error
        .clone()
        .expect("the status says the save failed");
    assert!(
        save_error.contains("cannot write rollout state"),
        "{save_error}"
    );
    assert!(save_error.contains("not applied"), "{save_error}");
    let advance = rig.line("advance");
    assert_eq!(
        (advance.step, advance.canary_percent, advance.to_step),
        (0, 5.0, Some(1)),
        "{advance:?}"
    );
    assert_eq!(advance.save_error.as_deref(), Some(save_error.as_str()));
    let notified = heard.lock().unwrap().last().cloned().unwrap();
    assert_eq!(notified, advance, "the webhook gets the same line");
    // On the wire: the key is there only now.
    let wire = serde_json::to_value(rig.board.status()).unwrap();
    assert_eq!(wire["canary_percent"], 5.0);
    assert!(wire["save_error"].is_string(), "{wire}");

    // Retried every tick, logged (and notified) once; evaluations say the state is not saved.
    secs(&mut ctl, 5).await;
    assert_eq!(rig.table.weight_bp(), 500);
    assert_eq!(rig.actions("transition"), ["start", "advance"]);
    assert_eq!(heard.lock().unwrap().len(), 2);
    assert!(rig
        .decisions()
        .iter()
        .rfind(|l| l.kind == Kind::Evaluation)
        .is_some_and(|l| l.save_error.is_some() && l.canary_percent == 5.0));
    assert_eq!(rig.persisted().unwrap().step, 0);

    // The disk is back: the next tick saves, advances and moves traffic.
    break_saves(&rig, false);
    secs(&mut ctl, 1).await;
    assert_eq!(rig.table.weight_bp(), 2_500);
    let s = rig.status();
    assert_eq!((s.step, s.canary_percent, s.save_error), (1, 25.0, None));
    assert_eq!(rig.persisted().unwrap().step, 1);
    let applied = rig
        .decisions()
        .into_iter()
        .rfind(|l| l.action == Action::Advance)
        .unwrap();
    assert_eq!(
        (applied.step, applied.canary_percent, applied.save_error),
        (1, 25.0, None)
    );
    assert!(!serde_json::to_value(rig.board.status())
        .unwrap()
        .as_object()
        .unwrap()
        .contains_key("save_error"));
}

/// Towards stable a move is always applied, saved or not; the status says it is not saved
/// until a retry succeeds, so a restart in between would resume the old state.
#[tokio::test(start_paused = true)]
async fn a_rollback_that_cannot_be_saved_is_applied_and_saved_later() {
    let rig = Rig::new("save-fails-rollback");
    let (mut ctl, heard) = boot_with_hook(&rig, policy("", RULES), true);
    ctl.tick().await;
    secs(&mut ctl, 3).await;
    assert_eq!(rig.table.weight_bp(), 2_500);
    break_saves(&rig, true);
    rig.src.set("errors", 0.5);
    secs(&mut ctl, 1).await;

    assert_eq!(rig.table.weight_bp(), 0);
    let s = rig.status();
    assert_eq!((s.state, s.canary_percent), (State::RolledBack, 0.0));
    let save_error = s.save_error.expect("not saved");
    assert!(
        save_error.contains("in force but not saved"),
        "{save_error}"
    );
    for action in ["rollback", "rolled_back"] {
        let l = rig.line(action);
        assert_eq!((l.state, l.canary_percent), (Phase::RolledBack, 0.0));
        assert_eq!(l.save_error.as_deref(), Some(save_error.as_str()));
    }
    assert!(heard
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.action == Action::RolledBack && l.save_error.is_some()));
    let on_disk = rig.persisted().unwrap();
    assert_eq!((on_disk.phase, on_disk.step), (Phase::Progressing, 1));

    // Nothing else happens in a rolled-back rollout, but the state is saved as soon as it can.
    secs(&mut ctl, 3).await;
    assert!(rig.status().save_error.is_some());
    break_saves(&rig, false);
    secs(&mut ctl, 1).await;
    assert_eq!(rig.status().save_error, None);
    let on_disk = rig.persisted().unwrap();
    assert_eq!(
        (on_disk.phase, on_disk.canary_percent),
        (Phase::RolledBack, 0.0)
    );
}

/// An operator's move towards the canary is refused as not applied; one that moves nothing
/// goes through, unsaved, and says so.
#[tokio::test(start_paused = true)]
async fn operator_commands_when_the_state_cannot_be_saved() {
    let rig = Rig::new("save-fails-operator");
    let mut ctl = rig.boot(policy("", RULES), 0.0, false);
    break_saves(&rig, true);
    let refused = command(&mut ctl, Command::Start, "ship it")
        .await
        .unwrap_err();
    assert!(refused.error.contains("not applied"), "{}", refused.error);
    assert!(refused.hint.contains("state_dir"), "{}", refused.hint);
    assert_eq!(rig.table.weight_bp(), 0);
    let s = rig.status();
    assert_eq!((s.state, s.canary_percent), (State::Idle, 0.0));
    assert!(s.save_error.is_some());
    let start = rig.line("start");
    assert_eq!((start.state, start.canary_percent), (Phase::Idle, 0.0));
    assert_eq!(
        (start.by, start.operator_reason.as_deref()),
        (Some(By::Operator), Some("ship it"))
    );
    assert!(start.save_error.is_some());

    // Saves work again: the same command goes through.
    break_saves(&rig, false);
    let answer = command(&mut ctl, Command::Start, "ship it").await.unwrap();
    let answer = answer.rollout().expect("a rollout status");
    assert_eq!(answer.state, State::Progressing);
    assert!(answer.save_error.is_none(), "{answer:?}");
    assert_eq!(rig.table.weight_bp(), 500);

    // Pausing moves no traffic: applied, not saved, and the answer says so.
    break_saves(&rig, true);
    let answer = command(&mut ctl, Command::Pause, "").await.unwrap();
    let answer = answer.rollout().expect("a rollout status");
    assert_eq!(answer.state, State::Paused);
    assert!(answer.save_error.is_some(), "{answer:?}");
    assert_eq!(rig.persisted().unwrap().phase, Phase::Progressing);
    // Asking for more canary while saves fail is refused; the split stays.
    let refused = command(&mut ctl, Command::SetWeight(50.0), "")
        .await
        .unwrap_err();
    assert!(refused.error.contains("not applied"), "{}", refused.error);
    assert_eq!(rig.table.weight_bp(), 500);
    assert_eq!(rig.status().canary_percent, 5.0);
    break_saves(&rig, false);
    ctl.tick().await;
    assert_eq!(rig.persisted().unwrap().phase, Phase::Paused);
}

#[tokio::test(start_paused = true)]
async fn a_prometheus_that_never_answers_delays_neither_a_local_rollback_nor_a_command() {
    let rig = Rig::new("hanging-prometheus");
    rig.src.delay("latency", None);
    let mut ctl = rig.boot(policy_with("", [60, 60, 60, 60], RULES), 0.0, true);
    secs(&mut ctl, 3).await;
    // Commands are answered at once (the helper reads the reply without waiting).
    command(&mut ctl, Command::Pause, "look").await.unwrap();
    command(&mut ctl, Command::Resume, "go on").await.unwrap();
    // The PromQL rule's sample is still on its way, and is not asked for twice.
    assert_eq!(
        rig.src.samples(),
        1 + 3,
        "one PromQL sample, one local per tick"
    );
    rig.src.set("errors", 0.5);
    secs(&mut ctl, 1).await;
    assert_eq!(ctl.state().phase, Phase::RolledBack);
    assert_eq!(rig.table.weight_bp(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_prometheus_sample_past_its_deadline_is_an_error() {
    let rig = Rig::new("deadline");
    rig.src.delay("latency", None);
    let mut ctl = rig.boot(policy_with("", [60, 60, 60, 60], RULES), 0.0, true);
    // Deadline: the default 5 s timeout plus a second.
    secs(&mut ctl, 5).await;
    assert_eq!(rule(&rig.status().rules, "latency").outcome, None);
    secs(&mut ctl, 3).await;
    let latency = rule(&rig.status().rules, "latency").clone();
    assert_eq!(latency.outcome, Some(Outcome::Error), "{latency:?}");
    let error = latency.error.unwrap_or_default();
    assert!(error.starts_with("no answer within 6s: "), "{error}");
    assert_eq!(
        ctl.state().phase,
        Phase::Progressing,
        "errors hold, never advance"
    );
}

#[tokio::test(start_paused = true)]
async fn a_late_promql_sample_of_an_earlier_step_is_dropped() {
    let rig = Rig::new("late-sample");
    let mut ctl = rig.boot(policy_with("", [3, 60, 60, 60], RULES), 0.0, true);
    // t = 1: a healthy answer at once. From now on the canary looks broken to a query that
    // takes 3 s: asked at t = 3 (PromQL every 2 s), it comes back at t = 6, between two
    // PromQL rounds.
    secs(&mut ctl, 1).await;
    rig.src.set("latency", 0.5);
    rig.src.delay("latency", Some(Duration::from_secs(3)));
    secs(&mut ctl, 3).await;
    // t = 4: step 0 held healthy for 3 s on the t = 1 verdict: on to step 1.
    assert_eq!(
        (ctl.state().phase, ctl.state().step),
        (Phase::Progressing, 1)
    );
    // Fixed before step 1's first query (t = 5), which answers at once.
    rig.src.set("latency", 0.02);
    rig.src.answer_at_once("latency");
    secs(&mut ctl, 4).await;
    // The t = 3 answer (back at t = 6) judged step 0's canary: dropped.
    assert_eq!(
        (ctl.state().phase, ctl.state().step),
        (Phase::Progressing, 1),
        "{}",
        ctl.state().reason
    );
    assert_eq!(rule(&rig.status().rules, "latency").value, Some(0.02));
}

#[tokio::test(start_paused = true)]
async fn start_recovers_a_blocked_rollout_once_the_state_file_is_removed() {
    let rig = Rig::new("unblock-removed");
    let state_file = rig.path().join("state.json");
    std::fs::write(&state_file, "garbage").unwrap();
    let mut ctl = rig.boot(policy("", RULES), 0.0, false);
    assert_eq!(rig.status().state, State::Blocked);
    // Still garbage: refused, naming the file; nothing written, nothing routed.
    let refused = command(&mut ctl, Command::Start, "").await.unwrap_err();
    assert!(refused.error.contains("still blocked"), "{}", refused.error);
    assert!(
        refused.error.contains(&state_file.display().to_string()),
        "{}",
        refused.error
    );
    assert_eq!(std::fs::read_to_string(&state_file).unwrap(), "garbage");
    assert_eq!(rig.table.weight_bp(), 0);
    // Other commands still say how to get out.
    let refused = command(&mut ctl, Command::Pause, "").await.unwrap_err();
    assert!(refused.hint.contains("canaryd start"), "{}", refused.hint);

    std::fs::remove_file(&state_file).unwrap();
    let status = rollout_of(command(&mut ctl, Command::Start, "fixed").await.unwrap());
    assert_eq!((status.state, status.step), (State::Progressing, 0));
    assert_eq!(rig.table.weight_bp(), 500);
    assert_eq!(rig.persisted().unwrap().phase, Phase::Progressing);
    assert_eq!(rig.actions("transition"), ["start"]);
    secs(&mut ctl, 1).await;
    assert!(rig.src.samples() > 0, "rules are judged again");
}

#[tokio::test(start_paused = true)]
async fn start_continues_a_blocked_rollout_from_the_fixed_state_file() {
    let rig = Rig::new("unblock-fixed");
    let state_file = rig.path().join("state.json");
    std::fs::write(&state_file, "{").unwrap();
    let mut ctl = rig.boot(policy("", RULES), 0.0, false);
    assert_eq!(rig.status().state, State::Blocked);
    // The operator writes the rollout back by hand, paused at step 1 (25 %).
    let mut st = Rollout::idle(policy("", RULES), 0.0, 0).state;
    (st.phase, st.step, st.canary_percent) = (Phase::Paused, 1, 25.0);
    StateStore::new(rig.path()).save(&st).unwrap();
    let status = rollout_of(command(&mut ctl, Command::Start, "").await.unwrap());
    assert_eq!((status.state, status.step), (State::Paused, 1));
    assert_eq!(rig.table.weight_bp(), 2_500);
    // Continued as written: `resume` goes on at the step.
    let status = rollout_of(command(&mut ctl, Command::Resume, "").await.unwrap());
    assert_eq!((status.state, status.step), (State::Progressing, 1));
}

// === approval gates, hold modes, a paused gradual rollback ===

/// 5 → 25 → 50 → 100 %, 3 s holds, approval on the first and the last step (as seed 002).
fn gated_policy(top: &str) -> Policy {
    let mut src = format!("name = \"unit\"\ninterval = \"2s\"\n{top}\n");
    for (weight, approval) in [(5, true), (25, false), (50, false), (100, true)] {
        src.push_str(&format!(
            "[[steps]]\nweight = {weight}\nhold = \"3s\"\napproval = {approval}\n"
        ));
    }
    src.push_str(RULES);
    Policy::from_source("unit.toml", &src).unwrap_or_else(|e| panic!("{e}\n{src}"))
}

/// How many of `lines` have `action`.
fn count(lines: &[Decision], action: Action) -> usize {
    lines.iter().filter(|l| l.action == action).count()
}

#[tokio::test(start_paused = true)]
async fn an_approval_wait_is_announced_once_and_approve_advances() {
    let rig = Rig::new("approval");
    let (mut ctl, heard) = boot_with_hook(&rig, gated_policy(""), true);
    ctl.tick().await;
    secs(&mut ctl, 3).await;
    assert_eq!(
        (ctl.state().phase, ctl.state().step, rig.table.weight_bp()),
        (Phase::AwaitingApproval, 0, 500),
        "{}",
        ctl.state().reason
    );
    // It waits: the split stays, the rules are still judged, one line and one webhook say so.
    let samples = rig.src.samples();
    secs(&mut ctl, 30).await;
    assert!(
        rig.src.samples() > samples,
        "rules are judged while waiting"
    );
    assert_eq!(
        (ctl.state().phase, rig.table.weight_bp()),
        (Phase::AwaitingApproval, 500)
    );
    assert_eq!(rig.actions("transition"), ["start", "awaiting_approval"]);
    let ready: Vec<Decision> = heard
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.action == Action::AwaitingApproval)
        .cloned()
        .collect();
    assert_eq!(ready.len(), 1, "one webhook call");
    assert_eq!(ready[0].kind, Kind::Transition);
    assert_eq!(ready[0].by, Some(By::Controller));
    assert_eq!(ready[0].state, Phase::AwaitingApproval);
    assert!(
        ready[0].reason.contains("ready for approval"),
        "{}",
        ready[0].reason
    );
    assert!(
        crate::notify::slack_text(&ready[0])
            .starts_with("canaryd unit: awaiting approval at step 0 (5 % canary): step 0 held"),
        "{}",
        crate::notify::slack_text(&ready[0])
    );
    let evaluations = rig.actions("evaluation");
    assert!(
        evaluations.iter().all(|a| a == "healthy"),
        "{evaluations:?}"
    );
    let status = rig.status();
    assert_eq!(status.state, State::AwaitingApproval);
    assert_eq!(status.step_hold_remaining_s, 0.0);
    assert!(rig
        .metrics()
        .contains("canaryd_rollout_state{state=\"awaiting_approval\"} 1\n"));
    assert_eq!(rig.persisted().unwrap().phase, Phase::AwaitingApproval);

    let status = rollout_of(
        command(&mut ctl, Command::Approve, "ship it")
            .await
            .unwrap(),
    );
    assert_eq!(
        (status.state, status.step, status.canary_percent),
        (State::Progressing, 1, 25.0)
    );
    assert_eq!(rig.table.weight_bp(), 2_500);
    assert_eq!(
        rig.actions("transition"),
        ["start", "awaiting_approval", "approve", "advance"]
    );
    let approve = rig.line("approve");
    assert_eq!(
        (approve.by, approve.operator_reason.as_deref()),
        (Some(By::Operator), Some("ship it"))
    );
    let advance = rig.line("advance");
    assert_eq!(
        (advance.from_step, advance.to_step, advance.by),
        (Some(0), Some(1), Some(By::Operator))
    );
    assert_eq!(count(&heard.lock().unwrap(), Action::Approve), 1);
    // Steps 1 and 2 are not gated; the last is, and approving it promotes.
    secs(&mut ctl, 12).await;
    assert_eq!(
        (ctl.state().phase, ctl.state().step, rig.table.weight_bp()),
        (Phase::AwaitingApproval, 3, 10_000)
    );
    let status = rollout_of(command(&mut ctl, Command::Approve, "").await.unwrap());
    assert_eq!(status.state, State::Promoted);
    assert_eq!(count(&rig.decisions(), Action::AwaitingApproval), 2);
    assert_eq!(rig.persisted().unwrap().phase, Phase::Promoted);
}

#[tokio::test(start_paused = true)]
async fn a_restart_while_awaiting_approval_still_awaits_it() {
    let rig = Rig::new("approval-restart");
    let mut ctl = rig.boot(gated_policy(""), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 3).await;
    assert_eq!(ctl.state().phase, Phase::AwaitingApproval);
    drop(ctl);

    let table = RoutingHandle::new(0);
    let board = Arc::new(Board::default());
    let mut ctl = boot(
        rig.path(),
        gated_policy(""),
        0.0,
        false,
        &table,
        &board,
        &rig.src,
    );
    assert_eq!(
        (ctl.state().phase, ctl.state().step, table.weight_bp()),
        (Phase::AwaitingApproval, 0, 500)
    );
    assert_eq!(rollout_of(board.status()).state, State::AwaitingApproval);
    ctl.tick().await;
    secs(&mut ctl, 20).await;
    assert_eq!(ctl.state().phase, Phase::AwaitingApproval);
    assert_eq!(
        count(&rig.decisions(), Action::AwaitingApproval),
        1,
        "the wait is not announced again"
    );
    let status = rollout_of(command(&mut ctl, Command::Approve, "").await.unwrap());
    assert_eq!((status.state, status.step), (State::Progressing, 1));
    assert_eq!(table.weight_bp(), 2_500);
}

#[tokio::test(start_paused = true)]
async fn a_failure_while_awaiting_approval_rolls_back() {
    let rig = Rig::new("approval-failure");
    let (mut ctl, heard) = boot_with_hook(&rig, gated_policy(""), true);
    ctl.tick().await;
    secs(&mut ctl, 3).await;
    assert_eq!(ctl.state().phase, Phase::AwaitingApproval);
    rig.src.set("errors", 0.5);
    secs(&mut ctl, 1).await;
    assert_eq!(
        (ctl.state().phase, rig.table.weight_bp()),
        (Phase::RolledBack, 0)
    );
    assert_eq!(
        rig.actions("transition"),
        ["start", "awaiting_approval", "rollback", "rolled_back"]
    );
    assert_eq!(
        rig.line("rollback").failed_rules,
        Some(vec!["errors".to_string()])
    );
    assert_eq!(count(&heard.lock().unwrap(), Action::RolledBack), 1);
    let refused = command(&mut ctl, Command::Approve, "").await.unwrap_err();
    assert!(
        refused
            .error
            .contains("nothing to approve: the rollout is rolled_back"),
        "{refused:?}"
    );
    assert_eq!(rig.table.weight_bp(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_hold_while_awaiting_approval_is_shown_and_approve_waits_for_its_end() {
    let rig = Rig::new("approval-hold");
    let mut ctl = rig.boot(gated_policy(""), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 3).await;
    assert_eq!(ctl.state().phase, Phase::AwaitingApproval);
    rig.src.set_sample("errors", Sample::NoData);
    secs(&mut ctl, 1).await;
    let status = rig.status();
    assert_eq!(status.state, State::AwaitingApproval);
    assert!(
        status
            .reason
            .starts_with("awaiting approval, holding: errors no_data"),
        "{}",
        status.reason
    );
    let hold = rig.line("hold");
    assert_eq!(
        (hold.state, hold.hold_reasons.clone()),
        (
            Phase::AwaitingApproval,
            Some(vec!["errors no_data".to_string()])
        )
    );
    let refused = command(&mut ctl, Command::Approve, "").await.unwrap_err();
    assert!(
        refused.error.contains("not healthy right now"),
        "{refused:?}"
    );
    assert_eq!(rig.table.weight_bp(), 500);
    secs(&mut ctl, 10).await;
    assert_eq!(ctl.state().phase, Phase::AwaitingApproval);
    assert!(rig.actions("evaluation").iter().any(|a| a == "hold"));
    rig.src.set("errors", 0.001);
    secs(&mut ctl, 1).await;
    assert_eq!(
        rig.actions("transition"),
        ["start", "awaiting_approval", "hold", "hold_end"]
    );
    assert!(command(&mut ctl, Command::Approve, "").await.is_ok());
    assert_eq!(rig.table.weight_bp(), 2_500);
}

/// Seconds until the rollout leaves step 0, after 6 healthy seconds and one second of no data.
async fn seconds_to_advance_after_a_blip(top: &str, name: &str) -> u64 {
    let rig = Rig::new(name);
    let mut ctl = rig.boot(policy_with(top, [10, 10, 10, 10], RULES), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 6).await;
    assert_eq!(ctl.state().held_ms, 6_000);
    rig.src.set_sample("errors", Sample::NoData);
    secs(&mut ctl, 1).await;
    rig.src.set("errors", 0.001);
    for second in 1..=30 {
        secs(&mut ctl, 1).await;
        if ctl.state().step == 1 {
            return second;
        }
    }
    panic!("never advanced: {}", ctl.state().reason)
}

#[tokio::test(start_paused = true)]
async fn consecutive_holds_restart_after_a_blip_and_cumulative_ones_do_not() {
    // Consecutive (the default): the blip restarts the 10 s hold; the first healthy
    // evaluation ends the hold, ten more seconds advance.
    assert_eq!(
        seconds_to_advance_after_a_blip("", "hold-consecutive").await,
        11
    );
    assert_eq!(
        seconds_to_advance_after_a_blip("hold_mode = \"consecutive\"", "hold-consecutive-2").await,
        11
    );
    // Cumulative: the 6 s held are kept; 4 more after the hold ends.
    assert_eq!(
        seconds_to_advance_after_a_blip("hold_mode = \"cumulative\"", "hold-cumulative").await,
        5
    );
}

#[tokio::test(start_paused = true)]
async fn a_consecutive_restart_is_logged_with_the_hold() {
    let rig = Rig::new("hold-consecutive-line");
    let mut ctl = rig.boot(policy_with("", [10, 10, 10, 10], RULES), 0.0, true);
    ctl.tick().await;
    secs(&mut ctl, 6).await;
    rig.src.set_sample("errors", Sample::NoData);
    secs(&mut ctl, 1).await;
    let hold = rig.line("hold");
    assert_eq!(hold.held_s, Some(0.0));
    assert!(
        hold.reason
            .contains("restarts from zero (hold_mode = consecutive)"),
        "{}",
        hold.reason
    );
    assert_eq!(rig.status().step_held_s, 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_paused_gradual_rollback_stays_paused_and_resume_continues_the_drain() {
    let rig = Rig::new("gradual-pause");
    let mut ctl = rig.boot(gradual(), 0.0, true);
    ctl.tick().await;
    rig.src.set("errors", 0.5);
    secs(&mut ctl, 1).await;
    assert_eq!(
        (ctl.state().phase, rig.table.weight_bp()),
        (Phase::RollingBack, 3_000)
    );
    let status = rollout_of(
        command(&mut ctl, Command::Pause, "look first")
            .await
            .unwrap(),
    );
    assert_eq!(status.state, State::Paused);
    assert!(
        status
            .reason
            .contains("paused the gradual rollback at 30 %"),
        "{}",
        status.reason
    );
    // The breach goes on, the drain stays frozen (it used to start over at the next tick).
    assert_eq!(weights(&mut ctl, &rig.table, 30).await, [3_000; 30]);
    assert_eq!(ctl.state().phase, Phase::Paused);
    assert_eq!(
        rig.actions("transition"),
        ["start", "rollback", "rollback_step", "pause"]
    );
    let st = rig.persisted().unwrap();
    assert_eq!(
        (st.phase, st.paused_from, st.canary_percent),
        (Phase::Paused, Some(Phase::RollingBack), 30.0)
    );
    assert!(command(&mut ctl, Command::Promote, "").await.is_err());

    // A restart keeps it paused and frozen (the breach has ended meanwhile).
    drop(ctl);
    rig.src.set("errors", 0.001);
    let mut ctl = rig.boot(gradual(), 0.0, false);
    assert_eq!(rig.table.weight_bp(), 3_000);
    ctl.tick().await;
    assert_eq!(weights(&mut ctl, &rig.table, 10).await, [3_000; 10]);

    // Resume continues the rollback from the split in force, not the step's 50 %.
    let status = rollout_of(command(&mut ctl, Command::Resume, "").await.unwrap());
    assert_eq!(
        (status.state, status.canary_percent),
        (State::RollingBack, 30.0)
    );
    assert_eq!(rig.table.weight_bp(), 3_000);
    // After the restart the drain takes up a full `every` (3 s) after its first tick.
    assert_eq!(
        weights(&mut ctl, &rig.table, 7).await,
        [3_000, 3_000, 3_000, 1_000, 1_000, 1_000, 0]
    );
    assert_eq!(ctl.state().phase, Phase::RolledBack);
    let transitions = rig.actions("transition");
    assert_eq!(
        transitions[transitions.len() - 3..],
        ["resume", "rollback_step", "rolled_back"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_failure_while_a_gradual_rollback_is_paused_goes_to_zero_at_once() {
    let rig = Rig::new("gradual-pause-new-failure");
    let (mut ctl, heard) = boot_with_hook(&rig, gradual(), true);
    ctl.tick().await;
    rig.src.set("errors", 0.5);
    secs(&mut ctl, 1).await;
    command(&mut ctl, Command::Pause, "").await.unwrap();
    rig.src.set("errors", 0.001);
    secs(&mut ctl, 2).await;
    assert_eq!(
        (ctl.state().phase, rig.table.weight_bp()),
        (Phase::Paused, 3_000)
    );
    // Failing again is a new failure: safety first, 0 % now, paused or not.
    rig.src.set("errors", 0.5);
    secs(&mut ctl, 1).await;
    assert_eq!(
        (ctl.state().phase, rig.table.weight_bp()),
        (Phase::RolledBack, 0)
    );
    let line = rig.line("rolled_back");
    assert!(
        line.reason
            .contains("failed during a paused gradual rollback"),
        "{}",
        line.reason
    );
    assert_eq!(count(&heard.lock().unwrap(), Action::RolledBack), 1);
    assert_eq!(rig.persisted().unwrap().paused_from, None);
}

fn boot_manual(rig: &Rig, initial_percent: f64, hook: Option<DecisionHook>) -> Ctl {
    Controller::manual(
        Settings {
            initial_percent,
            autostart: true,
            on_transition: hook,
        },
        StateStore::new(rig.path()),
        Arc::new(DecisionLog::open(rig.path())),
        rig.table.clone(),
        Arc::clone(&rig.src),
        Arc::clone(&rig.board),
    )
}

#[tokio::test(start_paused = true)]
async fn manual_mode_sets_the_split_persists_logs_and_notifies() {
    let rig = Rig::new("manual");
    let heard = Arc::new(Mutex::new(Vec::<Decision>::new()));
    let seen = Arc::clone(&heard);
    let hook: DecisionHook = Arc::new(move |d: &Decision| seen.lock().unwrap().push(d.clone()));
    // No policy: autostart starts nothing, the split is initial_percent.
    let mut ctl = boot_manual(&rig, 5.0, Some(hook));
    assert_eq!(rig.table.weight_bp(), 500);
    assert_eq!(rig.status().state, State::Manual);
    secs(&mut ctl, 3).await;
    assert_eq!(rig.table.weight_bp(), 500);
    assert!(rig.decisions().is_empty());

    let status = rollout_of(
        command(&mut ctl, Command::SetWeight(25.0), "seed 002 phase 2")
            .await
            .unwrap(),
    );
    assert_eq!((status.state, status.canary_percent), (State::Manual, 25.0));
    assert_eq!(rig.table.weight_bp(), 2_500);
    assert_eq!(rig.persisted().unwrap().canary_percent, 25.0);
    assert_eq!(rig.actions("transition"), ["set_weight"]);
    let line = rig.line("set_weight");
    assert_eq!(line.operator_reason.as_deref(), Some("seed 002 phase 2"));
    assert_eq!(heard.lock().unwrap().len(), 1, "the webhook heard it");

    // Nothing but set-weight: a start would enter a step that does not exist.
    for cmd in [
        Command::Start,
        Command::Promote,
        Command::Rollback,
        Command::Pause,
    ] {
        let refused = command(&mut ctl, cmd.clone(), "").await.unwrap_err();
        assert!(
            refused.error.contains("manual mode"),
            "{cmd:?}: {}",
            refused.error
        );
    }
    assert_eq!(rig.table.weight_bp(), 2_500);

    // A restart keeps the split (the persisted one wins over initial_percent).
    drop(ctl);
    let _ctl = boot_manual(&rig, 5.0, None);
    assert_eq!(rig.table.weight_bp(), 2_500);
    assert_eq!(rig.status().canary_percent, 25.0);
}

#[tokio::test(start_paused = true)]
async fn manual_mode_keeps_the_split_a_rollout_left() {
    let rig = Rig::new("manual-after-rollout");
    let mut st = Rollout::idle(policy("", RULES), 0.0, 0).state;
    (st.phase, st.step, st.canary_percent) = (Phase::Progressing, 2, 50.0);
    StateStore::new(rig.path()).save(&st).unwrap();
    let _ctl = boot_manual(&rig, 0.0, None);
    let status = rig.status();
    assert_eq!((status.state, status.canary_percent), (State::Manual, 50.0));
    assert_eq!(rig.table.weight_bp(), 5_000);
}

// === sequential rules and the traffic-share check ===

/// A source that counts requests like the proxy: every `serve` adds a second of traffic,
/// `total` requests split by the routing table in force (the canary's part scaled by
/// `share`, 1.0 when routing works), 5xx at the given ratios. Everything else is `Scripted`.
struct Counting {
    inner: Arc<Scripted>,
    table: RoutingHandle,
    traffic: Mutex<(Traffic, f64, f64)>,
    /// (requests per second, canary error ratio, stable error ratio, canary share factor).
    rate: Mutex<(f64, f64, f64, f64)>,
}

type CountingCtl = Controller<Arc<Counting>>;

impl Counting {
    fn new(table: &RoutingHandle, total: f64, p_canary: f64, p_stable: f64) -> Arc<Self> {
        Arc::new(Self {
            inner: Scripted::healthy(),
            table: table.clone(),
            traffic: Mutex::new((Traffic::default(), 0.0, 0.0)),
            rate: Mutex::new((total, p_canary, p_stable, 1.0)),
        })
    }

    /// The canary gets `factor` × its weight's share of the requests.
    fn set_share(&self, factor: f64) {
        self.rate.lock().unwrap().3 = factor;
    }

    fn serve(&self) {
        let (total, pc, ps, factor) = *self.rate.lock().unwrap();
        let w = f64::from(self.table.weight_bp()) / 10_000.0 * factor;
        let canary = (total * w).round() as u64;
        let stable = total as u64 - canary;
        let mut t = self.traffic.lock().unwrap();
        // Fractional errors carried over, so that the ratios are exact over time.
        t.1 += canary as f64 * pc;
        t.2 += stable as f64 * ps;
        let (ec, es) = (t.1.floor(), t.2.floor());
        (t.1, t.2) = (t.1 - ec, t.2 - es);
        t.0.canary.requests += canary;
        t.0.canary.errors += ec as u64;
        t.0.stable.requests += stable;
        t.0.stable.errors += es as u64;
    }
}

impl Sources for Arc<Counting> {
    async fn sample(&self, rule: &Rule, variant: Variant) -> Sample {
        self.inner.sample(rule, variant).await
    }

    fn requests(&self, variant: Variant, window: Duration) -> u64 {
        self.inner.requests(variant, window)
    }

    fn traffic(&self) -> Option<Traffic> {
        Some(self.traffic.lock().unwrap().0)
    }
}

/// A sequential rule `judge` (`extra` appended to it) next to `top` keys; 5/25/50/100 %,
/// `hold` seconds each.
fn sequential_policy(top: &str, hold: u64, extra: &str) -> Policy {
    policy_with(
        top,
        [hold; 4],
        &format!(
            "[[rules]]\nname = \"judge\"\nsource = \"local\"\nsignal = \"error_ratio\"\n\
             compare = \"baseline\"\ntest = \"sequential\"\nmargin = 0.005\n{extra}"
        ),
    )
}

fn boot_counting(rig: &Rig, src: &Arc<Counting>, policy: Policy) -> CountingCtl {
    Controller::new(
        policy,
        Settings {
            initial_percent: 0.0,
            autostart: true,
            ..Settings::default()
        },
        StateStore::new(rig.path()),
        Arc::new(DecisionLog::open(rig.path())),
        rig.table.clone(),
        Arc::clone(src),
        Arc::clone(&rig.board),
    )
}

/// `n` virtual seconds of traffic, one tick each.
async fn serve(ctl: &mut CountingCtl, src: &Counting, n: u64) {
    for _ in 0..n {
        src.serve();
        tokio::time::advance(Duration::from_secs(1)).await;
        ctl.tick().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_canary_four_times_worse_than_stable_is_rolled_back_by_the_sequential_rule() {
    let rig = Rig::new("seq-worse");
    // 1 000 req/s at 5 %: 50 canary requests a second at 4 % 5xx, stable at 1 %.
    let src = Counting::new(&rig.table, 1_000.0, 0.04, 0.01);
    let mut ctl = boot_counting(&rig, &src, sequential_policy("", 3_600, ""));
    serve(&mut ctl, &src, 300).await;
    assert_eq!(
        ctl.state().phase,
        Phase::RolledBack,
        "{}",
        ctl.state().reason
    );
    assert_eq!(rig.table.weight_bp(), 0);
    let line = rig.line("rollback");
    assert_eq!(line.failed_rules, Some(vec!["judge".to_string()]));
    let r = rule(line.rules(), "judge");
    assert_eq!(r.outcome, Some(Outcome::Fail));
    assert_eq!(r.test, Some(crate::api::RuleTest::Sequential));
    assert!(r.threshold.starts_with("sequential"), "{}", r.threshold);
    let [low, high] = r.interval.unwrap();
    assert!(low > 0.005 && high > low, "{low} {high}");
    assert_eq!(r.margin, Some(0.005));
    assert!(r.statistic.unwrap() >= 100f64.ln());
    let samples = r.samples.unwrap();
    assert!(samples.canary.requests >= 1_000, "{samples:?}");
    assert_eq!(samples.canary.requests * 19, samples.stable.requests);
    // On the wire: the rule carries its test; other lines' rules are as before.
    let v = serde_json::to_value(&line).unwrap();
    assert_eq!(v["rules"][0]["test"], "sequential");
    assert!(
        v["rules"][0]["samples"]["stable"]["errors"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test(start_paused = true)]
async fn inconclusive_holds_the_step_and_pass_counts_as_healthy() {
    let rig = Rig::new("seq-inconclusive");
    // Equal canary, 1 000 req/s: at 5 % the test needs minutes to show "not worse".
    let src = Counting::new(&rig.table, 1_000.0, 0.01, 0.01);
    let mut ctl = boot_counting(&rig, &src, sequential_policy("", 10, ""));
    serve(&mut ctl, &src, 30).await;
    let status = rig.status();
    assert_eq!((status.state, status.step), (State::Progressing, 0));
    assert!(status.holding);
    assert_eq!(
        rule(&status.rules, "judge").outcome,
        Some(Outcome::Inconclusive)
    );
    // (The hold began on no-data, before the step had 50 requests per variant.)
    assert_eq!(
        rig.line("hold").hold_reasons,
        Some(vec!["judge no_data".to_string()])
    );
    // Never advances on an inconclusive test, however long the step's hold has been served.
    assert_eq!(ctl.state().held_ms, 0);
    // Once shown not worse, the hold runs and the rollout moves on.
    serve(&mut ctl, &src, 600).await;
    assert!(ctl.state().step >= 1, "{}", ctl.state().reason);
    assert!(rig.actions("transition").contains(&"advance".to_string()));
    let advance = rig.line("advance");
    assert_eq!(rule(advance.rules(), "judge").outcome, Some(Outcome::Pass));
}

#[tokio::test(start_paused = true)]
async fn the_steps_counts_start_again_at_each_step() {
    let rig = Rig::new("seq-reset");
    // Lots of traffic: the equal canary passes within seconds.
    let src = Counting::new(&rig.table, 200_000.0, 0.01, 0.01);
    let mut ctl = boot_counting(&rig, &src, sequential_policy("", 5, ""));
    for _ in 0..100 {
        if ctl.state().step == 1 {
            break;
        }
        serve(&mut ctl, &src, 1).await;
    }
    assert_eq!(ctl.state().step, 1, "{}", ctl.state().reason);
    let before = rig.line("advance");
    let at_step_0 = rule(before.rules(), "judge").samples.unwrap();
    assert!(at_step_0.canary.requests >= 10_000, "{at_step_0:?}");
    serve(&mut ctl, &src, 3).await;
    assert_eq!(ctl.state().step, 1);
    let now = rule(&rig.status().rules, "judge").samples.unwrap();
    // A few seconds at 25 % (50 000 canary requests a second), not the whole run.
    assert!(
        now.canary.requests > 0 && now.canary.requests <= 3 * 50_000,
        "{now:?}"
    );
    assert_eq!(now.canary.requests * 3, now.stable.requests);
}

#[tokio::test(start_paused = true)]
async fn a_failing_sequential_rule_acts_as_its_on_fail_says() {
    let rig = Rig::new("seq-hold");
    let src = Counting::new(&rig.table, 1_000.0, 0.04, 0.01);
    let mut ctl = boot_counting(
        &rig,
        &src,
        sequential_policy("", 10, "on_fail = \"hold\"\n"),
    );
    serve(&mut ctl, &src, 300).await;
    assert_eq!(
        (ctl.state().phase, ctl.state().step),
        (Phase::Progressing, 0)
    );
    assert!(rig.status().holding);
    assert_eq!(
        rule(&rig.status().rules, "judge").outcome,
        Some(Outcome::Fail)
    );
    assert!(!rig.actions("transition").contains(&"rollback".to_string()));
}

#[tokio::test(start_paused = true)]
async fn without_counts_a_sequential_rule_is_no_data_and_holds() {
    let rig = Rig::new("seq-nodata");
    // `Scripted` does not count requests.
    let mut ctl = rig.boot(sequential_policy("", 3, ""), 0.0, true);
    secs(&mut ctl, 30).await;
    assert_eq!(ctl.state().step, 0);
    assert_eq!(
        rule(&rig.status().rules, "judge").outcome,
        Some(Outcome::NoData)
    );
    assert!(rig.status().holding);
}

#[tokio::test(start_paused = true)]
async fn a_silent_drop_of_the_canarys_share_holds_and_alerts_with_the_shares() {
    let rig = Rig::new("srm");
    // A plain threshold rule that always passes: only the traffic check can hold.
    let rules = "[[rules]]\nname = \"errors\"\nsource = \"local\"\nsignal = \"error_ratio\"\nfail_when = \"> 0.5\"\n";
    let src = Counting::new(&rig.table, 1_000.0, 0.0, 0.0);
    src.inner.set("errors", 0.0);
    // The canary gets half of what its weight says.
    src.set_share(0.5);
    let mut ctl = boot_counting(&rig, &src, policy_with("", [60; 4], rules));
    serve(&mut ctl, &src, 120).await;
    assert_eq!(ctl.state().step, 0, "never advances on a mismatch");
    let status = rig.status();
    assert!(status.holding);
    assert!(
        status.reason.contains("traffic share mismatch"),
        "{}",
        status.reason
    );
    let alert = rig.line("alert");
    let text = alert.alert_rule.unwrap();
    assert!(
        text.starts_with("traffic-share: the canary got 2.50 %"),
        "{text}"
    );
    assert!(text.contains("its weight is 5 %"), "{text}");
    assert_eq!(
        rig.actions("transition")
            .iter()
            .filter(|a| *a == "alert")
            .count(),
        1
    );
    let hold = rig.line("hold");
    assert!(hold.hold_reasons.unwrap()[0].starts_with("traffic share mismatch"));
    // Routing fixed: a new step's counts match, the hold ends and the rollout moves on…
    // (the step's counts still hold the bad minutes; a new run starts them afresh).
    src.set_share(1.0);
    let refused = {
        let (reply, mut rx) = oneshot::channel();
        ctl.command(Request {
            ask: Ask::Operator(Command::Abort),
            reason: String::new(),
            reply,
        })
        .await;
        rx.try_recv().unwrap()
    };
    assert!(refused.is_ok());
    let (reply, mut rx) = oneshot::channel();
    ctl.command(Request {
        ask: Ask::Operator(Command::Start),
        reason: String::new(),
        reply,
    })
    .await;
    assert!(rx.try_recv().unwrap().is_ok());
    serve(&mut ctl, &src, 70).await;
    assert!(ctl.state().step >= 1, "{}", ctl.state().reason);
}

#[tokio::test(start_paused = true)]
async fn traffic_check_false_turns_the_check_off() {
    let rig = Rig::new("srm-off");
    let rules = "[[rules]]\nname = \"errors\"\nsource = \"local\"\nsignal = \"error_ratio\"\nfail_when = \"> 0.5\"\n";
    let src = Counting::new(&rig.table, 1_000.0, 0.0, 0.0);
    src.inner.set("errors", 0.0);
    src.set_share(0.5);
    let mut ctl = boot_counting(
        &rig,
        &src,
        policy_with("traffic_check = false", [20; 4], rules),
    );
    serve(&mut ctl, &src, 30).await;
    assert_eq!(ctl.state().step, 1, "{}", ctl.state().reason);
    assert!(!rig.actions("transition").contains(&"alert".to_string()));
}
