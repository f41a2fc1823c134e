//! The demo's Chatwoot: its schema, a little history, the live changes, and
//! the read-outs of GLPI and of the write-backs. Rows are written the way
//! Chatwoot writes them (one transaction per change).

use anyhow::Context as _;
use serde_json::Value;

use crate::glpi_emulator::Emulator;
use crate::planner::settings::CRM_INTEGRATION_FLAG;
use crate::sandbox_postgres::SandboxPostgres;

/// The demo database's name.
pub const DATABASE: &str = "chatwoot_demo";
/// Conversations in the history (each becomes a ticket in the backfill).
pub const HISTORY_CONVERSATIONS: usize = 3;

/// Chatwoot's schema as the tests load it.
const SCHEMA: &str = include_str!("../../../sql/chatwoot_schema.sql");

pub async fn create_database(cluster: &SandboxPostgres) -> anyhow::Result<()> {
    let admin = connect(&cluster.superuser_url("postgres")).await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {DATABASE}"))
        .await
        .context("creating the demo database")?;
    let db = connect(&cluster.superuser_url(DATABASE)).await?;
    db.batch_execute(SCHEMA)
        .await
        .context("loading Chatwoot's schema")?;
    Ok(())
}

async fn connect(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .context("connecting to the demo PostgreSQL")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// One live change and what GLPI must show after it.
pub struct LiveChange {
    pub describe: &'static str,
    pub sql: &'static str,
    pub expect: &'static str,
    pub check: fn(&Emulator) -> bool,
}

/// The live part of the story: a new contact, a conversation, messages, a
/// status change, a private note.
pub fn live_changes() -> Vec<LiveChange> {
    vec![
        LiveChange {
            describe: "a new contact, Grace Hopper <grace@example.com>",
            sql: "INSERT INTO contacts (id, account_id, name, email, phone_number, created_at, updated_at)
                  VALUES (4, 1, 'Grace Hopper', 'grace@example.com', '+1 202 555 0199', now(), now())",
            expect: "a GLPI user for Grace Hopper (login grace@example.com)",
            check: |glpi| {
                glpi.items("User")
                    .iter()
                    .any(|u| u["realname"] == "Hopper" && u["name"] == "grace@example.com")
            },
        },
        LiveChange {
            describe: "Grace opens a conversation: \"Hello, I cannot log in to the intranet since the update.\"",
            sql: "INSERT INTO conversations (id, account_id, inbox_id, contact_id, status, created_at, updated_at)
                      VALUES (4, 1, 1, 4, 0, now(), now());
                  INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content,
                      sender_type, sender_id, created_at, updated_at)
                      VALUES (1, 1, 4, 0, 'Hello, I cannot log in to the intranet since the update.',
                              'Contact', 4, now(), now())",
            expect: "a new ticket, titled from the first message, requester Grace",
            check: |glpi| glpi.items("Ticket").len() == 4,
        },
        LiveChange {
            describe: "agent Alice replies: \"Sorry about that! I reset your password, please try again.\"",
            sql: "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content,
                      sender_type, sender_id, created_at, updated_at)
                  VALUES (1, 1, 4, 1, 'Sorry about that! I reset your password, please try again.',
                          'User', 1, now(), now())",
            expect: "a followup on Grace's ticket",
            check: |glpi| glpi.items("ITILFollowup").len() == 4,
        },
        LiveChange {
            describe: "Ada's conversation is resolved",
            sql: "UPDATE conversations SET status = 1, updated_at = now() WHERE id = 1",
            expect: "Ada's ticket goes to status 5 (Solved)",
            check: |glpi| glpi.items("Ticket").iter().any(|t| t["status"] == 5),
        },
        LiveChange {
            describe: "Alice adds a private note to Linus's conversation",
            sql: "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content,
                      private, sender_type, sender_id, created_at, updated_at)
                  VALUES (1, 1, 2, 1, 'Internal: waiting for the laptop serial number from purchasing.',
                          true, 'User', 1, now(), now())",
            expect: "a private followup (is_private = 1) on Linus's ticket",
            check: |glpi| {
                glpi.items("ITILFollowup")
                    .iter()
                    .any(|f| f["is_private"] == 1)
            },
        },
    ]
}

