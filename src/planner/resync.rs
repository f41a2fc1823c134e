//! `resync`: the jobs that make GLPI show one contact or conversation as
//! Chatwoot has it now, checking GLPI itself instead of trusting the
//! mappings (a record deleted in GLPI, a job the operator dropped, a ticket
//! edited by hand).
//!
//! Planned by the operator's command, in one transaction on the state file
//! of a running (or stopped) bridge whose workers then run the jobs. The
//! snapshots come from the planner's own cache and rules, so a resynced
//! record looks exactly like a synced one. Invariant 2: the queued jobs look
//! GLPI up before creating anything, so a resync run twice (or cut by a
//! crash) creates nothing twice; asking again while one is queued adds
//! nothing.

use rusqlite::Connection;

use crate::chatwoot::{AttachmentRow, MessageRow};
use crate::outbox::{self, keys, Enqueued, JobKind, MessageSnapshot};
use crate::worker::person::identifiable;

use super::accounts::SettingsBook;
use super::cache::{self, CachedContact, CachedConversation, CachedMessage};
use super::plan::{
    attachment_snapshot, contact_snapshot, conversation_snapshot, excluded_by_rule,
    message_snapshot, requester_snapshot,
};
use super::settings::AccountState;

/// Why a resync was not planned; each says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum ResyncError {
    #[error(
        "{0} is unknown to the bridge: check the id (Chatwoot's database id, not the number \
         shown in the conversation list), or wait until the backfill has completed"
    )]
    Unknown(String),
    #[error("{subject} is in account {account_id}, which does not sync to GLPI now: {why}")]
    AccountNotSyncing {
        subject: String,
        account_id: i64,
        why: String,
    },
    #[error(
        "contact {0} cannot be synced: it has no name, email or phone number; add one in \
         Chatwoot (the change syncs by itself)"
    )]
    NotIdentifiable(i64),
    #[error(
        "{subject} waits behind parked job #{job_id} ({reason}); a resync would wait behind it \
         too: fix the cause and `parked retry {job_id}`, or `parked drop {job_id}`, then resync"
    )]
    Parked {
        subject: String,
        job_id: i64,
        reason: String,
    },
    #[error(
        "conversation {0} has no message GLPI would show (activity or deleted messages only), \
         so it has no ticket yet; its first such message creates one"
    )]
    NoMessages(i64),
    #[error(transparent)]
    Outbox(#[from] outbox::OutboxError),
    #[error("resync: state file error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// One job a resync queued (or found already queued).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedJob {
    pub id: i64,
    pub kind: &'static str,
    /// An identical resync job was still waiting: nothing was added.
    pub already_queued: bool,
    /// The message a followup job posts, if any.
    pub message_id: Option<i64>,
}

/// What a resync planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResyncPlanned {
    pub account_id: i64,
    pub jobs: Vec<QueuedJob>,
}

/// A conversation's messages and their attachments as Chatwoot has them now
/// (read by the command: the cache holds only what was planned into GLPI).
#[derive(Clone, Debug, Default)]
pub struct CurrentMessages {
    pub messages: Vec<MessageRow>,
    pub attachments: Vec<AttachmentRow>,
}

/// Plans `resync contact ID`.
pub fn contact(
    conn: &Connection,
    book: &SettingsBook,
    contact_id: i64,
) -> Result<ResyncPlanned, ResyncError> {
    let subject = format!("contact {contact_id}");
    let contact: CachedContact =
        cache::contact(conn, contact_id)?.ok_or_else(|| ResyncError::Unknown(subject.clone()))?;
    let account_id = contact.account_id;
    ensure_syncing(book, &subject, account_id)?;
    let queue = keys::contact_queue(contact_id);
    ensure_not_parked(conn, &subject, &queue)?;
    if !identifiable(
        contact.name.as_deref(),
        contact.email.as_deref(),
        contact.phone_number.as_deref(),
    ) {
        return Err(ResyncError::NotIdentifiable(contact_id));
    }
    let mut planned = ResyncPlanned {
        account_id,
        jobs: Vec::new(),
    };
    let kind = JobKind::ResyncContact {
        contact: contact_snapshot(&contact),
    };
    let done = outbox::enqueue(
        conn,
        account_id,
        &queue,
        &keys::resync_contact(contact_id),
        &kind,
    )?;
    planned.push(done, &kind, None);
    let done = outbox::enqueue_contact_write_back(conn, account_id, contact_id)?;
    planned.push(done, &JobKind::WriteBackContact { contact_id }, None::<i64>);
    cache::clear_skip(conn, &format!("contact:{contact_id}"))?;
    Ok(planned)
}

