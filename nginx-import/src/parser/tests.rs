use super::*;

fn names(ds: &[Directive]) -> Vec<&str> {
    ds.iter().map(|d| d.name()).collect()
}

fn err(src: &str) -> String {
    parse("f.conf", src).unwrap_err().to_string()
}

#[test]
fn directives_blocks_and_lines() {
    let src = "# top\nupstream u {\n  server 127.0.0.1:1 weight=5; # c\n  keepalive 10;\n}\n\nserver {\n listen 80;\n location /a { proxy_pass http://u; }\n}\n";
    let ds = parse("f.conf", src).unwrap();
    assert_eq!(names(&ds), ["upstream", "server"]);
    assert_eq!(ds[0].line, 2);
    assert_eq!(ds[0].arg(0), Some("u"));
    let up = ds[0].block.as_ref().unwrap();
    assert_eq!(names(up), ["server", "keepalive"]);
    assert_eq!(up[0].line, 3);
    assert_eq!(up[0].arg(1), Some("weight=5"));
    assert_eq!(up[1].line, 4);
    let srv = ds[1].block.as_ref().unwrap();
    assert_eq!(srv[1].line, 9);
    let loc = srv[1].block.as_ref().unwrap();
    assert_eq!(loc[0].text(), "proxy_pass http://u");
    assert_eq!(&*loc[0].file, "f.conf");
}

#[test]
fn quoted_strings_and_escapes() {
    let ds = parse(
        "f",
        "proxy_set_header Connection \"\";\nadd_header X 'a \\'b\\' c';\nset $x \"a\\tb\\q\";\n",
    )
    .unwrap();
    assert_eq!(ds[0].args()[1].value, "");
    assert_eq!(ds[0].args()[1].quote, Some('"'));
    assert_eq!(ds[0].text(), "proxy_set_header Connection \"\"");
    assert_eq!(ds[1].arg(1), Some("a 'b' c"));
    assert_eq!(ds[2].arg(1), Some("a\tb\\q"));
    // A quote inside a word and `#` inside a word are literal.
    let ds = parse("f", "a b\"c d#e;\n").unwrap();
    assert_eq!(ds[0].arg(0), Some("b\"c"));
    assert_eq!(ds[0].arg(1), Some("d#e"));
}

#[test]
fn variables_in_words() {
    let ds = parse(
        "f",
        "location / { proxy_pass http://${backend}_gateway; }\nmap $http_x $v {}\n",
    )
    .unwrap();
    let loc = ds[0].block.as_ref().unwrap();
    assert_eq!(loc[0].arg(0), Some("http://${backend}_gateway"));
    assert_eq!(ds[1].arg(0), Some("$http_x"));
    assert_eq!(ds[1].block.as_deref(), Some(&[][..]));
}

#[test]
fn multi_line_directive_starts_at_its_first_word() {
    let ds = parse("f", "\n\nlog_format main\n  '$remote_addr'\n  '$status';\n").unwrap();
    assert_eq!(ds[0].line, 3);
    assert_eq!(ds[0].args().len(), 3);
}

#[test]
fn syntax_errors_name_line_and_expectation() {
    assert_eq!(
        err("server {\n listen 80\n}\n"),
        "f.conf:3: unexpected `}`: expected `;` to end the `listen` directive of line 2"
    );
    assert_eq!(
        err("http {\n server {\n listen 80;\n"),
        "f.conf:4: unexpected end of file: expected `}` to close the block opened on line 2"
    );
    assert_eq!(
            err("listen 80"),
            "f.conf:1: unexpected end of file: expected `;` or `{` after the `listen` directive of line 1"
        );
    assert_eq!(
        err("a;\n}\n"),
        "f.conf:2: unexpected `}`: no block is open here"
    );
    assert_eq!(err("\n;"), "f.conf:2: unexpected `;`: expected a directive");
    assert_eq!(
        err("{ }"),
        "f.conf:1: unexpected `{`: expected a directive name before the block"
    );
    assert_eq!(
        err("a \"b\nc;\n"),
        "f.conf:1: unterminated string: expected a closing \" before the end of the file"
    );
    assert_eq!(
        err("a \"b\"c;"),
        "f.conf:1: unexpected `c` right after a quoted string: expected a space, `;` or `{`"
    );
}

#[test]
fn never_panics_on_truncated_or_odd_input() {
    let src = "http {\n map $http_x_v $b { default \"p\"; \"c\" 'c'; }\n server { listen 80; location / { proxy_pass http://${b}_gw; } }\n}\n\\\\ ${ \"\\";
    for end in 0..=src.len() {
        if src.is_char_boundary(end) {
            let _ = parse("f", &src[..end]);
        }
    }
    let deep = "a {".repeat(200);
    assert!(err(&deep).contains("nested deeper"));
    let _ = parse("f", "\u{0}\u{ff}é {;}");
}
