//! The change log: the durable hand-off from replication to the planner.
//!
//! Replication appends every committed source transaction's changes here (in
//! commit order, several transactions per SQLite transaction) and records the
//! last commit end LSN in the same SQLite transaction; only then may that LSN
//! be confirmed to PostgreSQL (invariant 1). The planner drains the log in
//! `seq` order and deletes what it has turned into jobs.
//!
//! While the first start's backfill is not complete, [`read_batch`] returns
//! nothing: a partial backfill may be discarded and redone after a crash, so
//! nothing in it may be acted on before it is whole.

use rusqlite::{params, Connection, OptionalExtension};

use super::{replication, State, StateError};
use crate::chatwoot::text::RowError;
use crate::chatwoot::{Change, CommittedChange, RowOp};
use crate::lsn::Lsn;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS changes (
    -- AUTOINCREMENT: a seq is never reused after the planner deletes rows.
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_lsn INTEGER NOT NULL,
    from_bridge INTEGER NOT NULL,
    -- serde_json of chatwoot::Change
    change TEXT NOT NULL
);
-- Row changes whose values could not be read (invariant 6: kept with their
-- reason, never dropped silently); the rest of their transaction is logged.
CREATE TABLE IF NOT EXISTS rejected_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    commit_lsn INTEGER NOT NULL,
    op TEXT NOT NULL,
    table_name TEXT NOT NULL,
    row_id INTEGER,
    reason TEXT NOT NULL,
    recorded_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
";

/// One source transaction to append.
#[derive(Clone, Copy, Debug)]
pub struct LoggedTransaction<'a> {
    /// The commit's end LSN (for backfill rows: the slot's consistent point).
    pub commit_lsn: Lsn,
    pub from_bridge: bool,
    pub changes: &'a [Change],
    /// Row changes of this transaction that could not be read.
    pub rejected: &'a [(RowOp, RowError)],
}

/// A change read back from the log.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedChange {
    pub seq: i64,
    pub change: CommittedChange,
}

/// Appends the changes of `transaction` (inside the caller's SQLite
/// transaction).
pub fn append(conn: &Connection, transaction: LoggedTransaction<'_>) -> Result<(), StateError> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO changes (commit_lsn, from_bridge, change) VALUES (?1, ?2, ?3)",
    )?;
    let mut buf = Vec::with_capacity(512);
    for change in transaction.changes {
        buf.clear();
        serde_json::to_writer(&mut buf, change).map_err(|e| StateError::Corrupt(e.to_string()))?;
        // serde_json writes valid UTF-8.
        let text = std::str::from_utf8(&buf).map_err(|e| StateError::Corrupt(e.to_string()))?;
        insert.execute(params![
            transaction.commit_lsn.to_sql(),
            transaction.from_bridge,
            text
        ])?;
    }
    if !transaction.rejected.is_empty() {
        let mut reject = conn.prepare_cached(
            "INSERT INTO rejected_changes (commit_lsn, op, table_name, row_id, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for (op, error) in transaction.rejected {
            let op = serde_json::to_value(op).map_err(|e| StateError::Corrupt(e.to_string()))?;
            reject.execute(params![
                transaction.commit_lsn.to_sql(),
                op.as_str().unwrap_or("?"),
                error.table,
                error.id,
                error.to_string()
            ])?;
        }
    }
    Ok(())
}

/// How many row changes were kept aside as unreadable.
pub fn rejected_count(conn: &Connection) -> Result<u64, StateError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM rejected_changes", [], |r| r.get(0))?;
    Ok(n as u64)
}

/// Up to `limit` changes with `seq > after_seq`, in order; empty while the
/// backfill is incomplete.
pub fn read_batch(
    conn: &Connection,
    after_seq: i64,
    limit: usize,
) -> Result<Vec<LoggedChange>, StateError> {
    if !replication::load(conn)?.backfill.is_complete() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT seq, commit_lsn, from_bridge, change FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![after_seq, limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, bool>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, lsn, from_bridge, text) = row?;
        let change: Change = serde_json::from_str(&text)
            .map_err(|e| StateError::Corrupt(format!("change log seq {seq}: {e}")))?;
        out.push(LoggedChange {
            seq,
            change: CommittedChange {
                commit_lsn: Lsn::from_sql(lsn),
                from_bridge,
                change,
            },
        });
    }
    Ok(out)
}

/// Deletes every change with `seq <= seq` (the planner has consumed them).
pub fn delete_through(conn: &Connection, seq: i64) -> Result<usize, StateError> {
    Ok(conn.execute("DELETE FROM changes WHERE seq <= ?1", [seq])?)
}

/// How many changes wait in the log.
pub fn depth(conn: &Connection) -> Result<u64, StateError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM changes", [], |r| r.get(0))?;
    Ok(n as u64)
}

