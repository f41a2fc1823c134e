//! The planner's cache of Chatwoot rows, in the state file.
//!
//! PostgreSQL sends an UPDATE's unchanged TOASTed columns as "unchanged" and
//! a DELETE with only the id (REPLICA IDENTITY DEFAULT), and never says which
//! columns changed. To decide whether a change alters what GLPI shows
//! (invariant 4) and to render late attachments and deletions, the planner
//! keeps the last known state of the rows it needs here, updated in the same
//! SQLite transaction as the jobs it plans.
//!
//! A message's row (and its attachments) is only needed while the message
//! is young: [`super::prune`] forgets it once it is older than
//! `message_cache_days` and no queued job needs it; see there for why that
//! keeps every invariant.

use rusqlite::{params, Connection, OptionalExtension};

use crate::chatwoot::Table;
use crate::outbox::{AttachmentSnapshot, MessageSnapshot};

use super::settings::GlpiHook;

/// The cache tables, plus what the planner reports to the operator.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS planner_accounts (
    id INTEGER PRIMARY KEY,
    feature_flags INTEGER NOT NULL DEFAULT 0
);
-- only rows with app_id = 'glpi'
CREATE TABLE IF NOT EXISTS planner_hooks (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    enabled INTEGER NOT NULL,
    settings TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS planner_hooks_by_account ON planner_hooks (account_id);
CREATE TABLE IF NOT EXISTS planner_contacts (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    name TEXT,
    email TEXT,
    phone_number TEXT,
    identifier TEXT,
    -- the bridge's keys as last seen in additional_attributes.external (NULL: absent)
    key_user_id INTEGER,
    key_contact_id INTEGER
);
CREATE TABLE IF NOT EXISTS planner_conversations (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL,
    contact_id INTEGER,
    display_id INTEGER NOT NULL,
    status INTEGER NOT NULL,
    priority INTEGER,
    mail_subject TEXT,
    created_at TEXT NOT NULL,
    -- the CreateTicket job is queued (or the ticket was adopted)
    ticket_planned INTEGER NOT NULL DEFAULT 0,
    -- messages up to this id are in GLPI already (adopted progress)
    synced_through INTEGER,
    -- the bridge's keys as last seen in additional_attributes.glpi (NULL: absent)
    key_ticket_id INTEGER,
    key_last_synced_message_id INTEGER
);
CREATE TABLE IF NOT EXISTS planner_messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL,
    account_id INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    -- JSON MessageSnapshot, only for messages planned into GLPI (to re-render)
    snapshot TEXT,
    -- the latest job that carries this message's snapshot
    job_id INTEGER,
    -- Chatwoot's created_at, unix seconds (0: written by a version before
    -- pruning, stamped by the pruner): the row is pruned by this age
    created_at INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS planner_attachments (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    -- JSON AttachmentSnapshot
    snapshot TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS planner_attachments_by_message ON planner_attachments (message_id);
-- changes deliberately not synced, kept visible for `status` (invariant 6)
CREATE TABLE IF NOT EXISTS planner_skips (
    subject TEXT PRIMARY KEY,
    account_id INTEGER,
    reason TEXT NOT NULL,
    recorded_at INTEGER NOT NULL
);
-- per-account sync state as last decided (for `status`)
CREATE TABLE IF NOT EXISTS planner_account_states (
    account_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    detail TEXT
);
";

pub fn account_flags(conn: &Connection, id: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT feature_flags FROM planner_accounts WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
}

pub fn put_account(conn: &Connection, id: i64, feature_flags: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO planner_accounts (id, feature_flags) VALUES (?1, ?2)",
    )?
    .execute(params![id, feature_flags])?;
    Ok(())
}

pub fn delete_account(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM planner_accounts WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// Every account the cache knows of (rows or hooks), for rebuilding states.
pub fn known_account_ids(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM planner_accounts UNION SELECT account_id FROM planner_hooks ORDER BY 1",
    )?;
    let ids = stmt.query_map([], |r| r.get(0))?;
    ids.collect()
}

