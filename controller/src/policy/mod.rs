//! Rollout policies (`policies/*.toml`): the steps a rollout walks through and the rules that
//! judge the canary at each step.
//!
//! Loading rejects unknown keys and validates what types cannot express (steps ascend to 100,
//! every rule has the keys its source needs, thresholds parse, names are unique). Errors name
//! the file, the line, the key and what was expected, like the config loader's.

pub mod mann_whitney;
mod rules;
pub mod sequential;
pub mod traffic;

use std::fmt;
use std::path::Path;
use std::time::Duration;

use canaryd_config::{duration, ConfigError, Invalid, Loader};
use serde::de::{self, Deserializer};
use serde::Deserialize;

pub use mann_whitney::{Direction, Histogram};
pub use rules::{baseline_ratio, Outcome, RuleState, Sample, Verdict};
pub use sequential::{Counts, Judgement, Margin};
pub use traffic::{Share, Traffic};

/// A whole policy file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub name: String,
    /// Evaluation period of PromQL rules (local rules are evaluated every second).
    #[serde(deserialize_with = "duration")]
    pub interval: Duration,
    #[serde(default)]
    pub rollback: RollbackMode,
    /// Canary requests an evaluation window needs; below it rules say no-data.
    #[serde(default)]
    pub min_requests: u64,
    /// Consecutive errors (provider unreachable, bad query) after which a rule counts as
    /// failed. Unset: errors hold the rollout and alert, forever.
    #[serde(default)]
    pub max_consecutive_errors: Option<u32>,
    /// How a step's healthy time is counted; a step's own `hold_mode` overrides it.
    #[serde(default)]
    pub hold_mode: HoldMode,
    /// Check every step that the canary gets the share of requests its weight says
    /// (sample-ratio mismatch, [`traffic`]); a mismatch holds and alerts. On by default.
    #[serde(default = "yes")]
    pub traffic_check: bool,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One step: a canary weight held healthy for `hold` before moving on.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Canary share in percent.
    pub weight: f64,
    #[serde(deserialize_with = "duration")]
    pub hold: Duration,
    /// Overrides the policy's `hold_mode` for this step.
    #[serde(default)]
    pub hold_mode: Option<HoldMode>,
    /// Once the hold is met, wait for an operator's `approve` instead of moving on.
    #[serde(default)]
    pub approval: bool,
    /// Share (percent) of the idempotent requests served by stable also sent to the canary as
    /// shadow traffic, answers discarded (`proxy/src/request/shadow.rs`). A step with
    /// `weight = 0` and a `shadow` is a "dark" step: local rules judge the canary's shadow
    /// answers.
    #[serde(default)]
    pub shadow: f64,
}

/// How a step's healthy time (`held_ms`) is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldMode {
    /// The hold must be served in one unbroken healthy run: an evaluation that holds the
    /// rollout (a breach shorter than `for`, a `hold` failure, no data, an error) restarts it
    /// from zero. The default: "met for 24 consecutive hours"; never advance on a canary that
    /// was only healthy now and then.
    #[default]
    Consecutive,
    /// Healthy time adds up; unhealthy time only stops the clock.
    Cumulative,
}

/// How a rollback moves traffic back to stable.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RollbackMode {
    /// One swap to 0 %.
    #[default]
    Immediate,
    /// `step` percentage points less every `every`, still judged (seed 003).
    Gradual { step: f64, every: Duration },
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub source: SourceKind,
    /// PromQL, for `source = "prometheus"`; `{{variant}}` is replaced by canary / stable.
    #[serde(default)]
    pub query: Option<String>,
    /// For `source = "local"`.
    #[serde(default)]
    pub signal: Option<Signal>,
    /// Window of a local rule.
    #[serde(default = "default_window", deserialize_with = "duration")]
    pub window: Duration,
    /// Required, except for `test` rules (the test decides; they must not have one).
    #[serde(default)]
    pub fail_when: Option<Threshold>,
    /// How long the threshold must be breached continuously before `on_fail` applies.
    #[serde(default, rename = "for", deserialize_with = "duration")]
    pub for_: Duration,
    #[serde(default)]
    pub on_fail: OnFail,
    #[serde(default)]
    pub on_no_data: OnNoData,
    /// Evaluate and log, never act.
    #[serde(default)]
    pub dry_run: bool,
    /// `"baseline"`: evaluate for canary and stable; the value is canary / stable.
    #[serde(default)]
    pub compare: Option<Compare>,
    /// Overrides the policy's `min_requests` for this rule; `0` for rules that do not measure
    /// traffic (`up`, memory, CPU).
    #[serde(default)]
    pub min_requests: Option<u64>,
    /// `"sequential"` (error ratio, [`sequential`]) or `"mann-whitney"` (latency,
    /// [`mann_whitney`]): judge the canary against stable with an always-valid test over the
    /// whole step instead of `fail_when`. Local baseline rules only.
    #[serde(default)]
    pub test: Option<TestKind>,
    /// `test` rules: the worst tolerated difference, absolute (`0.005` of error ratio,
    /// `"20ms"` of latency) or relative to stable's (`"20%"`).
    #[serde(default)]
    pub margin: Option<Margin>,
    /// `test` rules: the false-positive rate (default 0.01), in (0, 0.5).
    #[serde(default)]
    pub alpha: Option<f64>,
    /// `mann-whitney` rules: which change fails (default `increase`: the canary slower).
    #[serde(default)]
    pub direction: Option<Direction>,
}

