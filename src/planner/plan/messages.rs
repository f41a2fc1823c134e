//! Message and attachment rules: the first syncable message creates the
//! ticket, later ones become followups; late attachments and deletions
//! patch a job no worker has started, or re-render the followup. A message
//! whose cached row was pruned (older than `message_cache_days`, see
//! `planner::prune`) is known to be in GLPI from the mappings; its deletion
//! is rendered from the UPDATE row alone.

use serde_json::Value;

use rusqlite::Connection;

use crate::chatwoot::{AttachmentRow, Change, Field, MessageRow, Row, RowOp, Table};
use crate::outbox::{self, keys, AttachmentSnapshot, JobKind, MessageSnapshot};
use crate::state::{changes, mappings};

use super::super::cache::{self, CachedConversation, CachedMessage};
use super::super::outcome::SkipReason;
use super::{conversation_snapshot, requester_snapshot, text_field, Batch, PlanError};

/// Chatwoot's `messages.message_type` for activity messages.
const ACTIVITY_MESSAGE: i32 = 2;

impl Batch<'_> {
    pub(super) fn message(
        &mut self,
        seq: i64,
        op: RowOp,
        row: &MessageRow,
        from_bridge: bool,
    ) -> Result<(), PlanError> {
        if op == RowOp::Delete {
            // Nothing is deleted in GLPI; the followup stays.
            cache::delete_row(self.conn, Table::Messages, row.id)?;
            return Ok(());
        }
        let prev = cache::message(self.conn, row.id)?;
        let prev_snapshot = prev.as_ref().and_then(|p| p.snapshot.clone());
        let (Some(conversation_id), Some(account_id)) = (
            row.conversation_id
                .clone()
                .or_previous(prev.as_ref().map(|p| p.conversation_id)),
            row.account_id
                .clone()
                .or_previous(prev.as_ref().map(|p| p.account_id)),
        ) else {
            tracing::warn!(
                message_id = row.id,
                "message without conversation or account ignored"
            );
            return Ok(());
        };
        let snapshot = message_snapshot(self.conn, row, conversation_id, prev.as_ref())?;
        let deleted = snapshot.deleted;
        let mut cached = CachedMessage {
            id: row.id,
            conversation_id,
            account_id,
            deleted,
            snapshot: None,
            job_id: prev.as_ref().and_then(|p| p.job_id),
            created_at: cache::created_at_seconds(&snapshot.created_at),
        };
        let syncing = !from_bridge && self.syncing(account_id).is_some();
        match (op, prev_snapshot) {
            (RowOp::Insert | RowOp::Snapshot, _) if syncing => {
                return self.plan_new_message(op, cached, snapshot);
            }
            // An update of a message that GLPI shows: only a deletion
            // changes what GLPI shows.
            (RowOp::Update, Some(before)) => {
                if syncing && deleted && !before.deleted {
                    return self.rerender(seq, account_id, cached, Some(before), snapshot);
                }
                cached.snapshot = Some(MessageSnapshot {
                    attachments: before.attachments.clone(),
                    ..snapshot
                });
            }
            // Not cached: pruned, or never seen. Only a deletion of a
            // message GLPI shows changes anything; the row carries all a
            // deleted message's followup shows (see `planner::prune`).
            // Other messages are not cached again, except deleted ones
            // (a tombstone, so the deletion is not re-rendered twice).
            (RowOp::Update, None) if prev.is_none() => {
                if syncing && deleted && shown_in_glpi(self.conn, row.id, Some(conversation_id))? {
                    return self.rerender(seq, account_id, cached, None, snapshot);
                }
                if !deleted {
                    return Ok(());
                }
            }
            _ => {}
        }
        cache::put_message(self.conn, &cached)?;
        Ok(())
    }

    /// A new message of a syncing account: the conversation's ticket if it
    /// has none yet, else a followup.
    fn plan_new_message(
        &mut self,
        op: RowOp,
        mut cached: CachedMessage,
        snapshot: MessageSnapshot,
    ) -> Result<(), PlanError> {
        let account_id = cached.account_id;
        let include_activity = self
            .book
            .syncing(account_id)
            .is_some_and(|s| s.glpi.include_activity_messages);
        let conversation = cache::conversation(self.conn, cached.conversation_id)?;
        let skip_reason = match &conversation {
            _ if excluded_by_rule(&snapshot, include_activity) => Some(None),
            None => Some(Some(format!(
                "conversation {} is unknown to the bridge (its row never arrived)",
                cached.conversation_id
            ))),
            Some(c) if already_in_glpi(op, c, snapshot.id) => Some(None),
            Some(_) => None,
        };
        if let Some(reason) = skip_reason {
            if let Some(reason) = reason {
                self.skip(
                    &format!("message:{}", snapshot.id),
                    account_id,
                    SkipReason::ConversationUnknown,
                    &reason,
                )?;
            }
            cache::put_message(self.conn, &cached)?;
            return Ok(());
        }
        let mut conversation = conversation.expect("checked above");
        let queue = keys::conversation_queue(conversation.id);
        let job_id = if conversation.ticket_planned {
            let kind = JobKind::CreateFollowup {
                conversation_id: conversation.id,
                message: snapshot.clone(),
            };
            self.enqueue(
                account_id,
                &queue,
                &keys::create_followup(snapshot.id),
                kind,
            )?
        } else {
            let contact = requester_snapshot(self.conn, conversation.contact_id)?;
            let kind = JobKind::CreateTicket {
                conversation: conversation_snapshot(&conversation),
                contact,
                first_message: snapshot.clone(),
            };
            conversation.ticket_planned = true;
            cache::put_conversation(self.conn, &conversation)?;
            self.enqueue(
                account_id,
                &queue,
                &keys::create_ticket(conversation.id),
                kind,
            )?
        };
        self.write_back_conversation(account_id, conversation.id);
        cached.snapshot = Some(snapshot);
        cached.job_id = Some(job_id);
        cache::put_message(self.conn, &cached)?;
        Ok(())
    }

    /// A message GLPI shows changed (late attachment, deletion): patch its
    /// job if no worker can have started it, else plan an UpdateFollowup.
    /// `before` is `None` for a message whose cached snapshot was pruned.
    fn rerender(
        &mut self,
        seq: i64,
        account_id: i64,
        mut cached: CachedMessage,
        before: Option<MessageSnapshot>,
        after: MessageSnapshot,
    ) -> Result<(), PlanError> {
        if before.as_ref() != Some(&after) {
            let patched = match cached.job_id {
                Some(job_id) => {
                    let here = self.enqueued.contains(&job_id);
                    outbox::patch_unstarted(self.conn, job_id, here, |kind| {
                        if let Some(m) = kind.message_mut() {
                            *m = after.clone();
                        }
                    })?
                }
                None => false,
            };
            if patched {
                self.stats.patched += 1;
            } else {
                let kind = JobKind::UpdateFollowup {
                    conversation_id: after.conversation_id,
                    message: after.clone(),
                };
                let job_id = self.enqueue(
                    account_id,
                    &keys::conversation_queue(after.conversation_id),
                    &keys::update_followup(after.id, seq),
                    kind,
                )?;
                cached.job_id = Some(job_id);
            }
        }
        cached.snapshot = Some(after);
        cache::put_message(self.conn, &cached)?;
        Ok(())
    }

    pub(super) fn attachment(
        &mut self,
        seq: i64,
        op: RowOp,
        row: &AttachmentRow,
        from_bridge: bool,
    ) -> Result<(), PlanError> {
        let cached_message_id = cache::attachment_message(self.conn, row.id)?;
        let message_id = if op == RowOp::Delete {
            cache::delete_row(self.conn, Table::Attachments, row.id)?;
            cached_message_id
        } else {
            let Some(message_id) = row.message_id.clone().or_previous(cached_message_id) else {
                tracing::warn!(attachment_id = row.id, "attachment without message ignored");
                return Ok(());
            };
            if cached_message_id.is_none()
                && self.late_attachment_of_pruned_message(op, row, message_id, from_bridge)?
            {
                return Ok(());
            }
            let before = cache::attachments_of(self.conn, message_id)?
                .into_iter()
                .find(|a| a.id == row.id);
            let snapshot = attachment_snapshot(row, before.as_ref());
            cache::put_attachment(self.conn, message_id, &snapshot)?;
            Some(message_id)
        };
        let Some(message_id) = message_id else {
            return Ok(());
        };
        let Some(message) = cache::message(self.conn, message_id)? else {
            return Ok(());
        };
        let Some(before) = message.snapshot.clone() else {
            return Ok(()); // not in GLPI: nothing to re-render
        };
        let after = MessageSnapshot {
            attachments: cache::attachments_of(self.conn, message.id)?,
            ..before.clone()
        };
        if from_bridge || self.syncing(message.account_id).is_none() {
            let mut message = message;
            message.snapshot = Some(after);
            cache::put_message(self.conn, &message)?;
            return Ok(());
        }
        self.rerender(seq, message.account_id, message, Some(before), after)
    }

    /// A new attachment of a message GLPI shows whose cached row was pruned:
    /// its followup cannot be re-rendered (the text is no longer kept), so
    /// the attachment is recorded as a skip for `status` and not cached.
    /// Returns whether that was the case.
    fn late_attachment_of_pruned_message(
        &mut self,
        op: RowOp,
        row: &AttachmentRow,
        message_id: i64,
        from_bridge: bool,
    ) -> Result<bool, PlanError> {
        let Some(&account_id) = row.account_id.value() else {
            return Ok(false);
        };
        if op != RowOp::Insert
            || from_bridge
            || self.syncing(account_id).is_none()
            || cache::message(self.conn, message_id)?.is_some()
            || !shown_in_glpi(self.conn, message_id, None)?
        {
            return Ok(false);
        }
        self.skip(
            &format!("attachment:{}", row.id),
            account_id,
            SkipReason::MessageCacheExpired,
            &format!(
                "late attachment of message {message_id}, which is older than message_cache_days: \
                 the bridge no longer keeps its text, so its GLPI followup was not re-rendered \
                 with the file; add it to the ticket by hand if needed"
            ),
        )?;
        Ok(true)
    }
}

