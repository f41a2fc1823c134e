//! What the client needs to know about one GLPI instance, and the checks that
//! refuse a configuration before any token goes on the wire (invariant 6:
//! misconfiguration fails fast with a message that says what to fix).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use url::{Host, Url};

use crate::secret::Secret;

/// The path every GLPI legacy REST API URL ends with.
const API_PATH_SUFFIX: &str = "/apirest.php";

/// Connection and pacing settings for one GLPI instance.
///
/// Build it with [`GlpiConfig::new`] (which fills in the defaults below) and
/// adjust the public fields; [`crate::glpi::GlpiClient::new`] validates it.
#[derive(Debug, Clone)]
pub struct GlpiConfig {
    /// Base URL of the legacy REST API; must end with `/apirest.php`,
    /// e.g. `https://glpi.example.com/apirest.php`.
    pub api_url: String,
    /// The API client's application token (Setup > General > API), if the API
    /// client that matches the bridge's IP address has one.
    pub app_token: Option<Secret>,
    /// The GLPI user's API token (My settings > Remote access keys).
    pub user_token: Secret,
    /// Most requests per second sent to this GLPI instance, retries and
    /// session requests included; `None` means unlimited.
    pub requests_per_second: Option<NonZeroU32>,
    /// Most requests waiting for an answer at once (default 8).
    pub max_in_flight: usize,
    /// Time allowed for one request, from sending to the end of the answer
    /// (default 30 s).
    pub timeout: Duration,
    /// How many times a transient failure (connection error, timeout on an
    /// idempotent request, 5xx, 429) is retried within one call (default 5).
    pub max_retries: u32,
    /// A PEM bundle of extra CA certificates to trust (`GLPI_CA_CERT`), for a
    /// GLPI served with a certificate from a private CA.
    pub ca_cert: Option<PathBuf>,
    /// Allow plain `http://` to a non-loopback host (`GLPI_ALLOW_HTTP`).
    /// Tokens then travel in clear text.
    pub allow_http: bool,
    /// Where every attempt is counted (endpoint, outcome, latency); `None`
    /// records nothing.
    pub metrics: Option<std::sync::Arc<crate::observability::Metrics>>,
}

impl GlpiConfig {
    /// Default number of requests in flight.
    pub const DEFAULT_MAX_IN_FLIGHT: usize = 8;
    /// Default per-request timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
    /// Default number of transient retries per call.
    pub const DEFAULT_MAX_RETRIES: u32 = 5;

    /// A configuration with the defaults: no app token, unlimited rate, 8 in
    /// flight, 30 s timeout, 5 retries, system CAs, https required.
    pub fn new(api_url: impl Into<String>, user_token: Secret) -> Self {
        GlpiConfig {
            api_url: api_url.into(),
            app_token: None,
            user_token,
            requests_per_second: None,
            max_in_flight: Self::DEFAULT_MAX_IN_FLIGHT,
            timeout: Self::DEFAULT_TIMEOUT,
            max_retries: Self::DEFAULT_MAX_RETRIES,
            ca_cert: None,
            allow_http: false,
            metrics: None,
        }
    }

    /// Checks the URL (scheme, `/apirest.php` suffix, https unless allowed)
    /// and the limits; returns the parsed base URL without a trailing slash.
    pub(crate) fn validated_base_url(&self) -> Result<Url, GlpiConfigError> {
        if self.user_token.is_empty() {
            return Err(GlpiConfigError::MissingUserToken);
        }
        if self.max_in_flight == 0 {
            return Err(GlpiConfigError::ZeroInFlight);
        }
        if self.timeout.is_zero() {
            return Err(GlpiConfigError::ZeroTimeout);
        }
        parse_api_url(&self.api_url, self.allow_http)
    }
}

/// Why a [`GlpiConfig`] was refused. The messages name the setting to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GlpiConfigError {
    #[error("GLPI API URL `{url}` is not a valid URL ({reason}); expected the form {expected}")]
    InvalidUrl {
        url: String,
        reason: String,
        expected: &'static str,
    },
    #[error(
        "GLPI API URL `{url}` must end with /apirest.php, e.g. {expected} \
         (the address of GLPI followed by /apirest.php)"
    )]
    WrongPath { url: String, expected: String },
    #[error("GLPI API URL `{url}` uses the scheme `{scheme}`; use https:// (or http:// for a local GLPI)")]
    UnsupportedScheme { url: String, scheme: String },
    #[error(
        "refusing plain http:// to {host}: the GLPI tokens would travel unencrypted. \
         Use https://, or if the network path is trusted allow it with {} set to true",
        crate::config::how_to_set(crate::config::Key::GlpiAllowHttp)
    )]
    InsecureHttp { host: String },
    #[error("GLPI API URL `{url}` must not carry user:password, a query or a fragment; give only the address ending in /apirest.php")]
    UnexpectedUrlParts { url: String },
    #[error("the GLPI user token is empty: set it to the API token from GLPI's My settings > Remote access keys")]
    MissingUserToken,
    #[error("max_in_flight must be at least 1")]
    ZeroInFlight,
    #[error("the GLPI request timeout must be greater than zero")]
    ZeroTimeout,
    #[error(
        "cannot read the CA bundle {path} ({}): {reason}",
        crate::config::how_to_set(crate::config::Key::GlpiCaCert)
    )]
    CaCertUnreadable { path: PathBuf, reason: String },
    #[error("the CA bundle {path} ({}) holds no PEM certificate: expected one or more -----BEGIN CERTIFICATE----- blocks", crate::config::how_to_set(crate::config::Key::GlpiCaCert))]
    CaCertEmpty { path: PathBuf },
    #[error("cannot set up the HTTPS client: {0}")]
    HttpClient(String),
}

