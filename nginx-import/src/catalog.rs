//! What canaryd says about an nginx directive that does not become a setting: either canaryd
//! already behaves that way (nothing to configure), or it cannot do it (untranslated), with
//! the reason shown to the user. [`super::translate`] handles the directives that do become
//! settings and asks here about everything else.

use crate::parser::Directive;

/// The verdict on one directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// canaryd already does what the directive asks; the reason says how.
    Handled(String),
    /// canaryd cannot do it; the reason says why and what to do instead.
    Untranslated(String),
}

/// Why `listen … quic` and HTTP/3 are untranslated.
pub const QUIC: &str = "canaryd serves HTTP/1.1 and HTTP/2 over TCP (TLS or not); no QUIC/HTTP/3, so this listener is left out";
const TLS_FIXED: &str = "canaryd offers a fixed modern set: TLS 1.2 and 1.3, AEAD suites with ECDHE only (docs/configuration.md#proxytls)";
const NO_FILES: &str = "only matters for files nginx serves itself; canaryd serves none";
const HEADERS_SET: &str = "not translated by import-nginx yet: write it as `set_request_headers` ([proxy] or the route; values may use $host, $remote_addr, $scheme, $request_id; `Proxy` is removed by default)";
const NEXT_UPSTREAM: &str = "canaryd retries a failed connect once on the other pool, and idempotent requests that got 502/503/504 from the canary on stable (`[routing] retry_on_canary_error`); there is no per-server retry policy";
const BALANCING: &str = "canaryd balances the servers of a pool by smooth weighted round-robin; to keep a client on one variant use `[routing] sticky` (key = \"ip\", \"cookie\" or \"header:NAME\")";