/// The demo's Chatwoot database.
pub struct Chatwoot {
    db: tokio_postgres::Client,
}

impl Chatwoot {
    pub async fn connect(url: &str) -> anyhow::Result<Chatwoot> {
        Ok(Chatwoot {
            db: connect(url).await?,
        })
    }

    /// An account using the GLPI integration (hook row pointing at the
    /// emulator), an inbox, an agent, three contacts and three conversations
    /// with messages. Returns a one-line summary.
    pub async fn load_history(&self, api_url: &str) -> anyhow::Result<String> {
        let hook = serde_json::json!({
            "api_url": api_url,
            "app_token": "emulator-app-token",
            "user_token": "emulator-user-token",
            "entity_id": "0",
            "sync_type": "user",
            "ticket_type": "1",
        });
        let sql = format!(
            "INSERT INTO accounts (id, name, feature_flags, created_at, updated_at)
                 VALUES (1, 'Acme Support', {CRM_INTEGRATION_FLAG}, now(), now());
             INSERT INTO inboxes (id, channel_id, account_id, name, created_at, updated_at)
                 VALUES (1, 1, 1, 'Website chat', now(), now());
             INSERT INTO users (id, name, display_name, email, created_at, updated_at)
                 VALUES (1, 'Alice Agent', 'Alice', 'alice@acme.example', now(), now());
             INSERT INTO integrations_hooks (account_id, app_id, status, settings, created_at, updated_at)
                 VALUES (1, 'glpi', 1, '{hook}', now(), now());
             INSERT INTO contacts (id, account_id, name, email, phone_number, created_at, updated_at) VALUES
                 (1, 1, 'Ada Lovelace', 'ada@example.com', '+44 20 7946 0001', now() - interval '3 days', now()),
                 (2, 1, 'Linus Torvalds', 'linus@example.com', NULL, now() - interval '2 days', now()),
                 (3, 1, 'Margaret Hamilton', NULL, '+1 617 555 0100', now() - interval '1 day', now());
             INSERT INTO conversations (id, account_id, inbox_id, contact_id, status, priority,
                                        additional_attributes, created_at, updated_at) VALUES
                 (1, 1, 1, 1, 0, 2, '{{}}', now() - interval '3 days', now()),
                 (2, 1, 1, 2, 2, NULL, '{{\"mail_subject\": \"VPN access for a new laptop\"}}', now() - interval '2 days', now()),
                 (3, 1, 1, 3, 0, NULL, '{{}}', now() - interval '1 day', now());
             INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content,
                                   sender_type, sender_id, created_at, updated_at) VALUES
                 (1, 1, 1, 0, 'My printer shows error 0x42 since this morning.', 'Contact', 1, now() - interval '3 days', now()),
                 (1, 1, 1, 1, 'Thanks Ada, could you send a photo of the screen?', 'User', 1, now() - interval '3 days' + interval '5 minutes', now()),
                 (1, 1, 1, 0, 'Here it is: it says <paper jam> & blinks.', 'Contact', 1, now() - interval '3 days' + interval '9 minutes', now()),
                 (1, 1, 2, 0, 'Hi, I need VPN access on my new laptop.', 'Contact', 2, now() - interval '2 days', now()),
                 (1, 1, 2, 1, 'Sure, which operating system does it run?', 'User', 1, now() - interval '2 days' + interval '1 hour', now()),
                 (1, 1, 3, 0, 'Can someone call me back about the invoice?', 'Contact', 3, now() - interval '1 day', now());
             SELECT setval('contacts_id_seq', 10), setval('conversations_id_seq', 10);",
            hook = hook.to_string().replace('\'', "''"),
        );
        self.db
            .batch_execute(&sql)
            .await
            .context("inserting the sample history")?;
        Ok(format!(
            "account 1 \"Acme Support\" with the GLPI integration enabled (integrations_hooks row, \
             sync type user); 3 contacts, {HISTORY_CONVERSATIONS} conversations, 6 messages"
        ))
    }

    pub async fn apply(&self, change: &LiveChange) -> anyhow::Result<()> {
        self.db
            .batch_execute(&format!("BEGIN; {}; COMMIT;", change.sql))
            .await
            .with_context(|| format!("writing: {}", change.describe))
    }

    /// Conversations that carry a GLPI ticket id.
    pub async fn written_back_tickets(&self) -> anyhow::Result<usize> {
        let row = self
            .db
            .query_one(
                "SELECT count(*) FROM conversations WHERE additional_attributes #> '{glpi,ticket_id}' IS NOT NULL",
                &[],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as usize)
    }

    /// Every contact and conversation carries its GLPI id, and every
    /// conversation's last synced message is its last message.
    pub async fn all_written_back(&self) -> bool {
        let row = self
            .db
            .query_one(
                "SELECT
                   (SELECT count(*) FROM contacts WHERE additional_attributes #> '{external,glpi_user_id}' IS NULL),
                   (SELECT count(*) FROM conversations c WHERE
                      (c.additional_attributes #>> '{glpi,last_synced_message_id}')::bigint IS DISTINCT FROM
                      (SELECT max(id) FROM messages m WHERE m.conversation_id = c.id))",
                &[],
            )
            .await;
        matches!(row, Ok(row) if row.get::<_, i64>(0) == 0 && row.get::<_, i64>(1) == 0)
    }

    /// The keys the bridge wrote into `additional_attributes`.
    pub async fn describe_write_backs(&self) -> anyhow::Result<String> {
        let mut out = String::new();
        for row in self
            .db
            .query(
                "SELECT id, name, (additional_attributes -> 'external')::text FROM contacts ORDER BY id",
                &[],
            )
            .await?
        {
            out.push_str(&format!(
                "  contact {} {:<18} external = {}\n",
                row.get::<_, i32>(0),
                row.get::<_, Option<String>>(1).unwrap_or_default(),
                row.get::<_, Option<String>>(2).unwrap_or_else(|| "(none)".into())
            ));
        }
        for row in self
            .db
            .query(
                "SELECT id, display_id, (additional_attributes -> 'glpi')::text FROM conversations ORDER BY id",
                &[],
            )
            .await?
        {
            out.push_str(&format!(
                "  conversation #{:<2}              glpi = {}\n",
                row.get::<_, i32>(1),
                row.get::<_, Option<String>>(2).unwrap_or_else(|| "(none)".into())
            ));
        }
        Ok(out)
    }
}

/// The users the bridge created (GLPI's own accounts have no real name).
pub fn synced_users(glpi: &Emulator) -> Vec<Value> {
    glpi.items("User")
        .into_iter()
        .filter(|u| u["realname"].as_str().is_some_and(|r| !r.is_empty()))
        .collect()
}

/// GLPI's users, tickets and followups, as the emulator stores them.
pub fn describe_glpi(glpi: &Emulator) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out = String::new();
    for user in synced_users(glpi) {
        out.push_str(&format!(
            "  User #{:<3} login {:<20} {} {}\n",
            text(&user["id"]),
            text(&user["name"]),
            text(&user["firstname"]),
            text(&user["realname"]),
        ));
    }
    let followups = glpi.items("ITILFollowup");
    for ticket in glpi.items("Ticket") {
        let id = &ticket["id"];
        let of_ticket: Vec<&Value> = followups.iter().filter(|f| &f["items_id"] == id).collect();
        let private = of_ticket.iter().filter(|f| f["is_private"] == 1).count();
        out.push_str(&format!(
            "  Ticket #{:<2} status {} {:<45} {} followup{}{}\n",
            text(id),
            text(&ticket["status"]),
            format!("\"{}\"", text(&ticket["name"])),
            of_ticket.len(),
            if of_ticket.len() == 1 { "" } else { "s" },
            if private > 0 {
                format!(" ({private} private)")
            } else {
                String::new()
            }
        ));
    }
    if let Some(last) = followups.last() {
        out.push_str("  Latest followup, as GLPI shows it:\n");
        let shown = crate::glpi::decode_glpi_entities(&text(&last["content"]))
            .replace("<br>", "\n")
            .replace("<br />", "\n");
        for line in shown.lines() {
            out.push_str(&format!("    | {line}\n"));
        }
    }
    out
}
