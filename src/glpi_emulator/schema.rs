//! The item types the emulator knows, their tables' columns (names, kinds,
//! defaults; 10.0.19 `glpi-empty.sql`, 11.0.7 differences) and the traits of
//! each class that change API behaviour (trash bin, entity, clonable, hidden
//! fields). Unknown input keys are dropped on add/update, as
//! `CommonDBTM::add`/`update` only keep keys that are table columns.

use serde_json::{Map, Value};

use super::GlpiVersion;

pub(crate) type Row = Map<String, Value>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ItemType {
    User,
    UserEmail,
    Contact,
    Ticket,
    TicketUser,
    ItilFollowup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Int,
    Str,
    /// `YYYY-MM-DD HH:MM:SS` or null.
    DateTime,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Default {
    Null,
    Int(i64),
    Str(&'static str),
    /// The time of the insert.
    Now,
}

pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) default: Default,
}

const fn int(name: &'static str, default: i64) -> Column {
    Column {
        name,
        kind: Kind::Int,
        default: Default::Int(default),
    }
}
const fn text(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Str,
        default: Default::Null,
    }
}
const fn text_or(name: &'static str, default: &'static str) -> Column {
    Column {
        name,
        kind: Kind::Str,
        default: Default::Str(default),
    }
}
const fn time(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::DateTime,
        default: Default::Null,
    }
}
const fn time_now(name: &'static str) -> Column {
    Column {
        name,
        kind: Kind::DateTime,
        default: Default::Now,
    }
}

const USER: &[Column] = &[
    int("id", 0),
    text("name"),
    text("password"),
    time("password_last_update"),
    text("phone"),
    text("phone2"),
    text("mobile"),
    text("realname"),
    text("firstname"),
    int("locations_id", 0),
    text("language"),
    int("use_mode", 0),
    text("comment"),
    int("is_active", 1),
    int("auths_id", 0),
    int("authtype", 0),
    time("last_login"),
    time_now("date_mod"),
    time("date_sync"),
    int("is_deleted", 0),
    int("profiles_id", 0),
    int("entities_id", 0),
    int("usertitles_id", 0),
    int("usercategories_id", 0),
    text("registration_number"),
    time_now("date_creation"),
    text("api_token"),
    time("api_token_date"),
    text("cookie_token"),
    time("cookie_token_date"),
    text("personal_token"),
    time("personal_token_date"),
    text("user_dn"),
    text("nickname"),
    int("groups_id", 0),
    int("users_id_supervisor", 0),
    time("begin_date"),
    time("end_date"),
    text("sync_field"),
    int("is_deleted_ldap", 0),
    text("picture"),
];

const USER_EMAIL: &[Column] = &[
    int("id", 0),
    int("users_id", 0),
    int("is_default", 0),
    int("is_dynamic", 0),
    text("email"),
];

const CONTACT: &[Column] = &[
    int("id", 0),
    int("entities_id", 0),
    int("is_recursive", 0),
    text("name"),
    text("firstname"),
    text("phone"),
    text("phone2"),
    text("mobile"),
    text("fax"),
    text("email"),
    int("contacttypes_id", 0),
    text("comment"),
    int("is_deleted", 0),
    int("usertitles_id", 0),
    text("address"),
    text("postcode"),
    text("town"),
    text("state"),
    text("country"),
    time_now("date_mod"),
    time_now("date_creation"),
    text("registration_number"),
    text("pictures"),
];

const TICKET: &[Column] = &[
    int("id", 0),
    int("entities_id", 0),
    text("name"),
    time("date"),
    time("closedate"),
    time("solvedate"),
    time("takeintoaccountdate"),
    time_now("date_mod"),
    int("users_id_lastupdater", 0),
    int("status", 1),
    int("users_id_recipient", 0),
    int("requesttypes_id", 0),
    text("content"),
    int("urgency", 1),
    int("impact", 1),
    int("priority", 1),
    int("itilcategories_id", 0),
    int("type", 1),
    int("global_validation", 1),
    int("slas_id_ttr", 0),
    int("slas_id_tto", 0),
    int("slalevels_id_ttr", 0),
    time("time_to_resolve"),
    time("time_to_own"),
    time("begin_waiting_date"),
    int("sla_waiting_duration", 0),
    int("ola_waiting_duration", 0),
    int("olas_id_tto", 0),
    int("olas_id_ttr", 0),
    int("olalevels_id_ttr", 0),
    time("ola_tto_begin_date"),
    time("ola_ttr_begin_date"),
    time("internal_time_to_resolve"),
    time("internal_time_to_own"),
    int("waiting_duration", 0),
    int("close_delay_stat", 0),
    int("solve_delay_stat", 0),
    int("takeintoaccount_delay_stat", 0),
    int("actiontime", 0),
    int("is_deleted", 0),
    int("locations_id", 0),
    time_now("date_creation"),
];
const TICKET_V10_ONLY: &[Column] = &[int("validation_percent", 0)];
const TICKET_V11_ONLY: &[Column] = &[int("tickettemplates_id", 0), text("externalid")];

const TICKET_USER: &[Column] = &[
    int("id", 0),
    int("tickets_id", 0),
    int("users_id", 0),
    int("type", 1),
    int("use_notification", 1),
    text("alternative_email"),
];

const ITIL_FOLLOWUP: &[Column] = &[
    int("id", 0),
    text_or("itemtype", ""),
    int("items_id", 0),
    time("date"),
    int("users_id", 0),
    int("users_id_editor", 0),
    text("content"),
    int("is_private", 0),
    int("requesttypes_id", 0),
    time_now("date_mod"),
    time_now("date_creation"),
    int("timeline_position", 0),
    int("sourceitems_id", 0),
    int("sourceof_items_id", 0),
];

