//! Chatwoot ↔ GLPI mappings: which GLPI User/Contact, Ticket and followup
//! each Chatwoot contact, conversation and message became.
//!
//! Invariant 2: a worker records the GLPI id here in the same SQLite
//! transaction that completes its job, so a job is either done *and* mapped,
//! or neither (and a retry resolves the unknown outcome in GLPI first).
//! The planner reads these tables (adopting ids found in Chatwoot's
//! `additional_attributes`, deciding self-heal write-backs); the write-back
//! jobs read them to know what to write.

use rusqlite::{params, Connection, OptionalExtension};

/// Tables of this module, created if missing (idempotent).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS contact_links (
    contact_id     INTEGER PRIMARY KEY,
    account_id     INTEGER NOT NULL,
    glpi_itemtype  TEXT    NOT NULL CHECK (glpi_itemtype IN ('User', 'Contact')),
    glpi_id        INTEGER NOT NULL,
    -- JSON of the GLPI-visible fields last sent (NULL: adopted, never sent):
    -- a SyncContact job that would send the same fields makes no GLPI call.
    synced_fields  TEXT
);
CREATE TABLE IF NOT EXISTS ticket_links (
    conversation_id        INTEGER PRIMARY KEY,
    account_id             INTEGER NOT NULL,
    glpi_ticket_id         INTEGER NOT NULL,
    last_synced_message_id INTEGER,
    -- the message rendered into the ticket description (re-rendered on update)
    first_message_id       INTEGER,
    -- GLPI status and priority last sent (NULL: unknown, e.g. adopted)
    glpi_status            INTEGER,
    glpi_priority          INTEGER,
    -- for links and re-rendering: Chatwoot's per-account conversation number,
    -- and the HTML the description has after the first message
    display_id             INTEGER,
    description_tail       TEXT,
    -- 0 for a ticket adopted from Chatwoot's keys: its followups in GLPI are
    -- matched to messages (by marker) before the first new one is posted
    reconciled             INTEGER NOT NULL DEFAULT 1
);
-- The requester the bridge last set on a conversation's ticket (one
-- Ticket_User row of type 1): a ChangeRequester job removes exactly that row
-- when the conversation moves to another contact.
CREATE TABLE IF NOT EXISTS ticket_requesters (
    conversation_id   INTEGER PRIMARY KEY,
    -- the Chatwoot contact it stands for (NULL: the ticket has none from us)
    contact_id        INTEGER,
    -- a GLPI user id, or 0 for an email-only requester (contact mode)
    glpi_user_id      INTEGER NOT NULL DEFAULT 0,
    alternative_email TEXT    NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS followup_links (
    message_id       INTEGER PRIMARY KEY,
    conversation_id  INTEGER NOT NULL,
    glpi_followup_id INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS followup_links_by_conversation ON followup_links (conversation_id);
";

/// Creates the tables if missing.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)
}

/// What a Chatwoot contact is in GLPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlpiPersonType {
    User,
    Contact,
}

