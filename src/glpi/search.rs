//! `GET /search/:itemtype`: the query builder (criteria, forced columns,
//! range) and the result reader (absent `data` on no match, multi-valued
//! cells as arrays, HTML-encoded text decoded). Exact-text lookups are how
//! an unknown-outcome create is resolved (invariant 2).

use std::collections::BTreeMap;

use serde_json::Value;

/// Search option id of the item id, for every itemtype the bridge uses.
pub const FIELD_ID: u32 = 2;

/// How a criterion compares (`criteria[i][searchtype]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchType {
    /// SQL `LIKE`; `^…$` anchors make it an exact (case-insensitive) match.
    Contains,
    NotContains,
    /// For dropdown/id options; on joined tables (e.g. user email) GLPI
    /// compares the joined row's id, not the text: use `Contains` there.
    Equals,
    NotEquals,
    LessThan,
    MoreThan,
    Under,
    NotUnder,
    Empty,
}

impl SearchType {
    fn as_str(self) -> &'static str {
        match self {
            SearchType::Contains => "contains",
            SearchType::NotContains => "notcontains",
            SearchType::Equals => "equals",
            SearchType::NotEquals => "notequals",
            SearchType::LessThan => "lessthan",
            SearchType::MoreThan => "morethan",
            SearchType::Under => "under",
            SearchType::NotUnder => "notunder",
            SearchType::Empty => "empty",
        }
    }
}

/// How a criterion joins the previous ones (`criteria[i][link]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    And,
    Or,
    AndNot,
    OrNot,
}

impl Link {
    fn as_str(self) -> &'static str {
        match self {
            Link::And => "AND",
            Link::Or => "OR",
            Link::AndNot => "AND NOT",
            Link::OrNot => "OR NOT",
        }
    }
}

/// One search criterion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    pub link: Link,
    pub field: u32,
    pub searchtype: SearchType,
    pub value: String,
}

/// A search request, built fluently:
///
/// ```
/// use chatwoot_glpi_bridge::glpi::SearchQuery;
/// // Users whose email (option 5) is exactly a+b@example.org.
/// let query = SearchQuery::new().exact(5, "a+b@example.org").display(1).range(0, 99);
/// ```
///
/// The item id (option 2) is always requested, and a range is always sent
/// (GLPI's default page is only 15 rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    criteria: Vec<Criterion>,
    display: Vec<u32>,
    range: (u64, u64),
    trashed: bool,
}

impl Default for SearchQuery {
    fn default() -> Self {
        Self::new()
    }
}

impl SearchQuery {
    /// Rows 0–999, no criteria, id displayed, items not in the trash.
    pub fn new() -> Self {
        SearchQuery {
            criteria: Vec::new(),
            display: vec![FIELD_ID],
            range: (0, 999),
            trashed: false,
        }
    }

    /// Field `field` is exactly `text`: `contains` with `^…$` anchors.
    ///
    /// GLPI trims the value, escapes `_`, and compares case-insensitively;
    /// `%` stays a SQL wildcard. Confirm candidates with
    /// [`SearchRow::has_text`] when that matters.
    pub fn exact(self, field: u32, text: &str) -> Self {
        self.criterion(Criterion {
            link: Link::And,
            field,
            searchtype: SearchType::Contains,
            value: format!("^{}$", text.trim()),
        })
    }

    /// Like [`exact`](Self::exact), joined to the previous criteria with OR.
    pub fn or_exact(self, field: u32, text: &str) -> Self {
        self.criterion(Criterion {
            link: Link::Or,
            field,
            searchtype: SearchType::Contains,
            value: format!("^{}$", text.trim()),
        })
    }

    /// Adds any criterion.
    pub fn criterion(mut self, criterion: Criterion) -> Self {
        self.criteria.push(criterion);
        self
    }

    /// Also returns column `field` (`forcedisplay`).
    pub fn display(mut self, field: u32) -> Self {
        if !self.display.contains(&field) {
            self.display.push(field);
        }
        self
    }

    /// Rows `start..=end` (GLPI's inclusive `range=start-end`).
    pub fn range(mut self, start: u64, end: u64) -> Self {
        self.range = (start, end.max(start));
        self
    }

    /// Search the trash (`is_deleted=1`) instead of live items. A trashed
    /// user still blocks creating another with the same login.
    pub fn trashed(mut self, trashed: bool) -> Self {
        self.trashed = trashed;
        self
    }

