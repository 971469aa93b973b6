//! Where an upstream response's body ends, so it can be relayed as it arrives — chunked bodies
//! pass through as they are, not decoded and encoded again — and the connection kept for the
//! next request only when its end was seen.

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length`: this many bytes are left.
    Length(u64),
    /// `Transfer-Encoding: chunked`, scanned as it passes.
    Chunked(Chunked),
    /// Neither: the body ends when the upstream closes the connection.
    UntilClose,
}

/// The chunked-body scanner's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// In a chunk-size line: the size so far and how many hex digits it had.
    Size(u64, u8),
    /// In a chunk extension, up to the end of the line.
    Extension(u64),
    /// After a chunk-size line's CR.
    SizeLf(u64),
    /// In a chunk's data: bytes left.
    Data(u64),
    /// After a chunk's data: its CR, then its LF.
    DataCr,
    DataLf,
    /// At the start of a trailer line (after the last chunk).
    TrailerStart,
    /// In a trailer line, up to its LF.
    Trailer,
    /// After the final empty line's CR.
    EndLf,
    /// The body is complete.
    Done,
}

/// A body whose framing does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

// === impl Framing ===

impl Framing {
    /// Takes in `buf`, the next bytes of the body; returns how many of them belong to it
    /// (fewer than `buf.len()` only when the body ended within `buf`).
    pub fn advance(&mut self, buf: &[u8]) -> Result<usize, Malformed> {
        match self {
            Framing::Length(left) => {
                let n = (*left).min(buf.len() as u64);
                *left -= n;
                Ok(n as usize)
            }
            Framing::Chunked(state) => state.advance(buf),
            Framing::UntilClose => Ok(buf.len()),
        }
    }

    /// Whether the whole body has passed.
    pub fn is_done(&self) -> bool {
        matches!(self, Framing::Length(0) | Framing::Chunked(Chunked::Done))
    }
}

// === impl Chunked ===

impl Default for Chunked {
    fn default() -> Self {
        Chunked::Size(0, 0)
    }
}

impl Chunked {
    fn advance(&mut self, buf: &[u8]) -> Result<usize, Malformed> {
        let mut i = 0;
        while i < buf.len() {
            let b = buf[i];
            *self = match *self {
                Chunked::Done => return Ok(i),
                Chunked::Data(left) => {
                    let n = left.min((buf.len() - i) as u64);
                    i += n as usize;
                    *self = if left == n {
                        Chunked::DataCr
                    } else {
                        Chunked::Data(left - n)
                    };
                    continue;
                }
                Chunked::Size(size, digits) => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' if digits < 15 => {
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        Chunked::Size(size * 16 + d, digits + 1)
                    }
                    b';' | b' ' | b'\t' if digits > 0 => Chunked::Extension(size),
                    b'\r' if digits > 0 => Chunked::SizeLf(size),
                    _ => return Err(Malformed),
                },
                Chunked::Extension(size) => match b {
                    b'\r' => Chunked::SizeLf(size),
                    b'\n' => return Err(Malformed),
                    _ => Chunked::Extension(size),
                },
                Chunked::SizeLf(size) => match (b, size) {
                    (b'\n', 0) => Chunked::TrailerStart,
                    (b'\n', size) => Chunked::Data(size),
                    _ => return Err(Malformed),
                },
                Chunked::DataCr => match b {
                    b'\r' => Chunked::DataLf,
                    _ => return Err(Malformed),
                },
                Chunked::DataLf => match b {
                    b'\n' => Chunked::Size(0, 0),
                    _ => return Err(Malformed),
                },
                Chunked::TrailerStart => match b {
                    b'\r' => Chunked::EndLf,
                    b'\n' => return Err(Malformed),
                    _ => Chunked::Trailer,
                },
                Chunked::Trailer => match b {
                    b'\n' => Chunked::TrailerStart,
                    _ => Chunked::Trailer,
                },
                Chunked::EndLf => match b {
                    b'\n' => {
                        *self = Chunked::Done;
                        return Ok(i + 1);
                    }
                    _ => return Err(Malformed),
                },
            };
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests;
