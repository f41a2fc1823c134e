//! The `run` subcommand: composes the stages (replication now; the planner
//! and workers join it here) and stops them cleanly on SIGTERM/SIGINT.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::replication::{self, ReplicationNames, ReplicationOptions};
use crate::secret::Secret;

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
    replication::run(options, cancel)
        .await
        .context("replication stopped")?;
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