impl GlpiPersonType {
    pub fn itemtype(self) -> &'static str {
        match self {
            GlpiPersonType::User => "User",
            GlpiPersonType::Contact => "Contact",
        }
    }

    pub fn from_itemtype(itemtype: &str) -> Option<Self> {
        match itemtype {
            "User" => Some(GlpiPersonType::User),
            "Contact" => Some(GlpiPersonType::Contact),
            _ => None,
        }
    }

    /// The key under `contacts.additional_attributes.external`.
    pub fn writeback_key(self) -> &'static str {
        match self {
            GlpiPersonType::User => "glpi_user_id",
            GlpiPersonType::Contact => "glpi_contact_id",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactLink {
    pub contact_id: i64,
    pub account_id: i64,
    pub person_type: GlpiPersonType,
    pub glpi_id: i64,
    pub synced_fields: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketLink {
    pub conversation_id: i64,
    pub account_id: i64,
    pub glpi_ticket_id: i64,
    pub last_synced_message_id: Option<i64>,
    pub first_message_id: Option<i64>,
    pub glpi_status: Option<i64>,
    pub glpi_priority: Option<i64>,
    pub display_id: Option<i64>,
    pub description_tail: Option<String>,
    /// False for a ticket adopted from Chatwoot's keys whose followups have
    /// not been matched to messages yet.
    pub reconciled: bool,
}

/// The requester the bridge last set on a ticket. `glpi_user_id` 0 with an
/// empty `alternative_email` means none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TicketRequester {
    pub conversation_id: i64,
    pub contact_id: Option<i64>,
    pub glpi_user_id: i64,
    pub alternative_email: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowupLink {
    pub message_id: i64,
    pub conversation_id: i64,
    pub glpi_followup_id: i64,
}

pub fn contact_link(conn: &Connection, contact_id: i64) -> rusqlite::Result<Option<ContactLink>> {
    conn.query_row(
        "SELECT contact_id, account_id, glpi_itemtype, glpi_id, synced_fields
           FROM contact_links WHERE contact_id = ?1",
        [contact_id],
        |row| {
            let itemtype: String = row.get(2)?;
            Ok(ContactLink {
                contact_id: row.get(0)?,
                account_id: row.get(1)?,
                person_type: GlpiPersonType::from_itemtype(&itemtype)
                    .unwrap_or(GlpiPersonType::User),
                glpi_id: row.get(3)?,
                synced_fields: row.get(4)?,
            })
        },
    )
    .optional()
}

/// Records (or replaces) a contact's GLPI record and the fields last sent.
pub fn record_contact(
    conn: &Connection,
    contact_id: i64,
    account_id: i64,
    person_type: GlpiPersonType,
    glpi_id: i64,
    synced_fields: Option<&str>,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO contact_links (contact_id, account_id, glpi_itemtype, glpi_id, synced_fields)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (contact_id) DO UPDATE SET account_id = excluded.account_id,
             glpi_itemtype = excluded.glpi_itemtype, glpi_id = excluded.glpi_id,
             synced_fields = excluded.synced_fields",
        params![
            contact_id,
            account_id,
            person_type.itemtype(),
            glpi_id,
            synced_fields
        ],
    )?;
    Ok(())
}

/// Adopts an id found in Chatwoot (backfill or rebuild) without overwriting
/// a mapping the bridge already has.
pub fn adopt_contact(
    conn: &Connection,
    contact_id: i64,
    account_id: i64,
    person_type: GlpiPersonType,
    glpi_id: i64,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO contact_links (contact_id, account_id, glpi_itemtype, glpi_id)
         VALUES (?1, ?2, ?3, ?4)",
        params![contact_id, account_id, person_type.itemtype(), glpi_id],
    )?;
    Ok(n > 0)
}

pub fn ticket_link(
    conn: &Connection,
    conversation_id: i64,
) -> rusqlite::Result<Option<TicketLink>> {
    conn.query_row(
        "SELECT conversation_id, account_id, glpi_ticket_id, last_synced_message_id,
                first_message_id, glpi_status, glpi_priority, display_id, description_tail,
                reconciled
           FROM ticket_links WHERE conversation_id = ?1",
        [conversation_id],
        |row| {
            Ok(TicketLink {
                conversation_id: row.get(0)?,
                account_id: row.get(1)?,
                glpi_ticket_id: row.get(2)?,
                last_synced_message_id: row.get(3)?,
                first_message_id: row.get(4)?,
                glpi_status: row.get(5)?,
                glpi_priority: row.get(6)?,
                display_id: row.get(7)?,
                description_tail: row.get(8)?,
                reconciled: row.get(9)?,
            })
        },
    )
    .optional()
}

/// Records the ticket a conversation became (`link.first_message_id` is the
/// message its description holds, which is also the last synced message so
/// far).
pub fn record_ticket(conn: &Connection, link: &TicketLink) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO ticket_links (conversation_id, account_id, glpi_ticket_id,
             last_synced_message_id, first_message_id, glpi_status, glpi_priority,
             display_id, description_tail, reconciled)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (conversation_id) DO UPDATE SET glpi_ticket_id = excluded.glpi_ticket_id,
             last_synced_message_id = MAX(COALESCE(last_synced_message_id, 0),
                                          COALESCE(excluded.last_synced_message_id, 0)),
             first_message_id = excluded.first_message_id,
             glpi_status = excluded.glpi_status, glpi_priority = excluded.glpi_priority,
             display_id = excluded.display_id, description_tail = excluded.description_tail,
             reconciled = excluded.reconciled",
        params![
            link.conversation_id,
            link.account_id,
            link.glpi_ticket_id,
            link.last_synced_message_id.or(link.first_message_id),
            link.first_message_id,
            link.glpi_status,
            link.glpi_priority,
            link.display_id,
            link.description_tail,
            link.reconciled,
        ],
    )?;
    Ok(())
}

