//! Per-account GLPI settings: which accounts sync, and with what.
//!
//! An account syncs when it has a `glpi` integration hook that is enabled
//! and the `crm_integration` feature flag, or, if it has no `glpi` hook at
//! all, when the bridge's own configuration names it (`GLPI_ACCOUNT_IDS` and
//! the other `GLPI_*` variables). Hook rows and flags arrive through the
//! change stream, so the answer is recomputed live from the planner's cache.
//!
//! Invariant 6: bad settings never stop other accounts. They are reported
//! with what is wrong and how to fix it, the account is skipped, and the
//! report stays visible (`status`) until the row is fixed.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use crate::secret::Secret;

/// `crm_integration` is entry #44 of Chatwoot's `config/features.yml`, so
/// bit 43 of `accounts.feature_flags` (flag_shih_tzu: `1 << (n - 1)`).
pub const CRM_INTEGRATION_FLAG: i64 = 1 << 43;

/// The `integrations_hooks.app_id` of the GLPI integration.
pub const GLPI_APP_ID: &str = "glpi";

/// How Chatwoot contacts appear in GLPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SyncType {
    /// GLPI Users (requesters of the tickets).
    User,
    /// GLPI Contacts (external; tickets get an email-only requester).
    Contact,
}

/// Where an account's settings come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingsSource {
    Hook { hook_id: i64 },
    Environment,
}

impl fmt::Display for SettingsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsSource::Hook { hook_id } => write!(f, "integrations_hooks row {hook_id}"),
            SettingsSource::Environment => f.write_str("environment (GLPI_*)"),
        }
    }
}

/// Validated GLPI settings (the keys of the user guide).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlpiSettings {
    /// `https://glpi.example.com/apirest.php`
    pub api_url: String,
    /// Empty when the GLPI API client has no application token.
    pub app_token: Secret,
    pub user_token: Secret,
    /// Default 0 (root entity).
    pub entity_id: i64,
    /// Default [`SyncType::User`].
    pub sync_type: SyncType,
    /// 1 = Incident (default), 2 = Request.
    pub ticket_type: i32,
    /// `None`: tickets get no `itilcategories_id`.
    pub category_id: Option<i64>,
    /// GLPI user for followups that have no user of their own.
    pub default_user_id: Option<i64>,
    /// Activity messages ("Conversation was resolved by …") become
    /// followups too. Default false.
    pub include_activity_messages: bool,
}

/// The settings an account syncs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSettings {
    pub account_id: i64,
    pub source: SettingsSource,
    pub glpi: GlpiSettings,
}

/// Settings that cannot be used, with every problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{context}: {}", problems.join("; "))]
pub struct SettingsError {
    /// "integrations_hooks row 7 (account 3)" or "environment".
    pub context: String,
    pub problems: Vec<String>,
}

/// One settings value, as named in the hook's JSON or the environment.
struct Key<'a> {
    /// Name shown in errors: `sync_type` or `GLPI_SYNC_TYPE`.
    label: String,
    value: Option<&'a Value>,
}

impl Key<'_> {
    /// Null, absent and "" (after trimming) all mean "unset".
    fn text(&self) -> Option<String> {
        match self.value? {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            Value::String(s) => Some(s.trim().to_owned()),
            other => Some(other.to_string()),
        }
    }

    fn shown(&self) -> String {
        match self.value {
            Some(Value::String(s)) => format!("{s:?}"),
            Some(other) => other.to_string(),
            None => "nothing".to_owned(),
        }
    }

    fn integer(&self, problems: &mut Vec<String>, what: &str) -> Option<i64> {
        let text = self.text()?;
        match self.value {
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
            _ => match text.parse::<i64>() {
                Ok(v) => Some(v),
                Err(_) => {
                    problems.push(format!(
                        "{} must be {what} (a whole number), got {}",
                        self.label,
                        self.shown()
                    ));
                    None
                }
            },
        }
    }

    fn id(&self, problems: &mut Vec<String>, what: &str) -> Option<i64> {
        let v = self.integer(problems, what)?;
        if v < 0 {
            problems.push(format!(
                "{} must be {what} (0 or more), got {v}",
                self.label
            ));
            return None;
        }
        Some(v)
    }

    /// A token; `required` holds the hint shown when it is missing.
    fn secret(&self, problems: &mut Vec<String>, required: Option<&str>) -> Secret {
        match self.value {
            Some(Value::String(s)) if !s.trim().is_empty() => Secret::new(s.trim()),
            Some(Value::String(_)) | Some(Value::Null) | None => {
                if let Some(hint) = required {
                    problems.push(format!("{} is missing: {hint}", self.label));
                }
                Secret::default()
            }
            Some(_) => {
                problems.push(format!(
                    "{} must be a string (the token as GLPI shows it)",
                    self.label
                ));
                Secret::default()
            }
        }
    }

    fn boolean(&self, problems: &mut Vec<String>) -> Option<bool> {
        match self.value? {
            Value::Bool(b) => Some(*b),
            _ => match self.text()?.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" => Some(false),
                _ => {
                    problems.push(format!(
                        "{} must be true or false, got {}",
                        self.label,
                        self.shown()
                    ));
                    None
                }
            },
        }
    }
}

