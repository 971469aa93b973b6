//! Every problem of a file in one run: [`Loader`] reads a TOML source (and, for
//! `canaryd.toml`, the `CANARYD_SECTION__KEY` overrides) into a typed value and reports every
//! type error and every semantic problem at once, each located.
//!
//! serde's derived deserializers stop at the first error inside a struct, so one extraction
//! finds one error. The loader therefore extracts in a loop and, after each error, records it
//! and repairs the data so that the next extraction gets further:
//!
//! - a wrong type, a bad value or an unknown key: the key is removed, so its default applies
//!   (and the next error surfaces);
//! - a missing required key (or a removed one, or a bad element of an array, whose removal
//!   would renumber its siblings): a placeholder is put there — the first of `{}`, `[]`, `""`,
//!   `0`, `false`, `"1s"`, the loader's own ([`Loader::placeholders`]) and the first variant an
//!   enum names that deserializes. Errors inside a placeholder are never reported;
//! - when no placeholder fits, the enclosing key is given up (removed, or replaced in turn),
//!   up to the whole file.
//!
//! The loop is bounded ([`MAX_ROUNDS`]). When the value finally deserializes, the semantic
//! checks run on it, and a semantic problem is dropped when its key was repaired or is inside
//! a repaired key, or when its check reads a key ([`Loader::related`]) that was repaired, is
//! inside one or holds one: no duplicate and no follow-on error (no "no servers" for a pool
//! whose table was missing, no "does not resolve" for a server whose `addr` was missing).
//!
//! Problems come out in file order (by line, then as found; unlocated ones last), each once.

use std::collections::{BTreeMap, HashSet};

use figment::error::Kind;
use figment::providers::{Env, Format, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::de::DeserializeOwned;

use crate::location::line_of;
use crate::problem::{figment_problems, problem_of, target, ConfigError, Invalid, Problem};

/// Upper bound on extractions for one file: far above what a file with dozens of mistakes
/// needs (two or three per mistake, up to ten for a placeholder), low enough to stay instant.
pub const MAX_ROUNDS: usize = 1000;

/// A key path as figment names it: `["proxy", "routes", "1", "prefix"]`.
type Path = Vec<String>;

/// Loads one file, reporting every problem at once (see the module documentation).
pub struct Loader<'a> {
    file: &'a str,
    src: &'a str,
    env: Option<Env>,
    placeholders: &'a [&'a str],
    related: fn(&str) -> Vec<String>,
}

impl<'a> Loader<'a> {
    /// `src`, named `file` in errors.
    pub fn new(file: &'a str, src: &'a str) -> Self {
        Self {
            file,
            src,
            env: None,
            placeholders: &[],
            related: |_| Vec::new(),
        }
    }

    /// Environment variables merged over the file (their problems say which variable).
    pub fn env(mut self, env: Env) -> Self {
        self.env = Some(env);
        self
    }

    /// Further strings to try as a placeholder for a required key, for string-typed values
    /// that refuse `""` and `"1s"` (a threshold, a key kind).
    pub fn placeholders(mut self, placeholders: &'a [&'a str]) -> Self {
        self.placeholders = placeholders;
        self
    }

    /// For a semantic problem's key, the other keys its check reads (`routing.header` reads
    /// `routing.canary_values`): the problem is dropped when one of them was repaired.
    pub fn related(mut self, related: fn(&str) -> Vec<String>) -> Self {
        self.related = related;
        self
    }

    /// Extracts a `T`, then runs `validate` on it; `Ok` only when there is no problem at all.
    pub fn load<T: DeserializeOwned>(
        self,
        validate: impl FnOnce(&T) -> Vec<Invalid>,
    ) -> Result<T, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            file: self.file.to_string(),
            problems,
        };
        let data = match Toml::string(self.src).data() {
            Ok(mut profiles) => profiles.remove(&Profile::Default).unwrap_or_default(),
            // A syntax error: nothing to repair.
            Err(e) => return Err(invalid(figment_problems(e, self.src))),
        };
        let mut run = Run::new(data.clone(), self.env.clone(), self.placeholders);
        let mut value = None;
        for _ in 0..MAX_ROUNDS {
            match run.figment().extract::<T>() {
                Ok(v) => {
                    value = Some(v);
                    break;
                }
                Err(e) => match e.into_iter().next() {
                    Some(e) if run.step(&e, self.src) => {}
                    _ => break,
                },
            }
        }
        let mut problems = std::mem::take(&mut run.problems);
        match value {
            Some(v) => {
                for i in validate(&v) {
                    if !run.explains(&i.key, self.related) {
                        problems.push(Problem {
                            line: line_of(self.src, &i.key),
                            key: i.key,
                            message: i.message,
                        });
                    }
                }
                if problems.is_empty() {
                    return Ok(v);
                }
            }
            // Gave up without a problem to show (cannot happen: every give-up follows a
            // reported error); the unrepaired file's first error is the honest answer.
            None if problems.is_empty() => {
                let plain = Run::new(data, self.env.clone(), &[]);
                if let Err(e) = plain.figment().extract::<T>() {
                    problems = figment_problems(e, self.src);
                }
            }
            None => {}
        }
        Err(invalid(in_file_order(problems)))
    }
}