/// Adopts a ticket id (and progress) found in Chatwoot without overwriting a
/// mapping the bridge already has.
pub fn adopt_ticket(
    conn: &Connection,
    conversation_id: i64,
    account_id: i64,
    glpi_ticket_id: i64,
    last_synced_message_id: Option<i64>,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO ticket_links (conversation_id, account_id, glpi_ticket_id,
             last_synced_message_id, reconciled)
         VALUES (?1, ?2, ?3, ?4, 0)",
        params![
            conversation_id,
            account_id,
            glpi_ticket_id,
            last_synced_message_id
        ],
    )?;
    Ok(n > 0)
}

/// Marks an adopted ticket's followups as matched to their messages.
pub fn mark_reconciled(conn: &Connection, conversation_id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE ticket_links SET reconciled = 1 WHERE conversation_id = ?1",
        [conversation_id],
    )?;
    Ok(())
}

/// Records the GLPI status and priority last sent to a ticket.
pub fn record_ticket_state(
    conn: &Connection,
    conversation_id: i64,
    glpi_status: i64,
    glpi_priority: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE ticket_links SET glpi_status = ?2, glpi_priority = ?3 WHERE conversation_id = ?1",
        params![conversation_id, glpi_status, glpi_priority],
    )?;
    Ok(())
}

pub fn ticket_requester(
    conn: &Connection,
    conversation_id: i64,
) -> rusqlite::Result<Option<TicketRequester>> {
    conn.query_row(
        "SELECT conversation_id, contact_id, glpi_user_id, alternative_email
           FROM ticket_requesters WHERE conversation_id = ?1",
        [conversation_id],
        |row| {
            Ok(TicketRequester {
                conversation_id: row.get(0)?,
                contact_id: row.get(1)?,
                glpi_user_id: row.get(2)?,
                alternative_email: row.get(3)?,
            })
        },
    )
    .optional()
}

/// Records (or replaces) the requester the bridge set on a ticket.
pub fn record_requester(conn: &Connection, requester: &TicketRequester) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO ticket_requesters (conversation_id, contact_id, glpi_user_id, alternative_email)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (conversation_id) DO UPDATE SET contact_id = excluded.contact_id,
             glpi_user_id = excluded.glpi_user_id, alternative_email = excluded.alternative_email",
        params![
            requester.conversation_id,
            requester.contact_id,
            requester.glpi_user_id,
            requester.alternative_email
        ],
    )?;
    Ok(())
}

/// Records the description tail a ticket's description now ends with.
pub fn record_description_tail(
    conn: &Connection,
    conversation_id: i64,
    tail: &str,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE ticket_links SET description_tail = ?2 WHERE conversation_id = ?1",
        params![conversation_id, tail],
    )?;
    Ok(())
}

pub fn followup_link(conn: &Connection, message_id: i64) -> rusqlite::Result<Option<FollowupLink>> {
    conn.query_row(
        "SELECT message_id, conversation_id, glpi_followup_id FROM followup_links WHERE message_id = ?1",
        [message_id],
        |row| {
            Ok(FollowupLink {
                message_id: row.get(0)?,
                conversation_id: row.get(1)?,
                glpi_followup_id: row.get(2)?,
            })
        },
    )
    .optional()
}

/// Records a followup and advances the conversation's
/// `last_synced_message_id` (it never goes back).
pub fn record_followup(
    conn: &Connection,
    message_id: i64,
    conversation_id: i64,
    glpi_followup_id: i64,
) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO followup_links (message_id, conversation_id, glpi_followup_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (message_id) DO UPDATE SET glpi_followup_id = excluded.glpi_followup_id",
        params![message_id, conversation_id, glpi_followup_id],
    )?;
    conn.execute(
        "UPDATE ticket_links
            SET last_synced_message_id = MAX(COALESCE(last_synced_message_id, 0), ?2)
          WHERE conversation_id = ?1",
        params![conversation_id, message_id],
    )?;
    Ok(())
}

/// How many followups of a conversation are recorded.
pub fn followup_count(conn: &Connection, conversation_id: i64) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT count(*) FROM followup_links WHERE conversation_id = ?1",
        [conversation_id],
        |r| r.get(0),
    )
}

