//! Search option ids (10.0.19 `rawSearchOptions`, plus Ticket 87
//! `externalid` on 11) and how each one reads a row: its own column, or a
//! joined table (user emails, ticket actors, user logins, entity names,
//! request types). For joined options `equals` compares the joined row's id,
//! as GLPI does — so `equals` on a user's email text finds nothing.

use std::collections::HashMap;

use serde_json::Value;

use super::prepare::{int_of, text_of};
use super::schema::{ItemType, Row};
use super::store::Glpi;
use super::GlpiVersion;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// A column of the item's own table.
    Column(&'static str),
    /// The user's emails (`glpi_useremails`), several values.
    UserEmails,
    /// The users acting on a ticket in a role (1 requester, 2 assign, 3 observer).
    ActorUsers(i64),
    /// The actors' alternative emails in a role.
    ActorEmails(i64),
    /// The login of the user a column points at.
    UserLogin(&'static str),
    /// The complete name of the item's entity.
    Entity,
    /// The name of the request source a column points at.
    RequestType(&'static str),
    /// A dropdown the emulator has no rows for (a LEFT JOIN finding nothing).
    Dropdown(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct SearchOption {
    pub(crate) id: u32,
    pub(crate) name: &'static str,
    pub(crate) source: Source,
}

const fn opt(id: u32, name: &'static str, source: Source) -> SearchOption {
    SearchOption { id, name, source }
}
use Source::*;

const USER: &[SearchOption] = &[
    opt(1, "Login", Column("name")),
    opt(2, "ID", Column("id")),
    opt(34, "Last name", Column("realname")),
    opt(9, "First name", Column("firstname")),
    opt(5, "Emails", UserEmails),
    opt(6, "Phone", Column("phone")),
    opt(10, "Phone 2", Column("phone2")),
    opt(11, "Mobile phone", Column("mobile")),
    opt(8, "Active", Column("is_active")),
    opt(16, "Comments", Column("comment")),
    opt(22, "Administrative number", Column("registration_number")),
    opt(15, "Authentication", Column("authtype")),
    opt(14, "Last login", Column("last_login")),
    opt(19, "Last update", Column("date_mod")),
    opt(121, "Creation date", Column("date_creation")),
    opt(28, "Synchronization field", Column("sync_field")),
    opt(77, "Default entity", Column("entities_id")),
    opt(80, "Entities (Profile)", Entity),
];
const USER_V10_ONLY: &[SearchOption] = &[opt(150, "Picture", Column("picture"))];

const CONTACT: &[SearchOption] = &[
    opt(1, "Last name", Column("name")),
    opt(11, "First name", Column("firstname")),
    opt(2, "ID", Column("id")),
    opt(3, "Phone", Column("phone")),
    opt(4, "Phone 2", Column("phone2")),
    opt(10, "Mobile phone", Column("mobile")),
    opt(5, "Fax", Column("fax")),
    opt(6, "Email", Column("email")),
    opt(82, "Address", Column("address")),
    opt(83, "Postal code", Column("postcode")),
    opt(84, "City", Column("town")),
    opt(85, "State", Column("state")),
    opt(87, "Country", Column("country")),
    opt(16, "Comments", Column("comment")),
    opt(80, "Entity", Entity),
    opt(86, "Child entities", Column("is_recursive")),
    opt(19, "Last update", Column("date_mod")),
    opt(121, "Creation date", Column("date_creation")),
    opt(70, "Administrative number", Column("registration_number")),
];

const TICKET: &[SearchOption] = &[
    opt(1, "Title", Column("name")),
    opt(21, "Description", Column("content")),
    opt(2, "ID", Column("id")),
    opt(12, "Status", Column("status")),
    opt(10, "Urgency", Column("urgency")),
    opt(11, "Impact", Column("impact")),
    opt(3, "Priority", Column("priority")),
    opt(15, "Opening date", Column("date")),
    opt(16, "Closing date", Column("closedate")),
    opt(17, "Resolution date", Column("solvedate")),
    opt(19, "Last update", Column("date_mod")),
    opt(18, "Time to resolve", Column("time_to_resolve")),
    opt(7, "Category", Dropdown("itilcategories_id")),
    opt(80, "Entity", Entity),
    opt(45, "Total duration", Column("actiontime")),
    opt(64, "Last edit by", UserLogin("users_id_lastupdater")),
    opt(14, "Type", Column("type")),
    opt(9, "Request source", RequestType("requesttypes_id")),
    opt(4, "Requester", ActorUsers(1)),
    opt(22, "Writer", UserLogin("users_id_recipient")),
    opt(66, "Observer", ActorUsers(3)),
    opt(5, "Technician", ActorUsers(2)),
    opt(34, "Email for followup", ActorEmails(1)),
];
const TICKET_V11_ONLY: &[SearchOption] = &[opt(87, "External ID", Column("externalid"))];

const ITIL_FOLLOWUP: &[SearchOption] = &[
    opt(1, "Description", Column("content")),
    opt(2, "Request source", RequestType("requesttypes_id")),
    opt(3, "Date", Column("date")),
    opt(4, "Private", Column("is_private")),
    opt(5, "User", UserLogin("users_id")),
    opt(6, "Itemtype", Column("itemtype")),
];

pub(crate) fn options(t: ItemType, version: GlpiVersion) -> Vec<SearchOption> {
    let (base, v10, v11): (&[SearchOption], &[SearchOption], &[SearchOption]) = match t {
        ItemType::User => (USER, USER_V10_ONLY, &[]),
        ItemType::Contact => (CONTACT, &[], &[]),
        ItemType::Ticket => (TICKET, &[], TICKET_V11_ONLY),
        ItemType::ItilFollowup => (ITIL_FOLLOWUP, &[], &[]),
        ItemType::UserEmail | ItemType::TicketUser => (&[], &[], &[]),
    };
    let extra = match version {
        GlpiVersion::V10 => v10,
        GlpiVersion::V11 => v11,
    };
    base.iter().chain(extra).copied().collect()
}

/// Columns shown when the request has no `forcedisplay` (GLPI's default
/// display preferences).
pub(crate) fn default_display(t: ItemType) -> &'static [u32] {
    match t {
        ItemType::User => &[34, 5, 6, 8],
        ItemType::Contact => &[11, 3, 4, 6],
        ItemType::Ticket => &[12, 19, 15, 3, 4, 5, 7],
        _ => &[],
    }
}

/// The joined tables a search reads, indexed once per search so that a
/// search stays linear in the rows (emails per user, actors per ticket).
pub(crate) struct Joined<'a> {
    pub(crate) glpi: &'a Glpi,
    emails: HashMap<i64, Vec<(i64, &'a Row)>>,
    actors: HashMap<i64, Vec<&'a Row>>,
}

impl<'a> Joined<'a> {
    pub(crate) fn new(glpi: &'a Glpi, t: ItemType) -> Joined<'a> {
        let mut emails: HashMap<i64, Vec<(i64, &'a Row)>> = HashMap::new();
        let mut actors: HashMap<i64, Vec<&'a Row>> = HashMap::new();
        if t == ItemType::User {
            for (id, e) in glpi.table(ItemType::UserEmail) {
                emails
                    .entry(int_of(e, "users_id"))
                    .or_default()
                    .push((*id, e));
            }
        }
        if t == ItemType::Ticket {
            for a in glpi.table(ItemType::TicketUser).values() {
                actors.entry(int_of(a, "tickets_id")).or_default().push(a);
            }
        }
        Joined {
            glpi,
            emails,
            actors,
        }
    }

    fn actor_rows(&self, tickets_id: i64, role: i64) -> impl Iterator<Item = &'a Row> + '_ {
        self.actors
            .get(&tickets_id)
            .into_iter()
            .flatten()
            .copied()
            .filter(move |a| int_of(a, "type") == role)
    }

    fn email_rows(&self, users_id: i64) -> impl Iterator<Item = &(i64, &'a Row)> + '_ {
        self.emails.get(&users_id).into_iter().flatten()
    }

    /// The values an option shows for a row (several for joined lists).
    pub(crate) fn values(&self, option: &SearchOption, row: &Row) -> Vec<Value> {
        let glpi = self.glpi;
        let id = int_of(row, "id");
        match option.source {
            Column(c) => vec![row.get(c).cloned().unwrap_or(Value::Null)],
            UserEmails => self
                .email_rows(id)
                .map(|(_, e)| e.get("email").cloned().unwrap_or(Value::Null))
                .collect(),
            ActorUsers(role) => self
                .actor_rows(id, role)
                .filter(|a| int_of(a, "users_id") > 0)
                .map(|a| login(glpi, int_of(a, "users_id")))
                .collect(),
            ActorEmails(role) => self
                .actor_rows(id, role)
                .map(|a| a.get("alternative_email").cloned().unwrap_or(Value::Null))
                .collect(),
            UserLogin(c) => vec![login(glpi, int_of(row, c))],
            Entity => vec![glpi.entity_name(int_of(row, "entities_id")).into()],
            RequestType(c) => vec![request_type(int_of(row, c))],
            Dropdown(_) => vec![Value::Null],
        }
    }

    /// What `equals` compares: the column, or the joined rows' ids.
    pub(crate) fn ids_for_equals(&self, option: &SearchOption, row: &Row) -> Vec<Value> {
        let id = int_of(row, "id");
        match option.source {
            Column(_) => self.values(option, row),
            UserEmails => self
                .email_rows(id)
                .map(|(eid, _)| Value::from(*eid))
                .collect(),
            ActorUsers(role) => self
                .actor_rows(id, role)
                .map(|a| Value::from(int_of(a, "users_id")))
                .collect(),
            ActorEmails(role) => self
                .actor_rows(id, role)
                .map(|a| Value::from(int_of(a, "id")))
                .collect(),
            UserLogin(c) | RequestType(c) | Dropdown(c) => vec![Value::from(int_of(row, c))],
            Entity => vec![Value::from(int_of(row, "entities_id"))],
        }
    }
}

fn login(glpi: &Glpi, users_id: i64) -> Value {
    glpi.get(ItemType::User, users_id)
        .map_or(Value::Null, |u| Value::from(text_of(u, "name")))
}

/// The request sources of a fresh GLPI.
fn request_type(id: i64) -> Value {
    request_type_name(id).map_or(Value::Null, Value::from)
}

pub(crate) fn request_type_name(id: i64) -> Option<&'static str> {
    Some(match id {
        1 => "Helpdesk",
        2 => "E-Mail",
        3 => "Phone",
        4 => "Direct",
        5 => "Written",
        6 => "Other",
        _ => return None,
    })
}
