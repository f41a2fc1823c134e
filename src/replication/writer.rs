//! The change-log writer: a thread of its own that commits decoded source
//! transactions to SQLite, several per SQLite transaction (group commit),
//! and reports what is durable. While one commit is being synced, the next
//! transactions queue up and go into the following commit, so batches grow
//! with load and a lone transaction waits for nothing (a batch is bounded by
//! rows, and by the time of one commit).
//!
//! Invariant 1: the stream confirms an LSN only after this thread reported
//! it durable.

use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::Arc;

use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::transaction::CommittedTransaction;
use crate::chatwoot::text::RowError;
use crate::chatwoot::RowOp;
use crate::lsn::Lsn;
use crate::observability::Metrics;
use crate::state::changes::LoggedTransaction;
use crate::state::{replication as repl_state, State, StateError};

/// What the writer has made durable so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterProgress {
    /// Source transactions committed to the change log since the writer
    /// started (in the order they were handed over).
    pub transactions: u64,
    /// Row changes committed since the writer started.
    pub rows: u64,
    /// Commit LSN of the last of them.
    pub durable_lsn: Lsn,
    /// Set when the writer failed and stopped.
    pub failed: Option<String>,
}

enum WriterMsg {
    Transaction {
        transaction: CommittedTransaction,
        rejected: Vec<(RowOp, RowError)>,
        _permit: Option<OwnedSemaphorePermit>,
    },
    /// An LSN confirmed to PostgreSQL beyond the durable one (idle slot
    /// advancement): recorded for `status`.
    Confirmed(Lsn),
}

/// The stream's side of the writer.
pub struct ChangeLogWriter {
    tx: Option<mpsc::Sender<WriterMsg>>,
    progress: watch::Receiver<WriterProgress>,
    rows_in_flight: Arc<Semaphore>,
    max_rows_in_flight: usize,
    thread: Option<std::thread::JoinHandle<()>>,
    handed_over: u64,
}

