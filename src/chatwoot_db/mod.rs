//! How the bridge connects to Chatwoot's PostgreSQL, for every connection:
//! replication's setup and backfill, the replication stream, write-back,
//! `check` and `status`. It owns the TLS policy of `DATABASE_URL`
//! (libpq's `sslmode`, default `prefer`, and `sslrootcert`): ordinary
//! connections go through tokio-postgres with our rustls connector, the
//! replication connection gets the same policy as pgwire-replication's TLS
//! configuration. Passwords stay inside tokio-postgres' configuration (whose
//! `Debug` redacts them) and never reach an error or a log line; TLS errors
//! say which setting to change (invariant 6).

mod connector;
mod failure;
mod sslmode;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use tokio_postgres::config::Host;

pub use failure::{TlsError, TlsFailure};
pub use sslmode::{SslMode, TlsSettings};

use connector::{LearnedName, RustlsConnect};

/// A connection string that cannot be used (the reason never includes the
/// string, which holds the password).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConnectionString {
    /// Not a connection string tokio-postgres can read.
    #[error("{0}")]
    Syntax(String),
    /// The TLS parameters: an unknown sslmode, an unreadable sslrootcert…
    #[error("{0}")]
    Tls(String),
}

/// Where Chatwoot's database is and how to talk to it securely. Parse it
/// from `DATABASE_URL` (`postgres://…?sslmode=verify-full&sslrootcert=…` or
/// the libpq key=value form).
#[derive(Clone)]
pub struct ConnectionSettings {
    pg: tokio_postgres::Config,
    tls: TlsSettings,
    /// `None` under sslmode=disable.
    rustls: Option<Arc<rustls::ClientConfig>>,
    /// verify-ca: a name the server's certificate holds (see
    /// [`ConnectionSettings::replication_tls`]).
    learned_name: LearnedName,
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ConnectionSettings({}:{} {:?} sslmode={})",
            self.host(),
            self.port(),
            self.pg.get_dbname().unwrap_or(""),
            self.tls.mode
        )
    }
}

impl FromStr for ConnectionSettings {
    type Err = InvalidConnectionString;

    fn from_str(conn: &str) -> Result<ConnectionSettings, InvalidConnectionString> {
        let (rest, tls) = sslmode::split_tls_params(conn).map_err(InvalidConnectionString::Tls)?;
        let mut pg = tokio_postgres::Config::from_str(&rest)
            .map_err(|e| InvalidConnectionString::Syntax(e.to_string()))?;
        pg.ssl_mode(match tls.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        let learned_name = LearnedName::default();
        let rustls = match tls.mode {
            SslMode::Disable => None,
            _ => Some(
                connector::client_config(&tls, &learned_name)
                    .map_err(InvalidConnectionString::Tls)?,
            ),
        };
        Ok(ConnectionSettings {
            pg,
            tls,
            rustls,
            learned_name,
        })
    }
}

impl ConnectionSettings {
    /// tokio-postgres' configuration (without the TLS parameters), e.g. to
    /// set session options.
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    pub fn pg_config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.pg
    }

    pub fn tls(&self) -> &TlsSettings {
        &self.tls
    }

