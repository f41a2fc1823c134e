//! `GET /search/:itemtype` (`API::searchItems` → `Search::getDatas`):
//! criteria (`contains` with GLPI's text rules, `equals` on joined ids, …,
//! AND/OR/NOT links with SQL precedence, nested groups), displayed columns
//! (1 always, 2 first for tickets, forcedisplay or display preferences, plus
//! criteria and sort fields), the body with numeric string keys, an `id` cell
//! as an int, multi-valued cells as arrays, and the empty result without
//! `data` nor `Content-Range`. Values come back exactly as stored (GLPI 10
//! encoding included: the sanitize header does not apply here).

use serde_json::{json, Map, Value};

use super::params::{as_int, as_text, is_true, php_values};
use super::prepare::int_of;
use super::read::{compare_cells, parse_range, range_exceeded, LIST_LIMIT, MAX_INPUT_VARS};
use super::reply::Reply;
use super::schema::{ItemType, Row};
use super::search_options::{self, default_display, Joined, SearchOption};
use super::session::Session;
use super::store::Glpi;
use super::text_match::TextPattern;

/// A parsed criteria tree.
enum Criterion {
    Leaf {
        link: String,
        option: SearchOption,
        searchtype: String,
        value: String,
        /// `value` as a text pattern, parsed once (GLPI 10: `&` encoded).
        pattern: TextPattern,
    },
    Group {
        link: String,
        items: Vec<Criterion>,
    },
}

impl Criterion {
    fn link(&self) -> &str {
        match self {
            Criterion::Leaf { link, .. } | Criterion::Group { link, .. } => link,
        }
    }
}

fn bad_criteria(api_url: &str, message: &str) -> Reply {
    Reply::error(api_url, 400, "ERROR", message)
}

fn parse_criteria(
    value: &Value,
    options: &[SearchOption],
    version: super::GlpiVersion,
    api_url: &str,
    fields: &mut Vec<u32>,
) -> Result<Vec<Criterion>, Reply> {
    let mut out = Vec::new();
    for entry in php_values(value) {
        let Value::Object(entry) = entry else {
            return Err(bad_criteria(api_url, "Malformed search criteria"));
        };
        let link = entry
            .get("link")
            .and_then(as_text)
            .unwrap_or_else(|| "AND".to_owned())
            .to_uppercase();
        if let Some(nested) = entry.get("criteria") {
            let items = parse_criteria(nested, options, version, api_url, fields)?;
            out.push(Criterion::Group { link, items });
            continue;
        }
        let (Some(field), Some(searchtype), Some(value)) = (
            entry.get("field").and_then(as_text),
            entry.get("searchtype").and_then(as_text),
            entry.get("value").and_then(as_text),
        ) else {
            return Err(bad_criteria(api_url, "Malformed search criteria"));
        };
        // `ctype_digit` then a known option: "all"/"view" are refused too.
        let option = field
            .parse::<u32>()
            .ok()
            .filter(|_| field.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|id| options.iter().find(|o| o.id == id).copied())
            .ok_or_else(|| bad_criteria(api_url, "Bad field ID in search criteria"))?;
        fields.push(option.id);
        out.push(Criterion::Leaf {
            link,
            option,
            searchtype: searchtype.to_lowercase(),
            pattern: TextPattern::parse(&encode_for_search(version, &value)),
            value,
        });
    }
    Ok(out)
}

/// SQL precedence: NOT on a term, AND groups bound before OR.
fn eval_all(joined: &Joined<'_>, items: &[Criterion], row: &Row) -> bool {
    let mut any = false;
    let mut current: Option<bool> = None;
    for (i, item) in items.iter().enumerate() {
        let link = item.link();
        let negate = link.ends_with("NOT");
        let mut value = eval_one(joined, item, row);
        if negate {
            value = !value;
        }
        if i > 0 && link.starts_with("OR") {
            any |= current.unwrap_or(true);
            current = Some(value);
        } else {
            current = Some(current.unwrap_or(true) && value);
        }
    }
    any || current.unwrap_or(true)
}

fn eval_one(joined: &Joined<'_>, item: &Criterion, row: &Row) -> bool {
    match item {
        Criterion::Group { items, .. } => eval_all(joined, items, row),
        Criterion::Leaf {
            option,
            searchtype,
            value,
            pattern,
            ..
        } => leaf_matches(joined, option, searchtype, value, pattern, row),
    }
}

fn leaf_matches(
    joined: &Joined<'_>,
    option: &SearchOption,
    searchtype: &str,
    value: &str,
    pattern: &TextPattern,
    row: &Row,
) -> bool {
    let shown = joined.values(option, row);
    let contains = || {
        if shown.is_empty() {
            pattern.matches(&Value::Null)
        } else {
            shown.iter().any(|v| pattern.matches(v))
        }
    };
    let equals = || {
        joined
            .ids_for_equals(option, row)
            .iter()
            .any(|v| cell_equals(v, value))
    };
    match searchtype {
        "contains" => contains(),
        "notcontains" => !contains(),
        "equals" | "under" => equals(),
        "notequals" | "notunder" => !equals(),
        "empty" => shown.iter().all(|v| v.is_null() || v == "" || v == 0),
        "lessthan" | "morethan" => shown.iter().any(|v| {
            let ord = compare_cells(Some(v), Some(&typed_like(v, value)));
            if searchtype == "lessthan" {
                ord.is_lt()
            } else {
                ord.is_gt()
            }
        }),
        _ => true,
    }
}

/// GLPI 10 matches `&` against the stored `&#38;`.
fn encode_for_search(version: super::GlpiVersion, pattern: &str) -> String {
    match version {
        super::GlpiVersion::V10 => super::sanitize::encode(pattern),
        super::GlpiVersion::V11 => pattern.to_owned(),
    }
}

