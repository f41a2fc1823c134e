//! Builders and a small harness for the planner's unit tests: a real state
//! file in a temp dir, changes appended to the real change log, drained by
//! the real planner.

use serde_json::{json, Value};

use crate::chatwoot::{
    AccountRow, AttachmentRow, Change, ContactRow, ConversationRow, Field, HookRow, MessageRow,
    Row, RowOp,
};
use crate::lsn::Lsn;
use crate::outbox::JobKind;
use crate::state::changes::LoggedTransaction;
use crate::state::{replication, State};
use RowOp::Insert;

use super::settings::{ConfiguredAccounts, CRM_INTEGRATION_FLAG};
use super::{PlanStats, Planner};

pub struct Harness {
    _dir: tempfile::TempDir,
    pub planner: Planner,
    writer: State,
    lsn: u64,
}

impl Harness {
    pub fn new() -> Harness {
        Self::with_config(ConfiguredAccounts::default())
    }

    pub fn with_config(configured: ConfiguredAccounts) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.sqlite3");
        let writer = State::open(&path).unwrap();
        replication::complete_backfill(writer.conn()).unwrap();
        let planner = Planner::new(State::open(&path).unwrap(), configured).unwrap();
        Harness {
            _dir: dir,
            planner,
            writer,
            lsn: 100,
        }
    }

    /// A syncing account 1 (hook row 10 + crm_integration).
    pub fn syncing() -> Harness {
        let mut h = Harness::new();
        h.commit(vec![
            account(1, CRM_INTEGRATION_FLAG),
            hook(10, 1, true, settings()),
        ]);
        h
    }

    /// Appends one source transaction without planning it.
    pub fn append(&mut self, from_bridge: bool, changes: Vec<Change>) {
        self.lsn += 100;
        self.writer
            .append_transactions(&[LoggedTransaction {
                commit_lsn: Lsn(self.lsn),
                from_bridge,
                changes: &changes,
                rejected: &[],
            }])
            .unwrap();
    }

    /// Drains everything appended so far.
    pub fn drain(&mut self) -> PlanStats {
        let mut total = PlanStats::default();
        loop {
            let stats = self.planner.drain_once().unwrap();
            if stats.changes == 0 {
                return total;
            }
            total.changes += stats.changes;
            total.patched += stats.patched;
            total.skipped += stats.skipped;
            for (k, v) in stats.jobs {
                *total.jobs.entry(k).or_default() += v;
            }
            for (k, v) in stats.no_job {
                *total.no_job.entry(k).or_default() += v;
            }
        }
    }

    /// One Chatwoot transaction, planned.
    pub fn commit(&mut self, changes: Vec<Change>) -> PlanStats {
        self.append(false, changes);
        self.drain()
    }

    /// One of the bridge's own write-back transactions, planned.
    pub fn commit_from_bridge(&mut self, changes: Vec<Change>) -> PlanStats {
        self.append(true, changes);
        self.drain()
    }

    /// Every queued job `(queue, key, kind)`, in id order.
    pub fn jobs(&self) -> Vec<(String, String, JobKind)> {
        let conn = self.planner.state().conn();
        let mut stmt = conn
            .prepare("SELECT queue, key, kind FROM outbox_jobs ORDER BY id")
            .unwrap();
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .unwrap();
        rows.map(|r| {
            let (q, k, kind) = r.unwrap();
            (q, k, serde_json::from_str(&kind).unwrap())
        })
        .collect()
    }

    pub fn job_keys(&self) -> Vec<String> {
        self.jobs().into_iter().map(|(_, k, _)| k).collect()
    }

    /// Deletes every queued job, as if workers had run them all.
    pub fn run_all_jobs(&mut self) {
        self.planner
            .state()
            .conn()
            .execute("DELETE FROM outbox_jobs", [])
            .unwrap();
    }

    pub fn conn(&self) -> &rusqlite::Connection {
        self.planner.state().conn()
    }
}

fn row(op: RowOp, row: Row) -> Change {
    Change::Row { op, row }
}

fn v<T>(x: T) -> Field<T> {
    Field::Value(x)
}