    /// The first host: a TCP host name or address, or a Unix socket
    /// directory; `localhost` when none is given.
    pub fn host(&self) -> String {
        match self.pg.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        }
    }

    pub fn port(&self) -> u16 {
        self.pg.get_ports().first().copied().unwrap_or(5432)
    }

    /// An ordinary connection, encrypted as sslmode says; its driver task
    /// runs on the current runtime. A TLS failure's
    /// [`ConnectionSettings::tls_error`] says what to fix.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        match &self.rustls {
            Some(config) => {
                let tls = RustlsConnect {
                    config: config.clone(),
                    settings: self.tls.clone(),
                };
                let (client, connection) = self.pg.connect(tls).await?;
                spawn_driver(connection);
                Ok(client)
            }
            None => {
                let (client, connection) = self.pg.connect(tokio_postgres::NoTls).await?;
                spawn_driver(connection);
                Ok(client)
            }
        }
    }

    /// The TLS failure behind a connection error, if that is what it was.
    pub fn tls_error(&self, err: &tokio_postgres::Error) -> Option<TlsError> {
        let mut source = std::error::Error::source(err);
        while let Some(s) = source {
            if let Some(tls) = s.downcast_ref::<TlsError>() {
                return Some(tls.clone());
            }
            source = s.source();
        }
        // tokio-postgres' own check of the server's answer to SSLRequest.
        err.to_string()
            .starts_with("error performing TLS handshake")
            .then(|| {
                let text = std::error::Error::source(err)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                self.replication_tls_error(&text)
            })
    }

    /// The same TLS policy for pgwire-replication's connection to `host`.
    pub fn replication_tls(&self) -> pgwire_replication::TlsConfig {
        use pgwire_replication::TlsConfig;
        let host = self.host();
        let root = self.tls.root_cert.clone();
        let is_ip = host.parse::<std::net::IpAddr>().is_ok();
        match self.tls.mode {
            SslMode::Disable => TlsConfig::disabled(),
            // Never verified (see SslMode::Prefer).
            SslMode::Prefer => TlsConfig {
                mode: pgwire_replication::SslMode::Prefer,
                ..TlsConfig::default()
            },
            _ if !self.tls.verifies_chain() => TlsConfig::require(),
            SslMode::VerifyFull => {
                let tls = TlsConfig::verify_full(root);
                // It refuses an IP address unless told the expected name;
                // rustls then checks the certificate's IP addresses.
                if is_ip {
                    tls.with_sni_hostname(host)
                } else {
                    tls
                }
            }
            _ => {
                // verify-ca. pgwire-replication 0.5 ignores only rustls' old
                // NotValidForName error, not the NotValidForNameContext that
                // rustls 0.23 returns, so a host the certificate does not
                // name fails there. Expect a name the certificate holds,
                // learned by an ordinary connection's chain check.
                let tls = TlsConfig::verify_ca(root);
                let learned = self
                    .learned_name
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                match learned {
                    Some(name) => tls.with_sni_hostname(name),
                    None if is_ip => tls.with_sni_hostname(host),
                    None => tls,
                }
            }
        }
    }

    /// Explains pgwire-replication's TLS error text.
    pub fn replication_tls_error(&self, text: &str) -> TlsError {
        TlsError {
            failure: TlsFailure::from_text(text),
            settings: self.tls.clone(),
            host: self.host(),
        }
    }

    /// Whether `client`'s session is encrypted, in one line for `check`.
    pub async fn describe_encryption(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<Encryption, tokio_postgres::Error> {
        let row = client
            .query_opt(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await?;
        let (encrypted, protocol) = match row {
            Some(row) => (row.get::<_, bool>(0), row.get::<_, Option<String>>(1)),
            None => (false, None),
        };
        let mode = self.tls.mode;
        let description = if encrypted {
            let checks = if self.tls.verifies_host() {
                format!(
                    "certificate and host name verified against {}",
                    self.tls.roots_description()
                )
            } else if self.tls.verifies_chain() {
                format!(
                    "certificate verified against {}, host name not checked",
                    self.tls.roots_description()
                )
            } else {
                "certificate not verified (sslmode=verify-full with sslrootcert checks it)"
                    .to_owned()
            };
            format!(
                "encrypted ({}) under sslmode={mode}: {checks}",
                protocol.as_deref().unwrap_or("TLS")
            )
        } else {
            format!(
                "not encrypted (sslmode={mode}{}); set sslmode=require (or verify-full with \
                 sslrootcert) in DATABASE_URL to refuse plaintext",
                if mode == SslMode::Prefer {
                    ": the server does not offer SSL"
                } else {
                    ""
                }
            )
        };
        Ok(Encryption {
            encrypted,
            description,
        })
    }
}

/// What `check` reports about a session's encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encryption {
    pub encrypted: bool,
    pub description: String,
}

fn spawn_driver<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("Chatwoot database connection closed: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_errors_never_show_the_password() {
        let settings: ConnectionSettings =
            "postgres://bridge:s3cr3t@db.example:6543/chatwoot?sslmode=require"
                .parse()
                .unwrap();
        let debug = format!("{settings:?}");
        assert!(
            !debug.contains("s3cr3t") && debug.contains("sslmode=require"),
            "{debug}"
        );
        let err = "postgres://bridge:s3cr3t@db.example:x/chatwoot?sslmode=verify-full"
            .parse::<ConnectionSettings>()
            .unwrap_err();
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
    }

    #[test]
    fn a_missing_root_certificate_fails_at_parse_time_naming_the_setting() {
        let err = "postgres://u:p@h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"
            .parse::<ConnectionSettings>()
            .unwrap_err();
        assert!(
            err.to_string().contains("sslrootcert=/nonexistent/ca.pem"),
            "{err}"
        );
    }

    #[test]
    fn the_replication_connection_gets_the_same_policy() {
        use pgwire_replication::SslMode as Wire;
        let tls = |url: &str| url.parse::<ConnectionSettings>().unwrap().replication_tls();
        assert_eq!(tls("postgres://u@h/db?sslmode=disable").mode, Wire::Disable);
        assert_eq!(tls("postgres://u@h/db").mode, Wire::Prefer);
        assert_eq!(tls("postgres://u@h/db?sslmode=require").mode, Wire::Require);
        assert_eq!(
            tls("postgres://u@h/db?sslmode=verify-ca").mode,
            Wire::VerifyCa
        );
        let full = tls("postgres://u@127.0.0.1/db?sslmode=verify-full");
        assert_eq!(full.mode, Wire::VerifyFull);
        assert_eq!(full.sni_hostname.as_deref(), Some("127.0.0.1"));
        assert_eq!(
            tls("postgres://u@db.example/db?sslmode=verify-full").sni_hostname,
            None
        );
    }
}
