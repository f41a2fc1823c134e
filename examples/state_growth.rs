//! State-file growth: how many bytes each planned message leaves in the
//! SQLite state file, per table, once GLPI has it.
//!
//! Plans `messages` Chatwoot messages (default 100,000; 10 per conversation,
//! a contact per two conversations, an attachment on every tenth message,
//! texts of realistic sizes: 70% chat lines of 40-250 characters, 25%
//! paragraphs of 400-1,000, 5% emails of 2,000-4,000) through the real
//! planner into a real state file, as live traffic (one Chatwoot
//! transaction per message). After each planned batch it plays the workers:
//! records the GLPI ids in the mapping tables as a worker does, and removes
//! the done jobs. Then it prints the bytes per message of every table and
//! index (SQLite's `dbstat`), first as the bridge keeps them while the
//! messages are young, then after pruning with every message older than
//! the retention (`message_cache_days`), as the file looks for history.
//!
//! `cargo run --release --example state_growth [messages]`

use std::collections::BTreeMap;
use std::time::Instant;

use chatwoot_glpi_bridge::chatwoot::{
    AccountRow, AttachmentRow, Change, ContactRow, ConversationRow, Field, HookRow, MessageRow,
    Row, RowOp,
};
use chatwoot_glpi_bridge::lsn::Lsn;
use chatwoot_glpi_bridge::outbox::JobKind;
use chatwoot_glpi_bridge::planner::settings::CRM_INTEGRATION_FLAG;
use chatwoot_glpi_bridge::planner::{ConfiguredAccounts, Planner};
use chatwoot_glpi_bridge::state::changes::LoggedTransaction;
use chatwoot_glpi_bridge::state::mappings::{self, GlpiPersonType, TicketLink};
use chatwoot_glpi_bridge::state::{replication, State};
use rusqlite::Connection;
use serde_json::json;

const MESSAGES_PER_CONVERSATION: i64 = 10;

fn v<T>(x: T) -> Field<T> {
    Field::Value(x)
}

fn row(op: RowOp, row: Row) -> Change {
    Change::Row { op, row }
}

/// A deterministic pseudo-random sequence (no seed file, same figures on
/// every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn between(&mut self, low: usize, high: usize) -> usize {
        low + (self.next() as usize) % (high - low + 1)
    }
}

const WORDS: &[&str] = &[
    "the", "printer", "on", "floor", "three", "is", "jammed", "again", "could", "you", "please",
    "check", "my", "account", "password", "reset", "invoice", "order", "delivery", "thanks",
    "hello", "we", "have", "a", "problem", "with", "VPN", "since", "this", "morning",
];

/// Text of `len` characters or a little more.
fn text(rng: &mut Lcg, len: usize) -> String {
    let mut out = String::with_capacity(len + 12);
    while out.len() < len {
        out.push_str(WORDS[rng.next() as usize % WORDS.len()]);
        out.push(' ');
    }
    out
}

/// A message's text, of a realistic size.
fn message_text(rng: &mut Lcg) -> String {
    let len = match rng.next() % 100 {
        0..=69 => rng.between(40, 250),
        70..=94 => rng.between(400, 1_000),
        _ => rng.between(2_000, 4_000),
    };
    text(rng, len)
}

fn setup() -> Vec<Change> {
    vec![
        row(
            RowOp::Insert,
            Row::Account(AccountRow {
                id: 1,
                name: v("Support".into()),
                feature_flags: v(CRM_INTEGRATION_FLAG),
            }),
        ),
        row(
            RowOp::Insert,
            Row::IntegrationsHook(HookRow {
                id: 1,
                account_id: v(1),
                app_id: v("glpi".into()),
                status: v(1),
                hook_type: v(0),
                inbox_id: Field::Null,
                settings: v(json!({
                    "api_url": "https://glpi.example.com/apirest.php",
                    "user_token": "growth"
                })),
            }),
        ),
    ]
}

