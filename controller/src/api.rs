//! The controller's documents, typed: what it publishes and what it is sent.
//!
//! - [`Status`]: `GET /api/v1/status`, the answer to every operator action, `canaryd status`
//!   and the status page. Either a [`RolloutStatus`] or, without a policy, `disabled`.
//! - [`Decision`]: one line of `state_dir/decisions.ndjson`, one element of
//!   `GET /api/v1/decisions` ([`DecisionList`]), the body of a `json` webhook and the source of
//!   the status page's charts. Its per-transition fields (`from_step`, `failed_rules`, …) are
//!   present only on the lines they belong to.
//! - [`RuleStatus`]: one rule, in the status document and in every decision line.
//! - [`ActionRequest`]: the body of `POST /api/v1/{start,…,weight,approve}`.
//! - [`ApiError`]: the admin API's `{"error", "hint"}` answer to a refused request.
//! - [`Replay`]: `canaryd replay --json`, the decision lines a policy would have produced
//!   over history.
//!
//! The controller builds these values and every reader (admin API, status page, webhooks, the
//! CLI) uses their fields, so a renamed or retyped field is a compile error, not a runtime
//! surprise. The JSON is what canaryd has always written: the same keys, `null` where a key
//! was always present, the key left out where it was left out, and — because the fields of
//! each struct are declared in alphabetical order, the order serde_json's map wrote them in
//! before these types existed — the same bytes. Decision lines written by earlier versions
//! still read: every key that is not on every line is optional.
//!
//! `save_error` (in [`RolloutStatus`] and [`Decision`]) is new: present only when saving the
//! rollout state to `state.json` failed.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::policy::{Compare, Counts, Direction, OnFail, Outcome, SourceKind, TestKind};
use crate::rollout::Phase;

// === the status document ===

/// `GET /api/v1/status`.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// A policy is configured: where its rollout is.
    Rollout(Box<RolloutStatus>),
    /// No `[rollout] policy`: canaryd is a plain splitting proxy. On the wire
    /// `{"hint": "…", "state": "disabled"}`.
    Disabled { hint: String },
}

/// The status document of a configured rollout.
///
/// Fields are in alphabetical order (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// The split in force, in percent.
    pub canary_percent: f64,
    /// `[cluster] store = "etcd"`: this member's role, the leader and the live members.
    /// Absent with the file store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatus>,
    /// Why the controller is blocked (state `blocked`); `null` otherwise.
    #[serde(default)]
    pub error: Option<String>,
    /// Some acting rule is not healthy now (failing, no data, an error, not judged yet): the
    /// hold clock does not run and `approve` is refused.
    #[serde(default)]
    pub holding: bool,
    /// The newest decision line; `null` before the first one.
    #[serde(default)]
    pub last_decision: Option<Decision>,
    /// State `paused`: what was paused (`progressing`, `awaiting_approval`, `rolling_back`),
    /// which `resume` returns to. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_from: Option<State>,
    pub policy: String,
    /// Why the last transition happened.
    pub reason: String,
    /// The policy's rules, in its order.
    pub rules: Vec<RuleStatus>,
    /// Present while the rollout's state is not on disk: the last save of `state.json` failed
    /// (the message says why). Everything else in the document is what is in force; canaryd
    /// retries the save every second and drops this key once one succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_error: Option<String>,
    pub state: State,
    /// Index of the current step, from 0.
    pub step: usize,
    /// Healthy time served in the current step.
    pub step_held_s: f64,
    pub step_hold_remaining_s: f64,
    /// The current step's `hold`.
    pub step_hold_s: f64,
    /// RFC 3339.
    pub step_started_at: String,
    /// The policy's step weights, in percent.
    pub steps: Vec<f64>,
    /// RFC 3339: the last transition.
    pub updated_at: String,
}

