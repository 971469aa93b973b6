//! The fake gateway's counters and their Prometheus text exposition
//! (`GET /metrics`): responses by status code, auth failures, leaked bytes,
//! plus real process RSS and CPU time.
//!
//! `gateway_requests_total` counts traffic only: responses of the control
//! endpoints (`/health`, `/metrics`, `/__knobs`) are not counted, so health
//! checks and scrapes do not dilute error ratios computed from it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::procfs;

/// Counters shared by all connections.
#[derive(Debug, Default)]
pub struct Stats {
    by_code: Mutex<BTreeMap<u16, u64>>,
    auth_failures: AtomicU64,
    leaked_bytes: AtomicU64,
}

impl Stats {
    /// Counts one response sent with `code`.
    pub fn count_response(&self, code: u16) {
        let mut by_code = self.by_code.lock().unwrap_or_else(|p| p.into_inner());
        *by_code.entry(code).or_insert(0) += 1;
    }

    pub fn count_auth_failure(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn add_leaked_bytes(&self, n: u64) {
        self.leaked_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Prometheus text format (version 0.0.4).
    pub fn render(&self, name: &str) -> String {
        let by_code = self
            .by_code
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP gateway_info The fake gateway's name.");
        let _ = writeln!(out, "# TYPE gateway_info gauge");
        let _ = writeln!(out, "gateway_info{{name=\"{}\"}} 1", escape_label(name));
        let _ = writeln!(
            out,
            "# HELP gateway_requests_total Responses sent (control endpoints excluded), by status code."
        );
        let _ = writeln!(out, "# TYPE gateway_requests_total counter");
        for (code, n) in &by_code {
            let _ = writeln!(out, "gateway_requests_total{{code=\"{code}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "# HELP gateway_auth_failures_total Requests answered 401 by the auth-failure knob."
        );
        let _ = writeln!(out, "# TYPE gateway_auth_failures_total counter");
        let _ = writeln!(
            out,
            "gateway_auth_failures_total {}",
            self.auth_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP gateway_leaked_bytes Bytes deliberately leaked by the leak knob."
        );
        let _ = writeln!(out, "# TYPE gateway_leaked_bytes gauge");
        let _ = writeln!(
            out,
            "gateway_leaked_bytes {}",
            self.leaked_bytes.load(Ordering::Relaxed)
        );
        if let Some(rss) = procfs::resident_memory_bytes() {
            let _ = writeln!(
                out,
                "# HELP process_resident_memory_bytes Resident memory size in bytes."
            );
            let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
            let _ = writeln!(out, "process_resident_memory_bytes {rss}");
        }
        if let Some(cpu) = procfs::cpu_seconds() {
            let _ = writeln!(
                out,
                "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds."
            );
            let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter");
            let _ = writeln!(out, "process_cpu_seconds_total {cpu}");
        }
        out
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let s = Stats::default();
        s.count_response(200);
        s.count_response(200);
        s.count_response(500);
        s.count_auth_failure();
        s.add_leaked_bytes(4096);
        let text = s.render("canary \"b\"");
        assert!(text.contains("gateway_requests_total{code=\"200\"} 2\n"));
        assert!(text.contains("gateway_requests_total{code=\"500\"} 1\n"));
        assert!(text.contains("gateway_auth_failures_total 1\n"));
        assert!(text.contains("gateway_leaked_bytes 4096\n"));
        assert!(text.contains("gateway_info{name=\"canary \\\"b\\\"\"} 1\n"));
        assert!(text.contains("process_resident_memory_bytes "));
        assert!(text.contains("process_cpu_seconds_total "));
    }
}
