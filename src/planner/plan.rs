//! Change → jobs: "what must GLPI see now?" for each committed change.
//!
//! Everything here runs inside the drain loop's SQLite transaction, so the
//! cache, the jobs and the consumption of the change commit together.
//! Invariant 4 is kept here: the bridge's own write-backs and changes that
//! leave GLPI's view unchanged update the cache and plan nothing.

use std::collections::{BTreeMap, HashSet};

use rusqlite::Connection;
use serde_json::Value;

use crate::chatwoot::{
    Change, CommittedChange, ContactRow, ConversationRow, Field, Row, RowOp, Table,
};
use crate::outbox::{self, keys, ContactSnapshot, ConversationSnapshot, JobKind, OutboxError};
use crate::state::mappings;
use crate::worker::person::identifiable;

use super::accounts::SettingsBook;
use super::cache::{self, CachedContact, CachedConversation};
use super::outcome::{self, SkipReason};
use super::settings::AccountSettings;

mod messages;
mod requester;

pub use messages::preload_backfilled_attachments;
pub(super) use messages::{attachment_snapshot, excluded_by_rule, message_snapshot};

/// The reason shown for contacts without name, email or phone.
pub const CONTACT_NOT_IDENTIFIABLE: &str = "Contact not identifiable";

/// Errors of planning: only the state file can fail; bad data is a skip.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("planner: state file error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// What one batch planned, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanStats {
    pub changes: usize,
    /// Jobs enqueued, by [`JobKind::name`].
    pub jobs: BTreeMap<&'static str, usize>,
    /// Jobs not yet started that were updated instead of adding a job.
    pub patched: usize,
    /// Changes recorded as not synced with a reason (`status` lists them).
    pub skipped: usize,
    /// Changes planned, by table (the `changes_planned_total` metric).
    pub planned: BTreeMap<&'static str, usize>,
    /// Changes that made no job, by reason (`changes_skipped_total`).
    pub no_job: BTreeMap<SkipReason, usize>,
}

/// One batch being planned inside one SQLite transaction.
pub struct Batch<'a> {
    conn: &'a Connection,
    book: &'a mut SettingsBook,
    /// Jobs enqueued by this (uncommitted) transaction: no worker has them.
    enqueued: HashSet<i64>,
    /// Write-backs to enqueue at the end, after every job of the batch:
    /// queue → (account, key, kind).
    write_backs: BTreeMap<String, (i64, String, JobKind)>,
    /// Write-backs asked for so far (several may coalesce into one job).
    write_backs_asked: usize,
    /// The change being planned is a [`RowOp::SnapshotCacheOnly`] row.
    cache_only: bool,
    pub stats: PlanStats,
}

impl<'a> Batch<'a> {
    pub fn new(conn: &'a Connection, book: &'a mut SettingsBook) -> Self {
        Batch {
            conn,
            book,
            enqueued: HashSet::new(),
            write_backs: BTreeMap::new(),
            write_backs_asked: 0,
            cache_only: false,
            stats: PlanStats::default(),
        }
    }

    /// Plans one change (`seq` is its change-log sequence number), and
    /// counts it: planned, and if it made no job, why.
    pub fn apply(&mut self, seq: i64, change: &CommittedChange) -> Result<(), PlanError> {
        self.stats.changes += 1;
        *self
            .stats
            .planned
            .entry(outcome::table_label(&change.change))
            .or_default() += 1;
        let before = (self.effects(), self.stats.skipped);
        self.plan(seq, change)?;
        if (self.effects(), self.stats.skipped) == before {
            let reason = outcome::why_no_job(change, |id| self.book.syncing(id).is_some());
            *self.stats.no_job.entry(reason).or_default() += 1;
        }
        Ok(())
    }

    /// Jobs enqueued or patched and write-backs asked for so far.
    fn effects(&self) -> usize {
        self.stats.jobs.values().sum::<usize>() + self.stats.patched + self.write_backs_asked
    }

