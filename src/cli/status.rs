//! The `status` subcommand: where the bridge stands, read from the state file
//! and from Chatwoot's database (the slot), without disturbing a running
//! bridge. Shows what invariants 1 and 6 promise the operator can see: WAL
//! held for the slot, the last confirmed LSN, backfill progress, the outbox,
//! parked jobs with reasons, and per-account counts.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use rusqlite::Connection;
use serde_json::json;

use crate::cli::context::{
    connect_database, human_duration, load_config, open_state_read_only, plural,
};
use crate::cli::parked::describe_job;
use crate::config::{BackfillPolicy, Config};
use crate::lsn::Lsn;
use crate::observability::progress::thousands;
use crate::outbox::{self, OutboxDepth, ParkedJob};
use crate::planner::cache::{self as planner_cache, Skip};
use crate::replication::backfill::selection::policy_mismatch;
use crate::replication::error::invalidation_cause;
use crate::state::replication::{self as repl_state, ReplicationState, TableProgress};
use crate::state::{changes, DiskUsage, State};

/// Arguments of the subcommand.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Reads the state file (the same one the running bridge uses: same --state-file / \
BRIDGE_STATE_FILE) and, when DATABASE_URL is set, the replication slot in Chatwoot's \
database. Safe to run while the bridge runs.

What to look at:
  slot lag     WAL PostgreSQL keeps on the Chatwoot server for the bridge. It grows while \
the bridge is stopped and shrinks when it runs; a large, growing lag with the bridge running \
means it cannot keep up or cannot connect.
  outbox       GLPI jobs not done yet; the oldest one's age tells whether GLPI is keeping up.
  parked       jobs that need you: see `parked list`.")]
pub struct Args {
    /// Print JSON (one object) instead of text, for scripts and monitoring.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: crate::config::ConfigArgs,
}

pub async fn execute(args: Args) -> anyhow::Result<()> {
    let config = load_config(&args.config)?;
    let report = gather(&config).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}

/// The slot as PostgreSQL reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotReport {
    /// The database was not asked (no URL) or could not be reached.
    NotChecked(String),
    Missing,
    Found {
        active_pid: Option<i32>,
        confirmed_lsn: Option<Lsn>,
        /// WAL kept for the slot (`pg_current_wal_lsn() - confirmed_flush_lsn`).
        lag_bytes: Option<i64>,
        /// `reserved`, `extended`, `unreserved` or `lost` (PostgreSQL 13+).
        wal_status: Option<String>,
        /// Why PostgreSQL invalidated it (`invalidation_reason`, 17+).
        invalidation_reason: Option<String>,
    },
}

/// Counts for one Chatwoot account, from the state file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccountCounts {
    pub account_id: i64,
    pub contacts: u64,
    pub tickets: u64,
    pub followups: u64,
    pub pending_jobs: u64,
    pub parked_jobs: u64,
}

/// Everything `status` shows.
#[derive(Clone, Debug)]
pub struct StatusReport {
    pub state_file: PathBuf,
    /// Its size on disk (`None`: could not be read).
    pub state_file_size: Option<DiskUsage>,
    pub database: Option<String>,
    pub slot_name: String,
    pub slot: SlotReport,
    pub replication: ReplicationState,
    pub backfill: Vec<TableProgress>,
    pub change_log_depth: u64,
    pub outbox: OutboxDepth,
    pub oldest_pending: Option<Duration>,
    pub parked: Vec<ParkedJob>,
    pub accounts: Vec<AccountCounts>,
    /// The planner's decision per account: `(account_id, state, detail)`,
    /// state = syncing | disabled | problem | not_configured.
    pub integrations: Vec<(i64, String, Option<String>)>,
    /// Changes deliberately not synced (total, and the oldest few).
    pub skipped: (u64, Vec<Skip>),
    /// The `backfill` setting as configured now (`None`: not known here).
    pub configured_backfill: Option<BackfillPolicy>,
    pub taken_at: SystemTime,
}

/// Reads the state file and, if configured, the slot.
pub async fn gather(config: &Config) -> anyhow::Result<StatusReport> {
    let state = open_state_read_only(config)?;
    let local = read_state(&state)?;
    let (database, slot) = match &config.database_url {
        None => (
            None,
            SlotReport::NotChecked("DATABASE_URL is not set".to_owned()),
        ),
        Some(url) => (
            Some(url.redacted()),
            match read_slot(config, &config.slot_name).await {
                Ok(slot) => slot,
                Err(e) => SlotReport::NotChecked(format!("{e:#}")),
            },
        ),
    };
    Ok(StatusReport {
        state_file: config.state_file.clone(),
        database,
        slot_name: config.slot_name.clone(),
        slot,
        configured_backfill: Some(config.backfill),
        taken_at: SystemTime::now(),
        ..local
    })
}

