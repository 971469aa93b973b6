use super::*;
use crate::policy::Policy;

const POLICY: &str = r#"
name = "replayed"
interval = "30s"
min_requests = 100

[[steps]]
weight = 10
hold = "2m"

[[steps]]
weight = 100
hold = "2m"

[[rules]]
name = "errors"
source = "prometheus"
query = 'errors{variant="{{variant}}"}'
fail_when = "> 0.02"
for = "1m"

[[rules]]
name = "local-errors"
source = "local"
signal = "error_ratio"
fail_when = "> 0.5"
"#;

fn policy() -> Policy {
    Policy::from_source("replayed.toml", POLICY).expect("policy")
}

/// A history of the `errors` rule: one value per evaluation.
fn history(values: &[f64]) -> History {
    let samples = values.iter().map(|v| Sample::Value(*v)).collect();
    History {
        series: HashMap::from([(("errors".to_owned(), "canary"), samples)]),
        at: AtomicUsize::new(0),
    }
}

/// The transitions: (ts, action).
fn transitions(lines: &[Decision]) -> Vec<(String, &'static str)> {
    lines
        .iter()
        .filter(|l| l.kind == Kind::Transition)
        .map(|l| (l.ts.clone(), l.action.as_str()))
        .collect()
}

const FROM: u64 = 1_700_000_000_000;

#[test]
fn local_rules_are_left_out_and_named() {
    let (replayed, skipped) = replayable(&policy());
    assert_eq!(replayed.rules.len(), 1);
    assert_eq!(replayed.rules[0].name, "errors");
    assert!(!replayed.traffic_check);
    assert_eq!(replayed.min_requests, 0);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].rule, "local-errors");
    assert!(skipped[0].reason.contains("source = \"local\""));
}

#[tokio::test]
async fn a_clean_history_is_promoted_after_every_hold() {
    let (replayed, _) = replayable(&policy());
    let h = history(&[0.001; 20]);
    let lines = run(replayed, &h, FROM, 20, Duration::from_secs(30)).await;
    assert_eq!(
        transitions(&lines),
        [
            ("2023-11-14T22:13:20.000Z".to_owned(), "start"),
            // 2 minutes held healthy from the first evaluation at FROM.
            ("2023-11-14T22:15:20.000Z".to_owned(), "advance"),
            ("2023-11-14T22:17:20.000Z".to_owned(), "promote"),
        ]
    );
    // One evaluation line per evaluation without a transition; the replay stops with the
    // rollout (evaluation 8 of 20).
    assert_eq!(
        lines.iter().filter(|l| l.kind == Kind::Evaluation).count(),
        7
    );
    assert_eq!(lines.last().map(|l| l.state), Some(Phase::Promoted));
}

#[tokio::test]
async fn a_breach_rolls_back_at_the_first_evaluation_after_for() {
    let (replayed, _) = replayable(&policy());
    // Clean for 90 s (evaluations 0..=2), then 5 % errors from evaluation 3 (FROM + 90 s):
    // the breach lasts `for` (1m) at evaluation 5, FROM + 150 s.
    let mut values = vec![0.001; 3];
    values.extend([0.05; 10]);
    let h = history(&values);
    let lines = run(replayed, &h, FROM, 13, Duration::from_secs(30)).await;
    assert_eq!(
        transitions(&lines),
        [
            ("2023-11-14T22:13:20.000Z".to_owned(), "start"),
            ("2023-11-14T22:14:50.000Z".to_owned(), "hold"),
            ("2023-11-14T22:15:50.000Z".to_owned(), "rollback"),
            ("2023-11-14T22:15:50.000Z".to_owned(), "rolled_back"),
        ]
    );
    let rollback = lines
        .iter()
        .find(|l| l.action == Action::Rollback)
        .expect("rollback line");
    assert_eq!(
        rollback.failed_rules.as_deref(),
        Some(&["errors".to_owned()][..])
    );
    assert_eq!(rollback.rules()[0].value, Some(0.05));
    assert_eq!(rollback.by, Some(By::Controller));
}

#[tokio::test]
async fn backwards_and_oversized_ranges_are_refused() {
    let prom = PromClient::new("http://127.0.0.1:9", Duration::from_secs(1)).expect("client");
    let p = policy();
    assert!(matches!(
        replay(&prom, &p, FROM + 1, FROM).await,
        Err(ReplayError::Backwards { .. })
    ));
    assert!(matches!(
        replay(&prom, &p, FROM, FROM + 30_000 * MAX_EVALUATIONS).await,
        Err(ReplayError::TooLong { .. })
    ));
}