    fn plan(&mut self, seq: i64, change: &CommittedChange) -> Result<(), PlanError> {
        let from_bridge = change.from_bridge;
        match &change.change {
            Change::Truncate { tables } => {
                for &table in tables {
                    cache::forget_table(self.conn, table)?;
                }
                if tables.contains(&Table::Accounts) || tables.contains(&Table::IntegrationsHooks) {
                    self.book.reload(self.conn)?;
                }
                Ok(())
            }
            Change::Row { op, row } => {
                // A backfilled row outside the backfill policy is planned as
                // a snapshot row of an account that does not sync: cached,
                // GLPI ids in its keys adopted, nothing sent (see `syncing`).
                self.cache_only = *op == RowOp::SnapshotCacheOnly;
                let op = if self.cache_only {
                    RowOp::Snapshot
                } else {
                    *op
                };
                match row {
                    Row::Account(r) => Ok(self.book.apply_account(self.conn, op, r)?),
                    Row::IntegrationsHook(r) => Ok(self.book.apply_hook(self.conn, op, r)?),
                    Row::Contact(r) => self.contact(seq, op, r, from_bridge),
                    Row::Conversation(r) => self.conversation(seq, op, r, from_bridge),
                    Row::Message(r) => self.message(seq, op, r, from_bridge),
                    Row::Attachment(r) => self.attachment(seq, op, r, from_bridge),
                }
            }
        }
    }

    /// Enqueues the batch's write-backs (after all its jobs) and returns the
    /// statistics.
    pub fn finish(mut self) -> Result<PlanStats, PlanError> {
        for (queue, (account_id, key, kind)) in std::mem::take(&mut self.write_backs) {
            self.enqueue(account_id, &queue, &key, kind)?;
        }
        Ok(self.stats)
    }

    /// The settings of `account_id` if the change being planned may be sent
    /// to its GLPI: the account syncs and the row is not cache only.
    fn syncing(&self, account_id: i64) -> Option<&AccountSettings> {
        self.book.syncing(account_id).filter(|_| !self.cache_only)
    }

    fn enqueue(
        &mut self,
        account_id: i64,
        queue: &str,
        key: &str,
        kind: JobKind,
    ) -> Result<i64, PlanError> {
        let name = kind.name();
        let done = outbox::enqueue(self.conn, account_id, queue, key, &kind)?;
        if let outbox::Enqueued::New(id) = done {
            self.enqueued.insert(id);
            *self.stats.jobs.entry(name).or_default() += 1;
        }
        Ok(done.id())
    }

    fn write_back_contact(&mut self, account_id: i64, contact_id: i64) {
        self.write_backs_asked += 1;
        self.write_backs.insert(
            keys::contact_queue(contact_id),
            (
                account_id,
                keys::write_back_contact(contact_id),
                JobKind::WriteBackContact { contact_id },
            ),
        );
    }

    fn write_back_conversation(&mut self, account_id: i64, conversation_id: i64) {
        self.write_backs_asked += 1;
        self.write_backs.insert(
            keys::conversation_queue(conversation_id),
            (
                account_id,
                keys::write_back_conversation(conversation_id),
                JobKind::WriteBackConversation { conversation_id },
            ),
        );
    }

    fn skip(
        &mut self,
        subject: &str,
        account_id: i64,
        class: SkipReason,
        reason: &str,
    ) -> Result<(), PlanError> {
        self.stats.skipped += 1;
        *self.stats.no_job.entry(class).or_default() += 1;
        tracing::info!(subject, account_id, "not synced: {reason}");
        cache::record_skip(self.conn, subject, account_id, reason)?;
        Ok(())
    }

