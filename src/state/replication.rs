//! Replication's own bookkeeping in the state file: which database the file
//! belongs to, the backfill's progress, and the durable / confirmed LSNs.
//!
//! `durable_lsn` is written in the same SQLite transaction as the changes it
//! covers, so after a crash the stream skips exactly the transactions that
//! are already in the change log (nothing lost, nothing twice).

use rusqlite::{params, Connection, OptionalExtension};

use super::{changes, StateError};
use crate::config::BackfillPolicy;
use crate::lsn::Lsn;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS replication_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    -- IDENTIFY_SYSTEM's systemid and the database name: a state file is
    -- bound to one database.
    system_identifier TEXT,
    database_name TEXT,
    slot_name TEXT,
    -- not_started | in_progress | complete
    backfill TEXT NOT NULL DEFAULT 'not_started',
    consistent_point INTEGER NOT NULL DEFAULT 0,
    -- last commit end LSN whose changes are in the change log
    durable_lsn INTEGER NOT NULL DEFAULT 0,
    -- last LSN confirmed to PostgreSQL (>= durable_lsn when idle)
    confirmed_lsn INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO replication_state (id) VALUES (1);
CREATE TABLE IF NOT EXISTS backfill_progress (
    table_name TEXT PRIMARY KEY,
    rows_done INTEGER NOT NULL,
    rows_estimated INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    done INTEGER NOT NULL
);
-- The backfill policy the first start's backfill ran with (a table of its
-- own: state files from before it get it without a migration; none there
-- and a complete backfill means `all`, the only policy there was).
CREATE TABLE IF NOT EXISTS backfill_policy (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    policy TEXT NOT NULL
);
";

/// Where the first start's backfill stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackfillStatus {
    NotStarted,
    /// Started but not finished: its exported snapshot died with the process
    /// that took it, so it is discarded and redone.
    InProgress,
    Complete,
}

impl BackfillStatus {
    fn as_str(self) -> &'static str {
        match self {
            BackfillStatus::NotStarted => "not_started",
            BackfillStatus::InProgress => "in_progress",
            BackfillStatus::Complete => "complete",
        }
    }

    fn parse(s: &str) -> BackfillStatus {
        match s {
            "complete" => BackfillStatus::Complete,
            "in_progress" => BackfillStatus::InProgress,
            _ => BackfillStatus::NotStarted,
        }
    }

    pub fn is_complete(self) -> bool {
        self == BackfillStatus::Complete
    }
}

/// The database a state file belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceIdentity {
    pub system_identifier: String,
    pub database_name: String,
}

/// Replication's row of the state file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicationState {
    pub source: Option<SourceIdentity>,
    pub slot_name: Option<String>,
    pub backfill: BackfillStatus,
    /// The policy the backfill ran (or runs) with; `None` before it started.
    pub backfill_policy: Option<BackfillPolicy>,
    pub consistent_point: Lsn,
    pub durable_lsn: Lsn,
    pub confirmed_lsn: Lsn,
}

impl ReplicationState {
    /// The policy of a complete backfill (an unfinished one is redone with
    /// whatever policy is configured then).
    pub fn backfilled_with(&self) -> Option<BackfillPolicy> {
        self.backfill_policy.filter(|_| self.backfill.is_complete())
    }
}

/// Progress of one table's backfill.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableProgress {
    pub table_name: String,
    pub rows_done: u64,
    pub rows_estimated: u64,
    pub last_id: i64,
    pub done: bool,
}

pub fn load(conn: &Connection) -> Result<ReplicationState, StateError> {
    let backfill_policy = recorded_policy(conn)?
        .map(|text| {
            text.parse::<BackfillPolicy>()
                .map_err(|e| StateError::Corrupt(format!("the recorded backfill policy: {e}")))
        })
        .transpose()?;
    let mut state = conn.query_row(
        "SELECT system_identifier, database_name, slot_name, backfill, consistent_point, durable_lsn, confirmed_lsn
         FROM replication_state WHERE id = 1",
        [],
        |r| {
            let system: Option<String> = r.get(0)?;
            let database: Option<String> = r.get(1)?;
            Ok(ReplicationState {
                source: system.zip(database).map(|(system_identifier, database_name)| {
                    SourceIdentity {
                        system_identifier,
                        database_name,
                    }
                }),
                slot_name: r.get(2)?,
                backfill: BackfillStatus::parse(&r.get::<_, String>(3)?),
                backfill_policy,
                consistent_point: Lsn::from_sql(r.get(4)?),
                durable_lsn: Lsn::from_sql(r.get(5)?),
                // The column records only idle advancement beyond the change
                // log; every durable LSN is confirmed as soon as it is
                // committed, so the confirmed position is the larger of both.
                confirmed_lsn: Lsn::from_sql(r.get(6)?).max(Lsn::from_sql(r.get(5)?)),
            })
        },
    )?;
    if state.backfill.is_complete() && state.backfill_policy.is_none() {
        // Backfilled before policies were recorded: `all` was the only one.
        state.backfill_policy = Some(BackfillPolicy::All);
    }
    Ok(state)
}

