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
//!
//! Every write transaction starts with [`write_transaction`] (`BEGIN
//! IMMEDIATE`): a deferred transaction that reads first and writes later must
//! upgrade its read lock, and SQLite refuses that upgrade at once ("database
//! is locked") while another connection writes, without consulting
//! `busy_timeout`. Taking the write lock at `BEGIN` makes it wait instead.
//!
//! Commands that only look ([`State::open_read_only`]: `status`, `check`,
//! the metrics sampler) open the file read-only, apply no schema and never
//! create it, so they cannot take the write lock from a running bridge.

pub mod changes;
pub mod mappings;
pub mod replication;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

/// Every module's schema, applied in this order by [`State::open`].
/// Append yours here (`(name, sql)`; the name appears in errors).
pub const SCHEMAS: &[(&str, &str)] = &[
    ("changes", changes::SCHEMA),
    ("replication", replication::SCHEMA),
    ("mappings", mappings::SCHEMA),
    ("outbox", crate::outbox::SCHEMA),
    ("planner", crate::planner::cache::SCHEMA),
];

/// Changes to tables that exist in files written by older versions, which
/// `CREATE TABLE IF NOT EXISTS` cannot make (a new column), applied after
/// [`SCHEMAS`] in the same transaction; each must be idempotent.
#[allow(clippy::type_complexity)]
pub const UPGRADES: &[(&str, fn(&Connection) -> rusqlite::Result<()>)] =
    &[("planner", crate::planner::cache::upgrade)];

/// How long a connection waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// SQLite could not open or create the file, or the `-wal`/`-shm`
    /// files it keeps beside it: almost always permissions.
    #[error(
        "cannot open the state file {path}: the file, and the directory it is in (SQLite \
         creates {path}-wal and {path}-shm beside it), must exist and be writable by the user \
         the bridge runs as; in the Docker image that user is uid 10001 (`chown -R 10001:10001` \
         the mounted directory), and the systemd unit's StateDirectory= creates it for you; \
         SQLite said"
    )]
    CannotOpen {
        path: PathBuf,
        source: rusqlite::Error,
    },
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
    /// Commands that only read never create a state file.
    #[error("there is no state file at {path}")]
    Missing { path: PathBuf },
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
        use rusqlite::ErrorCode::{CannotOpen, DatabaseCorrupt, NotADatabase, ReadOnly};
        let path = path.to_path_buf();
        match source.sqlite_error_code() {
            Some(NotADatabase | DatabaseCorrupt) => StateError::Unusable { path, source },
            Some(CannotOpen | ReadOnly) => StateError::CannotOpen { path, source },
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

/// The tables a schema declares (`CREATE TABLE IF NOT EXISTS name`).
fn declared_tables(sql: &str) -> impl Iterator<Item = &str> {
    sql.split("CREATE TABLE IF NOT EXISTS")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| c == '(' || c.is_whitespace())
                .find(|w| !w.is_empty())
        })
}

/// `file:///…?immutable=1` for a state file without a `-wal` file, else
/// `None`.
fn immutable_uri(path: &Path) -> Option<String> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if Path::new(&wal).exists() {
        return None;
    }
    let absolute = std::fs::canonicalize(path).ok()?;
    let mut uri = url::Url::from_file_path(absolute).ok()?;
    uri.set_query(Some("immutable=1"));
    Some(uri.into())
}

