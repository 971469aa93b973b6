//! `[proxy.access_log]`: where canaryd writes one line per request, and in which format.
//!
//! A section of its own (in its own file) because it is the only part of `[proxy]` that names
//! a file on disk; absent, no access log is written and nothing of it runs.

use serde::Deserialize;

use crate::problem::Invalid;

/// `[proxy.access_log]`: `path = "/var/log/canaryd/access.log"` (or `"stdout"`),
/// `format = "combined" | "json"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// An absolute file path (appended to, created if missing, reopened on SIGUSR1), or
    /// `"stdout"`.
    pub path: String,
    #[serde(default)]
    pub format: AccessLogFormat,
}

/// The line format of the access log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// nginx's predefined `combined` format, byte for byte.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
}

/// The path that means "write to standard output".
pub const STDOUT: &str = "stdout";

// === impl AccessLogConfig ===

impl AccessLogConfig {
    /// Whether the log goes to standard output rather than a file.
    pub fn is_stdout(&self) -> bool {
        self.path == STDOUT
    }

    /// Checks what serde cannot: the path is `"stdout"` or absolute.
    pub fn validate(&self, out: &mut Vec<Invalid>) {
        if !self.is_stdout() && !self.path.starts_with('/') {
            out.push(Invalid {
                key: "proxy.access_log.path".into(),
                message: format!(
                    "expected an absolute file path like \"/var/log/canaryd/access.log\" or \"stdout\", found {:?}",
                    self.path
                ),
            });
        }
    }
}
