//! Secrets read from files: the admin token (`[admin] token_file`) and the Prometheus
//! credentials (`[prometheus] bearer_token_file`, `basic_auth.password_file`).
//!
//! One rule for all of them, in one place: the file must not be readable (or writable) by
//! other users, must hold something once surrounding whitespace is trimmed, and is at most
//! 64 KiB (a secret, not a log file). The contents are [`Secret`], whose `Debug` never shows
//! them; errors name the file, never what is in it. Callers prefix the config key.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Largest secrets file read.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// A secret's bytes, whitespace trimmed. `Debug` prints `Secret(..)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// The bytes, for a comparison or an HTTP header: never for a message.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, moved out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why a secrets file was refused. Messages name the file only; callers prefix the key
/// (`prometheus.bearer_token_file: …`).
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file} is readable by other users (mode {mode:o}); run `chmod 600 {file}`")]
    WorldReadable { file: String, mode: u32 },
    #[error("{file} is empty")]
    Empty { file: String },
    #[error("{file} is larger than {} KiB; is it the right file?", MAX_SECRET_FILE / 1024)]
    TooLarge { file: String },
}

/// Reads the secret in `path`: refused when other users may read it (any of the mode's
/// `o` bits), when it is empty after trimming ASCII whitespace, or larger than
/// [`MAX_SECRET_FILE`]. The permissions checked are those of the file opened (symlinks
/// followed), so the file cannot be swapped between the check and the read.
pub fn read_secret(path: &Path) -> Result<Secret, SecretError> {
    let file = path.display().to_string();
    let read_error = |source| SecretError::Read {
        file: file.clone(),
        source,
    };
    let handle = File::open(path).map_err(read_error)?;
    let mode = handle.metadata().map_err(read_error)?.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(SecretError::WorldReadable { file, mode });
    }
    let mut raw = Vec::new();
    handle
        .take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut raw)
        .map_err(read_error)?;
    if raw.len() as u64 > MAX_SECRET_FILE {
        return Err(SecretError::TooLarge { file });
    }
    let secret = raw.trim_ascii().to_vec();
    if secret.is_empty() {
        return Err(SecretError::Empty { file });
    }
    Ok(Secret(secret))
}

#[cfg(test)]
mod tests;
