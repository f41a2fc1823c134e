//! Request parameters the way GLPI's `APIRest::parseIncomingParams` builds
//! them: the query string parsed like PHP's `parse_str` (`criteria[0][field]=1`
//! becomes nested maps), then the keys of a JSON (or form-encoded) body
//! override it; top-level `"true"`/`"false"` strings become booleans.

use serde_json::{Map, Value};

use super::GlpiVersion;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ParamsError {
    /// GET with a body: `ERROR_JSON_PAYLOAD_FORBIDDEN`.
    PayloadForbidden,
    /// Undecodable JSON (10: also a falsy document): `ERROR_JSON_PAYLOAD_INVALID`.
    PayloadInvalid,
}

pub(crate) fn parse(
    method: &str,
    query: &str,
    content_type: Option<&str>,
    body: &[u8],
    version: GlpiVersion,
) -> Result<Map<String, Value>, ParamsError> {
    let mut params = parse_str(query);
    let body = body.trim_ascii();
    if method == "GET" && !body.is_empty() {
        return Err(ParamsError::PayloadForbidden);
    }
    // GLPI treats a missing Content-Type as JSON.
    let content_type = content_type
        .unwrap_or("application/json")
        .to_ascii_lowercase();
    if content_type.contains("application/json") {
        if !body.is_empty() {
            let doc: Value =
                serde_json::from_slice(body).map_err(|_| ParamsError::PayloadInvalid)?;
            if version == GlpiVersion::V10 && is_php_falsy(&doc) {
                return Err(ParamsError::PayloadInvalid);
            }
            if let Value::Object(map) = doc {
                params.extend(map);
            }
        }
    } else if content_type.contains("application/x-www-form-urlencoded") {
        params.extend(parse_str(&String::from_utf8_lossy(body)));
    }
    // Any other content type: GLPI does not read the body.
    for value in params.values_mut() {
        if let Value::String(s) = value {
            match s.as_str() {
                "true" => *value = Value::Bool(true),
                "false" => *value = Value::Bool(false),
                _ => {}
            }
        }
    }
    Ok(params)
}

/// What PHP's `if ($p = json_decode($body))` rejects: null, false, 0, "",
/// "0" and an empty list (`{}` decodes to an object, which is truthy).
fn is_php_falsy(doc: &Value) -> bool {
    match doc {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || s == "0",
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

/// PHP `parse_str`: `a[b][]=1&a[b][]=2` → `{"a":{"b":{"0":"1","1":"2"}}}`.
pub(crate) fn parse_str(query: &str) -> Map<String, Value> {
    let mut root = Map::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let (base, mut rest) = match key.find('[') {
            Some(i) => (&key[..i], &key[i..]),
            None => (&key[..], ""),
        };
        if base.is_empty() {
            continue;
        }
        let mut segments = Vec::new();
        while let Some(after) = rest.strip_prefix('[') {
            match after.find(']') {
                Some(end) => {
                    segments.push(after[..end].to_owned());
                    rest = &after[end + 1..];
                }
                None => break,
            }
        }
        insert(&mut root, base.to_owned(), &segments, value.into_owned());
    }
    root
}

fn insert(container: &mut Map<String, Value>, key: String, segments: &[String], value: String) {
    let Some((first, rest)) = segments.split_first() else {
        container.insert(key, Value::String(value));
        return;
    };
    let child = container
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    let Value::Object(child) = child else { return };
    let next_key = if first.is_empty() {
        next_index(child).to_string()
    } else {
        first.clone()
    };
    insert(child, next_key, rest, value);
}

fn next_index(map: &Map<String, Value>) -> i64 {
    map.keys()
        .filter_map(|k| k.parse::<i64>().ok())
        .max()
        .map_or(0, |m| m + 1)
}

/// The values of a PHP array in key order (numeric keys numerically).
pub(crate) fn php_values(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by_key(|(k, _)| (k.parse::<i64>().unwrap_or(i64::MAX), (*k).clone()));
            entries.into_iter().map(|(_, v)| v).collect()
        }
        other => vec![other],
    }
}

/// A parameter as text (numbers and booleans as PHP would print them).
pub(crate) fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(true) => Some("1".to_owned()),
        Value::Bool(false) => Some(String::new()),
        _ => None,
    }
}

/// A parameter as an integer, like PHP's `intval`.
pub(crate) fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => {
            let s = s.trim();
            let digits: String = s
                .char_indices()
                .take_while(|(i, c)| c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+')))
                .map(|(_, c)| c)
                .collect();
            digits.parse().ok().or(Some(0))
        }
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

/// PHP truthiness of a parameter (`"true"`, `1`, `"1"`, `true`).
pub(crate) fn is_true(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty() && s != "0" && s != "false",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_php_arrays() {
        let p = parse_str(
            "criteria[0][field]=1&criteria[0][value]=%5Ejohn%2Bx%24&forcedisplay[]=2&forcedisplay[]=5&range=0-9",
        );
        assert_eq!(
            Value::Object(p),
            json!({"criteria":{"0":{"field":"1","value":"^john+x$"}},
                   "forcedisplay":{"0":"2","1":"5"},"range":"0-9"})
        );
    }

    #[test]
    fn body_overrides_query_and_booleans_are_converted() {
        let p = parse(
            "POST",
            "a=1&flag=true",
            Some("application/json"),
            br#"{"a":2}"#,
            GlpiVersion::V10,
        )
        .unwrap();
        assert_eq!(p["a"], json!(2));
        assert_eq!(p["flag"], json!(true));
    }

    #[test]
    fn rejects_get_bodies_and_bad_json() {
        assert_eq!(
            parse("GET", "", None, b"{}", GlpiVersion::V10),
            Err(ParamsError::PayloadForbidden)
        );
        assert_eq!(
            parse("POST", "", None, b"{nope", GlpiVersion::V10),
            Err(ParamsError::PayloadInvalid)
        );
        assert_eq!(
            parse("POST", "", None, b"[]", GlpiVersion::V10),
            Err(ParamsError::PayloadInvalid)
        );
        assert!(parse("POST", "", None, b"[]", GlpiVersion::V11).is_ok());
        assert!(parse("POST", "", None, b"{}", GlpiVersion::V10).is_ok());
        assert!(parse("GET", "", None, b" \n", GlpiVersion::V10).is_ok());
        // a non-JSON content type: the body is not read at all
        let p = parse("POST", "", Some("text/plain"), b"{nope", GlpiVersion::V10).unwrap();
        assert!(p.is_empty());
    }
}
