//! Unit tests of `secret.rs`.

use std::fs::Permissions;

use super::*;

struct Dir(std::path::PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("canaryd-secret-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn write(&self, name: &str, contents: &[u8], mode: u32) -> std::path::PathBuf {
        let f = self.0.join(name);
        std::fs::write(&f, contents).unwrap();
        std::fs::set_permissions(&f, Permissions::from_mode(mode)).unwrap();
        f
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn reads_and_trims_a_private_file() {
    let dir = Dir::new("ok");
    for mode in [0o600, 0o400, 0o640] {
        let f = dir.write("s", b"  s3cret\n\n", mode);
        assert_eq!(read_secret(&f).unwrap().expose(), b"s3cret");
    }
}

#[test]
fn refuses_files_other_users_can_read() {
    let dir = Dir::new("mode");
    for mode in [0o644, 0o604, 0o602, 0o601] {
        let f = dir.write("s", b"s3cret", mode);
        let err = read_secret(&f).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{0} is readable by other users (mode {mode:o}); run `chmod 600 {0}`",
                f.display()
            )
        );
        assert!(!err.to_string().contains("s3cret"));
    }
}

#[test]
fn refuses_empty_missing_and_huge_files() {
    let dir = Dir::new("empty");
    let f = dir.write("s", b" \n\t", 0o600);
    assert_eq!(
        read_secret(&f).unwrap_err().to_string(),
        format!("{} is empty", f.display())
    );
    let missing = dir.0.join("missing");
    let err = read_secret(&missing).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot read {}: ", missing.display())),
        "{err}"
    );
    let big = vec![b'x'; MAX_SECRET_FILE as usize + 1];
    let f = dir.write("big", &big, 0o600);
    assert!(matches!(read_secret(&f), Err(SecretError::TooLarge { .. })));
    let f = dir.write("max", &big[1..], 0o600);
    assert_eq!(read_secret(&f).unwrap().expose().len(), big.len() - 1);
}

#[test]
fn debug_hides_the_secret() {
    let s = Secret(b"s3cret".to_vec());
    assert_eq!(format!("{s:?}"), "Secret(..)");
}