/// The highest `seq` ever assigned (0 if none).
pub fn last_seq(conn: &Connection) -> Result<i64, StateError> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'changes'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.unwrap_or(0))
}

/// Removes every change (a partial backfill being discarded).
pub(crate) fn clear(conn: &Connection) -> Result<(), StateError> {
    conn.execute("DELETE FROM changes", [])?;
    Ok(())
}

impl State {
    /// Group commit: appends `transactions` in one SQLite transaction and
    /// records the last one's commit LSN as durable; returns that LSN. Once
    /// this returns, the LSN may be confirmed to PostgreSQL.
    pub fn append_transactions(
        &mut self,
        transactions: &[LoggedTransaction<'_>],
    ) -> Result<Option<Lsn>, StateError> {
        let Some(last) = transactions.last() else {
            return Ok(None);
        };
        let tx = super::write_transaction(self.conn_mut())?;
        for transaction in transactions {
            append(&tx, *transaction)?;
        }
        replication::set_durable_lsn(&tx, last.commit_lsn)?;
        tx.commit()?;
        Ok(Some(last.commit_lsn))
    }

    /// See [`read_batch`].
    pub fn read_batch(
        &self,
        after_seq: i64,
        limit: usize,
    ) -> Result<Vec<LoggedChange>, StateError> {
        read_batch(self.conn(), after_seq, limit)
    }

    /// See [`delete_through`].
    pub fn delete_through(&self, seq: i64) -> Result<usize, StateError> {
        delete_through(self.conn(), seq)
    }

    /// See [`depth`].
    pub fn depth(&self) -> Result<u64, StateError> {
        depth(self.conn())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chatwoot::{ContactRow, Field, Row, RowOp};

    fn contact(id: i64) -> Change {
        Change::Row {
            op: RowOp::Insert,
            row: Row::Contact(ContactRow {
                id,
                email: Field::Value(format!("c{id}@example.com")),
                additional_attributes: Field::Unchanged,
                ..ContactRow::default()
            }),
        }
    }

    fn open() -> (tempfile::TempDir, State) {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path().join("s.sqlite3")).unwrap();
        (dir, state)
    }

    #[test]
    fn appends_in_order_reads_after_backfill_and_deletes() {
        let (_dir, mut state) = open();
        let first = [contact(1), contact(2)];
        let second = [contact(3)];
        let lsn = state
            .append_transactions(&[
                LoggedTransaction {
                    commit_lsn: Lsn(100),
                    from_bridge: false,
                    changes: &first,
                    rejected: &[],
                },
                LoggedTransaction {
                    commit_lsn: Lsn(200),
                    from_bridge: true,
                    changes: &second,
                    rejected: &[],
                },
            ])
            .unwrap();
        assert_eq!(lsn, Some(Lsn(200)));
        assert_eq!(
            replication::load(state.conn()).unwrap().durable_lsn,
            Lsn(200)
        );
        assert_eq!(state.depth().unwrap(), 3);

        // Hidden from the planner until the backfill is complete.
        assert!(state.read_batch(0, 10).unwrap().is_empty());
        replication::complete_backfill(state.conn()).unwrap();

        let batch = state.read_batch(0, 2).unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].change.change, contact(1));
        assert_eq!(batch[0].change.commit_lsn, Lsn(100));
        assert!(!batch[0].change.from_bridge);
        let rest = state.read_batch(batch[1].seq, 10).unwrap();
        assert_eq!(rest.len(), 1);
        assert!(rest[0].change.from_bridge);
        // Unchanged TOAST survives the round trip (never becomes Null).
        match &rest[0].change.change {
            Change::Row {
                row: Row::Contact(c),
                ..
            } => assert_eq!(c.additional_attributes, Field::Unchanged),
            other => panic!("unexpected {other:?}"),
        }

        assert_eq!(state.delete_through(batch[1].seq).unwrap(), 2);
        assert_eq!(state.depth().unwrap(), 1);
        // seq is never reused after deletes.
        let before = last_seq(state.conn()).unwrap();
        state.delete_through(before).unwrap();
        state
            .append_transactions(&[LoggedTransaction {
                commit_lsn: Lsn(300),
                from_bridge: false,
                changes: &[contact(4)],
                rejected: &[],
            }])
            .unwrap();
        assert_eq!(state.read_batch(0, 10).unwrap()[0].seq, before + 1);
    }

    #[test]
    fn empty_group_commits_nothing() {
        let (_dir, mut state) = open();
        assert_eq!(state.append_transactions(&[]).unwrap(), None);
        assert_eq!(
            replication::load(state.conn()).unwrap().durable_lsn,
            Lsn::ZERO
        );
    }
}