pub fn glpi_hook(conn: &Connection, id: i64) -> rusqlite::Result<Option<GlpiHook>> {
    conn.prepare_cached(
        "SELECT id, account_id, enabled, settings FROM planner_hooks WHERE id = ?1",
    )?
    .query_row([id], hook_from_row)
    .optional()
}

pub fn glpi_hooks_of(conn: &Connection, account_id: i64) -> rusqlite::Result<Vec<GlpiHook>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, account_id, enabled, settings FROM planner_hooks WHERE account_id = ?1 ORDER BY id",
    )?;
    let hooks = stmt.query_map([account_id], hook_from_row)?;
    hooks.collect()
}

fn hook_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GlpiHook> {
    let settings: String = r.get(3)?;
    Ok(GlpiHook {
        id: r.get(0)?,
        account_id: r.get(1)?,
        enabled: r.get(2)?,
        // Written by put_hook from a serde_json::Value, so it parses.
        settings: serde_json::from_str(&settings).unwrap_or(serde_json::Value::Null),
    })
}

pub fn put_hook(conn: &Connection, hook: &GlpiHook) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO planner_hooks (id, account_id, enabled, settings) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        hook.id,
        hook.account_id,
        hook.enabled,
        hook.settings.to_string()
    ])?;
    Ok(())
}

pub fn delete_hook(conn: &Connection, id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM planner_hooks WHERE id = ?1")?
        .execute([id])?;
    Ok(())
}

/// A contact as last seen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachedContact {
    pub id: i64,
    pub account_id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub identifier: Option<String>,
    pub key_user_id: Option<i64>,
    pub key_contact_id: Option<i64>,
}

pub fn contact(conn: &Connection, id: i64) -> rusqlite::Result<Option<CachedContact>> {
    conn.prepare_cached(
        "SELECT id, account_id, name, email, phone_number, identifier, key_user_id, key_contact_id
         FROM planner_contacts WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(CachedContact {
            id: r.get(0)?,
            account_id: r.get(1)?,
            name: r.get(2)?,
            email: r.get(3)?,
            phone_number: r.get(4)?,
            identifier: r.get(5)?,
            key_user_id: r.get(6)?,
            key_contact_id: r.get(7)?,
        })
    })
    .optional()
}

pub fn put_contact(conn: &Connection, c: &CachedContact) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO planner_contacts
             (id, account_id, name, email, phone_number, identifier, key_user_id, key_contact_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        c.id,
        c.account_id,
        c.name,
        c.email,
        c.phone_number,
        c.identifier,
        c.key_user_id,
        c.key_contact_id
    ])?;
    Ok(())
}

/// A conversation as last seen, with what the planner decided for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachedConversation {
    pub id: i64,
    pub account_id: i64,
    pub contact_id: Option<i64>,
    pub display_id: i64,
    pub status: i32,
    pub priority: Option<i32>,
    pub mail_subject: Option<String>,
    pub created_at: String,
    pub ticket_planned: bool,
    pub synced_through: Option<i64>,
    pub key_ticket_id: Option<i64>,
    pub key_last_synced_message_id: Option<i64>,
}

pub fn conversation(conn: &Connection, id: i64) -> rusqlite::Result<Option<CachedConversation>> {
    conn.prepare_cached(
        "SELECT id, account_id, contact_id, display_id, status, priority, mail_subject, created_at,
                ticket_planned, synced_through, key_ticket_id, key_last_synced_message_id
         FROM planner_conversations WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(CachedConversation {
            id: r.get(0)?,
            account_id: r.get(1)?,
            contact_id: r.get(2)?,
            display_id: r.get(3)?,
            status: r.get(4)?,
            priority: r.get(5)?,
            mail_subject: r.get(6)?,
            created_at: r.get(7)?,
            ticket_planned: r.get(8)?,
            synced_through: r.get(9)?,
            key_ticket_id: r.get(10)?,
            key_last_synced_message_id: r.get(11)?,
        })
    })
    .optional()
}