fn yes() -> bool {
    true
}

/// `test` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TestKind {
    /// The mixture SPRT on the difference of error ratios ([`sequential`]).
    Sequential,
    /// Mann-Whitney U and the Hodges–Lehmann shift of latency ([`mann_whitney`]).
    #[serde(rename = "mann-whitney")]
    MannWhitney,
}

impl TestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TestKind::Sequential => "sequential",
            TestKind::MannWhitney => "mann-whitney",
        }
    }

    /// The signal the test judges.
    fn signal(self) -> Signal {
        match self {
            TestKind::Sequential => Signal::ErrorRatio,
            TestKind::MannWhitney => Signal::Latency,
        }
    }
}

fn default_window() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Prometheus,
    Local,
}

/// Local signals, read from the proxy's own sliding windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    ErrorRatio,
    LatencyP50,
    LatencyP90,
    LatencyP99,
    LatencyP999,
    Rps,
    /// The whole latency distribution: only with `test = "mann-whitney"`.
    Latency,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::ErrorRatio => "error_ratio",
            Signal::LatencyP50 => "latency_p50",
            Signal::LatencyP90 => "latency_p90",
            Signal::LatencyP99 => "latency_p99",
            Signal::LatencyP999 => "latency_p999",
            Signal::Rps => "rps",
            Signal::Latency => "latency",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFail {
    #[default]
    Rollback,
    Hold,
    Alert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnNoData {
    #[default]
    Hold,
    Pass,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compare {
    Baseline,
}

/// `fail_when = "> 0.01"`: the comparison that means failure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub op: Op,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

// === impl Policy ===

impl Policy {
    /// The stand-in for no `[rollout] policy` (manual mode): no steps, no rules. The controller
    /// refuses every command but `set-weight` with it, so nothing ever enters a step.
    pub fn manual() -> Self {
        Self {
            name: String::new(),
            interval: Duration::from_secs(1),
            rollback: RollbackMode::default(),
            min_requests: 0,
            max_consecutive_errors: None,
            hold_mode: HoldMode::default(),
            traffic_check: false,
            steps: Vec::new(),
            rules: Vec::new(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let (file, src) = canaryd_config::read_source(path)?;
        Self::from_source(&file, &src)
    }

    /// Parses `src` (named `file` in errors), reporting every problem at once ([`Loader`]):
    /// every type error, unknown and missing key, and every semantic problem of the parts
    /// that parsed, in file order.
    pub fn from_source(file: &str, src: &str) -> Result<Self, ConfigError> {
        Loader::new(file, src)
            // Fits a required `fail_when` (a threshold refuses the generic placeholders).
            .placeholders(&["> 0"])
            .related(related_keys)
            .load(|policy: &Policy| {
                policy
                    .validate()
                    .into_iter()
                    .map(|(key, message)| Invalid { key, message })
                    .collect()
            })
    }

    /// Weights of every step, in percent.
    pub fn weights(&self) -> Vec<f64> {
        self.steps.iter().map(|s| s.weight).collect()
    }

    /// The hold mode of step `step`: its own, else the policy's.
    pub fn hold_mode_at(&self, step: usize) -> HoldMode {
        self.steps
            .get(step)
            .and_then(|s| s.hold_mode)
            .unwrap_or(self.hold_mode)
    }

    /// Does step `step` wait for an operator's approval once its hold is met?
    pub fn needs_approval(&self, step: usize) -> bool {
        self.steps.get(step).is_some_and(|s| s.approval)
    }

    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut bad = |k: String, m: String| out.push((k, m));
        if self.name.trim().is_empty() {
            bad("name".into(), "expected a non-empty policy name".into());
        }
        if self.interval < Duration::from_secs(1) {
            bad(
                "interval".into(),
                "expected at least \"1s\" (local rules run every second anyway)".into(),
            );
        }
        if let RollbackMode::Gradual { step, every } = &self.rollback {
            if !(*step > 0.0 && *step <= 100.0) {
                bad(
                    "rollback".into(),
                    format!("expected `gradual.step` between 0 and 100 points, found {step}"),
                );
            }
            if every.is_zero() {
                bad(
                    "rollback".into(),
                    "expected a positive `gradual.every`".into(),
                );
            }
        }
        if self.max_consecutive_errors == Some(0) {
            bad(
                "max_consecutive_errors".into(),
                "expected at least 1 (omit it to hold on errors indefinitely)".into(),
            );
        }
        if self.steps.is_empty() {
            bad(
                "steps".into(),
                "expected at least one [[steps]] entry, the last with weight = 100".into(),
            );
        }
        let mut previous = 0.0;
        for (i, s) in self.steps.iter().enumerate() {
            if !(0.0..=100.0).contains(&s.shadow) {
                bad(
                    format!("steps[{i}].shadow"),
                    format!(
                        "expected a percentage between 0 and 100, found {}",
                        s.shadow
                    ),
                );
            }
            let dark = i == 0 && s.weight == 0.0 && s.shadow > 0.0;
            if dark {
                // A dark first step: no real traffic, judged on shadow answers.
            } else if !(s.weight > 0.0 && s.weight <= 100.0) {
                bad(
                    format!("steps[{i}].weight"),
                    format!(
                        "expected a percentage above 0 and at most 100 (0 only for a first step with a `shadow`), found {}",
                        s.weight
                    ),
                );
            } else if s.weight <= previous {
                bad(
                    format!("steps[{i}].weight"),
                    format!(
                        "expected weights to increase step by step, found {} after {previous}",
                        s.weight
                    ),
                );
            }
            previous = s.weight;
        }
        if let Some(last) = self.steps.last() {
            if last.weight != 100.0 {
                bad(
                    format!("steps[{}].weight", self.steps.len() - 1),
                    format!("expected the last step to be 100, found {}", last.weight),
                );
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            let key = |k: &str| format!("rules[{i}].{k}");
            if r.name.trim().is_empty() {
                bad(key("name"), "expected a non-empty rule name".into());
            }
            if self.rules[..i].iter().any(|o| o.name == r.name) {
                bad(
                    key("name"),
                    format!("expected unique rule names, {:?} is repeated", r.name),
                );
            }
            r.validate_test(&key, &mut bad);
            match r.source {
                SourceKind::Prometheus => {
                    if r.query.as_deref().is_none_or(|q| q.trim().is_empty()) {
                        bad(
                            key("query"),
                            "expected a PromQL query for source = \"prometheus\"".into(),
                        );
                    }
                    if r.signal.is_some() {
                        bad(key("signal"), "expected no `signal` for source = \"prometheus\" (it is for local rules)".into());
                    }
                    if r.compare.is_some()
                        && !r.query.as_deref().unwrap_or_default().contains("variant")
                    {
                        bad(
                            key("compare"),
                            "expected the query to use {{variant}} when compare = \"baseline\""
                                .into(),
                        );
                    }
                }
                SourceKind::Local => {
                    if r.signal.is_none() {
                        bad(key("signal"), "expected one of error_ratio, latency_p50, latency_p90, latency_p99, latency_p999, rps, latency (with test = \"mann-whitney\") for source = \"local\"".into());
                    }
                    if r.query.is_some() {
                        bad(key("query"), "expected no `query` for source = \"local\" (it is for prometheus rules)".into());
                    }
                    if r.window < Duration::from_secs(1) || r.window > Duration::from_secs(120) {
                        bad(
                            key("window"),
                            format!(
                                "expected a window from \"1s\" to \"120s\", found {:?}",
                                r.window
                            ),
                        );
                    }
                }
            }
        }
        out
    }
}

/// The keys a rule check reads besides the one it reports (see [`Loader::related`]): what a
/// rule needs depends on its `source`, and `compare` looks into its `query`.
fn related_keys(key: &str) -> Vec<String> {
    let Some((rule, field)) = key
        .strip_prefix("rules[")
        .and_then(|rest| rest.split_once("]."))
    else {
        return Vec::new();
    };
    let at = |k: &str| format!("rules[{rule}].{k}");
    match field {
        "query" | "signal" | "window" => vec![at("source")],
        "test" => vec![at("source"), at("compare"), at("signal")],
        "margin" | "alpha" | "fail_when" | "direction" => vec![at("test")],
        "compare" => vec![at("source"), at("query")],
        _ => Vec::new(),
    }
}

// === impl Rule ===

impl Rule {
    /// `alpha`, or its default.
    pub fn alpha(&self) -> f64 {
        self.alpha.unwrap_or(sequential::DEFAULT_ALPHA)
    }

    /// `direction`, or its default.
    pub fn direction(&self) -> Direction {
        self.direction.unwrap_or_default()
    }

    /// `fail_when` as written, or what decides instead (a `test`).
    pub fn threshold(&self) -> String {
        match (&self.fail_when, self.test, self.margin) {
            (Some(t), _, _) => t.to_string(),
            (None, Some(TestKind::Sequential), Some(m)) => {
                format!(
                    "sequential: canary worse than stable by > {m} (alpha {})",
                    self.alpha()
                )
            }
            (None, Some(TestKind::MannWhitney), Some(m)) => {
                let m = match m {
                    Margin::Absolute(s) => format!("{}ms", s * 1000.0),
                    relative => relative.to_string(),
                };
                let change = match self.direction() {
                    Direction::Increase => format!("canary slower than stable by > {m}"),
                    Direction::Decrease => format!("canary faster than stable by > {m}"),
                    Direction::Either => format!("canary slower or faster than stable by > {m}"),
                };
                format!("mann-whitney: {change} (alpha {})", self.alpha())
            }
            _ => String::new(),
        }
    }

    /// The keys of `test` rules, and `fail_when`'s presence: one message per problem.
    fn validate_test(&self, key: &dyn Fn(&str) -> String, bad: &mut dyn FnMut(String, String)) {
        if self.test != Some(TestKind::MannWhitney) {
            if self.direction.is_some() {
                bad(
                    key("direction"),
                    "expected `direction` only with test = \"mann-whitney\"".into(),
                );
            }
            if self.signal == Some(Signal::Latency) {
                bad(key("signal"), "expected signal = \"latency\" only with test = \"mann-whitney\" (for a threshold, use latency_p50 … latency_p999)".into());
            }
        }
        let Some(test) = self.test else {
            if self.fail_when.is_none() {
                bad(
                    key("fail_when"),
                    "expected a comparison like \"> 0.01\" (or a `test` with a `margin` on a local baseline rule)".into(),
                );
            }
            if self.margin.is_some() {
                bad(
                    key("margin"),
                    "expected `margin` only with test = \"sequential\" or \"mann-whitney\"".into(),
                );
            }
            if self.alpha.is_some() {
                bad(
                    key("alpha"),
                    "expected `alpha` only with test = \"sequential\" or \"mann-whitney\"".into(),
                );
            }
            return;
        };
        let name = test.as_str();
        if self.source != SourceKind::Local {
            bad(key("test"), format!("expected test = \"{name}\" only with source = \"local\" (it reads the proxy's own counts)"));
        }
        if self.compare != Some(Compare::Baseline) {
            bad(key("test"), format!("expected compare = \"baseline\" with test = \"{name}\" (the canary is tested against stable)"));
        }
        let signal = test.signal();
        if self.source == SourceKind::Local && self.signal.is_some_and(|s| s != signal) {
            bad(
                key("test"),
                format!(
                    "expected signal = \"{}\" with test = \"{name}\"",
                    signal.as_str()
                ),
            );
        }
        if self.fail_when.is_some() {
            bad(key("fail_when"), format!("expected no `fail_when` with test = \"{name}\" (the test decides against `margin`)"));
        }
        match (test, self.margin) {
            (TestKind::Sequential, None) => bad(key("margin"), "expected a `margin` with test = \"sequential\": the worst tolerated increase, like 0.005 or \"20%\"".into()),
            (TestKind::MannWhitney, None) => bad(key("margin"), "expected a `margin` with test = \"mann-whitney\": the worst tolerated shift, like \"20ms\" or \"10%\"".into()),
            (TestKind::Sequential, Some(Margin::Absolute(m))) if !(0.0..1.0).contains(&m) => bad(key("margin"), format!("expected an absolute margin from 0 to below 1 (like 0.005), found {m}")),
            (TestKind::MannWhitney, Some(Margin::Absolute(m))) if !(0.0..60.0).contains(&m) => bad(key("margin"), format!("expected a latency margin from 0 to below 60 s (like \"20ms\"), found {m} s")),
            (_, Some(Margin::Relative(r))) if !(r > 0.0 && r <= 10.0) => bad(key("margin"), format!("expected a relative margin above 0 % and at most 1000 %, found {}%", r * 100.0)),
            _ => {}
        }
        if let Some(a) = self.alpha {
            if !(a > 0.0 && a < 0.5) {
                bad(
                    key("alpha"),
                    format!("expected alpha strictly between 0 and 0.5 (like 0.01), found {a}"),
                );
            }
        }
    }
}

impl<'de> Deserialize<'de> for Margin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        const EXPECTED: &str = "expected a margin like 0.005 (absolute), \"20ms\" (a latency) or \"20%\" (relative to stable's error ratio or median latency)";
        match Raw::deserialize(d).map_err(|_| de::Error::custom(EXPECTED))? {
            Raw::Number(m) => Ok(Margin::Absolute(m)),
            Raw::Text(t) => {
                let Some(pct) = t.trim().strip_suffix('%') else {
                    return humantime::parse_duration(t.trim())
                        .map(|d| Margin::Absolute(d.as_secs_f64()))
                        .map_err(|_| de::Error::custom(format!("{EXPECTED}, found {t:?}")));
                };
                pct.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|p| p.is_finite())
                    .map(|p| Margin::Relative(p / 100.0))
                    .ok_or_else(|| de::Error::custom(format!("{EXPECTED}, found {t:?}")))
            }
        }
    }
}

// === impl Threshold ===

impl Threshold {
    /// Does `value` breach this threshold?
    pub fn breached(&self, value: f64) -> bool {
        match self.op {
            Op::Gt => value > self.value,
            Op::Ge => value >= self.value,
            Op::Lt => value < self.value,
            Op::Le => value <= self.value,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        };
        write!(f, "{op} {}", self.value)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        let (op, rest) = if let Some(r) = t.strip_prefix(">=") {
            (Op::Ge, r)
        } else if let Some(r) = t.strip_prefix("<=") {
            (Op::Le, r)
        } else if let Some(r) = t.strip_prefix('>') {
            (Op::Gt, r)
        } else if let Some(r) = t.strip_prefix('<') {
            (Op::Lt, r)
        } else {
            return Err(de::Error::custom(format!(
                "expected a comparison like \"> 0.01\" or \"<= 0.99\", found {s:?}"
            )));
        };
        let value = rest.trim().parse::<f64>().map_err(|_| {
            de::Error::custom(format!(
                "expected a number after the operator, like \"> 0.01\", found {s:?}"
            ))
        })?;
        Ok(Threshold { op, value })
    }
}

impl<'de> Deserialize<'de> for RollbackMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Gradual {
            step: f64,
            #[serde(deserialize_with = "duration")]
            every: Duration,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            gradual: Gradual,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Name(String),
            Table(Table),
        }
        match Raw::deserialize(d).map_err(|_| {
            de::Error::custom(
                "expected \"immediate\" or { gradual = { step = 20, every = \"1m\" } }",
            )
        })? {
            Raw::Name(n) if n == "immediate" => Ok(RollbackMode::Immediate),
            Raw::Name(n) => Err(de::Error::custom(format!(
                "expected \"immediate\" or {{ gradual = {{ step = 20, every = \"1m\" }} }}, found {n:?}"
            ))),
            Raw::Table(t) => Ok(RollbackMode::Gradual {
                step: t.gradual.step,
                every: t.gradual.every,
            }),
        }
    }
}

/// The simulations' seeded generator, shared with `examples/` (the unit tests' simulations).
#[cfg(test)]
#[path = "../../examples/common/rng.rs"]
mod test_rng;

#[cfg(test)]
mod tests;
