//! `PUT|PATCH /:itemtype/:id` (`API::updateItems`) and `DELETE`
//! (`API::deleteItems`), with GLPI's quirks: a missing id is skipped without
//! an entry (single → 400 `["ERROR_GLPI_UPDATE",null]`, bulk → 207 without
//! it), success is always a list `[{"<id>":true,"message":""}]`.

use serde_json::{json, Map, Value};

use super::actors;
use super::create::NO_RIGHT;
use super::params::{as_int, is_true};
use super::prepare::{self, int_of};
use super::reply::Reply;
use super::sanitize;
use super::schema::{apply_input, ItemType, Row};
use super::session::Session;
use super::store::Glpi;
use super::GlpiVersion;

/// The inputs of an update/delete: `input` as an object or a list; the URL
/// id fills a missing `id` of a single object.
fn inputs(params: &Map<String, Value>, url_id: Option<i64>) -> Option<(Vec<Row>, bool)> {
    match params.get("input") {
        Some(Value::Object(one)) => {
            let mut one = one.clone();
            if let Some(id) = url_id {
                one.entry("id").or_insert(Value::from(id));
            }
            Some((vec![one], false))
        }
        Some(Value::Array(many)) => Some((
            many.iter().filter_map(|v| v.as_object().cloned()).collect(),
            true,
        )),
        _ => None,
    }
}

pub(crate) fn update_items(
    glpi: &mut Glpi,
    session: &Session,
    t: ItemType,
    url_id: Option<i64>,
    params: &Map<String, Value>,
    api_url: &str,
) -> Reply {
    let Some((inputs, multiple)) = inputs(params, url_id) else {
        return Reply::error(
            api_url,
            400,
            "ERROR_BAD_ARRAY",
            "input parameter must be an array of objects",
        );
    };
    let count = inputs.len();
    let mut failed = 0;
    let mut entries: Vec<(i64, bool, String)> = Vec::new();
    for mut input in inputs {
        let Some(id) = input.get("id").and_then(as_int) else {
            failed += 1;
            continue;
        };
        let Some(current) = glpi.get(t, id).cloned() else {
            // GLPI `continue`s before recording the "Item not found" entry.
            failed += 1;
            continue;
        };
        if t.is_entity_assign()
            && !session
                .active_entities
                .contains(&int_of(&current, "entities_id"))
        {
            failed += 1;
            entries.push((id, false, NO_RIGHT.to_owned()));
            continue;
        }
        if glpi.version == GlpiVersion::V10 {
            for value in input.values_mut() {
                sanitize::encode_value(value);
            }
        }
        match update_one(glpi, session, t, id, current, input) {
            Ok(()) => entries.push((id, true, String::new())),
            Err(message) => {
                failed += 1;
                entries.push((id, false, message));
            }
        }
    }
    let list = Value::Array(
        entries
            .iter()
            .map(|(id, ok, message)| json!({ id.to_string(): ok, "message": message }))
            .collect(),
    );
    if !multiple {
        if failed > 0 {
            let message = entries
                .first()
                .map_or(Value::Null, |(_, _, m)| Value::from(m.clone()));
            return Reply::error_value(400, "ERROR_GLPI_UPDATE", message);
        }
    } else if failed == count {
        return Reply::error_value(400, "ERROR_GLPI_UPDATE", list);
    } else if failed > 0 {
        return Reply::error_value(207, "ERROR_GLPI_PARTIAL_UPDATE", list);
    }
    Reply::json(200, list)
}

/// `CommonDBTM::update` with the type rules the bridge relies on.
fn update_one(
    glpi: &mut Glpi,
    session: &Session,
    t: ItemType,
    id: i64,
    current: Row,
    mut input: Row,
) -> Result<(), String> {
    if t == ItemType::User && input.contains_key("name") {
        let mut check = input.clone();
        check
            .entry("authtype")
            .or_insert(current.get("authtype").cloned().unwrap_or(Value::Null));
        check
            .entry("auths_id")
            .or_insert(current.get("auths_id").cloned().unwrap_or(Value::Null));
        prepare::check_login(glpi, &mut check, Some(id))?;
    }
    if t == ItemType::User {
        prepare::set_password(&mut input)?;
    }
    let now = glpi.now();
    let mut row = current.clone();
    apply_input(t, glpi.version, &mut row, &input);
    if t == ItemType::Ticket {
        ticket_status_dates(&current, &mut row, &now);
        if row != current {
            row.insert("users_id_lastupdater".into(), session.user_id.into());
        }
    }
    if row != current && row.contains_key("date_mod") && !input.contains_key("date_mod") {
        row.insert("date_mod".into(), now.into());
    }
    glpi.table_mut(t).insert(id, row);
    match t {
        ItemType::User => prepare::sync_user_emails(glpi, id, &input),
        ItemType::Ticket => update_ticket_actors(glpi, id, &input),
        _ => {}
    }
    Ok(())
}

