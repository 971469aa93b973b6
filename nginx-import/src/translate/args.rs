//! A directive's arguments as the translation reads them: exactly one, a time, a number, each
//! failing with an error located at the directive.

use crate::parser::Directive;
use crate::units::{self, Ms};
use crate::ImportError;

pub(super) fn invalid(d: &Directive, message: impl Into<String>) -> ImportError {
    ImportError::Invalid {
        at: d.at(),
        message: message.into(),
    }
}

pub(super) fn one_arg(d: &Directive) -> Result<&str, ImportError> {
    match d.args() {
        [a] => Ok(&a.value),
        args => Err(invalid(
            d,
            format!(
                "`{}` expects 1 argument, found {} (a missing `;`?)",
                d.name(),
                args.len()
            ),
        )),
    }
}

pub(super) fn time_arg(d: &Directive, s: &str) -> Result<Ms, ImportError> {
    units::parse_time(s).ok_or_else(|| {
        invalid(
            d,
            format!(
                "`{}`: invalid time {s:?}; expected e.g. 30s, 5m, 1h or 500ms",
                d.name()
            ),
        )
    })
}

pub(super) fn number<T: std::str::FromStr>(
    d: &Directive,
    what: &str,
    s: &str,
) -> Result<T, ImportError> {
    s.parse().map_err(|_| {
        invalid(
            d,
            format!("`{}`: invalid {what} {s:?}; expected a number", d.name()),
        )
    })
}
