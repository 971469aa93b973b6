//! `max_body_size`: a body announced too large by `Content-Length` is refused with 413 before
//! any upstream is contacted; a chunked body is stopped with 413 when it passes the limit,
//! whether it is still being read ahead or already streaming to the upstream; bodies within
//! the limit go through.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{free_addr, Canaryd, FakeGateway, Setup};

/// Sends `head` then `body` in chunked framing (`chunk`-byte chunks) and returns the status;
/// stops writing when the answer has come.
fn chunked(d: &Canaryd, path: &str, total: usize, chunk: usize) -> u16 {
    let mut s = TcpStream::connect(d.proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let data = vec![b'c'; chunk];
    let mut sent = 0;
    while sent < total {
        let n = chunk.min(total - sent);
        let ok = write!(s, "{n:x}\r\n")
            .and_then(|_| s.write_all(&data[..n]))
            .and_then(|_| s.write_all(b"\r\n"));
        if ok.is_err() {
            break; // canaryd answered and closed
        }
        sent += n;
    }
    let _ = s.write_all(b"0\r\n\r\n");
    status_of(s)
}

fn status_of(s: TcpStream) -> u16 {
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    line.split(' ').nth(1).unwrap_or("0").parse().unwrap()
}

#[test]
fn bodies_over_max_body_size_get_413_in_both_framings() {
    let stable = FakeGateway::spawn("stable", &[]);
    let canary = FakeGateway::spawn("canary", &[]);
    let mut setup = Setup::new(&stable, &canary, 0.0);
    setup.proxy = "max_body_size = \"100KiB\"\n".into();
    setup.tail = format!(
        "[upstreams.nowhere]\nservers = [\"{}\"]\n\
         [[proxy.routes]]\nprefix = \"/nowhere\"\nupstream = \"nowhere\"\nmax_body_size = \"50KiB\"\n\
         [[proxy.routes]]\nprefix = \"/big\"\nmax_body_size = 0\n",
        free_addr()
    );
    let d = Canaryd::start(&setup);

    // Content-Length over the limit: 413 at once, body unsent, upstream never contacted
    // (this route's upstream does not exist: contacting it would be a 502).
    let mut s = TcpStream::connect(d.proxy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    BufReader::new(s.try_clone().unwrap())
        .read_to_string(&mut answer)
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");

    // Within the limit: through.
    let r = d.client().post("/upload", &[1u8; 100 * 1024]).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(chunked(&d, "/upload", 50_000, 10_000), 200);
    // Chunked, over the limit while read ahead (within the first 64 KiB) …
    assert_eq!(chunked(&d, "/nowhere", 200_000, 30_000), 413);
    // … and after streaming to the upstream began (64 KiB read ahead, the rest streamed).
    assert_eq!(chunked(&d, "/upload", 300_000, 8_192), 413);
    // No limit on /big.
    assert_eq!(chunked(&d, "/big", 3_000_000, 65_536), 200);
    let m = d.metrics();
    assert_eq!(
        m[r#"canaryd_requests_total{variant="stable",code="4xx",route="default"}"#],
        1.0
    );
    assert_eq!(
        m[r#"canaryd_upstream_requests_total{upstream="nowhere",route="/nowhere",code="4xx"}"#],
        2.0
    );
}