/// `state` in the status document: the rollout's phase, or why there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Idle,
    Progressing,
    /// The step's hold is met; it waits for an operator's `approve` (rules still judged).
    AwaitingApproval,
    Paused,
    RollingBack,
    Promoted,
    RolledBack,
    Aborted,
    /// The state file could not be read: 0 % canary, nothing judged, every command refused.
    Blocked,
    /// No `[rollout] policy`: the split is the operator's (`set-weight`), persisted, logged and
    /// notified; nothing is judged.
    Manual,
    /// No policy configured.
    Disabled,
}

/// One rule, as the status document and every decision line show it.
///
/// Fields are in alphabetical order (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleStatus {
    /// How long the current breach has lasted (0 when none).
    pub breaching_for_s: f64,
    /// Baseline rules only (`Some`, written even when `null`): the canary's raw value.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub canary_value: Option<Option<f64>>,
    /// `baseline` for rules judged as canary / stable; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<RuleCompare>,
    pub dry_run: bool,
    /// The last error (provider unreachable, bad query); absent when the last sample was not
    /// an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The rule's `for`.
    pub for_s: f64,
    /// `test` rules: the confidence sequence for canary − stable error ratio (`mann-whitney`:
    /// for the latency shift, in seconds), `[low, high]`, at this evaluation. Absent for other
    /// rules and before the test has data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<[f64; 2]>,
    /// `mann-whitney` rules: the shift, U and the medians. Absent for other rules and before
    /// the test has data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<RuleLatency>,
    /// `test` rules: the margin, as an absolute difference of error ratios (`mann-whitney`:
    /// of latency, in seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin: Option<f64>,
    pub name: String,
    pub on_fail: RuleOnFail,
    /// `null` before the first evaluation.
    #[serde(default, with = "outcome")]
    pub outcome: Option<Outcome>,
    /// `test` rules: the requests and 5xx of each variant since the step began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<RuleSamples>,
    pub source: RuleSource,
    /// Baseline rules only (`Some`, written even when `null`): stable's raw value.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub stable_value: Option<Option<f64>>,
    /// `test` rules: ln of the test's likelihood ratio against "the difference is the
    /// margin"; the test decides once it reaches ln(1/alpha). `mann-whitney`: the z-score of
    /// the U test (tie-corrected; positive when the canary is slower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<f64>,
    /// The rule's `test` (`sequential`, `mann-whitney`); absent for threshold rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<RuleTest>,
    /// `fail_when` as written in the policy (`> 0.01`).
    pub threshold: String,
    /// The value judged (canary / stable for baseline rules, `test` rules included: their
    /// test judges the difference, see `interval`); `null` for no data and errors.
    #[serde(default)]
    pub value: Option<f64>,
}

/// `test` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleTest {
    Sequential,
    #[serde(rename = "mann-whitney")]
    MannWhitney,
}

/// What a `mann-whitney` rule found about latency, besides `interval`, `margin`,
/// `statistic` and `samples` (the requests judged, and the step's 5xx).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RuleLatency {
    /// Medians of the step, in seconds (interpolated in the histogram's buckets).
    pub canary_median_s: f64,
    /// Which change fails: `increase` (slower), `decrease` (faster) or `either`.
    pub direction: Direction,
    /// The Hodges–Lehmann estimate of canary − stable latency, in seconds.
    pub shift_s: f64,
    pub stable_median_s: f64,
    /// The Mann-Whitney U of the canary: (canary, stable) pairs where the canary was slower,
    /// ties counting one half.
    pub u: f64,
}

/// The counts a `test` rule judged: each variant's requests and 5xx since the step began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSamples {
    pub canary: Counts,
    pub stable: Counts,
}

/// `source` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSource {
    Local,
    Prometheus,
}

/// `on_fail` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOnFail {
    Rollback,
    Hold,
    Alert,
}

/// `compare` of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleCompare {
    Baseline,
}

// === the decision line ===

