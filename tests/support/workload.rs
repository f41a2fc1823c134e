//! A Chatwoot-like writer for the fault and chaos tests, and the oracle that
//! says what GLPI must hold afterwards.
//!
//! The writer does what Rails does, one transaction per user action:
//! contacts (email, phone, name only, sometimes unidentifiable), conversations,
//! messages (incoming, outgoing, private notes, activity) with Rails' side
//! effects (`last_activity_at` on the conversation and the contact), messages
//! with attachments, status and priority changes, contact renames.
//!
//! It never remembers what it wrote: PostgreSQL may be restarted under it, so
//! a COMMIT can fail with an unknown outcome. The oracle reads the truth back
//! from Chatwoot's tables at the end ([`Expected::read`]) and checks GLPI (the
//! emulator's rows) and the write-backs against it ([`Expected::check`]).

use std::collections::{BTreeMap, BTreeSet};

use chatwoot_glpi_bridge::glpi_emulator::Emulator;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// `crm_integration` (bit 43 of `accounts.feature_flags`).
pub const CRM_INTEGRATION: i64 = 1 << 43;

/// The GLPI settings written into the account's `integrations_hooks` row.
#[derive(Clone, Debug)]
pub struct HookSettings {
    pub api_url: String,
    pub app_token: String,
    pub user_token: String,
    /// `user` or `contact`.
    pub sync_type: String,
    pub entity_id: i64,
}

impl HookSettings {
    /// The emulator's default API client and user, in user mode.
    pub fn for_emulator(api_url: &str) -> HookSettings {
        HookSettings {
            api_url: api_url.to_owned(),
            app_token: "emulator-app-token".into(),
            user_token: "emulator-user-token".into(),
            sync_type: "user".into(),
            entity_id: 0,
        }
    }

    pub fn json(&self) -> Value {
        json!({
            "api_url": self.api_url,
            "app_token": self.app_token,
            "user_token": self.user_token,
            "entity_id": self.entity_id.to_string(),
            "sync_type": self.sync_type,
            "ticket_type": "1",
            "category_id": "",
            "default_user_id": "",
        })
    }
}

/// The Chatwoot account the workload writes into.
#[derive(Clone, Copy, Debug)]
pub struct Account {
    pub account_id: i64,
    pub inbox_id: i64,
    pub agent_id: i64,
}

/// The ids of every GLPI User now; taken before the bridge runs, the API's
/// own users, which the exactly-once check leaves out.
pub fn glpi_user_ids(glpi: &Emulator) -> Vec<i64> {
    glpi.items("User")
        .iter()
        .filter_map(|u| u["id"].as_i64())
        .collect()
}

/// Creates an account with the `crm_integration` flag, an inbox, an agent and
/// an enabled `glpi` hook with `settings`, as Chatwoot's UI would.
pub async fn create_account(client: &tokio_postgres::Client, settings: &Value) -> Account {
    let account_id: i32 = client
        .query_one(
            "INSERT INTO accounts (name, feature_flags, created_at, updated_at) \
             VALUES ('Acme support', $1, now(), now()) RETURNING id",
            &[&CRM_INTEGRATION],
        )
        .await
        .expect("insert account")
        .get(0);
    let inbox_id: i32 = client
        .query_one(
            "INSERT INTO inboxes (channel_id, account_id, name, channel_type, created_at, updated_at) \
             VALUES (1, $1, 'Website', 'Channel::WebWidget', now(), now()) RETURNING id",
            &[&account_id],
        )
        .await
        .expect("insert inbox")
        .get(0);
    let agent_id: i32 = client
        .query_one(
            "INSERT INTO users (uid, name, email, created_at, updated_at) \
             VALUES ('agent' || $1::int || '@acme.test', 'Agent Smith', 'agent' || $1::int || '@acme.test', now(), now()) \
             RETURNING id",
            &[&account_id],
        )
        .await
        .expect("insert agent")
        .get(0);
    client
        .execute(
            "INSERT INTO integrations_hooks (status, account_id, app_id, hook_type, settings, created_at, updated_at) \
             VALUES (1, $1, 'glpi', 0, $2::text::jsonb, now(), now())",
            &[&account_id, &settings.to_string()],
        )
        .await
        .expect("insert hook");
    Account {
        account_id: account_id.into(),
        inbox_id: inbox_id.into(),
        agent_id: agent_id.into(),
    }
}

