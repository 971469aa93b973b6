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
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{}", render(file, problems))]
    Invalid {
        file: String,
        problems: Vec<Problem>,
    },
}

/// Converts figment's errors (wrong type, unknown key, missing key) into located problems.
pub fn figment_problems(e: figment::Error, src: &str) -> Vec<Problem> {
    e.into_iter()
        .map(|e| {
            let mut key = dotted(&e.path);
            let message = match &e.kind {
                figment::error::Kind::UnknownField(field, expected) => {
                    push_field(&mut key, field);
                    format!("unknown key; expected one of {}", list(expected))
                }
                figment::error::Kind::MissingField(field) => {
                    push_field(&mut key, field);
                    "missing; this key is required".to_string()
                }
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
        })
        .collect()
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
fn push_field(key: &mut String, field: &str) {
    if key.rsplit('.').next() != Some(field) {
        if !key.is_empty() {
            key.push('.');
        }
        key.push_str(field);
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
