//! The `run` subcommand: composes the stages (replication, planner,
//! workers and write-back: [`run_bridge`]) and stops them cleanly on
//! SIGTERM/SIGINT.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::planner::accounts::SettingsLookup;
use crate::planner::{self, ConfiguredAccounts, Planner, PlannerSignals};
use crate::replication::{self, ReplicationNames, ReplicationOptions};
use crate::secret::Secret;
use crate::state::State;
use crate::worker::runtime::{WorkerConfig, Workers};
use crate::writeback::ChatwootDb;

/// Arguments of the subcommand (each also read from the environment).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Chatwoot's PostgreSQL, e.g. postgres://bridge:PASSWORD@db:5432/chatwoot_production
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, value_parser = parse_secret)]
    pub database_url: Secret,

    /// The bridge's state file (SQLite); one per Chatwoot database.
    #[arg(
        long,
        env = "BRIDGE_STATE",
        default_value = "./chatwoot-glpi-bridge.sqlite3"
    )]
    pub state: PathBuf,

    /// Name of the logical replication slot.
    #[arg(long, env = "BRIDGE_SLOT", default_value = replication::setup::DEFAULT_NAME)]
    pub slot: String,

    /// Name of the publication.
    #[arg(long, env = "BRIDGE_PUBLICATION", default_value = replication::setup::DEFAULT_NAME)]
    pub publication: String,

    /// Rows per page when copying existing rows on first start.
    #[arg(long, env = "BRIDGE_BACKFILL_PAGE_SIZE", default_value_t = 5_000)]
    pub backfill_page_size: u32,

    /// Seconds between acknowledgements sent to PostgreSQL.
    #[arg(long, env = "BRIDGE_STATUS_INTERVAL_SECS", default_value_t = 10)]
    pub status_interval_secs: u64,

    /// Diagnostics and tests: only replicate into the state file's change
    /// log (no planner, no GLPI calls).
    #[arg(long, hide = true)]
    pub replication_only: bool,

    /// Chatwoot's public address (its FRONTEND_URL), for links from tickets
    /// back to their conversation.
    #[arg(long, env = "CHATWOOT_FRONTEND_URL")]
    pub chatwoot_frontend_url: Option<String>,

    /// Most conversations synced at the same time.
    #[arg(long, env = "BRIDGE_MAX_CONVERSATIONS", default_value_t = 16)]
    pub max_conversations: usize,

    /// Most requests per second to each GLPI instance; 0 = no limit.
    #[arg(long, env = "GLPI_RATE_LIMIT", default_value_t = 0)]
    pub glpi_rate_limit: u32,

    /// Most requests in flight to each GLPI instance.
    #[arg(long, env = "GLPI_MAX_IN_FLIGHT", default_value_t = 8)]
    pub glpi_max_in_flight: usize,

    /// Allow plain http:// to a GLPI that is not on this machine.
    #[arg(long, env = "GLPI_ALLOW_HTTP", default_value_t = false)]
    pub glpi_allow_http: bool,

    /// PEM file of extra CA certificates to trust for GLPI.
    #[arg(long, env = "GLPI_CA_CERT")]
    pub glpi_ca_cert: Option<PathBuf>,
}

fn parse_secret(s: &str) -> Result<Secret, String> {
    Ok(Secret::new(s))
}

pub async fn execute(args: Args) -> anyhow::Result<()> {
    super::logging::init();
    let names = ReplicationNames::validated(&args.slot, &args.publication)?;
    let mut options = ReplicationOptions::new(args.database_url, args.state);
    options.names = names;
    options.backfill_page_size = args.backfill_page_size;
    options.status_interval = Duration::from_secs(args.status_interval_secs.max(1));
    let cancel = CancellationToken::new();
    tokio::spawn(cancel_on_signal(cancel.clone()));
    if args.replication_only {
        replication::run(options, cancel)
            .await
            .context("replication stopped")?;
        tracing::info!("stopped");
        return Ok(());
    }

    let configured = ConfiguredAccounts::from_env()?;
    let workers = WorkerConfig {
        max_concurrent_conversations: args.max_conversations.max(1),
        frontend_url: args.chatwoot_frontend_url.filter(|u| !u.trim().is_empty()),
        glpi_requests_per_second: NonZeroU32::new(args.glpi_rate_limit),
        glpi_max_in_flight: args.glpi_max_in_flight.max(1),
        glpi_allow_http: args.glpi_allow_http,
        glpi_ca_cert: args.glpi_ca_cert,
        ..WorkerConfig::default()
    };

    let mut bridge = BridgeOptions::from_replication(options);
    bridge.configured = configured;
    bridge.workers = workers;
    run_bridge(bridge, cancel).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Cancels `cancel` on SIGTERM or SIGINT.
async fn cancel_on_signal(cancel: CancellationToken) {
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
    pub workers: WorkerConfig,
    /// Connections to Chatwoot's database for write-backs and sender names.
    pub chatwoot_connections: usize,
    /// How long running jobs may take to finish on shutdown.
    pub drain_timeout: Duration,
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
            workers: WorkerConfig::default(),
            chatwoot_connections: 4,
            drain_timeout: Duration::from_secs(10),
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
        workers,
        chatwoot_connections,
        drain_timeout,
    } = options;
    let chatwoot_config: tokio_postgres::Config = replication
        .database_url
        .expose()
        .parse()
        .context("DATABASE_URL is not a PostgreSQL connection string (postgres://user:password@host:5432/db)")?;
    let state_path = replication.state_path.clone();
    let open = || {
        State::open(&state_path)
            .with_context(|| format!("opening the state file {}", state_path.display()))
    };

    let new_changes = Arc::new(Notify::new());
    let jobs_ready = Arc::new(Notify::new());
    replication.on_durable = Some(new_changes.clone());
    // Planner and workers stop after replication has stopped.
    let stop_planner = CancellationToken::new();
    let (stop_workers, workers_stopped) = watch::channel(false);

    let planner = Planner::new(open()?, configured.clone()).context("starting the planner")?;
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
    let workers = Workers::new(
        open()?,
        ChatwootDb::new(chatwoot_config, chatwoot_connections),
        lookup,
        workers,
        jobs_ready,
    );
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
