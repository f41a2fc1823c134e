//! Per-type rules of `prepareInputForAdd` / `post_addItem`: what GLPI
//! refuses (with its exact message, or silently with `""`) and the defaults
//! and side effects it applies (ticket dates and priority, actors, user
//! emails, followup parent updates).

use serde_json::{Map, Value};

use super::actors::{self, is_valid_email, is_valid_login, Actor};
use super::create::NO_RIGHT;
use super::params::{as_int, as_text};
use super::sanitize;
use super::schema::{is_valid_datetime, ItemType, Row};
use super::session::Session;
use super::store::Glpi;
use super::GlpiVersion;

pub(crate) fn before_add(
    glpi: &Glpi,
    session: &Session,
    t: ItemType,
    mut input: Row,
) -> Result<Row, String> {
    match t {
        ItemType::User => {
            check_login(glpi, &mut input, None)?;
            set_password(&mut input)?;
        }
        ItemType::UserEmail => {
            let users_id = int_of(&input, "users_id");
            if glpi.get(ItemType::User, users_id).is_none() {
                return Err(NO_RIGHT.to_owned());
            }
            let email = text_of(&input, "email").trim().to_owned();
            if !is_valid_email(&email) || user_has_email(glpi, users_id, &email) {
                return Err(String::new());
            }
            input.insert("email".into(), email.into());
            if !glpi
                .table(ItemType::UserEmail)
                .values()
                .any(|r| int_of(r, "users_id") == users_id)
            {
                input.insert("is_default".into(), 1.into());
            }
        }
        ItemType::Contact => {}
        ItemType::Ticket => prepare_ticket(glpi, session, &mut input)?,
        ItemType::TicketUser => {
            let actor = Actor {
                role: int_or(&input, "type", 1),
                users_id: int_of(&input, "users_id"),
                use_notification: int_or(&input, "use_notification", 1),
                alternative_email: text_of(&input, "alternative_email"),
            };
            let tickets_id = int_of(&input, "tickets_id");
            if glpi.get(ItemType::Ticket, tickets_id).is_none() {
                return Err(String::new());
            }
            if let Some(refusal) = actor_refusal(glpi, tickets_id, &actor) {
                return Err(refusal);
            }
            input.insert("alternative_email".into(), actor.alternative_email.into());
        }
        ItemType::ItilFollowup => {
            let itemtype = text_of(&input, "itemtype");
            let ticket = glpi.get(ItemType::Ticket, int_of(&input, "items_id"));
            let Some(ticket) = ticket.filter(|_| itemtype.eq_ignore_ascii_case("Ticket")) else {
                return Err(String::new());
            };
            if int_of(ticket, "status") == 6 {
                return Err(NO_RIGHT.to_owned());
            }
            let content = text_of(&input, "content");
            if content.is_empty() || content == "0" {
                return Err("You can't add a followup without description".to_owned());
            }
            input.insert("itemtype".into(), "Ticket".into());
            let now = glpi.now();
            set_default(&mut input, "users_id", session.user_id.into());
            set_default(&mut input, "date", now.into());
            input.insert("users_id_editor".into(), 0.into());
        }
    }
    Ok(input)
}

