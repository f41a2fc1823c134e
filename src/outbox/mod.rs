//! The outbox: durable GLPI jobs with idempotency keys (invariant 2), applied
//! in commit order per conversation (invariant 3).
//!
//! The planner enqueues jobs in the same SQLite transaction that consumes the
//! changes they come from; workers take runnable jobs and, in one SQLite
//! transaction, record the GLPI result and delete the job ([`complete`]).
//! Every job belongs to a queue (`conversation:<id>`, `contact:<id>`); only
//! the oldest job of a queue may run, so a queue applies in order, and a
//! parked job (permanent failure, invariant 6) blocks only its own queue.
//!
//! "Running" is not stored: after a crash every job is pending again and
//! runs again, so every job execution must be safe to repeat.

pub mod job;
mod store;

pub use job::{
    keys, AttachmentSnapshot, ContactSnapshot, ConversationSnapshot, Job, JobKind, MessageSnapshot,
};
pub use store::{
    complete, depth, drop_parked, enqueue, enqueue_contact_write_back,
    enqueue_conversation_write_back, finish, mark_started, next_not_before, next_runnable,
    next_runnable_at, oldest_pending_age, park, parked, parked_counts, parked_head,
    patch_unstarted, queued_job_id, queued_job_state, retry_later, retry_parked, Enqueued,
    OutboxDepth, ParkedJob, ParkedSelection, QueuedJobState,
};

/// The outbox tables (applied by `state::State::open`).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outbox_jobs (
    -- AUTOINCREMENT: ids only grow, so id order is enqueue order.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    account_id INTEGER NOT NULL,
    -- serde_json of outbox::JobKind
    kind TEXT NOT NULL,
    -- done jobs are deleted, so only these two states exist
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'parked')),
    -- 1 for the oldest job of its queue: the only one that may run
    is_head INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- 1 once a worker started the job: a later run may follow a create whose
    -- outcome is unknown (the process died mid-call), so it must look first
    started INTEGER NOT NULL DEFAULT 0,
    -- unix milliseconds; a retried job waits until then
    not_before INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    parked_reason TEXT,
    enqueued_at INTEGER NOT NULL,
    parked_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_jobs_by_queue ON outbox_jobs (queue, id);
CREATE INDEX IF NOT EXISTS outbox_jobs_runnable ON outbox_jobs (id)
    WHERE is_head = 1 AND state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_jobs_parked ON outbox_jobs (account_id)
    WHERE state = 'parked';
";

/// Errors of the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox: state file error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("outbox job {id} cannot be read (written by another version?): {error}")]
    Corrupt { id: i64, error: String },
    #[error("outbox job {0} does not exist (already completed or dropped)")]
    NoSuchJob(i64),
    #[error("outbox job {0} is not parked; only parked jobs can be retried or dropped")]
    NotParked(i64),
}
