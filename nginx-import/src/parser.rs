//! nginx configuration syntax: a tokenizer and a block tree with file and line numbers.
//!
//! Follows nginx's own reader (`ngx_conf_file.c`): `#` starts a comment at the start of a
//! token; `'…'` and `"…"` are quoted strings with `\"`, `\'`, `\\`, `\t`, `\r`, `\n` escapes;
//! a word ends at whitespace, `;` or `{` — except the `{` of `${var}`, and a `}` inside a word
//! is part of it (`http://${backend}_gateway` is one word); a quoted string must be followed by
//! whitespace, `;` or `{`. Directives end with `;` or open a `{ … }` block. Nothing here knows
//! what a directive means; that is [`super::translate`]'s job.

use std::fmt;
use std::sync::Arc;

/// Blocks nested deeper than this are refused (nginx configs are a few levels deep; this keeps
/// hostile input from exhausting the stack).
const MAX_DEPTH: usize = 64;

/// One word of a directive: its value after unescaping, and the quote it was written with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub value: String,
    pub quote: Option<char>,
}

/// A directive: `name arg…;` or `name arg… { … }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The name and the arguments, in order; never empty.
    pub words: Vec<Word>,
    /// The file it was read from, as it should be named in messages.
    pub file: Arc<str>,
    /// Line of the first word (1-based).
    pub line: usize,
    /// The block's directives, for `name … { … }`.
    pub block: Option<Vec<Directive>>,
}

/// A syntax error: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct SyntaxError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Parses a whole file into its top-level directives.
pub fn parse(file: &str, src: &str) -> Result<Vec<Directive>, SyntaxError> {
    let mut p = Parser {
        lexer: Lexer {
            src: src.as_bytes(),
            pos: 0,
            line: 1,
            file,
        },
        file: Arc::from(file),
    };
    p.block(0, None)
}

// === impl Directive ===

impl Directive {
    /// The directive's name.
    pub fn name(&self) -> &str {
        self.words.first().map_or("", |w| w.value.as_str())
    }

    /// The arguments after the name.
    pub fn args(&self) -> &[Word] {
        self.words.get(1..).unwrap_or(&[])
    }

    /// The argument values.
    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args().get(i).map(|w| w.value.as_str())
    }

    /// The directive as written (arguments re-quoted as in the file), without its block, cut
    /// to a readable length.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (i, w) in self.words.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&w.to_string());
        }
        if self.block.is_some() {
            out.push_str(" { … }");
        }
        shorten(out, 100)
    }

    /// `file:line`.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

fn shorten(mut s: String, max: usize) -> String {
    if s.chars().count() > max {
        s = s.chars().take(max - 1).collect();
        s.push('…');
    }
    s
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.quote {
            Some(q) => {
                write!(f, "{q}")?;
                for c in self.value.chars() {
                    match c {
                        '\n' => f.write_str("\\n")?,
                        '\t' => f.write_str("\\t")?,
                        '\r' => f.write_str("\\r")?,
                        c if c == q || c == '\\' => write!(f, "\\{c}")?,
                        c => write!(f, "{c}")?,
                    }
                }
                write!(f, "{q}")
            }
            None => f.write_str(&self.value),
        }
    }
}

// === tokenizer ===

#[derive(Debug)]
enum Tok {
    Word(Word, usize),
    Semi(usize),
    Open(usize),
    Close(usize),
    Eof(usize),
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    file: &'a str,
}

