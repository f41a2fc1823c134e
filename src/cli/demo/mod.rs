//! The `demo` subcommand: the whole bridge on this machine in under a
//! minute, with nothing to configure. A throwaway PostgreSQL holds Chatwoot's
//! schema and a little history, the GLPI emulator plays GLPI, and the real
//! bridge (the same code as `run`) syncs the history (backfill), then live
//! changes; the demo prints what GLPI holds and what was written back, then
//! removes everything.

mod sample;

use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigArgs, Key};
use crate::glpi_emulator::{Emulator, EmulatorConfig};
use crate::observability::ProgressStyle;
use crate::sandbox_postgres::{self, SandboxOptions, SandboxPostgres};

/// Arguments of the subcommand.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
What is real: PostgreSQL (a throwaway cluster started from your PostgreSQL binaries, in a \
temporary directory, on 127.0.0.1), logical replication, the bridge itself (the code `run` \
uses: slot, backfill, planner, outbox, workers, write-back).

What is simulated: Chatwoot (the demo writes rows into Chatwoot's tables the way Chatwoot \
does) and GLPI (an in-process emulator that answers like GLPI 10's REST API and refuses \
what GLPI refuses).

Needs the PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or in \
/usr/lib/postgresql/*/bin; on Debian or Ubuntu: sudo apt-get install postgresql. Nothing is \
left behind.")]
pub struct Args {
    /// Keep the bridge's log lines (they are hidden to keep the story readable).
    #[arg(long)]
    pub verbose: bool,
}

/// How long the demo waits for one step before saying something is wrong.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn execute(args: Args) -> anyhow::Result<()> {
    let started = Instant::now();
    say_intro();

    step("Starting a throwaway PostgreSQL (wal_level=logical) in a temporary directory");
    let cluster = tokio::task::spawn_blocking(|| {
        SandboxPostgres::start_new(&SandboxOptions {
            superuser_password: format!("demo-{}", rand::random::<u64>()),
            ..SandboxOptions::default()
        })
    })
    .await?
    .map_err(|e| match e {
        sandbox_postgres::SandboxError::NoBinaries => anyhow::anyhow!("{e}"),
        other => anyhow::anyhow!("cannot start PostgreSQL: {other}"),
    })?;
    detail(&format!(
        "PostgreSQL {} on 127.0.0.1:{}",
        cluster.major_version(),
        cluster.port
    ));

    let emulator = Emulator::start(EmulatorConfig::default())
        .await
        .context("starting the GLPI emulator")?;
    step("Starting the GLPI emulator (plays GLPI 10's REST API)");
    detail(&emulator.api_url());

    let database_url = cluster.superuser_url(sample::DATABASE);
    sample::create_database(&cluster).await?;
    let chatwoot = sample::Chatwoot::connect(&database_url).await?;
    step("Loading Chatwoot's schema and some history (what an existing Chatwoot holds)");
    let history = chatwoot.load_history(&emulator.api_url()).await?;
    detail(&history);

    let state_dir = tempfile::tempdir().context("creating a temporary directory")?;
    let mut config_args = ConfigArgs::default()
        .with_flag(Key::DatabaseUrl, &database_url)
        .with_flag(
            Key::StateFile,
            state_dir
                .path()
                .join("bridge.sqlite3")
                .display()
                .to_string(),
        )
        .with_flag(Key::MetricsAddr, "off")
        .with_flag(Key::StatusIntervalSecs, "1");
    if !args.verbose {
        // The story is told on stdout; transient retries logged by the
        // stages would only confuse it (`--verbose` shows them).
        config_args = config_args.with_flag(Key::LogFilter, "off");
    }
    let config = Config::load_with_env(&config_args, &|_| None)?;
    crate::observability::logging::init(config.log_format, &config.log_filter)?;

    step("Starting the bridge (the same code as `run`): it creates its publication and slot, then backfills");
    let cancel = CancellationToken::new();
    let bridge = {
        let (config, cancel) = (config.clone(), cancel.clone());
        tokio::spawn(
            async move { crate::cli::run::serve(&config, ProgressStyle::Silent, cancel).await },
        )
    };
    let backfill_started = Instant::now();
    wait_for("the backfill to reach GLPI", || {
        let emulator = emulator.clone();
        let chatwoot = &chatwoot;
        async move {
            emulator.items("Ticket").len() >= sample::HISTORY_CONVERSATIONS
                && chatwoot.written_back_tickets().await.unwrap_or(0)
                    >= sample::HISTORY_CONVERSATIONS
        }
    })
    .await?;
    detail(&format!(
        "done in {:.1} s: GLPI now has {} users, {} tickets, {} followups; the ids are written back",
        backfill_started.elapsed().as_secs_f64(),
        sample::synced_users(&emulator).len(),
        emulator.items("Ticket").len(),
        emulator.items("ITILFollowup").len()
    ));

    step("Live changes in Chatwoot, streamed through the slot:");
    for change in sample::live_changes() {
        detail(&format!("Chatwoot: {}", change.describe));
        chatwoot.apply(&change).await?;
        wait_for(change.expect, || {
            let emulator = emulator.clone();
            let check = change.check;
            async move { check(&emulator) }
        })
        .await?;
        detail(&format!("   GLPI: {}", change.expect));
    }
    // The last write-backs follow the GLPI calls.
    wait_for("the last write-backs", || chatwoot.all_written_back()).await?;

    println!();
    println!("What GLPI holds now");
    print!("{}", sample::describe_glpi(&emulator));
    println!();
    println!("What the bridge wrote back into Chatwoot (additional_attributes)");
    print!("{}", chatwoot.describe_write_backs().await?);

    cancel.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(20), bridge).await;
    emulator.shutdown().await;
    drop(chatwoot);
    drop(cluster);
    drop(state_dir);
    println!();
    step("Cleaned up: bridge stopped, GLPI sessions closed, PostgreSQL stopped and its directory removed");
    match stopped {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => anyhow::bail!("the bridge stopped with an error: {e:#}"),
        Ok(Err(e)) => anyhow::bail!("the bridge task failed: {e}"),
        Err(_) => anyhow::bail!("the bridge did not stop within 20 s"),
    }
    println!(
        "Demo finished in {:.1} s. Next: README \"Installation\", then `chatwoot-glpi-bridge check`.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn say_intro() {
    println!("chatwoot-glpi-bridge demo");
    println!(
        "The bridge reads Chatwoot's PostgreSQL change stream (a logical replication slot) and\n\
         mirrors contacts, conversations and messages into GLPI as users, tickets and followups,\n\
         then writes the GLPI ids back into Chatwoot. Real here: PostgreSQL and the bridge.\n\
         Simulated: Chatwoot (rows written as Chatwoot writes them) and GLPI (an emulator).\n"
    );
}

fn step(text: &str) {
    println!("==> {text}");
}

fn detail(text: &str) {
    println!("    {text}");
}

/// Polls `done` until it holds, or fails after [`STEP_TIMEOUT`] naming what
/// it waited for.
async fn wait_for<F, Fut>(what: &str, mut done: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + STEP_TIMEOUT;
    while !done().await {
        if Instant::now() > deadline {
            anyhow::bail!(
                "gave up waiting for {what} after {} s; run `demo --verbose` to see the bridge's log",
                STEP_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
