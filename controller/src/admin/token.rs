//! The admin bearer token: read from `[admin] token_file`, which must not be readable by
//! other users (the rules of every secrets file, `secret.rs`), and compared in constant time.
//! An admin listener reachable from other machines without a token is refused at start-up.

use std::net::SocketAddr;
use std::path::Path;

use crate::secret::{read_secret, SecretError, MAX_SECRET_FILE};

/// A loaded token.
#[derive(Clone)]
pub struct Token(Vec<u8>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("admin.token_file: cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("admin.token_file: {file} is readable by other users (mode {mode:o}); run `chmod 600 {file}`")]
    WorldReadable { file: String, mode: u32 },
    #[error("admin.token_file: {file} is empty; put a long random token in it (e.g. `openssl rand -hex 32 > {file}`)")]
    Empty { file: String },
    #[error("admin.token_file: {file} is larger than {} KiB; is it the right file?", MAX_SECRET_FILE / 1024)]
    TooLarge { file: String },
    #[error("admin.listen: {listen} is reachable from other machines but no [admin] token_file is set; set one, or listen on 127.0.0.1")]
    Exposed { listen: SocketAddr },
}

impl Token {
    /// Reads `[admin] token_file` with the rules every secrets file follows (`secret.rs`).
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        match read_secret(path) {
            Ok(secret) => Ok(Self(secret.into_bytes())),
            Err(SecretError::Read { file, source }) => Err(TokenError::Read { file, source }),
            Err(SecretError::WorldReadable { file, mode }) => {
                Err(TokenError::WorldReadable { file, mode })
            }
            Err(SecretError::Empty { file }) => Err(TokenError::Empty { file }),
            Err(SecretError::TooLarge { file }) => Err(TokenError::TooLarge { file }),
        }
    }

    /// Does an `Authorization` header value carry this token? Constant time in the token.
    pub fn authorizes(&self, header: Option<&[u8]>) -> bool {
        let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        let given = given.trim_ascii();
        let mut diff = u8::from(given.len() != self.0.len());
        for (i, b) in self.0.iter().enumerate() {
            diff |= b ^ given.get(i).copied().unwrap_or(0);
        }
        diff == 0
    }
}

/// Refuses a non-loopback admin listener without a token.
pub fn check_exposure(listen: SocketAddr, token: Option<&Token>) -> Result<(), TokenError> {
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(TokenError::Exposed { listen });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