impl Lexer<'_> {
    fn err(&self, line: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            file: self.file.to_string(),
            line,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn next(&mut self) -> Result<Tok, SyntaxError> {
        loop {
            match self.peek() {
                None => return Ok(Tok::Eof(self.line)),
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some(b';') => {
                    self.bump();
                    return Ok(Tok::Semi(self.line));
                }
                Some(b'{') => {
                    self.bump();
                    return Ok(Tok::Open(self.line));
                }
                Some(b'}') => {
                    self.bump();
                    return Ok(Tok::Close(self.line));
                }
                Some(q @ (b'"' | b'\'')) => return self.quoted(q),
                Some(_) => return Ok(self.word()),
            }
        }
    }

    fn quoted(&mut self, q: u8) -> Result<Tok, SyntaxError> {
        let line = self.line;
        self.bump();
        let start = self.pos;
        loop {
            match self.bump() {
                None => {
                    return Err(self.err(
                        line,
                        format!(
                            "unterminated string: expected a closing {} before the end of the file",
                            q as char
                        ),
                    ))
                }
                Some(b'\\') => {
                    self.bump();
                }
                Some(c) if c == q => break,
                Some(_) => {}
            }
        }
        let raw = &self.src[start..self.pos - 1];
        // nginx: after a quoted string comes whitespace, `;` or `{`.
        match self.peek() {
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b';' | b'{') => {}
            Some(c) => {
                return Err(self.err(
                    self.line,
                    format!(
                        "unexpected {} right after a quoted string: expected a space, `;` or `{{`",
                        show(c)
                    ),
                ))
            }
        }
        Ok(Tok::Word(
            Word {
                value: unescape(raw),
                quote: Some(q as char),
            },
            line,
        ))
    }

    fn word(&mut self) -> Tok {
        let line = self.line;
        let start = self.pos;
        let mut after_dollar = false;
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b';' => break,
                b'{' if !after_dollar => break,
                b'\\' => {
                    self.bump();
                    self.bump();
                    after_dollar = false;
                    continue;
                }
                _ => {}
            }
            after_dollar = c == b'$';
            self.bump();
        }
        Tok::Word(
            Word {
                value: unescape(&self.src[start..self.pos]),
                quote: None,
            },
            line,
        )
    }
}

fn show(c: u8) -> String {
    if c.is_ascii_graphic() {
        format!("`{}`", c as char)
    } else {
        format!("byte 0x{c:02x}")
    }
}

/// nginx's escapes: `\"`, `\'`, `\\` lose the backslash; `\t`, `\r`, `\n` become controls;
/// any other backslash is kept.
fn unescape(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' {
            match raw.get(i + 1) {
                Some(&c @ (b'"' | b'\'' | b'\\')) => {
                    out.push(c);
                    i += 2;
                    continue;
                }
                Some(b't') => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                Some(b'r') => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                Some(b'n') => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// === parser ===

struct Parser<'a> {
    lexer: Lexer<'a>,
    file: Arc<str>,
}

impl Parser<'_> {
    /// Directives up to the `}` closing a block opened on `open` (or the end of the file).
    fn block(&mut self, depth: usize, open: Option<usize>) -> Result<Vec<Directive>, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.lexer.err(
                open.unwrap_or(self.lexer.line),
                format!("blocks nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        let mut out = Vec::new();
        let mut words: Vec<Word> = Vec::new();
        let mut first_line = 0;
        loop {
            match self.lexer.next()? {
                Tok::Word(w, line) => {
                    if words.is_empty() {
                        first_line = line;
                    }
                    words.push(w);
                }
                Tok::Semi(line) => {
                    if words.is_empty() {
                        return Err(self.lexer.err(line, "unexpected `;`: expected a directive"));
                    }
                    out.push(Directive {
                        words: std::mem::take(&mut words),
                        file: self.file.clone(),
                        line: first_line,
                        block: None,
                    });
                }
                Tok::Open(line) => {
                    if words.is_empty() {
                        return Err(self.lexer.err(
                            line,
                            "unexpected `{`: expected a directive name before the block",
                        ));
                    }
                    let block = self.block(depth + 1, Some(first_line))?;
                    out.push(Directive {
                        words: std::mem::take(&mut words),
                        file: self.file.clone(),
                        line: first_line,
                        block: Some(block),
                    });
                }
                Tok::Close(line) => {
                    if let Some(w) = words.first() {
                        return Err(self.lexer.err(
                            line,
                            format!(
                                "unexpected `}}`: expected `;` to end the `{}` directive of line {first_line}",
                                w.value
                            ),
                        ));
                    }
                    if open.is_none() {
                        return Err(self
                            .lexer
                            .err(line, "unexpected `}`: no block is open here"));
                    }
                    return Ok(out);
                }
                Tok::Eof(line) => {
                    if let Some(w) = words.first() {
                        return Err(self.lexer.err(
                            line,
                            format!(
                                "unexpected end of file: expected `;` or `{{` after the `{}` directive of line {first_line}",
                                w.value
                            ),
                        ));
                    }
                    if let Some(open) = open {
                        return Err(self.lexer.err(
                            line,
                            format!(
                                "unexpected end of file: expected `}}` to close the block opened on line {open}"
                            ),
                        ));
                    }
                    return Ok(out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