/// What one workload step did (for logs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    NewContact,
    NewConversation,
    Message,
    MessageWithAttachment,
    StatusChange,
    PriorityChange,
    ContactRename,
}

/// A seeded random Chatwoot-like writer.
pub struct Workload {
    url: String,
    client: Option<tokio_postgres::Client>,
    rng: StdRng,
    account: Account,
    serial: u64,
}

impl Workload {
    pub fn new(url: &str, account: Account, seed: u64) -> Workload {
        Workload {
            url: url.to_owned(),
            client: None,
            rng: StdRng::seed_from_u64(seed),
            account,
            serial: 0,
        }
    }

    async fn client(&mut self) -> Result<&tokio_postgres::Client, tokio_postgres::Error> {
        if self.client.as_ref().is_none_or(|c| c.is_closed()) {
            let (client, connection) =
                tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.client = Some(client);
        }
        Ok(self.client.as_ref().expect("connected"))
    }

    /// One random user action in its own transaction. An error (e.g.
    /// PostgreSQL restarting) drops the connection; the next step reconnects.
    pub async fn step(&mut self) -> Result<Action, tokio_postgres::Error> {
        let result = self.step_inner().await;
        if result.is_err() {
            self.client = None;
        }
        result
    }

    async fn step_inner(&mut self) -> Result<Action, tokio_postgres::Error> {
        self.serial += 1;
        let roll = self.rng.random_range(0..100u32);
        let (contacts, conversations) = self.counts().await?;
        let action = if contacts == 0 || roll < 8 {
            Action::NewContact
        } else if conversations == 0 || roll < 18 {
            Action::NewConversation
        } else if roll < 70 {
            Action::Message
        } else if roll < 77 {
            Action::MessageWithAttachment
        } else if roll < 88 {
            Action::StatusChange
        } else if roll < 94 {
            Action::PriorityChange
        } else {
            Action::ContactRename
        };
        match action {
            Action::NewContact => self.new_contact().await?,
            Action::NewConversation => self.new_conversation().await?,
            Action::Message => self.message(false).await?,
            Action::MessageWithAttachment => self.message(true).await?,
            Action::StatusChange => {
                let status = self.rng.random_range(0..4i32);
                let id = self.random_conversation().await?;
                self.client()
                    .await?
                    .execute(
                        "UPDATE conversations SET status = $2, updated_at = now() WHERE id = $1",
                        &[&id, &status],
                    )
                    .await?;
            }
            Action::PriorityChange => {
                let priority: Option<i32> = self
                    .rng
                    .random_bool(0.8)
                    .then(|| self.rng.random_range(0..4));
                let id = self.random_conversation().await?;
                self.client()
                    .await?
                    .execute(
                        "UPDATE conversations SET priority = $2, updated_at = now() WHERE id = $1",
                        &[&id, &priority],
                    )
                    .await?;
            }
            Action::ContactRename => {
                let name = format!("{} Renamed{}", pick(&mut self.rng, FIRST), self.serial);
                let id = self.random_contact().await?;
                self.client()
                    .await?
                    .execute(
                        "UPDATE contacts SET name = $2, updated_at = now() WHERE id = $1",
                        &[&id, &name],
                    )
                    .await?;
            }
        }
        Ok(action)
    }

