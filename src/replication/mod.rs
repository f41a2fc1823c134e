//! Replication: the publication and slot, the first start's snapshot backfill,
//! the pgoutput stream, and LSN confirmation.
//!
//! Keeps invariant 1 (an LSN is confirmed only once every change at or before
//! it is committed to the local change log) and invariant 5 (zero-config
//! catch-up from a snapshot consistent with the slot).
//!
//! [`run`] is the whole stage as a library function: it checks the setup,
//! backfills on first start, streams, and reconnects with backoff after a
//! lost connection, until its [`CancellationToken`] is cancelled.

pub mod backfill;
pub mod current;
pub mod error;
pub mod pgoutput;
pub mod relations;
pub mod setup;
pub mod source;
pub mod stream;
pub mod transaction;
pub mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pgwire_replication::ReplicationClient;
use tokio_util::sync::CancellationToken;

pub use error::ReplicationError;
pub use setup::{ReplicationNames, SlotStatus};
pub use source::SourceDb;

use crate::config::BackfillPolicy;
use crate::lsn::Lsn;
use crate::secret::Secret;
use crate::state::replication::{self as repl_state, BackfillStatus, SourceIdentity};
use crate::state::State;
use backfill::BackfillOutcome;
use writer::ChangeLogWriter;

/// Everything the replication stage needs.
#[derive(Clone, Debug)]
pub struct ReplicationOptions {
    pub database_url: Secret,
    pub state_path: PathBuf,
    pub names: ReplicationNames,
    /// What existing history the first start's backfill sends to GLPI.
    pub backfill: BackfillPolicy,
    /// Rows per backfill page (one SQLite transaction each).
    pub backfill_page_size: u32,
    /// How often the confirmed LSN is sent to PostgreSQL.
    pub status_interval: Duration,
    /// Decoded rows queued for the change-log writer at most (memory bound).
    pub max_rows_in_flight: usize,
    /// Rows per SQLite transaction at most (group commit).
    pub group_commit_rows: usize,
    /// Woken after every commit to the change log (for the planner).
    pub on_durable: Option<Arc<tokio::sync::Notify>>,
    /// Where the changes received are counted (`None`: nowhere).
    pub metrics: Option<Arc<crate::observability::Metrics>>,
}

impl ReplicationOptions {
    pub fn new(database_url: Secret, state_path: PathBuf) -> Self {
        ReplicationOptions {
            database_url,
            state_path,
            names: ReplicationNames::default(),
            backfill: BackfillPolicy::All,
            backfill_page_size: 5_000,
            status_interval: Duration::from_secs(10),
            max_rows_in_flight: 20_000,
            group_commit_rows: 5_000,
            on_durable: None,
            metrics: None,
        }
    }
}

/// Backoff between reconnection attempts: exponential with jitter.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        // Full jitter over [base/2, base]: instances retrying together spread.
        let half = base / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

