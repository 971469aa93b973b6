//! Reading the nginx files: the one named on the command line and every file its `include`
//! directives name, spliced in place as nginx does.
//!
//! Relative include paths are resolved as nginx resolves them: against the directory of the
//! main configuration file (nginx's configuration prefix), also inside included files. A `*`
//! or `?` in the last path component is a glob, expanded in sorted order. An include whose
//! file does not exist is reported as untranslated; a glob that matches nothing imports
//! nothing, as in nginx, and says so in a note.

use std::path::{Path, PathBuf};

use super::parser::{self, Directive};
use super::{Finding, ImportError};

/// Includes nested deeper than this are an error (nginx would loop forever on a cycle).
const MAX_INCLUDE_DEPTH: usize = 16;
/// Files read through `include` in one import, however they nest: `include *.conf` in a
/// directory of files that include each other would otherwise multiply without end.
const MAX_INCLUDED_FILES: usize = 1000;

/// The directives of a file with includes expanded, and what could not be included.
#[derive(Debug, Default)]
pub struct Loaded {
    pub directives: Vec<Directive>,
    pub untranslated: Vec<Finding>,
    pub notes: Vec<String>,
}

/// Reads and parses `path` and everything it includes.
pub fn load(path: &Path) -> Result<Loaded, ImportError> {
    let name = path.display().to_string();
    let src = read(path, &name)?;
    let conf_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    from_source(&name, &src, &conf_dir)
}

/// Parses `src` (named `name` in messages) and expands its includes against `conf_dir`.
pub fn from_source(name: &str, src: &str, conf_dir: &Path) -> Result<Loaded, ImportError> {
    let mut loaded = Loaded::default();
    let top = parser::parse(name, src)?;
    let mut expander = Expander {
        conf_dir,
        out: &mut loaded,
        included: 0,
    };
    let directives = expander.expand(top, 0)?;
    loaded.directives = directives;
    Ok(loaded)
}

fn read(path: &Path, name: &str) -> Result<String, ImportError> {
    let bytes = std::fs::read(path).map_err(|source| ImportError::Read {
        file: name.to_string(),
        source,
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

struct Expander<'a> {
    conf_dir: &'a Path,
    out: &'a mut Loaded,
    /// Files read through `include` so far.
    included: usize,
}

impl Expander<'_> {
    fn expand(&mut self, ds: Vec<Directive>, depth: usize) -> Result<Vec<Directive>, ImportError> {
        let mut result = Vec::with_capacity(ds.len());
        for mut d in ds {
            if d.name() == "include" && d.block.is_none() {
                result.extend(self.include(&d, depth)?);
                continue;
            }
            if let Some(block) = d.block.take() {
                d.block = Some(self.expand(block, depth)?);
            }
            result.push(d);
        }
        Ok(result)
    }

    fn include(&mut self, d: &Directive, depth: usize) -> Result<Vec<Directive>, ImportError> {
        let [arg] = d.args() else {
            self.untranslated(d, "expected exactly one file name or pattern");
            return Ok(Vec::new());
        };
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(ImportError::Invalid {
                at: d.at(),
                message: format!(
                    "includes nested deeper than {MAX_INCLUDE_DEPTH} levels (does a file include itself?)"
                ),
            });
        }
        let pattern = arg.value.as_str();
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            self.conf_dir.join(pattern)
        };
        let files = if is_glob(pattern) {
            match glob(&full) {
                Ok(files) if files.is_empty() => {
                    self.out.notes.push(format!(
                        "{}: include {pattern}: no file matches {}; nothing imported (nginx does the same)",
                        d.at(),
                        full.display()
                    ));
                    return Ok(Vec::new());
                }
                Ok(files) => files,
                Err(why) => {
                    self.untranslated(d, &why);
                    return Ok(Vec::new());
                }
            }
        } else if full.is_file() {
            vec![full]
        } else {
            self.untranslated(
                d,
                &format!(
                    "file not found ({}); its directives are not imported",
                    full.display()
                ),
            );
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for file in files {
            self.included += 1;
            if self.included > MAX_INCLUDED_FILES {
                return Err(ImportError::Invalid {
                    at: d.at(),
                    message: format!(
                        "more than {MAX_INCLUDED_FILES} files included in all (do included files include each other?)"
                    ),
                });
            }
            let name = file.display().to_string();
            let src = read(&file, &name)?;
            let ds = parser::parse(&name, &src)?;
            out.extend(self.expand(ds, depth + 1)?);
        }
        Ok(out)
    }

    fn untranslated(&mut self, d: &Directive, reason: &str) {
        self.out.untranslated.push(Finding::new(d, reason));
    }
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// Files matching a pattern whose wildcards (`*`, `?`) are in the last component, sorted.
fn glob(full: &Path) -> Result<Vec<PathBuf>, String> {
    let (Some(dir), Some(name)) = (full.parent(), full.file_name().and_then(|n| n.to_str())) else {
        return Err("cannot read this include pattern".to_string());
    };
    if is_glob(&dir.display().to_string()) || name.contains('[') {
        return Err(
            "only `*` and `?` in the file name are supported in include patterns".to_string(),
        );
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| !n.starts_with('.') && matches(name.as_bytes(), n.as_bytes()))
        })
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Shell-style `*` / `?` match.
fn matches(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests;
