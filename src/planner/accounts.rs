//! Which accounts sync right now: the settings book, kept current as
//! `accounts` and `integrations_hooks` changes arrive (enabling, disabling or
//! editing the integration takes effect from the next change on).

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::Connection;

use crate::state::State;
use crate::worker::runtime::{AccountGlpi, AccountLookup};

use crate::chatwoot::{AccountRow, HookRow, RowOp};

use super::cache;
use super::settings::{
    resolve_account, AccountSettings, AccountState, ConfiguredAccounts, GlpiHook, GLPI_APP_ID,
};

/// Every known account's [`AccountState`], in memory, rebuilt per account
/// from the cache whenever its row or one of its `glpi` hooks changes.
#[derive(Debug)]
pub struct SettingsBook {
    configured: ConfiguredAccounts,
    states: HashMap<i64, AccountState>,
}

impl SettingsBook {
    /// Loads the state of every account the cache or the configuration knows.
    pub fn load(conn: &Connection, configured: ConfiguredAccounts) -> rusqlite::Result<Self> {
        let mut book = SettingsBook {
            configured,
            states: HashMap::new(),
        };
        book.reload(conn)?;
        Ok(book)
    }

    /// Recomputes every account (after a TRUNCATE, or a rolled-back batch).
    pub fn reload(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        self.states.clear();
        let mut ids = cache::known_account_ids(conn)?;
        ids.extend(self.configured.account_ids.iter().copied());
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            self.refresh(conn, id)?;
        }
        Ok(())
    }

    /// The settings of `account_id` if it syncs now.
    pub fn syncing(&self, account_id: i64) -> Option<&AccountSettings> {
        match self.states.get(&account_id) {
            Some(state) => state.settings(),
            None => None,
        }
    }

    pub fn state(&self, account_id: i64) -> Option<&AccountState> {
        self.states.get(&account_id)
    }

    /// Recomputes one account from the cache; logs and stores a change of
    /// state for `status`.
    pub fn refresh(&mut self, conn: &Connection, account_id: i64) -> rusqlite::Result<()> {
        let state = current_state(conn, &self.configured, account_id)?;
        if self.states.get(&account_id) == Some(&state) {
            return Ok(());
        }
        let (name, detail) = match &state {
            AccountState::Syncing(s) => {
                tracing::info!(account_id, source = %s.source, "GLPI sync enabled for account");
                ("syncing", Some(s.source.to_string()))
            }
            AccountState::Disabled { hook_id } => {
                tracing::info!(account_id, hook_id, "GLPI integration disabled for account");
                (
                    "disabled",
                    Some(format!("integrations_hooks row {hook_id} is disabled")),
                )
            }
            AccountState::Problem(p) => {
                tracing::warn!(account_id, "GLPI settings problem, account skipped: {p}");
                ("problem", Some(p.clone()))
            }
            AccountState::NotConfigured => ("not_configured", None),
        };
        cache::put_account_state(conn, account_id, name, detail.as_deref())?;
        self.states.insert(account_id, state);
        Ok(())
    }

    /// Applies an `accounts` change (only the feature flags matter).
    pub fn apply_account(
        &mut self,
        conn: &Connection,
        op: RowOp,
        row: &AccountRow,
    ) -> rusqlite::Result<()> {
        if op == RowOp::Delete {
            cache::delete_account(conn, row.id)?;
        } else {
            let previous = cache::account_flags(conn, row.id)?;
            let flags = row.feature_flags.clone().or_previous(previous).unwrap_or(0);
            if previous == Some(flags) {
                return Ok(());
            }
            cache::put_account(conn, row.id, flags)?;
        }
        self.refresh(conn, row.id)
    }

    /// Applies an `integrations_hooks` change (only `glpi` rows are kept).
    pub fn apply_hook(
        &mut self,
        conn: &Connection,
        op: RowOp,
        row: &HookRow,
    ) -> rusqlite::Result<()> {
        let previous = cache::glpi_hook(conn, row.id)?;
        let is_glpi = match row.app_id.value() {
            Some(app) => app == GLPI_APP_ID,
            // app_id is read-only in Chatwoot; unchanged means as before.
            None => row.app_id.is_unchanged() && previous.is_some(),
        };
        if op == RowOp::Delete || !is_glpi {
            if let Some(prev) = previous {
                cache::delete_row(conn, crate::chatwoot::Table::IntegrationsHooks, row.id)?;
                self.refresh(conn, prev.account_id)?;
            }
            return Ok(());
        }
        let Some(account_id) = row
            .account_id
            .clone()
            .or_previous(previous.as_ref().map(|h| h.account_id))
        else {
            tracing::warn!(
                hook_id = row.id,
                "glpi integrations_hooks row without account_id ignored"
            );
            return Ok(());
        };
        let enabled = match &row.status {
            crate::chatwoot::Field::Unchanged => previous.as_ref().is_some_and(|h| h.enabled),
            other => other.value() == Some(&1),
        };
        let settings = row
            .settings
            .clone()
            .or_previous(previous.as_ref().map(|h| h.settings.clone()))
            .unwrap_or(serde_json::Value::Null);
        let hook = GlpiHook {
            id: row.id,
            account_id,
            enabled,
            settings,
        };
        if previous.as_ref() == Some(&hook) {
            return Ok(());
        }
        cache::put_hook(conn, &hook)?;
        self.refresh(conn, account_id)?;
        if let Some(prev) = previous.filter(|p| p.account_id != account_id) {
            self.refresh(conn, prev.account_id)?;
        }
        Ok(())
    }
}

/// One account's state as the planner's cache has it now: the planner's own
/// decision, for readers on another connection (workers, `status`).
pub fn current_state(
    conn: &Connection,
    configured: &ConfiguredAccounts,
    account_id: i64,
) -> rusqlite::Result<AccountState> {
    let flags = cache::account_flags(conn, account_id)?;
    let hooks = cache::glpi_hooks_of(conn, account_id)?;
    Ok(resolve_account(account_id, flags, &hooks, configured))
}

/// The workers' view of account settings: read live from the planner's
/// cache on a connection of its own, so a job of an account that was
/// disabled after it was planned waits instead of running.
pub struct SettingsLookup {
    state: Mutex<State>,
    configured: ConfiguredAccounts,
}

impl SettingsLookup {
    pub fn new(state: State, configured: ConfiguredAccounts) -> Self {
        SettingsLookup {
            state: Mutex::new(state),
            configured,
        }
    }
}

impl AccountLookup for SettingsLookup {
    fn account(&self, account_id: i64) -> Result<Option<AccountGlpi>, String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let current = current_state(state.conn(), &self.configured, account_id)
            .map_err(|e| format!("reading account {account_id}'s settings: {e}"))?;
        Ok(current
            .settings()
            .map(|s| AccountGlpi::from_settings(&s.glpi)))
    }
}
