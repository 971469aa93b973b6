//! Settings nginx inherits http → server → location: upstream timeouts, `proxy_buffering`,
//! `proxy_set_header`, `client_max_body_size`, `add_header` ([`Level`]), and the
//! client-connection settings of the http and server levels ([`Wide`]); collected here, resolved by inheritance in the second pass.

use super::args::{invalid, number, one_arg, time_arg};
use super::{Level, Src, Tx, Val, Wide, NGINX_PROXY_TIMEOUT};
use crate::parser::Directive;
use crate::units::{self, Ms};
use crate::ImportError;

impl Level {
    pub(super) fn under(&self, parent: &Level) -> Level {
        Level {
            connect: self.connect.clone().or_else(|| parent.connect.clone()),
            read: self.read.clone().or_else(|| parent.read.clone()),
            send: self.send.clone().or_else(|| parent.send.clone()),
            streaming: self.streaming.clone().or_else(|| parent.streaming.clone()),
            sets_host: self.sets_host.or(parent.sets_host),
            access_log: self
                .access_log
                .clone()
                .or_else(|| parent.access_log.clone()),
            body_size: self.body_size.clone().or_else(|| parent.body_size.clone()),
            add_headers: self
                .add_headers
                .clone()
                .or_else(|| parent.add_headers.clone()),
            set_headers: self
                .set_headers
                .clone()
                .or_else(|| parent.set_headers.clone()),
            hide_headers: self
                .hide_headers
                .clone()
                .or_else(|| parent.hide_headers.clone()),
            error_pages: self
                .error_pages
                .clone()
                .or_else(|| parent.error_pages.clone()),
            root: self.root.clone().or_else(|| parent.root.clone()),
        }
    }

    /// connect, read, send — with nginx's default where unset.
    pub(super) fn timeouts(&self) -> [Ms; 3] {
        [&self.connect, &self.read, &self.send]
            .map(|v| v.as_ref().map_or(NGINX_PROXY_TIMEOUT, |v| v.value))
    }

    pub(super) fn timeout_vals(&self) -> [&Option<Val<Ms>>; 3] {
        [&self.connect, &self.read, &self.send]
    }
}

impl Wide {
    pub(super) fn under(&self, parent: &Wide) -> Wide {
        Wide {
            keepalive_timeout: self
                .keepalive_timeout
                .clone()
                .or_else(|| parent.keepalive_timeout.clone()),
            keepalive_requests: self
                .keepalive_requests
                .clone()
                .or_else(|| parent.keepalive_requests.clone()),
            client_timeout: self
                .client_timeout
                .clone()
                .or_else(|| parent.client_timeout.clone()),
            tls: self.tls.under(&parent.tls),
        }
    }
}

impl Tx<'_> {
    /// A directive of http, server or location level (`wide` is `None` in a location).
    pub(super) fn setting(
        &mut self,
        d: &Directive,
        level: &mut Level,
        wide: Option<&mut Wide>,
    ) -> Result<(), ImportError> {
        let name = d.name();
        match name {
            "proxy_connect_timeout" | "proxy_read_timeout" | "proxy_send_timeout" => {
                let v = Val {
                    value: time_arg(d, one_arg(d)?)?,
                    src: Src::of(d),
                };
                match name {
                    "proxy_connect_timeout" => level.connect = Some(v),
                    "proxy_read_timeout" => level.read = Some(v),
                    _ => level.send = Some(v),
                }
            }
            "proxy_buffering" => {
                if one_arg(d)? == "off" {
                    level.streaming = Some(Src::of(d));
                }
                self.verdict(d);
            }
            "proxy_set_header" => {
                let host = d.arg(0).is_some_and(|h| h.eq_ignore_ascii_case("host"));
                level.sets_host = Some(level.sets_host.unwrap_or(false) || host);
                self.proxy_set_header(d, level);
            }
            "keepalive_timeout" | "keepalive_requests" | "client_body_timeout" | "send_timeout" => {
                match wide {
                    Some(wide) => self.wide_setting(d, wide)?,
                    None => self.untranslated(
                        d,
                        "canaryd applies this to every client connection; it cannot differ per location",
                    ),
                }
            }
            "ssl_certificate" | "ssl_certificate_key" | "ssl_protocols" | "http2" => {
                self.tls_setting(d, wide)?
            }
            "access_log" => self.access_log(d, level)?,
            "add_header" => self.add_header(d, level),
            "proxy_hide_header" => {
                level.hide_headers.get_or_insert_with(Vec::new).push(Val {
                    value: (one_arg(d)?.to_string(), String::new()),
                    src: Src::of(d),
                });
            }
            "error_page" => self.error_page(d, level)?,
            "root" => {
                level.root = Some(Val {
                    value: one_arg(d)?.to_string(),
                    src: Src::of(d),
                });
                self.verdict(d);
            }
            "client_max_body_size" => {
                level.body_size = Some(Val {
                    value: body_size(d, one_arg(d)?)?,
                    src: Src::of(d),
                });
            }
            "log_format" => self.log_format(d)?,
            _ => self.verdict(d),
        }
        Ok(())
    }

    fn wide_setting(&mut self, d: &Directive, wide: &mut Wide) -> Result<(), ImportError> {
        match d.name() {
            "keepalive_timeout" => {
                let (t, header) = match d.args() {
                    [t] => (&t.value, None),
                    [t, h] => (&t.value, Some(&h.value)),
                    args => {
                        return Err(invalid(
                            d,
                            format!(
                                "`keepalive_timeout` expects 1 or 2 arguments, found {}",
                                args.len()
                            ),
                        ))
                    }
                };
                let ms = time_arg(d, t)?;
                if header.is_some() {
                    self.untranslated(
                        d,
                        "the second value (a `Keep-Alive: timeout=` response header) is not sent by canaryd; the first is translated",
                    );
                }
                if ms == 0 {
                    self.untranslated(
                        d,
                        "canaryd always keeps client connections alive; it cannot turn keepalive off",
                    );
                } else {
                    wide.keepalive_timeout = Some(Val {
                        value: ms,
                        src: Src::of(d),
                    });
                }
            }
            "keepalive_requests" => {
                let n: u64 = number(d, "number of requests", one_arg(d)?)?;
                if n == 0 {
                    return Err(invalid(d, "`keepalive_requests` must be at least 1"));
                }
                wide.keepalive_requests = Some(Val {
                    value: n,
                    src: Src::of(d),
                });
            }
            _ => {
                // client_body_timeout / send_timeout: one canaryd key for both.
                let ms = time_arg(d, one_arg(d)?)?;
                match &wide.client_timeout {
                    Some(prev) if prev.value != ms => {
                        let why = format!(
                            "canaryd has one `client_timeout` for client_body_timeout and send_timeout; it keeps {} from {}",
                            units::duration(prev.value),
                            prev.src.at()
                        );
                        self.untranslated(d, why);
                    }
                    Some(_) => self.handled(
                        d,
                        "same value as the other client timeout: canaryd's `client_timeout` covers both",
                    ),
                    None => {
                        wide.client_timeout = Some(Val {
                            value: ms,
                            src: Src::of(d),
                        })
                    }
                }
            }
        }
        Ok(())
    }
}

