use super::*;

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("canaryd-nginx-source-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(p.join("conf.d")).unwrap();
        Dir(p)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn layered_includes_stop_at_a_budget() {
    let dir = Dir::new("fanout");
    // 12 layers of 4 files, each including every file of the next layer: no cycle and
    // only 48 files, but 4^12 expansions without a budget.
    for layer in 0..12 {
        let d = dir.0.join(format!("l{layer}"));
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..4 {
            let next = format!("include l{}/*.conf;\n", layer + 1);
            std::fs::write(d.join(format!("{i}.conf")), next).unwrap();
        }
    }
    let main = dir.0.join("nginx.conf");
    std::fs::write(&main, "include l0/*.conf;\n").unwrap();
    let e = load(&main).unwrap_err().to_string();
    assert!(e.contains("more than 1000 files included"), "{e}");
}

#[test]
fn glob_matching() {
    assert!(matches(b"*.conf", b"a.conf"));
    assert!(matches(b"*", b"x"));
    assert!(matches(b"a?c*", b"abcdef"));
    assert!(!matches(b"*.conf", b"a.conf.bak"));
    assert!(matches(b"*.c*f", b"x.conf"));
}

#[test]
fn includes_are_spliced_in_place_relative_to_the_main_file() {
    let dir = Dir::new("splice");
    let main = dir.0.join("nginx.conf");
    std::fs::write(
        &main,
        "http {\n  include conf.d/*.conf;\n  include missing.conf;\n  include none/*.conf;\n}\n",
    )
    .unwrap();
    std::fs::write(dir.0.join("conf.d/b.conf"), "server { listen 81; }\n").unwrap();
    // Nested relative includes resolve against the main file's directory, as in nginx.
    std::fs::write(
        dir.0.join("conf.d/a.conf"),
        "\n\ninclude conf.d/upstream.inc;\n",
    )
    .unwrap();
    std::fs::write(
        dir.0.join("conf.d/upstream.inc"),
        "upstream u { server 127.0.0.1:1; }\n",
    )
    .unwrap();
    let loaded = load(&main).unwrap();
    let http = loaded.directives[0].block.as_ref().unwrap();
    let names: Vec<_> = http.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["upstream", "server"]);
    assert!(
        http[0].file.ends_with("conf.d/upstream.inc"),
        "{}",
        http[0].file
    );
    assert_eq!(http[1].line, 1);
    assert_eq!(loaded.untranslated.len(), 1);
    let f = &loaded.untranslated[0];
    assert_eq!(f.line, 3);
    assert_eq!(f.directive, "include missing.conf");
    assert!(f.reason.contains("file not found"), "{}", f.reason);
    assert_eq!(loaded.notes.len(), 1, "{:?}", loaded.notes);
    assert!(loaded.notes[0].contains("no file matches"));
}

#[test]
fn include_loops_are_an_error() {
    let dir = Dir::new("loop");
    let main = dir.0.join("self.conf");
    std::fs::write(&main, "include self.conf;\n").unwrap();
    let e = load(&main).unwrap_err().to_string();
    assert!(e.contains("includes nested deeper"), "{e}");
}

#[test]
fn syntax_errors_in_included_files_name_that_file() {
    let dir = Dir::new("syntax");
    let main = dir.0.join("main.conf");
    std::fs::write(&main, "include conf.d/bad.conf;\n").unwrap();
    std::fs::write(dir.0.join("conf.d/bad.conf"), "server {\n").unwrap();
    let e = load(&main).unwrap_err().to_string();
    assert!(
        e.contains("conf.d/bad.conf:2: unexpected end of file"),
        "{e}"
    );
}