pub fn put_conversation(conn: &Connection, c: &CachedConversation) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO planner_conversations
             (id, account_id, contact_id, display_id, status, priority, mail_subject, created_at,
              ticket_planned, synced_through, key_ticket_id, key_last_synced_message_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )?
    .execute(params![
        c.id,
        c.account_id,
        c.contact_id,
        c.display_id,
        c.status,
        c.priority,
        c.mail_subject,
        c.created_at,
        c.ticket_planned,
        c.synced_through,
        c.key_ticket_id,
        c.key_last_synced_message_id
    ])?;
    Ok(())
}

/// Brings the tables of a state file written by an older version up to
/// date (in [`crate::state::State::open`]'s schema transaction): adds
/// `planner_messages.created_at` and the index the pruner walks. Rows that
/// predate the column read 0 until the pruner stamps them.
pub fn upgrade(conn: &Connection) -> rusqlite::Result<()> {
    let has_created_at: bool = conn.query_row(
        "SELECT count(*) FROM pragma_table_info('planner_messages') WHERE name = 'created_at'",
        [],
        |r| r.get(0),
    )?;
    if !has_created_at {
        conn.execute_batch(
            "ALTER TABLE planner_messages ADD COLUMN created_at INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    // Tombstones (deleted messages whose snapshot was pruned) are kept and
    // left out of the index, so the pruner never walks them again.
    conn.execute_batch(&format!(
        "CREATE INDEX IF NOT EXISTS planner_messages_by_age ON planner_messages (created_at)
         WHERE {PRUNABLE_MESSAGE}"
    ))
}

/// The rows the pruner may still forget: all but the tombstones.
pub(super) const PRUNABLE_MESSAGE: &str = "(snapshot IS NOT NULL OR deleted = 0)";

/// A message as last seen; `snapshot` only when it was planned into GLPI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedMessage {
    pub id: i64,
    pub conversation_id: i64,
    pub account_id: i64,
    pub deleted: bool,
    pub snapshot: Option<MessageSnapshot>,
    pub job_id: Option<i64>,
    /// Chatwoot's `created_at` in unix seconds ([`created_at_seconds`]).
    pub created_at: i64,
}

/// A PostgreSQL `timestamp` as Chatwoot stores it (UTC,
/// `YYYY-MM-DD HH:MM:SS[.ffffff]`) in unix seconds; now if it cannot be read,
/// so an unreadable time never makes a row look old.
pub fn created_at_seconds(created_at: &str) -> i64 {
    chrono::NaiveDateTime::parse_from_str(created_at.trim(), "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc().timestamp())
        .unwrap_or_else(|_| unix_now())
}

/// The current time in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn message(conn: &Connection, id: i64) -> rusqlite::Result<Option<CachedMessage>> {
    conn.prepare_cached(
        "SELECT id, conversation_id, account_id, deleted, snapshot, job_id, created_at
         FROM planner_messages WHERE id = ?1",
    )?
    .query_row([id], |r| {
        let snapshot: Option<String> = r.get(4)?;
        Ok(CachedMessage {
            id: r.get(0)?,
            conversation_id: r.get(1)?,
            account_id: r.get(2)?,
            deleted: r.get(3)?,
            snapshot: snapshot.and_then(|s| serde_json::from_str(&s).ok()),
            job_id: r.get(5)?,
            created_at: r.get(6)?,
        })
    })
    .optional()
}

pub fn put_message(conn: &Connection, m: &CachedMessage) -> rusqlite::Result<()> {
    let snapshot = m
        .snapshot
        .as_ref()
        .map(|s| serde_json::to_string(s).expect("a MessageSnapshot always serialises"));
    conn.prepare_cached(
        "INSERT OR REPLACE INTO planner_messages
             (id, conversation_id, account_id, deleted, snapshot, job_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        m.id,
        m.conversation_id,
        m.account_id,
        m.deleted,
        snapshot,
        m.job_id,
        m.created_at
    ])?;
    Ok(())
}

/// A message's cached attachments, in id order.
pub fn attachments_of(
    conn: &Connection,
    message_id: i64,
) -> rusqlite::Result<Vec<AttachmentSnapshot>> {
    let mut stmt = conn.prepare_cached(
        "SELECT snapshot FROM planner_attachments WHERE message_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([message_id], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for text in rows {
        if let Ok(a) = serde_json::from_str(&text?) {
            out.push(a);
        }
    }
    Ok(out)
}

/// The message an attachment belongs to, if cached.
pub fn attachment_message(conn: &Connection, id: i64) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT message_id FROM planner_attachments WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
}

