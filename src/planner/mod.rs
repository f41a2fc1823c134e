//! The planner: turns committed Chatwoot changes into GLPI jobs, per account
//! settings, skipping changes that do not alter what GLPI shows (invariant 4).
//!
//! - `settings`: which accounts sync, with which validated settings;
//! - `accounts`: the live settings book (hook rows and flags from the stream);
//! - `cache`: the last known Chatwoot rows (resolves unchanged TOAST and
//!   DELETEs that carry only an id);
//! - `plan`: the rules, change → jobs;
//! - `outcome`: why a change made no job (for the metrics);
//! - `prune`: forgets cached messages older than `message_cache_days`, in
//!   the drain loop's idle time;
//! - `resync`: the jobs of the operator's `resync` command, from the same
//!   cache and rules;
//! - this module: the drain loop. Each batch is read from the change log in
//!   seq order and applied in ONE SQLite transaction together with the jobs
//!   it plans and the deletion of the consumed changes, so a crash re-applies
//!   nothing twice and loses nothing (invariant 2).

pub mod accounts;
pub mod cache;
pub mod outcome;
pub mod plan;
pub mod prune;
pub mod resync;
pub mod settings;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::chatwoot::{Change, Row, RowOp};
use crate::observability::Metrics;
use crate::state::{changes, replication, State};

pub use accounts::SettingsBook;
pub use plan::{PlanError, PlanStats, CONTACT_NOT_IDENTIFIABLE};
pub use settings::ConfiguredAccounts;

#[cfg(test)]
mod plan_backfill_tests;
#[cfg(test)]
mod plan_message_tests;
#[cfg(test)]
mod plan_prune_tests;
#[cfg(test)]
mod plan_requester_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod resync_tests;
#[cfg(test)]
mod test_support;

/// Changes planned per SQLite transaction: large enough that the commit
/// (an fsync) is amortised over many changes.
pub const DEFAULT_BATCH_SIZE: usize = 5_000;

/// Time between pruning passes once a pass found nothing more to do.
const PRUNE_INTERVAL: Duration = Duration::from_secs(300);

/// How far a batch may grow to keep one source transaction whole (so an
/// attachment lands in its message's job rather than a later update).
const MAX_TRANSACTION_TAIL: usize = 10_000;

/// Plans changes from the change log into the outbox.
pub struct Planner {
    state: State,
    book: SettingsBook,
    batch_size: usize,
    last_seq: i64,
    /// The backfilled attachments were cached (see
    /// [`plan::preload_backfilled_attachments`]); redone after a restart,
    /// which is harmless.
    attachments_preloaded: bool,
    /// Where planned changes and jobs are counted (`None`: nowhere).
    metrics: Option<Arc<Metrics>>,
    /// How long a message's cached snapshot is kept (`None`: forever).
    message_cache: Option<Duration>,
    /// When the next pruning pass may start (`None`: now).
    next_prune: Option<Instant>,
    /// What the current pruning pass did so far (logged at its end).
    pruning: prune::Pruned,
}

impl std::fmt::Debug for Planner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planner")
            .field("state", &self.state)
            .field("last_seq", &self.last_seq)
            .finish()
    }
}

impl Planner {
    /// A planner on its own connection to the state file.
    pub fn new(state: State, configured: ConfiguredAccounts) -> Result<Planner, PlanError> {
        let book = SettingsBook::load(state.conn(), configured)?;
        Ok(Planner {
            state,
            book,
            batch_size: DEFAULT_BATCH_SIZE,
            last_seq: 0,
            attachments_preloaded: false,
            metrics: None,
            message_cache: Some(Duration::from_secs(
                prune::DEFAULT_MESSAGE_CACHE_DAYS * 24 * 3600,
            )),
            next_prune: None,
            pruning: prune::Pruned::default(),
        })
    }

    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Counts planned changes, skips and enqueued jobs in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// How long cached message snapshots are kept (`None`: forever; the
    /// `message_cache_days` setting).
    pub fn with_message_cache(mut self, retention: Option<Duration>) -> Self {
        self.message_cache = retention;
        self
    }

    /// Whether a pruning step would do something now.
    pub fn prune_due(&self) -> bool {
        self.message_cache.is_some() && self.next_prune.is_none_or(|at| Instant::now() >= at)
    }

    /// One pruning step, if due: one batch of old cached messages forgotten
    /// (see [`prune`]), or free pages released. Returns whether more work
    /// waits (call again once the change log is empty again); when a pass
    /// is over, the next starts after [`PRUNE_INTERVAL`].
    pub fn prune_step(&mut self) -> Result<bool, PlanError> {
        let Some(retention) = self.message_cache.filter(|_| self.prune_due()) else {
            return Ok(false);
        };
        let result = prune::prune_batch(
            self.state.conn_mut(),
            retention,
            cache::unix_now(),
            prune::PRUNE_BATCH,
        )
        .and_then(|pruned| {
            self.pruning.add(pruned);
            Ok(pruned.more || prune::release_free_pages(self.state.conn_mut())? > 0)
        });
        if !matches!(result, Ok(true)) {
            self.next_prune = Some(Instant::now() + PRUNE_INTERVAL);
            let done = std::mem::take(&mut self.pruning);
            if done.messages + done.tombstones > 0 {
                tracing::info!(
                    messages = done.messages,
                    deleted_messages = done.tombstones,
                    attachments = done.attachments,
                    "forgot cached messages older than the message cache retention"
                );
            }
        }
        Ok(result?)
    }

