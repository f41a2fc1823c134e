//! Typed inputs and outputs for the items the bridge writes (User,
//! UserEmail, Contact, Ticket, Ticket_User, ITILFollowup) and the helpers
//! built on the generic calls. Field names and search option ids follow
//! `shared/reference/glpi-api.md` §4–5 (GLPI 10.0.19).

use serde_json::{json, Map, Value};

use super::search::{as_i64_lenient, SearchQuery};
use super::{GlpiClient, GlpiError};

/// `Ticket_User.type` of a requester (2 = assigned, 3 = observer).
pub const ACTOR_REQUESTER: i64 = 1;

// Search option ids used by the lookups.
const USER_LOGIN: u32 = 1;
const USER_EMAIL: u32 = 5;
const CONTACT_EMAIL: u32 = 6;
const CONTACT_PHONES: [u32; 3] = [3, 4, 10]; // phone, phone2, mobile
const TICKET_NAME: u32 = 1;

/// A GLPI User (a requester who can be named on tickets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInput {
    /// Login (`name`); unique, letters, digits, `'@.-_ ` or an email address.
    pub login: String,
    /// Last name.
    pub realname: Option<String>,
    pub firstname: Option<String>,
    /// Emails; the first becomes the default. Only sent on create (see
    /// [`GlpiClient::add_user_email`] for later additions).
    pub emails: Vec<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub comment: Option<String>,
    /// Entity of the user's profile and default entity.
    pub entities_id: Option<i64>,
}

impl UserInput {
    /// The `input` of a create.
    pub fn to_create_input(&self) -> Value {
        let mut input = self.to_update_input();
        input.insert("name".into(), json!(self.login));
        if !self.emails.is_empty() {
            // Negative keys: GLPI treats a positive key as the id of an
            // existing UserEmail row to overwrite, so a JSON list (keys 0, 1,
            // …) would turn the second address into an update of UserEmail
            // id 1 — possibly another user's. Keys -1, -2, … always add.
            let emails: Map<String, Value> = self
                .emails
                .iter()
                .enumerate()
                .map(|(i, email)| (format!("-{}", i + 1), json!(email)))
                .collect();
            input.insert("_useremails".into(), Value::Object(emails));
            input.insert("_default_email".into(), json!("-1"));
        }
        if let Some(entity) = self.entities_id {
            input.insert("entities_id".into(), json!(entity));
            input.insert("_entities_id".into(), json!(entity));
        }
        Value::Object(input)
    }

    /// The `input` of an update: names, phones, comment. The login and the
    /// emails are left alone (`_useremails` keys on update are UserEmail
    /// ids, so a plain list could overwrite the wrong rows).
    fn to_update_input(&self) -> Map<String, Value> {
        let mut input = Map::new();
        put(&mut input, "realname", &self.realname);
        put(&mut input, "firstname", &self.firstname);
        put(&mut input, "phone", &self.phone);
        put(&mut input, "mobile", &self.mobile);
        put(&mut input, "comment", &self.comment);
        input
    }
}

/// A GLPI Contact (an external person; cannot be a ticket actor).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactInput {
    /// Last name (`name`).
    pub name: Option<String>,
    pub firstname: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub mobile: Option<String>,
    pub comment: Option<String>,
    pub entities_id: Option<i64>,
}

impl ContactInput {
    /// The `input` of a create or an update.
    pub fn to_input(&self) -> Value {
        let mut input = Map::new();
        put(&mut input, "name", &self.name);
        put(&mut input, "firstname", &self.firstname);
        put(&mut input, "email", &self.email);
        put(&mut input, "phone", &self.phone);
        put(&mut input, "mobile", &self.mobile);
        put(&mut input, "comment", &self.comment);
        if let Some(entity) = self.entities_id {
            input.insert("entities_id".into(), json!(entity));
        }
        Value::Object(input)
    }
}

/// Who asked, on a new ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Requester {
    /// No requester row.
    #[default]
    None,
    /// A GLPI user id.
    User(i64),
    /// Email only (user id 0 + alternative email), e.g. for a person synced
    /// as a Contact.
    Email(String),
}

