//! The one list of every setting: its TOML key, environment variable, command
//! line flag, default and meaning. The loader, the `--help` text and the
//! README's configuration reference are all derived from this table, so a
//! setting cannot exist in one place and be missing from another.

/// Every setting the bridge reads. The order is the order of the README table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    DatabaseUrl,
    StateFile,
    MessageCacheDays,
    SlotName,
    PublicationName,
    Backfill,
    BackfillPageSize,
    StatusIntervalSecs,
    MaxConversations,
    ChatwootFrontendUrl,
    MetricsAddr,
    LogFormat,
    LogFilter,
    GlpiRateLimit,
    GlpiMaxInFlight,
    GlpiAllowHttp,
    GlpiCaCert,
    AccountIds,
    AccountApiUrl,
    AccountAppToken,
    AccountUserToken,
    AccountEntityId,
    AccountSyncType,
    AccountTicketType,
    AccountCategoryId,
    AccountDefaultUserId,
    AccountIncludeActivity,
}

/// How one setting is named in each source, and what it means.
#[derive(Debug)]
pub struct SettingDef {
    /// Key in the TOML file; a dot means a table (`glpi.rate_limit` is
    /// `rate_limit` under `[glpi]`).
    pub toml_key: &'static str,
    /// Environment variable.
    pub env: &'static str,
    /// Long command line flag without the leading `--`; `None` for secrets,
    /// because command lines are visible to every user of the machine (`ps`).
    pub flag: Option<&'static str>,
    /// Placeholder shown in `--help` (`URL`, `PATH`, `N`…).
    pub value_name: &'static str,
    /// The default, as text in the setting's own syntax; `None` = unset.
    pub default: Option<&'static str>,
    /// Whether the value (or part of it) is a secret: never printed.
    pub secret: bool,
    /// One or two sentences for `--help` and the README.
    pub meaning: &'static str,
}

impl Key {
    /// All settings, in documentation order.
    pub const ALL: [Key; 27] = [
        Key::DatabaseUrl,
        Key::StateFile,
        Key::MessageCacheDays,
        Key::SlotName,
        Key::PublicationName,
        Key::Backfill,
        Key::BackfillPageSize,
        Key::StatusIntervalSecs,
        Key::MaxConversations,
        Key::ChatwootFrontendUrl,
        Key::MetricsAddr,
        Key::LogFormat,
        Key::LogFilter,
        Key::GlpiRateLimit,
        Key::GlpiMaxInFlight,
        Key::GlpiAllowHttp,
        Key::GlpiCaCert,
        Key::AccountIds,
        Key::AccountApiUrl,
        Key::AccountAppToken,
        Key::AccountUserToken,
        Key::AccountEntityId,
        Key::AccountSyncType,
        Key::AccountTicketType,
        Key::AccountCategoryId,
        Key::AccountDefaultUserId,
        Key::AccountIncludeActivity,
    ];