/// Whether GLPI shows the message, from the mappings (kept when the cache
/// row is pruned): it has a followup, or it is its ticket's description
/// (checked when the conversation is known).
fn shown_in_glpi(
    conn: &Connection,
    message_id: i64,
    conversation_id: Option<i64>,
) -> rusqlite::Result<bool> {
    if mappings::followup_link(conn, message_id)?.is_some() {
        return Ok(true);
    }
    Ok(match conversation_id {
        Some(id) => {
            mappings::ticket_link(conn, id)?.is_some_and(|t| t.first_message_id == Some(message_id))
        }
        None => false,
    })
}

/// A message as GLPI must show it, with its cached attachments; columns
/// the row leaves unchanged (TOAST) keep the values known before.
pub(in crate::planner) fn message_snapshot(
    conn: &Connection,
    row: &MessageRow,
    conversation_id: i64,
    prev: Option<&CachedMessage>,
) -> rusqlite::Result<MessageSnapshot> {
    let prev_snapshot = prev.and_then(|p| p.snapshot.as_ref());
    let deleted = match &row.content_attributes {
        Field::Value(v) => {
            matches!(v.get("deleted"), Some(Value::Bool(true)))
                || v.get("deleted").and_then(Value::as_str) == Some("true")
        }
        Field::Null => false,
        Field::Unchanged => prev.is_some_and(|p| p.deleted),
    };
    Ok(MessageSnapshot {
        id: row.id,
        conversation_id,
        message_type: row
            .message_type
            .clone()
            .or_previous(prev_snapshot.map(|s| s.message_type))
            .unwrap_or(0),
        private: row
            .private
            .clone()
            .or_previous(prev_snapshot.map(|s| s.private))
            .unwrap_or(false),
        text: message_text(row, prev_snapshot.map(|s| s.text.as_str())),
        sender_type: row
            .sender_type
            .clone()
            .or_previous(prev_snapshot.and_then(|s| s.sender_type.clone())),
        sender_id: row
            .sender_id
            .clone()
            .or_previous(prev_snapshot.and_then(|s| s.sender_id)),
        created_at: row
            .created_at
            .clone()
            .or_previous(prev_snapshot.map(|s| s.created_at.clone()))
            .unwrap_or_default(),
        deleted,
        attachments: cache::attachments_of(conn, row.id)?,
    })
}

