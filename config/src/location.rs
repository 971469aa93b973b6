//! Locating a dotted key (`proxy.routes[1].prefix`) in TOML source, so errors about a key can
//! name its line. Used by the config loader and the policy loader.

/// Line (1-based) of a dotted key such as `proxy.routes[0].prefix` in the TOML source: the
/// deepest part of the key that exists in the file (a table without a header of its own: where
/// it first appears; an env override has no line).
pub fn line_of(src: &str, key: &str) -> Option<usize> {
    let doc = src.parse::<toml_edit::ImDocument<String>>().ok()?;
    let segs: Vec<(&str, Option<usize>)> = key
        .split('.')
        .map(|seg| match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse().ok()),
            None => (seg, None),
        })
        .collect();
    find_item(doc.as_item(), &segs).map(|span| line_at(src, span.start))
}

type Span = std::ops::Range<usize>;

fn find_item(item: &toml_edit::Item, segs: &[(&str, Option<usize>)]) -> Option<Span> {
    match item {
        _ if segs.is_empty() => item.span(),
        toml_edit::Item::Table(t) => find_in_table(t, segs).or_else(|| t.span()),
        toml_edit::Item::Value(v) => find_value(v, segs).or_else(|| item.span()),
        _ => item.span(),
    }
}

fn find_in_table(t: &toml_edit::Table, segs: &[(&str, Option<usize>)]) -> Option<Span> {
    use toml_edit::{Item, Value};
    let &(name, index) = segs.first()?;
    let child = t.get(name)?;
    let found = match (index, child) {
        (None, _) => find_item(child, &segs[1..]),
        (Some(i), Item::ArrayOfTables(a)) => a
            .get(i)
            .and_then(|t| find_in_table(t, &segs[1..]).or_else(|| t.span())),
        (Some(i), Item::Value(Value::Array(a))) => a.get(i).and_then(|v| find_value(v, &segs[1..])),
        _ => None,
    };
    found.or_else(|| first_span(child))
}

/// Where an item first appears: its own span, or, for a table without a header of its own
/// (`backends` when the file has only `[backends.stable]`, or dotted keys), the earliest of
/// its entries'.
fn first_span(item: &toml_edit::Item) -> Option<Span> {
    match item {
        toml_edit::Item::Table(t) if t.span().is_none() => t
            .iter()
            .filter_map(|(_, child)| first_span(child))
            .min_by_key(|span| span.start),
        _ => item.span(),
    }
}

fn find_value(value: &toml_edit::Value, segs: &[(&str, Option<usize>)]) -> Option<Span> {
    use toml_edit::Value;
    let Some(&(name, index)) = segs.first() else {
        return value.span();
    };
    let Value::InlineTable(t) = value else {
        return value.span();
    };
    let Some(child) = t.get(name) else {
        return value.span();
    };
    let found = match (index, child) {
        (None, _) => find_value(child, &segs[1..]),
        (Some(i), Value::Array(a)) => a.get(i).and_then(|v| find_value(v, &segs[1..])),
        _ => None,
    };
    found.or_else(|| child.span())
}

fn line_at(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests;