/// Starts a write transaction on the state file: `BEGIN IMMEDIATE`, which
/// waits (up to the busy timeout) for another connection's write to finish.
/// Every transaction that writes uses this, never a deferred `BEGIN`: a
/// deferred transaction that has read cannot wait for the write lock (see
/// the module comment).
pub fn write_transaction(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Puts the file in WAL mode. On a new file this needs the exclusive lock,
/// which SQLite's busy handler does not wait for while another connection is
/// switching the same file, so a busy answer is retried here (once the file
/// is in WAL mode, the pragma only reads).
fn use_wal(conn: &Connection) -> rusqlite::Result<()> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

impl State {
    /// Opens (creating if needed) the state file and applies every module's
    /// schema.
    pub fn open(path: impl AsRef<Path>) -> Result<State, StateError> {
        let path = path.as_ref().to_path_buf();
        create_private(&path);
        let mut conn =
            Connection::open(&path).map_err(|source| StateError::opening(&path, source))?;
        let open_err = |source| StateError::opening(&path, source);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // Only takes effect on a new, empty file (before its first table):
        // pages the planner's pruning frees can then be given back to the
        // file system (`PRAGMA incremental_vacuum`). An existing file keeps
        // its mode (switching needs a VACUUM; see the README) and reuses
        // freed pages instead.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .map_err(open_err)?;
        use_wal(&conn).map_err(open_err)?;
        // FULL: a commit survives power loss, not only a process crash; the
        // change log's commit is what lets us confirm an LSN to PostgreSQL.
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        // One write transaction for every schema: statement by statement
        // (deferred), a `CREATE … IF NOT EXISTS` that reads the schema then
        // writes fails at once when another connection created the file in
        // between, instead of waiting.
        let tx = write_transaction(&mut conn).map_err(open_err)?;
        for (module, sql) in SCHEMAS {
            tx.execute_batch(sql)
                .map_err(|source| match StateError::opening(&path, source) {
                    StateError::Open { path, source } => StateError::Schema {
                        module,
                        path,
                        source,
                    },
                    unusable => unusable,
                })?;
        }
        for (module, upgrade) in UPGRADES {
            upgrade(&tx).map_err(|source| StateError::Schema {
                module,
                path: path.clone(),
                source,
            })?;
        }
        tx.commit().map_err(open_err)?;
        Ok(State { conn, path })
    }

    /// Opens an existing state file for reading only: no schema applied, no
    /// pragma written, nothing created ([`StateError::Missing`] if there is
    /// no file). Safe beside a running bridge: it never takes the write lock.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<State, StateError> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(StateError::Missing { path });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = match immutable_uri(&path) {
            // No `-wal` file: no connection has the file open (SQLite removes
            // it on the last close) and the database is all in the main
            // file. A plain read-only open would create `-wal` and `-shm`
            // and leave them behind; reading the file as immutable creates
            // nothing.
            Some(uri) => Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI),
            // A bridge has the file open: read beside it through its WAL.
            None => Connection::open_with_flags(&path, flags),
        }
        .map_err(|source| StateError::opening(&path, source))?;
        let open_err = |source| StateError::opening(&path, source);
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // Reading the schema here reports a damaged or foreign file as
        // `Unusable` at open, like `open` does.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(open_err)?;
        Ok(State { conn, path })
    }

    /// Tables the current schemas declare that this file lacks: a file
    /// written by an older version, which `run` (it applies the schemas)
    /// brings up to date, or not the bridge's file at all.
    pub fn missing_tables(&self) -> Result<Vec<String>, StateError> {
        let mut missing = Vec::new();
        for (_, sql) in SCHEMAS {
            for table in declared_tables(sql) {
                let found: i64 = self.conn.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                    [table],
                    |r| r.get(0),
                )?;
                if found == 0 {
                    missing.push(table.to_owned());
                }
            }
        }
        Ok(missing)
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

    /// What the state file takes on disk (for `status` and the
    /// `state_file_bytes` gauge).
    pub fn disk_usage(&self) -> Result<DiskUsage, StateError> {
        let size = |path: &Path| std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        let pragma = |name: &str| {
            self.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
        };
        Ok(DiskUsage {
            bytes: size(&self.path) + size(Path::new(&wal)),
            free_bytes: (pragma("freelist_count")? * pragma("page_size")?).max(0) as u64,
        })
    }
}

/// The state file's size on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// The file and its `-wal` file.
    pub bytes: u64,
    /// Free pages inside the file, which SQLite reuses for new rows.
    pub free_bytes: u64,
}

