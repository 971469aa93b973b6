//! nginx value syntax canaryd needs: times (`30s`, `1m30s`, `500ms`, a bare number of
//! seconds), server addresses (`host[:port]`, `[v6][:port]`) and the `$http_x_name` header
//! variables; and the canaryd spelling of durations.

/// Milliseconds.
pub type Ms = u64;

/// An nginx time (`ngx_parse_time`): one or more `<number><unit>` with units `ms`, `s`, `m`,
/// `h`, `d`, `w`, `M` (30 days), `y` (365 days); a bare number is seconds.
pub fn parse_time(s: &str) -> Option<Ms> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut i = 0;
    let mut total: u64 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return None;
        }
        let n: u64 = s[start..i].parse().ok()?;
        let unit: u64 = match &b[i..] {
            [] => 1000,
            [b'm', b's', ..] => {
                i += 1;
                1
            }
            [b's', ..] => 1000,
            [b'm', ..] => 60_000,
            [b'h', ..] => 3_600_000,
            [b'd', ..] => 86_400_000,
            [b'w', ..] => 7 * 86_400_000,
            [b'M', ..] => 30 * 86_400_000,
            [b'y', ..] => 365 * 86_400_000,
            _ => return None,
        };
        if i < b.len() {
            i += 1;
        }
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    Some(total)
}

/// A canaryd duration string: `"30s"`, `"3600s"`, `"250ms"`.
pub fn duration(ms: Ms) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `host[:port]` with nginx's default port 80 made explicit; `None` for what canaryd cannot
/// connect to (unix sockets, empty or malformed addresses).
pub fn server_addr(s: &str) -> Option<String> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        host.parse::<std::net::Ipv6Addr>().ok()?;
        return match after {
            "" => Some(format!("[{host}]:80")),
            p => p
                .strip_prefix(':')
                .filter(|p| p.parse::<u16>().is_ok())
                .map(|p| format!("[{host}]:{p}")),
        };
    }
    let (host, port) = s.rsplit_once(':').unwrap_or((s, "80"));
    if !valid_host(host) || port.parse::<u16>().is_err() {
        return None;
    }
    Some(format!("{host}:{port}"))
}

/// An IPv4 address, or a DNS name (letters, digits, `-`, `_`, dots between labels).
fn valid_host(host: &str) -> bool {
    if host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return host.parse::<std::net::Ipv4Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The header a `$http_x_gateway_version` variable reads: `X-Gateway-Version`.
pub fn header_of_variable(var: &str) -> Option<String> {
    let name = var.strip_prefix("$http_")?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    Some(
        name.split('_')
            .map(|part| {
                let mut c = part.chars();
                match c.next() {
                    Some(f) => {
                        f.to_ascii_uppercase().to_string() + &c.as_str().to_ascii_lowercase()
                    }
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("-"),
    )
}

#[cfg(test)]
mod tests;
