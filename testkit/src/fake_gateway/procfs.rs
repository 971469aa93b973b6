//! This process's real resident memory and CPU time, read from
//! `/proc/self/statm` and `/proc/self/stat`, for the standard
//! `process_resident_memory_bytes` / `process_cpu_seconds_total` metrics that
//! memory- and CPU-based canary rules look at.

use std::fs;

/// Resident set size in bytes.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = fs::read_to_string("/proc/self/statm").ok()?;
    let pages = parse_statm_resident_pages(&statm)?;
    Some(pages.saturating_mul(sysconf(libc::_SC_PAGESIZE)?))
}

/// User + system CPU time in seconds.
pub fn cpu_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = parse_stat_cpu_ticks(&stat)?;
    let per_second = sysconf(libc::_SC_CLK_TCK)?;
    Some(ticks as f64 / per_second as f64)
}

fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(name) };
    u64::try_from(v).ok().filter(|&v| v > 0)
}

/// Second field of statm: resident pages.
fn parse_statm_resident_pages(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime (fields 14 and 15) in clock ticks. The command name (field
/// 2) may contain spaces and parentheses, so fields are counted after the
/// last `)`.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_whitespace();
    // After ")" come field 3 (state) onwards: utime is the 12th, stime the 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_statm() {
        assert_eq!(
            parse_statm_resident_pages("1000 250 30 1 0 400 0\n"),
            Some(250)
        );
        assert_eq!(parse_statm_resident_pages(""), None);
    }

    #[test]
    fn parses_stat_with_odd_command_name() {
        let stat = "1234 (fake gw) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 \
                    17 5 0 0 20 0 2 0 12345 1000000 250 18446744073709551615";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(22));
        assert_eq!(parse_stat_cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_own_process() {
        assert!(resident_memory_bytes().is_some_and(|b| b > 0));
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
    }
}