fn opt<T>(x: Option<T>) -> Field<T> {
    match x {
        Some(x) => Field::Value(x),
        None => Field::Null,
    }
}

pub fn settings() -> Value {
    json!({
        "api_url": "http://127.0.0.1:9/apirest.php",
        "app_token": "app",
        "user_token": "user",
    })
}

pub fn account(id: i64, flags: i64) -> Change {
    row(
        RowOp::Insert,
        Row::Account(AccountRow {
            id,
            name: v(format!("Account {id}")),
            feature_flags: v(flags),
        }),
    )
}

pub fn hook_row(id: i64, account_id: i64, enabled: bool, settings: Value) -> HookRow {
    HookRow {
        id,
        account_id: v(account_id),
        app_id: v("glpi".to_owned()),
        status: v(i32::from(enabled)),
        hook_type: v(0),
        inbox_id: Field::Null,
        settings: v(settings),
    }
}

pub fn hook(id: i64, account_id: i64, enabled: bool, settings: Value) -> Change {
    row(
        RowOp::Insert,
        Row::IntegrationsHook(hook_row(id, account_id, enabled, settings)),
    )
}

pub fn contact_row(id: i64, name: &str, email: Option<&str>, phone: Option<&str>) -> ContactRow {
    ContactRow {
        id,
        account_id: v(1),
        name: v(name.to_owned()),
        email: opt(email.map(str::to_owned)),
        phone_number: opt(phone.map(str::to_owned)),
        identifier: Field::Null,
        additional_attributes: v(json!({})),
    }
}

pub fn contact(op: RowOp, c: ContactRow) -> Change {
    row(op, Row::Contact(c))
}

pub fn conversation_row(
    id: i64,
    contact_id: i64,
    status: i32,
    priority: Option<i32>,
) -> ConversationRow {
    ConversationRow {
        id,
        account_id: v(1),
        inbox_id: v(1),
        contact_id: v(contact_id),
        display_id: v(id + 1000),
        status: v(status),
        priority: opt(priority),
        additional_attributes: v(json!({})),
        created_at: v("2026-01-02 03:04:05.123456".to_owned()),
    }
}

pub fn conversation(op: RowOp, c: ConversationRow) -> Change {
    row(op, Row::Conversation(c))
}

/// An incoming text message of account 1.
pub fn message_row(id: i64, conversation_id: i64, content: &str) -> MessageRow {
    MessageRow {
        id,
        account_id: v(1),
        conversation_id: v(conversation_id),
        message_type: v(0),
        content_type: v(0),
        content: v(content.to_owned()),
        processed_message_content: Field::Null,
        private: v(false),
        sender_type: v("Contact".to_owned()),
        sender_id: v(1),
        content_attributes: v(json!({})),
        created_at: v(format!("2026-01-02 03:05:{:02}", id % 60)),
    }
}

pub fn message(op: RowOp, m: MessageRow) -> Change {
    row(op, Row::Message(m))
}

pub fn attachment(op: RowOp, id: i64, message_id: i64, url: &str) -> Change {
    row(
        op,
        Row::Attachment(AttachmentRow {
            id,
            account_id: v(1),
            message_id: v(message_id),
            file_type: v(0),
            external_url: v(url.to_owned()),
            fallback_title: Field::Null,
            extension: Field::Null,
        }),
    )
}

/// A DELETE: only the id is known.
pub fn deleted(row_of: Row) -> Change {
    row(RowOp::Delete, row_of)
}

/// Account 1 syncing, contact 5 and conversation 7 known, no jobs queued.
pub fn with_conversation() -> Harness {
    let mut h = Harness::syncing();
    h.commit(vec![
        contact(
            Insert,
            contact_row(5, "Test User", Some("test@example.com"), None),
        ),
        conversation(Insert, conversation_row(7, 5, 0, None)),
    ]);
    h.run_all_jobs();
    h
}

/// The attachment URLs a job renders.
pub fn attachment_urls(kind: &JobKind) -> Vec<String> {
    let mut kind = kind.clone();
    kind.message_mut()
        .map(|m| {
            m.attachments
                .iter()
                .map(|a| a.external_url.clone().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}
