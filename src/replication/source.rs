//! Chatwoot's database as given by `DATABASE_URL`: ordinary connections
//! (tokio-postgres) for setup and the backfill, and replication connections
//! (pgwire-replication) for the slot and the stream, both encrypted as
//! `sslmode` says ([`crate::chatwoot_db`]). The password is kept in a
//! [`Secret`] and never printed: errors and logs show `user@host:port/db`.

use std::time::Duration;

use pgwire_replication::ReplicationConfig;

use super::error::{pg_reason, ReplicationError};
use crate::chatwoot_db::{ConnectionSettings, InvalidConnectionString};
use crate::secret::Secret;

/// Session settings of every connection: the backfill's `::text` values and
/// the stream's text values must print alike (timestamps, floats).
const SESSION_OPTIONS: &str =
    "-c datestyle=ISO,MDY -c intervalstyle=postgres -c extra_float_digits=1";

/// How to reach Chatwoot's database.
#[derive(Clone)]
pub struct SourceDb {
    settings: ConnectionSettings,
    host: String,
    port: u16,
    user: String,
    password: Secret,
    database: String,
}

impl std::fmt::Debug for SourceDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.target())
    }
}

impl SourceDb {
    /// Parses a `postgres://user:password@host:port/database` URL (or a
    /// libpq key=value string).
    pub fn from_url(url: &Secret) -> Result<SourceDb, ReplicationError> {
        let mut settings: ConnectionSettings = url.expose().parse().map_err(|e| match e {
            InvalidConnectionString::Syntax(reason) => {
                ReplicationError::InvalidDatabaseUrl { reason }
            }
            InvalidConnectionString::Tls(reason) => ReplicationError::InvalidTlsSettings { reason },
        })?;
        let (host, port) = (settings.host(), settings.port());
        let config = settings.pg_config();
        let user = config.get_user().map(str::to_owned).ok_or_else(|| {
            ReplicationError::InvalidDatabaseUrl {
                reason: "no user name".into(),
            }
        })?;
        let password = config
            .get_password()
            .map(|p| Secret::new(String::from_utf8_lossy(p).into_owned()))
            .unwrap_or_default();
        let database = config
            .get_dbname()
            .map(str::to_owned)
            .unwrap_or_else(|| user.clone());
        let config = settings.pg_config_mut();
        config.dbname(&database);
        config.connect_timeout(Duration::from_secs(10));
        config.application_name("chatwoot-glpi-bridge");
        config.options(SESSION_OPTIONS);
        Ok(SourceDb {
            settings,
            host,
            port,
            user,
            password,
            database,
        })
    }

    /// `user@host:port/database`, for messages.
    pub fn target(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// How connections are made (TLS included).
    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// An ordinary connection; its driver task runs on the current runtime.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, ReplicationError> {
        self.settings
            .connect()
            .await
            .map_err(|e| self.classify_connect_error(&e))
    }

    fn classify_connect_error(&self, err: &tokio_postgres::Error) -> ReplicationError {
        if let Some(tls) = self.settings.tls_error(err) {
            if tls.is_misconfiguration() {
                return ReplicationError::Tls {
                    target: self.target(),
                    reason: tls.to_string(),
                };
            }
        }
        let reason = pg_reason(err);
        let login = err.as_db_error().is_some_and(|db| {
            let code = db.code().code();
            code.starts_with("28") || code == "3D000"
        }) || reason.contains("password");
        if login {
            ReplicationError::LoginRefused {
                target: self.target(),
                reason,
            }
        } else {
            ReplicationError::Unreachable {
                target: self.target(),
                reason,
            }
        }
    }

    /// The configuration of a replication connection on `slot`, streaming
    /// `publication`.
    pub fn replication_config(&self, slot: &str, publication: &str) -> ReplicationConfig {
        let cfg = ReplicationConfig::new(
            self.host.clone(),
            self.user.clone(),
            self.password.expose().to_owned(),
            self.database.clone(),
            slot.to_owned(),
            publication.to_owned(),
        )
        .with_port(self.port)
        .with_tls(self.settings.replication_tls())
        .with_application_name("chatwoot-glpi-bridge");
        cfg.with_options(SESSION_OPTIONS)
    }

    /// Classifies an error of a replication connection on `slot`, TLS
    /// failures explained as for ordinary connections.
    pub fn wire_error(&self, slot: &str, err: pgwire_replication::PgWireError) -> ReplicationError {
        if let pgwire_replication::PgWireError::Tls(text) = &err {
            let tls = self.settings.replication_tls_error(text);
            if tls.is_misconfiguration() {
                return ReplicationError::Tls {
                    target: self.target(),
                    reason: tls.to_string(),
                };
            }
        }
        ReplicationError::from_wire(slot, &self.target(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_url_and_never_prints_the_password() {
        let db = SourceDb::from_url(&Secret::new(
            "postgres://bridge:s3cr3t-pw@db.example:6543/chatwoot",
        ))
        .unwrap();
        assert_eq!(db.target(), "bridge@db.example:6543/chatwoot");
        assert!(!format!("{db:?}").contains("s3cr3t"));
        let cfg = db.replication_config("slot", "pub");
        assert_eq!((cfg.port, cfg.database.as_str()), (6543, "chatwoot"));
    }

    #[test]
    fn bad_url_error_does_not_echo_the_url() {
        let err =
            SourceDb::from_url(&Secret::new("postgres://u:pw-xyz@host:notaport/db")).unwrap_err();
        assert!(!err.to_string().contains("pw-xyz"), "{err}");
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
    }
}
