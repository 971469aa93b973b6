//! `access_log` and `log_format` → `[proxy.access_log]`.
//!
//! nginx inherits `access_log` http → server → location like the other settings; the front's
//! main location decides. Its format must be nginx's predefined `combined`, or a `log_format`
//! that spells the same thing. The stock `nginx.conf`'s `main` (combined plus
//! `"$http_x_forwarded_for"`) and any other format become `combined`, with a note saying which
//! fields differ. `buffer=`/`flush=` are what canaryd always does; `gzip` and `if=` are not.

use super::args::invalid;
use super::plan::{AccessLogPlan, Setting};
use super::{Level, ServerBlock, Src, Tx, Val};
use crate::parser::Directive;
use crate::ImportError;

/// nginx's predefined `combined`.
const COMBINED: &str = r#"$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent""#;
/// What the stock nginx.conf's `log_format main` adds to `combined`.
const MAIN_EXTRA: &str = r#" "$http_x_forwarded_for""#;

/// One `access_log` directive.
#[derive(Debug, Clone)]
pub(super) enum LogTarget {
    Off,
    Path {
        path: String,
        /// `None`: nginx's default, `combined`.
        format: Option<String>,
        /// `buffer=…`, `flush=…`, `gzip…`, `if=…`.
        params: Vec<String>,
    },
}

/// One `log_format` directive.
#[derive(Debug, Clone)]
pub(super) struct LogFormat {
    name: String,
    /// `escape=json` / `escape=none`, when given.
    escape: Option<String>,
    /// The strings, concatenated as nginx does.
    format: String,
    src: Src,
}