fn cell_equals(cell: &Value, value: &str) -> bool {
    match cell {
        Value::Number(n) => as_int(&Value::from(value)).is_some_and(|v| Some(v) == n.as_i64()),
        Value::String(s) => s.eq_ignore_ascii_case(value),
        _ => false,
    }
}

fn typed_like(cell: &Value, value: &str) -> Value {
    match cell {
        Value::Number(_) => value
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        _ => Value::from(value),
    }
}

fn int_list(value: Option<&Value>) -> Vec<i64> {
    value
        .map(php_values)
        .unwrap_or_default()
        .into_iter()
        .filter_map(as_int)
        .collect()
}

pub(crate) fn search(
    glpi: &Glpi,
    session: &Session,
    t: ItemType,
    params: &Map<String, Value>,
    api_url: &str,
) -> Reply {
    let options = search_options::options(t, glpi.version);
    let mut shown_fields: Vec<u32> = Vec::new();
    let criteria = match params.get("criteria") {
        Some(c) => match parse_criteria(c, &options, glpi.version, api_url, &mut shown_fields) {
            Ok(c) => c,
            Err(reply) => return reply,
        },
        None => Vec::new(),
    };
    let sort_ids: Vec<u32> = int_list(params.get("sort"))
        .into_iter()
        .filter(|id| *id > 0)
        .map(|id| id as u32)
        .collect();
    let sort_ids = if sort_ids.is_empty() {
        vec![1]
    } else {
        sort_ids
    };
    let orders: Vec<String> = params
        .get("order")
        .map(php_values)
        .unwrap_or_default()
        .into_iter()
        .filter_map(as_text)
        .map(|o| {
            if o.eq_ignore_ascii_case("DESC") {
                "DESC"
            } else {
                "ASC"
            }
            .to_owned()
        })
        .collect();
    let orders = if orders.is_empty() {
        vec!["ASC".to_owned()]
    } else {
        orders
    };

    let mut display: Vec<u32> = Vec::new();
    if t == ItemType::Ticket {
        display.push(2);
    }
    display.push(1);
    // multi-entity mode shows the entity column too
    if glpi.entities.len() > 1 {
        display.push(80);
    }
    let forced: Vec<u32> = int_list(params.get("forcedisplay"))
        .into_iter()
        .map(|id| id as u32)
        .collect();
    let asked = if params.contains_key("forcedisplay") {
        forced
    } else {
        default_display(t).to_vec()
    };
    display.extend(asked);
    display.extend(shown_fields);
    display.extend(sort_ids.iter().copied());
    let mut seen = Vec::new();
    display.retain(|id| {
        options.iter().any(|o| o.id == *id) && !seen.contains(id) && {
            seen.push(*id);
            true
        }
    });

    let joined = Joined::new(glpi, t);
    let visibility = super::read::Visibility::new(glpi, session);
    let deleted = i64::from(is_true(params.get("is_deleted")));
    let mut rows: Vec<&Row> = glpi
        .table(t)
        .values()
        .filter(|r| !r.contains_key("is_deleted") || int_of(r, "is_deleted") == deleted)
        .filter(|r| visibility.allows(t, r))
        .filter(|r| eval_all(&joined, &criteria, r))
        .collect();

    let sort_option = options.iter().find(|o| o.id == sort_ids[0]).copied();
    if let Some(option) = sort_option {
        rows.sort_by(|a, b| {
            let va = joined.values(&option, a);
            let vb = joined.values(&option, b);
            compare_cells(va.first(), vb.first())
        });
        if orders[0] == "DESC" {
            rows.reverse();
        }
    }

    let (start, end) = match parse_range(params, api_url) {
        Ok(Some(r)) => r,
        Ok(None) => (0, LIST_LIMIT - 1),
        Err(reply) => return reply,
    };
    let total = rows.len();
    if start > total {
        return range_exceeded(api_url, total);
    }
    let data: Vec<Value> = rows
        .iter()
        .skip(start)
        .take(end.saturating_sub(start) + 1)
        .map(|row| {
            let mut cells = Map::new();
            for id in &display {
                let Some(option) = options.iter().find(|o| o.id == *id) else {
                    continue;
                };
                let mut values = joined.values(option, row);
                let cell = match values.len() {
                    0 => Value::Null,
                    1 => values.remove(0),
                    _ => Value::Array(values),
                };
                cells.insert(id.to_string(), cell);
            }
            Value::Object(cells)
        })
        .collect();
    let count = data.len();
    let content_range = format!("{start}-{}/{total}", start as i64 + count as i64 - 1);
    let mut body = json!({
        "totalcount": total,
        "count": count,
        "sort": sort_ids,
        "order": orders,
    });
    if count > 0 {
        body["data"] = Value::Array(data);
    }
    body["content-range"] = Value::from(content_range.clone());
    let status = if count < total { 206 } else { 200 };
    let mut reply = Reply::json(status, body)
        .with_header("Accept-Range", format!("{} {MAX_INPUT_VARS}", t.name()));
    if total > 0 {
        reply = reply.with_header("Content-Range", content_range);
    }
    reply
}

/// `GET /listSearchOptions/:itemtype`
pub(crate) fn list_search_options(glpi: &Glpi, t: ItemType) -> Reply {
    let mut out = Map::new();
    out.insert("common".into(), json!({"name": "Characteristics"}));
    for o in search_options::options(t, glpi.version) {
        out.insert(
            o.id.to_string(),
            json!({
                "name": o.name,
                "nosearch": false,
                "nodisplay": false,
                "available_searchtypes": ["contains", "notcontains", "equals", "notequals"],
            }),
        );
    }
    Reply::json(200, Value::Object(out))
}
