//! The throughput counters: what flows through each stage, counted where it
//! happens (after the state file committed it, so a rolled-back batch is
//! never counted): changes received from the slot, changes planned and why
//! some planned no GLPI job, job outcomes per kind and account, write-backs.
//!
//! Every label value is a `&'static str` chosen by the code (table, op, job
//! kind, reason class) or an account id, so the label sets stay small.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::metrics::{header, lock, sample};
use crate::chatwoot::{Change, RowOp};

/// Why a job was put back in the queue for later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryReason {
    /// GLPI or Chatwoot's database failed in a way worth retrying (5xx, 429,
    /// connection lost, timeout before sending).
    Transient,
    /// A create whose answer was lost: the retry looks the record up first.
    UnknownOutcome,
    /// The job's account has no usable GLPI settings right now (disabled,
    /// not configured, bad settings): the job waits.
    AccountNotSyncing,
}

impl RetryReason {
    pub fn label(self) -> &'static str {
        match self {
            RetryReason::Transient => "transient",
            RetryReason::UnknownOutcome => "unknown_outcome",
            RetryReason::AccountNotSyncing => "account_not_syncing",
        }
    }
}

/// One counter with a fixed list of label names; a sample per label-value
/// combination seen.
#[derive(Debug)]
struct CounterFamily {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, u64>>,
}

impl CounterFamily {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        CounterFamily {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    fn add(&self, values: &[&str], n: u64) {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        if n == 0 {
            return;
        }
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        *lock(&self.values).entry(key).or_default() += n;
    }

    fn get(&self, values: &[&str]) -> u64 {
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        lock(&self.values).get(&key).copied().unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        for (values, n) in lock(&self.values).iter() {
            let labels: Vec<(&str, &str)> = self
                .labels
                .iter()
                .zip(values)
                .map(|(k, v)| (*k, v.as_str()))
                .collect();
            sample(out, self.name, &labels, *n as f64);
        }
    }
}

/// The counters, in the order they are rendered.
#[derive(Debug)]
pub struct Throughput {
    changes_received: CounterFamily,
    changes_planned: CounterFamily,
    changes_skipped: CounterFamily,
    jobs_enqueued: CounterFamily,
    jobs_completed: CounterFamily,
    jobs_retried: CounterFamily,
    jobs_parked: CounterFamily,
    write_backs: CounterFamily,
}

impl Default for Throughput {
    fn default() -> Self {
        Throughput {
            changes_received: CounterFamily::new(
                "changes_received_total",
                "Row changes streamed from the replication slot and committed to the state file's change log, by table and operation (insert, update, delete, truncate). Rows copied by the first start's backfill are in backfill_rows_copied instead.",
                &["table", "op"],
            ),
            changes_planned: CounterFamily::new(
                "changes_planned_total",
                "Changes the planner consumed from the change log (streamed and backfilled), by table.",
                &["table"],
            ),
            changes_skipped: CounterFamily::new(
                "changes_skipped_total",
                "Planned changes that made no GLPI job, by reason: own_write_back, no_glpi_change, account_not_syncing, settings, outside_backfill, contact_not_identifiable, conversation_unknown, message_cache_expired (the last three are listed by `status`).",
                &["reason"],
            ),
            jobs_enqueued: CounterFamily::new(
                "jobs_enqueued_total",
                "GLPI and write-back jobs the planner added to the outbox, by job kind.",
                &["kind"],
            ),
            jobs_completed: CounterFamily::new(
                "jobs_completed_total",
                "Jobs done (their result committed to the state file), by job kind and Chatwoot account.",
                &["kind", "account"],
            ),
            jobs_retried: CounterFamily::new(
                "jobs_retried_total",
                "Job runs put back in the queue for later, by job kind, Chatwoot account and reason (transient, unknown_outcome, account_not_syncing).",
                &["kind", "account", "reason"],
            ),
            jobs_parked: CounterFamily::new(
                "jobs_parked_total",
                "Jobs that failed permanently and were parked for the operator (see `parked list`), by job kind and Chatwoot account.",
                &["kind", "account"],
            ),
            write_backs: CounterFamily::new(
                "write_backs_total",
                "Write-backs of GLPI ids into Chatwoot's additional_attributes, by table and outcome (written, or already_set when Chatwoot already held the ids).",
                &["table", "outcome"],
            ),
        }
    }
}

/// The `op` label of a row operation.
fn op_label(op: RowOp) -> &'static str {
    match op {
        RowOp::Snapshot | RowOp::SnapshotCacheOnly => "snapshot",
        RowOp::Insert => "insert",
        RowOp::Update => "update",
        RowOp::Delete => "delete",
    }
}

