//! The bridge's configuration: every setting named once (in [`settings`]),
//! read from a TOML file (`--config`), the environment and flags (flags
//! override the environment, which overrides the file), and checked before
//! anything starts (invariant 6: misconfiguration fails fast with a message
//! that says what to fix). Secrets stay in [`Secret`]s.
//!
//! [`Config`] is a plain struct; the stages build their own small config
//! structs from it (see the `to_*` conversions).

pub mod reference;
pub mod settings;
pub mod sources;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

use chrono::NaiveDate;

pub use settings::Key;
pub use sources::ConfigArgs;
use sources::{describe, RawValue};

use crate::glpi::GlpiConfig;
use crate::planner::settings::{ConfiguredAccounts, GlpiSettings};
use crate::secret::Secret;

/// Why the configuration was refused. Every message names the setting and
/// where its value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {reason}")]
    FileUnreadable { path: PathBuf, reason: String },
    #[error("the configuration file {path} is not valid TOML: {reason}")]
    FileSyntax { path: PathBuf, reason: String },
    #[error("unknown key `{key}` in {path}; valid keys are: {}", valid_keys())]
    UnknownKey { key: String, path: PathBuf },
    #[error("invalid {origin}: {reason}")]
    Invalid { origin: String, reason: String },
    #[error("{what} is not set: set {}", how_to_set(*key))]
    Missing { what: &'static str, key: Key },
}

fn valid_keys() -> String {
    Key::ALL
        .iter()
        .map(|k| k.def().toml_key)
        .collect::<Vec<_>>()
        .join(", ")
}

/// "the environment variable X, the flag --x or `x` in the --config file".
pub fn how_to_set(key: Key) -> String {
    let def = key.def();
    match def.flag {
        Some(flag) => format!(
            "the environment variable {}, the flag --{flag} or `{}` in the --config file",
            def.env, def.toml_key
        ),
        None => format!(
            "the environment variable {} or `{}` in the --config file",
            def.env, def.toml_key
        ),
    }
}

/// What existing history is sent to GLPI on first start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackfillPolicy {
    /// Every existing contact, conversation and message.
    All,
    /// Nothing that exists before the slot; only changes from now on.
    None,
    /// Conversations with activity on or after this day (UTC), and their
    /// contacts.
    Since(NaiveDate),
}

impl fmt::Display for BackfillPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackfillPolicy::All => f.write_str("all"),
            BackfillPolicy::None => f.write_str("none"),
            BackfillPolicy::Since(day) => write!(f, "since:{day}"),
        }
    }
}

impl std::str::FromStr for BackfillPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        match s {
            "all" => Ok(BackfillPolicy::All),
            "none" => Ok(BackfillPolicy::None),
            _ => {
                let day = s.strip_prefix("since:").ok_or_else(|| {
                    format!(
                        "{s:?} is not a backfill policy: use `all`, `none` or `since:YYYY-MM-DD`"
                    )
                })?;
                NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d")
                    .map(BackfillPolicy::Since)
                    .map_err(|_| {
                        format!(
                            "{day:?} is not a date: write since:YYYY-MM-DD, e.g. since:2024-01-31"
                        )
                    })
            }
        }
    }
}

/// The log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Chatwoot's database URL, with its password kept apart as a [`Secret`].
/// `Debug` and `Display` show the redacted form.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    /// The URL without its password.
    without_password: url::Url,
    password: Option<Secret>,
}