/// nginx's size: bytes, or `k`/`m`/`g` (powers of 1024, either case); `0` is no limit.
fn body_size(d: &Directive, arg: &str) -> Result<u64, ImportError> {
    let (digits, unit) = match arg.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&arg[..i], c.to_ascii_lowercase()),
        _ => (arg, 'b'),
    };
    let shift = match unit {
        'b' => 0,
        'k' => 10,
        'm' => 20,
        'g' => 30,
        _ => {
            return Err(invalid(
                d,
                format!("expected a size like `80m`, found `{arg}`"),
            ))
        }
    };
    let n: u64 = number(d, "size", digits)?;
    Ok(n << shift)
}

impl Tx<'_> {
    /// `proxy_set_header`: what canaryd does by itself follows (Host, forwarding headers,
    /// upgrades, `Proxy ""`, `X-Request-Id`); any other header whose value canaryd can write
    /// becomes `set_request_headers`.
    fn proxy_set_header(&mut self, d: &Directive, level: &mut Level) {
        let verdict = crate::catalog::classify(d);
        let (name, value) = match (&verdict, d.args()) {
            (crate::catalog::Verdict::Untranslated(_), [n, v])
                if !n.value.eq_ignore_ascii_case("x-forwarded-for")
                    && canaryd_config::parse_template(&v.value).is_ok() =>
            {
                (n.value.clone(), v.value.clone())
            }
            _ => return self.verdict(d),
        };
        // Recorded for this level (nginx: a level's own proxy_set_header replace the
        // inherited ones, so the set is per level).
        level.set_headers.get_or_insert_with(Vec::new).push(Val {
            value: (name, value),
            src: Src::of(d),
        });
    }

    /// `add_header NAME VALUE [always]` → `add_response_headers` (canaryd adds them to every
    /// answer, its own included: nginx's `always`); a value with a variable canaryd does not
    /// have stays untranslated.
    fn add_header(&mut self, d: &Directive, level: &mut Level) {
        let (name, value) = match d.args() {
            [n, v] => (&n.value, &v.value),
            [n, v, a] if a.value == "always" => (&n.value, &v.value),
            _ => {
                return self.untranslated(d, "expected `add_header NAME VALUE [always]`");
            }
        };
        if let Err(e) = canaryd_config::parse_template(value) {
            return self.untranslated(
                d,
                format!(
                    "canaryd's header values expected {e}; write `add_response_headers` by hand"
                ),
            );
        }
        level.add_headers.get_or_insert_with(Vec::new).push(Val {
            value: (name.clone(), value.clone()),
            src: Src::of(d),
        });
        if d.args().len() == 2 {
            self.handled(
                d,
                "canaryd adds it to every answer, errors and its own included (nginx's `always`)",
            );
        }
    }
}
