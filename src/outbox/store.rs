//! The outbox's operations on the state file.
//!
//! Scheduling stays cheap on a large outbox: each job carries `is_head`
//! (oldest job of its queue), kept up to date when a job is inserted or
//! deleted, and a partial index holds exactly the pending heads. Picking work
//! therefore reads only runnable candidates, never the whole table.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::{keys, Job, JobKind, OutboxError};

/// Milliseconds since the Unix epoch (the outbox's clock).
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn encode(kind: &JobKind) -> String {
    // JobKind holds only strings, integers, booleans and vectors of them.
    serde_json::to_string(kind).expect("a JobKind always serialises")
}

fn decode(id: i64, text: &str) -> Result<JobKind, OutboxError> {
    serde_json::from_str(text).map_err(|e| OutboxError::Corrupt {
        id,
        error: e.to_string(),
    })
}

/// What [`enqueue`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job with this id.
    New(i64),
    /// A job with the same idempotency key was already queued; nothing added.
    AlreadyQueued(i64),
}

impl Enqueued {
    pub fn id(self) -> i64 {
        match self {
            Enqueued::New(id) | Enqueued::AlreadyQueued(id) => id,
        }
    }
}

/// Adds a job at the tail of `queue`, inside the caller's transaction.
///
/// A key already queued is ignored (idempotent planning), except for
/// write-backs, which coalesce: the write-back reads its values at execution,
/// so one at the tail (after the jobs that produce those values) replaces any
/// earlier one that has not started. One that may be running (its queue's
/// head) is left alone under a retired key.
pub fn enqueue(
    conn: &Connection,
    account_id: i64,
    queue: &str,
    key: &str,
    kind: &JobKind,
) -> Result<Enqueued, OutboxError> {
    let existing: Option<(i64, bool)> = conn
        .prepare_cached("SELECT id, is_head FROM outbox_jobs WHERE key = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let Some((id, is_head)) = existing {
        if !kind.is_write_back() {
            return Ok(Enqueued::AlreadyQueued(id));
        }
        if is_head {
            conn.prepare_cached(
                "UPDATE outbox_jobs SET key = key || '#superseded-' || id WHERE id = ?1",
            )?
            .execute([id])?;
        } else {
            conn.prepare_cached("DELETE FROM outbox_jobs WHERE id = ?1")?
                .execute([id])?;
        }
    }
    let queue_busy: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM outbox_jobs WHERE queue = ?1)")?
        .query_row([queue], |r| r.get(0))?;
    conn.prepare_cached(
        "INSERT INTO outbox_jobs (key, queue, account_id, kind, is_head, enqueued_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        key,
        queue,
        account_id,
        encode(kind),
        !queue_busy,
        now_ms()
    ])?;
    Ok(Enqueued::New(conn.last_insert_rowid()))
}

/// Enqueues the write-back of a contact's GLPI id, at the tail of the
/// contact's queue (after the jobs that produce the id).
pub fn enqueue_contact_write_back(
    conn: &Connection,
    account_id: i64,
    contact_id: i64,
) -> Result<Enqueued, OutboxError> {
    enqueue(
        conn,
        account_id,
        &keys::contact_queue(contact_id),
        &keys::write_back_contact(contact_id),
        &JobKind::WriteBackContact { contact_id },
    )
}

/// Enqueues the write-back of a conversation's ticket id and progress, at
/// the tail of the conversation's queue.
pub fn enqueue_conversation_write_back(
    conn: &Connection,
    account_id: i64,
    conversation_id: i64,
) -> Result<Enqueued, OutboxError> {
    enqueue(
        conn,
        account_id,
        &keys::conversation_queue(conversation_id),
        &keys::write_back_conversation(conversation_id),
        &JobKind::WriteBackConversation { conversation_id },
    )
}

