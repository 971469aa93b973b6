use super::{parse, Chunked, Framing, Head, Parsed};

fn complete(raw: &str) -> Head {
    match parse(raw.as_bytes()) {
        Parsed::Complete(head) => head,
        _ => panic!("{raw:?} does not parse"),
    }
}

#[test]
fn framing_follows_the_headers() {
    let h = complete("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nstable\n");
    assert_eq!(
        (h.status, h.framing, h.keepalive),
        (200, Framing::Length(7), true)
    );
    assert_eq!(h.head_len, 38);
    let h = complete("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    assert_eq!(h.framing, Framing::Chunked(Chunked::default()));
    let h = complete("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n");
    assert_eq!(h.framing, Framing::UntilClose);
    assert!(h.event_stream);
    let h = complete("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n");
    assert_eq!(h.framing, Framing::Length(0));
}

#[test]
fn keepalive_is_the_upstreams_to_give() {
    assert!(
        !complete("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").keepalive
    );
    assert!(!complete("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keepalive);
    assert!(
        complete("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
            .keepalive
    );
    // Both lengths: the body is read as chunked, the connection is not trusted afterwards.
    let h = complete("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(h.framing, Framing::Chunked(Chunked::default()));
    assert!(!h.keepalive);
}

#[test]
fn informational_answers_are_skipped_and_bad_ones_refused() {
    assert!(matches!(
        parse(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n"),
        Parsed::Informational(40)
    ));
    for raw in [
        &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"garbage\r\n\r\n",
    ] {
        assert!(matches!(parse(raw), Parsed::Invalid), "{raw:?}");
    }
    assert!(matches!(parse(b"HTTP/1.1 200 OK\r\nServ"), Parsed::Partial));
}
