//! A coarse monotonic clock in milliseconds since process start, cheap enough for the request
//! path and storable in an `AtomicU64` (passive failure windows, health state timestamps).

use std::sync::OnceLock;
use std::time::Instant;

static START: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first call in this process. Never zero after the first call, so 0 can
/// mean "never".
pub fn now_ms() -> u64 {
    let start = *START.get_or_init(Instant::now);
    start.elapsed().as_millis() as u64 + 1
}
