//! GLPI's "text search" (`Search::makeTextSearchValue`), shared by
//! `searchText[...]` on item lists and `contains` criteria in `/search`:
//! `LIKE '%v%'` unless anchored (`^v` starts with, `v$` ends with, `^v$`
//! exact), value trimmed, case-insensitive collation, `_` literal (GLPI
//! escapes it), `%` still a wildcard; `^` alone = non-empty; `NULL` = is null.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TextPattern {
    /// Empty value: no condition.
    Any,
    /// `^` or `$` alone: the column is neither null nor empty.
    NotEmpty,
    /// `NULL`: the column is null (or empty).
    IsNull,
    /// A LIKE pattern, lowercased, `%` = any run of characters.
    Like(String),
}

impl TextPattern {
    pub(crate) fn parse(raw: &str) -> TextPattern {
        let value = raw.trim();
        if value.is_empty() {
            return TextPattern::Any;
        }
        if value.eq_ignore_ascii_case("null") {
            return TextPattern::IsNull;
        }
        let starts = value.starts_with('^');
        let body = value.strip_prefix('^').unwrap_or(value);
        let ends = body.ends_with('$');
        let body = body.strip_suffix('$').unwrap_or(body);
        // GLPI's regex refuses `^`/`$` inside the value: the search becomes empty.
        if body.contains('^') || body.contains('$') {
            return TextPattern::Any;
        }
        let body = body.trim();
        if body.is_empty() {
            return if starts || ends {
                TextPattern::NotEmpty
            } else {
                TextPattern::Any
            };
        }
        let mut like = String::new();
        if !starts {
            like.push('%');
        }
        like.push_str(&body.to_lowercase());
        if !ends {
            like.push('%');
        }
        TextPattern::Like(like)
    }

    /// Does a cell value match? Numbers are compared as their text, as MySQL does.
    pub(crate) fn matches(&self, cell: &Value) -> bool {
        let text = match cell {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(if *b { "1" } else { "0" }.to_owned()),
            _ => None,
        };
        match self {
            TextPattern::Any => true,
            TextPattern::NotEmpty => text.is_some_and(|t| !t.is_empty()),
            TextPattern::IsNull => text.is_none_or(|t| t.is_empty()),
            TextPattern::Like(like) => text.is_some_and(|t| like_match(like, &t.to_lowercase())),
        }
    }
}

/// SQL LIKE with `%` only (no `_` wildcard, no escapes).
fn like_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('%').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) {
        return false;
    }
    let mut rest = &text[first.len()..];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(pos) => rest = &rest[pos + middle.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(pattern: &str, value: Value) -> bool {
        TextPattern::parse(pattern).matches(&value)
    }

    #[test]
    fn anchors_and_case() {
        assert!(m("^john.doe@example.com$", json!("John.Doe@Example.com")));
        assert!(!m("^john.doe@example.com$", json!("xjohn.doe@example.com")));
        assert!(m("doe", json!("john.doe@example.com")));
        assert!(m("^john", json!("john.doe")));
        assert!(!m("^doe", json!("john.doe")));
        assert!(m("doe$", json!("john.doe")));
        assert!(!m("x", Value::Null));
        assert!(m("", Value::Null));
    }

    #[test]
    fn underscore_is_literal_and_percent_is_a_wildcard() {
        assert!(!m("^a_c$", json!("abc")));
        assert!(m("^a_c$", json!("a_c")));
        assert!(m("^a%c$", json!("abbbc")));
    }

    #[test]
    fn caret_alone_means_not_empty() {
        assert!(m("^", json!("x")));
        assert!(!m("^", json!("")));
        assert!(!m("^", Value::Null));
        assert!(m("NULL", Value::Null));
    }
}