/// `YYYY-MM-DD HH:MM:SS.ffffff`, `minutes` after 2026-01-01 00:00 UTC.
fn timestamp(minutes: i64) -> String {
    let t = chrono::DateTime::from_timestamp(1_767_225_600 + minutes * 60, 123_456_000)
        .expect("in range");
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// One Chatwoot transaction per message (the first of a conversation also
/// creates it, and its contact every other time).
fn message_transaction(rng: &mut Lcg, m: i64) -> Vec<Change> {
    let c = (m - 1) / MESSAGES_PER_CONVERSATION + 1;
    let contact_id = (c + 1) / 2;
    let mut changes = Vec::new();
    if (m - 1) % MESSAGES_PER_CONVERSATION == 0 {
        if c % 2 == 1 {
            changes.push(row(
                RowOp::Insert,
                Row::Contact(ContactRow {
                    id: contact_id,
                    account_id: v(1),
                    name: v(format!("Customer {contact_id}")),
                    email: v(format!("customer{contact_id}@example.com")),
                    phone_number: v(format!("+3361234{contact_id:04}")),
                    identifier: Field::Null,
                    additional_attributes: v(json!({"city": "Lyon", "company_name": "ACME"})),
                }),
            ));
        }
        changes.push(row(
            RowOp::Insert,
            Row::Conversation(ConversationRow {
                id: c,
                account_id: v(1),
                inbox_id: v(1),
                contact_id: v(contact_id),
                display_id: v(c),
                status: v(0),
                priority: Field::Null,
                additional_attributes: v(json!({"browser": {"browser_name": "Firefox"}})),
                created_at: v(timestamp(m)),
            }),
        ));
    }
    let outgoing = m % 2 == 0;
    changes.push(row(
        RowOp::Insert,
        Row::Message(MessageRow {
            id: m,
            account_id: v(1),
            conversation_id: v(c),
            message_type: v(i32::from(outgoing)),
            content_type: v(0),
            content: v(message_text(rng)),
            processed_message_content: Field::Null,
            private: v(false),
            sender_type: v(if outgoing { "User" } else { "Contact" }.into()),
            sender_id: v(if outgoing { 3 } else { contact_id }),
            content_attributes: v(json!({})),
            created_at: v(timestamp(m)),
        }),
    ));
    if m % 10 == 0 {
        changes.push(row(
            RowOp::Insert,
            Row::Attachment(AttachmentRow {
                id: m,
                account_id: v(1),
                message_id: v(m),
                file_type: v(0),
                external_url: v(format!(
                    "https://chat.example.com/rails/active_storage/blobs/redirect/eyJfcmFpbHMiOnsibWVzc2FnZSI6IkJBaHBCZz09{m}/photo.png"
                )),
                fallback_title: Field::Null,
                extension: Field::Null,
            }),
        ));
    }
    changes
}

/// Plays the workers: every queued job is done, its GLPI ids recorded as
/// a worker records them.
fn run_jobs(conn: &Connection) {
    let tx = conn.unchecked_transaction().expect("transaction");
    let jobs: Vec<(i64, String)> = {
        let mut stmt = tx
            .prepare("SELECT id, kind FROM outbox_jobs ORDER BY id")
            .expect("jobs");
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("jobs");
        rows.map(|r| r.expect("job")).collect()
    };
    for (id, kind) in jobs {
        let kind: JobKind = serde_json::from_str(&kind).expect("job kind");
        match kind {
            JobKind::SyncContact { contact } => {
                let fields = serde_json::to_string(&contact).expect("json");
                mappings::record_contact(
                    &tx,
                    contact.id,
                    1,
                    GlpiPersonType::User,
                    contact.id + 10_000,
                    Some(&fields),
                )
                .expect("contact link");
            }
            JobKind::CreateTicket {
                conversation,
                first_message,
                ..
            } => {
                mappings::record_ticket(
                    &tx,
                    &TicketLink {
                        conversation_id: conversation.id,
                        account_id: 1,
                        glpi_ticket_id: conversation.id + 50_000,
                        last_synced_message_id: None,
                        first_message_id: Some(first_message.id),
                        glpi_status: Some(2),
                        glpi_priority: Some(3),
                        display_id: Some(conversation.display_id),
                        description_tail: Some(format!(
                            "<p><a href=\"https://chat.example.com/app/accounts/1/conversations/{}\">Chatwoot conversation #{}</a></p><!-- chatwoot-glpi-bridge account=1 conversation={} message={} -->",
                            conversation.display_id, conversation.display_id, conversation.id, first_message.id
                        )),
                        reconciled: true,
                    },
                )
                .expect("ticket link");
            }
            JobKind::CreateFollowup {
                conversation_id,
                message,
            } => {
                mappings::record_followup(&tx, message.id, conversation_id, message.id + 90_000)
                    .expect("followup link");
            }
            _ => {}
        }
        tx.execute("DELETE FROM outbox_jobs WHERE id = ?1", [id])
            .expect("done");
    }
    tx.commit().expect("commit");
}

/// Bytes of every table (its indexes included), from `dbstat`.
fn table_bytes(conn: &Connection) -> BTreeMap<String, i64> {
    let mut stmt = conn
        .prepare(
            "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize)
               FROM dbstat d LEFT JOIN sqlite_master m ON m.name = d.name
              GROUP BY 1",
        )
        .expect("dbstat (the bundled SQLite is built with SQLITE_ENABLE_DBSTAT_VTAB)");
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("dbstat");
    rows.map(|r| r.expect("row")).collect()
}

fn pragma(conn: &Connection, name: &str) -> i64 {
    conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
        .expect("pragma")
}

fn report(label: &str, state: &State, messages: i64) -> BTreeMap<String, i64> {
    let conn = state.conn();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    let tables = table_bytes(conn);
    let page_size = pragma(conn, "page_size");
    let file = std::fs::metadata(state.path()).expect("file").len() as i64;
    let free = pragma(conn, "freelist_count") * page_size;
    println!("\n{label}");
    println!("| table (with its indexes) | bytes | bytes per message |");
    println!("|---|---:|---:|");
    let mut total = 0;
    for (name, bytes) in &tables {
        if *bytes > 2 * page_size {
            println!(
                "| {name} | {bytes} | {:.1} |",
                *bytes as f64 / messages as f64
            );
        }
        total += bytes;
    }
    println!(
        "| all tables | {total} | **{:.1}** |",
        total as f64 / messages as f64
    );
    println!(
        "file: {file} bytes ({:.1} per message), of which {free} bytes free pages (reused by later writes)",
        file as f64 / messages as f64
    );
    tables
}

fn main() {
    let messages: i64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    println!(
        "state_growth: {messages} messages, {} conversations ({})",
        messages / MESSAGES_PER_CONVERSATION,
        if cfg!(debug_assertions) {
            "debug build: use --release"
        } else {
            "release"
        }
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("growth.sqlite3");
    let mut writer = State::open(&path).expect("state");
    replication::complete_backfill(writer.conn()).expect("backfill marker");
    let mut planner = Planner::new(
        State::open(&path).expect("state"),
        ConfiguredAccounts::default(),
    )
    .expect("planner");

    let started = Instant::now();
    let mut rng = Lcg(42);
    let mut lsn = 1;
    let mut next = 1;
    let mut pending = vec![setup()];
    while next <= messages {
        while pending.len() < 1_000 && next <= messages {
            pending.push(message_transaction(&mut rng, next));
            next += 1;
        }
        let txs: Vec<LoggedTransaction<'_>> = pending
            .iter()
            .map(|changes| {
                lsn += 1;
                LoggedTransaction {
                    commit_lsn: Lsn(lsn),
                    from_bridge: false,
                    changes,
                    rejected: &[],
                }
            })
            .collect();
        writer.append_transactions(&txs).expect("append");
        pending.clear();
        while planner.drain_once().expect("planning").changes > 0 {}
        run_jobs(planner.state().conn());
    }
    println!(
        "planned and 'synced' in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    report(
        "Young messages (within the retention; all the bridge ever kept before pruning existed):",
        planner.state(),
        messages,
    );
}
