//! Why a planned change made no GLPI job: the reason classes behind the
//! `changes_skipped_total` metric. A small, fixed set, so an operator can
//! tell "nothing to do" (the bridge's own write-backs, Chatwoot touching
//! timestamps) from "something is off" (an account that does not sync, a
//! contact that cannot be identified).

use crate::chatwoot::{Change, CommittedChange, Field, Row, RowOp};

/// A class of changes that planned no job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// The bridge's own write-back coming back through the slot (invariant 4).
    OwnWriteBack,
    /// Nothing GLPI shows changed (Chatwoot touching timestamps, a delete,
    /// a message already in GLPI, an activity message).
    NoGlpiChange,
    /// The row's account does not sync (no enabled hook with the
    /// `crm_integration` flag, not in the bridge's configuration).
    AccountNotSyncing,
    /// Accounts, integration hooks and truncates: they change what syncs,
    /// not what GLPI shows.
    Settings,
    /// A contact with no name, email or phone (listed by `status`).
    ContactNotIdentifiable,
    /// A message of a conversation the bridge never saw (listed by `status`).
    ConversationUnknown,
    /// A backfilled row older than the `backfill` setting asks for: cached
    /// only, nothing sent.
    OutsideBackfill,
    /// A late attachment of a message older than `message_cache_days`,
    /// whose text is no longer kept (listed by `status`).
    MessageCacheExpired,
}

impl SkipReason {
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::OwnWriteBack => "own_write_back",
            SkipReason::NoGlpiChange => "no_glpi_change",
            SkipReason::AccountNotSyncing => "account_not_syncing",
            SkipReason::Settings => "settings",
            SkipReason::ContactNotIdentifiable => "contact_not_identifiable",
            SkipReason::ConversationUnknown => "conversation_unknown",
            SkipReason::OutsideBackfill => "outside_backfill",
            SkipReason::MessageCacheExpired => "message_cache_expired",
        }
    }
}

/// The `table` label of a change (`truncate` for a TRUNCATE).
pub fn table_label(change: &Change) -> &'static str {
    match change {
        Change::Row { row, .. } => row.table().name(),
        Change::Truncate { .. } => "truncate",
    }
}

/// Why `change`, which planned nothing and recorded no skip, made no job.
/// `syncing` tells whether an account syncs.
pub fn why_no_job(change: &CommittedChange, syncing: impl Fn(i64) -> bool) -> SkipReason {
    if change.from_bridge {
        return SkipReason::OwnWriteBack;
    }
    let row = match &change.change {
        Change::Truncate { .. } => return SkipReason::Settings,
        Change::Row { row, op } => match (op, row) {
            (_, Row::Account(_) | Row::IntegrationsHook(_)) => return SkipReason::Settings,
            (RowOp::SnapshotCacheOnly, _) => return SkipReason::OutsideBackfill,
            _ => row,
        },
    };
    let account_id = match row {
        Row::Account(_) | Row::IntegrationsHook(_) => return SkipReason::Settings,
        Row::Contact(r) => &r.account_id,
        Row::Conversation(r) => &r.account_id,
        Row::Message(r) => &r.account_id,
        Row::Attachment(r) => &r.account_id,
    };
    match account_id {
        Field::Value(id) if !syncing(*id) => SkipReason::AccountNotSyncing,
        _ => SkipReason::NoGlpiChange,
    }
}
