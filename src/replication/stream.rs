//! The streaming phase of one replication session: events from the slot are
//! assembled into committed transactions, handed to the change-log writer,
//! and their LSNs confirmed once durable (invariant 1).
//!
//! On an idle database, or while only tables outside the publication are
//! written, the slot still advances: a keepalive received outside a
//! transaction is confirmed once everything received before it is durable.
//! Idleness is judged by what was received (data vs. keepalive), never by
//! the absence of keepalives: the walsender answers each status update with
//! one while acknowledgements lag.
//!
//! PostgreSQL 14 sends every transaction that touched only unpublished
//! tables as an empty Begin/Commit pair (15 and later skip them): such a
//! transaction is only confirmed, never handed to the writer, so it costs no
//! state-file commit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use pgwire_replication::{ReplicationClient, ReplicationEvent};
use tokio_util::sync::CancellationToken;

use super::error::ReplicationError;
use super::transaction::TransactionAssembler;
use super::writer::{ChangeLogWriter, WriterProgress};
use crate::lsn::Lsn;

/// How a streaming session ended without error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    Cancelled,
}

/// LSNs that may be confirmed once the writer has made durable the given
/// number of handed-over transactions.
#[derive(Default)]
struct PendingConfirmations {
    /// (transactions handed over before it, LSN), in arrival order.
    queue: VecDeque<(u64, Lsn)>,
}

impl PendingConfirmations {
    fn push(&mut self, needed: u64, lsn: Lsn) {
        match self.queue.back_mut() {
            // Same prerequisite: keep only the highest LSN.
            Some(back) if back.0 == needed => back.1 = back.1.max(lsn),
            _ => self.queue.push_back((needed, lsn)),
        }
    }

    /// The highest LSN whose prerequisite is met by `progress`.
    fn ready(&mut self, progress: &WriterProgress) -> Lsn {
        let mut best = progress.durable_lsn;
        while let Some(&(needed, lsn)) = self.queue.front() {
            if needed > progress.transactions {
                break;
            }
            best = best.max(lsn);
            self.queue.pop_front();
        }
        best
    }
}

/// Confirms LSNs to PostgreSQL, never backwards.
struct Confirmer {
    confirmed: Lsn,
    last_recorded: Instant,
}

impl Confirmer {
    fn confirm(
        &mut self,
        repl: &ReplicationClient,
        writer: &ChangeLogWriter,
        lsn: Lsn,
        durable: Lsn,
    ) -> Result<(), ReplicationError> {
        if lsn <= self.confirmed {
            return Ok(());
        }
        repl.update_applied_lsn(pgwire_replication::Lsn(lsn.0));
        self.confirmed = lsn;
        // Beyond the durable LSN (idle advancement): noted in the state file
        // now and then, for `status`.
        if lsn > durable && self.last_recorded.elapsed() >= Duration::from_secs(1) {
            self.last_recorded = Instant::now();
            writer.record_confirmed(lsn)?;
        }
        Ok(())
    }
}

/// Streams from the started replication connection until cancelled or an
/// error. Transactions whose commit LSN is at or below `durable_lsn` are
/// already in the change log (the slot resends what was not confirmed) and
/// are skipped.
pub async fn stream_changes(
    repl: &mut ReplicationClient,
    writer: &mut ChangeLogWriter,
    durable_lsn: Lsn,
    target: &str,
    slot: &str,
    cancel: &CancellationToken,
) -> Result<StreamEnd, ReplicationError> {
    let mut assembler = TransactionAssembler::new();
    let mut pending = PendingConfirmations::default();
    let mut confirmer = Confirmer {
        confirmed: durable_lsn,
        last_recorded: Instant::now(),
    };
    let mut progress_rx = writer.progress();
    let mut last_log = Instant::now();
    let mut last_logged_rows = 0u64;
    loop {
        let event = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(StreamEnd::Cancelled),
            changed = progress_rx.changed() => {
                if changed.is_err() {
                    return Err(ReplicationError::Stream("the change-log writer stopped".into()));
                }
                let progress = progress_rx.borrow_and_update().clone();
                if let Some(failed) = progress.failed {
                    return Err(ReplicationError::State(crate::state::StateError::Corrupt(failed)));
                }
                let lsn = pending.ready(&progress);
                confirmer.confirm(repl, writer, lsn, progress.durable_lsn)?;
                if last_log.elapsed() >= Duration::from_secs(30) {
                    let secs = last_log.elapsed().as_secs_f64();
                    tracing::info!(
                        durable_lsn = %progress.durable_lsn,
                        confirmed_lsn = %confirmer.confirmed,
                        rows_per_s = ((progress.rows - last_logged_rows) as f64 / secs).round(),
                        "streaming"
                    );
                    last_log = Instant::now();
                    last_logged_rows = progress.rows;
                }
                continue;
            }
            event = repl.recv() => event,
        };
        let event = match event {
            Ok(Some(event)) => event,
            Ok(None) => {
                return Err(ReplicationError::Stream(
                    "the server ended the replication stream".into(),
                ))
            }
            Err(e) => return Err(ReplicationError::from_wire(slot, target, e)),
        };
        match event {
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                if !assembler.in_transaction() {
                    pending.push(writer.handed_over(), Lsn(wal_end.0));
                    let progress = progress_rx.borrow().clone();
                    let lsn = pending.ready(&progress);
                    confirmer.confirm(repl, writer, lsn, progress.durable_lsn)?;
                }
            }
            ReplicationEvent::StoppedAt { .. } => {}
            event => {
                let committed = assembler
                    .handle_event(event)
                    .map_err(|e| ReplicationError::Undecodable(e.to_string()))?;
                let Some(transaction) = committed else {
                    continue;
                };
                if transaction.commit_lsn <= durable_lsn {
                    // Already in the change log before this session.
                    continue;
                }
                if transaction.changes.is_empty() && transaction.rejected.is_empty() {
                    // Nothing of ours: confirmable once what came before is.
                    pending.push(writer.handed_over(), transaction.commit_lsn);
                    let progress = progress_rx.borrow().clone();
                    let lsn = pending.ready(&progress);
                    confirmer.confirm(repl, writer, lsn, progress.durable_lsn)?;
                    continue;
                }
                writer.append(transaction).await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_waits_for_everything_received_before_it() {
        let mut pending = PendingConfirmations::default();
        pending.push(2, Lsn(500)); // keepalive after 2 transactions
        pending.push(2, Lsn(600)); // another, same prerequisite
        pending.push(3, Lsn(900));
        let mut progress = WriterProgress {
            transactions: 1,
            durable_lsn: Lsn(100),
            ..WriterProgress::default()
        };
        assert_eq!(pending.ready(&progress), Lsn(100));
        progress.transactions = 2;
        progress.durable_lsn = Lsn(300);
        assert_eq!(pending.ready(&progress), Lsn(600));
        progress.transactions = 3;
        progress.durable_lsn = Lsn(800);
        assert_eq!(pending.ready(&progress), Lsn(900));
        assert!(pending.queue.is_empty());
    }
}