    async fn counts(&mut self) -> Result<(i64, i64), tokio_postgres::Error> {
        let account = self.account.account_id as i32;
        let row = self
            .client()
            .await?
            .query_one(
                "SELECT (SELECT count(*) FROM contacts WHERE account_id = $1), \
                        (SELECT count(*) FROM conversations WHERE account_id = $1)",
                &[&account],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    async fn random_conversation(&mut self) -> Result<i32, tokio_postgres::Error> {
        let account = self.account.account_id as i32;
        // Recent conversations get most of the traffic, like a real inbox.
        let offset: i64 = self.rng.random_range(0..6);
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT id FROM conversations WHERE account_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1",
                &[&account, &offset],
            )
            .await?;
        match row {
            Some(row) => Ok(row.get(0)),
            None => Ok(self
                .client()
                .await?
                .query_one(
                    "SELECT max(id) FROM conversations WHERE account_id = $1",
                    &[&account],
                )
                .await?
                .get(0)),
        }
    }

    async fn random_contact(&mut self) -> Result<i32, tokio_postgres::Error> {
        let account = self.account.account_id as i32;
        let rows = self
            .client()
            .await?
            .query("SELECT id FROM contacts WHERE account_id = $1", &[&account])
            .await?;
        let i = self.rng.random_range(0..rows.len());
        Ok(rows[i].get(0))
    }

    async fn new_contact(&mut self) -> Result<(), tokio_postgres::Error> {
        let n = self.serial;
        let first = pick(&mut self.rng, FIRST);
        let last = pick(&mut self.rng, LAST);
        let name = format!("{first} {last}");
        let salt: u32 = self.rng.random();
        let (name, email, phone): (String, Option<String>, Option<String>) =
            match self.rng.random_range(0..10u32) {
                0..=4 => (
                    name,
                    Some(format!(
                        "{}.{}{n}-{salt:x}@example.com",
                        first.to_lowercase(),
                        last.to_lowercase()
                    )),
                    None,
                ),
                5..=6 => (
                    name,
                    None,
                    Some(format!(
                        "+4930{:08}",
                        n * 7919 % 100_000_000 + u64::from(salt % 1000)
                    )),
                ),
                7 => (
                    name,
                    Some(format!("both{n}-{salt:x}@example.org")),
                    Some(format!("+3361{:07}", n * 104_729 % 10_000_000)),
                ),
                8 => (name, None, None),
                // Not identifiable: the bridge parks its sync and the
                // tickets of its conversations get no requester.
                _ => (String::new(), None, None),
            };
        let account = self.account.account_id as i32;
        self.client()
            .await?
            .execute(
                "INSERT INTO contacts (account_id, name, email, phone_number, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, now(), now())",
                &[&account, &name, &email, &phone],
            )
            .await?;
        Ok(())
    }

    async fn new_conversation(&mut self) -> Result<(), tokio_postgres::Error> {
        let contact = self.random_contact().await?;
        let account = self.account.account_id as i32;
        let inbox = self.account.inbox_id as i32;
        let subject = if self.rng.random_bool(0.2) {
            json!({"mail_subject": format!("Order #{} & <delivery>", self.serial)})
        } else {
            json!({})
        };
        self.client()
            .await?
            .execute(
                "INSERT INTO conversations (account_id, inbox_id, contact_id, additional_attributes, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4::text::jsonb, now(), now())",
                &[&account, &inbox, &i64::from(contact), &subject.to_string()],
            )
            .await?;
        Ok(())
    }

    /// A message as Rails writes it: the row, its attachment (same
    /// transaction), then `last_activity_at` on the conversation and, for
    /// incoming messages, on the contact.
    async fn message(&mut self, with_attachment: bool) -> Result<(), tokio_postgres::Error> {
        let conversation = self.random_conversation().await?;
        let kind = self.rng.random_range(0..20u32);
        // incoming, outgoing, private note, activity
        let (message_type, private): (i32, bool) = match kind {
            0..=9 => (0, false),
            10..=15 => (1, false),
            16..=18 => (1, true),
            _ => (2, false),
        };
        let text = self.text(message_type);
        let serial = self.serial;
        let agent = self.account.agent_id;
        let client = self.client().await?;
        client.batch_execute("BEGIN").await?;
        let inserted = client
            .query_one(
                "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, private, content, \
                     processed_message_content, sender_type, sender_id, created_at, updated_at) \
                 SELECT c.account_id, c.inbox_id, c.id, $2::int, $3::bool, $4::text, $4::text, \
                        CASE $2::int WHEN 0 THEN 'Contact' WHEN 1 THEN 'User' END, \
                        CASE $2::int WHEN 0 THEN c.contact_id WHEN 1 THEN $5::bigint END, \
                        clock_timestamp(), clock_timestamp() \
                 FROM conversations c WHERE c.id = $1 RETURNING id, account_id, sender_id",
                &[&conversation, &message_type, &private, &text, &agent],
            )
            .await;
        let row = match inserted {
            Ok(row) => row,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        let (message_id, account_id, sender): (i32, i32, Option<i64>) =
            (row.get(0), row.get(1), row.get(2));
        if with_attachment && message_type != 2 {
            client
                .execute(
                    "INSERT INTO attachments (file_type, external_url, message_id, account_id, created_at, updated_at) \
                     VALUES (3, $2, $1, $3, now(), now())",
                    &[&message_id, &format!("https://files.example.com/{serial}/report&v=1.pdf"), &account_id],
                )
                .await?;
        }
        client
            .execute(
                "UPDATE conversations SET last_activity_at = clock_timestamp(), updated_at = clock_timestamp() WHERE id = $1",
                &[&conversation],
            )
            .await?;
        if message_type == 0 {
            client
                .execute(
                    "UPDATE contacts SET last_activity_at = clock_timestamp() WHERE id = $1",
                    &[&sender.map(|s| s as i32)],
                )
                .await?;
        }
        client.batch_execute("COMMIT").await?;
        Ok(())
    }

    fn text(&mut self, message_type: i32) -> String {
        let n = self.serial;
        if message_type == 2 {
            return format!("Conversation was marked resolved by Agent Smith ({n})");
        }
        match self.rng.random_range(0..8u32) {
            0 => format!("Hello, my printer is broken 🖨️ (#{n})"),
            1 => format!("Line one of {n}\nline two\n\nline four"),
            2 => format!("<b>bold</b> & <script>alert({n})</script> \"quoted\" 'single'"),
            3 => format!("Ça marche pas, señor — 東京 {n}"),
            4 => format!("R&D asks: is 3 < 4 > 2? ({n})"),
            _ => format!("Message {n}: any update on this?"),
        }
    }
}

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

const FIRST: &[&str] = &[
    "Alice", "Bob", "Chloé", "Dmitri", "Eve", "Fatima", "Günther", "Hiro",
];
const LAST: &[&str] = &[
    "Martin", "O'Neil", "Nguyen", "Smith", "Müller", "García", "Kowalski",
];

/// What GLPI must hold for one account, read from Chatwoot's tables.
#[derive(Debug)]
pub struct Expected {
    pub account_id: i64,
    /// Contacts with a name, an email or a phone.
    pub identifiable_contacts: BTreeSet<i64>,
    /// Conversation id → its syncable (non-activity) message ids in commit
    /// order (one writer: id order is commit order).
    pub conversations: BTreeMap<i64, Vec<i64>>,
    /// Contact id → `additional_attributes`.
    pub contact_attributes: BTreeMap<i64, Value>,
    /// Conversation id → `additional_attributes`.
    pub conversation_attributes: BTreeMap<i64, Value>,
}

/// The counts a successful [`Expected::check`] verified.
#[derive(Debug, Default)]
pub struct Checked {
    pub persons: usize,
    pub tickets: usize,
    pub followups: usize,
    pub write_backs: usize,
}

impl Expected {
    pub async fn read(client: &tokio_postgres::Client, account_id: i64) -> Expected {
        let account = account_id as i32;
        let contacts = client
            .query(
                "SELECT id, coalesce(name, '') <> '' OR coalesce(email, '') <> '' OR coalesce(phone_number, '') <> '', \
                        coalesce(additional_attributes, '{}')::text \
                 FROM contacts WHERE account_id = $1",
                &[&account],
            )
            .await
            .expect("read contacts");
        let mut identifiable_contacts = BTreeSet::new();
        let mut contact_attributes = BTreeMap::new();
        for row in contacts {
            let id: i32 = row.get(0);
            if row.get::<_, bool>(1) {
                identifiable_contacts.insert(i64::from(id));
            }
            contact_attributes.insert(i64::from(id), json_of(row.get(2)));
        }
        let mut conversations: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
        for row in client
            .query(
                "SELECT conversation_id, id FROM messages WHERE account_id = $1 AND message_type <> 2 ORDER BY id",
                &[&account],
            )
            .await
            .expect("read messages")
        {
            let (conversation, message): (i32, i32) = (row.get(0), row.get(1));
            conversations
                .entry(conversation.into())
                .or_default()
                .push(message.into());
        }
        let conversation_attributes = client
            .query(
                "SELECT id, coalesce(additional_attributes, '{}')::text FROM conversations WHERE account_id = $1",
                &[&account],
            )
            .await
            .expect("read conversations")
            .into_iter()
            .map(|row| (i64::from(row.get::<_, i32>(0)), json_of(row.get(1))))
            .collect();
        Expected {
            account_id,
            identifiable_contacts,
            conversations,
            contact_attributes,
            conversation_attributes,
        }
    }

    /// Checks GLPI (user mode) and the write-backs; returns the counts
    /// checked, or every discrepancy found.
    pub fn check(&self, glpi: &Emulator, api_user_ids: &[i64]) -> Result<Checked, Vec<String>> {
        let mut problems = Vec::new();
        let mut checked = Checked::default();
        // One GLPI User per identifiable contact, written back.
        let users: BTreeSet<i64> = glpi_user_ids(glpi)
            .into_iter()
            .filter(|id| !api_user_ids.contains(id))
            .collect();
        let mut linked = BTreeSet::new();
        for contact in &self.identifiable_contacts {
            let attrs = &self.contact_attributes[contact];
            match attrs["external"]["glpi_user_id"].as_i64() {
                Some(id) if users.contains(&id) => {
                    if !linked.insert(id) {
                        problems.push(format!("GLPI user {id} is written back on two contacts"));
                    }
                    checked.write_backs += 1;
                }
                other => problems.push(format!(
                    "contact {contact}: external.glpi_user_id is {other:?}, not a GLPI user (attributes {attrs})"
                )),
            }
        }
        if users.len() != self.identifiable_contacts.len() {
            problems.push(format!(
                "GLPI holds {} users for {} identifiable contacts",
                users.len(),
                self.identifiable_contacts.len()
            ));
        }
        checked.persons = users.len();
        // One ticket per conversation with a message; followups in order.
        let tickets = glpi.items("Ticket");
        if tickets.len() != self.conversations.len() {
            problems.push(format!(
                "GLPI holds {} tickets for {} conversations with messages",
                tickets.len(),
                self.conversations.len()
            ));
        }
        checked.tickets = tickets.len();
        let followups = glpi.items("ITILFollowup");
        for (conversation, messages) in &self.conversations {
            let marker = format!("[cwgb-c{}-v{conversation}]", self.account_id);
            let holders: Vec<i64> = tickets
                .iter()
                .filter(|t| t["content"].as_str().unwrap_or("").contains(&marker))
                .filter_map(|t| t["id"].as_i64())
                .collect();
            let [ticket] = holders[..] else {
                problems.push(format!(
                    "conversation {conversation}: tickets {holders:?} carry {marker}"
                ));
                continue;
            };
            let attrs = &self.conversation_attributes[conversation];
            if attrs["glpi"]["ticket_id"].as_i64() != Some(ticket) {
                problems.push(format!(
                    "conversation {conversation}: glpi.ticket_id is {}, GLPI ticket is {ticket}",
                    attrs["glpi"]["ticket_id"]
                ));
            }
            let last = *messages.last().expect("non-empty");
            if attrs["glpi"]["last_synced_message_id"].as_i64() != Some(last) {
                problems.push(format!(
                    "conversation {conversation}: glpi.last_synced_message_id is {}, last message is {last}",
                    attrs["glpi"]["last_synced_message_id"]
                ));
            }
            checked.write_backs += 1;
            let posted: Vec<i64> = followups
                .iter()
                .filter(|f| f["items_id"].as_i64() == Some(ticket) && f["itemtype"] == "Ticket")
                .filter_map(|f| message_marker(f["content"].as_str().unwrap_or("")))
                .collect();
            if posted != messages[1..] {
                problems.push(format!(
                    "conversation {conversation} (ticket {ticket}): followups for messages {posted:?}, expected {:?}",
                    &messages[1..]
                ));
            }
            checked.followups += posted.len();
        }
        let orphans = followups.len() - checked.followups.min(followups.len());
        if orphans > 0 && problems.is_empty() {
            problems.push(format!(
                "{orphans} followups belong to no expected conversation"
            ));
        }
        if problems.is_empty() {
            Ok(checked)
        } else {
            Err(problems)
        }
    }
}

/// The message id in a followup's `[cwgb-m<id>]` marker.
pub fn message_marker(content: &str) -> Option<i64> {
    let start = content.find("[cwgb-m")? + "[cwgb-m".len();
    let end = content[start..].find(']')? + start;
    content[start..end].parse().ok()
}

fn json_of(text: String) -> Value {
    serde_json::from_str(&text).expect("jsonb text is JSON")
}
