//! The second pass: from everything collected to the [`Plan`]. [`Tx::finish`] runs the steps in
//! order — the front server block, nginx's inheritance of its settings, its main `proxy_pass`,
//! the upstreams behind it split into stable and canary, `[routing]`, `[proxy]` and routes,
//! notes on behaviour that differs, and the blocks the front leaves unused. The order matters:
//! notes are shown as they were added, and a finding's place among equal lines too.

use super::plan::{Plan, PoolPlan, RoutePlan};
use super::{Key, Level, LocKind, Member, NamedRoute, ServerBlock, Src, Tx};
use crate::parser::Directive;
use crate::ImportError;

/// `[upstreams.NAME]` pools, by name.
type NamedPools = Vec<(String, PoolPlan)>;

impl Tx<'_> {
    pub(super) fn finish(mut self, directives: &[Directive]) -> Result<Plan, ImportError> {
        let srv = self.take_front(directives)?;
        let (srv_eff, eff) = self.effective_levels(&srv);

        // The main location and what it proxies to.
        let slash = srv
            .locs
            .iter()
            .position(|l| l.kind == LocKind::Prefix("/".into()));
        let (main_key, main_src) = self.main_target(&srv, slash)?;
        let front_hosts = self.front_hosts(&srv);
        self.other_targets(&srv, &front_hosts, &main_key, &main_src)?;

        // The upstreams of the front: the default one first.
        let (default_up, map_ups) = self.front_upstreams(&main_key)?;
        let used = used_upstreams(default_up, &map_ups);
        let members = self.members(&used)?;

        // Which servers are the canary.
        let canary = self.canary_set(&members, default_up, &map_ups, &main_src)?;
        let (stable, canary_pool) = self.pools(&members, &canary)?;

        // The split before any rollout: the canary's share of the default upstream.
        let initial_percent = self.initial_percent(default_up, &members, &canary, &main_key);
        let routing = match &main_key {
            Key::Map { map, .. } => self.routing(*map, &map_ups, &members, &canary),
            Key::Upstream(_) => None,
        };

        // [proxy] and routes.
        let base = slash
            .map(|i| eff[i].clone())
            .unwrap_or_else(|| srv_eff.clone());
        let mut routes = self.routes(&srv, &srv_eff, &eff, &base, false);
        for r in &mut routes {
            r.hosts.clone_from(&front_hosts);
        }
        // The other server blocks that proxy, for their own names: routes with `hosts`.
        for h in std::mem::take(&mut self.hosted) {
            let (h_srv_eff, h_eff) = self.effective_levels(&h);
            let mut more = self.routes(&h, &h_srv_eff, &h_eff, &base, true);
            for r in &mut more {
                r.hosts.clone_from(&h.names);
            }
            routes.extend(more);
            self.other_targets(&h, &h.names, &main_key, &main_src)?;
        }
        let (upstreams, mut used_all) = self.named_upstreams(&mut routes)?;
        used_all.extend(used.iter().copied());
        let mut proxy = self.proxy_plan(&srv, &base, &used);
        proxy.error_pages = self.error_page_settings(&srv, &srv_eff, &eff, &base);
        let access_log = self.access_log_plan(&srv, &base);
        let tls = self.tls_plan(&srv);

        self.behaviour_notes(&srv, &eff, slash);
        let health_path = health_path(&srv);

        // Blocks the front does not use, and the findings of those it does.
        self.report_unused(&used_all, &main_key);

        Ok(Plan {
            proxy,
            routes,
            access_log,
            tls,
            stable,
            canary: canary_pool,
            upstreams,
            routing,
            initial_percent,
            health_path,
            handled: self.sink.handled,
            untranslated: self.sink.untranslated,
            notes: self.notes,
        })
    }

    /// The front: the first server block with a `proxy_pass`. The others are reported; the
    /// front's own findings join the translation's.
    fn take_front(&mut self, directives: &[Directive]) -> Result<ServerBlock, ImportError> {
        let Some(front) = self
            .servers
            .iter()
            .position(|s| s.locs.iter().any(|l| !l.targets.is_empty()))
        else {
            let file = directives
                .first()
                .map(|d| d.file.to_string())
                .unwrap_or_default();
            return Err(ImportError::Nothing {
                file,
                why: "no `server` block has a `location` with `proxy_pass http://…`".into(),
            });
        };
        let servers = std::mem::take(&mut self.servers);
        let front_at = servers[front].src.at();
        // nginx's default server for an address: `default_server`, else the first listing it.
        let addrs = |s: &ServerBlock| {
            s.listens
                .iter()
                .chain(&s.tls_listens)
                .map(|l| l.value.clone())
                .collect::<Vec<_>>()
        };
        let mine = addrs(&servers[front]);
        self.front_default = servers[front].catch_all
            || !servers[..front]
                .iter()
                .any(|s| addrs(s).iter().any(|a| mine.contains(a)));
        let mut srv = None;
        for (i, s) in servers.into_iter().enumerate() {
            if i == front {
                srv = Some(s);
                continue;
            }
            let proxies = s.locs.iter().any(|l| !l.targets.is_empty());
            if let (Some(ret), false) = (&s.redirect, proxies) {
                self.redirect_server(s.src.clone(), ret.clone(), s.listens, &s.locs);
                continue;
            }
            if proxies && !s.names.is_empty() && !s.catch_all {
                let mut s = s;
                let sink = std::mem::take(&mut s.sink);
                self.sink.append(sink);
                self.hosted.push(s);
                continue;
            }
            let reason = if proxies && s.catch_all {
                format!("canaryd's catch-all is the server block at {front_at} (its `location /` is [proxy]); this other default server is not translated")
            } else if proxies {
                format!("canaryd's `hosts` match exact names and `*.suffix`: this server has none it can match; only the server blocks at {front_at} and those with names are translated")
            } else {
                "this server block proxies nothing; canaryd has no equivalent (it proxies every request)".to_string()
            };
            self.sink.untranslated.push(s.src.finding(reason));
        }
        let Some(mut srv) = srv else {
            return Err(ImportError::Nothing {
                file: front_at,
                why: "no front server block".into(),
            });
        };
        let sink = std::mem::take(&mut srv.sink);
        self.sink.append(sink);
        Ok(srv)
    }

    /// The `hosts` of the front's routes: none when it is nginx's default server for its
    /// listeners (it answered every Host; canaryd's routes without hosts do).
    fn front_hosts(&mut self, srv: &ServerBlock) -> Vec<String> {
        if self.front_default || srv.names.is_empty() {
            if !srv.names.is_empty() && !self.hosted.is_empty() {
                self.notes.push(format!(
                    "the server block at {} is nginx's default for its listeners (it answered every Host name, not only {}): its routes match any host, the other server blocks' routes their `hosts`",
                    srv.src.at(),
                    srv.names.join(", ")
                ));
            }
            return Vec::new();
        }
        srv.names.clone()
    }

    /// Effective levels, nginx-style inheritance: the server's (under http), and each
    /// location's (under its enclosing location, else the server), in `srv.locs` order.
    fn effective_levels(&self, srv: &ServerBlock) -> (Level, Vec<Level>) {
        let http = self.http.clone();
        let srv_eff = srv.own.under(&http);
        let mut eff: Vec<Level> = Vec::with_capacity(srv.locs.len());
        for loc in &srv.locs {
            let parent = loc.parent.and_then(|p| eff.get(p)).unwrap_or(&srv_eff);
            let e = loc.own.under(parent);
            eff.push(e);
        }
        (srv_eff, eff)
    }

    /// The main `proxy_pass` (of `location /`, else the first that proxies), resolved.
    fn main_target(
        &mut self,
        srv: &ServerBlock,
        slash: Option<usize>,
    ) -> Result<(Key, Src), ImportError> {
        let Some(main_target) = slash
            .and_then(|i| srv.locs.get(i))
            .and_then(|l| l.targets.first())
            .or_else(|| srv.locs.iter().find_map(|l| l.targets.first()))
        else {
            return Err(ImportError::Nothing {
                file: srv.src.file.to_string(),
                why: "no `location` with `proxy_pass http://…`".into(),
            });
        };
        let main_key = self.key(main_target)?;
        let main_src = main_target.src.clone();
        Ok((main_key, main_src))
    }

    /// Reports every `proxy_pass` of the front that goes elsewhere than the main one, or that
    /// cannot be resolved.
    fn other_targets(
        &mut self,
        srv: &ServerBlock,
        hosts: &[String],
        main_key: &Key,
        main_src: &Src,
    ) -> Result<(), ImportError> {
        for loc in &srv.locs {
            for t in &loc.targets {
                let key = match self.key(t) {
                    Ok(key) => key,
                    Err(ImportError::Invalid { message, .. }) => {
                        self.sink.untranslated.push(t.src.finding(message));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                if let (Key::Upstream(u), LocKind::Prefix(prefix)) = (&key, &loc.kind) {
                    if key != *main_key {
                        self.named_routes.push(NamedRoute {
                            prefix: prefix.clone(),
                            hosts: hosts.to_vec(),
                            upstream: *u,
                            src: t.src.clone(),
                        });
                        continue;
                    }
                }
                if key != *main_key {
                    let why = format!(
                        "this location proxies to `{}`, the main one ({}) to `{}`; not translated by import-nginx yet: write `[upstreams.NAME]` with its servers and a `[[proxy.routes]]` with this prefix and `upstream = \"NAME\"` (outside the split) by hand",
                        self.describe(&key),
                        main_src.at(),
                        self.describe(main_key)
                    );
                    self.sink.untranslated.push(t.src.finding(why));
                }
            }
        }
        Ok(())
    }

    /// `[upstreams.NAME]` for the prefix locations that proxy to another upstream, and their
    /// routes (`upstream = "NAME"`, outside the split); returns the pools and their upstreams.
    fn named_upstreams(
        &mut self,
        routes: &mut Vec<RoutePlan>,
    ) -> Result<(NamedPools, Vec<usize>), ImportError> {
        let mut pools: NamedPools = Vec::new();
        let mut used = Vec::new();
        for route in std::mem::take(&mut self.named_routes) {
            let u = route.upstream;
            // A name canaryd accepts (`proxy_pass http://10.0.0.5:8080` has none of its own).
            let name: String = self.upstreams[u]
                .name
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            if !used.contains(&u) {
                let members = self.members(&[u])?;
                let refs: Vec<&Member> = members.iter().collect();
                let pool = self.pool(&name, &refs);
                pools.push((name.clone(), pool));
                used.push(u);
            }
            match routes
                .iter_mut()
                .find(|r| r.prefix == route.prefix && r.hosts == route.hosts)
            {
                Some(r) => r.upstream = Some(name),
                None => routes.push(RoutePlan {
                    prefix: route.prefix,
                    hosts: route.hosts,
                    comment: route.src.cite(),
                    upstream: Some(name),
                    ..RoutePlan::default()
                }),
            }
        }
        Ok((pools, used))
    }

    /// The default upstream (of the main `proxy_pass`, or of the map's default value) and
    /// `(map entry index, upstream)` for every map entry.
    fn front_upstreams(
        &mut self,
        main_key: &Key,
    ) -> Result<(usize, Vec<(usize, usize)>), ImportError> {
        Ok(match main_key {
            Key::Upstream(i) => (*i, Vec::new()),
            Key::Map {
                map,
                prefix,
                suffix,
            } => self.map_upstreams(*map, prefix, suffix)?,
        })
    }

    /// Every upstream and map not used by the front is reported; the findings inside the
    /// upstreams it uses join the translation's.
    fn report_unused(&mut self, used: &[usize], main_key: &Key) {
        let upstreams = std::mem::take(&mut self.upstreams);
        for (i, mut u) in upstreams.into_iter().enumerate() {
            if used.contains(&i) {
                let sink = std::mem::take(&mut u.sink);
                self.sink.append(sink);
            } else if let Some(src) = &u.src {
                self.sink.untranslated.push(src.finding(
                    "upstream not used by the translated front (no translated proxy_pass reaches it)",
                ));
            }
        }
        let used_map = match main_key {
            Key::Map { map, .. } => Some(*map),
            Key::Upstream(_) => None,
        };
        for (i, m) in self.maps.iter().enumerate() {
            if Some(i) != used_map {
                self.sink.untranslated.push(m.src.finding(
                    "map not used by the translated front (no translated proxy_pass reads its variable)",
                ));
            }
        }
    }

    fn behaviour_notes(&mut self, srv: &ServerBlock, eff: &[Level], slash: Option<usize>) {
        if slash.is_none() {
            let prefixes: Vec<String> = srv
                .locs
                .iter()
                .map(|l| {
                    l.src
                        .text
                        .trim_start_matches("location ")
                        .replace(" { … }", "")
                })
                .collect();
            self.notes.push(format!(
                "nginx answered 404 to paths outside its locations ({}); canaryd proxies every path",
                prefixes.join(", ")
            ));
        }
        let no_host: Vec<String> = srv
            .locs
            .iter()
            .enumerate()
            .filter(|(i, l)| !l.targets.is_empty() && eff[*i].sets_host != Some(true))
            .map(|(_, l)| l.src.text.replace(" { … }", ""))
            .collect();
        if !no_host.is_empty() {
            self.notes.push(format!(
                "nginx sent the upstream name as Host (its default `$proxy_host`) for {}; canaryd forwards the client's Host",
                no_host.join(", ")
            ));
        }
    }
}

/// The upstreams of the front: the default one first, then those of the map's values.
fn used_upstreams(default_up: usize, map_ups: &[(usize, usize)]) -> Vec<usize> {
    let mut used = vec![default_up];
    for (_, up) in map_ups {
        if !used.contains(up) {
            used.push(*up);
        }
    }
    used
}

/// A proxied health path to suggest for active checks.
fn health_path(srv: &ServerBlock) -> Option<String> {
    srv.locs
        .iter()
        .filter(|l| !l.targets.is_empty())
        .find_map(|l| match &l.kind {
            LocKind::Prefix(p) if ["/health", "/healthz", "/ready"].contains(&p.as_str()) => {
                Some(p.clone())
            }
            _ => None,
        })
}
