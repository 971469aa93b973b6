//! What is wrong with a configuration file, and where: [`Invalid`] (a dotted key and what was
//! expected, as the sections' `validate` finds it), [`Problem`] (the same, located on a line),
//! [`ConfigError`] (a file's problems, rendered one per line as `FILE:LINE: key `K`: …`) and the
//! conversion of figment's parse errors into problems.
//!
//! Kept apart from the sections because both loaders use it: `canaryd.toml` here and the
//! controller's policy files.

use std::fmt;

use crate::location::line_of;

/// A problem found by [`DataPlaneConfig::validate`](crate::DataPlaneConfig::validate) or
/// [`Config`](crate::Config)'s checks: the dotted key and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key `{}`: {}", self.key, self.message)
    }
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

/// Why a file did not load: it cannot be read, or every problem found in it, located.
///
/// Each message is complete on its own: `Read`'s names the OS error, so it has no
/// [`source`](std::error::Error::source) — a chain printer (anyhow's `{:#}`) would say the OS
/// error twice otherwise. The `io::Error` stays in the variant for callers that match on it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {error}")]
    Read { file: String, error: std::io::Error },
    #[error("{}", render(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

/// Reads a configuration or policy file: its name as errors show it, and its text.
pub fn read_source(path: &std::path::Path) -> Result<(String, String), ConfigError> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => Ok((file, src)),
        Err(error) => Err(ConfigError::Read { file, error }),
    }
}

/// Converts figment's errors (wrong type, unknown key, missing key) into located problems.
pub fn figment_problems(e: figment::Error, src: &str) -> Vec<Problem> {
    e.into_iter().map(|e| problem_of(&e, src)).collect()
}

/// One figment error as a located problem: the key it is about (see [`target`]) and what was
/// expected; a value from the environment names its variable.
pub(crate) fn problem_of(e: &figment::Error, src: &str) -> Problem {
    let key = dotted(&target(e));
    let message = match &e.kind {
        figment::error::Kind::UnknownField(_, expected) => {
            format!("unknown key; expected one of {}", list(expected))
        }
        figment::error::Kind::MissingField(_) => "missing; this key is required".to_string(),
        kind => {
            let from_env = e
                .metadata
                .as_ref()
                .is_some_and(|m| m.name.contains("environment"));
            if from_env {
                format!(
                    "{kind} (from environment variable CANARYD_{})",
                    env_name(&key)
                )
            } else {
                kind.to_string()
            }
        }
    };
    Problem {
        line: line_of(src, &key),
        key,
        message,
    }
}

/// The path of the key a figment error is about: its path, with the field appended for an
/// unknown or missing field (figment sometimes already ends the path with it).
pub(crate) fn target(e: &figment::Error) -> Vec<String> {
    let mut path = e.path.clone();
    if let figment::error::Kind::UnknownField(field, _) = &e.kind {
        push_field(&mut path, field);
    } else if let figment::error::Kind::MissingField(field) = &e.kind {
        push_field(&mut path, field);
    }
    path
}

fn render(file: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| match p.line {
            Some(line) => format!("{file}:{line}: key `{}`: {}", p.key, p.message),
            None => format!("{file}: key `{}`: {}", p.key, p.message),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `["rules", "0", "name"]` → `rules[0].name`.
fn dotted(path: &[String]) -> String {
    let mut key = String::new();
    for seg in path {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            key.push('[');
            key.push_str(seg);
            key.push(']');
        } else {
            if !key.is_empty() {
                key.push('.');
            }
            key.push_str(seg);
        }
    }
    key
}

/// figment sometimes already ends the path with the offending field.
fn push_field(path: &mut Vec<String>, field: &str) {
    if path.last().map(String::as_str) != Some(field) {
        path.push(field.to_string());
    }
}

fn list(expected: &[&str]) -> String {
    expected
        .iter()
        .map(|e| format!("`{e}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn env_name(key: &str) -> String {
    key.to_ascii_uppercase().replace('.', "__")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key `{}`: {}", self.key, self.message)
    }
}

#[cfg(test)]
mod tests;