    /// The query string pairs, in GLPI's `parse_str` form.
    pub(crate) fn to_query_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for (i, c) in self.criteria.iter().enumerate() {
            if i > 0 {
                pairs.push((format!("criteria[{i}][link]"), c.link.as_str().to_owned()));
            }
            pairs.push((format!("criteria[{i}][field]"), c.field.to_string()));
            pairs.push((
                format!("criteria[{i}][searchtype]"),
                c.searchtype.as_str().to_owned(),
            ));
            pairs.push((format!("criteria[{i}][value]"), c.value.clone()));
        }
        for (i, field) in self.display.iter().enumerate() {
            pairs.push((format!("forcedisplay[{i}]"), field.to_string()));
        }
        pairs.push((
            "range".to_owned(),
            format!("{}-{}", self.range.0, self.range.1),
        ));
        if self.trashed {
            pairs.push(("is_deleted".to_owned(), "1".to_owned()));
        }
        pairs
    }
}

/// A page of search results.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchResult {
    /// All matches, beyond this page too.
    pub total_count: u64,
    pub rows: Vec<SearchRow>,
}

impl SearchResult {
    /// Ids of the rows (option 2).
    pub fn ids(&self) -> Vec<i64> {
        self.rows.iter().filter_map(SearchRow::id).collect()
    }

    /// Reads GLPI's search body. No match → no `data` key at all; `data` is
    /// a list (or an object keyed by id with `withindexes`).
    pub(crate) fn from_json(body: &Value) -> Result<Self, String> {
        let object = body
            .as_object()
            .ok_or_else(|| "search result is not a JSON object".to_owned())?;
        let rows: Vec<SearchRow> = match object.get("data") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(rows)) => rows
                .iter()
                .map(SearchRow::from_json)
                .collect::<Result<_, _>>()?,
            Some(Value::Object(rows)) => rows
                .values()
                .map(SearchRow::from_json)
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(format!(
                    "search `data` is neither a list nor an object: {other}"
                ))
            }
        };
        let total_count = object
            .get("totalcount")
            .and_then(as_i64_lenient)
            .map(|n| n.max(0) as u64)
            .unwrap_or(rows.len() as u64);
        Ok(SearchResult { total_count, rows })
    }
}

/// One result row: cells keyed by search option id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchRow {
    cells: BTreeMap<u32, SearchCell>,
}

impl SearchRow {
    /// The cell of option `field`, if GLPI returned that column.
    pub fn cell(&self, field: u32) -> Option<&SearchCell> {
        self.cells.get(&field)
    }

    /// The item id (option 2).
    pub fn id(&self) -> Option<i64> {
        self.cell(FIELD_ID)?.as_i64()
    }

    /// Whether column `field` holds `text` (one of its values, compared
    /// trimmed and case-insensitively, as GLPI's collation does).
    pub fn has_text(&self, field: u32, text: &str) -> bool {
        let wanted = text.trim().to_lowercase();
        self.cell(field).is_some_and(|cell| {
            cell.texts()
                .iter()
                .any(|t| t.trim().to_lowercase() == wanted)
        })
    }

    fn from_json(row: &Value) -> Result<Self, String> {
        let object = row
            .as_object()
            .ok_or_else(|| format!("search row is not an object: {row}"))?;
        let mut cells = BTreeMap::new();
        for (key, value) in object {
            // Non-numeric keys (e.g. "id" with some options) are not columns.
            if let Ok(field) = key.parse::<u32>() {
                cells.insert(field, SearchCell::from_json(value));
            }
        }
        Ok(SearchRow { cells })
    }
}

/// A cell: one value, or several for multi-valued columns (a user's emails).
/// Text is already decoded from GLPI 10's `&#60; &#62; &#38;`.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchCell {
    One(Value),
    Many(Vec<Value>),
}

impl SearchCell {
    /// All values, one or several.
    pub fn values(&self) -> &[Value] {
        match self {
            SearchCell::One(v) => std::slice::from_ref(v),
            SearchCell::Many(vs) => vs,
        }
    }

    /// The values as text (numbers printed, nulls skipped).
    pub fn texts(&self) -> Vec<String> {
        self.values().iter().filter_map(value_text).collect()
    }

    /// The first value as text.
    pub fn text(&self) -> Option<String> {
        self.values().iter().find_map(value_text)
    }

