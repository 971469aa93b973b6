//! Unit tests of `token.rs`.

use super::*;

#[test]
fn compares_bearer_tokens() {
    let t = Token(b"s3cret".to_vec());
    assert!(t.authorizes(Some(b"Bearer s3cret")));
    assert!(t.authorizes(Some(b"Bearer s3cret ")));
    assert!(!t.authorizes(Some(b"Bearer s3cre")));
    assert!(!t.authorizes(Some(b"Bearer s3cret2")));
    assert!(!t.authorizes(Some(b"Basic s3cret")));
    assert!(!t.authorizes(None));
}

#[test]
fn file_rules() {
    let dir = std::env::temp_dir().join(format!("canaryd-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("admin.token");
    std::fs::write(&f, "abc\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        Token::load(&f),
        Err(TokenError::WorldReadable { .. })
    ));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Token::load(&f).unwrap().authorizes(Some(b"Bearer abc")));
    std::fs::write(&f, "  \n").unwrap();
    assert!(matches!(Token::load(&f), Err(TokenError::Empty { .. })));
    std::fs::remove_dir_all(&dir).unwrap();
    let public: SocketAddr = "0.0.0.0:9180".parse().unwrap();
    assert!(check_exposure(public, None).is_err());
    assert!(check_exposure("127.0.0.1:9180".parse().unwrap(), None).is_ok());
}
