//! `[proxy]` and `[[proxy.routes]]` from the front server block: the main location's
//! timeouts (else the server's), listeners, client-connection settings and upstream
//! keepalive; a route for each prefix location whose timeouts differ or that streams.

use super::plan::{ProxyPlan, RoutePlan, Rules, Setting};
use super::{Level, LocKind, ServerBlock, Tx};

/// nginx's `client_max_body_size` default (also canaryd's `max_body_size`).
const NGINX_BODY_SIZE: u64 = 1 << 20;
use crate::units::{self, Ms};

impl Tx<'_> {
    /// `[proxy]`: the base level's upstream timeouts, the front's listeners and client
    /// connection settings, and the keepalive of the upstreams it uses.
    pub(super) fn proxy_plan(
        &mut self,
        srv: &ServerBlock,
        base: &Level,
        used: &[usize],
    ) -> ProxyPlan {
        let [connect_timeout, read_timeout, write_timeout] = base_timeouts(base);
        let wide = srv.wide.under(&self.http_wide);
        let keepalive_pool = self.keepalive_pool(used);
        let upstream_idle_timeout = used
            .iter()
            .find_map(|&u| self.upstreams[u].idle_timeout.as_ref())
            .map(|v| Setting {
                value: v.value,
                comment: v.src.cite(),
            });
        let listen = self.listen_settings(srv);
        let https_redirect = self.redirect_listens.first().map(|l| Setting {
            value: true,
            comment: format!("the server block at {} redirects to https", l.src.at()),
        });
        ProxyPlan {
            listen,
            https_redirect,
            threads: self.threads.clone(),
            connect_timeout,
            read_timeout,
            write_timeout,
            upstream_idle_timeout,
            keepalive_pool,
            keepalive_timeout: wide.keepalive_timeout.map(|v| Setting {
                value: v.value,
                comment: v.src.cite(),
            }),
            keepalive_requests: wide.keepalive_requests.map(|v| Setting {
                value: v.value,
                comment: v.src.cite(),
            }),
            client_timeout: wide.client_timeout.map(|v| Setting {
                value: v.value,
                comment: v.src.cite(),
            }),
            max_body_size: base.body_size.as_ref().map(|v| Setting {
                value: v.value,
                comment: v.src.cite(),
            }),
            add_response_headers: settings(&base.add_headers),
            set_request_headers: settings(&base.set_headers),
            hide_response_headers: settings(&base.hide_headers),
            // Resolved to files by `finish`, which knows the server's locations.
            error_pages: Vec::new(),
        }
    }

    /// The largest `keepalive` of the used upstreams; without one, a note (nginx kept none).
    fn keepalive_pool(&mut self, used: &[usize]) -> Option<Setting<usize>> {
        let keepalive_pool = used
            .iter()
            .filter_map(|&u| self.upstreams[u].keepalive.as_ref())
            .max_by_key(|v| v.value)
            .map(|v| Setting {
                value: v.value,
                comment: v.src.cite(),
            });
        if keepalive_pool.is_none() {
            self.notes.push(
                "nginx kept no idle upstream connections (no `keepalive` in the upstream); canaryd reuses up to `[proxy] keepalive_pool` (256) of them".into(),
            );
        }
        keepalive_pool
    }

    /// The front's listeners, each address once; nginx's default when it has none.
    fn listen_settings(&self, srv: &ServerBlock) -> Vec<Setting<String>> {
        let mut listen: Vec<Setting<String>> = Vec::new();
        for l in srv.listens.iter().chain(&self.redirect_listens) {
            if !listen.iter().any(|s| s.value == l.value) {
                listen.push(Setting {
                    value: l.value.clone(),
                    comment: l.src.cite(),
                });
            }
        }
        if listen.is_empty() && srv.tls_listens.is_empty() {
            let comment = if !self.has_listen_findings() {
                "nginx default `listen *:80`".to_string()
            } else {
                "REVIEW: no nginx listener could be translated (see untranslated above); canaryd's default".to_string()
            };
            listen.push(Setting {
                value: "0.0.0.0:80".into(),
                comment,
            });
        }
        listen
    }

    /// `[[proxy.routes]]` for the prefix locations canaryd must treat differently from
    /// `[proxy]` (timeouts, streaming, body size, header rules, error pages) — for a `hosted`
    /// server block (other names than the front's), every prefix location that proxies;
    /// settings of other locations that would need one are untranslated.
    pub(super) fn routes(
        &mut self,
        srv: &ServerBlock,
        srv_eff: &Level,
        eff: &[Level],
        base: &Level,
        hosted: bool,
    ) -> Vec<RoutePlan> {
        let base_t = base.timeouts();
        let base_r = rule_values(base);
        let mut order: Vec<usize> = (0..srv.locs.len())
            .filter(|&i| match &srv.locs[i].kind {
                // A server for other names: every location that proxies is a route.
                LocKind::Prefix(_) if hosted => !srv.locs[i].targets.is_empty(),
                LocKind::Prefix(p) => p != "/",
                LocKind::Other => false,
            })
            .collect();
        order.sort_by_key(|&i| match &srv.locs[i].kind {
            LocKind::Prefix(p) => p.len(),
            LocKind::Other => 0,
        });
        let mut emitted: Vec<(String, [Ms; 3], RuleValues)> = Vec::new();
        let mut routes = Vec::new();
        for i in order {
            let loc = &srv.locs[i];
            let LocKind::Prefix(prefix) = &loc.kind else {
                continue;
            };
            if emitted.iter().any(|(p, _, _)| p == prefix) {
                continue;
            }
            let t = eff[i].timeouts();
            let r = rule_values(&eff[i]);
            let (cover_t, cover_r) = emitted
                .iter()
                .filter(|(p, _, _)| prefix.starts_with(p.as_str()))
                .max_by_key(|(p, _, _)| p.len())
                .map_or((base_t, &base_r), |(_, t, r)| (*t, r));
            let streaming = loc.own.streaming.is_some();
            let size = |l: &Level| l.body_size.as_ref().map(|v| v.value);
            let body_differs = size(&eff[i]) != size(base);
            if !hosted && t == cover_t && !streaming && !body_differs && r == *cover_r {
                continue;
            }
            let vals = eff[i].timeout_vals();
            let field = |k: usize| {
                (t[k] != base_t[k] || (k == 1 && streaming)).then(|| Setting {
                    value: t[k],
                    comment: match vals[k] {
                        Some(v) => v.src.cite(),
                        None => "nginx default".to_string(),
                    },
                })
            };
            let mut comment = loc.src.cite();
            if streaming {
                comment.push_str(" (proxy_buffering off: streamed, as every canaryd response)");
            }
            let rules = self.route_rules(srv, srv_eff, eff, i, base);
            routes.push(RoutePlan {
                prefix: prefix.clone(),
                comment,
                connect_timeout: field(0),
                read_timeout: field(1),
                write_timeout: field(2),
                max_body_size: body_differs.then(|| match &eff[i].body_size {
                    Some(v) => Setting {
                        value: v.value,
                        comment: v.src.cite(),
                    },
                    None => Setting {
                        value: NGINX_BODY_SIZE,
                        comment: "nginx default".to_string(),
                    },
                }),
                rules,
                ..RoutePlan::default()
            });
            emitted.push((prefix.clone(), t, r));
        }
        // Exact and regex locations that proxy: their own settings cannot be given a route.
        let mut findings = Vec::new();
        for (i, loc) in srv.locs.iter().enumerate() {
            if loc.kind != LocKind::Other || loc.targets.is_empty() {
                continue;
            }
            if rule_values(&eff[i]) != base_r {
                for v in own_rules(&loc.own).into_iter().flatten().flatten() {
                    findings.push(v.src.finding(format!(
                        "canaryd routes by path prefix only, so `{}` ({}) has no route; its requests get [proxy]'s header rules and error pages",
                        loc.src.text,
                        loc.src.at(),
                    )));
                }
            }
            for (k, v) in loc.own.timeout_vals().iter().enumerate() {
                if let Some(v) = v {
                    if eff[i].timeouts()[k] != base_t[k] {
                        findings.push(v.src.finding(format!(
                            "canaryd routes by path prefix only, so `{}` ({}) has no route; its requests get the [proxy] value {}",
                            loc.src.text,
                            loc.src.at(),
                            units::duration(base_t[k])
                        )));
                    }
                }
            }
        }
        self.sink.untranslated.extend(findings);
        routes
    }

    /// A route's header rules and error pages: each kind whose effective set differs from
    /// `[proxy]`'s, whole (nginx replaces the inherited set; canaryd adds the route's to
    /// `[proxy]`'s, the route winning on the same name). What `[proxy]` has and the location
    /// dropped cannot be taken away: untranslated.
    fn route_rules(
        &mut self,
        srv: &ServerBlock,
        srv_eff: &Level,
        eff: &[Level],
        i: usize,
        base: &Level,
    ) -> Rules {
        let loc = &srv.locs[i];
        let (l, b) = (&eff[i], base);
        let mut rules = Rules::default();
        let kinds = [
            ("set_request_headers", &l.set_headers, &b.set_headers),
            ("add_response_headers", &l.add_headers, &b.add_headers),
            ("hide_response_headers", &l.hide_headers, &b.hide_headers),
            ("error_pages", &l.error_pages, &b.error_pages),
        ];
        for (key, mine, theirs) in kinds {
            if values(mine) == values(theirs) {
                continue;
            }
            let out = match key {
                "set_request_headers" => &mut rules.set_request_headers,
                "add_response_headers" => &mut rules.add_response_headers,
                "hide_response_headers" => &mut rules.hide_response_headers,
                _ => &mut rules.error_pages,
            };
            *out = settings(mine);
            for v in theirs.iter().flatten() {
                let (name, _) = &v.value;
                if !values(mine)
                    .iter()
                    .any(|(n, _)| n.eq_ignore_ascii_case(name))
                {
                    self.sink.untranslated.push(v.src.finding(format!(
                        "`{}` ({}) replaces it with its own set in nginx; canaryd adds [proxy]'s `{key}` to every route, so `{name}` applies there too",
                        loc.src.text,
                        loc.src.at()
                    )));
                }
            }
        }
        if !rules.error_pages.is_empty() {
            rules.error_pages = self.error_page_settings(srv, srv_eff, eff, l);
        }
        rules
    }

    fn has_listen_findings(&self) -> bool {
        self.sink
            .untranslated
            .iter()
            .any(|f| f.directive.starts_with("listen "))
    }
}

