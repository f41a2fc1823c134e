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

/// A GLPI administrator's hands on `emulator`: one API call outside the
/// bridge (its own session); returns the HTTP status.
pub async fn glpi_admin(
    emulator: &Emulator,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> u16 {
    let http = reqwest::Client::new();
    let base = emulator.api_url();
    let session: serde_json::Value = http
        .get(format!("{base}/initSession"))
        .header("App-Token", APP_TOKEN)
        .header("Authorization", format!("user_token {USER_TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut request = http
        .request(method, format!("{base}{path}"))
        .header("App-Token", APP_TOKEN)
        .header("Session-Token", session["session_token"].as_str().unwrap());
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap().status().as_u16()
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
    /// The common case: GLPI 10, user mode, default worker settings.
    pub async fn start_user_mode_glpi10() -> JobEnv {
        Self::start(
            GlpiVersion::V10,
            GlpiPersonType::User,
            WorkerConfig::default(),
        )
        .await
    }

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
        let tx = chatwoot_glpi_bridge::state::write_transaction(state.conn_mut()).unwrap();
        for (queue, key, kind) in jobs {
            outbox::enqueue(&tx, 1, queue, key, kind).unwrap();
        }
        tx.commit().unwrap();
        self.wake.notify_one();
    }

    /// Waits until every pending job is done, except those waiting behind a
    /// parked job of their queue.
    pub async fn drain(&self) {
        outbox_drained(&self.state_path, Duration::from_secs(30)).await;
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

/// How an end-to-end environment is set up.
#[derive(Clone, Debug)]
pub struct BridgeSetup {
    pub version: GlpiVersion,
    /// The hook's `settings` (api_url and tokens are filled in).
    pub settings: serde_json::Value,
    pub frontend_url: Option<String>,
    pub workers: WorkerConfig,
    /// Emulator latency per request.
    pub latency: Option<Duration>,
    /// SQL run after the accounts and hooks exist and before the bridge
    /// starts (history it must backfill).
    pub seed_sql: Option<String>,
    /// How long [`BridgeEnv::settle`] waits at most.
    pub settle_timeout: Duration,
    /// Which history the first start's backfill sends to GLPI.
    pub backfill: chatwoot_glpi_bridge::config::BackfillPolicy,
    /// Appended to the database URL the bridge is given (e.g.
    /// `?sslmode=require`); the test's own connections do not use it.
    pub database_url_suffix: String,
}

impl BridgeSetup {
    /// User or contact mode, GLPI 10, default settings.
    pub fn new(sync_type: &str) -> BridgeSetup {
        BridgeSetup {
            version: GlpiVersion::V10,
            settings: serde_json::json!({
                "entity_id": "0",
                "sync_type": sync_type,
                "ticket_type": "1",
                "category_id": "",
                "default_user_id": "",
            }),
            frontend_url: Some("https://chat.example.com".to_owned()),
            workers: WorkerConfig::default(),
            latency: None,
            seed_sql: None,
            settle_timeout: Duration::from_secs(60),
            backfill: chatwoot_glpi_bridge::config::BackfillPolicy::All,
            database_url_suffix: String::new(),
        }
    }
}

/// Waits until every pending job of the state file at `path` is done,
/// except those waiting behind a parked job of their queue.
async fn outbox_drained(path: &std::path::Path, timeout: Duration) {
    let path = path.to_path_buf();
    wait_until(timeout, "the outbox to drain", move || {
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

/// What [`BridgeEnv::synced_hello`] made.
#[derive(Clone, Copy, Debug)]
pub struct SyncedHello {
    pub contact: i64,
    pub conversation: i64,
    pub message: i64,
    pub ticket: i64,
}

/// The `crm_integration` feature flag (bit 43).
pub const CRM_INTEGRATION: i64 = 1 << 43;

/// Chatwoot's database, the GLPI emulator, and the whole bridge running
/// in-process (replication, planner, workers, write-back), as `run` runs it.
/// Account 1 syncs to `emulator` through an enabled `glpi` hook; account 2
/// syncs to `probe` and is used by [`BridgeEnv::settle`] as a barrier.
pub struct BridgeEnv {
    pub db: TestDb,
    pub emulator: Emulator,
    pub probe: Emulator,
    pub client: tokio_postgres::Client,
    pub state_path: PathBuf,
    pub hook_id: i64,
    /// What the bridge reports, as `/metrics` serves it.
    pub metrics: Arc<chatwoot_glpi_bridge::observability::Metrics>,
    _dir: tempfile::TempDir,
    cancel: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    probes: std::sync::atomic::AtomicU32,
    settle_timeout: Duration,
}

/// The hook settings for `emulator`, merged over `settings`.
pub fn hook_settings(emulator: &Emulator, settings: &serde_json::Value) -> serde_json::Value {
    let mut s = settings.clone();
    s["api_url"] = serde_json::json!(emulator.api_url());
    s["app_token"] = serde_json::json!(APP_TOKEN);
    s["user_token"] = serde_json::json!(USER_TOKEN);
    s
}

impl BridgeEnv {
    /// On the shared cluster.
    pub async fn start(setup: BridgeSetup) -> BridgeEnv {
        Self::start_on(shared_cluster(), setup).await
    }

    /// On `cluster` (e.g. one without the harness's unsafe speed-ups).
    pub async fn start_on(cluster: &super::Cluster, setup: BridgeSetup) -> BridgeEnv {
        let db = cluster.create_database();
        let client = db.connect().await;
        let emulator = Emulator::start(EmulatorConfig {
            version: setup.version,
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator");
        if let Some(latency) = setup.latency {
            emulator.inject(chatwoot_glpi_bridge::glpi_emulator::Fault::Latency(latency));
        }
        let probe = Emulator::start(EmulatorConfig::default())
            .await
            .expect("probe emulator");
        client
            .batch_execute(&format!(
                "INSERT INTO accounts (name, feature_flags, created_at, updated_at) VALUES
                   ('Acme', {CRM_INTEGRATION}, now(), now()), ('Probe', {CRM_INTEGRATION}, now(), now());
                 INSERT INTO inboxes (channel_id, account_id, name, created_at, updated_at, channel_type)
                   VALUES (1, 1, 'Website', now(), now(), 'Channel::WebWidget');"
            ))
            .await
            .unwrap();
        let hook_id: i64 = client
            .query_one(
                "INSERT INTO integrations_hooks (account_id, app_id, status, hook_type, settings, created_at, updated_at)
                 VALUES (1, 'glpi', 1, 0, $1::text::jsonb, now(), now()) RETURNING id",
                &[&hook_settings(&emulator, &setup.settings).to_string()],
            )
            .await
            .unwrap()
            .get(0);
        client
            .execute(
                "INSERT INTO integrations_hooks (account_id, app_id, status, hook_type, settings, created_at, updated_at)
                 VALUES (2, 'glpi', 1, 0, $1::text::jsonb, now(), now())",
                &[&hook_settings(&probe, &serde_json::json!({"sync_type": "user"})).to_string()],
            )
            .await
            .unwrap();
        if let Some(sql) = &setup.seed_sql {
            client
                .batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{e:?} running the seed"));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let state_path = dir.path().join("state.sqlite3");
        let mut options = chatwoot_glpi_bridge::cli::run::BridgeOptions::new(
            Secret::new(format!("{}{}", db.url, setup.database_url_suffix)),
            state_path.clone(),
        );
        options.replication.names.slot = format!("s_{}", db.name);
        options.replication.names.publication = format!("p_{}", db.name);
        options.replication.status_interval = Duration::from_millis(200);
        options.replication.backfill = setup.backfill;
        options.workers = WorkerConfig {
            frontend_url: setup.frontend_url.clone(),
            glpi_allow_http: true,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(500),
            unconfigured_wait: Duration::from_millis(200),
            ..setup.workers.clone()
        };
        let metrics = Arc::new(chatwoot_glpi_bridge::observability::Metrics::new());
        options.metrics = Some(metrics.clone());
        let cancel = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(chatwoot_glpi_bridge::cli::run::run_bridge(
            options,
            cancel.clone(),
        ));
        let env = BridgeEnv {
            db,
            emulator,
            probe,
            client,
            state_path,
            hook_id,
            metrics,
            _dir: dir,
            cancel,
            task: Some(task),
            probes: std::sync::atomic::AtomicU32::new(0),
            settle_timeout: setup.settle_timeout,
        };
        // The first probe must come through the stream: a probe caught in
        // the backfill's snapshot is history, which a backfill policy other
        // than `all` does not send.
        let path = env.state_path.clone();
        wait_until(
            setup.settle_timeout,
            "the backfill to complete",
            move || {
                let done = super::replication::backfill_complete(&path);
                async move { done }
            },
        )
        .await;
        env.settle().await;
        env
    }

    /// Runs SQL on Chatwoot's database.
    pub async fn sql(&self, sql: &str) {
        self.client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{e:?} running {sql:.300}"));
    }

    /// Runs an INSERT … RETURNING id and returns the id.
    pub async fn insert(&self, sql: &str) -> i64 {
        let row = self
            .client
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{e:?} running {sql}"));
        row.try_get::<_, i64>(0)
            .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
            .expect("an integer id")
    }

    /// A contact of account 1 (as Rails inserts it); returns its id.
    pub async fn new_contact(&self, name: &str, email: Option<&str>, phone: Option<&str>) -> i64 {
        let row = self
            .client
            .query_one(
                "INSERT INTO contacts (account_id, name, email, phone_number, created_at, updated_at)
                 VALUES (1, $1, $2, $3, now(), now()) RETURNING id",
                &[&name, &email, &phone],
            )
            .await
            .unwrap();
        i64::from(row.get::<_, i32>(0))
    }

    /// A conversation of account 1 with `contact_id`; returns its id.
    pub async fn new_conversation(&self, contact_id: i64) -> i64 {
        self.insert(&format!(
            "INSERT INTO conversations (account_id, inbox_id, contact_id, created_at, updated_at)
             VALUES (1, 1, {contact_id}, now(), now()) RETURNING id"
        ))
        .await
    }

    /// A message from the contact (incoming) or an agent-less outgoing one.
    pub async fn new_message(&self, conversation_id: i64, incoming: bool, text: &str) -> i64 {
        let row = self
            .client
            .query_one(
                "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content,
                                       private, sender_type, sender_id, created_at, updated_at)
                 SELECT 1, 1, id, $2, $3, false,
                        CASE WHEN $2 = 0 THEN 'Contact' END, CASE WHEN $2 = 0 THEN contact_id END,
                        now(), now()
                   FROM conversations WHERE id = $1::int8
                 RETURNING id",
                &[&conversation_id, &i32::from(!incoming), &text],
            )
            .await
            .unwrap();
        i64::from(row.get::<_, i32>(0))
    }

    /// The tests' usual contact, "Test User" <test@example.com>, with a
    /// new conversation: (contact, conversation).
    pub async fn test_conversation(&self) -> (i64, i64) {
        let contact = self
            .new_contact("Test User", Some("test@example.com"), None)
            .await;
        (contact, self.new_conversation(contact).await)
    }

    /// [`Self::test_conversation`] plus an incoming "hello", synced: its
    /// ticket exists and everything settled.
    pub async fn synced_hello(&self) -> SyncedHello {
        let (contact, conversation) = self.test_conversation().await;
        let message = self.new_message(conversation, true, "hello").await;
        let ticket = self.ticket_of(conversation).await;
        self.settle().await;
        SyncedHello {
            contact,
            conversation,
            message,
            ticket,
        }
    }

    /// The GLPI user id written back to a contact (it must be there).
    pub async fn glpi_user_of(&self, contact_id: i64) -> i64 {
        self.attributes("contacts", contact_id).await["external"]["glpi_user_id"]
            .as_i64()
            .unwrap_or_else(|| panic!("contact {contact_id} has no glpi_user_id written back"))
    }

    /// The GLPI ticket id written back to a conversation, once it is there.
    pub async fn ticket_of(&self, conversation_id: i64) -> i64 {
        for _ in 0..400 {
            if let Some(id) = self.attributes("conversations", conversation_id).await["glpi"]
                ["ticket_id"]
                .as_i64()
            {
                return id;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("conversation {conversation_id} never got glpi.ticket_id");
    }

    /// A table row's `additional_attributes`.
    pub async fn attributes(&self, table: &str, id: i64) -> serde_json::Value {
        let text: Option<String> = self
            .client
            .query_one(
                &format!("SELECT additional_attributes::text FROM {table} WHERE id = $1::int8"),
                &[&id],
            )
            .await
            .unwrap()
            .get(0);
        text.map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Waits until everything committed in Chatwoot so far has been planned
    /// and every runnable job has run: a contact created in the probe
    /// account (planned after everything before it) must reach the probe
    /// GLPI, then the outbox must hold nothing runnable.
    pub async fn settle(&self) {
        let n = self
            .probes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let email = format!("probe{n}@example.com");
        self.sql(&format!(
            "INSERT INTO contacts (account_id, name, email, created_at, updated_at)
             VALUES (2, 'Probe {n}', '{email}', now(), now())"
        ))
        .await;
        let probe = self.probe.clone();
        wait_until(
            self.settle_timeout,
            "the probe contact to reach GLPI",
            move || {
                let found = probe
                    .items("User")
                    .iter()
                    .any(|u| u["name"] == email.as_str());
                async move { found }
            },
        )
        .await;
        outbox_drained(&self.state_path, self.settle_timeout).await;
    }

    /// An item's `content` in account 1's GLPI, HTML entities decoded as a
    /// reader sees them.
    pub fn glpi_content(&self, itemtype: &str, id: i64) -> String {
        let item = self
            .emulator
            .item(itemtype, id)
            .unwrap_or_else(|| panic!("GLPI has no {itemtype} {id}"));
        chatwoot_glpi_bridge::glpi::decode_glpi_entities(
            item["content"].as_str().unwrap_or_default(),
        )
    }

    /// A GLPI administrator's hands on account 1's GLPI: one API call
    /// outside the bridge (its own session); returns the HTTP status.
    pub async fn glpi_admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> u16 {
        glpi_admin(&self.emulator, method, path, body).await
    }

    /// A connection of the test's own to the bridge's state file.
    pub fn state(&self) -> State {
        State::open(&self.state_path).expect("state")
    }

    /// Requests the bridge sent to account 1's GLPI, without session calls.
    pub fn glpi_requests(&self) -> Vec<RecordedRequest> {
        self.emulator
            .requests()
            .into_iter()
            .filter(|r| !r.path.starts_with("/initSession") && !r.path.starts_with("/killSession"))
            .collect()
    }

    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the bridge stops within 30 s");
            result.expect("bridge task").expect("bridge result");
        }
    }
}
