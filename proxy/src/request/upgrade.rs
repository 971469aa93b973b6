//! Upgraded connections (WebSocket): after the upstream's `101`, bytes flow both ways until
//! either side closes.
//!
//! The upgrade request's own body is empty by definition here: the loop never reads ahead on an
//! upgrade request, so nothing the client sends after its header can be taken for a request
//! body. Once the `101` is written, pingora-core's server session reads the client side as a
//! raw, close-delimited stream and the client session writes the upstream side as one, and this
//! loop copies between them. (pingora-proxy ran the two directions as separate tasks and could
//! tear the tunnel down when the upstream's `101` arrived before it had finished the empty
//! request body — pingora#946.)

use pingora_core::protocols::http::v1::client::HttpSession as ClientSession;
use pingora_core::protocols::http::ServerSession;

use super::upstream::{write_body, RelayEnd};

/// Copies both directions until one side closes or fails. `bytes` counts (in, out).
pub async fn tunnel(
    ds: &mut ServerSession,
    us: &mut ClientSession,
    bytes_in: &mut u64,
    bytes_out: &mut u64,
) -> RelayEnd {
    us.maybe_upgrade_body_writer();
    let mut client_open = true;
    loop {
        tokio::select! {
            from_client = ds.read_request_body(), if client_open => match from_client {
                Ok(Some(data)) => {
                    *bytes_in += data.len() as u64;
                    if us.write_body(&data).await.is_err() {
                        return RelayEnd::Upstream(crate::metrics::FailureKind::Reset);
                    }
                }
                // The client finished sending: tell the upstream, keep relaying what it still
                // sends.
                Ok(None) => {
                    client_open = false;
                    us.shutdown().await;
                }
                Err(_) => return RelayEnd::Client,
            },
            from_upstream = us.read_body_ref() => match from_upstream {
                Ok(Some(data)) => {
                    *bytes_out += data.len() as u64;
                    if write_body(ds, data).await.is_err() {
                        return RelayEnd::Client;
                    }
                }
                Ok(None) => return RelayEnd::Complete,
                Err(_) => return RelayEnd::Complete,
            },
        }
    }
}
