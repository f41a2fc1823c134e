//! Running the replication stage against a test database (owned by the
//! replication engineer), in process
//! ([`InProcessBridge`]) or as the real binary ([`BridgeProcess`]), and
//! reading what it wrote to the change log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chatwoot_glpi_bridge::chatwoot::{Change, CommittedChange, RowOp, Table};
use chatwoot_glpi_bridge::replication::{self, ReplicationError, ReplicationOptions};
use chatwoot_glpi_bridge::secret::Secret;
use chatwoot_glpi_bridge::state::{replication as repl_state, State};
use tokio_util::sync::CancellationToken;

use super::TestDb;

/// `replication::run` on a task of the test's runtime.
pub struct InProcessBridge {
    pub cancel: CancellationToken,
    pub state_path: PathBuf,
    task: tokio::task::JoinHandle<Result<(), ReplicationError>>,
}

impl InProcessBridge {
    /// Starts replication of `db` (superuser; slot [`TestDb::slot_name`];
    /// tweak the URL in `tweak` for another role) with a state file at
    /// `state_path`; `tweak` adjusts the options (defaults here: 1 s status
    /// interval, so the slot visibly advances within a test).
    pub fn start(
        db: &TestDb,
        state_path: &Path,
        tweak: impl FnOnce(&mut ReplicationOptions),
    ) -> InProcessBridge {
        init_test_logging();
        let mut options =
            ReplicationOptions::new(Secret::new(db.url.as_str()), state_path.to_path_buf());
        options.status_interval = Duration::from_secs(1);
        options.names.slot = db.slot_name();
        tweak(&mut options);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(replication::run(options, cancel.clone()));
        InProcessBridge {
            cancel,
            state_path: state_path.to_path_buf(),
            task,
        }
    }

    /// Cancels and waits for the run to end; returns its result.
    pub async fn stop(self) -> Result<(), ReplicationError> {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("replication did not stop within 60 s")
            .expect("replication task panicked")
    }

    /// Waits for the run to end by itself (an error, typically).
    pub async fn join(self, timeout: Duration) -> Result<(), ReplicationError> {
        tokio::time::timeout(timeout, self.task)
            .await
            .expect("replication did not end in time")
            .expect("replication task panicked")
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Panics with the run's error if it has ended.
    pub fn assert_running(&mut self) {
        use futures_util::FutureExt;
        if let Some(ended) = (&mut self.task).now_or_never() {
            panic!("replication ended early: {ended:?}");
        }
    }

    /// Waits until the backfill is complete (failing fast if the run ends).
    pub async fn wait_backfilled(&mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while !backfill_complete(&self.state_path) {
            self.assert_running();
            assert!(
                tokio::time::Instant::now() < deadline,
                "backfill did not complete in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every key is in the change log (failing fast if the run
    /// ends).
    pub async fn wait_for_keys(&mut self, keys: &[ChangeKey], timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.assert_running();
            let counts = change_counts(&self.state_path);
            let missing: Vec<&ChangeKey> =
                keys.iter().filter(|k| !counts.contains_key(k)).collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} changes never reached the change log, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Log lines of the bridge go to the test's output (shown for failing
/// tests); `BRIDGE_TEST_LOG` sets the filter (default `warn`).
pub fn init_test_logging() {
    let filter = std::env::var("BRIDGE_TEST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}

/// The real binary running `run`.
pub struct BridgeProcess {
    pub child: Child,
}

impl BridgeProcess {
    /// Runs `run` on `db` with its own slot name.
    pub fn spawn(db: &TestDb, state_path: &Path, extra_args: &[&str]) -> BridgeProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_chatwoot-glpi-bridge"))
            .arg("run")
            // The planner would drain the change log this harness inspects.
            .arg("--replication-only")
            .arg("--state")
            .arg(state_path)
            .args(["--status-interval-secs", "1"])
            .args(["--slot", &db.slot_name()])
            .args(extra_args)
            .env("DATABASE_URL", &db.url)
            .env(
                "RUST_LOG",
                std::env::var("BRIDGE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn chatwoot-glpi-bridge run");
        BridgeProcess { child }
    }

    pub fn kill9(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (at most 60 s) for a clean exit; returns whether
    /// it exited with success.
    pub fn terminate(&mut self) -> bool {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..600 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill9();
        false
    }
}

impl Drop for BridgeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill9();
        }
    }
}

/// Key of a row change: (table, id, op).
pub type ChangeKey = (Table, i64, RowOp);

/// Every change in the change log, in order (the backfill must be
/// complete: an incomplete one is hidden from readers).
pub fn change_log(state_path: &Path) -> Vec<CommittedChange> {
    let state = State::open(state_path).expect("open state file");
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let batch = state.read_batch(after, 10_000).expect("read change log");
        let Some(last) = batch.last() else {
            return out;
        };
        after = last.seq;
        out.extend(batch.into_iter().map(|c| c.change));
    }
}

/// How many times each (table, id, op) appears in the change log.
pub fn change_counts(state_path: &Path) -> HashMap<ChangeKey, usize> {
    let mut counts = HashMap::new();
    for change in change_log(state_path) {
        if let Change::Row { op, row } = &change.change {
            *counts.entry((row.table(), row.id(), *op)).or_insert(0) += 1;
        }
    }
    counts
}

/// Whether the state file says the backfill is complete.
pub fn backfill_complete(state_path: &Path) -> bool {
    if !state_path.exists() {
        return false;
    }
    match State::open(state_path) {
        Ok(state) => repl_state::load(state.conn())
            .map(|s| s.backfill.is_complete())
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Rows the backfill has stored so far, over all tables (0 before it starts
/// or while the state file is busy).
pub fn backfill_rows_done(state_path: &Path) -> u64 {
    if !state_path.exists() {
        return 0;
    }
    State::open(state_path)
        .and_then(|state| repl_state::backfill_progress(state.conn()))
        .map(|tables| tables.iter().map(|t| t.rows_done).sum())
        .unwrap_or(0)
}

/// The ids of `table` in the database.
pub async fn ids(client: &tokio_postgres::Client, table: Table) -> Vec<i64> {
    client
        .query(
            &format!("SELECT id::bigint FROM {} ORDER BY id", table.name()),
            &[],
        )
        .await
        .expect("select ids")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The slot's `confirmed_flush_lsn` (as a number), if the slot exists.
pub async fn confirmed_flush_lsn(client: &tokio_postgres::Client, slot: &str) -> Option<u64> {
    let row = client
        .query_opt(
            "SELECT (confirmed_flush_lsn - '0/0'::pg_lsn)::bigint FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("read slot");
    row.and_then(|r| r.get::<_, Option<i64>>(0))
        .map(|v| v as u64)
}

/// A temp dir for a state file.
pub fn state_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bridge.sqlite3");
    (dir, path)
}