/// Parses and validates settings; `key` maps a settings key (`api_url`) to
/// how the caller names and stores it.
fn parse<'a>(
    key: impl Fn(&'static str) -> Key<'a>,
    context: String,
) -> Result<GlpiSettings, SettingsError> {
    let mut problems = Vec::new();

    let url = key("api_url");
    let api_url = match url.text() {
        None => {
            problems.push(format!(
                "{} is missing: set it to your GLPI API address, e.g. https://glpi.example.com/apirest.php",
                url.label
            ));
            String::new()
        }
        Some(text) => {
            let ok = url::Url::parse(&text).ok().filter(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.path().trim_end_matches('/').ends_with("/apirest.php")
            });
            if ok.is_none() {
                problems.push(format!(
                    "{} must be the GLPI API address ending in /apirest.php (e.g. https://glpi.example.com/apirest.php), got {}",
                    url.label,
                    url.shown()
                ));
            }
            text.trim_end_matches('/').to_owned()
        }
    };
    // GLPI API clients may have no application token: optional.
    let app_token = key("app_token").secret(&mut problems, None);
    let user_token = key("user_token").secret(
        &mut problems,
        Some("copy the API token from GLPI My Settings > Remote access keys"),
    );
    let entity_id = key("entity_id")
        .id(&mut problems, "a GLPI entity id")
        .unwrap_or(0);

    let sync = key("sync_type");
    let sync_type = match sync.text().map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("user") => SyncType::User,
        Some("contact") => SyncType::Contact,
        Some(_) => {
            problems.push(format!(
                "{} must be \"user\" or \"contact\", got {}",
                sync.label,
                sync.shown()
            ));
            SyncType::User
        }
    };

    let ticket = key("ticket_type");
    let ticket_type = match ticket.integer(&mut problems, "1 (Incident) or 2 (Request)") {
        None => 1,
        Some(t @ (1 | 2)) => t as i32,
        Some(_) => {
            problems.push(format!(
                "{} must be 1 (Incident) or 2 (Request), got {}",
                ticket.label,
                ticket.shown()
            ));
            1
        }
    };
    let category_id = key("category_id")
        .id(&mut problems, "a GLPI ticket category id")
        .filter(|&id| id > 0);
    // The guide's "0 (system user)" means: no particular user.
    let default_user_id = key("default_user_id")
        .id(&mut problems, "a GLPI user id")
        .filter(|&id| id > 0);
    let include_activity_messages = key("include_activity_messages")
        .boolean(&mut problems)
        .unwrap_or(false);

    if !problems.is_empty() {
        return Err(SettingsError { context, problems });
    }
    Ok(GlpiSettings {
        api_url,
        app_token,
        user_token,
        entity_id,
        sync_type,
        ticket_type,
        category_id,
        default_user_id,
        include_activity_messages,
    })
}

impl GlpiSettings {
    /// Parses an `integrations_hooks.settings` value.
    pub fn from_hook(
        hook_id: i64,
        account_id: i64,
        settings: &Value,
    ) -> Result<GlpiSettings, SettingsError> {
        let context = format!("integrations_hooks row {hook_id} (account {account_id})");
        let Value::Object(map) = settings else {
            return Err(SettingsError {
                context,
                problems: vec![format!(
                    "settings must be a JSON object with api_url and user_token, got {}",
                    json_kind(settings)
                )],
            });
        };
        parse(
            |name| Key {
                label: name.to_owned(),
                value: map.get(name),
            },
            context,
        )
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Accounts named by the bridge's own configuration, for Chatwoot
/// installations without a `glpi` hook row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfiguredAccounts {
    pub account_ids: BTreeSet<i64>,
    /// `None` only when `account_ids` is empty.
    pub settings: Option<GlpiSettings>,
}

/// The environment variable for each settings key.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("api_url", "GLPI_API_URL"),
    ("app_token", "GLPI_APP_TOKEN"),
    ("user_token", "GLPI_USER_TOKEN"),
    ("entity_id", "GLPI_ENTITY_ID"),
    ("sync_type", "GLPI_SYNC_TYPE"),
    ("ticket_type", "GLPI_TICKET_TYPE"),
    ("category_id", "GLPI_CATEGORY_ID"),
    ("default_user_id", "GLPI_DEFAULT_USER_ID"),
    (
        "include_activity_messages",
        "GLPI_INCLUDE_ACTIVITY_MESSAGES",
    ),
];

