//! `check`'s GLPI half: which accounts sync (hook rows and the bridge's own
//! configuration, resolved by the planner's rules), and for each GLPI
//! instance they use, whether its URL and tokens open a session.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio_postgres::Client;

use super::CheckLine;
use crate::config::Config;
use crate::glpi::GlpiClient;
use crate::planner::settings::{
    resolve_account, AccountState, GlpiHook, GlpiSettings, GLPI_APP_ID,
};

/// How long `check` waits for one GLPI answer (no retries: a preflight
/// should say "unreachable" quickly).
const GLPI_TIMEOUT: Duration = Duration::from_secs(10);

/// One account's hooks and feature flags as the database holds them.
#[derive(Default)]
struct AccountRows {
    feature_flags: Option<i64>,
    hooks: Vec<GlpiHook>,
}

pub async fn check(config: &Config, db: Option<&Client>, lines: &mut Vec<CheckLine>) {
    let mut accounts: BTreeMap<i64, AccountRows> = BTreeMap::new();
    match db {
        Some(db) => match read_hooks(db).await {
            Ok(rows) => accounts = rows,
            Err(e) => {
                lines.push(CheckLine::fail(
                    "accounts",
                    format!(
                        "cannot read integrations_hooks: {}",
                        super::database::pg_error_text(&e)
                    ),
                ));
                return;
            }
        },
        None => lines.push(CheckLine::note(
            "accounts",
            "integration hooks not read (no database); checking only the configured GLPI account",
        )),
    }
    for id in &config.glpi_account.account_ids {
        accounts.entry(*id).or_default();
    }

    // GLPI instances in use, each with the accounts that use it.
    let mut instances: Vec<(GlpiSettings, Vec<i64>)> = Vec::new();
    for (account_id, rows) in &accounts {
        match resolve_account(
            *account_id,
            rows.feature_flags,
            &rows.hooks,
            &config.glpi_account,
        ) {
            AccountState::Syncing(settings) => {
                let glpi = settings.glpi;
                match instances.iter_mut().find(|(s, _)| same_instance(s, &glpi)) {
                    Some((_, ids)) => ids.push(*account_id),
                    None => instances.push((glpi, vec![*account_id])),
                }
            }
            AccountState::Disabled { hook_id } => lines.push(CheckLine::note(
                "account",
                format!(
                    "account {account_id}: its GLPI integration (integrations_hooks row {hook_id}) \
                     is disabled; nothing is synced for it"
                ),
            )),
            AccountState::Problem(problem) => lines.push(CheckLine::fail(
                "account",
                format!("account {account_id}: {problem}"),
            )),
            AccountState::NotConfigured => {}
        }
    }
    if instances.is_empty() {
        lines.push(CheckLine::fail(
            "accounts",
            format!(
                "no Chatwoot account is set up to sync, so the bridge would send GLPI nothing.\n\
                 Enable the GLPI integration for an account (an integrations_hooks row with app_id \
                 'glpi' and the crm_integration feature), or name accounts with {} and set their \
                 GLPI API URL with {} and tokens (see the README).",
                crate::config::how_to_set(crate::config::Key::AccountIds),
                crate::config::how_to_set(crate::config::Key::AccountApiUrl)
            ),
        ));
        return;
    }
    for (glpi, account_ids) in instances {
        lines.push(check_instance(config, &glpi, &account_ids).await);
    }
}

async fn read_hooks(db: &Client) -> Result<BTreeMap<i64, AccountRows>, tokio_postgres::Error> {
    let rows = db
        .query(
            "SELECT h.id, h.account_id::bigint, h.status = 1, h.settings::text, a.feature_flags::bigint
             FROM integrations_hooks h LEFT JOIN accounts a ON a.id = h.account_id
             WHERE h.app_id = $1 ORDER BY h.account_id, h.id",
            &[&GLPI_APP_ID],
        )
        .await?;
    let mut accounts: BTreeMap<i64, AccountRows> = BTreeMap::new();
    for row in rows {
        let account_id: i64 = row.get(1);
        let settings_text: Option<String> = row.get(3);
        let entry = accounts.entry(account_id).or_default();
        entry.feature_flags = row.get(4);
        entry.hooks.push(GlpiHook {
            id: row.get(0),
            account_id,
            enabled: row.get::<_, Option<bool>>(2).unwrap_or(false),
            // An unparsable value reaches the settings parser as a string,
            // which reports it as "not a JSON object".
            settings: settings_text
                .map(|t| serde_json::from_str(&t).unwrap_or(serde_json::Value::String(t)))
                .unwrap_or(serde_json::Value::Null),
        });
    }
    Ok(accounts)
}

/// Same GLPI instance and credentials: one client, one session.
fn same_instance(a: &GlpiSettings, b: &GlpiSettings) -> bool {
    a.api_url == b.api_url && a.app_token == b.app_token && a.user_token == b.user_token
}

async fn check_instance(config: &Config, glpi: &GlpiSettings, account_ids: &[i64]) -> CheckLine {
    let accounts = format!(
        "account{} {}",
        if account_ids.len() == 1 { "" } else { "s" },
        account_ids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut client_config = config.glpi_client_config(glpi);
    client_config.max_retries = 0;
    client_config.timeout = GLPI_TIMEOUT;
    let client = match GlpiClient::new(client_config) {
        Ok(client) => client,
        Err(e) => return CheckLine::fail("GLPI", format!("{accounts}: {e}")),
    };
    let url = client.api_url().to_owned();
    if let Err(e) = client.open_session_now().await {
        return CheckLine::fail(
            "GLPI",
            format!(
                "{url} ({accounts}): cannot open a session: {e}\nCheck the API URL, that the API is \
                 enabled (Setup > General > API), the API client's app token and IP range, and the \
                 user token (My settings > Remote access keys)."
            ),
        );
    }
    match client.kill_session().await {
        Ok(()) => CheckLine::pass(
            "GLPI",
            format!("{url} ({accounts}): tokens accepted (initSession, killSession)"),
        ),
        Err(e) => CheckLine::fail(
            "GLPI",
            format!("{url} ({accounts}): session opened but killSession failed: {e}"),
        ),
    }
}
