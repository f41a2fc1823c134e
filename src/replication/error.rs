//! Replication's errors: each names what is wrong and how to fix it, and
//! none carries the database password (connection targets are printed as
//! `user@host:port/database`).

use crate::config::{how_to_set, Key};
use crate::lsn::Lsn;
use crate::state::StateError;

/// Everything that can stop replication.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {reason}. Expected postgres://USER:PASSWORD@HOST:PORT/DATABASE")]
    InvalidDatabaseUrl { reason: String },

    #[error("invalid {what} name {name:?}: use only lower-case letters, digits and underscores (at most 63)")]
    InvalidName { what: &'static str, name: String },

    #[error("cannot reach PostgreSQL at {target}: {reason}. Check the host and port in DATABASE_URL and that the server accepts connections from this machine")]
    Unreachable { target: String, reason: String },

    #[error("DATABASE_URL's TLS settings cannot be used: {reason}")]
    InvalidTlsSettings { reason: String },

    #[error("TLS to PostgreSQL at {target} failed: {reason}")]
    Tls { target: String, reason: String },

    #[error("PostgreSQL at {target} refused the login: {reason}. Check the user and password in DATABASE_URL and pg_hba.conf (logical replication connections are matched on the database column, not `replication`)")]
    LoginRefused { target: String, reason: String },

    #[error("wal_level is {current:?} but logical replication needs 'logical'. As a superuser run `ALTER SYSTEM SET wal_level = logical;` and restart PostgreSQL; with docker compose add `command: postgres -c wal_level=logical` to the postgres service")]
    WalLevelNotLogical { current: String },

    #[error("role {role:?} may not use replication. As a superuser run `ALTER ROLE \"{role}\" WITH REPLICATION;` (or use the role that `chatwoot-glpi-bridge setup-sql` creates)")]
    RoleLacksReplication { role: String },

    #[error("these Chatwoot tables are missing from database {database:?}: {}. Is DATABASE_URL pointing at Chatwoot's database (and are its migrations applied)?", .tables.join(", "))]
    MissingTables {
        database: String,
        tables: Vec<String>,
    },

    #[error("publication {publication:?} exists but does not publish {}. As a superuser run `ALTER PUBLICATION \"{publication}\" ADD TABLE {};`", .missing.join(", "), .missing.join(", "))]
    PublicationLacksTables {
        publication: String,
        missing: Vec<String>,
    },

    #[error("cannot create publication {publication:?}: {reason}. Let a superuser run the SQL printed by `chatwoot-glpi-bridge setup-sql`, which creates it")]
    PublicationCreateDenied { publication: String, reason: String },

    #[error("replication slot {slot:?} exists but uses the output plugin {plugin:?}, not pgoutput. Choose another slot name with {} or drop it: SELECT pg_drop_replication_slot('{slot}');", how_to_set(Key::SlotName))]
    SlotWrongPlugin { slot: String, plugin: String },

    #[error("replication slot {slot:?} belongs to database {database:?}, not to {expected:?}. Choose another slot name with {}", how_to_set(Key::SlotName))]
    SlotInOtherDatabase {
        slot: String,
        database: String,
        expected: String,
    },

    #[error("replication slot {slot:?} already exists but this state file has never used it. If another bridge uses it, run with that bridge's state file ({}) or give this one its own slot ({}); if it is a leftover, drop it: SELECT pg_drop_replication_slot('{slot}');", how_to_set(Key::StateFile), how_to_set(Key::SlotName))]
    SlotNotOurs { slot: String },

    #[error("all {max} replication slots are in use (max_replication_slots = {max}). Drop an unused one (SELECT slot_name, active FROM pg_replication_slots; SELECT pg_drop_replication_slot('name');) or raise max_replication_slots and restart PostgreSQL")]
    SlotsExhausted { max: String },

    #[error("replication slot {slot:?} is active for PID {pid}: another process (another bridge instance?) is reading it")]
    SlotActive { slot: String, pid: String },

    #[error("replication slot {slot:?} no longer exists, so the changes after {durable_lsn} are lost to this state file. To start over (backfill again), stop the bridge and delete the state file {state_path}")]
    SlotMissing {
        slot: String,
        durable_lsn: Lsn,
        state_path: String,
    },

    #[error("replication slot {slot:?} was invalidated by PostgreSQL: {}, so the changes after {durable_lsn} are gone and can never be streamed. The bridge stops rather than skip them. Way out: stop the bridge, drop the slot (SELECT pg_drop_replication_slot('{slot}');), move the state file {state_path} away, and start the bridge again: it creates a new slot and backfills. The backfill adopts the GLPI ids already written into Chatwoot's additional_attributes and looks contacts up in GLPI before creating, so it creates no duplicates; only messages after each conversation's glpi.last_synced_message_id are sent. {}", invalidation_cause(.reason.as_deref()), invalidation_prevention(.reason.as_deref()))]
    SlotInvalidated {
        slot: String,
        /// PostgreSQL's `invalidation_reason` (17+), if it gave one.
        reason: Option<String>,
        durable_lsn: Lsn,
        state_path: String,
    },

    #[error("the state file {state_path} belongs to database {stored_database:?} of PostgreSQL system {stored_system}, but DATABASE_URL points at database {database:?} of system {system}. Use a separate state file per Chatwoot database, set with {} (or delete this one to start over with a full backfill)", how_to_set(Key::StateFile))]
    StateFromOtherDatabase {
        state_path: String,
        stored_system: String,
        stored_database: String,
        system: String,
        database: String,
    },

    #[error("PostgreSQL error while {doing}: {reason}")]
    Postgres {
        doing: &'static str,
        reason: String,
        /// A lost connection, a server shutting down, a conflict: worth
        /// retrying. Other server errors are not.
        transient: bool,
    },

    #[error("replication stream error: {0}")]
    Stream(String),

    #[error("the change stream cannot be decoded (nothing after the last stored transaction is confirmed): {0}")]
    Undecodable(String),

    #[error(transparent)]
    State(#[from] StateError),
}

impl ReplicationError {
    /// Whether retrying later may succeed (lost connections, a slot held by
    /// another process); the others need an operator.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ReplicationError::Unreachable { .. }
                | ReplicationError::SlotActive { .. }
                | ReplicationError::Stream(_)
                | ReplicationError::Postgres {
                    transient: true,
                    ..
                }
        )
    }

    /// Classifies a tokio-postgres error.
    pub(crate) fn from_pg(doing: &'static str, err: &tokio_postgres::Error) -> ReplicationError {
        ReplicationError::Postgres {
            doing,
            reason: pg_reason(err),
            transient: match err.as_db_error() {
                Some(db) => is_transient_sqlstate(db.code().code()),
                None => is_connection_problem(err),
            },
        }
    }

    /// Classifies an error of the replication protocol connection.
    pub(crate) fn from_wire(
        slot: &str,
        target: &str,
        err: pgwire_replication::PgWireError,
    ) -> ReplicationError {
        use pgwire_replication::PgWireError;
        let text = err.to_string();
        if let Some(pid) = active_pid(&text) {
            return ReplicationError::SlotActive {
                slot: slot.to_owned(),
                pid,
            };
        }
        match err {
            PgWireError::Auth(reason) => ReplicationError::LoginRefused {
                target: target.to_owned(),
                reason,
            },
            PgWireError::Server(reason) if reason.contains("28P01") || reason.contains("28000") => {
                ReplicationError::LoginRefused {
                    target: target.to_owned(),
                    reason,
                }
            }
            PgWireError::Server(reason) => {
                let transient = sqlstate_in(&reason).is_some_and(is_transient_sqlstate);
                ReplicationError::Postgres {
                    doing: "talking to the replication connection",
                    reason,
                    transient,
                }
            }
            PgWireError::Io(_) | PgWireError::Task(_) => ReplicationError::Stream(text),
            _ => ReplicationError::Stream(text),
        }
    }
}

