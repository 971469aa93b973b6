use super::*;

#[test]
fn strings_are_escaped_and_comments_aligned() {
    assert_eq!(q("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    let mut out = String::new();
    kv(&mut out, "max_fails = 3", "nginx\nmax_fails=3");
    assert_eq!(
        out,
        format!("max_fails = 3{}# nginx max_fails=3\n", " ".repeat(21))
    );
}

#[test]
fn handled_findings_are_grouped_by_directive() {
    let f = |file: &str, line, d: &str| Finding {
        file: file.into(),
        line,
        directive: d.into(),
        reason: "r".into(),
    };
    let g = grouped(&[
        f("a", 3, "x"),
        f("a", 9, "x"),
        f("b", 2, "x"),
        f("a", 4, "y"),
    ]);
    assert_eq!(g[0].2, "a:3, 9, b:2");
    assert_eq!(g[1].2, "a:4");
}