/// Solving sets `solvedate`, closing sets `closedate`, reopening clears both.
fn ticket_status_dates(before: &Row, row: &mut Row, now: &str) {
    let (old, new) = (int_of(before, "status"), int_of(row, "status"));
    if old == new {
        return;
    }
    let null = |row: &Row, k: &str| row.get(k).is_none_or(Value::is_null);
    match new {
        5 => {
            row.insert("solvedate".into(), now.into());
        }
        6 => {
            if null(row, "solvedate") {
                row.insert("solvedate".into(), now.into());
            }
            row.insert("closedate".into(), now.into());
        }
        _ => {
            row.insert("solvedate".into(), Value::Null);
            row.insert("closedate".into(), Value::Null);
            if new == 4 {
                row.insert("begin_waiting_date".into(), now.into());
            }
        }
    }
}

/// `_actors` replaces the listed roles; the historical keys only add.
fn update_ticket_actors(glpi: &mut Glpi, tickets_id: i64, input: &Row) {
    let wanted = actors::ticket_actors(input);
    let replaced = actors::listed_roles(input);
    for (row_id, actor) in prepare::ticket_actor_rows(glpi, tickets_id) {
        if replaced.contains(&actor.role) && !wanted.contains(&actor) {
            glpi.remove(ItemType::TicketUser, row_id);
            prepare::actor_removed(glpi, tickets_id);
        }
    }
    for actor in wanted {
        prepare::add_actor(glpi, tickets_id, &actor);
    }
}

pub(crate) fn delete_items(
    glpi: &mut Glpi,
    session: &Session,
    t: ItemType,
    url_id: Option<i64>,
    params: &Map<String, Value>,
    api_url: &str,
) -> Reply {
    let (inputs, multiple) = match (url_id, inputs(params, None)) {
        (Some(id), _) => (
            vec![json!({ "id": id }).as_object().cloned().unwrap_or_default()],
            false,
        ),
        (None, Some(found)) => found,
        (None, None) => {
            return Reply::error(
                api_url,
                400,
                "ERROR_BAD_ARRAY",
                "input parameter must be an array of objects",
            )
        }
    };
    let purge = is_true(params.get("force_purge"));
    let count = inputs.len();
    let mut failed = 0;
    let mut entries = Vec::new();
    for input in &inputs {
        let id = input.get("id").and_then(as_int).unwrap_or(0);
        let (ok, message) = match glpi.get(t, id) {
            None => (false, "Item not found"),
            Some(row)
                if t.is_entity_assign()
                    && !session
                        .active_entities
                        .contains(&int_of(row, "entities_id")) =>
            {
                (false, NO_RIGHT)
            }
            Some(_) => {
                delete_one(glpi, t, id, purge);
                (true, "")
            }
        };
        if !ok {
            failed += 1;
        }
        entries.push(json!({ id.to_string(): ok, "message": message }));
    }
    if !multiple && failed > 0 {
        let message = entries[0]["message"].clone();
        return Reply::error_value(400, "ERROR_GLPI_DELETE", message);
    }
    if multiple && failed == count {
        return Reply::error_value(400, "ERROR_GLPI_DELETE", Value::Array(entries));
    }
    if failed > 0 {
        return Reply::error_value(207, "ERROR_GLPI_PARTIAL_DELETE", Value::Array(entries));
    }
    Reply::json(200, Value::Array(entries))
}

/// Trash-bin types are only flagged unless purged; purging a parent purges
/// its children (a user's emails, a ticket's actors and followups).
fn delete_one(glpi: &mut Glpi, t: ItemType, id: i64, purge: bool) {
    if t.has_trash() && !purge {
        if let Some(row) = glpi.get_mut(t, id) {
            row.insert("is_deleted".into(), 1.into());
        }
        return;
    }
    let removed = glpi.remove(t, id);
    if let (ItemType::TicketUser, Some(row)) = (t, &removed) {
        prepare::actor_removed(glpi, int_of(row, "tickets_id"));
    }
    let children: Vec<(ItemType, i64)> = match t {
        ItemType::User => child_ids(glpi, ItemType::UserEmail, |r| int_of(r, "users_id") == id),
        ItemType::Ticket => {
            let mut c = child_ids(glpi, ItemType::TicketUser, |r| {
                int_of(r, "tickets_id") == id
            });
            c.extend(child_ids(glpi, ItemType::ItilFollowup, |r| {
                int_of(r, "items_id") == id && prepare::text_of(r, "itemtype") == "Ticket"
            }));
            c
        }
        _ => Vec::new(),
    };
    for (child_type, child_id) in children {
        glpi.remove(child_type, child_id);
    }
}

fn child_ids(glpi: &Glpi, t: ItemType, keep: impl Fn(&Row) -> bool) -> Vec<(ItemType, i64)> {
    glpi.table(t)
        .iter()
        .filter(|(_, r)| keep(r))
        .map(|(id, _)| (t, *id))
        .collect()
}
