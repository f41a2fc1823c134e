//! The bridge's local state: one SQLite file (WAL mode) holding the change log
//! handed over by replication, the outbox of jobs, and the Chatwoot↔GLPI
//! mappings.
//!
//! Each stage owns its tables: a module declares its schema as a `&str` of
//! `CREATE TABLE IF NOT EXISTS …` statements and appends it to [`SCHEMAS`];
//! [`State::open`] applies them all. Several connections may be open on one
//! file at once (replication's writer thread, the planner, workers): WAL mode
//! lets readers run beside the single writer, and `busy_timeout` makes a
//! writer wait for another instead of failing.

pub mod changes;
pub mod mappings;
pub mod replication;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

/// Every module's schema, applied in this order by [`State::open`].
/// Append yours here (`(name, sql)`; the name appears in errors).
pub const SCHEMAS: &[(&str, &str)] = &[
    ("changes", changes::SCHEMA),
    ("replication", replication::SCHEMA),
    ("mappings", mappings::SCHEMA),
    ("outbox", crate::outbox::SCHEMA),
    ("planner", crate::planner::cache::SCHEMA),
];

/// How long a connection waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot open the state file {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// Not a SQLite database, or a damaged one: the operator must move it
    /// away; the bridge never overwrites it.
    #[error("the state file {path} is not a usable SQLite database ({source}). Move it away (e.g. `mv {path} {path}.broken`, keeping it for inspection) and start the bridge again: it then starts fresh, tells you to drop its old replication slot, and its backfill rebuilds the Chatwoot-GLPI mappings from the GLPI ids written in Chatwoot's additional_attributes, creating no duplicates in GLPI")]
    Unusable {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the {module} tables in the state file {path}: {source}")]
    Schema {
        module: &'static str,
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state file error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a change in the state file cannot be read (written by another version?): {0}")]
    Corrupt(String),
}

/// One connection to the state file.
pub struct State {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State").field("path", &self.path).finish()
    }
}

impl StateError {
    /// An error met while opening `path`: [`StateError::Unusable`] when
    /// SQLite says the file is not a database or is corrupt.
    fn opening(path: &Path, source: rusqlite::Error) -> StateError {
        use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(NotADatabase | DatabaseCorrupt) => StateError::Unusable { path, source },
            _ => StateError::Open { path, source },
        }
    }
}

/// Creates a missing state file readable by its owner only. The change log
/// and the planner's caches hold Chatwoot's hook settings, GLPI tokens
/// included, so the file must not be world-readable; SQLite gives its `-wal`
/// and `-shm` files the database file's permissions. An existing file is left
/// as the operator set it, and a failure here is left for SQLite's open to
/// report with the path.
fn create_private(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
}

impl State {
    /// Opens (creating if needed) the state file and applies every module's
    /// schema.
    pub fn open(path: impl AsRef<Path>) -> Result<State, StateError> {
        let path = path.as_ref().to_path_buf();
        create_private(&path);
        let conn = Connection::open(&path).map_err(|source| StateError::Open {
            path: path.clone(),
            source,
        })?;
        let open_err = |source| StateError::opening(&path, source);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        // FULL: a commit survives power loss, not only a process crash; the
        // change log's commit is what lets us confirm an LSN to PostgreSQL.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        for (module, sql) in SCHEMAS {
            conn.execute_batch(sql)
                .map_err(|source| match StateError::opening(&path, source) {
                    StateError::Open { path, source } => StateError::Schema {
                        module,
                        path,
                        source,
                    },
                    unusable => unusable,
                })?;
        }
        Ok(State { conn, path })
    }

    /// The SQLite connection, for modules that own tables in this file.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Mutable access, for transactions.
    pub fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_every_schema_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite3");
        {
            let state = State::open(&path).unwrap();
            let mode: String = state
                .conn()
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
        // Reopening applies the schemas again without error.
        let state = State::open(&path).unwrap();
        let tables: i64 = state
            .conn()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('changes', 'replication_state', 'backfill_progress')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 3);
    }

    #[test]
    fn a_new_state_file_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite3");
        // Kept open: SQLite removes the -wal and -shm files on the last close.
        let _state = State::open(&path).unwrap();
        for file in ["state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
    }

    #[test]
    fn open_reports_the_path_it_could_not_open() {
        let err = State::open("/nonexistent-dir/x/state.sqlite3").unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent-dir/x/state.sqlite3"),
            "{err}"
        );
    }
}