/// Names the accounts to sync (comma list).
pub const ENV_ACCOUNT_IDS: &str = "GLPI_ACCOUNT_IDS";

impl ConfiguredAccounts {
    /// Reads `GLPI_ACCOUNT_IDS` and the `GLPI_*` settings from the process
    /// environment. Misconfiguration fails fast (the operator's own config).
    pub fn from_env() -> Result<ConfiguredAccounts, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Same as [`Self::from_env`], reading variables through `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<ConfiguredAccounts, SettingsError> {
        let env_error = |problem: String| SettingsError {
            context: "environment".to_owned(),
            problems: vec![problem],
        };
        let ids_text = lookup(ENV_ACCOUNT_IDS).unwrap_or_default();
        let mut account_ids = BTreeSet::new();
        for part in ids_text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<i64>() {
                Ok(id) if id > 0 => {
                    account_ids.insert(id);
                }
                _ => {
                    return Err(env_error(format!(
                        "{ENV_ACCOUNT_IDS} must be a comma-separated list of Chatwoot account ids (e.g. 1,3), got {part:?}"
                    )))
                }
            }
        }
        let values: Vec<(&str, &str, Option<Value>)> = ENV_VARS
            .iter()
            .map(|&(key, var)| (key, var, lookup(var).map(Value::String)))
            .collect();
        if account_ids.is_empty() {
            if let Some((_, var, _)) = values.iter().find(|(_, _, v)| v.is_some()) {
                return Err(env_error(format!(
                    "{var} is set but {ENV_ACCOUNT_IDS} is empty: name the Chatwoot account ids to sync (e.g. {ENV_ACCOUNT_IDS}=1), or unset the GLPI_* variables"
                )));
            }
            return Ok(ConfiguredAccounts::default());
        }
        let settings = parse(
            |name| {
                let (_, var, value) = values
                    .iter()
                    .find(|(key, _, _)| *key == name)
                    .expect("every settings key has an environment variable");
                Key {
                    label: (*var).to_owned(),
                    value: value.as_ref(),
                }
            },
            "environment".to_owned(),
        )?;
        Ok(ConfiguredAccounts {
            account_ids,
            settings: Some(settings),
        })
    }
}

/// A cached `integrations_hooks` row with `app_id = 'glpi'`.
#[derive(Clone, Debug, PartialEq)]
pub struct GlpiHook {
    pub id: i64,
    pub account_id: i64,
    pub enabled: bool,
    pub settings: Value,
}

/// Whether and how one account syncs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountState {
    Syncing(AccountSettings),
    /// The `glpi` hook exists but is disabled: nothing new is sent.
    Disabled {
        hook_id: i64,
    },
    /// Misconfigured: skipped, and shown by `status` with this message.
    Problem(String),
    /// No `glpi` hook and not named by the configuration.
    NotConfigured,
}

impl AccountState {
    pub fn settings(&self) -> Option<&AccountSettings> {
        match self {
            AccountState::Syncing(s) => Some(s),
            _ => None,
        }
    }
}

/// Decides one account's state from its `glpi` hooks, its feature flags
/// (`None`: the account row was never seen) and the configuration.
pub fn resolve_account(
    account_id: i64,
    feature_flags: Option<i64>,
    hooks: &[GlpiHook],
    configured: &ConfiguredAccounts,
) -> AccountState {
    if hooks.is_empty() {
        return match &configured.settings {
            Some(glpi) if configured.account_ids.contains(&account_id) => {
                AccountState::Syncing(AccountSettings {
                    account_id,
                    source: SettingsSource::Environment,
                    glpi: glpi.clone(),
                })
            }
            _ => AccountState::NotConfigured,
        };
    }
    // Chatwoot allows one hook per app and account; if several exist the
    // oldest enabled one is used.
    let Some(hook) = hooks.iter().filter(|h| h.enabled).min_by_key(|h| h.id) else {
        let hook_id = hooks.iter().map(|h| h.id).min().unwrap_or_default();
        return AccountState::Disabled { hook_id };
    };
    if feature_flags.unwrap_or(0) & CRM_INTEGRATION_FLAG == 0 {
        return AccountState::Problem(format!(
            "integrations_hooks row {} (account {account_id}) is enabled but the account lacks the crm_integration feature flag: run `Account.find({account_id}).enable_features('crm_integration')` in the Rails console, or set bit 43 (8796093022208) of accounts.feature_flags",
            hook.id
        ));
    }
    match GlpiSettings::from_hook(hook.id, account_id, &hook.settings) {
        Ok(glpi) => AccountState::Syncing(AccountSettings {
            account_id,
            source: SettingsSource::Hook { hook_id: hook.id },
            glpi,
        }),
        Err(e) => AccountState::Problem(format!(
            "{e}; fix the row's settings (the account is skipped until then)"
        )),
    }
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