    /// The first value as an integer (ids come as numbers, but accept "7").
    pub fn as_i64(&self) -> Option<i64> {
        self.values().iter().find_map(as_i64_lenient)
    }

    fn from_json(value: &Value) -> Self {
        match value {
            Value::Array(values) => SearchCell::Many(values.iter().map(decoded).collect()),
            other => SearchCell::One(decoded(other)),
        }
    }
}

fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn as_i64_lenient(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn decoded(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(decode_glpi_entities(s)),
        other => other.clone(),
    }
}

/// Undoes GLPI 10's input sanitising, which stores `<`, `>`, `&` as
/// `&#60;`, `&#62;`, `&#38;` (and `/search` ignores
/// `X-GLPI-Sanitized-Content`). One pass, left to right: input `&lt;` is
/// stored as `&#38;lt;` and comes back as `&lt;`, so named entities are
/// deliberately left alone.
pub fn decode_glpi_entities(text: &str) -> String {
    if !text.contains("&#") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("&#") {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (replacement, len) = if tail.starts_with("&#60;") {
            ('<', 5)
        } else if tail.starts_with("&#62;") {
            ('>', 5)
        } else if tail.starts_with("&#38;") {
            ('&', 5)
        } else {
            ('&', 1)
        };
        out.push(replacement);
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_criteria_display_and_range() {
        let pairs = SearchQuery::new()
            .exact(5, " a+b_c@example.org ")
            .or_exact(1, "jdoe")
            .display(1)
            .display(2)
            .range(10, 19)
            .trashed(true)
            .to_query_pairs();
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            text,
            [
                "criteria[0][field]=5",
                "criteria[0][searchtype]=contains",
                "criteria[0][value]=^a+b_c@example.org$",
                "criteria[1][link]=OR",
                "criteria[1][field]=1",
                "criteria[1][searchtype]=contains",
                "criteria[1][value]=^jdoe$",
                "forcedisplay[0]=2",
                "forcedisplay[1]=1",
                "range=10-19",
                "is_deleted=1",
            ]
        );
        let default = SearchQuery::new().to_query_pairs();
        assert!(default.contains(&("range".into(), "0-999".into())));
        assert!(default.contains(&("forcedisplay[0]".into(), "2".into())));
    }

    #[test]
    fn reads_rows_multi_values_and_decodes() {
        let body = json!({
            "totalcount": 3, "count": 2, "sort": [1], "order": ["ASC"],
            "data": [
                {"1": "jdoe", "2": 7, "5": ["alice@example.com", "alice.alt@example.com"]},
                {"1": "A &#38; B &#60;x&#62; &#38;lt;", "2": "8", "5": null}
            ],
            "content-range": "0-1/3"
        });
        let result = SearchResult::from_json(&body).unwrap();
        assert_eq!(result.total_count, 3);
        assert_eq!(result.ids(), vec![7, 8]);
        let first = &result.rows[0];
        assert_eq!(first.cell(5).unwrap().values().len(), 2);
        assert!(first.has_text(5, "ALICE.alt@example.com"));
        assert!(!first.has_text(5, "alice"));
        assert_eq!(
            result.rows[1].cell(1).unwrap().text().unwrap(),
            "A & B <x> &lt;"
        );
        assert_eq!(
            result.rows[1].cell(5).unwrap().texts(),
            Vec::<String>::new()
        );
        assert!(first.cell(80).is_none());
    }

    #[test]
    fn empty_result_has_no_data_key() {
        let body =
            json!({"totalcount":0,"count":0,"sort":[1],"order":["ASC"],"content-range":"0--1/0"});
        let result = SearchResult::from_json(&body).unwrap();
        assert_eq!(result, SearchResult::default());
        assert!(SearchResult::from_json(&json!([1])).is_err());
    }

    #[test]
    fn entity_decoding_is_single_pass() {
        assert_eq!(decode_glpi_entities("a &#38;#60; b"), "a &#60; b");
        assert_eq!(
            decode_glpi_entities("&#60;p&#62;Hi &#38; bye&#60;/p&#62;"),
            "<p>Hi & bye</p>"
        );
        assert_eq!(decode_glpi_entities("50&# &#39; &"), "50&# &#39; &");
        assert_eq!(decode_glpi_entities("plain"), "plain");
    }
}