/// Runs replication until `cancel` is cancelled (then returns `Ok`) or a
/// permanent error. Transient errors (a lost connection, the slot held by
/// another process) are logged and retried with backoff; a second instance
/// thus waits as a standby until the slot is free.
pub async fn run(
    options: ReplicationOptions,
    cancel: CancellationToken,
) -> Result<(), ReplicationError> {
    let source = SourceDb::from_url(&options.database_url)?;
    ReplicationNames::validated(&options.names.slot, &options.names.publication)?;
    let mut state = State::open(&options.state_path)?;
    let backfilled_with = repl_state::load(state.conn())?.backfilled_with();
    if let Some(notice) = backfill::selection::policy_mismatch(options.backfill, backfilled_with) {
        tracing::warn!("{notice}");
    }
    let mut backoff = Backoff::new();
    let mut reached_server = false;
    loop {
        let mut session = Session {
            options: &options,
            source: &source,
            state: &mut state,
            reached_server: &mut reached_server,
            streaming: false,
        };
        let result = session.run(&cancel).await;
        let streamed = session.streaming;
        match result {
            Ok(()) => return Ok(()),
            Err(err)
                if err.is_transient()
                    && (reached_server || matches!(err, ReplicationError::SlotActive { .. })) =>
            {
                if streamed {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                match &err {
                    ReplicationError::SlotActive { .. } => tracing::warn!(
                        retry_in_ms = delay.as_millis() as u64,
                        "{err}; waiting as a standby until it is free"
                    ),
                    _ => tracing::warn!(
                        retry_in_ms = delay.as_millis() as u64,
                        "replication interrupted: {err}; reconnecting"
                    ),
                }
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(err) => return Err(err),
        }
    }
}

/// One connection's worth of work: setup checks, backfill if needed, stream.
struct Session<'a> {
    options: &'a ReplicationOptions,
    source: &'a SourceDb,
    state: &'a mut State,
    /// Set once the database answered: later connection losses are retried
    /// (the first attempt fails fast, it is most likely misconfiguration).
    reached_server: &'a mut bool,
    streaming: bool,
}

impl Session<'_> {
    async fn run(&mut self, cancel: &CancellationToken) -> Result<(), ReplicationError> {
        let names = &self.options.names;
        let client = self.source.connect().await?;
        let slot_status = setup::preflight(&client, names).await?;
        *self.reached_server = true;
        let version_num: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| ReplicationError::from_pg("reading the server version", &e))?
            .get(0);

        let stored = repl_state::load(self.state.conn())?;
        let backfilled = stored.backfill.is_complete();

        let mut cfg = self
            .source
            .replication_config(&names.slot, &names.publication)
            .with_status_interval(self.options.status_interval)
            .with_wakeup_interval(self.options.status_interval);
        if backfilled {
            let durable = pgwire_replication::Lsn(stored.durable_lsn.0);
            cfg = cfg.with_start_lsn(durable).with_ack_lsn(durable);
        }
        let target = self.source.target();
        let wire = |e| self.source.wire_error(&names.slot, e);
        let mut repl = ReplicationClient::connect_gated(cfg).await.map_err(wire)?;
        let system = repl.identify_system().await.map_err(wire)?;
        // The state file must belong to this database before anything in it
        // is trusted.
        self.check_source(&system.system_id)?;
        if backfilled && slot_status == SlotStatus::Missing {
            return Err(ReplicationError::SlotMissing {
                slot: names.slot.clone(),
                durable_lsn: stored.durable_lsn,
                state_path: self.state.path().display().to_string(),
            });
        }
        if let (
            true,
            SlotStatus::Exists {
                invalidated: Some(invalidation),
                ..
            },
        ) = (backfilled, &slot_status)
        {
            // Retrying cannot help: the WAL is gone. Stop with the way out
            // instead of reconnecting forever.
            return Err(ReplicationError::SlotInvalidated {
                slot: names.slot.clone(),
                reason: invalidation.reason.clone(),
                durable_lsn: stored.durable_lsn,
                state_path: self.state.path().display().to_string(),
            });
        }
        if !backfilled && stored.backfill == BackfillStatus::NotStarted {
            if let SlotStatus::Exists { .. } = slot_status {
                return Err(ReplicationError::SlotNotOurs {
                    slot: names.slot.clone(),
                });
            }
        }

        let durable_lsn = if backfilled {
            stored.durable_lsn
        } else {
            match self
                .backfill(&mut repl, &client, slot_status, version_num, cancel)
                .await?
            {
                BackfillOutcome::Complete { consistent_point } => consistent_point,
                BackfillOutcome::Cancelled => return Ok(()),
            }
        };
        drop(client);

        repl.start().await.map_err(wire)?;
        repl.wait_started().await.map_err(wire)?;
        self.streaming = true;
        tracing::info!(slot = %names.slot, from = %durable_lsn, "streaming changes");

        let mut writer = ChangeLogWriter::start(
            self.options.state_path.clone(),
            self.options.max_rows_in_flight,
            self.options.group_commit_rows,
            self.options.on_durable.clone(),
            self.options.metrics.clone(),
        )?;
        let result = stream::stream_changes(
            &mut repl,
            &mut writer,
            durable_lsn,
            &target,
            &names.slot,
            cancel,
        )
        .await;
        // Whatever happened, commit what was handed over and confirm it.
        let progress = writer.finish().await;
        if progress.durable_lsn > Lsn::ZERO {
            repl.update_applied_lsn(pgwire_replication::Lsn(progress.durable_lsn.0));
        }
        repl.stop();
        result.map(|_| ())
    }

    /// Binds a fresh state file to this database, or refuses a state file
    /// of another one.
    fn check_source(&mut self, system_id: &str) -> Result<(), ReplicationError> {
        let here = SourceIdentity {
            system_identifier: system_id.to_owned(),
            database_name: self.source.database().to_owned(),
        };
        match repl_state::load(self.state.conn())?.source {
            None => {
                repl_state::bind_source(self.state.conn(), &here, &self.options.names.slot)?;
                Ok(())
            }
            Some(stored) if stored == here => Ok(()),
            Some(stored) => Err(ReplicationError::StateFromOtherDatabase {
                state_path: self.state.path().display().to_string(),
                stored_system: stored.system_identifier,
                stored_database: stored.database_name,
                system: here.system_identifier,
                database: here.database_name,
            }),
        }
    }

    async fn backfill(
        &mut self,
        repl: &mut ReplicationClient,
        client: &tokio_postgres::Client,
        slot_status: SlotStatus,
        version_num: i32,
        cancel: &CancellationToken,
    ) -> Result<BackfillOutcome, ReplicationError> {
        let slot = &self.options.names.slot;
        // Marked before the slot exists, so a crash from here on is known to
        // leave a slot of ours (dropped and recreated next time).
        let policy = self.options.backfill;
        repl_state::start_backfill(self.state.conn_mut(), Lsn::ZERO, policy, &[])?;
        if let SlotStatus::Exists { .. } = slot_status {
            tracing::warn!(slot, "a previous backfill did not finish: starting it over");
            backfill::drop_slot(repl, self.source, slot).await?;
        }
        let created =
            backfill::create_slot_exporting_snapshot(repl, self.source, slot, version_num).await?;
        backfill::copy_snapshot(
            client,
            self.state,
            &created,
            policy,
            self.options.backfill_page_size,
            cancel,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(first >= Backoff::FIRST / 2 && first <= Backoff::FIRST);
        for _ in 0..20 {
            assert!(b.next_delay() <= Backoff::MAX);
        }
        b.reset();
        assert!(b.next_delay() <= Backoff::FIRST);
    }
}