/// Whether a new message stays out of GLPI by rule: activity messages
/// (unless the account includes them) and messages already deleted.
pub(in crate::planner) fn excluded_by_rule(
    snapshot: &MessageSnapshot,
    include_activity: bool,
) -> bool {
    (snapshot.message_type == ACTIVITY_MESSAGE && !include_activity) || snapshot.deleted
}

/// Messages already in GLPI when the ticket was adopted from Chatwoot's keys.
/// `synced_through == i64::MAX` (adopted in the backfill without progress)
/// covers the backfilled messages only, never live ones.
fn already_in_glpi(op: RowOp, conversation: &CachedConversation, message_id: i64) -> bool {
    match conversation.synced_through {
        Some(i64::MAX) => op == RowOp::Snapshot,
        Some(through) => message_id <= through,
        None => false,
    }
}

/// `processed_message_content` when present, else `content`; an unchanged
/// (TOASTed) column keeps the text known before.
fn message_text(row: &MessageRow, previous: Option<&str>) -> String {
    let non_empty = |f: &Field<String>| f.value().filter(|s| !s.trim().is_empty()).cloned();
    if let Some(text) = non_empty(&row.processed_message_content) {
        return text;
    }
    if row.processed_message_content.is_unchanged() || row.content.is_unchanged() {
        if let Some(previous) = previous {
            return previous.to_owned();
        }
    }
    row.content.value().cloned().unwrap_or_default()
}

