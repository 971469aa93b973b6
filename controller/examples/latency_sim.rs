//! How fast and how safe is `test = "mann-whitney"`?
//!
//! A simulation, not a timed test: 1 000 requests per second, 5 % of them on the canary
//! (50/s); latencies log-normal, stable's median 40 ms (σ = 0.5 of the log, so p99 ≈ 130 ms),
//! counted into the proxy's histogram buckets. For a canary whose latencies are all 30 %
//! longer (median 52 ms), the seconds (and canary requests) until the rule fails; for an equal
//! canary (A/A), how often it fails within an hour-long step. Each scenario is run `RUNS`
//! times with a seeded generator, the rule judged every second on the step's histograms (what
//! the controller does), `direction = "increase"`, `alpha = 0.01`.
//!
//! For reference, the same U test at a fixed level (z > 2.33, one-sided 1 %) looked at every
//! second, as a fixed-sample test (Kayenta's) would be if it were run continuously.
//!
//! ```text
//! cargo run --release -p canaryd-controller --example latency_sim
//! ```

#[path = "common/rng.rs"]
mod rng;

use canaryd_controller::judge::{judge_latency, u_test};
use canaryd_controller::{Direction, Histogram, Margin, Outcome};
use rng::Rng;

const RUNS: usize = 200;
const STEP_S: u64 = 3_600;
const CANARY_RPS: u64 = 50;
const STABLE_RPS: u64 = 950;
const MEDIAN_S: f64 = 0.040;
const SIGMA: f64 = 0.5;
/// One-sided 1 % of the standard normal.
const Z_FIXED: f64 = 2.326_347_874;

/// One request's latency, `factor` times stable's distribution.
fn latency(rng: &mut Rng, factor: f64) -> f64 {
    MEDIAN_S * factor * (SIGMA * rng.normal()).exp()
}

/// One step: the second the rule first fails, the second it first passes, and the second the
/// fixed-level U test first fires (None: never within the step).
fn run(rng: &mut Rng, factor: f64, margin: Margin) -> (Option<u64>, Option<u64>, Option<u64>) {
    let (mut c, mut s) = (Histogram::default(), Histogram::default());
    let (mut failed, mut passed, mut fixed) = (None, None, None);
    for t in 1..=STEP_S {
        for _ in 0..CANARY_RPS {
            c.observe(latency(rng, factor));
        }
        for _ in 0..STABLE_RPS {
            s.observe(latency(rng, 1.0));
        }
        let outcome = judge_latency(c, s, margin, Direction::Increase, 0.01, 0).map(|j| j.outcome);
        if failed.is_none() && outcome == Some(Outcome::Fail) {
            failed = Some(t);
        }
        if passed.is_none() && outcome == Some(Outcome::Pass) {
            passed = Some(t);
        }
        if fixed.is_none() && c.total() >= 50 && u_test(&c, &s).1 > Z_FIXED {
            fixed = Some(t);
        }
        // A failure ends the step; an A/A step runs to its end.
        if failed.is_some() && fixed.is_some() {
            break;
        }
    }
    (failed, passed, fixed)
}

fn quantile(times: &mut [u64], q: f64) -> String {
    times.sort_unstable();
    times
        .get(((times.len() as f64 * q).ceil() as usize).saturating_sub(1))
        .map_or("—".into(), |t| {
            format!("{t} s ({} canary req)", t * CANARY_RPS)
        })
}

fn row(name: &str, mut times: Vec<u64>) -> String {
    format!(
        "| {name} | {}/{RUNS} | {} | {} |",
        times.len(),
        quantile(&mut times, 0.5),
        quantile(&mut times, 0.9)
    )
}

fn main() {
    println!(
        "1 000 req/s, canary weight 5 % ({CANARY_RPS}/s), log-normal latency (stable median \
         {} ms, sigma {SIGMA}), {RUNS} runs per row, step of {STEP_S} s\n",
        MEDIAN_S * 1000.0
    );
    println!("| canary | rule | failed within the step | median time | 90th percentile |");
    println!("|---|---|---|---|---|");
    for (seed, factor, margin, label) in [
        (
            1u64,
            1.3,
            Margin::Relative(0.1),
            "+30 % | mann-whitney, margin 10 %",
        ),
        (
            2,
            1.3,
            Margin::Absolute(0.0),
            "+30 % | mann-whitney, margin 0",
        ),
        (
            3,
            1.0,
            Margin::Relative(0.1),
            "equal (A/A) | mann-whitney, margin 10 %",
        ),
        (
            4,
            1.0,
            Margin::Absolute(0.0),
            "equal (A/A) | mann-whitney, margin 0",
        ),
    ] {
        let mut rng = Rng::seeded(seed);
        let (mut failed, mut passed, mut fixed) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let (f, p, x) = run(&mut rng, factor, margin);
            failed.extend(f);
            passed.extend(p);
            fixed.extend(x);
        }
        println!("{}", row(label, failed));
        if factor == 1.0 {
            let name = label.replace("mann-whitney", "mann-whitney: first **pass**");
            println!("{}", row(&name, passed));
        }
        if let Margin::Absolute(_) = margin {
            let name = label.split(" | ").next().unwrap_or_default();
            println!(
                "{}",
                row(
                    &format!("{name} | U test at fixed 1 %, looked at every second"),
                    fixed
                )
            );
        }
    }
}
