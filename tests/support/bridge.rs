//! Sync test environments: a Chatwoot database on the shared cluster, a GLPI
//! emulator, and the bridge's workers (job-level tests) or the whole bridge
//! in-process (end-to-end tests). Owned by the worker engineer.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatwoot_glpi_bridge::glpi_emulator::{Emulator, EmulatorConfig, GlpiVersion, RecordedRequest};
use chatwoot_glpi_bridge::outbox::{self, JobKind};
use chatwoot_glpi_bridge::secret::Secret;
use chatwoot_glpi_bridge::state::mappings::GlpiPersonType;
use chatwoot_glpi_bridge::state::State;
use chatwoot_glpi_bridge::worker::job::JobSettings;
use chatwoot_glpi_bridge::worker::runtime::{AccountGlpi, AccountLookup, WorkerConfig, Workers};
use chatwoot_glpi_bridge::writeback::ChatwootDb;
use tokio::sync::{watch, Notify};

use super::{shared_cluster, wait_until, TestDb};

/// Token values of the emulator's default configuration.
pub const APP_TOKEN: &str = "emulator-app-token";
pub const USER_TOKEN: &str = "emulator-user-token";

/// Accounts and their GLPI settings, editable while the workers run.
#[derive(Default)]
pub struct StaticAccounts {
    pub accounts: Mutex<HashMap<i64, AccountGlpi>>,
}

impl AccountLookup for StaticAccounts {
    fn account(&self, account_id: i64) -> Result<Option<AccountGlpi>, String> {
        Ok(self.accounts.lock().unwrap().get(&account_id).cloned())
    }
}

/// Settings of an account pointing at `emulator`.
pub fn account_glpi(emulator: &Emulator, person_type: GlpiPersonType) -> AccountGlpi {
    AccountGlpi {
        api_url: emulator.api_url(),
        app_token: Some(Secret::new(APP_TOKEN)),
        user_token: Secret::new(USER_TOKEN),
        jobs: JobSettings {
            person_type,
            entity_id: 0,
            ticket_type: 1,
            category_id: None,
            default_user_id: None,
        },
    }
}

/// Workers running against an emulator, fed by jobs the test enqueues.
pub struct JobEnv {
    pub db: TestDb,
    pub emulator: Emulator,
    pub accounts: Arc<StaticAccounts>,
    pub state_path: PathBuf,
    _dir: tempfile::TempDir,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl JobEnv {
    /// A database with account 1, an emulator of `version`, account 1 synced
    /// in `person_type` mode, and running workers.
    pub async fn start(
        version: GlpiVersion,
        person_type: GlpiPersonType,
        config: WorkerConfig,
    ) -> JobEnv {
        let db = shared_cluster().create_database();
        db.execute(&super::chatwoot::insert_account_sql("Acme"))
            .await;
        let emulator = Emulator::start(EmulatorConfig {
            version,
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator");
        let accounts = Arc::new(StaticAccounts::default());
        accounts
            .accounts
            .lock()
            .unwrap()
            .insert(1, account_glpi(&emulator, person_type));
        let dir = tempfile::tempdir().expect("tempdir");
        let state_path = dir.path().join("state.sqlite3");
        let state = State::open(&state_path).expect("state");
        let chatwoot = ChatwootDb::new(db.url.parse().expect("url"), 2);
        let wake = Arc::new(Notify::new());
        let config = WorkerConfig {
            glpi_allow_http: true,
            base_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            unconfigured_wait: Duration::from_millis(100),
            ..config
        };
        let lookup: Arc<dyn AccountLookup> = accounts.clone();
        let workers = Workers::new(state, chatwoot, lookup, config, wake.clone());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(workers.run(stop_rx, Duration::from_secs(5)));
        JobEnv {
            db,
            emulator,
            accounts,
            state_path,
            _dir: dir,
            wake,
            stop,
            task: Some(task),
        }
    }

    /// A connection of the test's own to the state file.
    pub fn state(&self) -> State {
        State::open(&self.state_path).expect("state")
    }

    /// Enqueues jobs (account 1) in one transaction and wakes the workers.
    pub fn enqueue(&self, jobs: &[(&str, &str, JobKind)]) {
        let mut state = self.state();
        let tx = state.conn_mut().transaction().unwrap();
        for (queue, key, kind) in jobs {
            outbox::enqueue(&tx, 1, queue, key, kind).unwrap();
        }
        tx.commit().unwrap();
        self.wake.notify_one();
    }

    /// Waits until every pending job is done, except those waiting behind a
    /// parked job of their queue.
    pub async fn drain(&self) {
        let path = self.state_path.clone();
        wait_until(Duration::from_secs(30), "the outbox to drain", move || {
            let path = path.clone();
            async move {
                let state = State::open(&path).unwrap();
                let depth = outbox::depth(state.conn()).unwrap();
                let blocked: u64 = outbox::parked(state.conn())
                    .unwrap()
                    .iter()
                    .map(|p| p.blocked_jobs)
                    .sum();
                depth.pending == blocked
            }
        })
        .await;
    }

    /// Requests to GLPI, without session calls.
    pub fn glpi_requests(&self) -> Vec<RecordedRequest> {
        self.emulator
            .requests()
            .into_iter()
            .filter(|r| !r.path.starts_with("/initSession") && !r.path.starts_with("/killSession"))
            .collect()
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
