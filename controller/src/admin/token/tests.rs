//! Unit tests of `token.rs`.

use std::os::unix::fs::PermissionsExt;

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
    let err = Token::load(&f).unwrap_err();
    assert!(matches!(err, TokenError::WorldReadable { .. }));
    let file = f.display();
    assert_eq!(
        err.to_string(),
        format!("admin.token_file: {file} is readable by other users (mode 644); run `chmod 600 {file}`")
    );
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Token::load(&f).unwrap().authorizes(Some(b"Bearer abc")));
    std::fs::write(&f, "  \n").unwrap();
    let err = Token::load(&f).unwrap_err();
    assert!(matches!(err, TokenError::Empty { .. }));
    assert_eq!(
        err.to_string(),
        format!("admin.token_file: {file} is empty; put a long random token in it (e.g. `openssl rand -hex 32 > {file}`)")
    );
    let missing = dir.join("missing.token");
    let err = Token::load(&missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "admin.token_file: cannot read {}: ",
            missing.display()
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let public: SocketAddr = "0.0.0.0:9180".parse().unwrap();
    assert!(check_exposure(public, None).is_err());
    assert!(check_exposure("127.0.0.1:9180".parse().unwrap(), None).is_ok());
}