/// Sorted by line (stable: as found within a line), unlocated last, duplicates removed.
fn in_file_order(mut problems: Vec<Problem>) -> Vec<Problem> {
    problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
    let mut seen = HashSet::new();
    problems.retain(|p| seen.insert((p.line, p.key.clone(), p.message.clone())));
    problems
}

/// The state of one file's repair loop.
struct Run {
    /// The file's values, repaired so far.
    data: Dict,
    env: Option<Env>,
    /// Dotted keys no longer read from the environment.
    excluded: Vec<String>,
    /// Errors at or inside these keys are consequences of an earlier one: not reported.
    touched: Vec<Path>,
    /// Keys whose value was removed, so their default applies.
    defaulted: Vec<Path>,
    /// Keys holding a placeholder (or given up).
    replaced: Vec<Path>,
    /// Placeholders still to try, per key.
    trials: BTreeMap<Path, Vec<Value>>,
    /// Keys no placeholder fits.
    unfillable: Vec<Path>,
    /// Errors met so far (key and kind): meeting one again means a repair did not help.
    seen: HashSet<(Path, String)>,
    placeholders: Vec<Value>,
    problems: Vec<Problem>,
}

impl Run {
    fn new(data: Dict, env: Option<Env>, extra: &[&str]) -> Self {
        let mut placeholders = vec![
            Value::from(Dict::new()),
            Value::from(Vec::<Value>::new()),
            Value::from(""),
            Value::from(0u8),
            Value::from(false),
            Value::from("1s"),
        ];
        placeholders.extend(extra.iter().map(|s| Value::from(*s)));
        Self {
            data,
            env,
            excluded: Vec::new(),
            touched: Vec::new(),
            defaulted: Vec::new(),
            replaced: Vec::new(),
            trials: BTreeMap::new(),
            unfillable: Vec::new(),
            seen: HashSet::new(),
            placeholders,
            problems: Vec::new(),
        }
    }

    fn figment(&self) -> Figment {
        let fig = Figment::from(FileValues(self.data.clone()));
        match &self.env {
            Some(env) => {
                let excluded = self.excluded.clone();
                fig.merge(env.clone().filter(move |k| {
                    let k = k.as_str().to_ascii_lowercase();
                    !excluded.iter().any(|x| within(&k, x))
                }))
            }
            None => fig,
        }
    }

    /// Records `e` (unless it follows from an earlier one) and repairs the data so the next
    /// extraction gets past it. `false`: nothing more can be done.
    fn step(&mut self, e: &figment::Error, src: &str) -> bool {
        let at = target(e);
        let missing_or_unknown = matches!(
            e.kind,
            Kind::MissingField(_) | Kind::UnknownField(..) | Kind::DuplicateField(_)
        );
        // A placeholder that does not fit: the next one.
        if !missing_or_unknown && self.trials.contains_key(&at) {
            if let Kind::UnknownVariant(_, &[first, ..]) = &e.kind {
                if let Some(t) = self.trials.get_mut(&at) {
                    t.insert(0, Value::from(first));
                }
            }
            return self.place_next(at);
        }
        if !self.seen.insert((at.clone(), e.kind.to_string())) {
            // The same error again: the repair did not take (say, a value only the
            // environment can hold in an array); give up the enclosing key.
            return self.give_up(parent(&at));
        }
        if !self.touched.iter().any(|t| at.starts_with(t)) {
            self.problems.push(problem_of(e, src));
            self.touched.push(at.clone());
        }
        match e.kind {
            // About the whole file (a custom deserializer's own error): nothing to repair.
            _ if at.is_empty() => false,
            Kind::MissingField(_) => self.fill(at),
            Kind::UnknownField(..) | Kind::DuplicateField(_) => {
                self.remove(&at);
                true
            }
            _ if is_index(&at) => self.fill(at),
            _ => {
                self.remove(&at);
                self.defaulted.push(at);
                true
            }
        }
    }

    /// Puts a placeholder at `at` (a required key, or an array element).
    fn fill(&mut self, at: Path) -> bool {
        if self.unfillable.contains(&at) {
            return self.give_up(parent(&at));
        }
        if !self.replaced.contains(&at) {
            self.replaced.push(at.clone());
        }
        if !self.touched.contains(&at) {
            self.touched.push(at.clone());
        }
        let mut candidates = self.placeholders.clone();
        candidates.reverse(); // popped from the end
        self.trials.insert(at.clone(), candidates);
        self.place_next(at)
    }

