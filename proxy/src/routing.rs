//! The routing decision: which variant (stable or canary) serves a request.
//!
//! Order, per DESIGN: header override (optionally only from `trusted_cidrs`), then the sticky
//! bucket, then weighted random. The split lives in an immutable [`RoutingTable`] behind an
//! `ArcSwap`; the controller replaces it whole through a [`RoutingHandle`], so a request sees the
//! old split or the new one, never a mix. Deciding allocates nothing.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use canaryd_config::{RoutingConfig, StickyKey};
use http::HeaderName;
use ipnet::IpNet;

use crate::head::{find_value, Headers};
use crate::sticky::{self, BUCKETS};

/// The two backend pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    Stable = 0,
    Canary = 1,
}

/// Why a request went where it went (for debug logs and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Header,
    Sticky,
    Random,
}

/// Outcome of [`Router::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub variant: Variant,
    pub reason: Reason,
    /// A bucket freshly assigned to a cookie-less client: the response must set the cookie.
    pub new_cookie: Option<u16>,
    /// The share of stable's idempotent requests mirrored to the canary, from the same table
    /// (basis points; `request/shadow.rs`).
    pub shadow_bp: u16,
}

/// The split in force: canary share in basis points (0..=10 000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingTable {
    pub weight_bp: u16,
    /// Share of the idempotent, bodiless requests served by stable that are also sent to the
    /// canary as shadow traffic (`request/shadow.rs`), in basis points.
    pub shadow_bp: u16,
    /// Bumped on every swap; lets tests and logs tell tables apart.
    pub generation: u64,
}

/// Shared, swappable routing table. Clones share the same table.
#[derive(Debug, Clone)]
pub struct RoutingHandle {
    table: Arc<ArcSwap<RoutingTable>>,
}

/// Compiled `[routing]` rules.
#[derive(Debug)]
pub struct Router {
    header: Option<HeaderName>,
    canary_values: Vec<Box<[u8]>>,
    stable_values: Vec<Box<[u8]>>,
    trusted: Vec<IpNet>,
    strip_header: bool,
    sticky: Option<Sticky>,
}

#[derive(Debug)]
struct Sticky {
    key: CompiledKey,
    cookie: Box<[u8]>,
}

#[derive(Debug)]
enum CompiledKey {
    Cookie,
    Header(HeaderName),
    Ip,
}