    /// The setting with this TOML key, if any.
    pub fn from_toml_key(toml_key: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.def().toml_key == toml_key)
    }

    pub fn def(self) -> &'static SettingDef {
        match self {
            Key::DatabaseUrl => &SettingDef {
                toml_key: "database_url",
                env: "DATABASE_URL",
                flag: Some("database-url"),
                value_name: "URL",
                default: None,
                secret: true,
                meaning: "Chatwoot's PostgreSQL, e.g. postgres://bridge:PASSWORD@db:5432/chatwoot_production. \
                          The role needs REPLICATION (or superuser) and UPDATE on contacts and conversations \
                          (see `setup-sql`). The password is never printed; prefer the environment or the file \
                          to the flag, which other users can see in `ps`. TLS: add ?sslmode=verify-full&sslrootcert=/path/ca.pem \
                          (sslmode disable, prefer (default), require, verify-ca or verify-full, as libpq).",
            },
            Key::StateFile => &SettingDef {
                toml_key: "state_file",
                env: "BRIDGE_STATE_FILE",
                flag: Some("state-file"),
                value_name: "PATH",
                default: Some("./chatwoot-glpi-bridge.sqlite3"),
                secret: false,
                meaning: "The bridge's own SQLite file (outbox, Chatwoot-GLPI id mappings, progress). \
                          Keep it on persistent storage; losing it is recoverable but costs a resync.",
            },
            Key::MessageCacheDays => &SettingDef {
                toml_key: "message_cache_days",
                env: "BRIDGE_MESSAGE_CACHE_DAYS",
                flag: Some("message-cache-days"),
                value_name: "DAYS",
                default: Some("30"),
                secret: false,
                meaning: "How long the state file keeps a synced message's text, to update its GLPI \
                          followup when a late attachment arrives; older ones are pruned while the \
                          bridge is idle, so the file stops growing with the message history. A \
                          later deletion of an older message still updates its followup; a late \
                          attachment to one is listed by `status` instead. 0 = keep forever.",
            },
            Key::SlotName => &SettingDef {
                toml_key: "slot_name",
                env: "BRIDGE_SLOT_NAME",
                flag: Some("slot-name"),
                value_name: "NAME",
                default: Some("chatwoot_glpi_bridge"),
                secret: false,
                meaning: "Logical replication slot in Chatwoot's database (created if missing). \
                          Lowercase letters, digits and underscores.",
            },
            Key::PublicationName => &SettingDef {
                toml_key: "publication_name",
                env: "BRIDGE_PUBLICATION_NAME",
                flag: Some("publication-name"),
                value_name: "NAME",
                default: Some("chatwoot_glpi_bridge"),
                secret: false,
                meaning: "Publication naming the Chatwoot tables the bridge reads (created if missing).",
            },
            Key::Backfill => &SettingDef {
                toml_key: "backfill",
                env: "BRIDGE_BACKFILL",
                flag: Some("backfill"),
                value_name: "POLICY",
                default: Some("all"),
                secret: false,
                meaning: "What existing history the first start's backfill sends to GLPI: `all` \
                          (every identifiable contact, every conversation with its messages), \
                          `none` (nothing; only changes from now on), or `since:YYYY-MM-DD` \
                          (conversations with activity on or after that day, UTC, with all their \
                          messages, and their contacts). Rows not sent are still known: a later \
                          edit of an old contact syncs it, a new message in an old conversation \
                          creates its ticket. Applies only on the first start (see Operations).",
            },
            Key::BackfillPageSize => &SettingDef {
                toml_key: "backfill_page_size",
                env: "BRIDGE_BACKFILL_PAGE_SIZE",
                flag: Some("backfill-page-size"),
                value_name: "ROWS",
                default: Some("5000"),
                secret: false,
                meaning: "Rows copied per page (one state-file transaction) during the first start's backfill.",
            },
            Key::StatusIntervalSecs => &SettingDef {
                toml_key: "status_interval_secs",
                env: "BRIDGE_STATUS_INTERVAL_SECS",
                flag: Some("status-interval-secs"),
                value_name: "SECONDS",
                default: Some("10"),
                secret: false,
                meaning: "How often the confirmed position is reported to PostgreSQL (lets it recycle WAL).",
            },
            Key::MaxConversations => &SettingDef {
                toml_key: "max_conversations",
                env: "BRIDGE_MAX_CONVERSATIONS",
                flag: Some("max-conversations"),
                value_name: "N",
                default: Some("16"),
                secret: false,
                meaning: "Most conversations synced at the same time. One conversation's jobs always \
                          run one after the other, in commit order.",
            },
            Key::ChatwootFrontendUrl => &SettingDef {
                toml_key: "chatwoot_frontend_url",
                env: "CHATWOOT_FRONTEND_URL",
                flag: Some("chatwoot-frontend-url"),
                value_name: "URL",
                default: None,
                secret: false,
                meaning: "Chatwoot's public address (same as Chatwoot's FRONTEND_URL). When set, tickets \
                          link back to their conversation and attachment links can be built.",
            },
            Key::MetricsAddr => &SettingDef {
                toml_key: "metrics_addr",
                env: "BRIDGE_METRICS_ADDR",
                flag: Some("metrics-addr"),
                value_name: "ADDR",
                default: Some("127.0.0.1:9187"),
                secret: false,
                meaning: "Where /metrics, /healthz and /readyz are served, or `off`. Bound to loopback by \
                          default; use 0.0.0.0:9187 in a container so Prometheus can reach it.",
            },
            Key::LogFormat => &SettingDef {
                toml_key: "log_format",
                env: "BRIDGE_LOG_FORMAT",
                flag: Some("log-format"),
                value_name: "FORMAT",
                default: Some("human"),
                secret: false,
                meaning: "`human` (readable lines) or `json` (one JSON object per line, for log shippers).",
            },
            Key::LogFilter => &SettingDef {
                toml_key: "log_filter",
                env: "RUST_LOG",
                flag: Some("log-filter"),
                value_name: "FILTER",
                default: Some("info"),
                secret: false,
                meaning: "Which log lines to show: a level (`debug`) or per-module directives \
                          (`info,chatwoot_glpi_bridge::glpi=debug`).",
            },
            Key::GlpiRateLimit => &SettingDef {
                toml_key: "glpi.rate_limit",
                env: "GLPI_RATE_LIMIT",
                flag: Some("glpi-rate-limit"),
                value_name: "PER_SECOND",
                default: Some("0"),
                secret: false,
                meaning: "Most requests per second sent to each GLPI instance, retries included; \
                          0 = no limit beyond `glpi.max_in_flight`.",
            },
            Key::GlpiMaxInFlight => &SettingDef {
                toml_key: "glpi.max_in_flight",
                env: "GLPI_MAX_IN_FLIGHT",
                flag: Some("glpi-max-in-flight"),
                value_name: "N",
                default: Some("8"),
                secret: false,
                meaning: "Most requests waiting for an answer from each GLPI instance at once.",
            },
            Key::GlpiAllowHttp => &SettingDef {
                toml_key: "glpi.allow_http",
                env: "GLPI_ALLOW_HTTP",
                flag: Some("glpi-allow-http"),
                value_name: "BOOL",
                default: Some("false"),
                secret: false,
                meaning: "Allow plain http:// to a GLPI that is not on this machine. Tokens then travel \
                          unencrypted: only on a trusted network.",
            },
            Key::GlpiCaCert => &SettingDef {
                toml_key: "glpi.ca_cert",
                env: "GLPI_CA_CERT",
                flag: Some("glpi-ca-cert"),
                value_name: "PATH",
                default: None,
                secret: false,
                meaning: "PEM file of extra CA certificates to trust, for a GLPI whose certificate comes \
                          from a private CA.",
            },
            Key::AccountIds => &SettingDef {
                toml_key: "glpi_account.account_ids",
                env: "GLPI_ACCOUNT_IDS",
                flag: Some("glpi-account-ids"),
                value_name: "IDS",
                default: None,
                secret: false,
                meaning: "Comma-separated Chatwoot account ids synced with the GLPI account below, for a \
                          Chatwoot without the GLPI integration app. An account that has a `glpi` \
                          integrations_hooks row follows that row instead. Empty = none.",
            },
            Key::AccountApiUrl => &SettingDef {
                toml_key: "glpi_account.api_url",
                env: "GLPI_API_URL",
                flag: Some("glpi-api-url"),
                value_name: "URL",
                default: None,
                secret: false,
                meaning: "GLPI's REST API, ending in /apirest.php (https://glpi.example.com/apirest.php).",
            },
            Key::AccountAppToken => &SettingDef {
                toml_key: "glpi_account.app_token",
                env: "GLPI_APP_TOKEN",
                flag: None,
                value_name: "TOKEN",
                default: None,
                secret: true,
                meaning: "Application token of GLPI's API client (Setup > General > API), if it has one.",
            },
            Key::AccountUserToken => &SettingDef {
                toml_key: "glpi_account.user_token",
                env: "GLPI_USER_TOKEN",
                flag: None,
                value_name: "TOKEN",
                default: None,
                secret: true,
                meaning: "API token of the GLPI user the bridge acts as (My settings > Remote access keys).",
            },
            Key::AccountEntityId => &SettingDef {
                toml_key: "glpi_account.entity_id",
                env: "GLPI_ENTITY_ID",
                flag: Some("glpi-entity-id"),
                value_name: "ID",
                default: None,
                secret: false,
                meaning: "GLPI entity where users, contacts and tickets are created; unset = 0, the root entity.",
            },
            Key::AccountSyncType => &SettingDef {
                toml_key: "glpi_account.sync_type",
                env: "GLPI_SYNC_TYPE",
                flag: Some("glpi-sync-type"),
                value_name: "TYPE",
                default: None,
                secret: false,
                meaning: "`user` (when unset): Chatwoot contacts become GLPI Users (ticket requesters); \
                          `contact`: GLPI Contacts (external people).",
            },
            Key::AccountTicketType => &SettingDef {
                toml_key: "glpi_account.ticket_type",
                env: "GLPI_TICKET_TYPE",
                flag: Some("glpi-ticket-type"),
                value_name: "TYPE",
                default: None,
                secret: false,
                meaning: "Type of new tickets: 1 = Incident (when unset), 2 = Request.",
            },
            Key::AccountCategoryId => &SettingDef {
                toml_key: "glpi_account.category_id",
                env: "GLPI_CATEGORY_ID",
                flag: Some("glpi-category-id"),
                value_name: "ID",
                default: None,
                secret: false,
                meaning: "GLPI ticket category for new tickets; unset = no category.",
            },
            Key::AccountDefaultUserId => &SettingDef {
                toml_key: "glpi_account.default_user_id",
                env: "GLPI_DEFAULT_USER_ID",
                flag: Some("glpi-default-user-id"),
                value_name: "ID",
                default: None,
                secret: false,
                meaning: "GLPI user id that followups are written as when the sender has no GLPI user \
                          (agents, bots); unset = the API user.",
            },
            Key::AccountIncludeActivity => &SettingDef {
                toml_key: "glpi_account.include_activity_messages",
                env: "GLPI_INCLUDE_ACTIVITY_MESSAGES",
                flag: Some("glpi-include-activity-messages"),
                value_name: "BOOL",
                default: None,
                secret: false,
                meaning: "Also send Chatwoot's activity messages (\"Conversation was resolved by ...\") as \
                          followups; unset = false.",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_in_every_source() {
        let mut toml = HashSet::new();
        let mut env = HashSet::new();
        let mut flags = HashSet::new();
        for key in Key::ALL {
            let def = key.def();
            assert!(toml.insert(def.toml_key), "{}", def.toml_key);
            assert!(env.insert(def.env), "{}", def.env);
            if let Some(flag) = def.flag {
                assert!(flags.insert(flag), "{flag}");
            }
            assert_eq!(Key::from_toml_key(def.toml_key), Some(key));
        }
        assert!(!flags.contains("config"), "--config is the file flag");
    }

    #[test]
    fn secrets_have_no_flag_except_the_documented_database_url() {
        for key in Key::ALL {
            let def = key.def();
            if def.secret && key != Key::DatabaseUrl {
                assert!(def.flag.is_none(), "{} must not be a flag", def.toml_key);
            }
        }
    }
}