pub(crate) fn after_add(
    glpi: &mut Glpi,
    session: &Session,
    t: ItemType,
    id: i64,
    input: &Row,
    cloned_from: Option<i64>,
) {
    match t {
        ItemType::User => {
            // User::post_addItem: the default profile, in `_entities_id` or
            // the active entity, recursive only if `_is_recursive`.
            let entity = input
                .get("_entities_id")
                .and_then(as_int)
                .unwrap_or(session.active_entity);
            let recursive = crate::glpi_emulator::params::is_true(input.get("_is_recursive"));
            let mut profiles = cloned_from
                .and_then(|source| glpi.user_profiles.get(&source).cloned())
                .unwrap_or_default();
            profiles.push((entity, recursive));
            glpi.user_profiles.insert(id, profiles);
            sync_user_emails(glpi, id, input);
        }
        ItemType::UserEmail => {
            if glpi
                .get(t, id)
                .is_some_and(|r| int_of(r, "is_default") == 1)
            {
                set_default_email(glpi, id);
            }
        }
        ItemType::Ticket => {
            if let Some(source) = cloned_from {
                let copies: Vec<Actor> = ticket_actor_rows(glpi, source)
                    .into_iter()
                    .map(|(_, a)| a)
                    .collect();
                for actor in copies {
                    add_actor(glpi, id, &actor);
                }
            }
            for actor in actors::ticket_actors(input) {
                add_actor(glpi, id, &actor);
            }
        }
        ItemType::TicketUser => {
            if let Some(row) = glpi.get(t, id) {
                let (tickets_id, role) = (int_of(row, "tickets_id"), int_of(row, "type"));
                assigned_switches_status(glpi, tickets_id, role);
            }
        }
        ItemType::ItilFollowup => {
            let now = glpi.now();
            let tickets_id = int_of(input, "items_id");
            if let Some(ticket) = glpi.get_mut(ItemType::Ticket, tickets_id) {
                ticket.insert("date_mod".into(), now.clone().into());
                ticket.insert("users_id_lastupdater".into(), session.user_id.into());
                if ticket.get("takeintoaccountdate").is_none_or(Value::is_null) {
                    ticket.insert("takeintoaccountdate".into(), now.into());
                }
            }
        }
        ItemType::Contact => {}
    }
}

fn prepare_ticket(glpi: &Glpi, session: &Session, input: &mut Row) -> Result<(), String> {
    let now = glpi.now();
    let date = text_of(input, "date");
    if date.is_empty() {
        input.insert("date".into(), now.clone().into());
    } else if !is_valid_datetime(&date) {
        return Err("Incorrect value for date field.".to_owned());
    }
    let date = text_of(input, "date");
    let status = int_or(input, "status", 1);
    input.insert("status".into(), status.into());
    let scale = |v: i64| if (1..=5).contains(&v) { v } else { 3 };
    let urgency = scale(int_or(input, "urgency", 3));
    let impact = scale(int_or(input, "impact", 3));
    input.insert("urgency".into(), urgency.into());
    input.insert("impact".into(), impact.into());
    if !input.contains_key("priority") {
        input.insert("priority".into(), priority(urgency, impact).into());
    }
    set_default(input, "type", 1.into());
    set_default(input, "requesttypes_id", 1.into());
    set_default(input, "users_id_recipient", session.user_id.into());
    input.insert("users_id_lastupdater".into(), session.user_id.into());
    if text_of(input, "name").is_empty() {
        let name = name_from_content(&text_of(input, "content"), glpi.version);
        input.insert("name".into(), name.into());
    }
    match status {
        5 => set_default(input, "solvedate", date.clone().into()),
        6 => {
            set_default(input, "solvedate", date.clone().into());
            set_default(input, "closedate", date.into());
        }
        4 => set_default(input, "begin_waiting_date", now.into()),
        _ => {}
    }
    // The ticket itself is refused for a bad actor email; other bad actors
    // (unknown user, duplicates) are only skipped when the rows are added.
    for actor in actors::ticket_actors(input) {
        if !actor.alternative_email.is_empty() && !is_valid_email(&actor.alternative_email) {
            return Err(format!("Invalid email address {}", actor.alternative_email));
        }
    }
    Ok(())
}

/// The default `priority_matrix` (urgency × impact).
fn priority(urgency: i64, impact: i64) -> i64 {
    const MATRIX: [[i64; 5]; 5] = [
        [1, 1, 2, 2, 2],
        [1, 2, 2, 3, 3],
        [2, 2, 3, 4, 4],
        [2, 3, 4, 4, 5],
        [2, 3, 4, 5, 5],
    ];
    MATRIX[(urgency - 1) as usize][(impact - 1) as usize]
}

/// An empty ticket name becomes the first 70 characters of the content text.
fn name_from_content(content: &str, version: GlpiVersion) -> String {
    let raw = sanitize::decode(content);
    let mut text = String::new();
    let mut in_tag = false;
    for c in raw.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let name: String = collapsed.chars().take(70).collect();
    match version {
        GlpiVersion::V10 => sanitize::encode(&name),
        GlpiVersion::V11 => name,
    }
}

