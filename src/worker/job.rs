//! What every job execution shares: its context (GLPI client, account
//! settings, state file, Chatwoot database), its outcome classes, and the
//! dispatch from [`JobKind`] to the per-family files.

use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::commit::Committer;
use super::contact::ContactLocks;
use super::senders::SenderNames;
use crate::glpi::{GlpiClient, GlpiError};
use crate::outbox::{self, Job, JobKind, OutboxError};
use crate::state::mappings::GlpiPersonType;
use crate::state::State;
use crate::writeback::{ChatwootDb, WriteBackError};

/// An account's settings as the jobs use them (parsed and validated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSettings {
    /// User mode (GLPI Users) or contact mode (GLPI Contacts).
    pub person_type: GlpiPersonType,
    pub entity_id: i64,
    /// 1 Incident, 2 Request.
    pub ticket_type: i64,
    pub category_id: Option<i64>,
    /// Author of followups not written by a synced GLPI user.
    pub default_user_id: Option<i64>,
}

/// Everything a job execution needs.
pub struct JobContext {
    pub glpi: GlpiClient,
    pub settings: JobSettings,
    pub state: Arc<Mutex<State>>,
    pub chatwoot: ChatwootDb,
    pub senders: Arc<SenderNames>,
    pub contact_locks: Arc<ContactLocks>,
    /// Group commit of job outcomes.
    pub committer: Committer,
    /// `CHATWOOT_FRONTEND_URL`, for conversation links.
    pub frontend_url: Option<String>,
}

/// Why a job did not complete.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("{0}")]
    Glpi(#[from] GlpiError),
    #[error("{0}")]
    Chatwoot(#[from] WriteBackError),
    #[error("{0}")]
    Outbox(#[from] OutboxError),
    #[error("state file error: {0}")]
    State(#[from] rusqlite::Error),
    /// The state file could not commit a job's outcome (retried).
    #[error("state file commit failed: {0}")]
    Commit(String),
    /// Bad input or a missing prerequisite: kept with this reason until the
    /// operator retries it (invariant 6).
    #[error("{0}")]
    Park(String),
}

impl JobError {
    /// Parked (retrying the same input fails the same way) rather than
    /// retried later.
    pub fn is_permanent(&self) -> bool {
        match self {
            JobError::Glpi(e) => e.is_permanent(),
            JobError::Park(_) => true,
            JobError::Chatwoot(_)
            | JobError::Outbox(_)
            | JobError::State(_)
            | JobError::Commit(_) => false,
        }
    }

    /// The wait GLPI asked for (429 `Retry-After`), if any.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            JobError::Glpi(e) => e.retry_after(),
            _ => None,
        }
    }
}

impl JobContext {
    /// Runs `f` on the state file (short, blocking SQLite work).
    pub fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut state)
    }

    /// Marks `job` done, running `record` in the same SQLite transaction
    /// (invariant 2); returns once that transaction is durable.
    pub async fn complete(
        &self,
        job: &Job,
        record: impl FnOnce(&Connection) -> Result<(), JobError> + Send + 'static,
    ) -> Result<(), JobError> {
        self.committer.complete(job.id, Box::new(record)).await
    }
}

/// Enqueues the write-back of a contact's GLPI id (in the contact's queue).
pub fn enqueue_contact_write_back(
    tx: &Connection,
    account_id: i64,
    contact_id: i64,
) -> Result<(), JobError> {
    outbox::enqueue_contact_write_back(tx, account_id, contact_id)?;
    Ok(())
}

/// Enqueues the write-back of a conversation's ticket id and progress.
pub fn enqueue_conversation_write_back(
    tx: &Connection,
    account_id: i64,
    conversation_id: i64,
) -> Result<(), JobError> {
    outbox::enqueue_conversation_write_back(tx, account_id, conversation_id)?;
    Ok(())
}

/// Jobs whose first run creates in GLPI without looking first (tickets and
/// followups: one request per message in steady state). Contact syncs always
/// search before creating, and write-backs do not touch GLPI.
fn creates_without_lookup(kind: &JobKind) -> bool {
    matches!(
        kind,
        JobKind::CreateTicket { .. }
            | JobKind::CreateFollowup { .. }
            | JobKind::UpdateFollowup { .. }
    )
}

/// Runs one job to completion (recording its result) or returns why not.
pub async fn execute(ctx: &JobContext, job: &Job) -> Result<(), JobError> {
    if creates_without_lookup(&job.kind) && !job.started_before {
        // Durable before the POST: if we are killed before recording the
        // outcome, the next run knows to look the record up (invariant 2).
        ctx.committer.mark_started(job.id).await?;
    }
    match &job.kind {
        JobKind::SyncContact { contact } => {
            super::contact::sync_contact_job(ctx, job, contact).await
        }
        JobKind::CreateTicket {
            conversation,
            contact,
            first_message,
        } => {
            super::ticket::create_ticket_job(
                ctx,
                job,
                conversation,
                contact.as_ref(),
                first_message,
            )
            .await
        }
        JobKind::UpdateTicket {
            conversation_id,
            status,
            priority,
        } => super::ticket::update_ticket_job(ctx, job, *conversation_id, *status, *priority).await,
        JobKind::ChangeRequester {
            conversation_id,
            previous_contact_id,
            contact,
        } => {
            super::requester::change_requester_job(
                ctx,
                job,
                *conversation_id,
                *previous_contact_id,
                contact.as_ref(),
            )
            .await
        }
        JobKind::CreateFollowup {
            conversation_id,
            message,
        } => super::followup::create_followup_job(ctx, job, *conversation_id, message).await,
        JobKind::UpdateFollowup {
            conversation_id,
            message,
        } => super::followup::update_followup_job(ctx, job, *conversation_id, message).await,
        JobKind::ResyncContact { contact } => {
            super::resync::resync_contact_job(ctx, job, contact).await
        }
        JobKind::ResyncTicket {
            conversation,
            contact,
            first_message,
        } => {
            super::resync::resync_ticket_job(
                ctx,
                job,
                conversation,
                contact.as_ref(),
                first_message.as_ref(),
            )
            .await
        }
        JobKind::WriteBackContact { contact_id } => {
            let link =
                ctx.with_state(|s| crate::state::mappings::contact_link(s.conn(), *contact_id))?;
            if let Some(link) = link {
                ctx.chatwoot
                    .write_contact(*contact_id, link.person_type, link.glpi_id)
                    .await?;
            }
            ctx.complete(job, |_| Ok(())).await
        }
        JobKind::WriteBackConversation { conversation_id } => {
            let link = ctx
                .with_state(|s| crate::state::mappings::ticket_link(s.conn(), *conversation_id))?;
            if let Some(link) = link {
                ctx.chatwoot
                    .write_conversation(
                        *conversation_id,
                        link.glpi_ticket_id,
                        link.last_synced_message_id,
                    )
                    .await?;
            }
            ctx.complete(job, |_| Ok(())).await
        }
    }
}
