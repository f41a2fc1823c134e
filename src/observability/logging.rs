//! Log setup: human-readable lines by default, one JSON object per line with
//! `--log-format json`. Logs go to stderr, so stdout stays for command output
//! (`status`, `check`, `parked list`) that scripts may read.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `filter` uses `RUST_LOG`'s syntax. A second
/// call (tests, the demo inside a test) keeps the first subscriber.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter).map_err(|e| {
        anyhow::anyhow!(
            "invalid log filter {filter:?} ({e}); use a level such as `info` or \
             directives such as `info,chatwoot_glpi_bridge::glpi=debug`"
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _already_set = match format {
        LogFormat::Human => builder.with_target(false).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    Ok(())
}