pub fn put_attachment(
    conn: &Connection,
    message_id: i64,
    a: &AttachmentSnapshot,
) -> rusqlite::Result<()> {
    let text = serde_json::to_string(a).expect("an AttachmentSnapshot always serialises");
    conn.prepare_cached(
        "INSERT OR REPLACE INTO planner_attachments (id, message_id, snapshot) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![a.id, message_id, text])?;
    Ok(())
}

/// Deletes one cached row of `table`.
pub fn delete_row(conn: &Connection, table: Table, id: i64) -> rusqlite::Result<()> {
    let name = cache_table(table);
    conn.prepare_cached(&format!("DELETE FROM {name} WHERE id = ?1"))?
        .execute([id])?;
    Ok(())
}

/// Forgets every cached row of `table` (a TRUNCATE in Chatwoot).
pub fn forget_table(conn: &Connection, table: Table) -> rusqlite::Result<()> {
    conn.execute(&format!("DELETE FROM {}", cache_table(table)), [])?;
    Ok(())
}

fn cache_table(table: Table) -> &'static str {
    match table {
        Table::Accounts => "planner_accounts",
        Table::IntegrationsHooks => "planner_hooks",
        Table::Contacts => "planner_contacts",
        Table::Conversations => "planner_conversations",
        Table::Messages => "planner_messages",
        Table::Attachments => "planner_attachments",
    }
}

/// A change deliberately not synced, as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    /// `contact:12`, `message:40`.
    pub subject: String,
    pub account_id: Option<i64>,
    pub reason: String,
}

/// Records (or refreshes) why `subject` is not synced.
pub fn record_skip(
    conn: &Connection,
    subject: &str,
    account_id: i64,
    reason: &str,
) -> rusqlite::Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    conn.prepare_cached(
        "INSERT OR REPLACE INTO planner_skips (subject, account_id, reason, recorded_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![subject, account_id, reason, now])?;
    Ok(())
}

pub fn clear_skip(conn: &Connection, subject: &str) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM planner_skips WHERE subject = ?1")?
        .execute([subject])?;
    Ok(())
}

/// How many skips are recorded, and the first `limit` of them (oldest
/// first), for `status`.
pub fn skip_summary(conn: &Connection, limit: usize) -> rusqlite::Result<(u64, Vec<Skip>)> {
    let total: i64 = conn.query_row("SELECT count(*) FROM planner_skips", [], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(
        "SELECT subject, account_id, reason FROM planner_skips
         ORDER BY recorded_at, subject LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        Ok(Skip {
            subject: r.get(0)?,
            account_id: r.get(1)?,
            reason: r.get(2)?,
        })
    })?;
    Ok((total as u64, rows.collect::<Result<_, _>>()?))
}

/// Every recorded skip, oldest first.
pub fn skips(conn: &Connection) -> rusqlite::Result<Vec<Skip>> {
    let mut stmt = conn.prepare_cached(
        "SELECT subject, account_id, reason FROM planner_skips ORDER BY recorded_at, subject",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Skip {
            subject: r.get(0)?,
            account_id: r.get(1)?,
            reason: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Stores an account's sync state for `status`: `state` is `syncing`,
/// `disabled`, `problem` or `not_configured`.
pub fn put_account_state(
    conn: &Connection,
    account_id: i64,
    state: &str,
    detail: Option<&str>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO planner_account_states (account_id, state, detail) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![account_id, state, detail])?;
    Ok(())
}

/// Every account's stored state `(account_id, state, detail)`.
pub fn account_states(conn: &Connection) -> rusqlite::Result<Vec<(i64, String, Option<String>)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT account_id, state, detail FROM planner_account_states ORDER BY account_id",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    rows.collect()
}
