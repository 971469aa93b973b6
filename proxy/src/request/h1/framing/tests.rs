use super::{Chunked, Framing, Malformed};

/// Feeds `body` to a chunked scanner in pieces of `step` bytes; returns the bytes it took.
fn chunked_in_steps(body: &[u8], step: usize) -> Result<(usize, bool), Malformed> {
    let mut f = Framing::Chunked(Chunked::default());
    let mut taken = 0;
    for piece in body.chunks(step) {
        let n = f.advance(piece)?;
        taken += n;
        if n < piece.len() {
            break;
        }
    }
    Ok((taken, f.is_done()))
}

#[test]
fn a_chunked_body_ends_after_its_last_chunk_and_trailers() {
    let body = b"5\r\nhello\r\n1a; ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
    for step in [1, 2, 3, 7, body.len()] {
        assert_eq!(
            chunked_in_steps(body, step),
            Ok((body.len(), true)),
            "step {step}"
        );
    }
}

#[test]
fn bytes_after_the_body_are_not_taken() {
    let body = b"0\r\n\r\nHTTP/1.1 200 OK\r\n";
    assert_eq!(chunked_in_steps(body, 64), Ok((5, true)));
}

#[test]
fn an_unfinished_body_is_not_done() {
    assert_eq!(chunked_in_steps(b"5\r\nhel", 64), Ok((6, false)));
    assert_eq!(chunked_in_steps(b"0\r\n", 64), Ok((3, false)));
}

#[test]
fn malformed_chunked_framing_is_refused() {
    for body in [
        &b"x\r\n"[..],
        b"5\nhello\r\n",
        b"5\r\nhelloX\r\n",
        b"\r\n",
        b"ffffffffffffffffff\r\n",
    ] {
        assert_eq!(chunked_in_steps(body, 64), Err(Malformed), "{body:?}");
    }
}

#[test]
fn a_length_counts_down_and_stops_at_zero() {
    let mut f = Framing::Length(10);
    assert_eq!(f.advance(b"12345"), Ok(5));
    assert!(!f.is_done());
    assert_eq!(f.advance(b"67890extra"), Ok(5));
    assert!(f.is_done());
}

#[test]
fn until_close_takes_everything_and_is_never_done() {
    let mut f = Framing::UntilClose;
    assert_eq!(f.advance(b"abc"), Ok(3));
    assert!(!f.is_done());
}