impl ChangeLogWriter {
    /// Starts the writer on its own connection to the state file.
    /// `max_rows_in_flight` bounds the decoded rows queued for it (memory);
    /// `group_rows` bounds the rows of one SQLite transaction.
    pub fn start(
        state_path: PathBuf,
        max_rows_in_flight: usize,
        group_rows: usize,
        on_durable: Option<Arc<tokio::sync::Notify>>,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<ChangeLogWriter, StateError> {
        let state = State::open(&state_path)?;
        let (tx, rx) = mpsc::channel();
        let (progress_tx, progress) = watch::channel(WriterProgress::default());
        let thread = std::thread::Builder::new()
            .name("change-log-writer".into())
            .spawn(move || {
                write_loop(
                    state,
                    rx,
                    progress_tx,
                    group_rows.max(1),
                    on_durable,
                    metrics,
                )
            })
            .map_err(|e| StateError::Corrupt(format!("cannot start the writer thread: {e}")))?;
        Ok(ChangeLogWriter {
            tx: Some(tx),
            progress,
            rows_in_flight: Arc::new(Semaphore::new(max_rows_in_flight.max(1))),
            max_rows_in_flight: max_rows_in_flight.max(1),
            thread: Some(thread),
            handed_over: 0,
        })
    }

    /// Hands a transaction over; waits while too many rows are queued.
    /// Returns its number in the hand-over order (compare with
    /// [`WriterProgress::transactions`]).
    pub async fn append(
        &mut self,
        mut transaction: CommittedTransaction,
    ) -> Result<u64, StateError> {
        let rows = transaction.changes.len().min(self.max_rows_in_flight) as u32;
        let permit = if rows == 0 {
            None
        } else {
            Some(
                Arc::clone(&self.rows_in_flight)
                    .acquire_many_owned(rows)
                    .await
                    .map_err(|_| StateError::Corrupt("writer semaphore closed".into()))?,
            )
        };
        let rejected = std::mem::take(&mut transaction.rejected);
        self.send(WriterMsg::Transaction {
            transaction,
            rejected,
            _permit: permit,
        })?;
        self.handed_over += 1;
        Ok(self.handed_over)
    }

    /// How many transactions were handed over.
    pub fn handed_over(&self) -> u64 {
        self.handed_over
    }

    /// Records an LSN confirmed beyond the durable one.
    pub fn record_confirmed(&self, lsn: Lsn) -> Result<(), StateError> {
        self.send(WriterMsg::Confirmed(lsn))
    }

    fn send(&self, msg: WriterMsg) -> Result<(), StateError> {
        let failed = || {
            StateError::Corrupt(
                self.progress
                    .borrow()
                    .failed
                    .clone()
                    .unwrap_or_else(|| "the change-log writer stopped".into()),
            )
        };
        self.tx
            .as_ref()
            .ok_or_else(failed)?
            .send(msg)
            .map_err(|_| failed())
    }

    /// What is durable; `changed()` on it wakes on every commit.
    pub fn progress(&self) -> watch::Receiver<WriterProgress> {
        self.progress.clone()
    }

    /// Commits what was handed over, stops the thread and returns the final
    /// progress.
    pub async fn finish(mut self) -> WriterProgress {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        let progress = self.progress.borrow().clone();
        progress
    }
}

impl Drop for ChangeLogWriter {
    fn drop(&mut self) {
        // Closing the channel lets the thread commit what it has and exit.
        self.tx = None;
    }
}

fn write_loop(
    mut state: State,
    rx: mpsc::Receiver<WriterMsg>,
    progress_tx: watch::Sender<WriterProgress>,
    group_rows: usize,
    on_durable: Option<Arc<tokio::sync::Notify>>,
    metrics: Option<Arc<Metrics>>,
) {
    let mut progress = WriterProgress::default();
    let mut batch: Vec<WriterMsg> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.push(first);
        let mut rows = batch_rows(&batch);
        while rows < group_rows {
            match rx.try_recv() {
                Ok(msg) => {
                    batch.push(msg);
                    rows = batch_rows(&batch);
                }
                Err(_) => break,
            }
        }
        match commit_batch(&mut state, &batch) {
            Ok(Some((count, batch_rows, lsn))) => {
                progress.transactions += count;
                progress.rows += batch_rows;
                progress.durable_lsn = lsn;
                progress_tx.send_replace(progress.clone());
                if let Some(metrics) = &metrics {
                    metrics.changes_received(batch.iter().flat_map(|msg| match msg {
                        WriterMsg::Transaction { transaction, .. } => {
                            transaction.changes.as_slice()
                        }
                        WriterMsg::Confirmed(_) => &[],
                    }));
                }
                if let Some(notify) = &on_durable {
                    notify.notify_waiters();
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!("cannot write the change log: {e}");
                progress.failed = Some(e.to_string());
                progress_tx.send_replace(progress);
                return;
            }
        }
        // Dropping the messages releases their row permits.
        batch.clear();
    }
}

fn batch_rows(batch: &[WriterMsg]) -> usize {
    batch
        .iter()
        .map(|m| match m {
            WriterMsg::Transaction { transaction, .. } => transaction.changes.len().max(1),
            WriterMsg::Confirmed(_) => 0,
        })
        .sum()
}

/// Commits the batch's transactions (and the highest confirmed LSN) in one
/// SQLite transaction; returns (transactions, rows, last commit LSN).
fn commit_batch(
    state: &mut State,
    batch: &[WriterMsg],
) -> Result<Option<(u64, u64, Lsn)>, StateError> {
    let mut logged = Vec::with_capacity(batch.len());
    let mut confirmed = Lsn::ZERO;
    let mut rows = 0u64;
    for msg in batch {
        match msg {
            WriterMsg::Transaction {
                transaction,
                rejected,
                ..
            } => {
                rows += transaction.changes.len() as u64;
                logged.push(LoggedTransaction {
                    commit_lsn: transaction.commit_lsn,
                    from_bridge: transaction.from_bridge,
                    changes: &transaction.changes,
                    rejected,
                });
            }
            WriterMsg::Confirmed(lsn) => confirmed = confirmed.max(*lsn),
        }
    }
    if confirmed > Lsn::ZERO {
        repl_state::set_confirmed_lsn(state.conn(), confirmed)?;
    }
    Ok(state
        .append_transactions(&logged)?
        .map(|lsn| (logged.len() as u64, rows, lsn)))
}
