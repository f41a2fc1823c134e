//! What every operator command starts with: the configuration (file, env,
//! flags), log setup, and the state file, with errors that say what to fix.

use std::path::Path;

use crate::config::{Config, ConfigArgs, Key};
use crate::state::{State, StateError};

/// Loads the configuration and installs logging as configured.
pub fn load_config(args: &ConfigArgs) -> anyhow::Result<Config> {
    let config = Config::load(args)?;
    crate::observability::logging::init(config.log_format, &config.log_filter)?;
    Ok(config)
}

/// Opens the state file of an existing installation, for commands that
/// repair (`parked retry`/`drop`). Unlike `run`, commands that inspect or
/// repair never create one: a missing file almost always means a different
/// `state_file` setting than the running bridge's.
pub fn open_existing_state(config: &Config) -> anyhow::Result<State> {
    let path = &config.state_file;
    if !path.exists() {
        return Err(missing_state_file(path));
    }
    // Every error of `open` names the file and what to do.
    Ok(State::open(path)?)
}

/// Opens the state file of an existing installation read-only, for commands
/// that only look (`status`): no schema applied, nothing created, never the
/// write lock of a running bridge.
pub fn open_state_read_only(config: &Config) -> anyhow::Result<State> {
    let path = &config.state_file;
    let state = match State::open_read_only(path) {
        Err(StateError::Missing { .. }) => return Err(missing_state_file(path)),
        opened => opened?,
    };
    let missing = state.missing_tables()?;
    if !missing.is_empty() {
        anyhow::bail!(
            "the state file {} lacks the tables {}: it was written by an older version of the \
             bridge (start `run` once, it brings the file up to date) or it is not the bridge's \
             state file",
            path.display(),
            missing.join(", ")
        );
    }
    Ok(state)
}

/// What to do about a missing state file.
fn missing_state_file(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "no state file at {}: the bridge has not run here yet, or it runs with another \
         state file; point to the same file as the running bridge with {}",
        path.display(),
        crate::config::how_to_set(Key::StateFile)
    )
}

/// An ordinary connection to Chatwoot's database, made the way replication
/// makes its own (same session settings, same error messages).
pub async fn connect_database(config: &Config) -> anyhow::Result<tokio_postgres::Client> {
    let url = config.database_url()?;
    let source = crate::replication::SourceDb::from_url(&crate::secret::Secret::new(url.expose()))?;
    Ok(source.connect().await?)
}

/// "" for one, "s" otherwise.
pub fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// "3s", "4m 10s", "2h 5m", "3d 4h": ages for people.
pub fn human_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human_duration(Duration::from_secs(3)), "3s");
        assert_eq!(human_duration(Duration::from_secs(250)), "4m 10s");
        assert_eq!(human_duration(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(
            human_duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d 4h"
        );
    }
}
