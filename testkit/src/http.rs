//! A tiny blocking HTTP/1.1 client over `std::net::TcpStream` for tests.
//!
//! Tests talk to real processes (canaryd, the fake gateway, Prometheus) and
//! need exact control of headers and connection reuse, without an async
//! runtime. [`Client`] keeps one connection alive across requests and
//! reconnects once, transparently, when the server had closed the idle
//! connection before answering. Wire details live in `http/wire.rs`,
//! body-as-it-arrives reading in `http/stream.rs`, query encoding in
//! `http/urlencode.rs`.

mod stream;
mod urlencode;
mod wire;

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub use stream::StreamingResponse;
pub use urlencode::percent_encode;

use wire::Head;

/// Default connect, read and write timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// All headers in received order, names as sent by the server.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        wire::find(&self.headers, name)
    }

    /// All values of header `name` (case-insensitive), in received order.
    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        wire::find_all(&self.headers, name)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// When the body is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response body is not JSON ({e}); status {} body {:?}",
                self.status,
                self.text()
            )
        })
    }
}

/// A keep-alive HTTP/1.1 connection to one address.
#[derive(Debug)]
pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    timeout: Duration,
}

/// Why one attempt at a request failed.
enum Failure {
    /// Nothing of a response was received: safe to retry on a new connection.
    BeforeResponse(io::Error),
    Other(io::Error),
}

impl Failure {
    fn into_io(self) -> io::Error {
        match self {
            Failure::BeforeResponse(e) | Failure::Other(e) => e,
        }
    }
}

fn open(addr: SocketAddr, timeout: Duration) -> io::Result<BufReader<TcpStream>> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    Ok(BufReader::new(stream))
}

impl Client {
    /// Connects to `addr` (10 s connect/read/write timeouts, TCP_NODELAY).
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        Ok(Client {
            addr,
            conn: Some(open(addr, TIMEOUT)?),
            timeout: TIMEOUT,
        })
    }

    /// The address this client talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the connect/read/write timeout for this and later connections.
    pub fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.timeout = timeout;
        if let Some(conn) = &self.conn {
            conn.get_ref().set_read_timeout(Some(timeout))?;
            conn.get_ref().set_write_timeout(Some(timeout))?;
        }
        Ok(())
    }

    /// Drops the current connection; the next request opens a new one.
    pub fn close(&mut self) {
        self.conn = None;
    }

    /// Whether a kept-alive connection is currently open.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Sends a request and reads the whole response, keeping the connection
    /// for the next request when the response allows it.
    ///
    /// `Host: <addr>` is added unless given, and `Content-Length` when the
    /// body is non-empty (or the method is POST/PUT/PATCH).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let (mut conn, head) = self.exchange(method, path, headers, body)?;
        let framing = wire::framing(method, &head)?;
        let body = wire::read_body(&mut conn, framing)?;
        if head.keep_alive() && framing.reusable() && head.status != 101 {
            self.conn = Some(conn);
        }
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    /// `GET path` without extra headers.
    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[], b"")
    }

    /// `POST path` with `body`.
    pub fn post(&mut self, path: &str, body: &[u8]) -> io::Result<Response> {
        self.request("POST", path, &[], body)
    }

    /// Sends a request and returns as soon as the response head arrived; the
    /// body is then read with [`StreamingResponse::next_chunk`]. The
    /// connection moves into the returned value; this client opens a new one
    /// for its next request.
    pub fn stream(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<StreamingResponse> {
        let (conn, head) = self.exchange(method, path, headers, body)?;
        let framing = wire::framing(method, &head)?;
        Ok(StreamingResponse::new(
            head.status,
            head.headers,
            conn,
            framing,
        ))
    }

    /// Sends the request and reads the response head, retrying once on a new
    /// connection when a reused one turns out to be closed.
    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<(BufReader<TcpStream>, Head)> {
        let request = wire::encode_request(&self.addr.to_string(), method, path, headers, body);
        let (conn, reused) = match self.conn.take() {
            Some(conn) => (conn, true),
            None => (open(self.addr, self.timeout)?, false),
        };
        match attempt(conn, &request) {
            Ok(done) => Ok(done),
            Err(Failure::BeforeResponse(_)) if reused => {
                attempt(open(self.addr, self.timeout)?, &request).map_err(Failure::into_io)
            }
            Err(failure) => Err(failure.into_io()),
        }
    }
}

