//! The repair loop on small types of its own: what it does when no placeholder fits, how far
//! it goes, and what it drops.

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: String,
    #[serde(default)]
    count: u32,
    #[serde(default)]
    items: Vec<Item>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // never built: `kind` refuses every value
struct Item {
    kind: Never,
    #[serde(default)]
    n: u32,
}

/// Refuses every value: no placeholder fits.
#[derive(Debug)]
struct Never;

impl<'de> Deserialize<'de> for Never {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        de::IgnoredAny::deserialize(d)?;
        Err(de::Error::custom("expected nothing at all"))
    }
}

fn load(src: &str, validate: impl FnOnce(&File) -> Vec<Invalid>) -> Result<File, String> {
    Loader::new("f.toml", src)
        .load(validate)
        .map_err(|e| e.to_string())
}

#[test]
fn an_element_no_placeholder_fits_gives_up_its_array_not_the_file() {
    let src = "count = \"x\"\nname = 5\n[[items]]\nkind = 1\n";
    let mut validated = false;
    let e = load(src, |f| {
        validated = true;
        assert!(f.items.is_empty());
        // About the given-up array: dropped.
        vec![Invalid {
            key: "items".into(),
            message: "expected at least one item".into(),
        }]
    })
    .unwrap_err();
    assert!(validated, "the rest still deserializes and is validated");
    assert_eq!(
        e,
        "f.toml:1: key `count`: invalid type: found string \"x\", expected u32\n\
         f.toml:2: key `name`: invalid type: found signed int `5`, expected a string\n\
         f.toml:4: key `items[0].kind`: expected nothing at all"
    );
}

#[test]
fn a_required_key_no_placeholder_fits_still_lets_its_siblings_be_checked() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Root {
        a: Never,
        b: u32,
    }
    let e = Loader::new("f.toml", "a = 1\nb = \"x\"\n")
        .load(|_: &Root| Vec::new())
        .unwrap_err()
        .to_string();
    // serde reports a missing key after the others: `b` is checked before the loop stops.
    assert_eq!(
        e,
        "f.toml:1: key `a`: expected nothing at all\n\
         f.toml:2: key `b`: invalid type: found string \"x\", expected u32"
    );
}

#[test]
fn many_bad_elements_are_all_reported() {
    let tags: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let src = format!("name = \"n\"\ntags = [{}]\n", tags.join(", "));
    let e = load(&src, |_| Vec::new()).unwrap_err();
    assert_eq!(e.lines().count(), 100, "{e}");
    assert!(
        e.ends_with("key `tags[99]`: invalid type: found signed int `99`, expected a string"),
        "{e}"
    );
}

#[test]
fn semantic_problems_about_repaired_keys_are_dropped_the_others_kept() {
    let src = "name = \"n\"\ncount = -1\ntags = [\"a\", 5]\n";
    let e = load(src, |f| {
        assert_eq!(f.count, 0, "the default");
        assert_eq!(f.tags.len(), 2, "the bad element holds a placeholder");
        ["count", "tags[1]", "tags[0]", "name"]
            .iter()
            .map(|k| Invalid {
                key: k.to_string(),
                message: "semantic".into(),
            })
            .collect()
    })
    .unwrap_err();
    assert_eq!(
        e,
        "f.toml:1: key `name`: semantic\n\
         f.toml:2: key `count`: invalid value signed int `-1`, expected u32\n\
         f.toml:3: key `tags[1]`: invalid type: found signed int `5`, expected a string\n\
         f.toml:3: key `tags[0]`: semantic"
    );
}

#[test]
fn a_clean_file_loads() {
    let f = load("name = \"n\"\ntags = [\"a\"]\n", |_| Vec::new()).unwrap();
    assert_eq!((f.name.as_str(), f.count, f.tags.len()), ("n", 0, 1));
}
