use std::time::Duration;

use super::*;

#[test]
fn times_are_rfc3339_now_or_before_now() {
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    assert_eq!(parse_time("now", now).unwrap(), now);
    assert_eq!(
        parse_time("-2h", now).unwrap(),
        now - Duration::from_secs(7200)
    );
    assert_eq!(
        parse_time("-1h 30m", now).unwrap(),
        now - Duration::from_secs(5400)
    );
    assert_eq!(
        parse_time("2026-12-01T14:00:00Z", now).unwrap(),
        UNIX_EPOCH + Duration::from_secs(1_796_133_600)
    );
    let e = parse_time("yesterday", now).unwrap_err().to_string();
    assert!(e.contains("expected RFC 3339"), "{e}");
    let e = parse_time("-2 fortnights", now).unwrap_err().to_string();
    assert!(e.contains("expected a duration"), "{e}");
}
