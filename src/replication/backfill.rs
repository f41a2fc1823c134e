//! First start: create the slot with an exported snapshot and copy every
//! existing row of [`Table::ALL`] from that snapshot into the change log
//! (invariant 5). Rows committed after the slot's consistent point are not in
//! the snapshot and are exactly the first ones the stream sends, so nothing
//! is missed or seen twice at the seam.
//!
//! The snapshot lives only while the replication connection that exported it
//! stays open and idle, so a backfill cut off by a crash cannot be resumed:
//! the next start discards it (the planner never sees an incomplete backfill,
//! see `state::changes::read_batch`), drops the slot and starts over.
//!
//! Memory does not grow with table size: rows are read in keyset pages
//! (`WHERE id > $last ORDER BY id LIMIT n`), each page committed to the
//! change log with its progress in one SQLite transaction.
//!
//! The backfill policy (`all`, `none`, `since:D`) is applied by those same
//! queries ([`selection`]): rows outside it are either not read or logged as
//! [`RowOp::SnapshotCacheOnly`], so the planner knows them but sends nothing.

pub mod selection;

use std::time::{Duration, Instant};

use pgwire_replication::ReplicationClient;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use super::current::{present_columns, text_query};
use super::error::ReplicationError;
use super::source::SourceDb;
use crate::chatwoot::text::RowError;
use crate::chatwoot::{Change, RowOp, Table};
use crate::config::BackfillPolicy;
use crate::lsn::Lsn;
use crate::state::changes::LoggedTransaction;
use crate::state::{replication as repl_state, State};
use selection::{table_selection, TableSelection, ACTIVITY_COLUMNS};

/// What `CREATE_REPLICATION_SLOT … (SNAPSHOT 'export')` returned.
#[derive(Clone, Debug)]
pub struct CreatedSlot {
    pub consistent_point: Lsn,
    pub snapshot_name: String,
}

/// How the backfill ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackfillOutcome {
    Complete { consistent_point: Lsn },
    Cancelled,
}

/// Drops `slot` (not waiting: a slot held by a live process is reported as
/// [`ReplicationError::SlotActive`], retried later).
pub async fn drop_slot(
    repl: &mut ReplicationClient,
    source: &SourceDb,
    slot: &str,
) -> Result<(), ReplicationError> {
    repl.simple_query(&format!("DROP_REPLICATION_SLOT {slot}"))
        .await
        .map_err(|e| ReplicationError::from_wire(slot, &source.target(), e))?;
    tracing::info!(
        slot,
        "dropped the replication slot of an unfinished backfill"
    );
    Ok(())
}

/// Creates the logical slot on the (gated, not started) replication
/// connection, exporting its snapshot.
pub async fn create_slot_exporting_snapshot(
    repl: &mut ReplicationClient,
    source: &SourceDb,
    slot: &str,
    server_version_num: i32,
) -> Result<CreatedSlot, ReplicationError> {
    // PostgreSQL 15 introduced the parenthesised options; 14 only knows the
    // older keyword form.
    let sql = if server_version_num >= 150000 {
        format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput (SNAPSHOT 'export')")
    } else {
        format!("CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput EXPORT_SNAPSHOT")
    };
    let rows = repl.simple_query(&sql).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("53400") || text.contains("all replication slots are in use") {
            ReplicationError::SlotsExhausted {
                max: "max_replication_slots".into(),
            }
        } else {
            ReplicationError::from_wire(slot, &source.target(), e)
        }
    })?;
    let unexpected = |reason: String| {
        ReplicationError::Stream(format!(
            "unexpected answer to CREATE_REPLICATION_SLOT: {reason}"
        ))
    };
    let row = rows.first().ok_or_else(|| unexpected("no row".into()))?;
    let text = |i: usize| {
        row.get(i)
            .and_then(|v| v.as_ref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(|| unexpected(format!("no column {i}")))
    };
    let consistent_point: Lsn = text(1)?.parse().map_err(|e| unexpected(format!("{e}")))?;
    let snapshot_name = text(2)?;
    tracing::info!(slot, %consistent_point, "created replication slot with exported snapshot");
    Ok(CreatedSlot {
        consistent_point,
        snapshot_name,
    })
}

