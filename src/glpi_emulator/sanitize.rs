//! GLPI 10's input sanitising: `&`, `<`, `>` of every string input are stored
//! as `&#38;`, `&#60;`, `&#62;` (quotes untouched), unless the value already
//! "looks encoded"; `X-GLPI-Sanitized-Content: false` decodes top-level
//! strings on the way out. GLPI 11 stores raw text, so none of this applies.

use serde_json::{Map, Value};

const ENCODED: [(&str, char); 3] = [("&#38;", '&'), ("&#60;", '<'), ("&#62;", '>')];

/// True when the value has no raw `<`, `>` or bare `&`, and contains at least
/// one of GLPI's numeric entities (`&lt;` alone does not count: live GLPI
/// 10.0.19 stores `&lt;` as `&#38;lt;`).
pub(crate) fn looks_encoded(s: &str) -> bool {
    if s.contains('<') || s.contains('>') {
        return false;
    }
    let bytes = s.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'&' && !is_entity_at(&s[i + 1..]) {
            return false;
        }
    }
    ENCODED.iter().any(|(entity, _)| s.contains(entity))
}

/// `#?[a-z0-9]+;` follows the `&`.
fn is_entity_at(rest: &str) -> bool {
    let rest = rest.strip_prefix('#').unwrap_or(rest);
    let len = rest
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    len > 0 && rest[len..].starts_with(';')
}

pub(crate) fn encode(s: &str) -> String {
    if looks_encoded(s) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&#38;"),
            '<' => out.push_str("&#60;"),
            '>' => out.push_str("&#62;"),
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`encode`] in one pass (so `&#38;lt;` becomes `&lt;`, not `<`).
pub(crate) fn decode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    'outer: while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        for (entity, c) in ENCODED {
            if let Some(after) = tail.strip_prefix(entity) {
                out.push(c);
                rest = after;
                continue 'outer;
            }
        }
        out.push('&');
        rest = &tail[1..];
    }
    out.push_str(rest);
    out
}

/// Encodes every string inside `value` (GLPI sanitises nested arrays too).
pub(crate) fn encode_value(value: &mut Value) {
    match value {
        Value::String(s) => *s = encode(s),
        Value::Array(items) => items.iter_mut().for_each(encode_value),
        Value::Object(map) => map.values_mut().for_each(encode_value),
        _ => {}
    }
}

/// Decodes the top-level string fields only, as `returnSanitizedContent` does.
pub(crate) fn decode_top_level(map: &mut Map<String, Value>) {
    for value in map.values_mut() {
        if let Value::String(s) = value {
            *s = decode(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_glpi_10() {
        assert_eq!(
            encode("A & B <test> \"q\" 's"),
            "A &#38; B &#60;test&#62; \"q\" 's"
        );
        assert_eq!(encode("&lt;"), "&#38;lt;");
        assert_eq!(encode("a &#60;b&#62;"), "a &#60;b&#62;");
        assert_eq!(encode("x &#60; & y"), "x &#38;#60; &#38; y");
        assert_eq!(encode("line1\nline2"), "line1\nline2");
    }

    #[test]
    fn decode_reverses_encode() {
        for s in ["A & B <test>", "&lt;", "<p>Hello &amp; bye</p>", "plain"] {
            assert_eq!(decode(&encode(s)), s);
        }
    }
}