impl Requester {
    /// Adds this requester to a ticket create's input: `_users_id_requester`,
    /// with `_users_id_requester_notif` for an email-only one.
    pub fn add_to_ticket_input(&self, input: &mut Map<String, Value>) {
        match self {
            Requester::None => {}
            Requester::User(id) => {
                input.insert("_users_id_requester".into(), json!(id));
            }
            Requester::Email(email) => {
                input.insert("_users_id_requester".into(), json!(0));
                input.insert(
                    "_users_id_requester_notif".into(),
                    json!({"use_notification": 1, "alternative_email": [email]}),
                );
            }
        }
    }

    /// The `input` of a `POST /Ticket_User` adding this requester to a
    /// ticket; `None` for [`Requester::None`].
    pub fn ticket_user_input(&self, ticket_id: i64) -> Option<Value> {
        let (users_id, email) = match self {
            Requester::None => return None,
            Requester::User(id) => (*id, ""),
            Requester::Email(email) => (0, email.as_str()),
        };
        Some(json!({
            "tickets_id": ticket_id,
            "users_id": users_id,
            "type": ACTOR_REQUESTER,
            "use_notification": 1,
            "alternative_email": email,
        }))
    }

    /// Whether `row` is this requester's Ticket_User row (emails compare
    /// without case, as GLPI's collation does).
    pub fn is_row(&self, row: &TicketUser) -> bool {
        row.role == ACTOR_REQUESTER
            && match self {
                Requester::None => false,
                Requester::User(id) => row.users_id == *id,
                Requester::Email(email) => {
                    row.users_id == 0 && row.alternative_email.eq_ignore_ascii_case(email)
                }
            }
    }
}

/// A new GLPI Ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketInput {
    /// Title; GLPI uses the first 70 characters of `content` when empty.
    pub name: String,
    /// Description (plain text or HTML), sent raw.
    pub content: String,
    /// 1 New … 6 Closed.
    pub status: Option<i64>,
    /// 1–6; honoured only if the GLPI profile may change priority.
    pub priority: Option<i64>,
    pub urgency: Option<i64>,
    /// 1 Incident, 2 Request.
    pub ticket_type: Option<i64>,
    pub category_id: Option<i64>,
    pub entities_id: Option<i64>,
    pub requester: Requester,
    /// Opening date `YYYY-MM-DD HH:MM:SS`.
    pub date: Option<String>,
    /// `_disablenotif`: no GLPI notification emails for this ticket creation.
    pub disable_notifications: bool,
}

impl TicketInput {
    /// The `input` of a create.
    pub fn to_input(&self) -> Value {
        let mut input = Map::new();
        input.insert("name".into(), json!(self.name));
        input.insert("content".into(), json!(self.content));
        let numbers = [
            ("status", self.status),
            ("priority", self.priority),
            ("urgency", self.urgency),
            ("type", self.ticket_type),
            ("itilcategories_id", self.category_id),
            ("entities_id", self.entities_id),
        ];
        for (key, value) in numbers {
            if let Some(v) = value {
                input.insert(key.into(), json!(v));
            }
        }
        put(&mut input, "date", &self.date);
        self.requester.add_to_ticket_input(&mut input);
        if self.disable_notifications {
            input.insert("_disablenotif".into(), json!(true));
        }
        Value::Object(input)
    }
}

/// A new followup on a ticket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowupInput {
    pub ticket_id: i64,
    /// Must not be empty (GLPI refuses "a followup without description").
    pub content: String,
    pub is_private: bool,
    /// `YYYY-MM-DD HH:MM:SS`; GLPI uses "now" when absent.
    pub date: Option<String>,
    /// Author; GLPI uses the API user when absent.
    pub users_id: Option<i64>,
    pub requesttypes_id: Option<i64>,
}