/// Copies the rows of [`Table::ALL`] visible in `slot.snapshot_name` that
/// `policy` selects into the change log at the consistent point (as
/// [`RowOp::Snapshot`], or [`RowOp::SnapshotCacheOnly`] for rows outside the
/// policy that the planner must know), and marks the backfill complete. `client` must be an ordinary connection that
/// is not in a transaction; the replication connection that exported the
/// snapshot must stay open and idle until this returns.
pub async fn copy_snapshot(
    client: &Client,
    state: &mut State,
    slot: &CreatedSlot,
    policy: BackfillPolicy,
    page_size: u32,
    cancel: &CancellationToken,
) -> Result<BackfillOutcome, ReplicationError> {
    let q = |doing| move |e: tokio_postgres::Error| ReplicationError::from_pg(doing, &e);
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(q("starting the backfill transaction"))?;
    client
        .batch_execute(&format!(
            "SET TRANSACTION SNAPSHOT '{}'",
            slot.snapshot_name.replace('\'', "")
        ))
        .await
        .map_err(q("importing the slot's snapshot"))?;
    // `since:` compares days in UTC, also for a `timestamptz` column.
    client
        .batch_execute("SET LOCAL TIME ZONE 'UTC'")
        .await
        .map_err(q("setting the backfill's time zone"))?;
    let activity = present_columns(client, Table::Conversations, &ACTIVITY_COLUMNS).await?;
    let activity: Vec<&str> = activity.iter().map(String::as_str).collect();
    let selections: Vec<TableSelection> = Table::ALL
        .into_iter()
        .map(|table| table_selection(policy, table, &activity))
        .collect();

    let mut estimates = Vec::new();
    for (table, selection) in Table::ALL.into_iter().zip(&selections) {
        if *selection == TableSelection::Skip {
            estimates.push((table.name(), 0));
            continue;
        }
        let n: i64 = client
            .query_one(
                "SELECT greatest(reltuples, 0)::bigint FROM pg_class WHERE oid = to_regclass(format('public.%I', $1::text))",
                &[&table.name()],
            )
            .await
            .map_err(q("estimating table sizes"))?
            .get(0);
        estimates.push((table.name(), n as u64));
    }
    repl_state::start_backfill(state.conn_mut(), slot.consistent_point, policy, &estimates)?;
    tracing::info!(%policy, "backfill policy");

    let started = Instant::now();
    let tables = Table::ALL.into_iter().zip(selections);
    for ((table, selection), estimate) in tables.zip(estimates.iter().map(|e| e.1)) {
        if copy_table(
            client,
            state,
            table,
            &selection,
            estimate,
            slot.consistent_point,
            page_size,
            cancel,
        )
        .await?
            == BackfillOutcome::Cancelled
        {
            let _ = client.batch_execute("ROLLBACK").await;
            return Ok(BackfillOutcome::Cancelled);
        }
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(q("ending the backfill transaction"))?;
    repl_state::complete_backfill(state.conn())?;
    tracing::info!(
        consistent_point = %slot.consistent_point,
        elapsed_s = started.elapsed().as_secs_f64(),
        "backfill complete; streaming from the consistent point"
    );
    Ok(BackfillOutcome::Complete {
        consistent_point: slot.consistent_point,
    })
}

#[allow(clippy::too_many_arguments)]
async fn copy_table(
    client: &Client,
    state: &mut State,
    table: Table,
    selection: &TableSelection,
    estimate: u64,
    consistent_point: Lsn,
    page_size: u32,
    cancel: &CancellationToken,
) -> Result<BackfillOutcome, ReplicationError> {
    let (read, sent) = match selection {
        TableSelection::Rows { read, sent } => (read, sent),
        TableSelection::Skip => {
            tracing::info!(
                table = table.name(),
                "backfill: not copied (outside the backfill policy)"
            );
            repl_state::record_backfill_page(state.conn(), table.name(), 0, 0, true)?;
            return Ok(BackfillOutcome::Complete { consistent_point });
        }
    };
    let (map, select_list, column_count) = text_query(client, table).await?;
    let sql = format!(
        "SELECT t.id::bigint, ({sent}) AS sent, {select_list} FROM public.{} AS t \
         WHERE t.id > $1::bigint AND ({read}) ORDER BY t.id LIMIT $2::bigint",
        table.name()
    );
    let stmt = client
        .prepare(&sql)
        .await
        .map_err(|e| ReplicationError::from_pg("preparing the backfill query", &e))?;

    let mut last_id: i64 = 0;
    let mut done_rows: u64 = 0;
    let mut last_log = Instant::now();
    let limit = i64::from(page_size.max(1));
    loop {
        if cancel.is_cancelled() {
            return Ok(BackfillOutcome::Cancelled);
        }
        let rows = client
            .query(&stmt, &[&last_id, &limit])
            .await
            .map_err(|e| ReplicationError::from_pg("reading rows for the backfill", &e))?;
        let finished = (rows.len() as i64) < limit;
        let mut changes = Vec::with_capacity(rows.len());
        let mut rejected: Vec<(RowOp, RowError)> = Vec::new();
        for row in &rows {
            last_id = row.get(0);
            let op = if row.get::<_, bool>(1) {
                RowOp::Snapshot
            } else {
                RowOp::SnapshotCacheOnly
            };
            let values = (2..column_count + 2).map(|i| row.get::<_, Option<&str>>(i));
            match map.build_row(values) {
                Ok(built) => changes.push(Change::Row { op, row: built }),
                Err(error) => rejected.push((op, error)),
            }
        }
        for (_, error) in &rejected {
            tracing::warn!(%error, "backfill row kept aside: it cannot be read");
        }
        done_rows += rows.len() as u64;
        let tx = crate::state::write_transaction(state.conn_mut())
            .map_err(crate::state::StateError::from)?;
        crate::state::changes::append(
            &tx,
            LoggedTransaction {
                commit_lsn: consistent_point,
                from_bridge: false,
                changes: &changes,
                rejected: &rejected,
            },
        )?;
        repl_state::record_backfill_page(&tx, table.name(), rows.len() as u64, last_id, finished)?;
        tx.commit().map_err(crate::state::StateError::from)?;

        if finished || last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            tracing::info!(
                table = table.name(),
                rows_done = done_rows,
                rows_estimated = estimate.max(done_rows),
                finished,
                "backfill progress"
            );
        }
        if finished {
            return Ok(BackfillOutcome::Complete { consistent_point });
        }
    }
}