/// The policy text recorded by [`start_backfill`]. A state file opened
/// read-only (`status`) may come from a version without the table: none.
fn recorded_policy(conn: &Connection) -> Result<Option<String>, StateError> {
    let has_table: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'backfill_policy'",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(None);
    }
    Ok(conn
        .query_row("SELECT policy FROM backfill_policy WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Binds the state file to a database (first start).
pub fn bind_source(
    conn: &Connection,
    source: &SourceIdentity,
    slot_name: &str,
) -> Result<(), StateError> {
    conn.execute(
        "UPDATE replication_state SET system_identifier = ?1, database_name = ?2, slot_name = ?3 WHERE id = 1",
        params![source.system_identifier, source.database_name, slot_name],
    )?;
    Ok(())
}

/// Starts a (re)do of the backfill with `policy`: discards any partial one
/// (its changes and progress) in one SQLite transaction.
pub fn start_backfill(
    conn: &mut Connection,
    consistent_point: Lsn,
    policy: BackfillPolicy,
    estimates: &[(&str, u64)],
) -> Result<(), StateError> {
    let tx = super::write_transaction(conn)?;
    changes::clear(&tx)?;
    tx.execute("DELETE FROM backfill_progress", [])?;
    tx.execute(
        "INSERT OR REPLACE INTO backfill_policy (id, policy) VALUES (1, ?1)",
        [policy.to_string()],
    )?;
    for (table, estimate) in estimates {
        tx.execute(
            "INSERT INTO backfill_progress (table_name, rows_done, rows_estimated, last_id, done) VALUES (?1, 0, ?2, 0, 0)",
            params![table, *estimate as i64],
        )?;
    }
    tx.execute(
        "UPDATE replication_state SET backfill = ?1, consistent_point = ?2, durable_lsn = 0, confirmed_lsn = 0 WHERE id = 1",
        params![BackfillStatus::InProgress.as_str(), consistent_point.to_sql()],
    )?;
    tx.commit()?;
    Ok(())
}

/// Records one backfilled page (inside the caller's SQLite transaction, the
/// one that appended the page's rows). The table's last page replaces its
/// estimate with the rows copied: a backfill policy copies fewer rows than
/// the table holds.
pub fn record_backfill_page(
    conn: &Connection,
    table: &str,
    rows: u64,
    last_id: i64,
    done: bool,
) -> Result<(), StateError> {
    conn.execute(
        "UPDATE backfill_progress SET rows_done = rows_done + ?2, last_id = ?3, done = ?4,
             rows_estimated = CASE WHEN ?4 THEN rows_done + ?2 ELSE rows_estimated END
         WHERE table_name = ?1",
        params![table, rows as i64, last_id, done],
    )?;
    Ok(())
}

/// Marks the backfill complete: the change log now holds every row of the
/// snapshot, and streaming continues from the consistent point.
pub fn complete_backfill(conn: &Connection) -> Result<(), StateError> {
    conn.execute(
        "UPDATE replication_state SET backfill = ?1, durable_lsn = max(durable_lsn, consistent_point) WHERE id = 1",
        [BackfillStatus::Complete.as_str()],
    )?;
    Ok(())
}

pub fn backfill_progress(conn: &Connection) -> Result<Vec<TableProgress>, StateError> {
    let mut stmt = conn.prepare(
        "SELECT table_name, rows_done, rows_estimated, last_id, done FROM backfill_progress ORDER BY rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TableProgress {
            table_name: r.get(0)?,
            rows_done: r.get::<_, i64>(1)? as u64,
            rows_estimated: r.get::<_, i64>(2)? as u64,
            last_id: r.get(3)?,
            done: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Records `lsn` as durable (inside the caller's SQLite transaction, the one
/// that appended the changes up to it).
pub fn set_durable_lsn(conn: &Connection, lsn: Lsn) -> Result<(), StateError> {
    conn.execute(
        "UPDATE replication_state SET durable_lsn = max(durable_lsn, ?1) WHERE id = 1",
        [lsn.to_sql()],
    )?;
    Ok(())
}

/// Records the last LSN confirmed to PostgreSQL.
pub fn set_confirmed_lsn(conn: &Connection, lsn: Lsn) -> Result<(), StateError> {
    conn.execute(
        "UPDATE replication_state SET confirmed_lsn = max(confirmed_lsn, ?1) WHERE id = 1",
        [lsn.to_sql()],
    )?;
    Ok(())
}

/// The slot name the state file was used with, if any.
pub fn slot_name(conn: &Connection) -> Result<Option<String>, StateError> {
    Ok(conn
        .query_row(
            "SELECT slot_name FROM replication_state WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    #[test]
    fn a_backfill_from_before_policies_were_recorded_reads_as_all() {
        let dir = tempfile::tempdir().unwrap();
        let state = State::open(dir.path().join("s.sqlite3")).unwrap();
        complete_backfill(state.conn()).unwrap();
        assert_eq!(
            load(state.conn()).unwrap().backfill_policy,
            Some(BackfillPolicy::All)
        );
        // Such a file, read before the new version opened it for writing
        // (`status` opens read-only and creates no table).
        state
            .conn()
            .execute_batch("DROP TABLE backfill_policy")
            .unwrap();
        assert_eq!(
            load(state.conn()).unwrap().backfill_policy,
            Some(BackfillPolicy::All)
        );
    }

    #[test]
    fn backfill_restart_discards_partial_work() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State::open(dir.path().join("s.sqlite3")).unwrap();
        let fresh = load(state.conn()).unwrap();
        assert_eq!(fresh.backfill, BackfillStatus::NotStarted);
        assert_eq!(fresh.source, None);
        assert_eq!(fresh.backfill_policy, None);

        start_backfill(
            state.conn_mut(),
            Lsn(50),
            BackfillPolicy::None,
            &[("accounts", 10)],
        )
        .unwrap();
        state
            .append_transactions(&[changes::LoggedTransaction {
                commit_lsn: Lsn(50),
                from_bridge: false,
                changes: &[crate::chatwoot::Change::Truncate { tables: vec![] }],
                rejected: &[],
            }])
            .unwrap();
        record_backfill_page(state.conn(), "accounts", 1, 7, false).unwrap();
        assert_eq!(state.depth().unwrap(), 1);
        assert_eq!(backfill_progress(state.conn()).unwrap()[0].rows_done, 1);

        // A redo after a crash starts from nothing.
        start_backfill(
            state.conn_mut(),
            Lsn(90),
            BackfillPolicy::All,
            &[("accounts", 11)],
        )
        .unwrap();
        assert_eq!(state.depth().unwrap(), 0);
        let progress = backfill_progress(state.conn()).unwrap();
        assert_eq!((progress[0].rows_done, progress[0].rows_estimated), (0, 11));
        let st = load(state.conn()).unwrap();
        assert_eq!(
            (st.backfill, st.consistent_point, st.durable_lsn),
            (BackfillStatus::InProgress, Lsn(90), Lsn::ZERO)
        );
        assert_eq!(
            st.backfill_policy,
            Some(BackfillPolicy::All),
            "the redo's policy replaces the discarded one's"
        );
        assert_eq!(st.backfilled_with(), None, "not complete yet");

        let since: BackfillPolicy = "since:2024-02-29".parse().unwrap();
        start_backfill(state.conn_mut(), Lsn(90), since, &[("accounts", 11)]).unwrap();
        record_backfill_page(state.conn(), "accounts", 3, 9, false).unwrap();
        record_backfill_page(state.conn(), "accounts", 1, 12, true).unwrap();
        let progress = backfill_progress(state.conn()).unwrap();
        assert_eq!(
            (progress[0].rows_done, progress[0].rows_estimated),
            (4, 4),
            "a finished table's estimate is what it copied"
        );
        complete_backfill(state.conn()).unwrap();
        let st = load(state.conn()).unwrap();
        assert_eq!(st.backfill_policy, Some(since));
        assert_eq!(st.backfilled_with(), Some(since));
        assert_eq!(
            (st.backfill, st.durable_lsn, st.confirmed_lsn),
            (BackfillStatus::Complete, Lsn(90), Lsn(90)),
            "a durable LSN reads as confirmed (it is confirmed once committed)"
        );

        let source = SourceIdentity {
            system_identifier: "7".into(),
            database_name: "chatwoot".into(),
        };
        bind_source(state.conn(), &source, "slot").unwrap();
        assert_eq!(load(state.conn()).unwrap().source, Some(source));
        assert_eq!(slot_name(state.conn()).unwrap().as_deref(), Some("slot"));
        set_confirmed_lsn(state.conn(), Lsn(120)).unwrap();
        set_confirmed_lsn(state.conn(), Lsn(100)).unwrap();
        assert_eq!(load(state.conn()).unwrap().confirmed_lsn, Lsn(120));
    }
}