/// An attachment as GLPI shows it; unchanged columns keep `before`'s values.
pub(in crate::planner) fn attachment_snapshot(
    row: &AttachmentRow,
    before: Option<&AttachmentSnapshot>,
) -> AttachmentSnapshot {
    AttachmentSnapshot {
        id: row.id,
        external_url: text_field(
            &row.external_url,
            before.and_then(|a| a.external_url.clone()),
        ),
        file_type: row
            .file_type
            .clone()
            .or_previous(before.map(|a| a.file_type))
            .unwrap_or(0),
        fallback_title: text_field(
            &row.fallback_title,
            before.and_then(|a| a.fallback_title.clone()),
        ),
    }
}

/// The backfill is one snapshot (one transaction), but replication writes it
/// table by table, attachments after every message. So that a backfilled
/// message's job lists its attachments from the start (instead of a later
/// followup update), the backfilled attachments still in the change log are
/// cached before the first backfilled message is planned. Returns how many.
pub fn preload_backfilled_attachments(
    conn: &Connection,
    after_seq: i64,
) -> Result<usize, PlanError> {
    let mut after = after_seq;
    let mut loaded = 0;
    loop {
        let batch = changes::read_batch(conn, after, 5_000)?;
        let Some(last) = batch.last() else {
            return Ok(loaded);
        };
        after = last.seq;
        for logged in &batch {
            match &logged.change.change {
                Change::Row {
                    op,
                    row: Row::Attachment(a),
                } if op.is_snapshot() => {
                    if let Some(&message_id) = a.message_id.value() {
                        cache::put_attachment(conn, message_id, &attachment_snapshot(a, None))?;
                        loaded += 1;
                    }
                }
                Change::Row { op, .. } if op.is_snapshot() => {}
                // Snapshot rows all come first: the backfill ends here.
                _ => return Ok(loaded),
            }
        }
    }
}