/// The state-file half of the report.
pub fn read_state(state: &State) -> anyhow::Result<StatusReport> {
    let conn = state.conn();
    Ok(StatusReport {
        state_file: state.path().to_path_buf(),
        state_file_size: state.disk_usage().ok(),
        database: None,
        slot_name: String::new(),
        slot: SlotReport::NotChecked("not asked".into()),
        replication: repl_state::load(conn)?,
        backfill: repl_state::backfill_progress(conn)?,
        change_log_depth: changes::depth(conn)?,
        outbox: outbox::depth(conn)?,
        oldest_pending: outbox::oldest_pending_age(conn)?,
        parked: outbox::parked(conn)?,
        accounts: account_counts(conn).context("counting per account")?,
        integrations: planner_cache::account_states(conn)?,
        skipped: planner_cache::skip_summary(conn, SKIPS_SHOWN)?,
        configured_backfill: None,
        taken_at: SystemTime::now(),
    })
}

/// Skipped changes listed in the text output (all are counted).
const SKIPS_SHOWN: usize = 20;

/// Synced records and jobs per account.
fn account_counts(conn: &Connection) -> rusqlite::Result<Vec<AccountCounts>> {
    let mut stmt = conn.prepare(
        "WITH accounts AS (
             SELECT account_id FROM contact_links UNION SELECT account_id FROM ticket_links
             UNION SELECT account_id FROM outbox_jobs)
         SELECT a.account_id,
             (SELECT count(*) FROM contact_links c WHERE c.account_id = a.account_id),
             (SELECT count(*) FROM ticket_links t WHERE t.account_id = a.account_id),
             (SELECT count(*) FROM followup_links f JOIN ticket_links t
                  ON t.conversation_id = f.conversation_id WHERE t.account_id = a.account_id),
             (SELECT count(*) FROM outbox_jobs j WHERE j.account_id = a.account_id AND j.state = 'pending'),
             (SELECT count(*) FROM outbox_jobs j WHERE j.account_id = a.account_id AND j.state = 'parked')
         FROM accounts a ORDER BY a.account_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AccountCounts {
            account_id: r.get(0)?,
            contacts: r.get::<_, i64>(1)? as u64,
            tickets: r.get::<_, i64>(2)? as u64,
            followups: r.get::<_, i64>(3)? as u64,
            pending_jobs: r.get::<_, i64>(4)? as u64,
            parked_jobs: r.get::<_, i64>(5)? as u64,
        })
    })?;
    rows.collect()
}

/// The slot's row in `pg_replication_slots`.
pub async fn read_slot(config: &Config, slot_name: &str) -> anyhow::Result<SlotReport> {
    let client = connect_database(config).await?;
    let row = client
        .query_opt(
            "SELECT active_pid, confirmed_flush_lsn::text,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint,
                    wal_status, to_jsonb(s) ->> 'invalidation_reason'
             FROM pg_replication_slots s WHERE slot_name = $1",
            &[&slot_name],
        )
        .await
        .context("reading pg_replication_slots")?;
    Ok(match row {
        None => SlotReport::Missing,
        Some(row) => SlotReport::Found {
            active_pid: row.get(0),
            confirmed_lsn: row.get::<_, Option<String>>(1).and_then(|t| t.parse().ok()),
            lag_bytes: row.get(2),
            wal_status: row.get(3),
            invalidation_reason: row.get(4),
        },
    })
}

