//! Sender names for followup headers: agents (`users`), bots (`agent_bots`)
//! and contacts, read from Chatwoot's database by id and cached, so a busy
//! conversation costs the database one lookup per sender, not per message.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::content::{Sender, SenderRole};
use crate::writeback::{ChatwootDb, WriteBackError};

/// How long a looked-up name is reused (renames show up after this).
const NAME_TTL: Duration = Duration::from_secs(600);

/// Cached sender-name lookups.
pub struct SenderNames {
    db: ChatwootDb,
    cache: Mutex<HashMap<(SenderRole, i64), (String, Instant)>>,
}

impl SenderNames {
    pub fn new(db: ChatwootDb) -> SenderNames {
        SenderNames {
            db,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The sender of a message. `contact_name` is the name the caller already
    /// knows for the conversation's contact (from a snapshot), if any.
    pub async fn sender(
        &self,
        sender_type: Option<&str>,
        sender_id: Option<i64>,
        incoming: bool,
        contact_name: Option<&str>,
    ) -> Result<Sender, WriteBackError> {
        let role = SenderRole::from_sender_type(sender_type, incoming);
        let name = match (role, sender_id) {
            (SenderRole::Contact, _) if contact_name.is_some_and(|n| !n.trim().is_empty()) => {
                contact_name.unwrap_or_default().trim().to_owned()
            }
            (_, Some(id)) => self.lookup(role, sender_type, id).await?,
            (SenderRole::Contact, None) => "Contact".to_owned(),
            (SenderRole::Agent, None) => "Agent".to_owned(),
            (SenderRole::Bot, None) => "Chatwoot".to_owned(),
        };
        Ok(Sender { name, role })
    }

    async fn lookup(
        &self,
        role: SenderRole,
        sender_type: Option<&str>,
        id: i64,
    ) -> Result<String, WriteBackError> {
        if let Some((name, at)) = self.cached(role, id) {
            if at.elapsed() < NAME_TTL {
                return Ok(name);
            }
        }
        let (sql, fallback) = match (role, sender_type) {
            (SenderRole::Contact, _) => (
                "SELECT COALESCE(NULLIF(btrim(name), ''), NULLIF(email, ''), NULLIF(phone_number, ''))
                   FROM contacts WHERE id = $1::int8",
                format!("Contact #{id}"),
            ),
            (SenderRole::Agent, _) => (
                "SELECT COALESCE(NULLIF(btrim(display_name), ''), name) FROM users WHERE id = $1::int8",
                format!("Agent #{id}"),
            ),
            (SenderRole::Bot, Some("AgentBot")) => (
                "SELECT name FROM agent_bots WHERE id = $1::int8",
                format!("Bot #{id}"),
            ),
            (SenderRole::Bot, other) => {
                // Captain assistants and other bot kinds: no table we read.
                let label = other.unwrap_or("Bot");
                return Ok(format!("{label} #{id}"));
            }
        };
        let client = self.db.get().await?;
        let found = match client.query_opt(sql, &[&id]).await {
            Ok(row) => row.and_then(|r| r.get::<_, Option<String>>(0)),
            // A Chatwoot without that table (older or trimmed schema): the
            // name is cosmetic, never a reason to hold a followup back.
            Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                None
            }
            Err(err) => return Err(WriteBackError::Query(err)),
        };
        let name = found
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or(fallback);
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((role, id), (name.clone(), Instant::now()));
        Ok(name)
    }

    fn cached(&self, role: SenderRole, id: i64) -> Option<(String, Instant)> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(role, id))
            .cloned()
    }
}