/// Classifies a directive canaryd has no setting for.
pub fn classify(d: &Directive) -> Verdict {
    use Verdict::{Handled, Untranslated};
    let name = d.name();
    let a0 = d.arg(0).unwrap_or("");
    let handled = |s: &str| Handled(s.to_string());
    let untranslated = |s: &str| Untranslated(s.to_string());
    match name {
        "proxy_http_version" if a0 == "1.1" => {
            handled("canaryd always talks HTTP/1.1 to upstreams and keeps the connections alive")
        }
        "proxy_http_version" => untranslated("canaryd always talks HTTP/1.1 to upstreams"),
        "proxy_set_header" => proxy_set_header(d),
        "proxy_buffering" if a0 == "off" => handled(
            "canaryd always streams responses as they arrive (SSE works without a setting)",
        ),
        "proxy_buffering" => untranslated(
            "canaryd never buffers responses; it always streams them, as nginx does with `proxy_buffering off`",
        ),
        "proxy_request_buffering" if a0 == "off" => {
            handled("canaryd always streams request bodies to the upstream")
        }
        "proxy_request_buffering" => untranslated(
            "canaryd never buffers request bodies; it always streams them to the upstream",
        ),
        "proxy_cache" if a0 == "off" => handled("canaryd has no cache"),
        "proxy_redirect" if a0 == "off" => {
            handled("canaryd does not rewrite Location headers")
        }
        "proxy_pass_request_headers" | "proxy_pass_request_body" if a0 == "on" => {
            handled("canaryd forwards the request headers and body")
        }
        "access_log" | "log_format" => handled(
            "translated as `[proxy.access_log]` where the front's main location uses it",
        ),
        "log_not_found" | "log_subrequest" | "open_log_file_cache" => untranslated(
            "canaryd's access log has one line per proxied request and no file cache to tune",
        ),
        "server_name" => handled(
            "a single server block serves every Host name, as nginx did; canaryd forwards Host as received (routes can match names with `hosts`)",
        ),
        "zone" => handled(
            "canaryd's pools are shared by all its threads; no shared-memory zone is needed",
        ),
        "sendfile" | "tcp_nopush" | "default_type" | "types" | "types_hash_max_size"
        | "types_hash_bucket_size" | "open_file_cache" | "aio" | "directio" | "output_buffers" => {
            handled(NO_FILES)
        }
        "user" => handled(
            "the systemd unit (deploy/canaryd.service) runs canaryd as its own dynamic user",
        ),
        "pid" | "daemon" | "master_process" => handled(
            "canaryd runs in the foreground under systemd (deploy/canaryd.service); no pid file",
        ),
        "use" | "multi_accept" | "accept_mutex" | "accept_mutex_delay" => {
            handled("canaryd's event loop (Pingora on tokio) needs no tuning")
        }
        "client_header_timeout" if time_is(a0, 60) => handled(
            "canaryd waits at most 60 s for a request header (Pingora's fixed timeout)",
        ),
        "client_header_timeout" => untranslated(
            "canaryd's request header timeout is fixed at 60 s (Pingora does not let it be changed)",
        ),
        "error_log" => untranslated(
            "canaryd logs to stderr (the journal under systemd); set the level with CANARYD_LOG, JSON lines with CANARYD_LOG_FORMAT=json",
        ),
        "worker_connections" | "worker_rlimit_nofile" => untranslated(
            "canaryd has no connection cap; the systemd unit sets the file limit (LimitNOFILE)",
        ),
        "worker_cpu_affinity" | "worker_priority" | "thread_pool" | "timer_resolution"
        | "pcre_jit" | "lock_file" | "load_module" | "env" | "worker_shutdown_timeout" => {
            untranslated("nginx process tuning; canaryd has no equivalent")
        }
        "ssl_ciphers" | "ssl_prefer_server_ciphers" | "ssl_ecdh_curve" | "ssl_dhparam"
        | "ssl_conf_command" => handled(TLS_FIXED),
        "ssl_session_tickets" if a0 == "off" => untranslated(
            "canaryd always offers session tickets (keys in memory, rotated every 6 h)",
        ),
        "ssl_session_cache" | "ssl_session_timeout" | "ssl_session_tickets"
        | "ssl_session_ticket_key" => handled(
            "canaryd resumes TLS sessions with tickets (keys in memory, rotated every 6 h) and a session cache",
        ),
        "ssl_stapling" | "ssl_stapling_verify" if a0 == "off" => {
            handled("canaryd does not staple OCSP responses")
        }
        "ssl_stapling" | "ssl_stapling_verify" | "ssl_stapling_file" | "ssl_stapling_responder"
        | "ssl_trusted_certificate" => {
            untranslated("canaryd does not staple OCSP responses")
        }
        "ssl_client_certificate" | "ssl_verify_client" | "ssl_verify_depth" | "ssl_crl" => {
            untranslated("canaryd does not ask clients for certificates")
        }
        "ssl" => untranslated("use `listen … ssl`, which canaryd translates to [proxy.tls]"),
        n if n.starts_with("ssl_") => untranslated(
            "canaryd's TLS has no such setting (docs/configuration.md#proxytls)",
        ),
        "http3" | "quic" | "quic_retry" | "quic_gso" | "quic_host_key" | "quic_bpf" => {
            untranslated(QUIC)
        }
        n if n.starts_with("http2_") => untranslated("canaryd's HTTP/2 settings are fixed"),
        n if n.starts_with("proxy_ssl_") => untranslated(
            "an `https://` upstream is written `\"https://host:port\"` in `servers`, with the pool's `ca_file` (docs/configuration.md); import-nginx translates `proxy_pass http://` only",
        ),
        n if n.starts_with("gzip") || n == "brotli" || n.starts_with("brotli_") => untranslated(
            "canaryd does not compress responses; let the gateways compress, or keep a compressing layer in front",
        ),
        "rewrite" | "rewrite_log" | "uninitialized_variable_warn" => untranslated(
            "canaryd forwards the path unchanged; it has no rewriting",
        ),
        "return" => untranslated(
            "canaryd answers every request by proxying it; it has no fixed responses or redirects",
        ),
        "if" | "set" | "break" => untranslated("canaryd has no request scripting"),
        n if n.starts_with("limit_req") || n.starts_with("limit_conn") || n == "limit_rate"
            || n == "limit_rate_after" =>
        {
            untranslated(
                "canaryd has no rate or connection limits; keep them in the gateways or a layer in front",
            )
        }
        "add_trailer" | "proxy_pass_header"
        | "proxy_ignore_headers" | "more_set_headers" | "more_clear_headers" | "expires"
        | "server_tokens" | "charset" | "proxy_cookie_domain" | "proxy_cookie_path"
        | "proxy_cookie_flags" | "proxy_redirect" => {
            untranslated("no canaryd equivalent: canaryd passes upstream headers through except `hide_response_headers`, and adds `add_response_headers` (write them by hand where this directive set one)")
        }
        "proxy_intercept_errors" | "recursive_error_pages" => untranslated(
            "canaryd's `error_pages` cover the answers it generates itself; upstream errors pass through",
        ),
        "allow" | "deny" | "satisfy" => untranslated(
            "canaryd has no access control on the proxy port (`[routing] trusted_cidrs` only limits who may use the override header)",
        ),
        n if n.starts_with("auth_") => untranslated("canaryd does no authentication"),
        "root" | "alias" | "index" | "try_files" | "autoindex" | "internal" | "disable_symlinks" => {
            untranslated("canaryd serves no files; every request is proxied")
        }
        "resolver" | "resolver_timeout" => untranslated(
            "canaryd resolves server names when it starts or reloads (SIGHUP), not per request",
        ),
        n if n.starts_with("proxy_next_upstream") => untranslated(NEXT_UPSTREAM),
        "proxy_cache" | "proxy_cache_path" | "proxy_cache_key" | "proxy_cache_valid"
        | "proxy_cache_bypass" | "proxy_no_cache" | "proxy_cache_use_stale"
        | "proxy_cache_lock" | "proxy_cache_methods" | "proxy_cache_min_uses"
        | "proxy_cache_revalidate" | "proxy_cache_background_update" => {
            untranslated("canaryd has no response cache")
        }
        "proxy_buffers" | "proxy_buffer_size" | "proxy_busy_buffers_size"
        | "proxy_max_temp_file_size" | "proxy_temp_file_write_size" | "proxy_temp_path" => {
            untranslated("canaryd never buffers responses (it streams them), so there are no buffers to size")
        }
        "client_body_buffer_size" | "client_header_buffer_size" | "large_client_header_buffers"
        | "client_body_temp_path" | "client_body_in_file_only" | "client_body_in_single_buffer" => {
            untranslated("canaryd streams request bodies and has no buffer settings")
        }
        "split_clients" => untranslated(
            "use `[rollout] initial_percent` for the split and `[routing] sticky` to keep clients on their variant",
        ),
        "ip_hash" | "hash" | "least_conn" | "random" | "least_time" | "sticky" => {
            untranslated(BALANCING)
        }
        "keepalive_time" => untranslated(
            "canaryd has no limit on the lifetime of an upstream connection; `[proxy] upstream_idle_timeout` bounds its idle time",
        ),
        "send_lowat" | "tcp_nodelay" | "reset_timedout_connection" | "lingering_close"
        | "lingering_time" | "lingering_timeout" | "postpone_output" => {
            untranslated("canaryd has no socket tuning settings")
        }
        "location" => untranslated(
            "canaryd routes by path prefix only; regular-expression, exact (`=`) and named (`@`) locations have no equivalent",
        ),
        "stream" | "mail" => untranslated("canaryd proxies HTTP only"),
        _ => untranslated("not supported by canaryd"),
    }
}

