//! Why a TLS connection to Chatwoot's database failed, in words that say what
//! to change. One explanation serves both drivers: tokio-postgres (typed
//! rustls errors from our connector) and pgwire-replication (its error text).

use std::fmt;

use super::sslmode::TlsSettings;

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server answered the SSL request with "no" (`ssl = off`).
    ServerRefusesTls,
    /// The certificate does not chain to a trusted CA (or is expired, or
    /// badly signed).
    UntrustedCertificate { detail: String },
    /// verify-full: the certificate does not name the host connected to.
    HostNameMismatch { detail: String },
    /// The handshake failed otherwise (protocol versions, a dropped
    /// connection…).
    Handshake { detail: String },
}

impl TlsFailure {
    /// Classifies a rustls error met during the handshake.
    pub fn from_rustls(err: &rustls::Error) -> TlsFailure {
        use rustls::CertificateError as C;
        let detail = err.to_string();
        match err {
            rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            ) => TlsFailure::HostNameMismatch { detail },
            rustls::Error::InvalidCertificate(_) => TlsFailure::UntrustedCertificate { detail },
            _ => TlsFailure::Handshake { detail },
        }
    }

    /// Classifies pgwire-replication's TLS error text (it keeps only the
    /// rustls error's text).
    pub fn from_text(text: &str) -> TlsFailure {
        let detail = text.to_owned();
        if text.contains("does not support TLS") || text.contains("SSLRequest rejected") {
            TlsFailure::ServerRefusesTls
        } else if text.contains("not valid for name") || text.contains("NotValidForName") {
            TlsFailure::HostNameMismatch { detail }
        } else if text.contains("invalid peer certificate") {
            TlsFailure::UntrustedCertificate { detail }
        } else {
            TlsFailure::Handshake { detail }
        }
    }
}

/// A TLS failure with the settings and host it happened under; `Display`
/// is the whole explanation (no password: the settings hold none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError {
    pub failure: TlsFailure,
    pub settings: TlsSettings,
    pub host: String,
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = self.settings.mode;
        match &self.failure {
            TlsFailure::ServerRefusesTls if self.host.starts_with('/') => write!(
                f,
                "DATABASE_URL asks for sslmode={mode} over the Unix socket {}, but PostgreSQL \
                 never uses SSL on Unix sockets: use sslmode=disable or sslmode=prefer for a \
                 socket, or connect over TCP (host name) to use TLS",
                self.host
            ),
            TlsFailure::ServerRefusesTls => write!(
                f,
                "the server at {} does not accept SSL connections, but DATABASE_URL asks for \
                 sslmode={mode}. Turn SSL on in PostgreSQL (ssl = on, with ssl_cert_file and \
                 ssl_key_file, then reload), or on a network you trust set sslmode=prefer or \
                 sslmode=disable in DATABASE_URL",
                self.host
            ),
            TlsFailure::UntrustedCertificate { detail } => write!(
                f,
                "the certificate of the server at {} is not trusted ({detail}): it is checked \
                 against {} (sslmode={mode}). Set sslrootcert=/path/to/ca.pem in DATABASE_URL to \
                 the CA certificate that signed the server's certificate (for a managed \
                 database, the provider's CA bundle), or use sslmode=require to encrypt without \
                 verifying the certificate",
                self.host,
                self.settings.roots_description()
            ),
            TlsFailure::HostNameMismatch { detail } => write!(
                f,
                "the certificate of the server is not valid for the host name {:?} in \
                 DATABASE_URL ({detail}). sslmode=verify-full checks that the host you connect \
                 to is a name the certificate holds: put one of those names in DATABASE_URL, or \
                 use sslmode=verify-ca to check only that a trusted CA signed it",
                self.host
            ),
            TlsFailure::Handshake { detail } => write!(
                f,
                "the TLS handshake with the server at {} failed under sslmode={mode}: {detail}",
                self.host
            ),
        }
    }
}

impl std::error::Error for TlsError {}

impl TlsError {
    /// Failures that retrying cannot fix: they need a configuration change.
    pub fn is_misconfiguration(&self) -> bool {
        !matches!(self.failure, TlsFailure::Handshake { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chatwoot_db::sslmode::SslMode;

    fn error(failure: TlsFailure, root: Option<&str>) -> String {
        TlsError {
            failure,
            settings: TlsSettings {
                mode: SslMode::VerifyFull,
                root_cert: root.map(Into::into),
            },
            host: "db.example".into(),
        }
        .to_string()
    }

    #[test]
    fn each_failure_names_the_setting_to_change() {
        let refused = error(TlsFailure::ServerRefusesTls, None);
        assert!(refused.contains("ssl = on") && refused.contains("sslmode=prefer"));
        let untrusted = error(
            TlsFailure::from_text("TLS handshake failed: invalid peer certificate: UnknownIssuer"),
            Some("/etc/ca.pem"),
        );
        assert!(
            untrusted.contains("sslrootcert=/etc/ca.pem") && untrusted.contains("UnknownIssuer"),
            "{untrusted}"
        );
        let mismatch = error(
            TlsFailure::from_text(
                "TLS handshake failed: invalid peer certificate: certificate not valid for name \"127.0.0.1\"",
            ),
            None,
        );
        assert!(mismatch.contains("verify-ca"), "{mismatch}");
    }
}