/// One decision: a line of `decisions.ndjson`, a `json` webhook's body.
///
/// The rollout fields (`state`, `step`, `canary_percent`, `held_s`, `reason`) describe the
/// rollout after the decision, as it is in force. Fields are in alphabetical order (see the
/// module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    /// `alert`: the rule (and its error, for errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_rule: Option<String>,
    /// Transitions: who decided. Absent on evaluations and reloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<By>,
    /// The split in force after the decision, in percent.
    pub canary_percent: f64,
    /// `rollback`: the rules that failed (empty when an operator rolled back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_rules: Option<Vec<String>>,
    /// The split before the decision. canaryd does not write it yet; the slack summary shows
    /// `(from % → to %)` when a line has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_percent: Option<f64>,
    /// `advance`: the step left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_step: Option<usize>,
    /// `rollback`: whether it drains gradually.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gradual: Option<bool>,
    /// Healthy time served in the current step. Absent on `reload` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_s: Option<f64>,
    /// `hold`: why the rollout holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_reasons: Option<Vec<String>>,
    pub kind: Kind,
    /// A fleet (`[cluster] store = "etcd"`): the member that decided (the leader). Absent
    /// with the file store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Operator actions: the `--reason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_reason: Option<String>,
    /// `set_weight`: the split asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    pub policy: String,
    pub reason: String,
    /// Every rule with its value and outcome. Absent on `reload` lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleStatus>>,
    /// Present when saving the rollout state for this decision failed (the message says why,
    /// and whether the decision was applied: a move towards stable is, a move towards the
    /// canary is not — the rollout fields of the line are what is in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_error: Option<String>,
    pub state: Phase,
    pub step: usize,
    /// `advance`: the step entered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_step: Option<usize>,
    /// RFC 3339, milliseconds.
    pub ts: String,
}

/// `kind` of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Something happened.
    Transition,
    /// A periodic round in which nothing happened.
    Evaluation,
}

/// `action` of a decision; also the label of `canaryd_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    // Transitions.
    Start,
    Advance,
    Promote,
    /// A step with `approval = true` served its hold: ready for approval (once per wait).
    AwaitingApproval,
    /// An operator approved: followed by the `advance` or `promote` it leads to.
    Approve,
    /// A hold begins (a transition), or an evaluation while holding.
    Hold,
    HoldEnd,
    Alert,
    Rollback,
    RollbackStep,
    RolledBack,
    Pause,
    Resume,
    Abort,
    SetWeight,
    /// The policy was reloaded (SIGHUP).
    Reload,
    // Evaluations.
    Healthy,
    Paused,
    RollingBack,
    /// An evaluation in a phase that judges nothing.
    None,
}

/// `by` of a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    Controller,
    Operator,
}

/// `GET /api/v1/decisions`: the last lines, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionList {
    pub decisions: Vec<Decision>,
}

// === replay ===

/// `canaryd replay --json`: what a policy would have decided over a stretch of history.
///
/// Fields are in alphabetical order (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    /// The decision lines the controller would have written, oldest first, each stamped with
    /// the historical time (`ts`) of its evaluation: the `start` at `from`, then one line per
    /// evaluation (a transition, or the evaluation itself) until `to` or the rollout's end.
    pub decisions: Vec<Decision>,
    /// Evaluations from `from` to `to` at the policy's interval (the replay stops earlier
    /// when the rollout ends).
    pub evaluations: u64,
    /// RFC 3339: the replayed rollout starts here.
    pub from: String,
    /// The policy's `interval`: one evaluation each.
    pub interval_s: f64,
    pub policy: String,
    /// Rules left out of the replay, and why (`source = "local"` rules).
    pub skipped: Vec<SkippedRule>,
    /// RFC 3339.
    pub to: String,
}

/// A rule `canaryd replay` cannot evaluate over history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRule {
    pub reason: String,
    pub rule: String,
}

// === requests and errors ===

/// The body of `POST /api/v1/<action>`. Both keys are optional; `percent` is needed by
/// `/api/v1/weight` and ignored elsewhere.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ActionRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Why: logged as `operator_reason` and sent to webhooks.
    #[serde(default)]
    pub reason: String,
}

/// `GET /ready`: 200 when a pool can serve and no graceful stop is under way, else 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    pub canary_available: bool,
    pub draining: bool,
    pub ready: bool,
    pub stable_available: bool,
}

