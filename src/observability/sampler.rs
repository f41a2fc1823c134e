//! Fills the gauges from where the truth is kept, on a timer: the state file
//! (confirmed LSN, backfill progress, outbox depth, oldest pending job,
//! parked jobs, the file's size) and PostgreSQL (the slot's lag and whether a bridge reads
//! it). Reading the state rather than instrumenting every stage keeps the
//! stages free of metrics code, and the numbers equal what `status` shows.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::metrics::{Metrics, TableProgress};
use super::progress::BackfillProgress;
use crate::lsn::Lsn;
use crate::replication::SourceDb;
use crate::state::replication as repl_state;
use crate::state::State;

/// What the sampler reads.
pub struct SamplerConfig {
    pub state_path: PathBuf,
    pub database: SourceDb,
    pub slot_name: String,
    /// Time between samples while the backfill runs (the progress display).
    pub backfill_interval: Duration,
    /// Time between samples afterwards.
    pub interval: Duration,
}

/// Samples until `cancel`.
pub async fn run(
    config: SamplerConfig,
    metrics: Arc<Metrics>,
    progress: BackfillProgress,
    cancel: CancellationToken,
) {
    let mut db: Option<tokio_postgres::Client> = None;
    // One connection for the whole run: opening the state file applies the
    // schemas (writes), which would disturb the planner's transactions if
    // done on every sample.
    let mut state: Option<State> = None;
    loop {
        if state.is_none() && config.state_path.exists() {
            state = State::open(&config.state_path).ok();
        }
        let sampled = match &state {
            Some(state) => sample_state(state, &metrics, &progress),
            None => Ok(false),
        };
        let complete = match sampled {
            Ok(complete) => complete,
            Err(e) => {
                tracing::debug!("metrics: cannot read the state file: {e:#}");
                false
            }
        };
        if db.as_ref().is_none_or(|c| c.is_closed()) {
            db = config.database.connect().await.ok();
        }
        if let Some(client) = &db {
            if let Err(e) = sample_slot(client, &config.slot_name, &metrics).await {
                tracing::debug!("metrics: cannot read the slot: {e}");
                db = None;
            }
        }
        let wait = if complete {
            config.interval
        } else {
            config.backfill_interval
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Reads the state file; returns whether the backfill is complete.
fn sample_state(
    state: &State,
    metrics: &Metrics,
    progress: &BackfillProgress,
) -> anyhow::Result<bool> {
    let conn = state.conn();
    let replication = repl_state::load(conn)?;
    metrics.set_confirmed_lsn(replication.confirmed_lsn);
    let tables: Vec<(String, TableProgress)> = repl_state::backfill_progress(conn)?
        .into_iter()
        .map(|t| {
            (
                t.table_name,
                TableProgress {
                    copied: t.rows_done,
                    estimated: t.rows_estimated,
                },
            )
        })
        .collect();
    let complete = replication.backfill.is_complete();
    progress.observe(&tables, complete);
    let depth = crate::outbox::depth(conn)?;
    metrics.set_outbox_depth(depth.total());
    metrics.set_parked_jobs(depth.parked);
    metrics.set_oldest_pending_age(crate::outbox::oldest_pending_age(conn)?.unwrap_or_default());
    metrics.set_state_file_bytes(state.disk_usage()?.bytes);
    Ok(complete)
}

async fn sample_slot(
    client: &tokio_postgres::Client,
    slot: &str,
    metrics: &Metrics,
) -> Result<(), tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT active_pid IS NOT NULL,
                    coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn), 0)::bigint,
                    confirmed_flush_lsn::text
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await?;
    match row {
        Some(row) => {
            metrics.set_replication_connected(row.get(0));
            metrics.set_slot_lag_bytes(row.get::<_, i64>(1).max(0) as u64);
            if let Some(lsn) = row
                .get::<_, Option<String>>(2)
                .and_then(|t| t.parse::<Lsn>().ok())
            {
                metrics.set_confirmed_lsn(lsn);
            }
        }
        None => metrics.set_replication_connected(false),
    }
    Ok(())
}