/// Plans `resync conversation ID`: a ResyncTicket job, then a CreateFollowup
/// job per message GLPI should show (each skips a followup GLPI has), then
/// the write-back.
pub fn conversation(
    conn: &Connection,
    book: &SettingsBook,
    conversation_id: i64,
    current: &CurrentMessages,
) -> Result<ResyncPlanned, ResyncError> {
    let subject = format!("conversation {conversation_id}");
    let mut conversation: CachedConversation = cache::conversation(conn, conversation_id)?
        .ok_or_else(|| ResyncError::Unknown(subject.clone()))?;
    let account_id = conversation.account_id;
    let settings = ensure_syncing(book, &subject, account_id)?;
    let include_activity = settings.glpi.include_activity_messages;
    let queue = keys::conversation_queue(conversation_id);
    ensure_not_parked(conn, &subject, &queue)?;

    for attachment in &current.attachments {
        if let Some(&message_id) = attachment.message_id.value() {
            let before = cache::attachments_of(conn, message_id)?
                .into_iter()
                .find(|a| a.id == attachment.id);
            cache::put_attachment(
                conn,
                message_id,
                &attachment_snapshot(attachment, before.as_ref()),
            )?;
        }
    }
    let mut shown: Vec<(CachedMessage, MessageSnapshot)> = Vec::new();
    let mut rows: Vec<&MessageRow> = current.messages.iter().collect();
    rows.sort_by_key(|m| m.id);
    for row in rows {
        let prev = cache::message(conn, row.id)?;
        let planned_before = prev.as_ref().is_some_and(|p| p.job_id.is_some());
        let snapshot = message_snapshot(conn, row, conversation_id, prev.as_ref())?;
        if excluded_by_rule(&snapshot, include_activity)
            || (!planned_before && posted_by_earlier_integration(&conversation, row.id))
        {
            continue;
        }
        let cached = CachedMessage {
            id: row.id,
            conversation_id,
            account_id,
            deleted: snapshot.deleted,
            created_at: cache::created_at_seconds(&snapshot.created_at),
            snapshot: Some(snapshot.clone()),
            job_id: prev.and_then(|p| p.job_id),
        };
        shown.push((cached, snapshot));
    }
    let link = crate::state::mappings::ticket_link(conn, conversation_id)?;
    // The message the ticket's description holds (no followup for it), and
    // the one to create the ticket from should GLPI have lost it.
    let description_id = match &link {
        Some(link) => link.first_message_id,
        None => shown.first().map(|(m, _)| m.id),
    };
    let recreate_from = description_id
        .and_then(|id| shown.iter().find(|(m, _)| m.id == id))
        .or(shown.first())
        .map(|(_, s)| s.clone());
    if link.is_none() && recreate_from.is_none() {
        return Err(ResyncError::NoMessages(conversation_id));
    }

    let mut planned = ResyncPlanned {
        account_id,
        jobs: Vec::new(),
    };
    let contact = requester_snapshot(conn, conversation.contact_id)?;
    let kind = JobKind::ResyncTicket {
        conversation: conversation_snapshot(&conversation),
        contact: contact.clone(),
        first_message: recreate_from,
    };
    let ticket_job = outbox::enqueue(
        conn,
        account_id,
        &queue,
        &keys::resync_ticket(conversation_id),
        &kind,
    )?;
    planned.push(ticket_job, &kind, None);
    if contact.is_some() {
        // The requester as the conversation's contact (a requester removed
        // or changed in GLPI by hand); adds only what is missing.
        let kind = JobKind::ChangeRequester {
            conversation_id,
            previous_contact_id: None,
            contact,
        };
        let done = outbox::enqueue(
            conn,
            account_id,
            &queue,
            &keys::resync_requester(conversation_id),
            &kind,
        )?;
        planned.push(done, &kind, None);
    }
    // Later messages become followups of this ticket, not a second ticket.
    conversation.ticket_planned = true;
    cache::put_conversation(conn, &conversation)?;

    for (mut cached, snapshot) in shown {
        if Some(cached.id) == description_id {
            cached.job_id = Some(ticket_job.id());
        } else {
            let message_id = snapshot.id;
            let kind = JobKind::CreateFollowup {
                conversation_id,
                message: snapshot,
            };
            let done = outbox::enqueue(
                conn,
                account_id,
                &queue,
                &keys::resync_followup(message_id),
                &kind,
            )?;
            planned.push(done, &kind, Some(message_id));
            cached.job_id = Some(done.id());
        }
        cache::put_message(conn, &cached)?;
    }
    let done = outbox::enqueue_conversation_write_back(conn, account_id, conversation_id)?;
    planned.push(
        done,
        &JobKind::WriteBackConversation { conversation_id },
        None,
    );
    Ok(planned)
}

impl ResyncPlanned {
    fn push(&mut self, done: Enqueued, kind: &JobKind, message_id: Option<i64>) {
        self.jobs.push(QueuedJob {
            id: done.id(),
            kind: kind.name(),
            already_queued: matches!(done, Enqueued::AlreadyQueued(_)),
            message_id,
        });
    }
}

/// A message the ticket already showed when it was adopted from Chatwoot's
/// keys (written by an earlier integration, without our markers): posting
/// it again would duplicate it.
fn posted_by_earlier_integration(conversation: &CachedConversation, message_id: i64) -> bool {
    match conversation.synced_through {
        Some(through) => message_id <= through,
        None => false,
    }
}

fn ensure_syncing<'b>(
    book: &'b SettingsBook,
    subject: &str,
    account_id: i64,
) -> Result<&'b super::settings::AccountSettings, ResyncError> {
    if let Some(settings) = book.syncing(account_id) {
        return Ok(settings);
    }
    let why = match book.state(account_id) {
        Some(AccountState::Disabled { hook_id }) => format!(
            "its GLPI integration (integrations_hooks row {hook_id}) is disabled; enable it in \
             Chatwoot's settings"
        ),
        Some(AccountState::Problem(problem)) => {
            format!("its GLPI settings cannot be used: {problem}")
        }
        Some(AccountState::NotConfigured) | None => {
            "no GLPI integration is configured for it (a `glpi` hook in Chatwoot, or the \
             bridge's glpi_account settings)"
                .to_owned()
        }
        Some(AccountState::Syncing(_)) => unreachable!("syncing accounts returned above"),
    };
    Err(ResyncError::AccountNotSyncing {
        subject: subject.to_owned(),
        account_id,
        why,
    })
}

fn ensure_not_parked(conn: &Connection, subject: &str, queue: &str) -> Result<(), ResyncError> {
    match outbox::parked_head(conn, queue)? {
        Some((job_id, reason)) => Err(ResyncError::Parked {
            subject: subject.to_owned(),
            job_id,
            reason,
        }),
        None => Ok(()),
    }
}