    fn place_next(&mut self, at: Path) -> bool {
        let next = self.trials.get_mut(&at).and_then(|t| t.pop());
        let placed = match next {
            Some(v) => {
                self.exclude(&at);
                insert(&mut self.data, &at, v)
            }
            None => false,
        };
        if placed {
            return true;
        }
        self.trials.remove(&at);
        self.unfillable.push(at.clone());
        self.give_up(parent(&at))
    }

    /// No value of `at` deserializes: removes it, or, for an array element, gives up the
    /// array; a required key comes back as missing and is given up in turn.
    fn give_up(&mut self, at: Path) -> bool {
        if at.is_empty() {
            return false;
        }
        if self.unfillable.contains(&at) || is_index(&at) {
            if !self.unfillable.contains(&at) {
                self.unfillable.push(at.clone());
            }
            return self.give_up(parent(&at));
        }
        self.unfillable.push(at.clone());
        if !self.replaced.contains(&at) {
            self.replaced.push(at.clone());
        }
        if !self.touched.contains(&at) {
            self.touched.push(at.clone());
        }
        self.trials.retain(|k, _| !k.starts_with(&at));
        self.remove(&at);
        true
    }

    fn remove(&mut self, at: &[String]) {
        self.exclude(at);
        remove(&mut self.data, at);
    }

    fn exclude(&mut self, at: &[String]) {
        let key = at.join(".").to_ascii_lowercase();
        if !self.excluded.contains(&key) {
            self.excluded.push(key);
        }
    }

    /// Whether a semantic problem about `key` follows from a repair: `key` was repaired or is
    /// inside a repaired key, or a key its check reads ([`Loader::related`]) is, or holds one.
    fn explains(&self, key: &str, related: fn(&str) -> Vec<String>) -> bool {
        let repaired = || self.defaulted.iter().chain(&self.replaced);
        let k = path_of(key);
        repaired().any(|r| k.starts_with(r))
            || related(key)
                .iter()
                .map(|r| path_of(r))
                .any(|r| repaired().any(|t| r.starts_with(t) || t.starts_with(&r)))
    }
}

/// The repaired file, as a figment provider.
struct FileValues(Dict);

impl Provider for FileValues {
    fn metadata(&self) -> Metadata {
        Metadata::named("TOML source string")
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.0.clone()))
    }
}

/// `proxy.routes[1].prefix` → `["proxy", "routes", "1", "prefix"]`.
fn path_of(key: &str) -> Path {
    key.split('.')
        .flat_map(|seg| seg.split(['[', ']']))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Is dotted `key` equal to, or inside, dotted `outer`?
fn within(key: &str, outer: &str) -> bool {
    key == outer
        || key
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('.'))
}

fn is_index(at: &[String]) -> bool {
    at.last()
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
}

fn parent(at: &[String]) -> Path {
    at[..at.len().saturating_sub(1)].to_vec()
}

fn child<'v>(v: &'v mut Value, seg: &str) -> Option<&'v mut Value> {
    match v {
        Value::Dict(_, d) => d.get_mut(seg),
        Value::Array(_, a) => a.get_mut(seg.parse::<usize>().ok()?),
        _ => None,
    }
}

fn remove(data: &mut Dict, at: &[String]) {
    let Some((last, parents)) = at.split_last() else {
        return;
    };
    let Some((first, rest)) = parents.split_first() else {
        data.remove(last);
        return;
    };
    let mut v = data.get_mut(first);
    for seg in rest {
        v = v.and_then(|v| child(v, seg));
    }
    if let Some(Value::Dict(_, d)) = v {
        d.remove(last);
    }
}

/// Puts `value` at `at`, creating the tables on the way; `false` when the way is not tables
/// (or an array element that is not there).
fn insert(data: &mut Dict, at: &[String], value: Value) -> bool {
    let Some((first, rest)) = at.split_first() else {
        return false;
    };
    if rest.is_empty() {
        data.insert(first.clone(), value);
        return true;
    }
    let slot = data
        .entry(first.clone())
        .or_insert_with(|| Value::from(Dict::new()));
    insert_in(slot, rest, value)
}

fn insert_in(v: &mut Value, at: &[String], value: Value) -> bool {
    let Some((first, rest)) = at.split_first() else {
        return false;
    };
    match v {
        Value::Dict(_, d) => {
            if rest.is_empty() {
                d.insert(first.clone(), value);
                return true;
            }
            let slot = d
                .entry(first.clone())
                .or_insert_with(|| Value::from(Dict::new()));
            insert_in(slot, rest, value)
        }
        Value::Array(_, a) => {
            let Some(slot) = first.parse::<usize>().ok().and_then(|i| a.get_mut(i)) else {
                return false;
            };
            if rest.is_empty() {
                *slot = value;
                true
            } else {
                insert_in(slot, rest, value)
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
