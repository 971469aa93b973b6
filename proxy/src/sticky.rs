//! Sticky buckets: every client maps to a bucket in `0..10_000` from a hash of its key.
//!
//! A client is on the canary iff `bucket < weight_bp`, so raising the weight only ever moves
//! clients stable → canary (monotonic), and weight 0 puts nobody on the canary whatever their
//! bucket. The hash is fixed (FNV-1a + a 64-bit finaliser), so buckets are the same across
//! restarts and across every canaryd of a fleet.

/// Number of buckets; weights are expressed in the same unit (basis points).
pub const BUCKETS: u16 = 10_000;

/// Bucket of an arbitrary key (header value, client IP bytes).
pub fn bucket_of(key: &[u8]) -> u16 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finaliser: FNV alone clusters short keys.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    (h % u64::from(BUCKETS)) as u16
}

/// Bucket of a client IP address.
pub fn bucket_of_ip(ip: std::net::IpAddr) -> u16 {
    match ip {
        std::net::IpAddr::V4(v4) => bucket_of(&v4.octets()),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => bucket_of(&v4.octets()),
            None => bucket_of(&v6.octets()),
        },
    }
}

/// A fresh random bucket for a client that has none yet.
pub fn random_bucket() -> u16 {
    fastrand::u16(0..BUCKETS)
}

/// Finds cookie `name` in one `Cookie` header value and parses it as a bucket.
/// Returns `None` when absent or not a number below [`BUCKETS`] (the client is then treated as
/// new and given a fresh bucket).
pub fn bucket_from_cookie(header: &[u8], name: &[u8]) -> Option<u16> {
    for pair in header.split(|&b| b == b';') {
        let pair = trim(pair);
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            continue;
        };
        if &pair[..eq] != name {
            continue;
        }
        return parse_bucket(trim(&pair[eq + 1..]));
    }
    None
}

fn parse_bucket(v: &[u8]) -> Option<u16> {
    if v.is_empty() || v.len() > 5 {
        return None;
    }
    let mut n: u32 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(b - b'0');
    }
    (n < u32::from(BUCKETS)).then_some(n as u16)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket_of(b"user-42"), bucket_of(b"user-42"));
        let mut counts = [0u32; 10];
        for i in 0..100_000u32 {
            counts[usize::from(bucket_of(format!("client-{i}").as_bytes()) / 1000)] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn cookie_parsing() {
        assert_eq!(
            bucket_from_cookie(b"a=1; canaryd_bucket=42", b"canaryd_bucket"),
            Some(42)
        );
        assert_eq!(
            bucket_from_cookie(b"canaryd_bucket= 9999 ", b"canaryd_bucket"),
            Some(9999)
        );
        assert_eq!(
            bucket_from_cookie(b"canaryd_bucket=10000", b"canaryd_bucket"),
            None
        );
        assert_eq!(
            bucket_from_cookie(b"canaryd_bucket=-1", b"canaryd_bucket"),
            None
        );
        assert_eq!(
            bucket_from_cookie(b"xcanaryd_bucket=1", b"canaryd_bucket"),
            None
        );
        assert_eq!(bucket_from_cookie(b"garbage;;=;", b"canaryd_bucket"), None);
    }

    #[test]
    fn mapped_v6_equals_v4() {
        let v4: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let v6: std::net::IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(bucket_of_ip(v4), bucket_of_ip(v6));
    }
}
