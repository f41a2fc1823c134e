//! The `run` subcommand: composes the stages (replication, planner,
//! workers and write-back: [`run_bridge`]) and stops them cleanly on
//! SIGTERM/SIGINT.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::cli::context::load_config;
use crate::config::{Config, ConfigArgs, MetricsAddr};
use crate::observability::sampler::{self, SamplerConfig};
use crate::observability::{BackfillProgress, Metrics, MetricsServer, ProgressStyle};
use crate::planner::accounts::SettingsLookup;
use crate::planner::{self, ConfiguredAccounts, Planner, PlannerSignals};
use crate::replication::{self, ReplicationNames, ReplicationOptions, SourceDb};
use crate::secret::Secret;
use crate::state::State;
use crate::worker::runtime::{WorkerConfig, Workers};
use crate::writeback::ChatwootDb;

/// Arguments of the subcommand: every setting of the configuration
/// reference (flags, environment, `--config` file).
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
On first start, `run` creates the publication and the replication slot if they are \
missing, copies the existing contacts, conversations and messages from a snapshot \
consistent with the slot (the backfill; --backfill chooses which history is sent to GLPI: \
all, none or since:YYYY-MM-DD), then streams every later change. Restarted, it \
resumes from the slot: nothing is redone, nothing is missed while it was down.

Before the first start, run `check` with the same settings. While it runs, `status` and \
the /metrics endpoint show how it is doing. SIGTERM or SIGINT stops it cleanly.")]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Diagnostics and tests: only replicate into the state file's change
    /// log (no planner, no GLPI calls, no metrics endpoint).
    #[arg(long, hide = true)]
    pub replication_only: bool,
}

pub async fn execute(args: Args) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    if args.replication_only {
        replication::run(bridge_options(&config)?.replication, cancel)
            .await
            .context("replication stopped")?;
    } else {
        serve(&config, ProgressStyle::detect(), cancel).await?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// The bridge's options from the configuration.
pub fn bridge_options(config: &Config) -> anyhow::Result<BridgeOptions> {
    let url = config.database_url()?;
    let names = ReplicationNames::validated(&config.slot_name, &config.publication_name)?;
    let mut replication =
        ReplicationOptions::new(Secret::new(url.expose()), config.state_file.clone());
    replication.names = names;
    replication.backfill = config.backfill;
    replication.backfill_page_size = config.backfill_page_size;
    replication.status_interval = config.status_interval;
    let mut options = BridgeOptions::from_replication(replication);
    options.configured = config.glpi_account.clone();
    options.message_cache = config.message_cache;
    options.workers = WorkerConfig {
        max_concurrent_conversations: config.max_conversations,
        frontend_url: config
            .chatwoot_frontend_url
            .as_ref()
            .map(|u| u.as_str().trim_end_matches('/').to_owned()),
        glpi_requests_per_second: config.glpi_rate_limit,
        glpi_max_in_flight: config.glpi_max_in_flight,
        glpi_allow_http: config.glpi_allow_http,
        glpi_ca_cert: config.glpi_ca_cert.clone(),
        ..WorkerConfig::default()
    };
    Ok(options)
}

/// The sidecar as `run` starts it: the bridge, the `/metrics` endpoint and
/// the sampler that fills the gauges (and shows backfill progress). Returns
/// when the bridge stops (after `cancel`, or on a permanent error).
pub async fn serve(
    config: &Config,
    progress: ProgressStyle,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let mut options = bridge_options(config)?;
    options.metrics = Some(metrics.clone());
    let server = match config.metrics_addr {
        MetricsAddr::Listen(addr) => Some(MetricsServer::start(addr, metrics.clone()).await?),
        MetricsAddr::Off => None,
    };
    let stop_sampler = CancellationToken::new();
    let sampler = tokio::spawn(sampler::run(
        SamplerConfig {
            state_path: config.state_file.clone(),
            database: SourceDb::from_url(&Secret::new(config.database_url()?.expose()))?,
            slot_name: config.slot_name.clone(),
            backfill_interval: Duration::from_millis(500),
            interval: Duration::from_secs(5),
        },
        metrics.clone(),
        BackfillProgress::new(metrics, progress),
        stop_sampler.clone(),
    ));
    let result = run_bridge(options, cancel).await;
    stop_sampler.cancel();
    let _ = sampler.await;
    if let Some(server) = server {
        server.shutdown().await;
    }
    result
}

/// Cancels `cancel` on SIGTERM or SIGINT (also `glpi-sandbox`'s stop).
pub(crate) async fn cancel_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM/SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping"),
        _ = int.recv() => tracing::info!("SIGINT: stopping"),
    }
    cancel.cancel();
}

