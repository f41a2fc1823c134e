//! The `glpi-sandbox` subcommand: runs the GLPI emulator on this machine so an
//! operator can point the bridge at it, dry-run a sync, and see on Ctrl-C
//! what would have been created in a real GLPI.

use std::net::SocketAddr;

use anyhow::Context;

use crate::glpi_emulator::{ApiUser, Emulator, EmulatorConfig, GlpiVersion};

/// Arguments of the subcommand.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (keep it on loopback: the sandbox has no TLS and
    /// accepts anyone holding the tokens).
    #[arg(long, default_value = "127.0.0.1:8089")]
    pub listen: SocketAddr,
    /// App-Token clients must send (omit for an API client without app token).
    #[arg(long, env = "GLPI_SANDBOX_APP_TOKEN", hide_env_values = true)]
    pub app_token: Option<String>,
    /// user_token accepted by initSession (the API user is "glpi", id 2).
    #[arg(long, env = "GLPI_SANDBOX_USER_TOKEN", hide_env_values = true)]
    pub user_token: String,
    /// GLPI major version to imitate: 10 (HTML-encoded storage, no Ticket
    /// externalid) or 11.
    #[arg(long, default_value = "10", value_parser = parse_version)]
    pub glpi_version: GlpiVersion,
}

fn parse_version(raw: &str) -> Result<GlpiVersion, String> {
    match raw.trim() {
        "10" | "10.0" => Ok(GlpiVersion::V10),
        "11" | "11.0" => Ok(GlpiVersion::V11),
        other => Err(format!("unsupported GLPI version {other:?}: use 10 or 11")),
    }
}

pub async fn execute(args: Args) -> anyhow::Result<()> {
    if args.user_token.trim().is_empty() {
        anyhow::bail!("--user-token must not be empty: the bridge logs in with it");
    }
    let config = EmulatorConfig {
        app_token: args.app_token.filter(|t| !t.is_empty()),
        users: vec![ApiUser {
            id: 2,
            login: "glpi".to_owned(),
            user_token: args.user_token,
        }],
        version: args.glpi_version,
        writable_entities: vec![0],
    };
    let emulator = Emulator::start_on(args.listen, config)
        .await
        .with_context(|| format!("starting the GLPI sandbox on {}", args.listen))?;
    println!(
        "GLPI sandbox (GLPI {}) listening; API URL: {}",
        match args.glpi_version {
            GlpiVersion::V10 => "10.0",
            GlpiVersion::V11 => "11",
        },
        emulator.api_url()
    );
    println!(
        "Point the bridge's GLPI api_url at it; press Ctrl-C for a summary of what was created."
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    println!();
    println!("{} requests received.", emulator.requests().len());
    print!("{}", emulator.created_summary());
    emulator.shutdown().await;
    Ok(())
}
