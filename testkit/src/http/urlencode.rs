//! Percent-encoding of query-string values (RFC 3986: everything but the
//! unreserved characters is encoded), e.g. for PromQL in `?query=`.

/// Encodes every byte of `s` except `A-Z a-z 0-9 - . _ ~` as `%XX`
/// (upper-case hex), so the result is safe as a query parameter value.
pub fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_pass_through() {
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn reserved_and_spaces_are_encoded() {
        assert_eq!(
            percent_encode(r#"sum(rate(x{code="500"}[1m])) / 2 + 1&a=b"#),
            "sum%28rate%28x%7Bcode%3D%22500%22%7D%5B1m%5D%29%29%20%2F%202%20%2B%201%26a%3Db"
        );
        assert_eq!(percent_encode("%"), "%25");
    }

    #[test]
    fn utf8_is_encoded_bytewise() {
        assert_eq!(percent_encode("é"), "%C3%A9");
    }
}