/// Writes `request` and reads the response head, skipping interim 1xx
/// responses (except 101).
fn attempt(
    mut conn: BufReader<TcpStream>,
    request: &[u8],
) -> Result<(BufReader<TcpStream>, Head), Failure> {
    let sent = conn
        .get_mut()
        .write_all(request)
        .and_then(|()| conn.get_mut().flush());
    sent.map_err(Failure::BeforeResponse)?;
    match conn.fill_buf() {
        Ok([]) => {
            return Err(Failure::BeforeResponse(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before any response byte",
            )))
        }
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
            ) =>
        {
            return Err(Failure::BeforeResponse(e))
        }
        Err(e) => return Err(Failure::Other(e)),
    }
    loop {
        let head = wire::read_head(&mut conn)
            .map_err(Failure::Other)?
            .ok_or_else(|| {
                Failure::Other(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed after an interim response",
                ))
            })?;
        if (100..200).contains(&head.status) && head.status != 101 {
            continue;
        }
        return Ok((conn, head));
    }
}

/// `GET path` on a new connection.
pub fn get(addr: SocketAddr, path: &str) -> io::Result<Response> {
    Client::connect(addr)?.get(path)
}

/// `POST path` with `body` on a new connection.
pub fn post(addr: SocketAddr, path: &str, body: &[u8]) -> io::Result<Response> {
    Client::connect(addr)?.post(path, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;
    use std::thread;

    /// Reads one request head (tests send no bodies) from `s`.
    fn read_request(s: &mut BufReader<TcpStream>) -> String {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if s.read_line(&mut line).unwrap() == 0 {
                return head;
            }
            head.push_str(&line);
            if line == "\r\n" {
                return head;
            }
        }
    }

    #[test]
    fn keeps_alive_and_retries_when_server_closed_idle_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            // Connection 1: answer one request, then close while idle.
            let (s, _) = listener.accept().unwrap();
            let mut s = BufReader::new(s);
            assert!(read_request(&mut s).starts_with("GET /one HTTP/1.1\r\n"));
            s.get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none")
                .unwrap();
            drop(s);
            // Connection 2: the retried request, chunked answer.
            let (s, _) = listener.accept().unwrap();
            let mut s = BufReader::new(s);
            let req = read_request(&mut s);
            assert!(req.starts_with("GET /two HTTP/1.1\r\n"), "{req}");
            assert!(req.contains(&format!("Host: {addr}\r\n")), "{req}");
            s.get_mut()
                .write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n3\r\ntwo\r\n0\r\n\r\n",
                )
                .unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest);
        });
        let mut client = Client::connect(addr).unwrap();
        let one = client.get("/one").unwrap();
        assert_eq!((one.status, one.text().as_str()), (200, "one"));
        assert!(client.is_connected());
        let two = client.get("/two").unwrap();
        assert_eq!((two.status, two.text().as_str()), (200, "two"));
        assert_eq!(two.headers_all("X-A"), vec!["1", "2"]);
        drop(client);
        server.join().unwrap();
    }

    #[test]
    fn body_until_eof_without_length() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut s = BufReader::new(s);
            read_request(&mut s);
            s.get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil eof")
                .unwrap();
        });
        let mut client = Client::connect(addr).unwrap();
        let r = client.get("/").unwrap();
        assert_eq!(r.text(), "until eof");
        assert!(!client.is_connected());
        server.join().unwrap();
    }
}