impl Throughput {
    pub(super) fn changes_received<'a>(&self, changes: impl IntoIterator<Item = &'a Change>) {
        let mut tally: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        for change in changes {
            match change {
                Change::Row { op, row } => {
                    *tally
                        .entry((row.table().name(), op_label(*op)))
                        .or_default() += 1;
                }
                Change::Truncate { tables } => {
                    for table in tables {
                        *tally.entry((table.name(), "truncate")).or_default() += 1;
                    }
                }
            }
        }
        for ((table, op), n) in tally {
            self.changes_received.add(&[table, op], n);
        }
    }

    pub(super) fn changes_planned(&self, table: &'static str, n: u64) {
        self.changes_planned.add(&[table], n);
    }

    pub(super) fn changes_skipped(&self, reason: &'static str, n: u64) {
        self.changes_skipped.add(&[reason], n);
    }

    pub(super) fn jobs_enqueued(&self, kind: &'static str, n: u64) {
        self.jobs_enqueued.add(&[kind], n);
    }

    pub(super) fn job_completed(&self, kind: &'static str, account_id: i64) {
        self.jobs_completed.add(&[kind, &account_id.to_string()], 1);
    }

    pub(super) fn job_retried(&self, kind: &'static str, account_id: i64, reason: RetryReason) {
        self.jobs_retried
            .add(&[kind, &account_id.to_string(), reason.label()], 1);
    }

    pub(super) fn job_parked(&self, kind: &'static str, account_id: i64) {
        self.jobs_parked.add(&[kind, &account_id.to_string()], 1);
    }

    pub(super) fn write_back(&self, table: &'static str, changed: bool) {
        let outcome = if changed { "written" } else { "already_set" };
        self.write_backs.add(&[table, outcome], 1);
    }

    /// The value of one counter (by its name without prefix) for the given
    /// label values, for tests.
    pub(super) fn get(&self, name: &str, values: &[&str]) -> u64 {
        self.families()
            .into_iter()
            .find(|f| f.name == name)
            .map(|f| f.get(values))
            .unwrap_or(0)
    }

    fn families(&self) -> [&CounterFamily; 8] {
        [
            &self.changes_received,
            &self.changes_planned,
            &self.changes_skipped,
            &self.jobs_enqueued,
            &self.jobs_completed,
            &self.jobs_retried,
            &self.jobs_parked,
            &self.write_backs,
        ]
    }

    pub(super) fn render(&self, out: &mut String) {
        for family in self.families() {
            family.render(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::chatwoot::{AccountRow, Change, Field, Row, RowOp, Table};
    use crate::observability::{Metrics, RetryReason};

    #[test]
    fn counters_render_with_help_type_and_labels() {
        let m = Metrics::new();
        let account = |id| Change::Row {
            op: RowOp::Insert,
            row: Row::Account(AccountRow {
                id,
                name: Field::Null,
                feature_flags: Field::Null,
            }),
        };
        m.changes_received(&[
            account(1),
            account(2),
            Change::Truncate {
                tables: vec![Table::Contacts, Table::Messages],
            },
        ]);
        m.job_completed("create_followup", 3);
        m.job_completed("create_followup", 3);
        m.job_retried("create_ticket", 3, RetryReason::UnknownOutcome);
        m.job_parked("sync_contact", 4);
        m.write_back("conversations", true);
        m.write_back("conversations", false);
        let text = m.render();
        for line in [
            "# TYPE chatwoot_glpi_bridge_changes_received_total counter",
            "chatwoot_glpi_bridge_changes_received_total{table=\"accounts\",op=\"insert\"} 2",
            "chatwoot_glpi_bridge_changes_received_total{table=\"messages\",op=\"truncate\"} 1",
            "chatwoot_glpi_bridge_jobs_completed_total{kind=\"create_followup\",account=\"3\"} 2",
            "chatwoot_glpi_bridge_jobs_retried_total{kind=\"create_ticket\",account=\"3\",reason=\"unknown_outcome\"} 1",
            "chatwoot_glpi_bridge_jobs_parked_total{kind=\"sync_contact\",account=\"4\"} 1",
            "chatwoot_glpi_bridge_write_backs_total{table=\"conversations\",outcome=\"written\"} 1",
            "chatwoot_glpi_bridge_write_backs_total{table=\"conversations\",outcome=\"already_set\"} 1",
            // Declared before anything is counted, so dashboards find it.
            "# TYPE chatwoot_glpi_bridge_changes_skipped_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert_eq!(
            m.counter("jobs_completed_total", &["create_followup", "3"]),
            2
        );
        assert_eq!(
            m.counter("jobs_completed_total", &["create_followup", "4"]),
            0
        );
    }
}