/// The admin API's answer to a request it refuses (4xx).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub hint: String,
    /// 421 from a fleet's follower: the leader's admin address, where the command belongs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_admin: Option<String>,
}

// === the fleet ===

/// `cluster` in the status document (`[cluster] store = "etcd"`).
///
/// Fields are in alphabetical order (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// This member reaches etcd now.
    pub connected: bool,
    /// The leader's name as last read from etcd; `null` before any was seen.
    #[serde(default)]
    pub leader: Option<String>,
    /// The leader's admin address (where mutating calls go).
    #[serde(default)]
    pub leader_admin: Option<String>,
    /// The live members (a leased report in etcd), this member included, by name.
    pub members: Vec<MemberStatus>,
    /// This member's name.
    pub name: String,
    pub role: ClusterRole,
}

/// `role` of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterRole {
    /// Acting: evaluates the rules and writes the fleet's split.
    Leader,
    /// Applies the split the leader wrote.
    Follower,
}

/// One member in [`ClusterStatus`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// The split this member applies, in percent.
    pub applied_percent: f64,
    pub connected: bool,
    /// The epoch of that split (+1 per new split; the leader judges reports of the current one).
    pub epoch: u64,
    /// RFC 3339: its last report.
    pub last_seen: String,
    pub name: String,
}

// === impl Status ===

impl Status {
    /// The document without a policy.
    pub fn disabled() -> Self {
        Status::Disabled {
            hint: "no [rollout] policy configured: canaryd is a plain splitting proxy".into(),
        }
    }

    pub fn state(&self) -> State {
        match self {
            Status::Rollout(r) => r.state,
            Status::Disabled { .. } => State::Disabled,
        }
    }

    /// The rollout's document; `None` when disabled.
    pub fn rollout(&self) -> Option<&RolloutStatus> {
        match self {
            Status::Rollout(r) => Some(r),
            Status::Disabled { .. } => None,
        }
    }
}

impl From<RolloutStatus> for Status {
    fn from(r: RolloutStatus) -> Self {
        Status::Rollout(Box::new(r))
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Disabled<'a> {
            hint: &'a str,
            state: State,
        }
        match self {
            Status::Rollout(r) => r.serialize(s),
            Status::Disabled { hint } => Disabled {
                hint,
                state: State::Disabled,
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Status {
    /// `state: "disabled"` is the disabled document, anything else a [`RolloutStatus`] (whose
    /// errors name the missing or mistyped field).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        struct Probe {
            state: State,
            #[serde(default)]
            hint: String,
        }
        let doc = serde_json::Value::deserialize(d)?;
        let probe = Probe::deserialize(&doc).map_err(D::Error::custom)?;
        if probe.state == State::Disabled {
            return Ok(Status::Disabled { hint: probe.hint });
        }
        RolloutStatus::deserialize(doc)
            .map(Status::from)
            .map_err(D::Error::custom)
    }
}

// === impl State ===

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Progressing => "progressing",
            State::AwaitingApproval => "awaiting_approval",
            State::Paused => "paused",
            State::RollingBack => "rolling_back",
            State::Promoted => "promoted",
            State::RolledBack => "rolled_back",
            State::Aborted => "aborted",
            State::Blocked => "blocked",
            State::Manual => "manual",
            State::Disabled => "disabled",
        }
    }

    /// The rollout phase this state is; `None` for `blocked`, `manual` and `disabled`.
    pub fn phase(self) -> Option<Phase> {
        Some(match self {
            State::Idle => Phase::Idle,
            State::Progressing => Phase::Progressing,
            State::AwaitingApproval => Phase::AwaitingApproval,
            State::Paused => Phase::Paused,
            State::RollingBack => Phase::RollingBack,
            State::Promoted => Phase::Promoted,
            State::RolledBack => Phase::RolledBack,
            State::Aborted => Phase::Aborted,
            State::Blocked | State::Manual | State::Disabled => return None,
        })
    }
}