/// connect, read and write timeouts of `[proxy]`: the base level's, nginx's default where
/// unset (said in the comment, since canaryd's own defaults differ).
fn base_timeouts(base: &Level) -> [Setting<Ms>; 3] {
    let base_t = base.timeouts();
    let names = [
        ("proxy_connect_timeout", "5s"),
        ("proxy_read_timeout", "30s"),
        ("proxy_send_timeout", "30s"),
    ];
    [0, 1, 2].map(|k| Setting {
        value: base_t[k],
        comment: match base.timeout_vals()[k] {
            Some(v) => v.src.cite(),
            None => format!(
                "nginx default {} (canaryd's own default is {})",
                names[k].0, names[k].1
            ),
        },
    })
}

/// A level's headers as settings citing their directives.
fn settings(h: &Option<Vec<super::Val<(String, String)>>>) -> Vec<Setting<(String, String)>> {
    h.iter()
        .flatten()
        .map(|v| Setting {
            value: v.value.clone(),
            comment: v.src.cite(),
        })
        .collect()
}

/// The values of a level's header rules and error pages, to compare levels.
type RuleValues = [Vec<(String, String)>; 4];

fn rule_values(l: &Level) -> RuleValues {
    [
        &l.set_headers,
        &l.add_headers,
        &l.hide_headers,
        &l.error_pages,
    ]
    .map(values)
}

/// A level's own (name or status, value) pairs of one kind.
type Pairs = Option<Vec<super::Val<(String, String)>>>;

/// A level's own header rules and error pages.
fn own_rules(l: &Level) -> [&Pairs; 4] {
    [
        &l.set_headers,
        &l.add_headers,
        &l.hide_headers,
        &l.error_pages,
    ]
}

fn values(h: &Option<Vec<super::Val<(String, String)>>>) -> Vec<(String, String)> {
    h.iter().flatten().map(|v| v.value.clone()).collect()
}