impl FollowupInput {
    /// The `input` of a create.
    pub fn to_input(&self) -> Value {
        let mut input = Map::new();
        input.insert("itemtype".into(), json!("Ticket"));
        input.insert("items_id".into(), json!(self.ticket_id));
        input.insert("content".into(), json!(self.content));
        input.insert("is_private".into(), json!(i64::from(self.is_private)));
        put(&mut input, "date", &self.date);
        if let Some(user) = self.users_id {
            input.insert("users_id".into(), json!(user));
        }
        if let Some(source) = self.requesttypes_id {
            input.insert("requesttypes_id".into(), json!(source));
        }
        Value::Object(input)
    }
}

/// A followup as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Followup {
    pub id: i64,
    pub ticket_id: i64,
    pub content: String,
    pub is_private: bool,
    pub date: Option<String>,
    pub users_id: i64,
}

/// An actor row of a ticket (`Ticket_User`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketUser {
    pub id: i64,
    pub ticket_id: i64,
    /// 0 for an email-only actor.
    pub users_id: i64,
    /// 1 requester, 2 assigned, 3 observer.
    pub role: i64,
    pub alternative_email: String,
}

/// One of a user's email addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEmail {
    pub id: i64,
    pub users_id: i64,
    pub email: String,
    pub is_default: bool,
}

impl GlpiClient {
    /// Creates a User with its emails; returns its id. A duplicate login is
    /// a permanent `ERROR_GLPI_ADD` ("The user already exists").
    pub async fn create_user(&self, user: &UserInput) -> Result<i64, GlpiError> {
        self.create("User", &user.to_create_input()).await
    }

    /// Updates a User's names, phones and comment (not login, not emails).
    pub async fn update_user(&self, id: i64, user: &UserInput) -> Result<(), GlpiError> {
        self.update("User", id, &Value::Object(user.to_update_input()))
            .await
    }

    /// Adds an email to a User; returns the UserEmail id.
    pub async fn add_user_email(
        &self,
        user_id: i64,
        email: &str,
        is_default: bool,
    ) -> Result<i64, GlpiError> {
        let input =
            json!({"users_id": user_id, "email": email, "is_default": i64::from(is_default)});
        self.create("UserEmail", &input).await
    }

    /// A User's emails (GET /User/:id/UserEmail).
    pub async fn user_emails(&self, user_id: i64) -> Result<Vec<UserEmail>, GlpiError> {
        let rows = self.list_sub_items("User", user_id, "UserEmail").await?;
        Ok(rows
            .iter()
            .map(|r| UserEmail {
                id: int(r, "id"),
                users_id: int(r, "users_id"),
                email: text(r, "email"),
                is_default: int(r, "is_default") != 0,
            })
            .collect())
    }

    /// Ids of live (not trashed) users whose login is exactly `login`
    /// (case-insensitive).
    pub async fn find_users_by_login(&self, login: &str) -> Result<Vec<i64>, GlpiError> {
        self.find_exact("User", &[USER_LOGIN], login, false).await
    }

    /// Ids of trashed users whose login is exactly `login`: they still block
    /// creating a user with that login.
    pub async fn find_trashed_users_by_login(&self, login: &str) -> Result<Vec<i64>, GlpiError> {
        self.find_exact("User", &[USER_LOGIN], login, true).await
    }

    /// Ids of live users having `email` among their addresses.
    pub async fn find_users_by_email(&self, email: &str) -> Result<Vec<i64>, GlpiError> {
        self.find_exact("User", &[USER_EMAIL], email, false).await
    }

    /// Creates a Contact; returns its id.
    pub async fn create_contact(&self, contact: &ContactInput) -> Result<i64, GlpiError> {
        self.create("Contact", &contact.to_input()).await
    }

    /// Updates a Contact with the fields that are set.
    pub async fn update_contact(&self, id: i64, contact: &ContactInput) -> Result<(), GlpiError> {
        self.update("Contact", id, &contact.to_input()).await
    }

    /// Ids of live contacts whose email is exactly `email`.
    pub async fn find_contacts_by_email(&self, email: &str) -> Result<Vec<i64>, GlpiError> {
        self.find_exact("Contact", &[CONTACT_EMAIL], email, false)
            .await
    }

