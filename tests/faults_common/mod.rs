//! A worker rig for the fault tests: a real Chatwoot database (harness), the
//! GLPI emulator, a state file, and the real `Workers` loop draining the
//! outbox. Jobs are enqueued directly, so a test controls exactly which GLPI
//! create meets which fault.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatwoot_glpi_bridge::glpi::GlpiConfig;
use chatwoot_glpi_bridge::glpi_emulator::{Emulator, EmulatorConfig, GlpiVersion};
use chatwoot_glpi_bridge::outbox::{self, Job, JobKind};
use chatwoot_glpi_bridge::secret::Secret;
use chatwoot_glpi_bridge::state::mappings::GlpiPersonType;
use chatwoot_glpi_bridge::state::State;
use chatwoot_glpi_bridge::worker::contact::ContactLocks;
use chatwoot_glpi_bridge::worker::job::{JobContext, JobSettings};
use chatwoot_glpi_bridge::worker::runtime::{AccountGlpi, AccountLookup, WorkerConfig, Workers};
use chatwoot_glpi_bridge::worker::senders::SenderNames;
use chatwoot_glpi_bridge::writeback::ChatwootDb;
use tokio::sync::{watch, Notify};

use crate::support::{self, TestDb};

pub mod process;

pub struct Rig {
    pub db: TestDb,
    pub glpi: Emulator,
    pub account: AccountGlpi,
    pub account_id: i64,
    _dir: tempfile::TempDir,
    pub state_path: PathBuf,
}

struct OneAccount(AccountGlpi);

impl AccountLookup for OneAccount {
    fn account(&self, _account_id: i64) -> Result<Option<AccountGlpi>, String> {
        Ok(Some(self.0.clone()))
    }
}

impl Rig {
    /// A Chatwoot database with account 1 (agent user 1 "Agent Smith"), an
    /// emulator of `version`, an empty state file.
    pub async fn new(version: GlpiVersion, person_type: GlpiPersonType) -> Rig {
        let db = support::shared_cluster().create_database();
        db.execute(&support::chatwoot::insert_account_sql("Acme"))
            .await;
        db.execute(
            "INSERT INTO users (uid, name, email, created_at, updated_at) \
             VALUES ('agent@acme.test', 'Agent Smith', 'agent@acme.test', now(), now())",
        )
        .await;
        let glpi = Emulator::start(EmulatorConfig {
            version,
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator");
        let account = AccountGlpi {
            api_url: glpi.api_url(),
            app_token: Some(Secret::new("emulator-app-token")),
            user_token: Secret::new("emulator-user-token"),
            jobs: JobSettings {
                person_type,
                entity_id: 0,
                ticket_type: 1,
                category_id: None,
                default_user_id: None,
            },
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let state_path = dir.path().join("state.sqlite3");
        State::open(&state_path).expect("state");
        Rig {
            db,
            glpi,
            account,
            account_id: 1,
            _dir: dir,
            state_path,
        }
    }

    pub fn state(&self) -> State {
        State::open(&self.state_path).expect("state")
    }

    pub fn chatwoot(&self) -> ChatwootDb {
        ChatwootDb::new(self.db.url.parse().expect("url"), 2)
    }

    /// Enqueues a job in `queue` under idempotency key `key`.
    pub fn enqueue(&self, queue: &str, key: &str, kind: JobKind) {
        let state = self.state();
        outbox::enqueue(state.conn(), self.account_id, queue, key, &kind).expect("enqueue");
    }

    /// The job a worker would run next.
    pub fn next_job(&self) -> Option<Job> {
        let state = self.state();
        outbox::next_runnable(state.conn(), 1, &Default::default())
            .expect("outbox")
            .into_iter()
            .next()
    }

    /// A job context like the workers build, for running one job by hand.
    pub fn context(&self) -> JobContext {
        let mut config = GlpiConfig::new(
            self.account.api_url.clone(),
            self.account.user_token.clone(),
        );
        config.app_token = self.account.app_token.clone();
        let chatwoot = self.chatwoot();
        JobContext {
            glpi: chatwoot_glpi_bridge::glpi::GlpiClient::new(config).expect("client"),
            settings: self.account.jobs.clone(),
            state: Arc::new(std::sync::Mutex::new(self.state())),
            senders: Arc::new(SenderNames::new(chatwoot.clone())),
            chatwoot,
            contact_locks: Arc::new(ContactLocks::default()),
            committer: chatwoot_glpi_bridge::worker::commit::Committer::start(&self.state_path)
                .expect("committer"),
            frontend_url: None,
        }
    }

    /// Runs the real worker loop until every pending job is done or stuck
    /// behind a parked one (or
    /// `timeout`), then stops it gracefully. Returns the parked jobs' reasons.
    pub async fn drain(&self, timeout: Duration) -> Vec<String> {
        let config = WorkerConfig {
            base_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..WorkerConfig::default()
        };
        let workers = Workers::new(
            self.state(),
            self.chatwoot(),
            Arc::new(OneAccount(self.account.clone())),
            config,
            Arc::new(Notify::new()),
        );
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(workers.run(stopped, Duration::from_secs(5)));
        let start = Instant::now();
        loop {
            let depth = outbox::depth(self.state().conn()).expect("depth");
            if self.runnable_or_waiting() == 0 {
                break;
            }
            assert!(
                start.elapsed() < timeout,
                "outbox not drained after {timeout:?}: {depth:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.send(true).expect("stop");
        task.await.expect("workers");
        outbox::parked(self.state().conn())
            .expect("parked")
            .into_iter()
            .map(|p| format!("{}: {}", p.key, p.reason))
            .collect()
    }

    /// Pending jobs not stuck behind a parked job of their queue.
    pub fn runnable_or_waiting(&self) -> i64 {
        self.state()
            .conn()
            .query_row(
                "SELECT count(*) FROM outbox_jobs j WHERE j.state = 'pending' AND NOT EXISTS \
                 (SELECT 1 FROM outbox_jobs p WHERE p.queue = j.queue AND p.state = 'parked')",
                [],
                |r| r.get(0),
            )
            .expect("outbox")
    }

    /// Items of `itemtype` the emulator holds.
    pub fn count(&self, itemtype: &str) -> usize {
        self.glpi.items(itemtype).len()
    }

    /// Successful POST creates of `itemtype` seen by the emulator, plus those
    /// dropped after commit (status 0 or any status, as recorded).
    pub fn posts(&self, itemtype: &str) -> usize {
        let path = format!("/{itemtype}/");
        let bare = format!("/{itemtype}");
        self.glpi
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && (r.path == path || r.path == bare))
            .count()
    }
}
