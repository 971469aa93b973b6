//! `[proxy] https_redirect`: a plain listener answers `301 https://$host$request_uri`, as the
//! nginx server whose only job is `return 301 https://$host$request_uri;` — except for paths
//! under `https_redirect_except` (ACME http-01 challenges by default), which are proxied as
//! usual. Nothing is routed, counted against a variant, or sent upstream.

use bytes::BytesMut;
use http::HeaderValue;
use pingora_core::protocols::http::ServerSession;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::plane::Upstreams;

/// Whether the request is redirected (its path is not under an exception).
pub fn applies(up: &Upstreams, req: &RequestHeader) -> bool {
    let path = req.uri.path();
    !up.https_redirect_except
        .iter()
        .any(|p| path.starts_with(p.as_str()))
}

/// Answers the redirect. The connection stays alive unless a request body would have to be
/// skipped first.
pub async fn to_https(ds: &mut ServerSession) {
    let Some(location) = location(ds.req_header()) else {
        ds.set_keepalive(None);
        let _ = ds.respond_error(400).await;
        return;
    };
    if !ds.is_body_empty() {
        ds.set_keepalive(None);
    }
    let mut resp = ResponseHeader::build(301, Some(2)).ok();
    let written = match resp.as_mut() {
        Some(r) => {
            r.insert_header(http::header::LOCATION, location).is_ok()
                && r.insert_header(http::header::CONTENT_LENGTH, 0).is_ok()
        }
        None => false,
    };
    match resp {
        Some(r) if written => {
            if ds.write_response_header(Box::new(r)).await.is_err()
                || ds.finish_body().await.is_err()
            {
                ds.set_keepalive(None);
            }
        }
        _ => {
            ds.set_keepalive(None);
            let _ = ds.respond_error(500).await;
        }
    }
}

/// `https://$host$request_uri`: nginx's `$host` is the request line's host (HTTP/2's
/// `:authority`), else the `Host` header, lowercased and without its port.
fn location(req: &RequestHeader) -> Option<HeaderValue> {
    let host = match req.uri.host() {
        Some(h) => h.as_bytes(),
        None => strip_port(req.headers.get(http::header::HOST)?.as_bytes()),
    };
    if host.is_empty() {
        return None;
    }
    let path = req.raw_path();
    let mut out = BytesMut::with_capacity(8 + host.len() + path.len());
    out.extend_from_slice(b"https://");
    out.extend(host.iter().map(u8::to_ascii_lowercase));
    if path.first() == Some(&b'/') {
        out.extend_from_slice(path);
    } else {
        // An absolute-form or asterisk request line: the path of its URI.
        out.extend_from_slice(
            req.uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .as_bytes(),
        );
    }
    HeaderValue::from_maybe_shared(out.freeze()).ok()
}

/// `example.com:8080` → `example.com`; `[::1]:80` → `[::1]`.
fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(colon) => &host[..colon],
        None => host,
    }
}

#[cfg(test)]
mod tests;