/// Why `CommonITILActor::prepareInputForAdd` (and the relation checks)
/// refuse an actor row, if they do: an unknown user, a user already in that
/// role, an email-only actor without (or with a duplicate) email — all
/// silently (`""`) — or an invalid email ("Invalid email address").
fn actor_refusal(glpi: &Glpi, tickets_id: i64, actor: &Actor) -> Option<String> {
    let existing = ticket_actor_rows(glpi, tickets_id);
    if actor.users_id > 0 {
        if glpi.get(ItemType::User, actor.users_id).is_none()
            || existing
                .iter()
                .any(|(_, a)| a.role == actor.role && a.users_id == actor.users_id)
        {
            return Some(String::new());
        }
    } else if actor.alternative_email.is_empty()
        || existing.iter().any(|(_, a)| {
            a.role == actor.role
                && a.users_id <= 0
                && a.alternative_email
                    .eq_ignore_ascii_case(&actor.alternative_email)
        })
    {
        return Some(String::new());
    }
    if !actor.alternative_email.is_empty() && !is_valid_email(&actor.alternative_email) {
        return Some("Invalid email address".to_owned());
    }
    None
}

pub(crate) fn ticket_actor_rows(glpi: &Glpi, tickets_id: i64) -> Vec<(i64, Actor)> {
    glpi.table(ItemType::TicketUser)
        .iter()
        .filter(|(_, r)| int_of(r, "tickets_id") == tickets_id)
        .map(|(id, r)| {
            (
                *id,
                Actor {
                    role: int_of(r, "type"),
                    users_id: int_of(r, "users_id"),
                    use_notification: int_of(r, "use_notification"),
                    alternative_email: text_of(r, "alternative_email"),
                },
            )
        })
        .collect()
}

/// Adds a Ticket_User row unless the unique key refuses it.
pub(crate) fn add_actor(glpi: &mut Glpi, tickets_id: i64, actor: &Actor) {
    if actor_refusal(glpi, tickets_id, actor).is_some() {
        return;
    }
    let mut row = Map::new();
    row.insert("tickets_id".into(), tickets_id.into());
    row.insert("users_id".into(), actor.users_id.max(0).into());
    row.insert("type".into(), actor.role.into());
    row.insert("use_notification".into(), actor.use_notification.into());
    row.insert(
        "alternative_email".into(),
        actor.alternative_email.clone().into(),
    );
    glpi.insert(ItemType::TicketUser, row);
    assigned_switches_status(glpi, tickets_id, actor.role);
}

/// Adding an actor touches the ticket's `date_mod`; assigning someone to a
/// New ticket makes it "Processing (assigned)".
fn assigned_switches_status(glpi: &mut Glpi, tickets_id: i64, role: i64) {
    let now = glpi.now();
    if let Some(ticket) = glpi.get_mut(ItemType::Ticket, tickets_id) {
        ticket.insert("date_mod".into(), now.into());
        if role == 2 && int_of(ticket, "status") == 1 {
            ticket.insert("status".into(), 2.into());
        }
    }
}

/// `CommonITILActor::post_deleteFromDB`: a ticket left without assignee
/// and not solved/closed goes back to New; in any case `date_mod` moves.
pub(crate) fn actor_removed(glpi: &mut Glpi, tickets_id: i64) {
    let assigned = ticket_actor_rows(glpi, tickets_id)
        .iter()
        .any(|(_, a)| a.role == 2);
    let now = glpi.now();
    if let Some(ticket) = glpi.get_mut(ItemType::Ticket, tickets_id) {
        ticket.insert("date_mod".into(), now.into());
        if !assigned && !matches!(int_of(ticket, "status"), 5 | 6) {
            ticket.insert("status".into(), 1.into());
        }
    }
}

/// Login validity and uniqueness per (name, authtype, auths_id), trashed
/// users included, case-insensitive like MySQL's collation.
pub(crate) fn check_login(
    glpi: &Glpi,
    input: &mut Row,
    self_id: Option<i64>,
) -> Result<(), String> {
    let name = text_of(input, "name");
    if name == "0" || !is_valid_login(&name) {
        return Err(match self_id {
            None => "The login is not valid. Unable to add the user.",
            Some(_) => "The login is not valid. Unable to update login.",
        }
        .to_owned());
    }
    set_default(input, "authtype", 1.into());
    set_default(input, "auths_id", 0.into());
    let (authtype, auths_id) = (int_of(input, "authtype"), int_of(input, "auths_id"));
    let taken = glpi.table(ItemType::User).iter().any(|(id, r)| {
        Some(*id) != self_id
            && text_of(r, "name").to_lowercase() == name.to_lowercase()
            && int_of(r, "authtype") == authtype
            && int_of(r, "auths_id") == auths_id
    });
    if taken {
        return Err(match self_id {
            None => "Unable to add. The user already exists.",
            Some(_) => "Unable to update login. A user already exists.",
        }
        .to_owned());
    }
    Ok(())
}