impl DatabaseUrl {
    /// Parses a `postgres://` or `postgresql://` URL.
    pub fn parse(text: &str) -> Result<DatabaseUrl, String> {
        let mut url = url::Url::parse(text.trim()).map_err(|e| {
            format!("not a URL ({e}); expected postgres://USER:PASSWORD@HOST:5432/DATABASE")
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "the scheme is `{}`; expected postgres://USER:PASSWORD@HOST:5432/DATABASE",
                url.scheme()
            ));
        }
        let password = url
            .password()
            .map(|p| Secret::new(percent_decode(p).unwrap_or_else(|| p.to_owned())));
        let _ = url.set_password(None);
        if url.path().trim_start_matches('/').is_empty() {
            return Err(
                "names no database; add it after the host, e.g. …@HOST:5432/chatwoot_production"
                    .into(),
            );
        }
        Ok(DatabaseUrl {
            without_password: url,
            password,
        })
    }

    /// The URL with the password replaced by `****`: safe to print.
    pub fn redacted(&self) -> String {
        let mut url = self.without_password.clone();
        if self.password.is_some() {
            let _ = url.set_password(Some("****"));
        }
        url.to_string()
    }

    /// The full URL, password included: only for handing to a driver.
    pub fn expose(&self) -> String {
        let mut url = self.without_password.clone();
        if let Some(password) = &self.password {
            let _ = url.set_password(Some(&percent_encode(password.expose())));
        }
        url.to_string()
    }

    /// A tokio-postgres configuration for ordinary (non-replication)
    /// connections.
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
        self.expose().parse()
    }

    pub fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    /// Host name, or `None` when the URL names none (then libpq-style
    /// clients use the `host` query parameter or a Unix socket).
    pub fn host(&self) -> Option<&str> {
        self.without_password.host_str().filter(|h| !h.is_empty())
    }

    pub fn port(&self) -> u16 {
        self.without_password.port().unwrap_or(5432)
    }

    pub fn user(&self) -> &str {
        self.without_password.username()
    }

    pub fn database(&self) -> String {
        let raw = self.without_password.path().trim_start_matches('/');
        percent_decode(raw).unwrap_or_else(|| raw.to_owned())
    }

    /// A query parameter (`sslmode`, `host`…).
    pub fn param(&self, name: &str) -> Option<String> {
        self.without_password
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

fn percent_decode(text: &str) -> Option<String> {
    // url::Url keeps userinfo percent-encoded; decode with the form decoder
    // after protecting '+' (which is literal in userinfo).
    let protected = text.replace('+', "%2B");
    url::form_urlencoded::parse(format!("x={protected}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

fn percent_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Where the metrics HTTP endpoint listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricsAddr {
    Off,
    Listen(SocketAddr),
}

/// Every setting, typed and checked.
#[derive(Clone, Debug)]
pub struct Config {
    /// `None` until set; commands that need it call [`Config::database_url`].
    pub database_url: Option<DatabaseUrl>,
    pub state_file: PathBuf,
    /// How long the planner keeps a message's cached snapshot (`None`:
    /// forever, `message_cache_days = 0`).
    pub message_cache: Option<std::time::Duration>,
    pub slot_name: String,
    pub publication_name: String,
    pub backfill: BackfillPolicy,
    pub backfill_page_size: u32,
    pub status_interval: std::time::Duration,
    pub max_conversations: usize,
    pub chatwoot_frontend_url: Option<url::Url>,
    pub metrics_addr: MetricsAddr,
    pub log_format: LogFormat,
    pub log_filter: String,
    /// Requests per second per GLPI instance; `None` = unlimited.
    pub glpi_rate_limit: Option<NonZeroU32>,
    pub glpi_max_in_flight: usize,
    pub glpi_allow_http: bool,
    pub glpi_ca_cert: Option<PathBuf>,
    /// The GLPI account of the bridge's own configuration and the Chatwoot
    /// accounts it serves (empty when `GLPI_ACCOUNT_IDS` names none); parsed
    /// by the planner's settings parser, the same that reads hook rows.
    pub glpi_account: ConfiguredAccounts,
}

impl Config {
    /// Loads from the `--config` file, the process environment and flags.
    pub fn load(args: &ConfigArgs) -> Result<Config, ConfigError> {
        Config::load_with_env(args, &|name| std::env::var(name).ok())
    }

    /// Like [`Config::load`], with the environment given as a function (tests
    /// must not change the process environment: tests run in parallel).
    pub fn load_with_env(
        args: &ConfigArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let file = match &args.config_file {
            Some(path) => sources::from_file(path)?,
            None => BTreeMap::new(),
        };
        let raw = sources::merge(vec![
            sources::defaults(),
            file,
            sources::from_env(env),
            args.flag_values(),
        ]);
        Config::from_raw(&raw)
    }

    /// The database URL, or an error that says how to set it.
    pub fn database_url(&self) -> Result<&DatabaseUrl, ConfigError> {
        self.database_url.as_ref().ok_or(ConfigError::Missing {
            what: "Chatwoot's database URL",
            key: Key::DatabaseUrl,
        })
    }

    /// The GLPI client configuration for one account's settings (hook row or
    /// configuration), with this configuration's pacing and TLS settings.
    pub fn glpi_client_config(&self, glpi: &GlpiSettings) -> GlpiConfig {
        let mut config = GlpiConfig::new(glpi.api_url.clone(), glpi.user_token.clone());
        config.app_token = (!glpi.app_token.is_empty()).then(|| glpi.app_token.clone());
        config.requests_per_second = self.glpi_rate_limit;
        config.max_in_flight = self.glpi_max_in_flight;
        config.allow_http = self.glpi_allow_http;
        config.ca_cert = self.glpi_ca_cert.clone();
        config
    }

    fn from_raw(raw: &BTreeMap<Key, RawValue>) -> Result<Config, ConfigError> {
        let v = Values(raw);
        let metrics_addr = v.parse(Key::MetricsAddr, |s| match s.trim() {
            "off" => Ok(MetricsAddr::Off),
            other => other.parse().map(MetricsAddr::Listen).map_err(|_| {
                format!("{other:?} is not an address: write IP:PORT (e.g. 127.0.0.1:9187) or `off`")
            }),
        })?;
        Ok(Config {
            database_url: v.opt(Key::DatabaseUrl, DatabaseUrl::parse)?,
            state_file: PathBuf::from(v.required(Key::StateFile)?),
            message_cache: v.parse(Key::MessageCacheDays, parse_retention_days)?,
            slot_name: v.parse(Key::SlotName, parse_identifier)?,
            publication_name: v.parse(Key::PublicationName, parse_identifier)?,
            backfill: v.parse(Key::Backfill, str::parse)?,
            backfill_page_size: v.parse(Key::BackfillPageSize, |s| {
                parse_count(s, 1).map(|n| n.min(u32::MAX as usize) as u32)
            })?,
            status_interval: v.parse(Key::StatusIntervalSecs, |s| {
                parse_count(s, 1).map(|n| std::time::Duration::from_secs(n as u64))
            })?,
            max_conversations: v.parse(Key::MaxConversations, |s| parse_count(s, 1))?,
            chatwoot_frontend_url: v.opt(Key::ChatwootFrontendUrl, parse_http_url)?,
            metrics_addr,
            log_format: v.parse(Key::LogFormat, |s| match s.trim() {
                "human" => Ok(LogFormat::Human),
                "json" => Ok(LogFormat::Json),
                other => Err(format!(
                    "{other:?} is not a log format: use `human` or `json`"
                )),
            })?,
            log_filter: v.required(Key::LogFilter)?.to_owned(),
            glpi_rate_limit: v.parse(Key::GlpiRateLimit, |s| {
                parse_count(s, 0).map(|n| NonZeroU32::new(n.min(u32::MAX as usize) as u32))
            })?,
            glpi_max_in_flight: v.parse(Key::GlpiMaxInFlight, |s| parse_count(s, 1))?,
            glpi_allow_http: v.parse(Key::GlpiAllowHttp, parse_bool)?,
            glpi_ca_cert: v.opt(Key::GlpiCaCert, |s| Ok(PathBuf::from(s.trim())))?,
            glpi_account: configured_accounts(raw)?,
        })
    }
}

/// The `glpi_account.*` settings, whatever their source, handed to the
/// planner's parser under their environment names (so hook rows and the
/// configuration are validated by one function).
fn configured_accounts(raw: &BTreeMap<Key, RawValue>) -> Result<ConfiguredAccounts, ConfigError> {
    let lookup = |var: &str| {
        Key::ALL
            .into_iter()
            .find(|k| k.def().env == var)
            .and_then(|k| raw.get(&k))
            .map(|value| value.text.clone())
    };
    ConfiguredAccounts::from_lookup(lookup).map_err(|e| ConfigError::Invalid {
        origin:
            "GLPI account settings (`glpi_account.*` in the file, GLPI_* variables, --glpi-* flags)"
                .to_owned(),
        reason: e.problems.join("; "),
    })
}

/// Typed access to the merged raw values, wrapping parse errors with the
/// value's origin.
struct Values<'a>(&'a BTreeMap<Key, RawValue>);

impl Values<'_> {
    fn opt<T>(
        &self,
        key: Key,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.0.get(&key) {
            None => Ok(None),
            Some(raw) if raw.text.trim().is_empty() => Ok(None),
            Some(raw) => parse(&raw.text)
                .map(Some)
                .map_err(|reason| ConfigError::Invalid {
                    origin: describe(key, &raw.source),
                    reason,
                }),
        }
    }

    fn parse<T>(
        &self,
        key: Key,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        let text = self.required(key)?;
        let raw = &self.0[&key];
        parse(text).map_err(|reason| ConfigError::Invalid {
            origin: describe(key, &raw.source),
            reason,
        })
    }

    fn required(&self, key: Key) -> Result<&str, ConfigError> {
        match self.0.get(&key) {
            Some(raw) if !raw.text.trim().is_empty() => Ok(raw.text.as_str()),
            Some(raw) => Err(ConfigError::Invalid {
                origin: describe(key, &raw.source),
                reason: "must not be empty".into(),
            }),
            None => Err(ConfigError::Missing {
                what: key.def().toml_key,
                key,
            }),
        }
    }
}

fn parse_identifier(s: &str) -> Result<String, String> {
    let s = s.trim();
    let valid = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "{s:?} is not a valid name: use 1 to 63 lowercase letters, digits and underscores \
             (PostgreSQL's rule for replication slot names)"
        ))
    }
}

fn parse_count(s: &str, min: usize) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a whole number"))?;
    if n < min {
        return Err(format!("must be at least {min}, got {n}"));
    }
    Ok(n)
}

/// Whole days, 0 meaning forever (`None`); at most about 100 years.
fn parse_retention_days(s: &str) -> Result<Option<std::time::Duration>, String> {
    let days = parse_count(s, 0)?;
    if days > 36_500 {
        return Err(format!(
            "{days} days is more than 100 years: use 0 to keep forever"
        ));
    }
    Ok((days > 0).then(|| std::time::Duration::from_secs(days as u64 * 24 * 3600)))
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("{other:?} is not a boolean: use true or false")),
    }
}

fn parse_http_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s.trim())
        .map_err(|e| format!("{s:?} is not a URL ({e}); expected e.g. https://chat.example.com"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{s:?} must start with https:// or http://"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests;
