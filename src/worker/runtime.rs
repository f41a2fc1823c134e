//! The worker loop: takes runnable jobs from the outbox (the head of each
//! queue), runs up to `max_concurrent_conversations` of them at once (never
//! two of one queue), and wakes when the planner enqueues, when a retry is
//! due, or when a job finishes.
//!
//! One [`GlpiClient`] per GLPI instance (api_url + tokens), built from the
//! account's settings and shared by every job of every account that names
//! the same instance: the client holds the instance's rate limiter and
//! in-flight bound (invariant 3). Outcomes: done (recorded with the job),
//! transient or unknown outcome (retry later with backoff; the retry looks
//! the record up before creating), permanent (parked with GLPI's reason,
//! blocking only its own queue).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::commit::Committer;
use super::contact::ContactLocks;
use super::job::{self, JobContext, JobError, JobSettings};
use super::senders::SenderNames;
use crate::glpi::{GlpiClient, GlpiConfig};
use crate::observability::RetryReason;
use crate::outbox::{self, Job};
use crate::planner::settings::{GlpiSettings, SyncType};
use crate::secret::Secret;
use crate::state::mappings::GlpiPersonType;
use crate::state::State;
use crate::writeback::ChatwootDb;

/// Where an account's GLPI instance is, and how its jobs behave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountGlpi {
    pub api_url: String,
    pub app_token: Option<Secret>,
    pub user_token: Secret,
    pub jobs: JobSettings,
}

impl AccountGlpi {
    /// The worker's view of the planner's validated settings.
    pub fn from_settings(settings: &GlpiSettings) -> AccountGlpi {
        AccountGlpi {
            api_url: settings.api_url.clone(),
            app_token: (!settings.app_token.is_empty()).then(|| settings.app_token.clone()),
            user_token: settings.user_token.clone(),
            jobs: JobSettings {
                person_type: match settings.sync_type {
                    SyncType::User => GlpiPersonType::User,
                    SyncType::Contact => GlpiPersonType::Contact,
                },
                entity_id: settings.entity_id,
                ticket_type: i64::from(settings.ticket_type),
                category_id: settings.category_id,
                default_user_id: settings.default_user_id.filter(|id| *id > 0),
            },
        }
    }
}

/// The current settings of an account (`None`: the integration is disabled
/// or not configured, so its jobs wait). Implemented over the planner's
/// account cache; read at every job, so edits apply live.
pub trait AccountLookup: Send + Sync {
    fn account(&self, account_id: i64) -> Result<Option<AccountGlpi>, String>;
}

/// Tuning of the worker loop and of the GLPI clients it builds.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Jobs (hence conversations) run at once.
    pub max_concurrent_conversations: usize,
    /// `CHATWOOT_FRONTEND_URL`, for links in tickets.
    pub frontend_url: Option<String>,
    /// Per GLPI instance: requests per second (`None`: unlimited).
    pub glpi_requests_per_second: Option<std::num::NonZeroU32>,
    /// Per GLPI instance: requests in flight.
    pub glpi_max_in_flight: usize,
    /// Allow plain http to non-loopback GLPI hosts.
    pub glpi_allow_http: bool,
    /// Extra CA certificates (PEM) to trust for GLPI (`GLPI_CA_CERT`).
    pub glpi_ca_cert: Option<std::path::PathBuf>,
    /// First retry delay; doubles per attempt up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a job of an account without usable settings waits.
    pub unconfigured_wait: Duration,
    /// Where GLPI requests are counted (`None`: nowhere).
    pub metrics: Option<std::sync::Arc<crate::observability::Metrics>>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            max_concurrent_conversations: 16,
            frontend_url: None,
            glpi_requests_per_second: None,
            glpi_max_in_flight: GlpiConfig::DEFAULT_MAX_IN_FLIGHT,
            glpi_allow_http: false,
            glpi_ca_cert: None,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            unconfigured_wait: Duration::from_secs(30),
            metrics: None,
        }
    }
}

/// The running workers' shared parts.
pub struct Workers {
    state: Arc<Mutex<State>>,
    chatwoot: ChatwootDb,
    senders: Arc<SenderNames>,
    contact_locks: Arc<ContactLocks>,
    committer: Committer,
    settings: Arc<dyn AccountLookup>,
    clients: Mutex<Vec<(ClientKey, GlpiClient)>>,
    config: WorkerConfig,
    wake: Arc<Notify>,
}