/// The id of the job queued under idempotency key `key`, if any (done jobs
/// are deleted, so a key that ran is not found).
pub fn queued_job_id(conn: &Connection, key: &str) -> Result<Option<i64>, OutboxError> {
    Ok(conn
        .prepare_cached("SELECT id FROM outbox_jobs WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?)
}

/// A job still in the outbox, as `resync --wait` follows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedJobState {
    pub parked_reason: Option<String>,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Where job `id` stands; `None` once it is done (done jobs are deleted) or
/// dropped.
pub fn queued_job_state(conn: &Connection, id: i64) -> Result<Option<QueuedJobState>, OutboxError> {
    Ok(conn
        .prepare_cached(
            "SELECT CASE WHEN state = 'parked' THEN COALESCE(parked_reason, '') END,
                    attempts, last_error
             FROM outbox_jobs WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(QueuedJobState {
                parked_reason: r.get(0)?,
                attempts: r.get(1)?,
                last_error: r.get(2)?,
            })
        })
        .optional()?)
}

/// The parked job at the head of `queue`, if any (it blocks the queue), with
/// its reason.
pub fn parked_head(conn: &Connection, queue: &str) -> Result<Option<(i64, String)>, OutboxError> {
    Ok(conn
        .prepare_cached(
            "SELECT id, COALESCE(parked_reason, '') FROM outbox_jobs
             WHERE queue = ?1 AND state = 'parked' ORDER BY id LIMIT 1",
        )?
        .query_row([queue], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Changes a job that no worker can have started: a pending job that is not
/// its queue's head, or any pending job enqueued in the caller's still
/// uncommitted transaction (`enqueued_in_this_transaction`). Returns whether
/// the job was patched; when it was not, the caller plans a new job instead.
pub fn patch_unstarted(
    conn: &Connection,
    job_id: i64,
    enqueued_in_this_transaction: bool,
    patch: impl FnOnce(&mut JobKind),
) -> Result<bool, OutboxError> {
    let row: Option<(String, bool, String)> = conn
        .prepare_cached("SELECT kind, is_head, state FROM outbox_jobs WHERE id = ?1")?
        .query_row([job_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((text, is_head, state)) = row else {
        return Ok(false);
    };
    if state != "pending" || (is_head && !enqueued_in_this_transaction) {
        return Ok(false);
    }
    let mut kind = decode(job_id, &text)?;
    patch(&mut kind);
    conn.prepare_cached("UPDATE outbox_jobs SET kind = ?2 WHERE id = ?1")?
        .execute(params![job_id, encode(&kind)])?;
    Ok(true)
}

/// Up to `limit` runnable jobs, oldest first: the head of each queue, if it is
/// pending, its `not_before` has passed, and its queue is not in
/// `exclude_queues` (the queues the caller is running right now).
pub fn next_runnable(
    conn: &Connection,
    limit: usize,
    exclude_queues: &HashSet<String>,
) -> Result<Vec<Job>, OutboxError> {
    next_runnable_at(conn, limit, exclude_queues, SystemTime::now())
}

/// [`next_runnable`] with an explicit clock.
pub fn next_runnable_at(
    conn: &Connection,
    limit: usize,
    exclude_queues: &HashSet<String>,
    now: SystemTime,
) -> Result<Vec<Job>, OutboxError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    // Excluded queues each hide at most one head, so reading that many more
    // rows always leaves `limit` candidates when they exist.
    let fetch = limit + exclude_queues.len();
    let mut stmt = conn.prepare_cached(
        "SELECT id, key, queue, account_id, kind, attempts, started FROM outbox_jobs
         WHERE is_head = 1 AND state = 'pending' AND not_before <= ?1
         ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![to_ms(now), fetch as i64], |r| {
        Ok((JobColumns::read(r)?, r.get::<_, bool>(6)?))
    })?;
    let mut jobs = Vec::with_capacity(limit);
    for row in rows {
        let (job, started_before) = row?;
        if exclude_queues.contains(&job.queue) {
            continue;
        }
        jobs.push(Job {
            id: job.id,
            kind: decode(job.id, &job.kind)?,
            key: job.key,
            queue: job.queue,
            account_id: job.account_id,
            attempts: job.attempts,
            started_before,
        });
        if jobs.len() == limit {
            break;
        }
    }
    Ok(jobs)
}

/// The columns every job query selects first, in this order:
/// `id, key, queue, account_id, kind, attempts`.
struct JobColumns {
    id: i64,
    key: String,
    queue: String,
    account_id: i64,
    kind: String,
    attempts: u32,
}

impl JobColumns {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobColumns> {
        Ok(JobColumns {
            id: r.get(0)?,
            key: r.get(1)?,
            queue: r.get(2)?,
            account_id: r.get(3)?,
            kind: r.get(4)?,
            attempts: r.get(5)?,
        })
    }
}

/// The earliest `not_before` among pending heads still waiting for it, so a
/// worker with nothing runnable knows how long it may sleep.
pub fn next_not_before(conn: &Connection) -> Result<Option<SystemTime>, OutboxError> {
    let ms: Option<i64> = conn
        .prepare_cached(
            "SELECT min(not_before) FROM outbox_jobs
             WHERE is_head = 1 AND state = 'pending' AND not_before > ?1",
        )?
        .query_row([now_ms()], |r| r.get(0))?;
    Ok(ms.map(|ms| UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)))
}

/// Deletes `job_id` and makes the next job of its queue the head.
fn remove_and_promote(conn: &Connection, job_id: i64) -> Result<(), OutboxError> {
    let queue: Option<String> = conn
        .prepare_cached("DELETE FROM outbox_jobs WHERE id = ?1 RETURNING queue")?
        .query_row([job_id], |r| r.get(0))
        .optional()?;
    let Some(queue) = queue else {
        return Err(OutboxError::NoSuchJob(job_id));
    };
    conn.prepare_cached(
        "UPDATE outbox_jobs SET is_head = 1
         WHERE id = (SELECT min(id) FROM outbox_jobs WHERE queue = ?1)",
    )?
    .execute([queue])?;
    Ok(())
}

/// Marks a job done: runs `record` (the worker writes the GLPI result into
/// the mapping tables, and may enqueue follow-up jobs) and deletes the job,
/// in ONE transaction (invariant 2). If `record` fails, nothing is changed.
pub fn complete<T, E>(
    conn: &mut Connection,
    job_id: i64,
    record: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<OutboxError>,
{
    let tx = crate::state::write_transaction(conn).map_err(OutboxError::from)?;
    let value = record(&tx)?;
    remove_and_promote(&tx, job_id)?;
    tx.commit().map_err(OutboxError::from)?;
    Ok(value)
}

/// Removes a done job inside the caller's transaction (the worker's group
/// commit records many jobs' results in one transaction, invariant 2).
pub fn finish(conn: &Connection, job_id: i64) -> Result<(), OutboxError> {
    remove_and_promote(conn, job_id)
}

/// Records durably that a worker is about to run `job_id`, before it sends
/// anything to GLPI. If the process is killed before the job's outcome is
/// recorded, the next run sees [`Job::started_before`] and looks up what the
/// killed run may have created instead of creating it again (invariant 2).
/// Costs one small SQLite write per job, and no GLPI request.
pub fn mark_started(conn: &Connection, job_id: i64) -> Result<(), OutboxError> {
    conn.prepare_cached("UPDATE outbox_jobs SET started = 1 WHERE id = ?1 AND started = 0")?
        .execute([job_id])?;
    Ok(())
}

/// A transient failure: the job stays at its queue's head and runs again
/// after `not_before`.
pub fn retry_later(
    conn: &Connection,
    job_id: i64,
    error: &str,
    not_before: SystemTime,
) -> Result<(), OutboxError> {
    let n = conn
        .prepare_cached(
            "UPDATE outbox_jobs SET attempts = attempts + 1, last_error = ?2, not_before = ?3
             WHERE id = ?1",
        )?
        .execute(params![job_id, error, to_ms(not_before)])?;
    if n == 0 {
        return Err(OutboxError::NoSuchJob(job_id));
    }
    Ok(())
}

/// A permanent failure: the job keeps its place, its attempts and `reason`,
/// and blocks only its own queue until the operator retries or drops it.
pub fn park(conn: &Connection, job_id: i64, reason: &str) -> Result<(), OutboxError> {
    let n = conn
        .prepare_cached(
            "UPDATE outbox_jobs SET state = 'parked', attempts = attempts + 1,
                 parked_reason = ?2, last_error = ?2, parked_at = ?3
             WHERE id = ?1",
        )?
        .execute(params![job_id, reason, now_ms()])?;
    if n == 0 {
        return Err(OutboxError::NoSuchJob(job_id));
    }
    Ok(())
}

/// A parked job, as `status` and `parked list` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParkedJob {
    pub id: i64,
    pub key: String,
    pub queue: String,
    pub account_id: i64,
    pub kind: JobKind,
    pub attempts: u32,
    pub reason: String,
    pub parked_at: SystemTime,
    /// Jobs of the same queue waiting behind this one.
    pub blocked_jobs: u64,
}

/// Every parked job, oldest first.
pub fn parked(conn: &Connection) -> Result<Vec<ParkedJob>, OutboxError> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, j.key, j.queue, j.account_id, j.kind, j.attempts,
                coalesce(j.parked_reason, ''), coalesce(j.parked_at, 0),
                (SELECT count(*) FROM outbox_jobs b WHERE b.queue = j.queue AND b.id > j.id)
         FROM outbox_jobs j WHERE j.state = 'parked' ORDER BY j.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            JobColumns::read(r)?,
            r.get::<_, String>(6)?,
            r.get::<_, i64>(7)?,
            r.get::<_, i64>(8)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (job, reason, parked_at, blocked) = row?;
        out.push(ParkedJob {
            kind: decode(job.id, &job.kind)?,
            id: job.id,
            key: job.key,
            queue: job.queue,
            account_id: job.account_id,
            attempts: job.attempts,
            reason,
            parked_at: UNIX_EPOCH + Duration::from_millis(parked_at.max(0) as u64),
            blocked_jobs: blocked as u64,
        });
    }
    Ok(out)
}

/// Which parked jobs an operator acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParkedSelection {
    One(i64),
    All,
}

/// Puts parked jobs back to pending, runnable now. Their attempt count is
/// kept, so the retry first looks up what an earlier attempt may have
/// created. Returns how many jobs were released.
pub fn retry_parked(conn: &Connection, which: ParkedSelection) -> Result<usize, OutboxError> {
    let sql = "UPDATE outbox_jobs SET state = 'pending', not_before = 0, parked_reason = NULL,
                   parked_at = NULL
               WHERE state = 'parked'";
    match which {
        ParkedSelection::All => Ok(conn.execute(sql, [])?),
        ParkedSelection::One(id) => {
            let n = conn.execute(&format!("{sql} AND id = ?1"), [id])?;
            if n == 0 {
                return Err(not_parked_error(conn, id)?);
            }
            Ok(n)
        }
    }
}

/// Deletes a parked job (the operator gives up on it); the jobs behind it in
/// its queue become runnable.
pub fn drop_parked(conn: &mut Connection, job_id: i64) -> Result<(), OutboxError> {
    let tx = crate::state::write_transaction(conn)?;
    let state: Option<String> = tx
        .query_row(
            "SELECT state FROM outbox_jobs WHERE id = ?1",
            [job_id],
            |r| r.get(0),
        )
        .optional()?;
    if state.as_deref() != Some("parked") {
        return Err(not_parked_error(&tx, job_id)?);
    }
    remove_and_promote(&tx, job_id)?;
    tx.commit()?;
    Ok(())
}

fn not_parked_error(conn: &Connection, job_id: i64) -> Result<OutboxError, OutboxError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM outbox_jobs WHERE id = ?1)",
        [job_id],
        |r| r.get(0),
    )?;
    Ok(if exists {
        OutboxError::NotParked(job_id)
    } else {
        OutboxError::NoSuchJob(job_id)
    })
}

