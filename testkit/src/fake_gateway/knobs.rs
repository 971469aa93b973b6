//! The fake gateway's behaviour knobs: error rate, latency, memory leak
//! rate, auth-failure rate and health. Read on every request and changed at
//! run time through `POST /__knobs?...`, so they are plain atomics (f64s
//! stored as bits in `AtomicU64`). Parsing and validation of knob values is
//! shared by the command line and the query string.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A plain-value copy of all knobs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnobValues {
    /// Fraction (0..=1) of normal requests answered 500.
    pub error_rate: f64,
    /// Delay added to each normal request.
    pub latency_ms: u64,
    /// Memory leaked per minute, in MiB.
    pub leak_mb_per_min: f64,
    /// Fraction (0..=1) of `/auth...` requests answered 401.
    pub auth_fail_rate: f64,
    /// `/health` answers 200 when true, 503 when false.
    pub healthy: bool,
}

impl Default for KnobValues {
    fn default() -> Self {
        KnobValues {
            error_rate: 0.0,
            latency_ms: 0,
            leak_mb_per_min: 0.0,
            auth_fail_rate: 0.0,
            healthy: true,
        }
    }
}

impl KnobValues {
    /// The JSON answered by `/__knobs`.
    pub fn to_json(&self, name: &str) -> serde_json::Value {
        serde_json::json!({
            "name": name,
            "error_rate": self.error_rate,
            "latency_ms": self.latency_ms,
            "leak_mb_per_min": self.leak_mb_per_min,
            "auth_fail_rate": self.auth_fail_rate,
            "healthy": self.healthy,
        })
    }

    /// Sets the knob `key` from its textual `value`.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "error_rate" => self.error_rate = parse_rate(key, value)?,
            "latency_ms" => self.latency_ms = parse_u64(key, value)?,
            "leak_mb_per_min" => self.leak_mb_per_min = parse_non_negative(key, value)?,
            "auth_fail_rate" => self.auth_fail_rate = parse_rate(key, value)?,
            "healthy" => self.healthy = parse_bool(key, value)?,
            _ => {
                return Err(format!(
                    "unknown knob {key:?} (known: error_rate, latency_ms, leak_mb_per_min, auth_fail_rate, healthy)"
                ))
            }
        }
        Ok(())
    }

    /// These values with `key=value&...` applied; nothing is applied when any
    /// pair is invalid.
    pub fn with_query(mut self, query: &str) -> Result<KnobValues, String> {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("expected key=value, got {pair:?}"))?;
            self.set(key, value)?;
        }
        Ok(self)
    }
}

/// An f64 in an `AtomicU64`.
#[derive(Debug)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn new(v: f64) -> Self {
        AtomicF64(AtomicU64::new(v.to_bits()))
    }
    fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    fn store(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

/// The live knobs, shared by all connections.
#[derive(Debug)]
pub struct Knobs {
    error_rate: AtomicF64,
    latency_ms: AtomicU64,
    leak_mb_per_min: AtomicF64,
    auth_fail_rate: AtomicF64,
    healthy: AtomicBool,
}

impl Knobs {
    pub fn new(v: KnobValues) -> Knobs {
        Knobs {
            error_rate: AtomicF64::new(v.error_rate),
            latency_ms: AtomicU64::new(v.latency_ms),
            leak_mb_per_min: AtomicF64::new(v.leak_mb_per_min),
            auth_fail_rate: AtomicF64::new(v.auth_fail_rate),
            healthy: AtomicBool::new(v.healthy),
        }
    }

    pub fn snapshot(&self) -> KnobValues {
        KnobValues {
            error_rate: self.error_rate.load(),
            latency_ms: self.latency_ms.load(Ordering::Relaxed),
            leak_mb_per_min: self.leak_mb_per_min.load(),
            auth_fail_rate: self.auth_fail_rate.load(),
            healthy: self.healthy.load(Ordering::Relaxed),
        }
    }

    pub fn store(&self, v: KnobValues) {
        self.error_rate.store(v.error_rate);
        self.latency_ms.store(v.latency_ms, Ordering::Relaxed);
        self.leak_mb_per_min.store(v.leak_mb_per_min);
        self.auth_fail_rate.store(v.auth_fail_rate);
        self.healthy.store(v.healthy, Ordering::Relaxed);
    }

    /// Validates and applies `key=value&...`; returns the new values.
    pub fn apply_query(&self, query: &str) -> Result<KnobValues, String> {
        let next = self.snapshot().with_query(query)?;
        self.store(next);
        Ok(next)
    }

    pub fn error_rate(&self) -> f64 {
        self.error_rate.load()
    }
    pub fn latency_ms(&self) -> u64 {
        self.latency_ms.load(Ordering::Relaxed)
    }
    pub fn leak_mb_per_min(&self) -> f64 {
        self.leak_mb_per_min.load()
    }
    pub fn auth_fail_rate(&self) -> f64 {
        self.auth_fail_rate.load()
    }
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// A fraction in 0..=1.
pub fn parse_rate(key: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{key} must be a number in 0..1, got {value:?}")),
    }
}

/// A finite number >= 0.
pub fn parse_non_negative(key: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{key} must be a number >= 0, got {value:?}")),
    }
}

/// A whole number >= 0.
pub fn parse_u64(key: &str, value: &str) -> Result<u64, String> {
    value
        .parse::<u64>()
        .map_err(|_| format!("{key} must be a whole number >= 0, got {value:?}"))
}

/// true/false/1/0.
pub fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{key} must be true or false, got {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_changes_a_subset() {
        let knobs = Knobs::new(KnobValues::default());
        let v = knobs
            .apply_query("error_rate=0.5&latency_ms=20&healthy=false")
            .unwrap();
        assert_eq!(v.error_rate, 0.5);
        assert_eq!(v.latency_ms, 20);
        assert!(!v.healthy);
        assert_eq!(v.auth_fail_rate, 0.0);
        assert_eq!(knobs.snapshot(), v);
        let v = knobs
            .apply_query("leak_mb_per_min=30&auth_fail_rate=0.1")
            .unwrap();
        assert_eq!((v.leak_mb_per_min, v.auth_fail_rate), (30.0, 0.1));
        assert_eq!(v.error_rate, 0.5);
    }

    #[test]
    fn invalid_query_applies_nothing() {
        let knobs = Knobs::new(KnobValues::default());
        for bad in [
            "error_rate=0.5&latency_ms=-1",
            "error_rate=2",
            "error_rate=NaN",
            "leak_mb_per_min=inf",
            "healthy=maybe",
            "bogus=1",
            "error_rate",
        ] {
            assert!(knobs.apply_query(bad).is_err(), "{bad} should be rejected");
        }
        assert_eq!(knobs.snapshot(), KnobValues::default());
    }

    #[test]
    fn json_shape() {
        let j = KnobValues::default().to_json("g");
        assert_eq!(j["name"], "g");
        assert_eq!(j["healthy"], true);
        assert_eq!(j["latency_ms"], 0);
    }
}
