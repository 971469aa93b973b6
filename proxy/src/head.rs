//! Read access to a request's header, whoever parsed it: pingora-core's sessions (a
//! `RequestHeader` with its header maps: HTTP/2, requests with a body, upgrades) or canaryd's
//! own HTTP/1 parser (`request/h1/`: slices of the bytes read, the common bodiless request).
//! Routing, the request id, the forwarding headers, the upstream wire and the access log read
//! requests through these traits, so each exists once for both.

use http::{HeaderMap, HeaderName, Method, Version};
use pingora_http::{HeaderNameVariant, RequestHeader};

/// A request's header lines, looked up by name (case-insensitive).
pub trait Headers: Sync {
    /// The first value of `name`.
    fn get(&self, name: &HeaderName) -> Option<&[u8]>;
    /// Calls `f` with each value of `name`, in order, until it returns `true`.
    fn each_value(&self, name: &HeaderName, f: &mut dyn FnMut(&[u8]) -> bool);
}

/// The first `Some` that `f` gives for a value of `name`.
pub fn find_value<T>(
    headers: &dyn Headers,
    name: &HeaderName,
    mut f: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    let mut found = None;
    headers.each_value(name, &mut |v| {
        found = f(v);
        found.is_some()
    });
    found
}

/// A request header: its request line and header lines.
pub trait RequestHead: Headers {
    fn method(&self) -> &Method;
    /// The request target as the client sent it (path and query).
    fn raw_path(&self) -> &[u8];
    /// The path alone (what routes match).
    fn path(&self) -> &[u8];
    fn version(&self) -> Version;
    /// The host the request is for (`Host`, or the target's authority), without the port.
    fn host(&self) -> &[u8];
    /// Calls `f` with every header line, in the order and case the client sent them.
    fn each_header(&self, f: &mut dyn FnMut(&[u8], &[u8]));
}

// === impl HeaderMap ===

impl Headers for HeaderMap {
    fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        HeaderMap::get(self, name).map(|v| v.as_bytes())
    }

    fn each_value(&self, name: &HeaderName, f: &mut dyn FnMut(&[u8]) -> bool) {
        for v in self.get_all(name) {
            if f(v.as_bytes()) {
                return;
            }
        }
    }
}

// === impl RequestHeader ===

impl Headers for RequestHeader {
    fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        Headers::get(&self.headers, name)
    }

    fn each_value(&self, name: &HeaderName, f: &mut dyn FnMut(&[u8]) -> bool) {
        self.headers.each_value(name, f)
    }
}

impl RequestHead for RequestHeader {
    fn method(&self) -> &Method {
        &self.method
    }

    fn raw_path(&self) -> &[u8] {
        RequestHeader::raw_path(self)
    }

    fn path(&self) -> &[u8] {
        self.uri.path().as_bytes()
    }

    fn version(&self) -> Version {
        self.version
    }

    fn host(&self) -> &[u8] {
        crate::routes::request_host(self)
    }

    fn each_header(&self, f: &mut dyn FnMut(&[u8], &[u8])) {
        let _ = self.map(|name, value| {
            let name = match name {
                HeaderNameVariant::Case(n) => n.as_slice(),
                HeaderNameVariant::Titled(n) => n.as_bytes(),
            };
            f(name, value.as_bytes());
            Ok(())
        });
    }
}