impl ItemType {
    pub(crate) const ALL: [ItemType; 6] = [
        ItemType::User,
        ItemType::UserEmail,
        ItemType::Contact,
        ItemType::Ticket,
        ItemType::TicketUser,
        ItemType::ItilFollowup,
    ];

    /// The PHP class name, as GLPI spells it in URLs, `Location` and `Link`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ItemType::User => "User",
            ItemType::UserEmail => "UserEmail",
            ItemType::Contact => "Contact",
            ItemType::Ticket => "Ticket",
            ItemType::TicketUser => "Ticket_User",
            ItemType::ItilFollowup => "ITILFollowup",
        }
    }

    /// Class names are case-insensitive in GLPI URLs.
    pub(crate) fn from_name(name: &str) -> Option<ItemType> {
        ItemType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    /// The MySQL table, as GLPI names it in some error messages.
    pub(crate) fn table(self) -> &'static str {
        match self {
            ItemType::User => "glpi_users",
            ItemType::UserEmail => "glpi_useremails",
            ItemType::Contact => "glpi_contacts",
            ItemType::Ticket => "glpi_tickets",
            ItemType::TicketUser => "glpi_tickets_users",
            ItemType::ItilFollowup => "glpi_itilfollowups",
        }
    }

    /// The foreign key other tables use to point at this type.
    pub(crate) fn foreign_key(self) -> &'static str {
        match self {
            ItemType::User => "users_id",
            ItemType::UserEmail => "useremails_id",
            ItemType::Contact => "contacts_id",
            ItemType::Ticket => "tickets_id",
            ItemType::TicketUser => "tickets_users_id",
            ItemType::ItilFollowup => "itilfollowups_id",
        }
    }

    pub(crate) fn columns(self, version: GlpiVersion) -> Vec<&'static Column> {
        let (base, extra): (&'static [Column], &'static [Column]) = match self {
            ItemType::User => (USER, &[]),
            ItemType::UserEmail => (USER_EMAIL, &[]),
            ItemType::Contact => (CONTACT, &[]),
            ItemType::Ticket => match version {
                GlpiVersion::V10 => (TICKET, TICKET_V10_ONLY),
                GlpiVersion::V11 => (TICKET, TICKET_V11_ONLY),
            },
            ItemType::TicketUser => (TICKET_USER, &[]),
            ItemType::ItilFollowup => (ITIL_FOLLOWUP, &[]),
        };
        base.iter().chain(extra.iter()).collect()
    }

    pub(crate) fn column(self, version: GlpiVersion, name: &str) -> Option<&'static Column> {
        self.columns(version).into_iter().find(|c| c.name == name)
    }

    /// Types with a trash bin: DELETE only flags `is_deleted` unless purged.
    pub(crate) fn has_trash(self) -> bool {
        matches!(self, ItemType::User | ItemType::Contact | ItemType::Ticket)
    }

    /// Types restricted to the session's entities (and checked on create).
    pub(crate) fn is_entity_assign(self) -> bool {
        matches!(self, ItemType::Contact | ItemType::Ticket)
    }

    /// Types with the `Clonable` trait (10.0: User too): a POST with the
    /// `id` of an existing row clones that row.
    pub(crate) fn is_clonable(self) -> bool {
        matches!(
            self,
            ItemType::User | ItemType::Contact | ItemType::Ticket | ItemType::ItilFollowup
        )
    }

    /// Columns never returned by the API.
    pub(crate) fn undisclosed(self) -> &'static [&'static str] {
        match self {
            ItemType::User => &["password", "personal_token", "cookie_token", "api_token"],
            _ => &[],
        }
    }
}

/// Converts an input value to what MySQL stores in a column of that kind;
/// `None` = the key is ignored (arrays/objects).
pub(crate) fn coerce(kind: Kind, value: &Value) -> Option<Value> {
    match (kind, value) {
        (_, Value::Null) => Some(Value::Null),
        (_, Value::Array(_) | Value::Object(_)) => None,
        (Kind::Int, Value::Number(n)) => Some(Value::from(
            n.as_i64()
                .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
        )),
        (Kind::Int, Value::Bool(b)) => Some(Value::from(i64::from(*b))),
        (Kind::Int, Value::String(s)) => Some(Value::from(
            super::params::as_int(&Value::String(s.clone())).unwrap_or(0),
        )),
        (_, Value::String(s)) => Some(Value::String(s.clone())),
        (_, Value::Number(n)) => Some(Value::String(n.to_string())),
        (_, Value::Bool(b)) => Some(Value::String(if *b { "1" } else { "" }.to_owned())),
    }
}

/// A new row with every column at its default.
pub(crate) fn default_row(t: ItemType, version: GlpiVersion, now: &str) -> Row {
    let mut row = Row::new();
    for c in t.columns(version) {
        let v = match c.default {
            Default::Null => Value::Null,
            Default::Int(i) => Value::from(i),
            Default::Str(s) => Value::from(s),
            Default::Now => Value::from(now),
        };
        row.insert(c.name.to_owned(), v);
    }
    row
}

/// Copies the input keys that are columns of `t` into `row` (except `id`).
pub(crate) fn apply_input(t: ItemType, version: GlpiVersion, row: &mut Row, input: &Row) {
    for (key, value) in input {
        if key == "id" {
            continue;
        }
        if let Some(col) = t.column(version, key) {
            if let Some(v) = coerce(col.kind, value) {
                row.insert(key.clone(), v);
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS`, as GLPI checks explicit dates.
pub(crate) fn is_valid_datetime(s: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").is_ok() && s.len() == 19
}