    /// Ids of live contacts whose phone, second phone or mobile is exactly
    /// `phone` (as stored; no number normalisation).
    pub async fn find_contacts_by_phone(&self, phone: &str) -> Result<Vec<i64>, GlpiError> {
        self.find_exact("Contact", &CONTACT_PHONES, phone, false)
            .await
    }

    /// Creates a Ticket; returns its id.
    pub async fn create_ticket(&self, ticket: &TicketInput) -> Result<i64, GlpiError> {
        self.create("Ticket", &ticket.to_input()).await
    }

    /// Ids of live tickets whose title is exactly `name`.
    pub async fn find_tickets_by_name(&self, name: &str) -> Result<Vec<i64>, GlpiError> {
        self.find_exact("Ticket", &[TICKET_NAME], name, false).await
    }

    /// Sets a ticket's status and, if given, priority.
    pub async fn update_ticket_status_priority(
        &self,
        ticket_id: i64,
        status: i64,
        priority: Option<i64>,
    ) -> Result<(), GlpiError> {
        let mut input = json!({ "status": status });
        if let Some(priority) = priority {
            input["priority"] = json!(priority);
        }
        self.update("Ticket", ticket_id, &input).await
    }

    /// Adds a followup to a ticket; returns its id.
    pub async fn create_followup(&self, followup: &FollowupInput) -> Result<i64, GlpiError> {
        self.create("ITILFollowup", &followup.to_input()).await
    }

    /// Changes a followup's content and privacy.
    pub async fn update_followup(
        &self,
        id: i64,
        content: &str,
        is_private: bool,
    ) -> Result<(), GlpiError> {
        let input = json!({"content": content, "is_private": i64::from(is_private)});
        self.update("ITILFollowup", id, &input).await
    }

    /// A ticket's followups, text decoded.
    pub async fn list_followups(&self, ticket_id: i64) -> Result<Vec<Followup>, GlpiError> {
        let rows = self
            .list_sub_items("Ticket", ticket_id, "ITILFollowup")
            .await?;
        Ok(rows
            .iter()
            .map(|r| Followup {
                id: int(r, "id"),
                ticket_id: int(r, "items_id"),
                content: text(r, "content"),
                is_private: int(r, "is_private") != 0,
                date: r.get("date").and_then(Value::as_str).map(str::to_owned),
                users_id: int(r, "users_id"),
            })
            .collect())
    }

    /// A ticket's actors (requesters, assignees, observers).
    pub async fn list_ticket_users(&self, ticket_id: i64) -> Result<Vec<TicketUser>, GlpiError> {
        let rows = self
            .list_sub_items("Ticket", ticket_id, "Ticket_User")
            .await?;
        Ok(rows
            .iter()
            .map(|r| TicketUser {
                id: int(r, "id"),
                ticket_id: int(r, "tickets_id"),
                users_id: int(r, "users_id"),
                role: int(r, "type"),
                alternative_email: text(r, "alternative_email"),
            })
            .collect())
    }

    /// Ids of `itemtype` rows where one of `fields` is exactly `text`,
    /// confirmed on the returned cells (GLPI's `LIKE` keeps `%` a wildcard).
    async fn find_exact(
        &self,
        itemtype: &str,
        fields: &[u32],
        text: &str,
        trashed: bool,
    ) -> Result<Vec<i64>, GlpiError> {
        if text.trim().is_empty() {
            // `^$` would match every empty field.
            return Ok(Vec::new());
        }
        let mut query = SearchQuery::new().trashed(trashed);
        for (i, field) in fields.iter().enumerate() {
            query = if i == 0 {
                query.exact(*field, text)
            } else {
                query.or_exact(*field, text)
            };
            query = query.display(*field);
        }
        let result = self.search(itemtype, &query).await?;
        let mut ids: Vec<i64> = result
            .rows
            .iter()
            .filter(|row| fields.iter().any(|f| row.has_text(*f, text)))
            .filter_map(|row| row.id())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}

fn put(input: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        input.insert(key.into(), json!(v));
    }
}