/// What invalidated a slot, from PostgreSQL's `invalidation_reason`.
/// PostgreSQL 14-16 give none: there a primary's logical slot is
/// invalidated only when it holds more WAL than `max_slot_wal_keep_size`.
pub fn invalidation_cause(reason: Option<&str>) -> String {
    match reason {
        None | Some("wal_removed") => "it needed more WAL than max_slot_wal_keep_size allows \
             (typically while the bridge was stopped)"
            .to_owned(),
        Some("idle_timeout") => "it was not read for longer than idle_replication_slot_timeout \
             (PostgreSQL 18+; typically while the bridge was stopped)"
            .to_owned(),
        Some("wal_level_insufficient") => "wal_level was lowered below logical".to_owned(),
        Some("rows_removed") => "VACUUM removed catalog rows it still needed (a slot on a standby \
             whose primary does not get hot_standby_feedback)"
            .to_owned(),
        Some(other) => format!("PostgreSQL gives the reason {other:?}"),
    }
}

/// The setting that keeps the next slot from the same fate.
pub fn invalidation_prevention(reason: Option<&str>) -> &'static str {
    match reason {
        None | Some("wal_removed") => {
            "Raise max_slot_wal_keep_size (or set it to -1) if the bridge may be stopped for long"
        }
        Some("idle_timeout") => {
            "Raise idle_replication_slot_timeout above the longest time the bridge may be stopped \
             (0 turns it off)"
        }
        Some("wal_level_insufficient") => "Keep wal_level = logical",
        Some("rows_removed") => {
            "Turn hot_standby_feedback on and give the standby a physical slot (primary_slot_name)"
        }
        Some(_) => "See invalidation_reason in PostgreSQL's documentation of pg_replication_slots",
    }
}