/// How many jobs wait, by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxDepth {
    pub pending: u64,
    pub parked: u64,
}

impl OutboxDepth {
    pub fn total(&self) -> u64 {
        self.pending + self.parked
    }
}

pub fn depth(conn: &Connection) -> Result<OutboxDepth, OutboxError> {
    let (total, parked): (i64, i64) = conn.query_row(
        "SELECT (SELECT count(*) FROM outbox_jobs),
                (SELECT count(*) FROM outbox_jobs WHERE state = 'parked')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(OutboxDepth {
        pending: (total - parked) as u64,
        parked: parked as u64,
    })
}

/// How long the oldest pending job has waited (`None` when none is pending).
pub fn oldest_pending_age(conn: &Connection) -> Result<Option<Duration>, OutboxError> {
    let enqueued: Option<i64> = conn
        .query_row(
            "SELECT enqueued_at FROM outbox_jobs WHERE state = 'pending' ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(enqueued.map(|ms| Duration::from_millis((now_ms() - ms).max(0) as u64)))
}

/// Parked jobs per account, ordered by account id.
pub fn parked_counts(conn: &Connection) -> Result<Vec<(i64, u64)>, OutboxError> {
    let mut stmt = conn.prepare_cached(
        "SELECT account_id, count(*) FROM outbox_jobs WHERE state = 'parked'
         GROUP BY account_id ORDER BY account_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