impl StatusReport {
    /// The text `status` prints.
    pub fn render(&self) -> String {
        let mut t = String::new();
        t.push_str(&format!("State file: {}", self.state_file.display()));
        if let Some(size) = self.state_file_size {
            t.push_str(&format!(
                " ({} on disk, {} of it free for reuse)",
                human_bytes(size.bytes),
                human_bytes(size.free_bytes)
            ));
        }
        t.push('\n');
        if let Some(db) = &self.database {
            t.push_str(&format!("Database:   {db}\n"));
        }

        t.push_str("\nReplication\n");
        t.push_str(&format!("  {}\n", self.render_slot()));
        t.push_str(&format!(
            "  confirmed LSN (state file): {}   durable in the change log: {}\n",
            self.replication.confirmed_lsn, self.replication.durable_lsn
        ));

        t.push_str(&format!("\nBackfill: {}\n", self.render_backfill_status()));
        if let Some(policy) = self.replication.backfill_policy {
            t.push_str(&format!(
                "  policy: {policy} (applies only on the first start; see `backfill` in the README)\n"
            ));
        }
        if let Some(notice) = self.backfill_policy_notice() {
            t.push_str(&format!("  ! {notice}\n"));
        }
        for table in &self.backfill {
            t.push_str(&format!(
                "  {:<20} {:>12} of ~{} rows{}\n",
                table.table_name,
                thousands(table.rows_done),
                thousands(table.rows_estimated.max(table.rows_done)),
                if table.done { "  done" } else { "" }
            ));
        }

        t.push_str("\nQueues\n");
        t.push_str(&format!(
            "  change log: {} change{} waiting for the planner\n",
            thousands(self.change_log_depth),
            plural(self.change_log_depth)
        ));
        t.push_str(&format!(
            "  outbox: {} GLPI job{} pending{}, {} parked\n",
            thousands(self.outbox.pending),
            plural(self.outbox.pending),
            match self.oldest_pending {
                Some(age) => format!(" (oldest waiting {})", human_duration(age)),
                None => String::new(),
            },
            self.outbox.parked
        ));

        if !self.parked.is_empty() {
            t.push_str("\nParked jobs (need you; see `parked list`, then `parked retry ID`)\n");
            for job in &self.parked {
                t.push_str(&format!(
                    "  #{} account {} {}: {}\n",
                    job.id,
                    job.account_id,
                    describe_job(&job.kind),
                    job.reason
                ));
            }
        }

        let configured: Vec<_> = self
            .integrations
            .iter()
            .filter(|(_, state, _)| state != "not_configured")
            .collect();
        if !configured.is_empty() {
            t.push_str("\nGLPI integration per account\n");
            for (account_id, state, detail) in configured {
                match detail {
                    Some(detail) => {
                        t.push_str(&format!("  account {account_id}: {state}: {detail}\n"))
                    }
                    None => t.push_str(&format!("  account {account_id}: {state}\n")),
                }
            }
        }
        let (skipped, shown) = &self.skipped;
        if *skipped > 0 {
            t.push_str(&format!(
                "\nNot synced, kept with the reason ({} change{})\n",
                thousands(*skipped),
                plural(*skipped)
            ));
            for skip in shown {
                t.push_str(&format!(
                    "  {} (account {}): {}\n",
                    skip.subject,
                    skip.account_id.map_or("?".to_owned(), |a| a.to_string()),
                    skip.reason
                ));
            }
            if *skipped > shown.len() as u64 {
                t.push_str(&format!("  … and {} more\n", *skipped - shown.len() as u64));
            }
        }

        t.push_str("\nAccounts (records synced to GLPI, from the state file)\n");
        if self.accounts.is_empty() {
            t.push_str("  none yet\n");
        } else {
            t.push_str(&format!(
                "  {:>8} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
                "account", "contacts", "tickets", "followups", "pending", "parked"
            ));
            for a in &self.accounts {
                t.push_str(&format!(
                    "  {:>8} {:>10} {:>10} {:>10} {:>10} {:>8}\n",
                    a.account_id,
                    thousands(a.contacts),
                    thousands(a.tickets),
                    thousands(a.followups),
                    thousands(a.pending_jobs),
                    a.parked_jobs
                ));
            }
        }
        t
    }

    fn render_slot(&self) -> String {
        let name = &self.slot_name;
        match &self.slot {
            SlotReport::NotChecked(why) => format!("slot {name}: not checked ({why})"),
            SlotReport::Missing => format!(
                "slot {name}: does not exist (the bridge creates it on its first `run`; if it \
                 ran before, someone dropped it and the next run backfills again)"
            ),
            SlotReport::Found {
                active_pid,
                confirmed_lsn,
                lag_bytes,
                wal_status,
                invalidation_reason,
            } => {
                let reader = match active_pid {
                    Some(pid) => format!("read by PostgreSQL backend pid {pid}"),
                    None => "not being read (no bridge connected)".to_owned(),
                };
                let lsn = confirmed_lsn
                    .map(|l| l.to_string())
                    .unwrap_or_else(|| "none".into());
                let lag = lag_bytes
                    .map(|b| human_bytes(b.max(0) as u64))
                    .unwrap_or_else(|| "unknown".into());
                let mut line = format!(
                    "slot {name}: {reader}; confirmed LSN {lsn}; lag {lag} of WAL kept for the bridge"
                );
                if wal_status.as_deref() == Some("lost") || invalidation_reason.is_some() {
                    line.push_str(&format!(
                        "\n  ! the slot is invalidated ({}): drop it and let `run` backfill again \
                         (see the README's Operations section)",
                        invalidation_cause(invalidation_reason.as_deref())
                    ));
                } else if let Some(status) = wal_status {
                    line.push_str(&format!(" (wal_status {status})"));
                }
                line
            }
        }
    }

