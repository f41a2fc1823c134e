//! `POST /:itemtype/` — `API::createItems` then `CommonDBTM::add`: the
//! single/bulk envelopes (201 + `location`/`Link`, 207 partial, 400 all
//! failed), the entity rights check (a rights failure is a **400**), GLPI 10
//! sanitising, and the clone-on-`id` trap: an `id` naming an existing row of
//! a clonable type clones that row; a free id is inserted as given.

use serde_json::{json, Map, Value};

use super::params::as_int;
use super::prepare;
use super::reply::Reply;
use super::sanitize;
use super::schema::{apply_input, default_row, ItemType, Row};
use super::session::Session;
use super::store::{person_name, Glpi};
use super::GlpiVersion;

pub(crate) const NO_RIGHT: &str = "You don't have permission to perform this action.";

/// The outcome of one item's add: the new id and GLPI's message, or the
/// error message (possibly empty, when GLPI refuses silently).
pub(crate) type AddResult = Result<(i64, String), String>;

pub(crate) struct CreateOutcome {
    pub(crate) reply: Reply,
    /// Whether at least one item was created (for `CommitThenDrop`).
    pub(crate) created_any: bool,
}

pub(crate) fn create_items(
    glpi: &mut Glpi,
    session: &Session,
    t: ItemType,
    params: &Map<String, Value>,
    api_url: &str,
    decode_output: bool,
) -> CreateOutcome {
    let bad_array = || CreateOutcome {
        reply: Reply::error(
            api_url,
            400,
            "ERROR_BAD_ARRAY",
            "input parameter must be an array of objects",
        ),
        created_any: false,
    };
    let (inputs, multiple): (Vec<Row>, bool) = match params.get("input") {
        Some(Value::Object(one)) => (vec![one.clone()], false),
        Some(Value::Array(many)) => {
            let mut rows = Vec::new();
            for item in many {
                match item {
                    Value::Object(o) => rows.push(o.clone()),
                    _ => return bad_array(),
                }
            }
            (rows, true)
        }
        _ => return bad_array(),
    };

    let mut results: Vec<AddResult> = Vec::new();
    for input in inputs {
        let mut result = add_through_api(glpi, session, t, input);
        if decode_output {
            result = result
                .map(|(id, m)| (id, sanitize::decode(&m)))
                .map_err(|m| sanitize::decode(&m));
        }
        results.push(result);
    }
    let created: Vec<i64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|(id, _)| *id))
        .collect();
    let created_any = !created.is_empty();
    let location = |id: i64| format!("{api_url}/{}/{id}", t.name());

    let reply = if !multiple {
        match results.remove(0) {
            Ok((id, message)) => Reply::json(201, json!({"id": id, "message": message}))
                .with_header("location", location(id)),
            Err(message) => Reply::error(api_url, 400, "ERROR_GLPI_ADD", &message),
        }
    } else {
        let entries: Vec<Value> = results
            .iter()
            .map(|r| match r {
                Ok((id, message)) => json!({"id": id, "message": message}),
                Err(message) => json!({"id": false, "message": message}),
            })
            .collect();
        if created.len() == results.len() && !results.is_empty() {
            let links: Vec<String> = created.iter().map(|id| location(*id)).collect();
            Reply::json(201, Value::Array(entries)).with_header("Link", links.join(","))
        } else if created.is_empty() {
            Reply::error_value(400, "ERROR_GLPI_ADD", Value::Array(entries))
        } else {
            Reply::error_value(207, "ERROR_GLPI_PARTIAL_ADD", Value::Array(entries))
        }
    };
    CreateOutcome { reply, created_any }
}

/// One item as `createItems` handles it: rights, default entity, sanitising,
/// then `add`.
fn add_through_api(glpi: &mut Glpi, session: &Session, t: ItemType, mut input: Row) -> AddResult {
    if !input.contains_key("entities_id") {
        input.insert("entities_id".into(), Value::from(session.active_entity));
    }
    if t.is_entity_assign() {
        let entity = input.get("entities_id").and_then(as_int).unwrap_or(0);
        if !session.active_entities.contains(&entity) || !glpi.writable_entities.contains(&entity) {
            return Err(NO_RIGHT.to_owned());
        }
    }
    if glpi.version == GlpiVersion::V10 {
        for value in input.values_mut() {
            sanitize::encode_value(value);
        }
    }
    add(glpi, session, t, input)
}