/// Identity of a GLPI instance as the bridge talks to it. Tokens are kept
/// only for equality; never printed.
#[derive(PartialEq, Eq)]
struct ClientKey {
    api_url: String,
    app_token: Option<Secret>,
    user_token: Secret,
}

impl Workers {
    /// `state` is the workers' own connection to the state file; `wake` is
    /// notified by the planner whenever it enqueues.
    pub fn new(
        state: State,
        chatwoot: ChatwootDb,
        settings: Arc<dyn AccountLookup>,
        config: WorkerConfig,
        wake: Arc<Notify>,
    ) -> Arc<Workers> {
        let committer = Committer::start(state.path()).unwrap_or_else(|e| {
            panic!(
                "the state file {} opened once but not twice: {e}",
                state.path().display()
            )
        });
        Arc::new(Workers {
            committer,
            state: Arc::new(Mutex::new(state)),
            senders: Arc::new(SenderNames::new(chatwoot.clone())),
            chatwoot,
            contact_locks: Arc::new(ContactLocks::default()),
            settings,
            clients: Mutex::new(Vec::new()),
            config,
            wake,
        })
    }

    /// Runs until `shutdown` turns true, then lets running jobs finish (up
    /// to `drain` long) and ends the GLPI sessions.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, drain: Duration) {
        let mut running: HashSet<String> = HashSet::new();
        let mut queues_of: HashMap<tokio::task::Id, String> = HashMap::new();
        let mut tasks: JoinSet<()> = JoinSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            let free = self
                .config
                .max_concurrent_conversations
                .max(1)
                .saturating_sub(running.len());
            if free > 0 {
                match self.next_jobs(free, &running) {
                    Ok(jobs) => {
                        for job in jobs {
                            running.insert(job.queue.clone());
                            let queue = job.queue.clone();
                            let me = self.clone();
                            let handle = tasks.spawn(async move { me.run_job(&job).await });
                            queues_of.insert(handle.id(), queue);
                        }
                    }
                    Err(err) => tracing::error!(error = %err, "cannot read the outbox"),
                }
            }
            let sleep = self.idle_sleep();
            tokio::select! {
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(err) => {
                            // A panicking job is not recorded: it runs again
                            // (after its queue's backoff-free retry).
                            tracing::error!(error = %err, "a worker task failed");
                            err.id()
                        }
                    };
                    if let Some(queue) = queues_of.remove(&id) {
                        running.remove(&queue);
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.changed() => {}
            }
        }
        // Graceful stop: in-flight jobs finish (their results are recorded)
        // or are abandoned safely (a job re-runs after restart and resolves
        // its unknown outcome by lookup).
        let _ =
            tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
        tasks.abort_all();
        let clients: Vec<GlpiClient> = self
            .clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, c)| c.clone())
            .collect();
        for client in clients {
            if let Err(err) = client.kill_session().await {
                tracing::warn!(error = %err, "could not end the GLPI session");
            }
        }
    }

    fn next_jobs(
        &self,
        limit: usize,
        running: &HashSet<String>,
    ) -> Result<Vec<Job>, outbox::OutboxError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        outbox::next_runnable(state.conn(), limit, running)
    }

    /// How long to sleep when nothing wakes us: until the next retry is due
    /// (at most a second, so jobs enqueued by other processes are seen).
    fn idle_sleep(&self) -> Duration {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let next = outbox::next_not_before(state.conn()).ok().flatten();
        next.and_then(|at| at.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(1))
    }

    /// Runs one job and records its outcome in the outbox.
    async fn run_job(&self, job: &Job) {
        let kind = job.kind.name();
        let outcome = match self.context(job.account_id) {
            Ok(ctx) => job::execute(&ctx, job).await,
            Err(wait_reason) => {
                self.retry(job, &wait_reason, Some(self.config.unconfigured_wait));
                self.count(|m| m.job_retried(kind, job.account_id, RetryReason::AccountNotSyncing));
                return;
            }
        };
        match outcome {
            Ok(()) => {
                tracing::debug!(job = job.key, kind, "job done");
                self.count(|m| m.job_completed(kind, job.account_id));
            }
            Err(err) if err.is_permanent() => {
                let reason = park_reason(&err);
                tracing::warn!(job = job.key, kind = job.kind.name(), reason, "job parked");
                let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                match outbox::park(state.conn(), job.id, &reason) {
                    Ok(_) => self.count(|m| m.job_parked(kind, job.account_id)),
                    Err(e) => tracing::error!(job = job.key, error = %e, "cannot park the job"),
                }
            }
            Err(err) => {
                tracing::info!(job = job.key, kind, error = %err, attempts = job.attempts, "job will be retried");
                self.retry(job, &err.to_string(), err.retry_after());
                let reason = match &err {
                    JobError::Glpi(e) if e.is_unknown_outcome() => RetryReason::UnknownOutcome,
                    _ => RetryReason::Transient,
                };
                self.count(|m| m.job_retried(kind, job.account_id, reason));
            }
        }
    }

    /// Reports to the metrics, if any.
    fn count(&self, report: impl FnOnce(&crate::observability::Metrics)) {
        if let Some(metrics) = &self.config.metrics {
            report(metrics);
        }
    }

    fn retry(&self, job: &Job, error: &str, wait: Option<Duration>) {
        let wait = wait.unwrap_or_else(|| self.backoff(job.attempts));
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = outbox::retry_later(state.conn(), job.id, error, SystemTime::now() + wait) {
            tracing::error!(job = job.key, error = %e, "cannot reschedule the job");
        }
    }

    /// Exponential backoff with ±20 % jitter.
    fn backoff(&self, attempts: u32) -> Duration {
        let exp = self
            .config
            .base_backoff
            .saturating_mul(1u32 << attempts.min(16))
            .min(self.config.max_backoff);
        let jitter = rand::rng().random_range(0.8..1.2);
        exp.mul_f64(jitter)
    }

    /// The job context for an account, or why its jobs must wait.
    fn context(&self, account_id: i64) -> Result<JobContext, String> {
        let account = self
            .settings
            .account(account_id)
            .map_err(|e| format!("settings of account {account_id} are not usable: {e}"))?
            .ok_or_else(|| {
                format!(
                    "the GLPI integration of account {account_id} is disabled or not configured"
                )
            })?;
        let glpi = self.client_for(&account)?;
        Ok(JobContext {
            glpi,
            settings: account.jobs,
            state: self.state.clone(),
            chatwoot: self.chatwoot.clone(),
            senders: self.senders.clone(),
            contact_locks: self.contact_locks.clone(),
            committer: self.committer.clone(),
            frontend_url: self.config.frontend_url.clone(),
        })
    }

    /// The shared client of a GLPI instance, built on first use.
    fn client_for(&self, account: &AccountGlpi) -> Result<GlpiClient, String> {
        let key = ClientKey {
            api_url: account.api_url.clone(),
            app_token: account.app_token.clone(),
            user_token: account.user_token.clone(),
        };
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, client)) = clients.iter().find(|(k, _)| *k == key) {
            return Ok(client.clone());
        }
        let mut config = GlpiConfig::new(account.api_url.clone(), account.user_token.clone());
        config.app_token = account.app_token.clone();
        config.requests_per_second = self.config.glpi_requests_per_second;
        config.max_in_flight = self.config.glpi_max_in_flight.max(1);
        config.allow_http = self.config.glpi_allow_http;
        config.ca_cert = self.config.glpi_ca_cert.clone();
        config.metrics = self.config.metrics.clone();
        let client = GlpiClient::new(config).map_err(|e| e.to_string())?;
        clients.push((key, client.clone()));
        Ok(client)
    }
}

/// The reason a parked job shows: GLPI's constant and message when GLPI
/// refused, else the error.
fn park_reason(err: &JobError) -> String {
    match err {
        JobError::Glpi(e) => match (e.constant(), e.message()) {
            (Some(constant), Some(message)) if !message.is_empty() => {
                format!("{constant}: {message} ({e})")
            }
            (Some(constant), _) => format!("{constant} ({e})"),
            _ => e.to_string(),
        },
        other => other.to_string(),
    }
}
