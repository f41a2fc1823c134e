//! The emulated GLPI database: one ordered table per item type, MySQL-like
//! auto-increment ids (an explicit id moves the counter past it), the known
//! entities and the open sessions. A fresh GLPI 10 has users 2–6 (glpi,
//! post-only, tech, normal, glpi-system), so the first created user is 7.

use std::collections::BTreeMap;

use serde_json::Value;

use super::prepare::text_of;
use super::schema::{default_row, ItemType, Row};
use super::session::{Session, Sessions};
use super::{EmulatorConfig, GlpiVersion};

pub(crate) struct Glpi {
    pub(crate) version: GlpiVersion,
    pub(crate) sessions: Sessions,
    pub(crate) writable_entities: Vec<i64>,
    /// Root (0) first; the others are children of the root.
    pub(crate) entities: Vec<i64>,
    pub(crate) api_users: Vec<(i64, String, String)>,
    /// The users present at start (not created by clients).
    pub(crate) seeded_users: Vec<i64>,
    /// Each user's profile entities (Profile_User rows): (entity, recursive).
    pub(crate) user_profiles: BTreeMap<i64, Vec<(i64, bool)>>,
    tables: BTreeMap<ItemType, BTreeMap<i64, Row>>,
    next_ids: BTreeMap<ItemType, i64>,
}

const SEEDED_USERS: [(i64, &str); 5] = [
    (2, "glpi"),
    (3, "post-only"),
    (4, "tech"),
    (5, "normal"),
    (6, "glpi-system"),
];

impl Glpi {
    pub(crate) fn new(config: &EmulatorConfig) -> Glpi {
        let mut entities = vec![0];
        for e in &config.writable_entities {
            if !entities.contains(e) {
                entities.push(*e);
            }
        }
        let mut glpi = Glpi {
            version: config.version,
            sessions: Sessions::default(),
            writable_entities: config.writable_entities.clone(),
            entities,
            api_users: config
                .users
                .iter()
                .map(|u| (u.id, u.login.clone(), u.user_token.clone()))
                .collect(),
            seeded_users: Vec::new(),
            user_profiles: BTreeMap::new(),
            tables: ItemType::ALL
                .iter()
                .map(|t| (*t, BTreeMap::new()))
                .collect(),
            next_ids: ItemType::ALL.iter().map(|t| (*t, 1)).collect(),
        };
        let now = glpi.now();
        let mut users: Vec<(i64, String)> = SEEDED_USERS
            .iter()
            .map(|(id, login)| (*id, (*login).to_owned()))
            .collect();
        for u in &config.users {
            users.retain(|(id, login)| *id != u.id && !login.eq_ignore_ascii_case(&u.login));
            users.push((u.id, u.login.clone()));
        }
        for (id, login) in users {
            let mut row = default_row(ItemType::User, glpi.version, &now);
            row.insert("id".into(), Value::from(id));
            row.insert("name".into(), Value::from(login));
            row.insert("authtype".into(), Value::from(1));
            let id = glpi.insert(ItemType::User, row);
            glpi.seeded_users.push(id);
            glpi.user_profiles.insert(id, vec![(0, true)]);
        }
        glpi
    }

    /// The current time as GLPI stores it.
    pub(crate) fn now(&self) -> String {
        chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
    }

    pub(crate) fn table(&self, t: ItemType) -> &BTreeMap<i64, Row> {
        &self.tables[&t]
    }

    pub(crate) fn table_mut(&mut self, t: ItemType) -> &mut BTreeMap<i64, Row> {
        self.tables
            .get_mut(&t)
            .expect("every item type has a table")
    }

    pub(crate) fn get(&self, t: ItemType, id: i64) -> Option<&Row> {
        self.tables[&t].get(&id)
    }

    pub(crate) fn get_mut(&mut self, t: ItemType, id: i64) -> Option<&mut Row> {
        self.table_mut(t).get_mut(&id)
    }

    /// Inserts a row; a positive `id` in it is kept (like an explicit id in
    /// an INSERT), otherwise the next auto-increment id is used.
    pub(crate) fn insert(&mut self, t: ItemType, mut row: Row) -> i64 {
        let next = self.next_ids[&t];
        let id = match row.get("id").and_then(Value::as_i64) {
            Some(id) if id > 0 => id,
            _ => next,
        };
        row.insert("id".into(), Value::from(id));
        self.next_ids.insert(t, next.max(id + 1));
        self.table_mut(t).insert(id, row);
        id
    }

    pub(crate) fn remove(&mut self, t: ItemType, id: i64) -> Option<Row> {
        self.table_mut(t).remove(&id)
    }

    pub(crate) fn entity_name(&self, id: i64) -> String {
        if id == 0 {
            "Root entity".to_owned()
        } else {
            format!("Root entity > Entity {id}")
        }
    }

    /// Whether the session's active entities are all the entities.
    pub(crate) fn sees_all_entities(&self, session: &Session) -> bool {
        self.entities
            .iter()
            .all(|e| session.active_entities.contains(e))
    }

    /// Users are not entity-assigned, but unless the session sees every
    /// entity (`sees_all`), GLPI only shows users having a profile in an
    /// active entity (or a recursive one above it: the root).
    pub(crate) fn user_visible(&self, session: &Session, sees_all: bool, users_id: i64) -> bool {
        sees_all
            || self.user_profiles.get(&users_id).is_some_and(|profiles| {
                profiles.iter().any(|(e, recursive)| {
                    session.active_entities.contains(e) || (*recursive && *e == 0)
                })
            })
    }

    /// A user as GLPI names it in dropdowns and messages: "Last First", else
    /// the login.
    pub(crate) fn user_display_name(&self, users_id: i64) -> Option<String> {
        let row = self.get(ItemType::User, users_id)?;
        Some(person_name(
            &text_of(row, "realname"),
            &text_of(row, "firstname"),
            &text_of(row, "name"),
        ))
    }

    /// The entities a session sees from `entity` (recursive = with children).
    pub(crate) fn entities_under(&self, entity: i64, recursive: bool) -> Vec<i64> {
        if entity == 0 && recursive {
            self.entities.clone()
        } else {
            vec![entity]
        }
    }
}

/// `formatUserName`: "Lastname Firstname", else the login.
pub(crate) fn person_name(last: &str, first: &str, login: &str) -> String {
    match (last.is_empty(), first.is_empty()) {
        (false, false) => format!("{last} {first}"),
        (false, true) => last.to_owned(),
        (true, false) if login.is_empty() => first.to_owned(),
        _ => login.to_owned(),
    }
}