// === impl Variant ===

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Stable, Variant::Canary];

    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Stable => "stable",
            Variant::Canary => "canary",
        }
    }

    pub fn other(self) -> Variant {
        match self {
            Variant::Stable => Variant::Canary,
            Variant::Canary => Variant::Stable,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

// === impl RoutingHandle ===

impl RoutingHandle {
    pub fn new(weight_bp: u16) -> Self {
        Self {
            table: Arc::new(ArcSwap::from_pointee(RoutingTable {
                weight_bp: weight_bp.min(BUCKETS),
                shadow_bp: 0,
                generation: 0,
            })),
        }
    }

    /// Converts a percentage (0..=100, fractions allowed) to basis points.
    pub fn percent_to_bp(percent: f64) -> u16 {
        (percent.clamp(0.0, 100.0) * 100.0).round() as u16
    }

    /// The table in force now.
    pub fn load(&self) -> arc_swap::Guard<Arc<RoutingTable>> {
        self.table.load()
    }

    pub fn weight_bp(&self) -> u16 {
        self.table.load().weight_bp
    }

    pub fn shadow_bp(&self) -> u16 {
        self.table.load().shadow_bp
    }

    /// Replaces the split in one atomic swap, with no shadow traffic (a rollback, a pause, a
    /// manual weight: shadowing is only ever turned on by a step). Returns the new table.
    pub fn set_weight_bp(&self, weight_bp: u16) -> RoutingTable {
        self.set_split(weight_bp, 0)
    }

    /// Replaces the split and the shadow share in one atomic swap. Returns the new table.
    pub fn set_split(&self, weight_bp: u16, shadow_bp: u16) -> RoutingTable {
        let mut new = RoutingTable {
            weight_bp: weight_bp.min(BUCKETS),
            shadow_bp: shadow_bp.min(BUCKETS),
            generation: 0,
        };
        self.table.rcu(|old| {
            new.generation = old.generation + 1;
            new
        });
        new
    }
}

// === impl Router ===

impl Router {
    pub fn new(cfg: &RoutingConfig) -> Self {
        let lower = |vs: &[String]| {
            vs.iter()
                .map(|v| v.to_ascii_lowercase().into_bytes().into_boxed_slice())
                .collect()
        };
        Self {
            header: cfg
                .header
                .as_deref()
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
            canary_values: lower(&cfg.canary_values),
            stable_values: lower(&cfg.stable_values),
            trusted: cfg.trusted_cidrs.clone(),
            strip_header: cfg.strip_header,
            sticky: cfg.sticky.as_ref().and_then(|s| {
                let key = match &s.key {
                    StickyKey::Cookie => CompiledKey::Cookie,
                    StickyKey::Ip => CompiledKey::Ip,
                    StickyKey::Header(h) => {
                        CompiledKey::Header(HeaderName::from_bytes(h.as_bytes()).ok()?)
                    }
                };
                Some(Sticky {
                    key,
                    cookie: s.cookie.clone().into_bytes().into_boxed_slice(),
                })
            }),
        }
    }

    /// The override header to remove before forwarding, if `strip_header` is on.
    pub fn header_to_strip(&self) -> Option<&HeaderName> {
        self.header.as_ref().filter(|_| self.strip_header)
    }

    /// Name of the sticky cookie, when stickiness is by cookie.
    pub fn sticky_cookie(&self) -> Option<&[u8]> {
        match &self.sticky {
            Some(Sticky {
                key: CompiledKey::Cookie,
                cookie,
            }) => Some(cookie),
            _ => None,
        }
    }

    /// Decides the variant for one request.
    pub fn decide(
        &self,
        table: &RoutingTable,
        headers: &dyn Headers,
        client_ip: Option<IpAddr>,
    ) -> Decision {
        if let Some(variant) = self.header_override(headers, client_ip) {
            return Decision {
                variant,
                reason: Reason::Header,
                new_cookie: None,
                shadow_bp: table.shadow_bp,
            };
        }
        let by_bucket = |bucket: u16| {
            if bucket < table.weight_bp {
                Variant::Canary
            } else {
                Variant::Stable
            }
        };
        if let Some(sticky) = &self.sticky {
            let (bucket, new_cookie) = match &sticky.key {
                CompiledKey::Cookie => match cookie_bucket(headers, &sticky.cookie) {
                    Some(b) => (Some(b), None),
                    None => {
                        let b = sticky::random_bucket();
                        (Some(b), Some(b))
                    }
                },
                CompiledKey::Header(h) => (headers.get(h).map(sticky::bucket_of), None),
                CompiledKey::Ip => (client_ip.map(sticky::bucket_of_ip), None),
            };
            if let Some(bucket) = bucket {
                return Decision {
                    variant: by_bucket(bucket),
                    reason: Reason::Sticky,
                    new_cookie,
                    shadow_bp: table.shadow_bp,
                };
            }
        }
        Decision {
            variant: by_bucket(sticky::random_bucket()),
            reason: Reason::Random,
            new_cookie: None,
            shadow_bp: table.shadow_bp,
        }
    }

    fn header_override(&self, headers: &dyn Headers, client_ip: Option<IpAddr>) -> Option<Variant> {
        let value = headers.get(self.header.as_ref()?)?;
        if !self.trusted.is_empty() {
            let ip = client_ip?;
            let ip = match ip {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
                v4 => v4,
            };
            if !self.trusted.iter().any(|net| net.contains(&ip)) {
                return None;
            }
        }
        let value = trim(value);
        if self
            .canary_values
            .iter()
            .any(|v| v.eq_ignore_ascii_case(value))
        {
            Some(Variant::Canary)
        } else if self
            .stable_values
            .iter()
            .any(|v| v.eq_ignore_ascii_case(value))
        {
            Some(Variant::Stable)
        } else {
            None
        }
    }
}

fn cookie_bucket(headers: &dyn Headers, name: &[u8]) -> Option<u16> {
    find_value(headers, &http::header::COOKIE, |v| {
        sticky::bucket_from_cookie(v, name)
    })
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use canaryd_config::StickyConfig;
    use http::HeaderMap;
    use std::time::Duration;

    fn router(cfg: RoutingConfig) -> Router {
        Router::new(&cfg)
    }

    fn with_header() -> RoutingConfig {
        RoutingConfig {
            header: Some("X-Gateway-Version".into()),
            canary_values: vec!["cpp".into(), "canary".into()],
            stable_values: vec!["python".into()],
            ..RoutingConfig::default()
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn table(bp: u16) -> RoutingTable {
        RoutingTable {
            weight_bp: bp,
            shadow_bp: 0,
            generation: 0,
        }
    }

    #[test]
    fn zero_and_full_are_exact() {
        let r = router(RoutingConfig::default());
        let none = HeaderMap::new();
        for _ in 0..20_000 {
            assert_eq!(r.decide(&table(0), &none, None).variant, Variant::Stable);
            assert_eq!(
                r.decide(&table(10_000), &none, None).variant,
                Variant::Canary
            );
        }
    }

    #[test]
    fn header_override_both_ways_case_insensitive() {
        let r = router(with_header());
        let d = r.decide(&table(0), &headers(&[("x-gateway-version", "CPP")]), None);
        assert_eq!((d.variant, d.reason), (Variant::Canary, Reason::Header));
        let d = r.decide(
            &table(10_000),
            &headers(&[("X-Gateway-Version", "python")]),
            None,
        );
        assert_eq!((d.variant, d.reason), (Variant::Stable, Reason::Header));
        let d = r.decide(&table(0), &headers(&[("X-Gateway-Version", "rust")]), None);
        assert_eq!(d.reason, Reason::Random);
    }

    #[test]
    fn untrusted_clients_cannot_override() {
        let mut cfg = with_header();
        cfg.trusted_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
        let r = router(cfg);
        let h = headers(&[("X-Gateway-Version", "cpp")]);
        let inside = Some("10.1.2.3".parse().unwrap());
        let outside = Some("192.0.2.1".parse().unwrap());
        let mapped = Some("::ffff:10.9.9.9".parse().unwrap());
        assert_eq!(r.decide(&table(0), &h, inside).variant, Variant::Canary);
        assert_eq!(r.decide(&table(0), &h, mapped).variant, Variant::Canary);
        assert_eq!(r.decide(&table(0), &h, outside).variant, Variant::Stable);
        assert_eq!(r.decide(&table(0), &h, None).variant, Variant::Stable);
    }

    #[test]
    fn sticky_cookie_is_monotonic_and_zero_means_nobody() {
        let r = router(RoutingConfig {
            sticky: Some(StickyConfig {
                key: StickyKey::Cookie,
                cookie: "canaryd_bucket".into(),
                max_age: Duration::from_secs(60),
            }),
            ..RoutingConfig::default()
        });
        let fresh = r.decide(&table(500), &HeaderMap::new(), None);
        assert_eq!(fresh.reason, Reason::Sticky);
        assert!(fresh.new_cookie.is_some());
        for bucket in (0..10_000u16).step_by(7) {
            let h = headers(&[("cookie", &format!("canaryd_bucket={bucket}"))]);
            let mut was_canary = false;
            for bp in [500, 2_500, 5_000, 10_000] {
                let d = r.decide(&table(bp), &h, None);
                assert!(d.new_cookie.is_none());
                let canary = d.variant == Variant::Canary;
                assert!(!was_canary || canary, "bucket {bucket} moved back at {bp}");
                was_canary = canary;
            }
            assert_eq!(r.decide(&table(0), &h, None).variant, Variant::Stable);
        }
    }

    #[test]
    fn handle_swaps_whole_tables() {
        let h = RoutingHandle::new(RoutingHandle::percent_to_bp(5.0));
        assert_eq!(h.weight_bp(), 500);
        let t = h.set_weight_bp(2_500);
        assert_eq!(t.generation, 1);
        assert_eq!(*h.load().as_ref(), t);
        assert_eq!(RoutingHandle::percent_to_bp(150.0), 10_000);
        assert_eq!(RoutingHandle::percent_to_bp(0.05), 5);
    }

    #[test]
    fn only_set_split_turns_shadow_on_and_any_weight_change_turns_it_off() {
        let h = RoutingHandle::new(0);
        let t = h.set_split(0, 5_000);
        assert_eq!((t.weight_bp, t.shadow_bp, h.shadow_bp()), (0, 5_000, 5_000));
        assert_eq!(h.set_split(0, 20_000).shadow_bp, BUCKETS);
        // A rollback or a manual weight is a plain weight: shadow traffic stops.
        assert_eq!(h.set_weight_bp(0).shadow_bp, 0);
        assert_eq!(h.shadow_bp(), 0);
    }
}
