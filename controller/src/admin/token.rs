//! The admin bearer token: read from `[admin] token_file`, which must not be readable by
//! other users, and compared in constant time. An admin listener reachable from other machines
//! without a token is refused at start-up.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
    #[error("admin.listen: {listen} is reachable from other machines but no [admin] token_file is set; set one, or listen on 127.0.0.1")]
    Exposed { listen: SocketAddr },
}

impl Token {
    pub fn load(path: &Path) -> Result<Self, TokenError> {
        let file = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|source| TokenError::Read {
            file: file.clone(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o007 != 0 {
            return Err(TokenError::WorldReadable { file, mode });
        }
        let raw = std::fs::read(path).map_err(|source| TokenError::Read {
            file: file.clone(),
            source,
        })?;
        let token = raw.trim_ascii().to_vec();
        if token.is_empty() {
            return Err(TokenError::Empty { file });
        }
        Ok(Self(token))
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
