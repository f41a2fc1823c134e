//! What a job asks GLPI to do, and the snapshots it carries.
//!
//! A job carries the Chatwoot state GLPI must show (a snapshot taken when the
//! change was planned), never a reference to re-read later: the change log is
//! deleted once planned, and Chatwoot may have moved on. The GLPI ids a job
//! needs (the ticket of a followup, the user of a requester) are read from the
//! mapping tables at execution time instead, because they only exist once
//! earlier jobs have run.

use serde::{Deserialize, Serialize};

/// A Chatwoot contact as GLPI must see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactSnapshot {
    pub id: i64,
    pub account_id: i64,
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub identifier: Option<String>,
}

/// A Chatwoot conversation as its GLPI ticket must show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSnapshot {
    pub id: i64,
    pub account_id: i64,
    pub display_id: i64,
    pub contact_id: Option<i64>,
    /// Chatwoot's enum: open=0, resolved=1, pending=2, snoozed=3.
    pub status: i32,
    /// Chatwoot's enum: low=0, medium=1, high=2, urgent=3; `None` = no priority.
    pub priority: Option<i32>,
    /// `additional_attributes.mail_subject` (email conversations).
    pub mail_subject: Option<String>,
    /// UTC, `YYYY-MM-DD HH:MM:SS[.ffffff]` as PostgreSQL prints it.
    pub created_at: String,
}

/// A Chatwoot message as its GLPI followup (or ticket description) must show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageSnapshot {
    pub id: i64,
    pub conversation_id: i64,
    /// incoming=0, outgoing=1, activity=2, template=3.
    pub message_type: i32,
    pub private: bool,
    /// `processed_message_content` when present, else `content` (may be empty).
    pub text: String,
    /// `Contact`, `User`, `AgentBot`, `Captain::Assistant`, or `None`.
    pub sender_type: Option<String>,
    pub sender_id: Option<i64>,
    /// UTC, `YYYY-MM-DD HH:MM:SS[.ffffff]` as PostgreSQL prints it.
    pub created_at: String,
    /// `content_attributes.deleted = true`: the followup must say so.
    pub deleted: bool,
    /// In attachment id order.
    pub attachments: Vec<AttachmentSnapshot>,
}

/// One attachment of a message (only its URL reaches GLPI).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentSnapshot {
    pub id: i64,
    pub external_url: Option<String>,
    /// Chatwoot's enum: image=0, audio=1, video=2, file=3, location=4, …
    pub file_type: i32,
    pub fallback_title: Option<String>,
}

/// What one job asks GLPI (or Chatwoot, for write-backs) to do.
// Unboxed on purpose: the shape is the planner/worker contract, and jobs are
// few at a time in memory (a batch), so the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobKind {
    /// Create-or-update the contact's GLPI User/Contact to this state.
    SyncContact { contact: ContactSnapshot },
    /// Create the conversation's ticket; `contact` (when identifiable) is
    /// synced first if it has no GLPI record yet.
    CreateTicket {
        conversation: ConversationSnapshot,
        contact: Option<ContactSnapshot>,
        first_message: MessageSnapshot,
    },
    /// Status/priority changed (Chatwoot enum values; mapped by the worker).
    UpdateTicket {
        conversation_id: i64,
        status: i32,
        priority: Option<i32>,
    },
    /// The conversation moved to another contact (a contact merge, or an
    /// agent moving it): make `contact` the ticket's requester in place of
    /// the one set before. `contact` is `None` when the new contact is not
    /// identifiable (or there is none): the old requester is only removed.
    ChangeRequester {
        conversation_id: i64,
        /// The contact the conversation had before, whose requester row is
        /// removed when the bridge has no record of the requester it set.
        previous_contact_id: Option<i64>,
        contact: Option<ContactSnapshot>,
    },
    CreateFollowup {
        conversation_id: i64,
        message: MessageSnapshot,
    },
    /// Late attachment or message deleted: re-render the followup.
    UpdateFollowup {
        conversation_id: i64,
        message: MessageSnapshot,
    },
    /// Merge the contact's GLPI id (read from the mappings at execution).
    WriteBackContact { contact_id: i64 },
    /// Merge ticket_id + last_synced_message_id (read from the mappings).
    WriteBackConversation { conversation_id: i64 },
    /// `resync contact`: check the contact's GLPI record still exists
    /// (recreating or relinking it if not) and send every field again.
    ResyncContact { contact: ContactSnapshot },
    /// `resync conversation`: check the ticket still exists (else find it by
    /// marker or create it from `first_message`), set its status and
    /// priority, and record which followups GLPI really has, so the
    /// CreateFollowup jobs queued behind this one post only what is missing.
    ResyncTicket {
        conversation: ConversationSnapshot,
        contact: Option<ContactSnapshot>,
        /// The conversation's first syncable message, for a ticket that has
        /// to be created again (`None`: no message to create it from).
        first_message: Option<MessageSnapshot>,
    },
}

