//! The memory-leak knob: a background task that every 100 ms allocates
//! `leak_mb_per_min / 600` MiB, touches every page so the memory is really
//! resident, and keeps it forever, so the process's RSS grows the way a
//! leaking release's would.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{interval, MissedTickBehavior};

use super::server::State;

const TICK: Duration = Duration::from_millis(100);
const TICKS_PER_MINUTE: f64 = 600.0;
const MIB: f64 = 1024.0 * 1024.0;
const PAGE: usize = 4096;

/// Everything leaked so far; never freed.
static LEAKED: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Runs forever, leaking at the rate the knob says at each tick.
pub async fn run(state: Arc<State>) {
    let mut tick = interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let bytes = (state.knobs.leak_mb_per_min() / TICKS_PER_MINUTE * MIB) as usize;
        if bytes == 0 {
            continue;
        }
        let chunk = allocate_touched(bytes);
        LEAKED.lock().unwrap_or_else(|p| p.into_inner()).push(chunk);
        state.stats.add_leaked_bytes(bytes as u64);
    }
}

/// `n` bytes with one byte written in every page, so each page is resident.
fn allocate_touched(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    for b in v.iter_mut().step_by(PAGE) {
        *b = 1;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touches_every_page() {
        let v = allocate_touched(3 * PAGE + 1);
        assert_eq!(v.len(), 3 * PAGE + 1);
        assert_eq!(v.iter().filter(|&&b| b == 1).count(), 4);
    }
}
