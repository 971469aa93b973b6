//! How fast and how safe is `test = "sequential"`, against the seed's threshold rule?
//!
//! A simulation, not a timed test: 1 000 requests per second, 5 % of them on the canary
//! (50/s), stable at 1 % 5xx. For canaries at 2 % and 5 % 5xx, the seconds (and canary
//! requests) until each rule fails; for an equal canary (A/A), how often each rule fails
//! within an hour-long step. Each scenario is run `RUNS` times with a seeded generator.
//!
//! - sequential: `compare = "baseline"`, `test = "sequential"`, `margin = 0.005`,
//!   `alpha = 0.01`, judged every second on the step's counts (what the controller does).
//! - threshold: the seed's `error-rate` rule, `fail_when = "> 0.01"`, `for = "5m"`, the
//!   canary's ratio over the last 5 minutes (`rate(...[5m])`) judged every 30 s
//!   (`interval = "30s"`).
//!
//! ```text
//! cargo run --release -p canaryd-controller --example judge_sim
//! ```

#[path = "common/rng.rs"]
mod rng;

use canaryd_controller::judge;
use canaryd_controller::{Counts, Margin, Outcome};
use rng::Rng;

const RUNS: usize = 400;
const STEP_S: u64 = 3_600;
const CANARY_RPS: u64 = 50;
const STABLE_RPS: u64 = 950;
const P_STABLE: f64 = 0.01;

/// The second each rule first fails in one step (None: never within `STEP_S`).
/// Also the second the sequential rule first passes (an equal canary shown not worse).
fn run(rng: &mut Rng, p_canary: f64, margin: f64) -> (Option<u64>, Option<u64>, Option<u64>) {
    let (mut c, mut s) = (Counts::default(), Counts::default());
    let mut per_second: Vec<(u64, u64)> = Vec::with_capacity(STEP_S as usize);
    let (mut sequential, mut threshold, mut passed) = (None, None, None);
    let mut breaching_since: Option<u64> = None;
    for t in 1..=STEP_S {
        let ce = rng.binomial(CANARY_RPS, p_canary);
        let se = rng.binomial(STABLE_RPS, P_STABLE);
        c.requests += CANARY_RPS;
        c.errors += ce;
        s.requests += STABLE_RPS;
        s.errors += se;
        per_second.push((CANARY_RPS, ce));
        let outcome = judge::judge(c, s, Margin::Absolute(margin), 0.01, 0).map(|j| j.outcome);
        if sequential.is_none() && outcome == Some(Outcome::Fail) {
            sequential = Some(t);
        }
        if passed.is_none() && outcome == Some(Outcome::Pass) {
            passed = Some(t);
        }
        if threshold.is_none() && t % 30 == 0 {
            let from = per_second.len().saturating_sub(300);
            let (n, e) = per_second[from..]
                .iter()
                .fold((0, 0), |(n, e), (dn, de)| (n + dn, e + de));
            let ratio = e as f64 / n.max(1) as f64;
            if ratio > 0.01 {
                let since = *breaching_since.get_or_insert(t);
                if t - since >= 300 {
                    threshold = Some(t);
                }
            } else {
                breaching_since = None;
            }
        }
        if sequential.is_some() && threshold.is_some() {
            break;
        }
    }
    (sequential, threshold, passed)
}

struct Summary {
    detected: usize,
    median_s: Option<u64>,
    p90_s: Option<u64>,
}

fn summarize(mut times: Vec<u64>) -> Summary {
    times.sort_unstable();
    let at = |q: f64| {
        times
            .get(((times.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
    };
    Summary {
        detected: times.len(),
        median_s: at(0.5),
        p90_s: at(0.9),
    }
}

fn show(name: &str, s: &Summary) -> String {
    let fmt = |v: Option<u64>| {
        v.map_or("—".to_string(), |t| {
            format!("{t} s ({} canary req)", t * CANARY_RPS)
        })
    };
    format!(
        "| {name} | {}/{RUNS} | {} | {} |",
        s.detected,
        fmt(s.median_s),
        fmt(s.p90_s)
    )
}

fn main() {
    println!("1 000 req/s, canary weight 5 % ({CANARY_RPS}/s), stable at 1 % 5xx, {RUNS} runs per row, step of {STEP_S} s\n");
    println!(
        "| canary 5xx | rule | failed within the step | median time to fail | 90th percentile |"
    );
    println!("|---|---|---|---|---|");
    for (seed, p, margin) in [
        (1u64, 0.02, 0.005),
        (2, 0.05, 0.005),
        (3, 0.01, 0.005),
        (4, 0.01, 0.0),
    ] {
        let mut rng = Rng::seeded(seed);
        let (mut seq, mut thr, mut pass) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let (a, b, c) = run(&mut rng, p, margin);
            seq.extend(a);
            thr.extend(b);
            pass.extend(c);
        }
        let label = if p == P_STABLE {
            "1 % (A/A)".to_string()
        } else {
            format!("{} %", p * 100.0)
        };
        println!(
            "{}",
            show(
                &format!("{label} | sequential (margin {margin}, alpha 0.01)"),
                &summarize(seq)
            )
        );
        if p == P_STABLE {
            let s = summarize(pass);
            println!(
                "| {label} | sequential (margin {margin}): first **pass** | {}/{RUNS} | {} s | {} s |",
                s.detected,
                s.median_s.unwrap_or(0),
                s.p90_s.unwrap_or(0)
            );
        }
        if margin > 0.0 {
            println!(
                "{}",
                show(
                    &format!("{label} | threshold (> 1 % for 5m)"),
                    &summarize(thr)
                )
            );
        }
    }
}
