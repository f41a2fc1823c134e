//! The `glpi-sandbox` subcommand: runs the GLPI emulator on this machine so an
//! operator can point the bridge at it, dry-run a sync, and see on Ctrl-C
//! (or SIGTERM: `docker stop`) what would have been created in a real GLPI.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::glpi_emulator::{redact_query, ApiUser, Emulator, EmulatorConfig, GlpiVersion};

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
    // Stop on Ctrl-C and on SIGTERM: in a container `docker stop` sends
    // SIGTERM, which would otherwise kill the sandbox after the grace period
    // with its summary unprinted.
    let stop = CancellationToken::new();
    tokio::spawn(super::run::cancel_on_signal(stop.clone()));
    println!(
        "GLPI sandbox (GLPI {}) listening; API URL: {}",
        match args.glpi_version {
            GlpiVersion::V10 => "10.0",
            GlpiVersion::V11 => "11",
        },
        emulator.api_url()
    );
    println!(
        "Point the bridge's GLPI api_url at it; press Ctrl-C (or stop it with SIGTERM) for a summary of what was created."
    );
    let printed = Arc::new(AtomicUsize::new(0));
    let log = tokio::spawn(log_requests(emulator.clone(), printed.clone()));
    stop.cancelled().await;
    log.abort();
    let _ = log.await;
    print_new_requests(&emulator, &printed, true);
    println!();
    println!("{} requests received.", emulator.requests().len());
    print!("{}", emulator.created_summary());
    emulator.shutdown().await;
    Ok(())
}

/// Prints each answered request as it completes: method, path, query
/// (tokens redacted), status.
async fn log_requests(emulator: Emulator, printed: Arc<AtomicUsize>) {
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        print_new_requests(&emulator, &printed, false);
    }
}

/// Prints the requests not printed yet, in arrival order; unless `flush`,
/// stops at one still being answered (for at most 30 s).
fn print_new_requests(emulator: &Emulator, printed: &AtomicUsize, flush: bool) {
    let requests = emulator.requests();
    let mut next = printed.load(Ordering::SeqCst);
    while let Some(r) = requests.get(next) {
        let unanswered = r.status == 0 && r.fault.is_none();
        if unanswered && !flush && r.at.elapsed() < Duration::from_secs(30) {
            break;
        }
        let query = redact_query(&r.query);
        let status = match (r.status, &r.fault) {
            (0, Some(fault)) => format!("dropped ({fault})"),
            (0, None) => "no answer yet".to_owned(),
            (status, _) => status.to_string(),
        };
        println!(
            "{} {}{}{} -> {status}",
            r.method,
            r.path,
            if query.is_empty() { "" } else { "?" },
            query
        );
        next += 1;
    }
    printed.store(next, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_queries_are_redacted() {
        assert_eq!(
            redact_query("app_token=abc&session_token=def&range=0-9"),
            "app_token=[redacted]&session_token=[redacted]&range=0-9"
        );
        assert_eq!(redact_query(""), "");
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("11"), Ok(GlpiVersion::V11));
        assert_eq!(parse_version("10"), Ok(GlpiVersion::V10));
        assert!(parse_version("9.5").is_err());
    }
}