const EXPECTED_FORM: &str = "https://glpi.example.com/apirest.php";

/// Parses and checks an API URL; see [`GlpiConfig::api_url`].
pub(crate) fn parse_api_url(raw: &str, allow_http: bool) -> Result<Url, GlpiConfigError> {
    let trimmed = raw.trim();
    let shown = redact_userinfo(trimmed);
    let mut url = Url::parse(trimmed).map_err(|e| GlpiConfigError::InvalidUrl {
        url: shown.clone(),
        reason: e.to_string(),
        expected: EXPECTED_FORM,
    })?;
    if !url.username().is_empty()
        || url.password().is_some()
        || url.query().is_some()
        || url.fragment().is_some()
    {
        return Err(GlpiConfigError::UnexpectedUrlParts { url: shown });
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            if !allow_http && !is_loopback(url.host()) {
                return Err(GlpiConfigError::InsecureHttp {
                    host: url.host_str().unwrap_or_default().to_owned(),
                });
            }
        }
        other => {
            return Err(GlpiConfigError::UnsupportedScheme {
                url: shown,
                scheme: other.to_owned(),
            })
        }
    }
    let path = url.path().trim_end_matches('/').to_owned();
    if !path.ends_with(API_PATH_SUFFIX) {
        return Err(GlpiConfigError::WrongPath {
            url: shown,
            expected: suggested_url(&url),
        });
    }
    url.set_path(&path);
    Ok(url)
}

/// The URL the operator probably meant: same origin and path, `/apirest.php`
/// appended (a URL ending in `/api` or `/index.php` is trimmed first).
fn suggested_url(url: &Url) -> String {
    let mut path = url.path().trim_end_matches('/').to_owned();
    for wrong_tail in ["/index.php", "/api", "/apirest"] {
        if let Some(stripped) = path.strip_suffix(wrong_tail) {
            path = stripped.to_owned();
            break;
        }
    }
    let mut suggestion = url.clone();
    suggestion.set_path(&format!("{path}{API_PATH_SUFFIX}"));
    suggestion.to_string()
}

fn is_loopback(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Hides a password written into a URL before it is shown in an error.
fn redact_userinfo(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut url) if url.password().is_some() || !url.username().is_empty() => {
            let _ = url.set_password(None);
            let _ = url.set_username("[redacted]");
            url.to_string()
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<Url, GlpiConfigError> {
        parse_api_url(url, false)
    }

    #[test]
    fn accepts_https_and_trailing_slash() {
        let url = parse("https://glpi.example.com/glpi/apirest.php/").unwrap();
        assert_eq!(url.as_str(), "https://glpi.example.com/glpi/apirest.php");
    }

    #[test]
    fn http_allowed_only_for_loopback_or_when_allowed() {
        for ok in [
            "http://127.0.0.1:8080/apirest.php",
            "http://127.9.9.9/apirest.php",
            "http://localhost/apirest.php",
            "http://[::1]:80/apirest.php",
        ] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        let err = parse("http://glpi.example.com/apirest.php").unwrap_err();
        assert!(matches!(err, GlpiConfigError::InsecureHttp { .. }));
        assert!(err.to_string().contains("GLPI_ALLOW_HTTP"), "{err}");
        assert!(parse("http://10.0.0.5/apirest.php").is_err());
        assert!(parse_api_url("http://glpi.example.com/apirest.php", true).is_ok());
    }

    #[test]
    fn wrong_path_shows_the_expected_form() {
        let err = parse("https://glpi.example.com/glpi/api").unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, GlpiConfigError::WrongPath { .. }));
        assert!(
            text.contains("https://glpi.example.com/glpi/apirest.php"),
            "{text}"
        );
        let err = parse("https://glpi.example.com").unwrap_err();
        assert!(
            err.to_string()
                .contains("https://glpi.example.com/apirest.php"),
            "{err}"
        );
    }

    #[test]
    fn refuses_other_schemes_and_extra_parts() {
        assert!(matches!(
            parse("ftp://glpi/apirest.php").unwrap_err(),
            GlpiConfigError::UnsupportedScheme { .. }
        ));
        let err = parse("https://admin:pw@glpi/apirest.php").unwrap_err();
        assert!(!err.to_string().contains("pw@"), "{err}");
        assert!(parse("https://glpi/apirest.php?x=1").is_err());
        assert!(matches!(
            parse("not a url").unwrap_err(),
            GlpiConfigError::InvalidUrl { .. }
        ));
    }

    #[test]
    fn checks_limits_and_token() {
        let mut config = GlpiConfig::new("https://glpi/apirest.php", Secret::new(""));
        assert!(matches!(
            config.validated_base_url().unwrap_err(),
            GlpiConfigError::MissingUserToken
        ));
        config.user_token = Secret::new("t");
        config.max_in_flight = 0;
        assert!(matches!(
            config.validated_base_url().unwrap_err(),
            GlpiConfigError::ZeroInFlight
        ));
        config.max_in_flight = 1;
        assert!(config.validated_base_url().is_ok());
        let debug = format!("{:?}", GlpiConfig::new("x", Secret::new("s3cr3t")));
        assert!(!debug.contains("s3cr3t"));
    }
}