    pub fn book(&self) -> &SettingsBook {
        &self.book
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Whether replication has finished the first start's backfill (the
    /// change log is hidden from the planner until then).
    pub fn backfill_complete(&self) -> Result<bool, PlanError> {
        Ok(replication::load(self.state.conn())?.backfill.is_complete())
    }

    /// Plans the next batch of changes, if any, in one transaction. Returns
    /// what was planned (`changes == 0`: nothing to do).
    pub fn drain_once(&mut self) -> Result<PlanStats, PlanError> {
        let batch = self.read_batch()?;
        let Some(last_seq) = batch.last().map(|c| c.seq) else {
            return Ok(PlanStats::default());
        };
        let result = self.apply(&batch, last_seq);
        match result {
            Ok(stats) => {
                self.last_seq = last_seq;
                Ok(stats)
            }
            Err(e) => {
                // The transaction rolled back; the in-memory book may have
                // seen changes that did not commit.
                self.book.reload(self.state.conn())?;
                Err(e)
            }
        }
    }

    fn apply(
        &mut self,
        batch: &[changes::LoggedChange],
        last_seq: i64,
    ) -> Result<PlanStats, PlanError> {
        let preload = !self.attachments_preloaded
            && batch.iter().any(|c| {
                matches!(
                    c.change.change,
                    Change::Row {
                        op: RowOp::Snapshot,
                        row: Row::Message(_)
                    }
                )
            });
        let Planner {
            state,
            book,
            last_seq: consumed,
            ..
        } = self;
        let tx = crate::state::write_transaction(state.conn_mut())?;
        if preload {
            let n = plan::preload_backfilled_attachments(&tx, *consumed)?;
            tracing::debug!(
                attachments = n,
                "backfilled attachments cached before their messages"
            );
        }
        let mut plan = plan::Batch::new(&tx, book);
        for logged in batch {
            plan.apply(logged.seq, &logged.change)?;
        }
        let stats = plan.finish()?;
        changes::delete_through(&tx, last_seq)?;
        tx.commit()?;
        self.attachments_preloaded |= preload;
        if let Some(metrics) = &self.metrics {
            count_batch(metrics, &stats);
        }
        Ok(stats)
    }

    /// Up to `batch_size` changes, extended to the end of the last source
    /// transaction (backfill rows share one LSN and are not extended).
    fn read_batch(&self) -> Result<Vec<changes::LoggedChange>, PlanError> {
        let conn = self.state.conn();
        let mut batch = changes::read_batch(conn, self.last_seq, self.batch_size)?;
        let Some(last) = batch.last() else {
            return Ok(batch);
        };
        if matches!(last.change.change, Change::Row { op, .. } if op.is_snapshot()) {
            return Ok(batch);
        }
        let lsn = last.change.commit_lsn;
        let mut after = last.seq;
        let mut added = 0;
        while added < MAX_TRANSACTION_TAIL {
            let more = changes::read_batch(conn, after, 256)?;
            let same: Vec<_> = more
                .iter()
                .take_while(|c| c.change.commit_lsn == lsn)
                .cloned()
                .collect();
            let whole = same.len() == more.len() && !more.is_empty();
            added += same.len();
            if let Some(c) = same.last() {
                after = c.seq;
            }
            batch.extend(same);
            if !whole {
                break;
            }
        }
        Ok(batch)
    }
}

/// Counts a committed batch.
fn count_batch(metrics: &Metrics, stats: &PlanStats) {
    for (table, n) in &stats.planned {
        metrics.changes_planned(table, *n as u64);
    }
    for (reason, n) in &stats.no_job {
        metrics.changes_skipped(reason.label(), *n as u64);
    }
    for (kind, n) in &stats.jobs {
        metrics.jobs_enqueued(kind, *n as u64);
    }
}

/// How the drain loop talks to the rest of the process.
#[derive(Clone, Debug)]
pub struct PlannerSignals {
    /// Replication notifies this after appending to the change log.
    pub new_changes: Arc<Notify>,
    /// Notified (`notify_one`) after a batch enqueued jobs: wakes the
    /// worker dispatcher.
    pub jobs_ready: Arc<Notify>,
    /// Cancelled: the loop stops after the current batch.
    pub cancel: CancellationToken,
    /// Poll interval when nobody notifies (e.g. waiting for the backfill).
    pub idle_poll: Duration,
}

/// The drain loop, for the `run` command to spawn: plans batches until
/// cancelled, sleeping while the change log is empty.
pub async fn run(mut planner: Planner, signals: PlannerSignals) -> anyhow::Result<()> {
    let mut announced_wait = false;
    loop {
        if signals.cancel.is_cancelled() {
            return Ok(());
        }
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = planner.drain_once();
            (planner, result)
        })
        .await?;
        planner = back;
        let pause = match result {
            Ok(stats) if stats.changes > 0 => {
                tracing::debug!(
                    changes = stats.changes,
                    jobs = ?stats.jobs,
                    patched = stats.patched,
                    skipped = stats.skipped,
                    "planned a batch"
                );
                if !stats.jobs.is_empty() || stats.patched > 0 {
                    signals.jobs_ready.notify_one();
                }
                continue;
            }
            Ok(_) => {
                if !announced_wait && !planner.backfill_complete().unwrap_or(true) {
                    tracing::info!("planner waiting for the backfill to complete");
                    announced_wait = true;
                }
                if planner.prune_due() {
                    // Idle: prune one small batch, then plan again first.
                    let (back, pruned) = tokio::task::spawn_blocking(move || {
                        let result = planner.prune_step();
                        (planner, result)
                    })
                    .await?;
                    planner = back;
                    match pruned {
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!("pruning the state file failed, retrying later: {e}")
                        }
                    }
                }
                signals.idle_poll
            }
            Err(e) => {
                tracing::error!("planning failed, retrying in 1s: {e}");
                Duration::from_secs(1)
            }
        };
        tokio::select! {
            _ = signals.new_changes.notified() => {}
            _ = tokio::time::sleep(pause) => {}
            _ = signals.cancel.cancelled() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use crate::chatwoot::RowOp::Insert;
    use std::time::Duration;

    /// Every planned change is counted once, and a change that made no job
    /// is counted under the reason it made none.
    #[test]
    fn planned_changes_are_counted_with_why_they_made_no_job() {
        use crate::chatwoot::Field;
        use crate::chatwoot::RowOp::Update;
        use crate::observability::Metrics;
        use std::sync::Arc;

        let mut h = Harness::syncing();
        let metrics = Arc::new(Metrics::new());
        let path = h.planner.state().path().to_path_buf();
        h.planner = super::Planner::new(
            crate::state::State::open(&path).unwrap(),
            super::ConfiguredAccounts::default(),
        )
        .unwrap()
        .with_metrics(metrics.clone());

        let ada = || contact_row(5, "Ada Lovelace", Some("ada@example.com"), None);
        h.commit(vec![contact(Insert, ada())]);
        // Chatwoot touching the row: nothing GLPI shows changed.
        h.commit(vec![contact(Update, ada())]);
        h.commit(vec![contact(Insert, contact_row(6, "", None, None))]);
        h.commit(vec![message(Insert, message_row(70, 99, "orphan"))]);
        let mut echoed = ada();
        echoed.additional_attributes = Field::Value(serde_json::json!({
            "external": {"glpi_user_id": 41}
        }));
        h.commit_from_bridge(vec![contact(Update, echoed)]);
        let mut elsewhere = contact_row(8, "Bob", Some("bob@example.com"), None);
        elsewhere.account_id = Field::Value(3);
        h.commit(vec![contact(Insert, elsewhere)]);
        h.commit(vec![account(4, 0)]);
        h.commit(vec![contact(
            crate::chatwoot::RowOp::SnapshotCacheOnly,
            contact_row(9, "Old", Some("old@example.com"), None),
        )]);

        let planned = |table| metrics.counter("changes_planned_total", &[table]);
        assert_eq!(planned("contacts"), 6);
        assert_eq!(planned("messages"), 1);
        assert_eq!(planned("accounts"), 1);
        let skipped = |reason| metrics.counter("changes_skipped_total", &[reason]);
        for reason in [
            "no_glpi_change",
            "contact_not_identifiable",
            "conversation_unknown",
            "own_write_back",
            "account_not_syncing",
            "settings",
            "outside_backfill",
        ] {
            assert_eq!(skipped(reason), 1, "{reason}\n{}", metrics.render());
        }
        let enqueued = |kind| metrics.counter("jobs_enqueued_total", &[kind]);
        assert_eq!(enqueued("sync_contact"), 1);
        assert_eq!(enqueued("write_back_contact"), 1);
    }

    /// A worker committing while the planner plans: the planner waits for
    /// the write lock instead of failing with "database is locked".
    #[test]
    fn planning_waits_for_another_writer_instead_of_failing() {
        let mut h = Harness::syncing();
        h.append(
            false,
            vec![contact(
                Insert,
                contact_row(5, "Test User", Some("test@example.com"), None),
            )],
        );
        let path = h.planner.state().path().to_path_buf();
        let holder = crate::state::hold_write_lock(&path, Duration::from_millis(300));
        let stats = h
            .planner
            .drain_once()
            .expect("planning waits for the other writer");
        holder.join().unwrap();
        assert_eq!(stats.changes, 1);
        assert_eq!(h.job_keys().len(), 2, "{:?}", h.job_keys());
    }
}