/// For tests of writers: another connection takes the write lock (an
/// uncommitted write, like a worker's commit in progress) and keeps it for
/// `hold`; returns once the lock is held.
#[cfg(test)]
pub(crate) fn hold_write_lock(path: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let mut other = State::open(path).unwrap();
    let (locked, wait_locked) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let tx = write_transaction(other.conn_mut()).unwrap();
        tx.execute(
            "UPDATE replication_state SET confirmed_lsn = confirmed_lsn",
            [],
        )
        .unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(hold);
        tx.commit().unwrap();
    });
    wait_locked.recv().unwrap();
    holder
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
    fn processes_opening_one_new_state_file_at_once_all_succeed() {
        // `run` opens several connections while `status`, `resync` or a
        // test may open the same file: none may fail with "database is
        // locked" (seen when schema statements ran as deferred
        // transactions on a file another connection was creating).
        for round in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.sqlite3");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
            let openers: Vec<_> = (0..8)
                .map(|_| {
                    let (path, barrier) = (path.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        State::open(&path).map(|_| ())
                    })
                })
                .collect();
            for opener in openers {
                let result = opener.join().unwrap();
                assert!(result.is_ok(), "round {round}: {:?}", result.err());
            }
        }
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

    /// The planner's "database is locked" errors, reproduced: a deferred
    /// transaction that has read cannot wait for the write lock (SQLite
    /// fails the upgrade at once, `busy_timeout` notwithstanding), while
    /// `write_transaction` waits for the other writer and goes on.
    #[test]
    fn a_write_transaction_waits_where_a_deferred_upgrade_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite3");
        let mut state = State::open(&path).unwrap();
        let write = "UPDATE replication_state SET slot_name = slot_name";
        let read = |tx: &Transaction<'_>| {
            tx.query_row("SELECT count(*) FROM replication_state", [], |r| {
                r.get::<_, i64>(0)
            })
            .unwrap()
        };

        let holder = hold_write_lock(&path, Duration::from_millis(300));
        let started = std::time::Instant::now();
        let deferred = state.conn_mut().transaction().unwrap();
        read(&deferred);
        let err = deferred.execute(write, []).unwrap_err();
        assert_eq!(
            err.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy),
            "{err}"
        );
        assert!(
            started.elapsed() < BUSY_TIMEOUT / 2,
            "failed only after waiting"
        );
        drop(deferred);
        holder.join().unwrap();

        let holder = hold_write_lock(&path, Duration::from_millis(300));
        let started = std::time::Instant::now();
        let tx = write_transaction(state.conn_mut()).unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "did not wait"
        );
        read(&tx);
        tx.execute(write, []).unwrap();
        tx.commit().unwrap();
        holder.join().unwrap();
    }

    #[test]
    fn every_connection_waits_for_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite3");
        let busy_timeout = |state: &State| {
            state
                .conn()
                .query_row("PRAGMA busy_timeout", [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        let writer = State::open(&path).unwrap();
        assert_eq!(busy_timeout(&writer), BUSY_TIMEOUT.as_millis() as i64);
        let reader = State::open_read_only(&path).unwrap();
        assert_eq!(busy_timeout(&reader), BUSY_TIMEOUT.as_millis() as i64);
    }

    #[test]
    fn read_only_opening_creates_nothing_and_never_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite3");

        let err = State::open_read_only(&path).unwrap_err();
        assert!(matches!(err, StateError::Missing { .. }), "{err:?}");
        assert!(err.to_string().contains("state.sqlite3"), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        drop(State::open(&path).unwrap());
        let files = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        let before = files();
        {
            let state = State::open_read_only(&path).unwrap();
            let rows: i64 = state
                .conn()
                .query_row("SELECT count(*) FROM replication_state", [], |r| r.get(0))
                .unwrap();
            assert_eq!(rows, 1);
            let err = state
                .conn()
                .execute("UPDATE replication_state SET slot_name = slot_name", [])
                .unwrap_err();
            assert_eq!(
                err.sqlite_error_code(),
                Some(rusqlite::ErrorCode::ReadOnly),
                "{err}"
            );
        }
        assert_eq!(files(), before);
        let state = State::open_read_only(&path).unwrap();
        assert_eq!(state.missing_tables().unwrap(), Vec::<String>::new());
        drop(state);

        // Beside a writer holding the write lock, reading goes on at once.
        let holder = hold_write_lock(&path, Duration::from_millis(300));
        let started = std::time::Instant::now();
        let state = State::open_read_only(&path).unwrap();
        crate::state::replication::load(state.conn()).unwrap();
        assert!(started.elapsed() < Duration::from_millis(250));
        holder.join().unwrap();
    }

    #[test]
    fn tables_an_older_file_lacks_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite3");
        drop(State::open(&path).unwrap());
        {
            let state = State::open(&path).unwrap();
            state
                .conn()
                .execute_batch("DROP TABLE outbox_jobs")
                .unwrap();
        }
        let state = State::open_read_only(&path).unwrap();
        assert_eq!(state.missing_tables().unwrap(), ["outbox_jobs"]);
        let all: Vec<&str> = SCHEMAS
            .iter()
            .flat_map(|(_, sql)| declared_tables(sql))
            .collect();
        assert!(
            all.contains(&"changes") && all.contains(&"contact_links"),
            "{all:?}"
        );
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