    fn contact(
        &mut self,
        seq: i64,
        op: RowOp,
        row: &ContactRow,
        from_bridge: bool,
    ) -> Result<(), PlanError> {
        let subject = format!("contact:{}", row.id);
        if op == RowOp::Delete {
            cache::delete_row(self.conn, Table::Contacts, row.id)?;
            cache::clear_skip(self.conn, &subject)?;
            return Ok(());
        }
        let prev = cache::contact(self.conn, row.id)?;
        let Some(account_id) = row
            .account_id
            .clone()
            .or_previous(prev.as_ref().map(|p| p.account_id))
        else {
            tracing::warn!(contact_id = row.id, "contact without account_id ignored");
            return Ok(());
        };
        let p = prev.clone().unwrap_or_default();
        let keys_in_row = match &row.additional_attributes {
            Field::Value(v) => ContactKeys::from_attributes(v),
            Field::Null => ContactKeys::default(),
            Field::Unchanged => ContactKeys {
                user_id: p.key_user_id,
                contact_id: p.key_contact_id,
                legacy_id: None,
            },
        };
        let new = CachedContact {
            id: row.id,
            account_id,
            name: text_field(&row.name, p.name),
            email: text_field(&row.email, p.email),
            phone_number: text_field(&row.phone_number, p.phone_number),
            identifier: text_field(&row.identifier, p.identifier),
            key_user_id: keys_in_row.user_id,
            key_contact_id: keys_in_row.contact_id,
        };
        cache::put_contact(self.conn, &new)?;
        if from_bridge {
            return Ok(());
        }
        let mut link = mappings::contact_link(self.conn, row.id)?;
        if link.is_none() {
            if let Some((person_type, glpi_id)) = keys_in_row.adoptable() {
                mappings::adopt_contact(self.conn, row.id, account_id, person_type, glpi_id)?;
                link = mappings::contact_link(self.conn, row.id)?;
            }
        }
        if self.syncing(account_id).is_none() {
            return Ok(());
        }
        let visible_change = match (op, &prev) {
            // Already in GLPI (adopted from Chatwoot's keys): nothing to redo.
            (RowOp::Snapshot, _) if link.is_some() => false,
            (RowOp::Snapshot | RowOp::Insert, _) | (_, None) => true,
            (_, Some(p)) => {
                p.name != new.name || p.email != new.email || p.phone_number != new.phone_number
            }
        };
        if visible_change {
            if !identifiable(
                new.name.as_deref(),
                new.email.as_deref(),
                new.phone_number.as_deref(),
            ) {
                return self.skip(
                    &subject,
                    account_id,
                    SkipReason::ContactNotIdentifiable,
                    CONTACT_NOT_IDENTIFIABLE,
                );
            }
            cache::clear_skip(self.conn, &subject)?;
            let kind = JobKind::SyncContact {
                contact: contact_snapshot(&new),
            };
            self.enqueue(
                account_id,
                &keys::contact_queue(row.id),
                &keys::sync_contact(row.id, seq),
                kind,
            )?;
            self.write_back_contact(account_id, row.id);
        } else if let (Some(link), false) = (&link, row.additional_attributes.is_unchanged()) {
            // Self-heal: Rails saved additional_attributes without our key.
            let shown = match link.person_type {
                mappings::GlpiPersonType::User => new.key_user_id,
                mappings::GlpiPersonType::Contact => new.key_contact_id,
            };
            if shown != Some(link.glpi_id) {
                self.write_back_contact(account_id, row.id);
            }
        }
        Ok(())
    }

    fn conversation(
        &mut self,
        seq: i64,
        op: RowOp,
        row: &ConversationRow,
        from_bridge: bool,
    ) -> Result<(), PlanError> {
        if op == RowOp::Delete {
            cache::delete_row(self.conn, Table::Conversations, row.id)?;
            return Ok(());
        }
        let prev = cache::conversation(self.conn, row.id)?;
        let p = prev.clone().unwrap_or_default();
        let Some(account_id) = row
            .account_id
            .clone()
            .or_previous(prev.as_ref().map(|p| p.account_id))
        else {
            tracing::warn!(
                conversation_id = row.id,
                "conversation without account_id ignored"
            );
            return Ok(());
        };
        let (mail_subject, key_ticket_id, key_last_synced) = match &row.additional_attributes {
            Field::Value(v) => (
                v.get("mail_subject")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
                json_id(v.pointer("/glpi/ticket_id")),
                json_id(v.pointer("/glpi/last_synced_message_id")),
            ),
            Field::Null => (None, None, None),
            Field::Unchanged => (
                p.mail_subject.clone(),
                p.key_ticket_id,
                p.key_last_synced_message_id,
            ),
        };
        let mut new = CachedConversation {
            id: row.id,
            account_id,
            contact_id: row.contact_id.clone().or_previous(p.contact_id),
            display_id: row
                .display_id
                .clone()
                .or_previous(Some(p.display_id))
                .unwrap_or(0),
            status: row.status.clone().or_previous(Some(p.status)).unwrap_or(0),
            priority: row.priority.clone().or_previous(p.priority),
            mail_subject,
            created_at: row
                .created_at
                .clone()
                .or_previous(Some(p.created_at.clone()))
                .unwrap_or_default(),
            ticket_planned: p.ticket_planned,
            synced_through: p.synced_through,
            key_ticket_id,
            key_last_synced_message_id: key_last_synced,
        };
        let link = if from_bridge {
            None
        } else {
            let mut link = mappings::ticket_link(self.conn, row.id)?;
            if link.is_none() && !new.ticket_planned {
                if let Some(ticket_id) = key_ticket_id {
                    mappings::adopt_ticket(
                        self.conn,
                        row.id,
                        account_id,
                        ticket_id,
                        key_last_synced,
                    )?;
                    // Without a recorded progress, the backfilled messages
                    // are taken as already in GLPI (see `already_in_glpi`).
                    new.synced_through = Some(match (op, key_last_synced) {
                        (_, Some(last)) => last,
                        (RowOp::Snapshot, None) => i64::MAX,
                        (_, None) => 0,
                    });
                    link = mappings::ticket_link(self.conn, row.id)?;
                }
            }
            new.ticket_planned |= link.is_some();
            link
        };
        cache::put_conversation(self.conn, &new)?;
        if from_bridge || self.syncing(account_id).is_none() {
            return Ok(());
        }
        if let (RowOp::Update, Some(p)) = (op, &prev) {
            if new.ticket_planned && p.contact_id != new.contact_id {
                self.requester_changed(seq, account_id, &new, p.contact_id)?;
            }
            if new.ticket_planned && (p.status != new.status || p.priority != new.priority) {
                let kind = JobKind::UpdateTicket {
                    conversation_id: row.id,
                    status: new.status,
                    priority: new.priority,
                };
                self.enqueue(
                    account_id,
                    &keys::conversation_queue(row.id),
                    &keys::update_ticket(row.id, seq),
                    kind,
                )?;
            }
        }
        if let (Some(link), false) = (&link, row.additional_attributes.is_unchanged()) {
            // Self-heal: Rails saved additional_attributes without our keys
            // (or with stale ones).
            let stale_progress = link.last_synced_message_id.is_some()
                && key_last_synced != link.last_synced_message_id;
            if key_ticket_id != Some(link.glpi_ticket_id) || stale_progress {
                self.write_back_conversation(account_id, row.id);
            }
        }
        Ok(())
    }
}

