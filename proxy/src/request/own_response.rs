//! The answers canaryd writes itself (502, 504, 413, 408, 400 …): pingora's error header, the
//! route's `add_response_headers` (as nginx's `add_header … always`) and, when the route has
//! one for the status, its error page (read when the configuration was loaded) as an HTML
//! body.

use bytes::Bytes;
use http::header;
use pingora_core::protocols::http::ServerSession;

use super::session::Request;

/// Writes the answer `status` for request `r`; the connection is not kept alive.
pub async fn send(
    r: &Request<'_>,
    ds: &mut ServerSession,
    status: u16,
) -> pingora_error::Result<()> {
    let mut resp = ServerSession::generate_error(status);
    r.route.headers.add_to(&mut resp, &r.vars());
    let body = match r.route.error_pages.get(status) {
        Some(page) => {
            resp.insert_header(header::CONTENT_TYPE, "text/html; charset=utf-8")?;
            resp.set_content_length(page.len())?;
            page.clone()
        }
        None => Bytes::new(),
    };
    ds.write_error_response(resp, body).await
}