fn proxy_set_header(d: &Directive) -> Verdict {
    use Verdict::{Handled, Untranslated};
    let name = d.arg(0).unwrap_or("").to_ascii_lowercase();
    let value = d.arg(1).unwrap_or("");
    let reason = match (name.as_str(), value) {
        ("host", "$host" | "$http_host") => "canaryd forwards the Host header as the client sent it",
        ("x-real-ip", "$remote_addr") => "canaryd sets X-Real-IP to the client's address",
        ("x-forwarded-for", "$proxy_add_x_forwarded_for") => {
            "canaryd appends the client's address to X-Forwarded-For"
        }
        ("x-forwarded-proto", "$scheme" | "http") => {
            "canaryd sets X-Forwarded-Proto (http: it serves plain HTTP)"
        }
        ("proxy", "") => "canaryd removes the Proxy request header by default (httpoxy)",
        ("x-request-id", "$request_id") => {
            "canaryd forwards X-Request-Id: the client's, or one it generates per request"
        }
        ("connection", "") => {
            "canaryd does not forward the client's Connection header; upstream connections stay alive"
        }
        ("connection", "$connection_upgrade") | ("upgrade", "$http_upgrade") => {
            "canaryd proxies WebSocket upgrades as such"
        }
        ("connection", v) if v.eq_ignore_ascii_case("upgrade") => {
            "canaryd proxies WebSocket upgrades as such"
        }
        ("x-forwarded-for", _) => {
            return Untranslated(
                "canaryd always appends the client's address to X-Forwarded-For ($proxy_add_x_forwarded_for); it cannot set another value".into(),
            )
        }
        _ => {
            return Untranslated(HEADERS_SET.to_string())
        }
    };
    Handled(reason.to_string())
}

fn time_is(s: &str, secs: u64) -> bool {
    super::units::parse_time(s) == Some(secs * 1000)
}

#[cfg(test)]
mod tests;
