//! Planning throughput: how fast the planner turns the change log into
//! outbox jobs, so it is never the sync's bottleneck.
//!
//! Plans the sync benchmark's history (2,000 conversations, 20,000 messages,
//! one attachment per tenth message) twice: as a first-start backfill
//! (snapshot rows), then as live traffic (one Chatwoot transaction per
//! message, each with the contact and conversation updates Chatwoot makes
//! for it, which must plan nothing). Prints changes and jobs per second.
//!
//! `cargo run --release --example planner_bench [conversations] [messages_per_conversation]`

use std::time::Instant;

use chatwoot_glpi_bridge::chatwoot::{
    AccountRow, AttachmentRow, Change, ContactRow, ConversationRow, Field, HookRow, MessageRow,
    Row, RowOp,
};
use chatwoot_glpi_bridge::lsn::Lsn;
use chatwoot_glpi_bridge::outbox;
use chatwoot_glpi_bridge::planner::settings::CRM_INTEGRATION_FLAG;
use chatwoot_glpi_bridge::planner::{ConfiguredAccounts, Planner};
use chatwoot_glpi_bridge::state::changes::LoggedTransaction;
use chatwoot_glpi_bridge::state::{replication, State};
use serde_json::json;

fn v<T>(x: T) -> Field<T> {
    Field::Value(x)
}

fn contact(op: RowOp, id: i64) -> Change {
    Change::Row {
        op,
        row: Row::Contact(ContactRow {
            id,
            account_id: v(1),
            name: v(format!("Contact {id}")),
            email: v(format!("c{id}@example.com")),
            phone_number: Field::Null,
            identifier: Field::Null,
            additional_attributes: v(json!({"city": "Paris"})),
        }),
    }
}

fn conversation(op: RowOp, id: i64) -> Change {
    Change::Row {
        op,
        row: Row::Conversation(ConversationRow {
            id,
            account_id: v(1),
            inbox_id: v(1),
            contact_id: v(id),
            display_id: v(id),
            status: v(0),
            priority: Field::Null,
            additional_attributes: v(json!({"browser": {"name": "Firefox"}})),
            created_at: v("2026-01-01 10:00:00".into()),
        }),
    }
}

fn message(op: RowOp, id: i64, conversation_id: i64) -> Change {
    Change::Row {
        op,
        row: Row::Message(MessageRow {
            id,
            account_id: v(1),
            conversation_id: v(conversation_id),
            message_type: v((id % 2) as i32),
            content_type: v(0),
            content: v(format!(
                "Message {id}: the printer on floor 3 is jammed again."
            )),
            processed_message_content: Field::Null,
            private: v(false),
            sender_type: v("Contact".into()),
            sender_id: v(conversation_id),
            content_attributes: v(json!({})),
            created_at: v("2026-01-01 10:00:01".into()),
        }),
    }
}

fn attachment(op: RowOp, id: i64) -> Change {
    Change::Row {
        op,
        row: Row::Attachment(AttachmentRow {
            id,
            account_id: v(1),
            message_id: v(id),
            file_type: v(0),
            external_url: v(format!("https://files.example.com/{id}.png")),
            fallback_title: Field::Null,
            extension: Field::Null,
        }),
    }
}

fn setup() -> Vec<Change> {
    vec![
        Change::Row {
            op: RowOp::Snapshot,
            row: Row::Account(AccountRow {
                id: 1,
                name: v("Bench".into()),
                feature_flags: v(CRM_INTEGRATION_FLAG),
            }),
        },
        Change::Row {
            op: RowOp::Snapshot,
            row: Row::IntegrationsHook(HookRow {
                id: 1,
                account_id: v(1),
                app_id: v("glpi".into()),
                status: v(1),
                hook_type: v(0),
                inbox_id: Field::Null,
                settings: v(json!({
                    "api_url": "http://127.0.0.1:9/apirest.php",
                    "user_token": "bench"
                })),
            }),
        },
    ]
}

struct Run {
    _dir: tempfile::TempDir,
    writer: State,
    planner: Planner,
}

fn open() -> Run {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.sqlite3");
    let writer = State::open(&path).expect("state");
    replication::complete_backfill(writer.conn()).expect("backfill marker");
    let planner = Planner::new(
        State::open(&path).expect("state"),
        ConfiguredAccounts::default(),
    )
    .expect("planner");
    Run {
        _dir: dir,
        writer,
        planner,
    }
}

/// Drains the change log; returns (changes, jobs, seconds).
fn drain(planner: &mut Planner) -> (usize, usize, f64) {
    let start = Instant::now();
    let (mut changes, mut jobs) = (0, 0);
    loop {
        let stats = planner.drain_once().expect("planning");
        if stats.changes == 0 {
            break;
        }
        changes += stats.changes;
        jobs += stats.jobs.values().sum::<usize>();
    }
    (changes, jobs, start.elapsed().as_secs_f64())
}

fn report(label: &str, (changes, jobs, secs): (usize, usize, f64), planner: &Planner) {
    let depth = outbox::depth(planner.state().conn()).expect("depth");
    println!(
        "{label}: {changes} changes -> {jobs} jobs in {secs:.2} s = {:.0} changes/s, {:.0} jobs/s (outbox: {} pending)",
        changes as f64 / secs,
        jobs as f64 / secs,
        depth.pending
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let conversations: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let per_conversation: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let messages = conversations * per_conversation;
    println!(
        "planner_bench: {conversations} conversations, {messages} messages ({})",
        if cfg!(debug_assertions) {
            "debug build: use --release for figures"
        } else {
            "release"
        }
    );

    // Backfill: one snapshot, table by table, as replication writes it.
    let mut run = open();
    let mut rows = setup();
    rows.extend((1..=conversations).map(|c| contact(RowOp::Snapshot, c)));
    rows.extend((1..=conversations).map(|c| conversation(RowOp::Snapshot, c)));
    rows.extend((1..=messages).map(|m| message(RowOp::Snapshot, m, (m - 1) % conversations + 1)));
    rows.extend(
        (1..=messages)
            .filter(|m| m % 10 == 0)
            .map(|m| attachment(RowOp::Snapshot, m)),
    );
    for chunk in rows.chunks(5_000) {
        let tx = LoggedTransaction {
            commit_lsn: Lsn(1),
            from_bridge: false,
            changes: chunk,
            rejected: &[],
        };
        run.writer.append_transactions(&[tx]).expect("append");
    }
    let backfill = drain(&mut run.planner);
    report("backfill", backfill, &run.planner);

    // Live: contacts and conversations first, then one transaction per
    // message with the conversation and contact touches Chatwoot makes.
    let mut run = open();
    let mut lsn = 1;
    let mut pending: Vec<Vec<Change>> = vec![setup()];
    for c in 1..=conversations {
        pending.push(vec![
            contact(RowOp::Insert, c),
            conversation(RowOp::Insert, c),
        ]);
    }
    for m in 1..=messages {
        let c = (m - 1) % conversations + 1;
        let mut tx = vec![message(RowOp::Insert, m, c)];
        if m % 10 == 0 {
            tx.push(attachment(RowOp::Insert, m));
        }
        tx.push(conversation(RowOp::Update, c));
        tx.push(contact(RowOp::Update, c));
        pending.push(tx);
    }
    for group in pending.chunks(500) {
        let txs: Vec<LoggedTransaction<'_>> = group
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
        run.writer.append_transactions(&txs).expect("append");
    }
    let live = drain(&mut run.planner);
    report("live", live, &run.planner);
}