/// A text column with "" meaning unset (Chatwoot's default for `name`).
fn text_field(field: &Field<String>, previous: Option<String>) -> Option<String> {
    field
        .clone()
        .or_previous(previous)
        .filter(|s| !s.trim().is_empty())
}

/// An id stored by us or by Rails: a JSON integer, or a numeric string.
fn json_id(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|&id| id > 0)
}

/// The bridge's keys in `contacts.additional_attributes.external`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ContactKeys {
    user_id: Option<i64>,
    contact_id: Option<i64>,
    /// `external.glpi_id`, written by an earlier integration: a User id.
    legacy_id: Option<i64>,
}

impl ContactKeys {
    fn from_attributes(v: &Value) -> Self {
        ContactKeys {
            user_id: json_id(v.pointer("/external/glpi_user_id")),
            contact_id: json_id(v.pointer("/external/glpi_contact_id")),
            legacy_id: json_id(v.pointer("/external/glpi_id")),
        }
    }

    fn adoptable(&self) -> Option<(mappings::GlpiPersonType, i64)> {
        use mappings::GlpiPersonType::{Contact, User};
        self.user_id
            .map(|id| (User, id))
            .or(self.contact_id.map(|id| (Contact, id)))
            .or(self.legacy_id.map(|id| (User, id)))
    }
}

/// A conversation's contact as its ticket's requester: `None` when it has
/// no contact or one GLPI cannot identify (no name, email or phone).
pub(super) fn requester_snapshot(
    conn: &Connection,
    contact_id: Option<i64>,
) -> rusqlite::Result<Option<ContactSnapshot>> {
    let contact = match contact_id {
        Some(id) => cache::contact(conn, id)?,
        None => None,
    };
    Ok(contact
        .filter(|c| {
            identifiable(
                c.name.as_deref(),
                c.email.as_deref(),
                c.phone_number.as_deref(),
            )
        })
        .map(|c| contact_snapshot(&c)))
}

pub(super) fn contact_snapshot(c: &CachedContact) -> ContactSnapshot {
    ContactSnapshot {
        id: c.id,
        account_id: c.account_id,
        name: c.name.clone(),
        email: c.email.clone(),
        phone_number: c.phone_number.clone(),
        identifier: c.identifier.clone(),
    }
}

pub(super) fn conversation_snapshot(c: &CachedConversation) -> ConversationSnapshot {
    ConversationSnapshot {
        id: c.id,
        account_id: c.account_id,
        display_id: c.display_id,
        contact_id: c.contact_id,
        status: c.status,
        priority: c.priority,
        mail_subject: c.mail_subject.clone(),
        created_at: c.created_at.clone(),
    }
}