/// Everything `run` composes: replication, the planner, the workers and
/// the write-back. Built from the command line by [`execute`], or directly
/// by in-process tests and benchmarks.
#[derive(Debug)]
pub struct BridgeOptions {
    pub replication: ReplicationOptions,
    /// Accounts named by the bridge's own configuration (`GLPI_ACCOUNT_IDS`).
    pub configured: ConfiguredAccounts,
    /// How long the planner keeps cached message snapshots (`None`: forever).
    pub message_cache: Option<Duration>,
    pub workers: WorkerConfig,
    /// Connections to Chatwoot's database for write-backs and sender names.
    pub chatwoot_connections: usize,
    /// How long running jobs may take to finish on shutdown.
    pub drain_timeout: Duration,
    /// Where every stage reports (`None`: nowhere).
    pub metrics: Option<Arc<Metrics>>,
}

impl BridgeOptions {
    pub fn new(database_url: Secret, state_path: PathBuf) -> Self {
        Self::from_replication(ReplicationOptions::new(database_url, state_path))
    }

    /// Defaults around given replication options.
    pub fn from_replication(replication: ReplicationOptions) -> Self {
        BridgeOptions {
            replication,
            configured: ConfiguredAccounts::default(),
            message_cache: Some(Duration::from_secs(
                planner::prune::DEFAULT_MESSAGE_CACHE_DAYS * 24 * 3600,
            )),
            workers: WorkerConfig::default(),
            chatwoot_connections: 4,
            drain_timeout: Duration::from_secs(10),
            metrics: None,
        }
    }
}

/// Runs the whole bridge until `cancel`: replication feeds the change log,
/// the planner turns it into jobs, the workers run them against GLPI and
/// write the ids back into Chatwoot. Returns when replication stops (after
/// `cancel`, or on a permanent error), once the planner and workers stopped.
pub async fn run_bridge(options: BridgeOptions, cancel: CancellationToken) -> anyhow::Result<()> {
    let BridgeOptions {
        mut replication,
        configured,
        message_cache,
        mut workers,
        chatwoot_connections,
        drain_timeout,
        metrics,
    } = options;
    if let Some(metrics) = &metrics {
        replication.metrics = Some(metrics.clone());
        workers.metrics = Some(metrics.clone());
    }
    let mut chatwoot_config: crate::chatwoot_db::ConnectionSettings = replication
        .database_url
        .expose()
        .parse()
        .context("DATABASE_URL is not a PostgreSQL connection string (postgres://user:password@host:5432/db)")?;
    // Named like replication's sessions in pg_stat_activity.
    chatwoot_config
        .pg_config_mut()
        .application_name("chatwoot-glpi-bridge");
    let state_path = replication.state_path.clone();
    let open = || {
        // Every error of `open` names the file and what to do.
        State::open(&state_path).map_err(anyhow::Error::from)
    };

    let new_changes = Arc::new(Notify::new());
    let jobs_ready = Arc::new(Notify::new());
    replication.on_durable = Some(new_changes.clone());
    // Planner and workers stop after replication has stopped.
    let stop_planner = CancellationToken::new();
    let (stop_workers, workers_stopped) = watch::channel(false);

    let mut planner = Planner::new(open()?, configured.clone())
        .context("starting the planner")?
        .with_message_cache(message_cache);
    let mut chatwoot = ChatwootDb::new(chatwoot_config, chatwoot_connections);
    if let Some(metrics) = metrics {
        planner = planner.with_metrics(metrics.clone());
        chatwoot = chatwoot.with_metrics(metrics);
    }
    let planner_task = tokio::spawn(planner::run(
        planner,
        PlannerSignals {
            new_changes,
            jobs_ready: jobs_ready.clone(),
            cancel: stop_planner.clone(),
            idle_poll: Duration::from_millis(500),
        },
    ));
    let lookup = Arc::new(SettingsLookup::new(open()?, configured));
    let workers = Workers::new(open()?, chatwoot, lookup, workers, jobs_ready);
    let workers_task = tokio::spawn(workers.run(workers_stopped, drain_timeout));

    let result = replication::run(replication, cancel.clone()).await;
    // Replication has stopped (cancelled or failed): stop the others too.
    cancel.cancel();
    stop_planner.cancel();
    let _ = stop_workers.send(true);
    let planned = planner_task.await.context("the planner task failed")?;
    workers_task.await.context("the worker task failed")?;
    result.context("replication stopped")?;
    planned.context("the planner stopped")?;
    Ok(())
}