fn int(row: &Value, key: &str) -> i64 {
    row.get(key).and_then(as_i64_lenient).unwrap_or(0)
}

fn text(row: &Value, key: &str) -> String {
    row.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_input_shapes() {
        let user = UserInput {
            login: "jdoe".into(),
            realname: Some("Doe".into()),
            firstname: Some("John".into()),
            emails: vec!["a@x.org".into(), "b@x.org".into()],
            entities_id: Some(3),
            ..Default::default()
        };
        assert_eq!(
            user.to_create_input(),
            json!({"name": "jdoe", "realname": "Doe", "firstname": "John",
                   "_useremails": {"-1": "a@x.org", "-2": "b@x.org"}, "_default_email": "-1",
                   "entities_id": 3, "_entities_id": 3})
        );
        assert_eq!(
            Value::Object(user.to_update_input()),
            json!({"realname": "Doe", "firstname": "John"})
        );
    }

    #[test]
    fn ticket_requesters() {
        let mut ticket = TicketInput {
            name: "Printer".into(),
            content: "<p>broken</p>".into(),
            status: Some(2),
            ticket_type: Some(1),
            requester: Requester::User(7),
            ..Default::default()
        };
        assert_eq!(
            ticket.to_input(),
            json!({"name": "Printer", "content": "<p>broken</p>", "status": 2, "type": 1,
                   "_users_id_requester": 7})
        );
        ticket.requester = Requester::Email("anon@example.org".into());
        ticket.disable_notifications = true;
        let input = ticket.to_input();
        assert_eq!(input["_users_id_requester"], json!(0));
        assert_eq!(
            input["_users_id_requester_notif"],
            json!({"use_notification": 1, "alternative_email": ["anon@example.org"]})
        );
        assert_eq!(input["_disablenotif"], json!(true));
        assert!(input.get("id").is_none());
    }

    #[test]
    fn requester_rows() {
        let row = |users_id: i64, role: i64, email: &str| TicketUser {
            id: 1,
            ticket_id: 5,
            users_id,
            role,
            alternative_email: email.into(),
        };
        let user = Requester::User(7);
        assert!(user.is_row(&row(7, ACTOR_REQUESTER, "")));
        assert!(
            !user.is_row(&row(7, 3, "")),
            "an observer is not a requester"
        );
        assert!(!user.is_row(&row(8, ACTOR_REQUESTER, "")));
        let email = Requester::Email("Anon@Example.org".into());
        assert!(email.is_row(&row(0, ACTOR_REQUESTER, "anon@example.org")));
        assert!(!email.is_row(&row(7, ACTOR_REQUESTER, "anon@example.org")));
        assert!(!Requester::None.is_row(&row(0, ACTOR_REQUESTER, "")));
        assert_eq!(
            email.ticket_user_input(5),
            Some(
                json!({"tickets_id": 5, "users_id": 0, "type": 1, "use_notification": 1,
                        "alternative_email": "Anon@Example.org"})
            )
        );
        assert_eq!(user.ticket_user_input(5).unwrap()["users_id"], 7);
        assert_eq!(Requester::None.ticket_user_input(5), None);
    }

    #[test]
    fn followup_and_contact_shapes() {
        let followup = FollowupInput {
            ticket_id: 12,
            content: "hello".into(),
            is_private: true,
            date: Some("2024-01-15 10:30:00".into()),
            users_id: Some(7),
            requesttypes_id: None,
        };
        assert_eq!(
            followup.to_input(),
            json!({"itemtype": "Ticket", "items_id": 12, "content": "hello", "is_private": 1,
                   "date": "2024-01-15 10:30:00", "users_id": 7})
        );
        let contact = ContactInput {
            name: Some("Doe".into()),
            email: Some("d@x.org".into()),
            ..Default::default()
        };
        assert_eq!(
            contact.to_input(),
            json!({"name": "Doe", "email": "d@x.org"})
        );
    }
}
