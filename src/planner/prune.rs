//! Forgetting what the planner no longer needs, so the state file of a
//! sidecar started once and forgotten does not grow without bound (a busy
//! Chatwoot plans a million messages a year; without this, ~850 bytes each
//! stay forever, mostly the message's JSON snapshot).
//!
//! What a message leaves in the state file, and for how long:
//! - its `planner_messages` row with the snapshot, and its
//!   `planner_attachments`: needed to re-render its followup when a late
//!   attachment (Chatwoot sends them seconds after the message) or a
//!   deletion arrives, and to patch its job while no worker has started
//!   it. Forgotten once the message is older than `message_cache_days`
//!   (by Chatwoot's `created_at`) **and** no queued job (pending or parked)
//!   is the row's `job_id`, so nothing a queued job or its patching needs
//!   is ever pruned.
//! - a deleted message keeps a tombstone (no snapshot, `deleted = 1`): a
//!   later update of it is then known to change nothing GLPI shows
//!   (invariant 4), instead of re-rendering it again. Deletions are rare.
//! - `followup_links` and `ticket_links` (what GLPI has: invariant 2) are
//!   kept: they are what a later deletion of a pruned message is checked
//!   against, and what its UpdateFollowup updates, so it never posts a
//!   second followup.
//!
//! A change that arrives for a pruned message (see `plan/messages.rs`):
//! - a deletion is re-rendered from the UPDATE row alone. Rails' delete
//!   writes `content`, `content_type` and `content_attributes`
//!   (`{"deleted": true}`, small, so never an unchanged TOAST value) and
//!   destroys the attachments; every other column a followup shows is an
//!   integer, a timestamp or a short text, which PostgreSQL always sends.
//!   Nothing of the pruned snapshot is needed, so no deletion is lost.
//! - a late attachment cannot be rendered (the text is gone): it is
//!   recorded as a skip with its reason (`status` lists it, invariant 6).
//! - any other update changes nothing GLPI shows: nothing is planned or
//!   cached.
//!
//! Pruning runs in the planner's idle time, [`PRUNE_BATCH`] rows per short
//! write transaction (`BEGIN IMMEDIATE`), so it never holds the write lock
//! long and never delays planning. SQLite reuses the freed pages; a file
//! created by this version (incremental auto-vacuum) also gives pages
//! beyond a reserve back to the file system ([`release_free_pages`]).

use std::time::Duration;

use rusqlite::{params, Connection};

use super::cache::PRUNABLE_MESSAGE;
use crate::state::write_transaction;

/// Default of the `message_cache_days` setting.
pub const DEFAULT_MESSAGE_CACHE_DAYS: u64 = 30;

/// Messages examined per write transaction: a few milliseconds of work.
pub const PRUNE_BATCH: usize = 1_000;

/// Most free pages given back to the file system per transaction.
pub const RELEASE_BATCH_PAGES: i64 = 4_096;

/// What one [`prune_batch`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Rows from an older version given their age.
    pub stamped: usize,
    /// Message rows forgotten.
    pub messages: usize,
    /// Deleted messages reduced to a tombstone.
    pub tombstones: usize,
    /// Attachment rows forgotten.
    pub attachments: usize,
    /// The batch was full: more may be waiting.
    pub more: bool,
}

impl Pruned {
    pub fn add(&mut self, other: Pruned) {
        self.stamped += other.stamped;
        self.messages += other.messages;
        self.tombstones += other.tombstones;
        self.attachments += other.attachments;
        self.more = other.more;
    }
}

/// Forgets up to `limit` messages older than `retention` at `now` (unix
/// seconds) whose job is no longer queued, with their attachments, in one
/// write transaction.
pub fn prune_batch(
    conn: &mut Connection,
    retention: Duration,
    now: i64,
    limit: usize,
) -> rusqlite::Result<Pruned> {
    let cutoff = now.saturating_sub(i64::try_from(retention.as_secs()).unwrap_or(i64::MAX));
    let tx = write_transaction(conn)?;
    // Rows written before the column existed: their age from the snapshot
    // (or from now, for rows without one), so they are kept a full
    // retention like any other.
    let stamped = tx.execute(
        &format!(
            "UPDATE planner_messages
                SET created_at = coalesce(
                    CAST(strftime('%s', json_extract(snapshot, '$.created_at')) AS INTEGER), ?1)
              WHERE id IN (SELECT id FROM planner_messages
                            WHERE {PRUNABLE_MESSAGE} AND created_at = 0 LIMIT ?2)"
        ),
        params![now, limit as i64],
    )?;
    let candidates: Vec<(i64, bool)> = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT id, deleted FROM planner_messages
              WHERE {PRUNABLE_MESSAGE} AND created_at BETWEEN 1 AND ?1
                AND NOT EXISTS (SELECT 1 FROM outbox_jobs j
                                 WHERE j.id = planner_messages.job_id)
              ORDER BY created_at LIMIT ?2"
        ))?;
        let rows = stmt.query_map(params![cutoff, limit as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut pruned = Pruned {
        stamped,
        more: candidates.len() == limit || stamped == limit,
        ..Pruned::default()
    };
    {
        let mut attachments =
            tx.prepare_cached("DELETE FROM planner_attachments WHERE message_id = ?1")?;
        let mut forget = tx.prepare_cached("DELETE FROM planner_messages WHERE id = ?1")?;
        let mut tombstone = tx.prepare_cached(
            "UPDATE planner_messages SET snapshot = NULL, job_id = NULL WHERE id = ?1",
        )?;
        for (id, deleted) in candidates {
            pruned.attachments += attachments.execute([id])?;
            if deleted {
                pruned.tombstones += tombstone.execute([id])?;
            } else {
                pruned.messages += forget.execute([id])?;
            }
        }
    }
    tx.commit()?;
    Ok(pruned)
}

/// On a file with incremental auto-vacuum, gives free pages back to the file
/// system, keeping a tenth of the file free for the rows that come next
/// (at most [`RELEASE_BATCH_PAGES`] per call, in one short write
/// transaction). Returns the pages released (0 on other files, whose free
/// pages SQLite reuses).
pub fn release_free_pages(conn: &mut Connection) -> rusqlite::Result<i64> {
    let pragma = |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0));
    const INCREMENTAL: i64 = 2;
    if pragma("auto_vacuum")? != INCREMENTAL {
        return Ok(0);
    }
    let excess = pragma("freelist_count")? - pragma("page_count")? / 10;
    if excess < 256 {
        return Ok(0);
    }
    let pages = excess.min(RELEASE_BATCH_PAGES);
    let tx = write_transaction(conn)?;
    tx.execute_batch(&format!("PRAGMA incremental_vacuum({pages})"))?;
    tx.commit()?;
    Ok(pages)
}
