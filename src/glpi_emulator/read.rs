//! `GET /:itemtype/:id` (`API::getItem`), `GET /:itemtype/` and
//! `GET /:parent/:id/:itemtype/` (`API::getItems`): hidden fields, HATEOAS
//! links, `Last-Modified`, trash and entity filters, `searchText`, `sort`,
//! `range` with `Content-Range`/`Accept-Range` and 206 for partial pages.

use serde_json::{Map, Value};

use super::params::{as_text, is_true};
use super::prepare::{int_of, text_of};
use super::reply::Reply;
use super::sanitize;
use super::schema::{ItemType, Row};
use super::session::Session;
use super::store::Glpi;
use super::text_match::TextPattern;

/// GLPI's default `list_limit`.
pub(crate) const LIST_LIMIT: usize = 15;
/// What GLPI reports as the second word of `Accept-Range` (`max_input_vars`).
pub(crate) const MAX_INPUT_VARS: usize = 1000;

/// How a read should present rows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadOptions {
    /// `X-GLPI-Sanitized-Content: false` on GLPI 10.
    pub(crate) decode: bool,
}

/// `range=start-end`: `Ok(None)` when absent.
pub(crate) fn parse_range(
    params: &Map<String, Value>,
    api_url: &str,
) -> Result<Option<(usize, usize)>, Reply> {
    let Some(raw) = params.get("range").and_then(as_text) else {
        return Ok(None);
    };
    let parsed = raw
        .split_once('-')
        .and_then(|(a, b)| Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?)))
        .filter(|_| raw.bytes().all(|b| b.is_ascii_digit() || b == b'-'));
    match parsed {
        Some(range) => Ok(Some(range)),
        None => Err(Reply::error(
            api_url,
            400,
            "ERROR",
            "range must be in format : [start-end] with integers",
        )),
    }
}

pub(crate) fn range_exceeded(api_url: &str, total: usize) -> Reply {
    Reply::error(
        api_url,
        400,
        "ERROR_RANGE_EXCEED_TOTAL",
        &format!("Provided range exceed total count of data: {total}"),
    )
}

/// A row as the API shows it: hidden fields removed, links added, decoded
/// when asked.
fn present(
    glpi: &Glpi,
    t: ItemType,
    row: &Row,
    params: &Map<String, Value>,
    options: ReadOptions,
    api_url: &str,
) -> Value {
    let mut out = row.clone();
    for hidden in t.undisclosed() {
        out.remove(*hidden);
    }
    if is_true(params.get("expand_dropdowns")) {
        expand_dropdowns(glpi, &mut out);
    }
    if options.decode {
        sanitize::decode_top_level(&mut out);
    }
    let hateoas = params.get("get_hateoas").is_none_or(|v| is_true(Some(v)));
    if hateoas {
        out.insert("links".into(), Value::Array(links(glpi, t, row, api_url)));
    }
    Value::Object(out)
}

/// `expand_dropdowns`: foreign keys become names (`entities_id` 0 is the
/// root entity's name; other zero keys stay 0).
fn expand_dropdowns(glpi: &Glpi, row: &mut Row) {
    for (key, value) in row.iter_mut() {
        let id = value.as_i64().unwrap_or(0);
        let name = match fk_itemtype(key) {
            Some("Entity") => Some(glpi.entity_name(id)),
            _ if id == 0 => None,
            Some("User") => glpi.user_display_name(id),
            Some("Ticket") => glpi.get(ItemType::Ticket, id).map(|t| text_of(t, "name")),
            Some("RequestType") => super::search_options::request_type_name(id).map(str::to_owned),
            _ => None,
        };
        if let Some(name) = name {
            *value = Value::String(name);
        }
    }
}

