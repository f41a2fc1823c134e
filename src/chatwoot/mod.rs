//! The Chatwoot rows the bridge reads, as typed values.
//!
//! This is the contract between the replication stage (which produces these
//! from pgoutput tuples and from the backfill snapshot) and the planner (which
//! decides what GLPI must see). Only the columns the bridge uses are kept;
//! columns are matched by name, so Chatwoot migrations that add columns do not
//! break decoding (invariant 6: bad or unexpected input never loses a change).
//!
//! A column can arrive as "unchanged TOAST" in an UPDATE: PostgreSQL did not
//! send it because it did not change and is stored out of line. That is
//! [`Field::Unchanged`], never `Null`: reading it as NULL would erase data.

pub mod rows;
pub mod text;

pub use rows::{AccountRow, AttachmentRow, ContactRow, ConversationRow, HookRow, MessageRow};

use serde::{Deserialize, Serialize};

use crate::lsn::Lsn;

/// The Chatwoot tables the bridge subscribes to, in the order the backfill
/// reads them (a contact before the conversations that name it, a
/// conversation before its messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Accounts,
    IntegrationsHooks,
    Contacts,
    Conversations,
    Messages,
    Attachments,
}

impl Table {
    pub const ALL: [Table; 6] = [
        Table::Accounts,
        Table::IntegrationsHooks,
        Table::Contacts,
        Table::Conversations,
        Table::Messages,
        Table::Attachments,
    ];

    /// The table's name in Chatwoot's `public` schema.
    pub fn name(self) -> &'static str {
        match self {
            Table::Accounts => "accounts",
            Table::IntegrationsHooks => "integrations_hooks",
            Table::Contacts => "contacts",
            Table::Conversations => "conversations",
            Table::Messages => "messages",
            Table::Attachments => "attachments",
        }
    }

    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The columns the bridge reads from this table (the backfill selects
    /// exactly these; the stream ignores any others).
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Accounts => rows::AccountRow::COLUMNS,
            Table::IntegrationsHooks => rows::HookRow::COLUMNS,
            Table::Contacts => rows::ContactRow::COLUMNS,
            Table::Conversations => rows::ConversationRow::COLUMNS,
            Table::Messages => rows::MessageRow::COLUMNS,
            Table::Attachments => rows::AttachmentRow::COLUMNS,
        }
    }
}

/// One column's value as the change stream delivers it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field<T> {
    /// SQL NULL (or the column is absent from this Chatwoot version).
    #[default]
    Null,
    /// Unchanged TOASTed value in an UPDATE: keep whatever was known before.
    Unchanged,
    Value(T),
}

impl<T> Field<T> {
    /// The value, if this change carried one.
    pub fn value(&self) -> Option<&T> {
        match self {
            Field::Value(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_unchanged(&self) -> bool {
        matches!(self, Field::Unchanged)
    }

    /// Resolves an unchanged value against what was known before.
    pub fn or_previous(self, previous: Option<T>) -> Option<T> {
        match self {
            Field::Value(v) => Some(v),
            Field::Null => None,
            Field::Unchanged => previous,
        }
    }
}

/// What happened to a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowOp {
    /// Read from the snapshot during the first start's backfill, selected by
    /// the backfill policy: planned as history (sent to GLPI).
    Snapshot,
    /// Read from the snapshot but outside the backfill policy (`none`, or
    /// older than `since:`): the planner only caches it, so that a later
    /// change to it is understood, and sends nothing of it to GLPI.
    SnapshotCacheOnly,
    Insert,
    Update,
    /// Only the primary key is known (REPLICA IDENTITY DEFAULT).
    Delete,
}

impl RowOp {
    /// Read from the first start's snapshot (planned or cache only).
    pub fn is_snapshot(self) -> bool {
        matches!(self, RowOp::Snapshot | RowOp::SnapshotCacheOnly)
    }
}

/// A typed row of one of the tables in [`Table`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "table", rename_all = "snake_case")]
pub enum Row {
    Account(AccountRow),
    IntegrationsHook(HookRow),
    Contact(ContactRow),
    Conversation(ConversationRow),
    Message(MessageRow),
    Attachment(AttachmentRow),
}

impl Row {
    pub fn table(&self) -> Table {
        match self {
            Row::Account(_) => Table::Accounts,
            Row::IntegrationsHook(_) => Table::IntegrationsHooks,
            Row::Contact(_) => Table::Contacts,
            Row::Conversation(_) => Table::Conversations,
            Row::Message(_) => Table::Messages,
            Row::Attachment(_) => Table::Attachments,
        }
    }

    /// The row's primary key.
    pub fn id(&self) -> i64 {
        match self {
            Row::Account(r) => r.id,
            Row::IntegrationsHook(r) => r.id,
            Row::Contact(r) => r.id,
            Row::Conversation(r) => r.id,
            Row::Message(r) => r.id,
            Row::Attachment(r) => r.id,
        }
    }
}

/// A decoded change, before it is known which transaction it belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Row {
        op: RowOp,
        row: Row,
    },
    /// `TRUNCATE` of one or more of our tables. Nothing is deleted in GLPI;
    /// the planner only forgets its cached rows.
    Truncate {
        tables: Vec<Table>,
    },
}

/// A change that PostgreSQL has committed, as handed from replication to the
/// planner through the durable change log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommittedChange {
    /// End LSN of the source transaction's commit (for backfill rows: the
    /// slot's consistent point). Confirming this LSN to PostgreSQL is safe
    /// once the change is in the change log.
    pub commit_lsn: Lsn,
    /// True when the source transaction is one of the bridge's own
    /// write-backs (it carried the bridge's logical message). Invariant 4:
    /// such changes must not cause GLPI calls.
    pub from_bridge: bool,
    pub change: Change,
}
