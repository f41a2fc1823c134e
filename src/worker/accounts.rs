//! The workers' view of which accounts sync and with what settings: the
//! planner's cached `accounts` and `integrations_hooks` rows, resolved by
//! the planner's own rules, re-read at most once a second per account so an
//! edited, disabled or re-enabled integration applies to queued jobs live.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::runtime::{AccountGlpi, AccountLookup};
use crate::planner::cache;
use crate::planner::settings::{resolve_account, AccountState, ConfiguredAccounts};
use crate::state::{State, StateError};

/// How long a resolved account is reused.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// An account's resolved settings (`Err`: misconfigured, with the reason).
type Resolved = Result<Option<AccountGlpi>, String>;

/// Account settings read from the planner's cache in the state file.
pub struct PlannerAccounts {
    state: Mutex<State>,
    configured: ConfiguredAccounts,
    resolved: Mutex<HashMap<i64, (Instant, Resolved)>>,
}

impl PlannerAccounts {
    /// Opens its own connection to the state file.
    pub fn open(
        path: &Path,
        configured: ConfiguredAccounts,
    ) -> Result<PlannerAccounts, StateError> {
        Ok(PlannerAccounts {
            state: Mutex::new(State::open(path)?),
            configured,
            resolved: Mutex::new(HashMap::new()),
        })
    }

    fn resolve(&self, account_id: i64) -> Resolved {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let conn = state.conn();
        let flags = cache::account_flags(conn, account_id).map_err(|e| e.to_string())?;
        let hooks = cache::glpi_hooks_of(conn, account_id).map_err(|e| e.to_string())?;
        match resolve_account(account_id, flags, &hooks, &self.configured) {
            AccountState::Syncing(settings) => Ok(Some(AccountGlpi::from_settings(&settings.glpi))),
            AccountState::Problem(problem) => Err(problem),
            AccountState::Disabled { .. } | AccountState::NotConfigured => Ok(None),
        }
    }
}

impl AccountLookup for PlannerAccounts {
    fn account(&self, account_id: i64) -> Result<Option<AccountGlpi>, String> {
        if let Some((at, answer)) = self
            .resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&account_id)
        {
            if at.elapsed() < FRESH_FOR {
                return answer.clone();
            }
        }
        let answer = self.resolve(account_id);
        self.resolved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account_id, (Instant::now(), answer.clone()));
        answer
    }
}