/// HATEOAS links: foreign keys to their items, and a ticket's or user's
/// child collections.
fn links(_glpi: &Glpi, t: ItemType, row: &Row, api_url: &str) -> Vec<Value> {
    let mut links = Vec::new();
    let mut link = |rel: &str, href: String| {
        links.push(serde_json::json!({"rel": rel, "href": href}));
    };
    for (key, value) in row {
        let Some(target) = fk_itemtype(key) else {
            continue;
        };
        let id = value.as_i64().unwrap_or(0);
        if id > 0 || key == "entities_id" {
            link(target, format!("{api_url}/{target}/{id}"));
        }
    }
    if t == ItemType::ItilFollowup {
        let itemtype = text_of(row, "itemtype");
        if !itemtype.is_empty() {
            link(
                &itemtype,
                format!("{api_url}/{itemtype}/{}", int_of(row, "items_id")),
            );
        }
    }
    let id = int_of(row, "id");
    let children: &[&str] = match t {
        ItemType::Ticket => &[
            "TicketTask",
            "TicketValidation",
            "TicketCost",
            "Problem_Ticket",
            "Change_Ticket",
            "Item_Ticket",
            "ITILSolution",
            "ITILFollowup",
            "Ticket_User",
            "Group_Ticket",
            "Supplier_Ticket",
            "Document_Item",
        ],
        ItemType::User => &["UserEmail", "Profile_User", "Group_User", "Document_Item"],
        _ => &[],
    };
    for child in children {
        link(child, format!("{api_url}/{}/{id}/{child}/", t.name()));
    }
    links
}

fn fk_itemtype(key: &str) -> Option<&'static str> {
    Some(match key {
        "entities_id" => "Entity",
        "users_id"
        | "users_id_recipient"
        | "users_id_lastupdater"
        | "users_id_editor"
        | "users_id_supervisor" => "User",
        "tickets_id" => "Ticket",
        "locations_id" => "Location",
        "profiles_id" => "Profile",
        "groups_id" => "Group",
        "usertitles_id" => "UserTitle",
        "usercategories_id" => "UserCategory",
        "itilcategories_id" => "ITILCategory",
        "requesttypes_id" => "RequestType",
        "contacttypes_id" => "ContactType",
        _ => return None,
    })
}

pub(crate) fn get_item(
    glpi: &Glpi,
    session: &Session,
    t: ItemType,
    id: i64,
    params: &Map<String, Value>,
    options: ReadOptions,
    api_url: &str,
) -> Reply {
    let Some(row) = glpi.get(t, id) else {
        return Reply::error(api_url, 404, "ERROR_ITEM_NOT_FOUND", "Item not found");
    };
    if !Visibility::new(glpi, session).allows(t, row) {
        return Reply::error(
            api_url,
            403,
            "ERROR_RIGHT_MISSING",
            "You don't have permission to perform this action.",
        );
    }
    let mut reply = Reply::json(200, present(glpi, t, row, params, options, api_url));
    if let Some(modified) = row.get("date_mod").and_then(Value::as_str) {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(modified, "%Y-%m-%d %H:%M:%S") {
            reply = reply.with_header(
                "Last-Modified",
                t.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            );
        }
    }
    reply
}

/// What a session may see: entity-assigned types by their entity, users by
/// their profiles' entities (everything when it sees every entity).
pub(crate) struct Visibility<'a> {
    glpi: &'a Glpi,
    session: &'a Session,
    sees_all: bool,
}

impl<'a> Visibility<'a> {
    pub(crate) fn new(glpi: &'a Glpi, session: &'a Session) -> Visibility<'a> {
        Visibility {
            glpi,
            session,
            sees_all: glpi.sees_all_entities(session),
        }
    }

    pub(crate) fn allows(&self, t: ItemType, row: &Row) -> bool {
        match t {
            _ if t.is_entity_assign() => self
                .session
                .active_entities
                .contains(&int_of(row, "entities_id")),
            ItemType::User => {
                self.glpi
                    .user_visible(self.session, self.sees_all, int_of(row, "id"))
            }
            _ => true,
        }
    }
}