impl From<Phase> for State {
    fn from(p: Phase) -> Self {
        match p {
            Phase::Idle => State::Idle,
            Phase::Progressing => State::Progressing,
            Phase::AwaitingApproval => State::AwaitingApproval,
            Phase::Paused => State::Paused,
            Phase::RollingBack => State::RollingBack,
            Phase::Promoted => State::Promoted,
            Phase::RolledBack => State::RolledBack,
            Phase::Aborted => State::Aborted,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl RuleStatus and its enums ===

impl RuleStatus {
    /// Baseline rules: the raw canary value (`None` for other rules and when it had none).
    pub fn canary(&self) -> Option<f64> {
        self.canary_value.flatten()
    }

    /// Baseline rules: stable's raw value.
    pub fn stable(&self) -> Option<f64> {
        self.stable_value.flatten()
    }
}

impl RuleSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleSource::Local => "local",
            RuleSource::Prometheus => "prometheus",
        }
    }
}

impl From<SourceKind> for RuleSource {
    fn from(s: SourceKind) -> Self {
        match s {
            SourceKind::Local => RuleSource::Local,
            SourceKind::Prometheus => RuleSource::Prometheus,
        }
    }
}

impl RuleOnFail {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleOnFail::Rollback => "rollback",
            RuleOnFail::Hold => "hold",
            RuleOnFail::Alert => "alert",
        }
    }
}

impl From<OnFail> for RuleOnFail {
    fn from(o: OnFail) -> Self {
        match o {
            OnFail::Rollback => RuleOnFail::Rollback,
            OnFail::Hold => RuleOnFail::Hold,
            OnFail::Alert => RuleOnFail::Alert,
        }
    }
}

impl From<TestKind> for RuleTest {
    fn from(t: TestKind) -> Self {
        match t {
            TestKind::Sequential => RuleTest::Sequential,
            TestKind::MannWhitney => RuleTest::MannWhitney,
        }
    }
}

impl From<Compare> for RuleCompare {
    fn from(c: Compare) -> Self {
        match c {
            Compare::Baseline => RuleCompare::Baseline,
        }
    }
}

/// A key that, when present, holds a value or `null`: `Some(None)` for `null`. (Missing keys
/// are `None` through `#[serde(default)]`.)
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

/// `Option<Outcome>` as `"pass"`, `"fail"`, `"no_data"`, `"error"`, `"inconclusive"` or `null` (the rule
/// module's [`Outcome`] only serializes).
mod outcome {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::policy::Outcome;

    pub fn serialize<S: Serializer>(o: &Option<Outcome>, s: S) -> Result<S::Ok, S::Error> {
        o.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Outcome>, D::Error> {
        let Some(name) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == name)
            .map(Some)
            .ok_or_else(|| {
                D::Error::unknown_variant(
                    &name,
                    &["pass", "fail", "no_data", "error", "inconclusive"],
                )
            })
    }
}

// === impl Decision and its enums ===

impl Decision {
    /// The rules of the line (none on `reload` lines).
    pub fn rules(&self) -> &[RuleStatus] {
        self.rules.as_deref().unwrap_or_default()
    }
}

impl Action {
    /// The `action` value, and the label of `canaryd_decisions_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Advance => "advance",
            Action::Promote => "promote",
            Action::AwaitingApproval => "awaiting_approval",
            Action::Approve => "approve",
            Action::Hold => "hold",
            Action::HoldEnd => "hold_end",
            Action::Alert => "alert",
            Action::Rollback => "rollback",
            Action::RollbackStep => "rollback_step",
            Action::RolledBack => "rolled_back",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Abort => "abort",
            Action::SetWeight => "set_weight",
            Action::Reload => "reload",
            Action::Healthy => "healthy",
            Action::Paused => "paused",
            Action::RollingBack => "rolling_back",
            Action::None => "none",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Transition => "transition",
            Kind::Evaluation => "evaluation",
        }
    }
}

impl By {
    pub fn as_str(self) -> &'static str {
        match self {
            By::Controller => "controller",
            By::Operator => "operator",
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