    /// The notice `run` logs when the configured policy is not the one the
    /// state file was backfilled with.
    fn backfill_policy_notice(&self) -> Option<String> {
        policy_mismatch(
            self.configured_backfill?,
            self.replication.backfilled_with(),
        )
    }

    fn render_backfill_status(&self) -> String {
        let done: u64 = self.backfill.iter().map(|t| t.rows_done).sum();
        let estimated: u64 = self
            .backfill
            .iter()
            .map(|t| t.rows_estimated.max(t.rows_done))
            .sum();
        match self.replication.backfill {
            repl_state::BackfillStatus::Complete => {
                format!("complete ({} rows)", thousands(done))
            }
            repl_state::BackfillStatus::InProgress => format!(
                "in progress, {} of ~{} rows",
                thousands(done),
                thousands(estimated)
            ),
            repl_state::BackfillStatus::NotStarted => "not started".to_owned(),
        }
    }

    /// The report as one JSON object (stable keys, for scripts).
    pub fn to_json(&self) -> serde_json::Value {
        let slot = match &self.slot {
            SlotReport::NotChecked(why) => json!({"checked": false, "reason": why}),
            SlotReport::Missing => json!({"checked": true, "exists": false}),
            SlotReport::Found {
                active_pid,
                confirmed_lsn,
                lag_bytes,
                wal_status,
                invalidation_reason,
            } => json!({
                "checked": true, "exists": true, "active_pid": active_pid,
                "confirmed_lsn": confirmed_lsn.map(|l| l.to_string()),
                "lag_bytes": lag_bytes, "wal_status": wal_status,
                "invalidation_reason": invalidation_reason,
            }),
        };
        json!({
            "state_file": self.state_file.display().to_string(),
            "state_file_bytes": self.state_file_size.map(|s| s.bytes),
            "state_file_free_bytes": self.state_file_size.map(|s| s.free_bytes),
            "database": self.database,
            "slot_name": self.slot_name,
            "slot": slot,
            "confirmed_lsn": self.replication.confirmed_lsn.to_string(),
            "durable_lsn": self.replication.durable_lsn.to_string(),
            "backfill": {
                "status": match self.replication.backfill {
                    repl_state::BackfillStatus::Complete => "complete",
                    repl_state::BackfillStatus::InProgress => "in_progress",
                    repl_state::BackfillStatus::NotStarted => "not_started",
                },
                "policy": self.replication.backfill_policy.map(|p| p.to_string()),
                "configured_policy": self.configured_backfill.map(|p| p.to_string()),
                "configured_policy_applied": self.backfill_policy_notice().is_none(),
                "tables": self.backfill.iter().map(|t| json!({
                    "table": t.table_name, "rows_done": t.rows_done,
                    "rows_estimated": t.rows_estimated, "done": t.done,
                })).collect::<Vec<_>>(),
            },
            "change_log_depth": self.change_log_depth,
            "outbox": {
                "pending": self.outbox.pending,
                "parked": self.outbox.parked,
                "oldest_pending_age_seconds": self.oldest_pending.map(|d| d.as_secs_f64()),
            },
            "parked_jobs": self.parked.iter().map(|j| json!({
                "id": j.id, "account_id": j.account_id, "queue": j.queue, "kind": j.kind.name(),
                "attempts": j.attempts, "reason": j.reason, "blocked_jobs": j.blocked_jobs,
            })).collect::<Vec<_>>(),
            "integrations": self.integrations.iter().map(|(account_id, state, detail)| json!({
                "account_id": account_id, "state": state, "detail": detail,
            })).collect::<Vec<_>>(),
            "skipped": {
                "total": self.skipped.0,
                "oldest": self.skipped.1.iter().map(|s| json!({
                    "subject": s.subject, "account_id": s.account_id, "reason": s.reason,
                })).collect::<Vec<_>>(),
            },
            "accounts": self.accounts.iter().map(|a| json!({
                "account_id": a.account_id, "contacts": a.contacts, "tickets": a.tickets,
                "followups": a.followups, "pending_jobs": a.pending_jobs, "parked_jobs": a.parked_jobs,
            })).collect::<Vec<_>>(),
        })
    }
}

/// 1536 → "1.5 KiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_well() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
