//! The controller's published view: a snapshot of the rollout for `GET /api/v1/status` and the
//! controller's Prometheus metrics (`canaryd_rollout_*`, `canaryd_rule_*`,
//! `canaryd_decisions_total`). The controller writes it after every tick; the admin listener
//! reads it. Neither is on the request path, so a mutex is fine.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use canaryd_proxy::escape_label as escape;

use crate::api::{Action, State, Status};
use crate::policy::Outcome;
use crate::rollout::Phase;

#[derive(Debug, Default)]
struct Inner {
    /// `None` until the controller publishes (and for good without a policy).
    status: Option<Status>,
    decisions: BTreeMap<&'static str, u64>,
}

/// Shared between the controller (writer) and the admin listener (reader).
#[derive(Debug, Default)]
pub struct Board {
    inner: Mutex<Inner>,
}

impl Board {
    pub fn publish(&self, status: Status) {
        if let Ok(mut i) = self.inner.lock() {
            i.status = Some(status);
        }
    }

    pub fn count_decision(&self, action: Action) {
        if let Ok(mut i) = self.inner.lock() {
            *i.decisions.entry(action.as_str()).or_default() += 1;
        }
    }

    /// The status document; [`Status::disabled`] without a policy.
    pub fn status(&self) -> Status {
        self.inner
            .lock()
            .ok()
            .and_then(|i| i.status.clone())
            .unwrap_or_else(Status::disabled)
    }

    /// Appends the controller's metrics.
    pub fn render(&self, out: &mut String) {
        let Ok(i) = self.inner.lock() else { return };
        let rollout = i.status.as_ref().and_then(Status::rollout);
        let state = rollout.map(|r| r.state);
        out.push_str("# HELP canaryd_rollout_state 1 for the rollout's current state.\n# TYPE canaryd_rollout_state gauge\n");
        for p in Phase::ALL {
            let v = u8::from(state == Some(State::from(p)));
            let _ = writeln!(out, "canaryd_rollout_state{{state=\"{}\"}} {v}", p.as_str());
        }
        for extra in [State::Blocked, State::Manual] {
            let _ = writeln!(
                out,
                "canaryd_rollout_state{{state=\"{}\"}} {}",
                extra.as_str(),
                u8::from(state == Some(extra))
            );
        }
        let _ = writeln!(out, "# HELP canaryd_rollout_step Index of the current step.\n# TYPE canaryd_rollout_step gauge\ncanaryd_rollout_step {}", rollout.map_or(0, |r| r.step));
        let rules = rollout.map_or(&[][..], |r| &r.rules);
        out.push_str("# HELP canaryd_rule_value Last value of each rule (baseline rules: canary, stable and their ratio).\n# TYPE canaryd_rule_value gauge\n");
        for r in rules {
            let name = escape(&r.name);
            let mut put = |variant: &str, v: Option<f64>| {
                if let Some(v) = v {
                    let _ = writeln!(
                        out,
                        "canaryd_rule_value{{rule=\"{name}\",variant=\"{variant}\"}} {}",
                        prom_f64(v)
                    );
                }
            };
            if r.canary().is_some() || r.stable().is_some() {
                put("canary", r.canary());
                put("stable", r.stable());
                put("ratio", r.value);
            } else {
                put("canary", r.value);
            }
        }
        out.push_str("# HELP canaryd_rule_outcome 1 for each rule's last outcome.\n# TYPE canaryd_rule_outcome gauge\n");
        for r in rules {
            for o in Outcome::ALL {
                let _ = writeln!(
                    out,
                    "canaryd_rule_outcome{{rule=\"{}\",outcome=\"{}\"}} {}",
                    escape(&r.name),
                    o.as_str(),
                    u8::from(r.outcome == Some(o))
                );
            }
        }
        out.push_str("# HELP canaryd_decisions_total Decisions taken, by action.\n# TYPE canaryd_decisions_total counter\n");
        for (action, n) in &i.decisions {
            let _ = writeln!(out, "canaryd_decisions_total{{action=\"{action}\"}} {n}");
        }
    }
}

/// Prometheus text for a float (`+Inf`, `NaN`).
fn prom_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}