/// Forgets a conversation's ticket and followups (the ticket is gone from
/// GLPI): the next CreateTicket looks GLPI up by marker, then creates.
pub fn forget_ticket(conn: &Connection, conversation_id: i64) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM followup_links WHERE conversation_id = ?1",
        [conversation_id],
    )?;
    conn.execute(
        "DELETE FROM ticket_requesters WHERE conversation_id = ?1",
        [conversation_id],
    )?;
    conn.execute(
        "DELETE FROM ticket_links WHERE conversation_id = ?1",
        [conversation_id],
    )?;
    Ok(())
}

/// Makes a conversation's followup links exactly `found` (message id,
/// followup id), as read from the ticket in GLPI, and marks the ticket
/// reconciled: links to followups GLPI no longer has are dropped, so their
/// messages are posted again.
pub fn replace_followups(
    conn: &Connection,
    conversation_id: i64,
    found: &[(i64, i64)],
) -> rusqlite::Result<()> {
    conn.execute(
        "DELETE FROM followup_links WHERE conversation_id = ?1",
        [conversation_id],
    )?;
    for &(message_id, followup_id) in found {
        record_followup(conn, message_id, conversation_id, followup_id)?;
    }
    mark_reconciled(conn, conversation_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        migrate(&conn).unwrap(); // idempotent
        conn
    }

    #[test]
    fn contact_links_round_trip_and_adopt_does_not_overwrite() {
        let conn = db();
        assert_eq!(contact_link(&conn, 5).unwrap(), None);
        assert!(adopt_contact(&conn, 5, 1, GlpiPersonType::User, 70).unwrap());
        assert!(!adopt_contact(&conn, 5, 1, GlpiPersonType::User, 99).unwrap());
        assert_eq!(contact_link(&conn, 5).unwrap().unwrap().glpi_id, 70);
        record_contact(&conn, 5, 1, GlpiPersonType::Contact, 8, Some("{}")).unwrap();
        let link = contact_link(&conn, 5).unwrap().unwrap();
        assert_eq!(link.person_type, GlpiPersonType::Contact);
        assert_eq!(link.glpi_id, 8);
        assert_eq!(link.synced_fields.as_deref(), Some("{}"));
    }

    #[test]
    fn the_requester_set_is_replaced_and_forgotten_with_the_ticket() {
        let conn = db();
        assert_eq!(ticket_requester(&conn, 3).unwrap(), None);
        let mut requester = TicketRequester {
            conversation_id: 3,
            contact_id: Some(5),
            glpi_user_id: 70,
            alternative_email: String::new(),
        };
        record_requester(&conn, &requester).unwrap();
        requester.contact_id = Some(6);
        requester.glpi_user_id = 0;
        requester.alternative_email = "new@example.org".into();
        record_requester(&conn, &requester).unwrap();
        assert_eq!(ticket_requester(&conn, 3).unwrap(), Some(requester));
        forget_ticket(&conn, 3).unwrap();
        assert_eq!(ticket_requester(&conn, 3).unwrap(), None);
    }

    #[test]
    fn last_synced_message_only_moves_forward() {
        let conn = db();
        record_ticket(
            &conn,
            &TicketLink {
                conversation_id: 3,
                account_id: 1,
                glpi_ticket_id: 40,
                last_synced_message_id: None,
                first_message_id: Some(10),
                glpi_status: Some(2),
                glpi_priority: Some(3),
                display_id: Some(1),
                description_tail: None,
                reconciled: true,
            },
        )
        .unwrap();
        record_followup(&conn, 12, 3, 100).unwrap();
        record_followup(&conn, 11, 3, 101).unwrap();
        let link = ticket_link(&conn, 3).unwrap().unwrap();
        assert_eq!(link.glpi_ticket_id, 40);
        assert_eq!(link.first_message_id, Some(10));
        assert_eq!(link.last_synced_message_id, Some(12));
        assert_eq!(
            followup_link(&conn, 11).unwrap().unwrap().glpi_followup_id,
            101
        );
        record_ticket_state(&conn, 3, 5, 4).unwrap();
        let link = ticket_link(&conn, 3).unwrap().unwrap();
        assert_eq!((link.glpi_status, link.glpi_priority), (Some(5), Some(4)));
    }
}