/// With `password2`, `password` must equal it (an empty one is dropped) and
/// only a (fake) hash is stored; without `password2` GLPI stores the value
/// as given. Never returned by the API either way.
pub(crate) fn set_password(input: &mut Row) -> Result<(), String> {
    if !input.contains_key("password2") {
        return Ok(());
    }
    let password = text_of(input, "password");
    if password.is_empty() {
        input.remove("password");
    } else if text_of(input, "password2") != password {
        return Err("Error: the two passwords do not match".to_owned());
    } else {
        input.insert(
            "password".into(),
            format!("$2y$10$emulator{}", password.len()).into(),
        );
    }
    Ok(())
}

fn user_has_email(glpi: &Glpi, users_id: i64, email: &str) -> bool {
    glpi.table(ItemType::UserEmail).values().any(|r| {
        int_of(r, "users_id") == users_id && text_of(r, "email").eq_ignore_ascii_case(email)
    })
}

/// `_useremails` on add/update (`User::updateUserEmails`): a key > 0 naming
/// one of the user's UserEmail rows updates it (an empty value deletes it) —
/// so in a JSON *list*, index 1, 2… may hit the user's own rows; any other
/// key adds an address. Invalid or duplicate addresses are skipped silently.
pub(crate) fn sync_user_emails(glpi: &mut Glpi, users_id: i64, input: &Row) {
    let default_key = input.get("_default_email").and_then(as_text);
    for (key, email) in actors::user_emails(input) {
        let is_default = default_key.as_deref() == Some(key.as_str());
        let existing = key.parse::<i64>().ok().filter(|id| *id > 0).filter(|id| {
            glpi.get(ItemType::UserEmail, *id)
                .is_some_and(|r| int_of(r, "users_id") == users_id)
        });
        if let Some(id) = existing {
            if email.is_empty() {
                glpi.remove(ItemType::UserEmail, id);
            } else if is_valid_email(&email) {
                // `is_default = ($_default_email == $id)`: 0 unless named.
                if let Some(row) = glpi.get_mut(ItemType::UserEmail, id) {
                    row.insert("email".into(), email.into());
                    row.insert("is_default".into(), i64::from(is_default).into());
                }
                if is_default {
                    set_default_email(glpi, id);
                }
            }
            continue;
        }
        let mut row = Map::new();
        row.insert("users_id".into(), users_id.into());
        row.insert("email".into(), email.into());
        row.insert("is_default".into(), i64::from(is_default).into());
        let session = Session {
            user_id: 0,
            login: String::new(),
            active_entity: 0,
            recursive: true,
            active_entities: vec![0],
        };
        let _ = super::create::add(glpi, &session, ItemType::UserEmail, row);
    }
}

fn set_default_email(glpi: &mut Glpi, useremails_id: i64) {
    let Some(users_id) = glpi
        .get(ItemType::UserEmail, useremails_id)
        .map(|r| int_of(r, "users_id"))
    else {
        return;
    };
    for (id, row) in glpi.table_mut(ItemType::UserEmail).iter_mut() {
        if int_of(row, "users_id") == users_id {
            row.insert("is_default".into(), i64::from(*id == useremails_id).into());
        }
    }
}

pub(crate) fn int_of(row: &Map<String, Value>, key: &str) -> i64 {
    row.get(key).and_then(as_int).unwrap_or(0)
}

fn int_or(row: &Map<String, Value>, key: &str, default: i64) -> i64 {
    match row.get(key) {
        None | Some(Value::Null) => default,
        Some(v) => as_int(v).unwrap_or(default),
    }
}

pub(crate) fn text_of(row: &Map<String, Value>, key: &str) -> String {
    row.get(key).and_then(as_text).unwrap_or_default()
}

fn set_default(row: &mut Map<String, Value>, key: &str, value: Value) {
    if row.get(key).is_none_or(|v| v.is_null() || v == "") {
        row.insert(key.to_owned(), value);
    }
}
