use clap::{Parser, Subcommand};

use chatwoot_glpi_bridge::cli;

/// Keeps GLPI (users, contacts, tickets, followups) in step with a self-hosted
/// Chatwoot, by reading Chatwoot's PostgreSQL change stream.
#[derive(Debug, Parser)]
#[command(name = "chatwoot-glpi-bridge", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the sidecar: create the publication and slot if missing, backfill
    /// existing rows on first start, then stream changes into GLPI.
    Run(cli::run::Args),
    /// Print the SQL a DBA can run instead of letting the bridge create its
    /// publication, slot and a least-privilege role.
    SetupSql(cli::setup_sql::Args),
    /// Start a GLPI emulator on this machine, to dry-run the bridge without a
    /// production GLPI and see what it would create.
    GlpiSandbox(cli::glpi_sandbox::Args),
    /// List, retry or drop jobs that failed permanently (GLPI refused them or
    /// the record cannot be synced); each blocks only its own conversation.
    Parked(cli::parked::Args),
    /// Sync one contact or conversation again, checking GLPI itself: what
    /// GLPI lost is found again or recreated, never duplicated.
    Resync(cli::resync::Args),
    /// Preflight: database, wal_level, privileges, publication, slot, state
    /// file and each account's GLPI, a PASS/FAIL line each; exit code 0 only
    /// if all pass. Changes nothing.
    Check(cli::check::Args),
    /// Try the bridge in a minute: a throwaway PostgreSQL with Chatwoot's
    /// schema, a GLPI emulator and the bridge, a backfill then live changes,
    /// all cleaned up afterwards. Needs PostgreSQL's server binaries.
    Demo(cli::demo::Args),
    /// Show where the bridge stands: slot lag, confirmed LSN, backfill,
    /// outbox depth, parked jobs and per-account counts.
    Status(cli::status::Args),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cli::run::execute(args).await,
        Command::SetupSql(args) => cli::setup_sql::execute(args).await,
        Command::GlpiSandbox(args) => cli::glpi_sandbox::execute(args).await,
        Command::Parked(args) => cli::parked::execute(args).await,
        Command::Resync(args) => cli::resync::execute(args).await,
        Command::Check(args) => cli::check::execute(args).await,
        Command::Demo(args) => cli::demo::execute(args).await,
        Command::Status(args) => cli::status::execute(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