/// `CommonDBTM::add`: clone-on-id, `prepareInputForAdd`, insert, `post_addItem`.
pub(crate) fn add(glpi: &mut Glpi, session: &Session, t: ItemType, mut input: Row) -> AddResult {
    let wanted_id = input.get("id").and_then(as_int).filter(|id| *id > 0);
    let mut cloned_from = None;
    if let Some(id) = wanted_id {
        match glpi.get(t, id) {
            Some(existing) if t.is_clonable() => {
                input = clone_input(glpi, t, existing, input);
                cloned_from = Some(id);
            }
            // The INSERT with an explicit, taken id fails: a silent refusal.
            Some(_) => return Err(String::new()),
            None => {}
        }
    }
    let input = prepare::before_add(glpi, session, t, input)?;
    let now = glpi.now();
    let mut row = default_row(t, glpi.version, &now);
    apply_input(t, glpi.version, &mut row, &input);
    if cloned_from.is_none() {
        if let Some(id) = wanted_id {
            row.insert("id".into(), Value::from(id));
        }
    }
    let id = glpi.insert(t, row);
    prepare::after_add(glpi, session, t, id, &input, cloned_from);
    let message = added_message(glpi, t, id);
    Ok((id, message))
}

/// `Clonable::clone`: the source's fields overridden by the input, without
/// id/dates (and a user's tokens); without a new `name`, the copy is named
/// "<name> (copy)", "<name> (copy 2)", … (slugified for users).
fn clone_input(glpi: &Glpi, t: ItemType, source: &Row, mut input: Row) -> Row {
    let mut merged = source.clone();
    let mut dropped = vec!["id", "date_creation", "date_mod"];
    if t == ItemType::User {
        dropped.extend([
            "last_login",
            "personal_token",
            "personal_token_date",
            "api_token",
            "api_token_date",
            "cookie_token",
            "cookie_token_date",
        ]);
    }
    for key in dropped {
        merged.remove(key);
    }
    input.remove("id");
    let renamed = !input.contains_key("name");
    merged.extend(input);
    let current = merged
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let (true, Some(current)) = (renamed, current) {
        let taken = |candidate: &str| {
            glpi.table(t)
                .values()
                .any(|r| r.get("name").and_then(Value::as_str) == Some(candidate))
        };
        let mut index = 1;
        let copy_name = loop {
            let candidate = match index {
                1 => format!("{current} (copy)"),
                n => format!("{current} (copy {n})"),
            };
            let candidate = if t == ItemType::User {
                slugify(&candidate)
            } else {
                candidate
            };
            if !taken(&candidate) {
                break candidate;
            }
            index += 1;
        };
        merged.insert("name".into(), copy_name.into());
    }
    merged
}

/// `Toolbox::slugify`: lower-case ASCII words joined by `-`.
fn slugify(text: &str) -> String {
    let mut out = String::new();
    for c in text.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// GLPI's "Item successfully added: …" (types with `auto_message_on_action`
/// false answer an empty message).
fn added_message(glpi: &Glpi, t: ItemType, id: i64) -> String {
    let Some(row) = glpi.get(t, id) else {
        return String::new();
    };
    let text = |k: &str| {
        row.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let name = match t {
        ItemType::Ticket => {
            let name = text("name");
            if name.is_empty() {
                format!("Ticket - ID {id}")
            } else {
                format!("{name} ({id})")
            }
        }
        ItemType::User => person_name(&text("realname"), &text("firstname"), &text("name")),
        ItemType::Contact => {
            let n = person_name(&text("name"), &text("firstname"), "");
            if n.is_empty() {
                format!("Contact - ID {id}")
            } else {
                n
            }
        }
        ItemType::UserEmail | ItemType::TicketUser | ItemType::ItilFollowup => {
            return String::new()
        }
    };
    format!("Item successfully added: {name}")
}
