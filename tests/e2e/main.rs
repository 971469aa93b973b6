//! The end-to-end suite: whole-binary tests, one test binary (one link) for all. Each test runs
//! the built `canaryd` as a real process, on a generated config, against real processes: fake
//! gateways (`testkit`'s `fake-gateway`), a real Prometheus, the real `nginx -t`, a headless
//! Chromium over WebDriver, a stand-in systemd notify socket. Helpers shared by every area are
//! in [`common`]; tests needing Prometheus or Chromium skip when it is missing, unless
//! `CANARYD_REQUIRE_TOOLS` is set (as `scripts/test` does).
//!
//! - [`access_log`]: every request of a mixed load logged once, `combined` equal to a real
//!   nginx's lines, `json` parsing; SIGUSR1 reopen under load; a full disk; SIGTERM.
//! - [`approval`]: a gated step waits for `approve`, across a restart, and still rolls back.
//! - [`cli`]: `canaryd check` locates every mistake; `canaryd serve` refuses a bad config or a
//!   busy port.
//! - [`connections`]: downstream keepalive request limit and idle timeout, per-route upstream
//!   timeouts (504).
//! - [`dashboards`]: every PromQL expression of the Grafana dashboard and the alerting rules runs
//!   against a real Prometheus scraping canaryd.
//! - [`failover`]: a killed, failing or unhealthy canary costs clients nothing; fallbacks are
//!   counted.
//! - [`fleet`]: three canaryd sharing one rollout through a real etcd, each through its own
//!   relay: one leader, the split everywhere, failover, fencing, partition, etcd down.
//! - [`forwarding`]: forwarding headers as the seed's nginx front sets them; the override header
//!   stripped.
//! - [`judge`]: the sequential canary-vs-stable test rolls back a 4× worse canary, passes an
//!   equal one, and the traffic-share check holds a canary that does not get its share.
//! - [`headers`]: header rules seen by a backend and a client, the request id, canaryd's own
//!   502 with the route's headers and error page (re-read on SIGHUP).
//! - [`import_nginx`]: `canaryd import-nginx` on nginx fronts that the real `nginx -t` accepts.
//! - [`limits`]: `max_body_size` answers 413 for `Content-Length` and chunked bodies.
//! - [`malformed`]: garbage, huge and slowloris requests, and a non-HTTP upstream.
//! - [`operate`]: the admin API's authentication and actions, the CLI against a running daemon,
//!   the token file's rules, reload on SIGHUP, SIGTERM mid-rollout, manual mode.
//! - [`replay`]: `canaryd replay` over a history backfilled into a real Prometheus: a clean
//!   history promotes, a breach rolls back at the first evaluation after `for`.
//! - [`retention`]: the decision log rotates at its size and the history reads across it.
//! - [`rollout`]: the rollout controller with a real Prometheus: promotion, rollbacks, the memory
//!   rule, a Prometheus outage, `kill -9` mid-step, an unreadable state file.
//! - [`routing`]: split accuracy, exact 0 % and 100 %, header override, sticky buckets.
//! - [`shutdown`]: SIGTERM drains in-flight requests within `shutdown_grace`; SIGINT stops at
//!   once.
//! - [`slow_prometheus`]: a slow, hanging, flooding or broken Prometheus delays neither an
//!   operator command nor a local rollback.
//! - [`status_page`]: the admin status page in a real headless Chromium, checked against
//!   `/api/v1/status`.
//! - [`streaming`]: server-sent events, WebSocket upgrades and large request bodies stream
//!   through.
//! - [`upstreams`]: named upstreams by path and host beside the split, their own metrics, a
//!   reload moving a route to another upstream.
//! - [`tls`]: TLS termination with curl, openssl s_client and h2load: SNI, ALPN h2, the
//!   protocol floor, resumption, X-Forwarded-Proto, SSE over h2, the https redirect and its
//!   ACME exception, certificates renewed on SIGHUP under an open connection, located errors,
//!   an https upstream verified with `ca_file`, and testssl.sh (no old protocol, no weak cipher).
//! - [`systemd`]: `sd_notify` readiness, watchdog, reload and stop; the shipped `deploy/` files
//!   (the socket unit holds exactly the configured listeners).
//! - [`upgrade`]: `serve --upgrade` under traffic loses no request, keeps the rollout and carries
//!   the TLS listener; its failures leave the old process serving; restarts under systemd
//!   socket activation.

mod common;

mod access_log;
mod approval;
mod cli;
mod connections;
mod dashboards;
mod failover;
mod fleet;
mod forwarding;
mod headers;
mod import_nginx;
mod judge;
mod limits;
mod malformed;
mod operate;
mod replay;
mod retention;
mod rollout;
mod routing;
mod shutdown;
mod slow_prometheus;
mod status_page;
mod streaming;
mod systemd;
mod tls;
mod upgrade;
mod upstreams;