/// A parent for `GET /:parent/:id/:itemtype/`.
pub(crate) struct Parent {
    pub(crate) itemtype: ItemType,
    pub(crate) id: i64,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn get_items(
    glpi: &Glpi,
    session: &Session,
    t: ItemType,
    parent: Option<Parent>,
    params: &Map<String, Value>,
    options: ReadOptions,
    api_url: &str,
) -> Reply {
    let mut rows: Vec<&Row> = glpi.table(t).values().collect();
    if let Some(parent) = parent {
        if glpi.get(parent.itemtype, parent.id).is_none() {
            return Reply::error(api_url, 404, "ERROR_ITEM_NOT_FOUND", "Item not found");
        }
        let fk = parent.itemtype.foreign_key();
        if t == ItemType::ItilFollowup {
            rows.retain(|r| {
                text_of(r, "itemtype") == parent.itemtype.name()
                    && int_of(r, "items_id") == parent.id
            });
        } else if t.column(glpi.version, fk).is_some() {
            rows.retain(|r| int_of(r, fk) == parent.id);
        } else {
            return Reply::error(
                api_url,
                400,
                "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM",
                "resource not found or not an instance of CommonDBTM",
            );
        }
    }
    if t.column(glpi.version, "is_deleted").is_some() {
        let deleted = i64::from(is_true(params.get("is_deleted")));
        rows.retain(|r| int_of(r, "is_deleted") == deleted);
    }
    let visibility = Visibility::new(glpi, session);
    rows.retain(|r| visibility.allows(t, r));
    if let Some(Value::Object(filters)) = params.get("searchText") {
        for (field, raw) in filters {
            let pattern = TextPattern::parse(&as_text(raw).unwrap_or_default());
            if field == "all" {
                rows.retain(|r| {
                    ["name", "comment"]
                        .iter()
                        .any(|c| r.get(*c).is_some_and(|v| pattern.matches(v)))
                });
                continue;
            }
            if t.column(glpi.version, field).is_none() || t.undisclosed().contains(&field.as_str())
            {
                return Reply::error(
                    api_url,
                    400,
                    "ERROR_FIELD_NOT_FOUND",
                    &format!("Field {field} is not valid for {} item.", t.name()),
                );
            }
            rows.retain(|r| pattern.matches(r.get(field).unwrap_or(&Value::Null)));
        }
    }
    let sort = params
        .get("sort")
        .and_then(as_text)
        .unwrap_or_else(|| "id".to_owned());
    if t.column(glpi.version, &sort).is_none() {
        return Reply::error(
            api_url,
            400,
            "ERROR",
            &format!("sort param is not a field of {}", t.table()),
        );
    }
    rows.sort_by(|a, b| compare_cells(a.get(&sort), b.get(&sort)));
    let descending = params
        .get("order")
        .and_then(as_text)
        .is_some_and(|o| o.eq_ignore_ascii_case("DESC"));
    if descending {
        rows.reverse();
    }

    let explicit = match parse_range(params, api_url) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    // Without `range`, GLPI returns list_limit rows but computes the
    // Content-Range from [0, list_limit] (one more than returned).
    let (start, end, header_end) = match explicit {
        Some((s, e)) => (s, e, e),
        None => (0, LIST_LIMIT - 1, LIST_LIMIT),
    };
    let total = rows.len();
    if start > total {
        return range_exceeded(api_url, total);
    }
    let page: Vec<Value> = rows
        .iter()
        .skip(start)
        .take(end.saturating_sub(start) + 1)
        .map(|r| {
            if is_true(params.get("only_id")) {
                serde_json::json!({"id": int_of(r, "id")})
            } else {
                present(glpi, t, r, params, options, api_url)
            }
        })
        .collect();
    let status = if page.len() < total { 206 } else { 200 };
    let mut reply = Reply::json(status, Value::Array(page))
        .with_header("Accept-Range", format!("{} {MAX_INPUT_VARS}", t.name()));
    if total > 0 {
        reply = reply.with_header(
            "Content-Range",
            format!("{start}-{}/{total}", header_end.min(total - 1)),
        );
    }
    reply
}

/// MySQL-like ordering: numbers numerically, text case-insensitively, null first.
pub(crate) fn compare_cells(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Less,
        (_, None | Some(Value::Null)) => Ordering::Greater,
        (Some(x), Some(y)) => cell_text(x)
            .to_lowercase()
            .cmp(&cell_text(y).to_lowercase()),
    }
}

pub(crate) fn cell_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(cell_text).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    }
}
