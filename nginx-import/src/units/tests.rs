use super::*;

#[test]
fn nginx_times() {
    assert_eq!(parse_time("30s"), Some(30_000));
    assert_eq!(parse_time("30"), Some(30_000));
    assert_eq!(parse_time("3600s"), Some(3_600_000));
    assert_eq!(parse_time("500ms"), Some(500));
    assert_eq!(parse_time("1m30s"), Some(90_000));
    assert_eq!(parse_time("1h"), Some(3_600_000));
    assert_eq!(parse_time("2d"), Some(172_800_000));
    assert_eq!(parse_time(""), None);
    assert_eq!(parse_time("soon"), None);
    assert_eq!(parse_time("5x"), None);
    assert_eq!(parse_time("99999999999999999999y"), None);
    assert_eq!(duration(3_600_000), "3600s");
    assert_eq!(duration(250), "250ms");
}

#[test]
fn addresses() {
    assert_eq!(
        server_addr("127.0.0.1:8080").as_deref(),
        Some("127.0.0.1:8080")
    );
    assert_eq!(server_addr("backend").as_deref(), Some("backend:80"));
    assert_eq!(server_addr("[::1]").as_deref(), Some("[::1]:80"));
    assert_eq!(server_addr("[::1]:81").as_deref(), Some("[::1]:81"));
    assert_eq!(server_addr("unix:/run/gw.sock"), None);
    assert_eq!(server_addr("h:port"), None);
    assert_eq!(server_addr("::1"), None);
    assert_eq!(server_addr("[nope]:80"), None);
    assert_eq!(server_addr("127..0.1:80"), None);
    assert_eq!(server_addr("1\"7.0.0.1:80"), None);
    assert_eq!(server_addr("c*pp_gateway"), None);
    assert_eq!(
        server_addr("gw-1.internal:8080").as_deref(),
        Some("gw-1.internal:8080")
    );
}

#[test]
fn header_names() {
    assert_eq!(
        header_of_variable("$http_x_gateway_version").as_deref(),
        Some("X-Gateway-Version")
    );
    assert_eq!(header_of_variable("$cookie_x"), None);
    assert_eq!(header_of_variable("$http_x/"), None);
}