impl Tx<'_> {
    /// `access_log` at some level: the first of a level is kept (canaryd writes one log).
    pub(super) fn access_log(
        &mut self,
        d: &Directive,
        level: &mut Level,
    ) -> Result<(), ImportError> {
        let args = d.args();
        let Some(first) = args.first() else {
            return Err(invalid(d, "`access_log` expects a path or `off`"));
        };
        let target = if first.value == "off" {
            LogTarget::Off
        } else {
            LogTarget::Path {
                path: first.value.clone(),
                format: args.get(1).map(|a| a.value.clone()),
                params: args.iter().skip(2).map(|a| a.value.clone()).collect(),
            }
        };
        if let Some(prev) = &level.access_log {
            let why = format!(
                "canaryd writes one access log; it keeps the one at {}",
                prev.src.at()
            );
            self.untranslated(d, why);
            return Ok(());
        }
        level.access_log = Some(Val {
            value: target,
            src: Src::of(d),
        });
        Ok(())
    }

    /// `log_format NAME [escape=…] STRING…`: kept for the `access_log` that names it.
    pub(super) fn log_format(&mut self, d: &Directive) -> Result<(), ImportError> {
        let args = d.args();
        let Some(name) = args.first() else {
            return Err(invalid(d, "`log_format` expects a name and a format"));
        };
        let mut rest = &args[1..];
        let mut escape = None;
        if let Some(e) = rest.first().and_then(|a| a.value.strip_prefix("escape=")) {
            escape = Some(e.to_string());
            rest = &rest[1..];
        }
        self.log_formats.push(LogFormat {
            name: name.value.clone(),
            escape,
            format: rest.iter().map(|a| a.value.as_str()).collect(),
            src: Src::of(d),
        });
        Ok(())
    }

    /// `[proxy.access_log]` from the main location's effective `access_log`; the front's other
    /// `access_log` directives (another location's, say `access_log off` for `/health`) are
    /// reported: canaryd has one log for every request.
    pub(super) fn access_log_plan(
        &mut self,
        srv: &ServerBlock,
        base: &Level,
    ) -> Option<AccessLogPlan> {
        let formats = std::mem::take(&mut self.log_formats);
        let effective = base.access_log.as_ref().map(|v| v.src.at());
        let others = [&self.http.access_log, &srv.own.access_log]
            .into_iter()
            .chain(srv.locs.iter().map(|l| &l.own.access_log))
            .flatten()
            .filter(|v| Some(v.src.at()) != effective)
            .cloned()
            .collect::<Vec<_>>();
        let plan = match &base.access_log {
            None => {
                self.notes.push(
                    "nginx wrote an access log to logs/access.log (its default without `access_log`); canaryd writes one only with `[proxy.access_log]`".into(),
                );
                None
            }
            Some(Val {
                value: LogTarget::Off,
                src,
            }) => {
                self.sink.handled.push(
                    src.finding("canaryd writes no access log unless `[proxy.access_log]` is set"),
                );
                None
            }
            Some(Val {
                value:
                    LogTarget::Path {
                        path,
                        format,
                        params,
                    },
                src,
            }) => self.log_path(path, format.as_deref(), params, src, &formats),
        };
        for v in others {
            if plan.is_none() && matches!(v.value, LogTarget::Off) {
                self.sink.handled.push(
                    v.src.finding(
                        "canaryd writes no access log here either (no `[proxy.access_log]`)",
                    ),
                );
            } else {
                self.sink.untranslated.push(v.src.finding(
                    "canaryd writes one access log for every request of the front (`[proxy.access_log]`); it cannot differ per location",
                ));
            }
        }
        for f in formats {
            let used = plan.is_some()
                && matches!(&base.access_log, Some(Val { value: LogTarget::Path { format: Some(n), .. }, .. }) if *n == f.name);
            let why = if used {
                "read for `[proxy.access_log]` (canaryd writes nginx's `combined` or JSON)"
            } else {
                "not used by the front's `access_log`; canaryd's formats are `combined` and `json`"
            };
            self.sink.handled.push(f.src.finding(why));
        }
        plan
    }

    fn log_path(
        &mut self,
        path: &str,
        format: Option<&str>,
        params: &[String],
        src: &Src,
        formats: &[LogFormat],
    ) -> Option<AccessLogPlan> {
        let path = match path {
            "/dev/stdout" => "stdout".to_string(),
            p if p.starts_with("syslog:") => {
                self.sink.untranslated.push(src.finding(
                    "canaryd writes its access log to a file or to stdout (the journal under systemd), not to syslog",
                ));
                return None;
            }
            p if p.contains('$') => {
                self.sink.untranslated.push(src.finding(
                    "canaryd writes one access log file; a path with variables has no equivalent",
                ));
                return None;
            }
            p if !p.starts_with('/') => {
                self.sink.untranslated.push(src.finding(
                    "a path relative to nginx's prefix: set `[proxy.access_log] path` to an absolute path",
                ));
                return None;
            }
            p => p.to_string(),
        };
        match format {
            None | Some("combined") => {}
            Some(name) => match formats.iter().rev().find(|f| f.name == name) {
                None => self.notes.push(format!(
                    "{}: `log_format {name}` is not defined; canaryd writes `combined`",
                    src.cite()
                )),
                Some(f) => self.compare_format(f, src),
            },
        }
        for p in params {
            if p.starts_with("buffer=") || p.starts_with("flush=") {
                self.sink.handled.push(src.finding(format!(
                    "`{p}`: canaryd always buffers lines (64 KiB per worker thread) and writes them at least once a second"
                )));
            } else if p.starts_with("gzip") {
                self.notes.push(format!(
                    "{}: canaryd writes the access log uncompressed (`{p}`); compress at rotation (docs/operations.md)",
                    src.cite()
                ));
            } else if p.starts_with("if=") {
                self.notes.push(format!(
                    "{}: canaryd logs every request (`{p}` has no equivalent)",
                    src.cite()
                ));
            }
        }
        Some(AccessLogPlan {
            path: Setting {
                value: path,
                comment: src.cite(),
            },
        })
    }

    /// A named format: `combined` spelled out is fine; anything else is written as `combined`,
    /// with a note saying how it differs.
    fn compare_format(&mut self, f: &LogFormat, src: &Src) {
        let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        let format = norm(&f.format);
        let combined = norm(COMBINED);
        if let Some(e) = f.escape.as_deref().filter(|e| *e != "default") {
            self.notes.push(format!(
                "{}: `log_format {}` has escape={e}; canaryd's `combined` escapes as nginx's default (\\xHH)",
                f.src.cite(),
                f.name
            ));
        }
        if format == combined {
            return;
        }
        let why = if format == norm(&format!("{COMBINED}{MAIN_EXTRA}")) {
            format!(
                "`log_format {}` is `combined` plus \"$http_x_forwarded_for\": canaryd writes `combined`, so lines lack that last field (at {})",
                f.name,
                f.src.at()
            )
        } else {
            format!(
                "`log_format {}` is not `combined`: canaryd writes `combined` (or `format = \"json\"`), so log parsers expecting {:?} need updating (at {})",
                f.name,
                f.format,
                f.src.at()
            )
        };
        self.notes.push(format!("{}: {why}", src.cite()));
    }
}
