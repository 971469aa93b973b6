//! `canaryd import-nginx`: an nginx front (an `upstream` with a weighted canary server, or two
//! upstreams chosen by a `map` on a request header, and the `server` block proxying to them)
//! translated into an equivalent `canaryd.toml`.
//!
//! A crate of its own because it is an offline tool: it checks its output with the
//! configuration loader (`canaryd-config`) and depends on nothing of the daemon.
//!
//! # Layout
//!
//! - `parser`: nginx syntax → directive tree with file and line numbers.
//! - `source`: the file and its `include`s.
//! - `translate`: the tree → a `Plan` (settings with their nginx origin); one file per part of
//!   the front (upstreams, server blocks, the map, the resolved plan).
//! - `catalog`: what canaryd says about directives that are not settings.
//! - `units`: nginx times, addresses and header variables.
//! - `render`: the plan as commented TOML.
//! - this file: the entry points, the self-check of the output and the order of findings.
//!
//! Nothing is dropped silently: every directive is a setting, something canaryd does without
//! one (listed in the output's header), or untranslated (listed in the output and returned in
//! [`Imported::untranslated`] for the caller to print).

mod catalog;
mod parser;
mod render;
mod source;
mod translate;
mod units;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use canaryd_config::{Config, ConfigError};

pub use parser::SyntaxError;

use parser::Directive;

/// Choices the nginx file cannot make.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Addresses of the canary servers (`--canary`), needed when an upstream has more than two
    /// servers or two of equal weight.
    pub canary: Vec<String>,
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The `canaryd.toml` text.
    pub toml: String,
    /// Directives canaryd cannot implement, in file order (also comments in `toml`).
    pub untranslated: Vec<Finding>,
    /// Behaviour that differs from nginx without a directive to point at (also in `toml`).
    pub notes: Vec<String>,
}

/// A directive and what canaryd makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub file: String,
    pub line: usize,
    /// The directive as written (without its block).
    pub directive: String,
    pub reason: String,
}

/// Why there is no translation.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// A directive canaryd needs is malformed or inconsistent.
    #[error("{at}: {message}")]
    Invalid { at: String, message: String },
    #[error("{file}: nothing to translate: {why}")]
    Nothing { file: String, why: String },
    #[error(
        "{at}: cannot tell which servers of upstream `{upstream}` are the canary: {why}. \
         Pass --canary ADDR (repeatable) naming the canary server(s)"
    )]
    NeedCanary {
        at: String,
        upstream: String,
        why: String,
    },
    #[error("--canary {addr}: no such server in upstream {upstreams}; its servers are {servers}")]
    UnknownCanary {
        addr: String,
        upstreams: String,
        servers: String,
    },
    #[error("--canary names every server ({servers}); at least one must stay on stable")]
    NoStable { servers: String },
    /// The translation does not load as a `canaryd.toml` (an importer bug).
    #[error("{file}: the translation is not a valid canaryd.toml ({why}); please report this with the nginx file")]
    Untranslatable { file: String, why: String },
}

/// Imports the nginx file at `path` (and its includes).
pub fn import_file(path: &Path, opts: &Options) -> Result<Imported, ImportError> {
    let loaded = source::load(path)?;
    finish(&path.display().to_string(), loaded, opts)
}

/// Imports nginx text named `name`; relative includes resolve against `conf_dir`.
pub fn import_source(
    name: &str,
    src: &str,
    conf_dir: &Path,
    opts: &Options,
) -> Result<Imported, ImportError> {
    let loaded = source::from_source(name, src, conf_dir)?;
    finish(name, loaded, opts)
}

fn finish(name: &str, loaded: source::Loaded, opts: &Options) -> Result<Imported, ImportError> {
    let mut plan = translate::translate(&loaded.directives, opts).map_err(|e| match e {
        ImportError::Nothing { file, why } if file.is_empty() => ImportError::Nothing {
            file: name.to_string(),
            why,
        },
        e => e,
    })?;
    plan.untranslated.extend(loaded.untranslated);
    plan.notes.splice(0..0, loaded.notes);
    let rank = file_ranks(name, &loaded.directives);
    sort(&mut plan.untranslated, &rank);
    sort(&mut plan.handled, &rank);
    let mut toml = render::render(name, &plan);
    if self_check(name, &toml, &mut plan.notes)? {
        toml = render::render(name, &plan);
    }
    Ok(Imported {
        toml,
        untranslated: plan.untranslated,
        notes: plan.notes,
    })
}

/// Loads the translation with the real config loader. Server names that do not resolve on
/// this machine, and certificate files that cannot be read here, become notes (canaryd
/// resolves and reads them where it runs, when it loads the file); anything else is an error,
/// since the output must be a valid `canaryd.toml`. Returns whether notes were added.
fn self_check(name: &str, toml: &str, notes: &mut Vec<String>) -> Result<bool, ImportError> {
    let problems = match Config::from_source("canaryd.toml", toml, false) {
        Ok(_) => return Ok(false),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(e) => {
            return Err(ImportError::Untranslatable {
                file: name.to_string(),
                why: e.to_string(),
            })
        }
    };
    let (dns, other): (Vec<_>, Vec<_>) = problems.into_iter().partition(|p| {
        p.message.contains("that resolves") || p.key.starts_with("proxy.tls.certificates")
    });
    if let Some(p) = other.first() {
        return Err(ImportError::Untranslatable {
            file: name.to_string(),
            why: p.to_string(),
        });
    }
    for p in &dns {
        notes.push(if p.key.starts_with("proxy.tls.certificates") {
            format!(
                "{}: {}; `canaryd check` and canaryd itself read the certificates where they run",
                p.key, p.message
            )
        } else {
            format!(
                "{}: does not resolve on this machine; `canaryd check` and canaryd itself resolve server names where they run",
                p.message.rsplit("found ").next().unwrap_or(&p.message)
            )
        });
    }
    Ok(!dns.is_empty())
}

/// Files in the order nginx reads them (the main file first).
fn file_ranks(main: &str, ds: &[Directive]) -> HashMap<String, usize> {
    fn walk(ds: &[Directive], rank: &mut HashMap<String, usize>) {
        for d in ds {
            let n = rank.len();
            rank.entry(d.file.to_string()).or_insert(n);
            if let Some(b) = &d.block {
                walk(b, rank);
            }
        }
    }
    let mut rank = HashMap::new();
    rank.insert(main.to_string(), 0);
    walk(ds, &mut rank);
    rank
}

fn sort(findings: &mut [Finding], rank: &HashMap<String, usize>) {
    findings.sort_by_key(|f| (rank.get(&f.file).copied().unwrap_or(usize::MAX), f.line));
}

impl Finding {
    pub(crate) fn new(d: &Directive, reason: impl Into<String>) -> Self {
        Finding {
            file: d.file.to_string(),
            line: d.line,
            directive: d.text(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {} — {}",
            self.file, self.line, self.directive, self.reason
        )
    }
}