/// The server's message (with SQLSTATE) or the client error's text.
pub(crate) fn pg_reason(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// Server errors worth retrying: connection problems (08), insufficient
/// resources (53), operator intervention such as a shutdown (57), conflicts
/// (40001, 40P01), an object in use (55006).
fn is_transient_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || matches!(code, "40001" | "40P01" | "55006")
}

/// A client-side tokio-postgres error caused by the connection (worth
/// retrying), not by our own query or types (a bug: not retried).
fn is_connection_problem(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    let text = err.to_string();
    text.starts_with("error connecting") || text.contains("timeout") || text.contains("timed out")
}

/// The SQLSTATE in a pgwire-replication server error's text, if any.
fn sqlstate_in(text: &str) -> Option<&str> {
    let start = text.find("SQLSTATE ")? + "SQLSTATE ".len();
    text.get(start..start + 5)
}

/// `... is active for PID 1234` → `1234`.
fn active_pid(text: &str) -> Option<String> {
    let rest = &text[text.find("is active for PID ")? + "is active for PID ".len()..];
    let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!pid.is_empty()).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_held_by_another_process_is_transient_and_names_the_pid() {
        let err = ReplicationError::from_wire(
            "s",
            "u@h:1/d",
            pgwire_replication::PgWireError::Server(
                "ERROR: replication slot \"s\" is active for PID 4242 (SQLSTATE 55006)".into(),
            ),
        );
        assert!(err.is_transient());
        assert!(err.to_string().contains("4242"), "{err}");
    }

    #[test]
    fn errors_name_settings_the_way_the_configuration_does() {
        let slot = how_to_set(Key::SlotName);
        let state_file = how_to_set(Key::StateFile);
        let cases = [
            (
                ReplicationError::SlotWrongPlugin {
                    slot: "s".into(),
                    plugin: "test_decoding".into(),
                },
                vec![&slot],
            ),
            (
                ReplicationError::SlotInOtherDatabase {
                    slot: "s".into(),
                    database: "a".into(),
                    expected: "b".into(),
                },
                vec![&slot],
            ),
            (
                ReplicationError::SlotNotOurs { slot: "s".into() },
                vec![&state_file, &slot],
            ),
            (
                ReplicationError::StateFromOtherDatabase {
                    state_path: "/x".into(),
                    stored_system: "1".into(),
                    stored_database: "a".into(),
                    system: "2".into(),
                    database: "b".into(),
                },
                vec![&state_file],
            ),
        ];
        for (err, settings) in cases {
            let text = err.to_string();
            for setting in settings {
                assert!(text.contains(setting.as_str()), "{text}");
            }
            for retired in ["--slot)", "--slot ", "--state file", "--publication)"] {
                assert!(!text.contains(retired), "{text}");
            }
        }
    }

    #[test]
    fn invalidated_slot_names_the_setting_that_invalidated_it() {
        let error = |reason: Option<&str>| {
            ReplicationError::SlotInvalidated {
                slot: "s".into(),
                reason: reason.map(str::to_owned),
                durable_lsn: Lsn(0x1000),
                state_path: "/state".into(),
            }
            .to_string()
        };
        // 14-16 give no reason; 17+ say wal_removed for the same cause.
        for reason in [None, Some("wal_removed")] {
            let text = error(reason);
            assert!(text.contains("max_slot_wal_keep_size"), "{text}");
            assert!(!text.contains("idle_replication_slot_timeout"), "{text}");
        }
        let idle = error(Some("idle_timeout"));
        assert!(idle.contains("idle_replication_slot_timeout"), "{idle}");
        assert!(!idle.contains("max_slot_wal_keep_size"), "{idle}");
        for text in [idle, error(Some("rows_removed")), error(Some("new_reason"))] {
            assert!(text.contains("pg_drop_replication_slot('s')"), "{text}");
            assert!(text.contains("/state"), "{text}");
        }
        assert!(error(Some("new_reason")).contains("\"new_reason\""));
    }

    #[test]
    fn setup_errors_are_permanent_and_say_what_to_do() {
        let err = ReplicationError::WalLevelNotLogical {
            current: "replica".into(),
        };
        assert!(!err.is_transient());
        assert!(err.to_string().contains("wal_level=logical"));
    }
}
