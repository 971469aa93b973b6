//! Request ids: generated ones are random hex, a client's usable id is kept.

use http::HeaderMap;

use super::*;

#[test]
fn generated_ids_are_hex_and_differ() {
    let a = RequestId::generate();
    let b = RequestId::generate();
    assert_eq!(a.as_bytes().len(), 32);
    assert!(a.as_bytes().iter().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(a.as_bytes(), b.as_bytes());
    assert!(a.to_forward().is_some());
}

#[test]
fn a_client_id_is_kept_unless_unusable() {
    let mut h = HeaderMap::new();
    h.insert(X_REQUEST_ID, HeaderValue::from_static("abc-1"));
    let id = RequestId::of(&h);
    assert_eq!(id.as_bytes(), b"abc-1");
    assert!(id.to_forward().is_none());
    h.insert(
        X_REQUEST_ID,
        HeaderValue::from_str(&"x".repeat(200)).unwrap(),
    );
    assert_eq!(RequestId::of(&h).as_bytes().len(), 32);
    h.insert(X_REQUEST_ID, HeaderValue::from_static(""));
    assert_eq!(RequestId::of(&h).as_bytes().len(), 32);
}