impl JobKind {
    /// A short stable name, for logs, metrics and `parked list`.
    pub fn name(&self) -> &'static str {
        match self {
            JobKind::SyncContact { .. } => "sync_contact",
            JobKind::CreateTicket { .. } => "create_ticket",
            JobKind::UpdateTicket { .. } => "update_ticket",
            JobKind::ChangeRequester { .. } => "change_requester",
            JobKind::CreateFollowup { .. } => "create_followup",
            JobKind::UpdateFollowup { .. } => "update_followup",
            JobKind::WriteBackContact { .. } => "write_back_contact",
            JobKind::WriteBackConversation { .. } => "write_back_conversation",
            JobKind::ResyncContact { .. } => "resync_contact",
            JobKind::ResyncTicket { .. } => "resync_ticket",
        }
    }

    /// Write-backs coalesce (the latest value wins) instead of being ignored
    /// when their key is already queued.
    pub fn is_write_back(&self) -> bool {
        matches!(
            self,
            JobKind::WriteBackContact { .. } | JobKind::WriteBackConversation { .. }
        )
    }

    /// The message this job renders, if any (for patching a job that no
    /// worker has started yet with a late attachment or a deletion).
    pub fn message_mut(&mut self) -> Option<&mut MessageSnapshot> {
        match self {
            JobKind::CreateTicket { first_message, .. } => Some(first_message),
            JobKind::CreateFollowup { message, .. } | JobKind::UpdateFollowup { message, .. } => {
                Some(message)
            }
            _ => None,
        }
    }
}

/// A job handed to a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub key: String,
    pub queue: String,
    pub account_id: i64,
    pub kind: JobKind,
    /// Failed attempts so far (0 on the first run). A retry (> 0) must first
    /// look up a possibly-created GLPI record (invariant 2).
    pub attempts: u32,
    /// A worker started this job before ([`crate::outbox::mark_started`])
    /// without recording an outcome: the process was killed mid-job, so a
    /// create may have reached GLPI even though `attempts` is 0.
    pub started_before: bool,
}

impl Job {
    /// Whether an earlier run may have created this job's GLPI record, so
    /// it must be looked up before creating (invariant 2).
    pub fn may_have_run(&self) -> bool {
        self.attempts > 0 || self.started_before
    }
}

/// Idempotency keys and queue names, in one place so the planner, the
/// worker, `resync` and the tests agree on them.
pub mod keys {
    /// Queue of a conversation's ticket, followup and write-back jobs.
    pub fn conversation_queue(conversation_id: i64) -> String {
        format!("conversation:{conversation_id}")
    }

    /// Queue of a contact's sync and write-back jobs.
    pub fn contact_queue(contact_id: i64) -> String {
        format!("contact:{contact_id}")
    }

    pub fn sync_contact(contact_id: i64, change_seq: i64) -> String {
        format!("contact:{contact_id}@{change_seq}")
    }

    pub fn create_ticket(conversation_id: i64) -> String {
        format!("ticket:conversation:{conversation_id}")
    }

    pub fn update_ticket(conversation_id: i64, change_seq: i64) -> String {
        format!("ticket-update:conversation:{conversation_id}@{change_seq}")
    }

    pub fn change_requester(conversation_id: i64, change_seq: i64) -> String {
        format!("requester:conversation:{conversation_id}@{change_seq}")
    }

    pub fn create_followup(message_id: i64) -> String {
        format!("followup:message:{message_id}")
    }

    pub fn update_followup(message_id: i64, change_seq: i64) -> String {
        format!("followup-update:message:{message_id}@{change_seq}")
    }

    pub fn write_back_contact(contact_id: i64) -> String {
        format!("writeback:contact:{contact_id}")
    }

    pub fn write_back_conversation(conversation_id: i64) -> String {
        format!("writeback:conversation:{conversation_id}")
    }

    // A resync's keys carry no change number: asking again while one is
    // still queued adds nothing (done jobs are deleted, so a later resync
    // is queued anew).
    pub fn resync_contact(contact_id: i64) -> String {
        format!("resync:contact:{contact_id}")
    }

    pub fn resync_ticket(conversation_id: i64) -> String {
        format!("resync:ticket:conversation:{conversation_id}")
    }

    pub fn resync_requester(conversation_id: i64) -> String {
        format!("resync:requester:conversation:{conversation_id}")
    }

    pub fn resync_followup(message_id: i64) -> String {
        format!("resync:followup:message:{message_id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_as_tagged_json() {
        let kind = JobKind::UpdateTicket {
            conversation_id: 7,
            status: 2,
            priority: None,
        };
        let text = serde_json::to_string(&kind).unwrap();
        assert_eq!(
            text,
            r#"{"type":"update_ticket","conversation_id":7,"status":2,"priority":null}"#
        );
        assert_eq!(serde_json::from_str::<JobKind>(&text).unwrap(), kind);
        assert!(JobKind::WriteBackContact { contact_id: 1 }.is_write_back());
        assert!(!kind.is_write_back());
    }
}
