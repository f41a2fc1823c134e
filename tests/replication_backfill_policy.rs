//! The backfill policies on a real cluster, replication + planner (no
//! workers, so what the planner decided stays in the outbox): `none` makes
//! every contact and conversation known and plans nothing; `since:D` plans
//! exactly the conversations with activity on or after D, their messages
//! and their contacts, and makes the rest known.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use chatwoot_glpi_bridge::chatwoot::{RowOp, Table};
use chatwoot_glpi_bridge::cli::status::read_state;
use chatwoot_glpi_bridge::config::BackfillPolicy;
use chatwoot_glpi_bridge::planner::{cache, ConfiguredAccounts, Planner};
use chatwoot_glpi_bridge::state::{changes, replication as repl_state, State};
use support::replication::{change_counts, state_dir, InProcessBridge};
use support::{shared_cluster, TestDb};

const WAIT: Duration = Duration::from_secs(60);
const CRM_INTEGRATION: i64 = 1 << 43;
const DAY: &str = "2024-06-01";

/// A Chatwoot history around [`DAY`], every timestamp explicit.
struct History {
    /// Contact of `old` only.
    alice: i64,
    /// Contact of `recent`.
    bob: i64,
    /// Contact of `revived`.
    carol: i64,
    /// Contact of `at_midnight` and of `just_before`.
    dora: i64,
    /// No conversation at all.
    erin: i64,
    /// Created and last active well before DAY.
    old: i64,
    /// Created after DAY.
    recent: i64,
    /// Created before DAY, last active after it.
    revived: i64,
    /// Last active at DAY 00:00:00 exactly (selected).
    at_midnight: i64,
    /// Last active one second before DAY (not selected).
    just_before: i64,
    /// Messages per conversation, in order.
    messages: Vec<(i64, Vec<i64>)>,
    /// (attachment, message) pairs.
    attachments: Vec<(i64, i64)>,
}

impl History {
    fn messages_of(&self, conversation: i64) -> &[i64] {
        &self
            .messages
            .iter()
            .find(|(c, _)| *c == conversation)
            .unwrap()
            .1
    }

    fn selected(&self) -> [i64; 3] {
        [self.recent, self.revived, self.at_midnight]
    }
}

async fn id(client: &tokio_postgres::Client, sql: &str) -> i64 {
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{e:?} running {sql}"));
    row.try_get::<_, i64>(0)
        .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
        .expect("an integer id")
}

async fn seed(db: &TestDb) -> History {
    let client = db.connect().await;
    let acme = id(&client, &format!(
        "INSERT INTO accounts (name, feature_flags, created_at, updated_at) VALUES ('Acme', {CRM_INTEGRATION}, now(), now()) RETURNING id")).await;
    let settings = r#"{"api_url": "http://127.0.0.1:9/apirest.php", "user_token": "t"}"#;
    id(&client, &format!(
        "INSERT INTO integrations_hooks (account_id, app_id, status, hook_type, settings, created_at, updated_at)
         VALUES ({acme}, 'glpi', 1, 0, '{settings}', now(), now()) RETURNING id")).await;
    let mut contacts = Vec::new();
    for name in ["alice", "bob", "carol", "dora", "erin"] {
        contacts.push(
            id(
                &client,
                &format!(
                    "INSERT INTO contacts (account_id, name, email, created_at, updated_at)
                     VALUES ({acme}, '{name}', '{name}@example.com', '2024-01-01', '2024-01-01') RETURNING id"
                ),
            )
            .await,
        );
    }
    let [alice, bob, carol, dora, erin] = contacts[..] else {
        unreachable!()
    };
    // (contact, created_at, last_activity_at)
    let conversation = |contact: i64, created: &str, active: &str| {
        format!(
            "INSERT INTO conversations (account_id, inbox_id, contact_id, created_at, updated_at, last_activity_at)
             VALUES ({acme}, 1, {contact}, '{created}', '{created}', '{active}') RETURNING id"
        )
    };
    let old = id(
        &client,
        &conversation(alice, "2024-01-10", "2024-01-15 10:00"),
    )
    .await;
    let recent = id(
        &client,
        &conversation(bob, "2024-06-10", "2024-06-11 09:00"),
    )
    .await;
    let revived = id(
        &client,
        &conversation(carol, "2024-01-05", "2024-06-20 17:30"),
    )
    .await;
    let at_midnight = id(
        &client,
        &conversation(dora, "2024-05-01", "2024-06-01 00:00:00"),
    )
    .await;
    let just_before = id(
        &client,
        &conversation(dora, "2024-05-02", "2024-05-31 23:59:59"),
    )
    .await;

    let mut messages = Vec::new();
    let mut attachments = Vec::new();
    for conversation in [old, recent, revived, at_midnight, just_before] {
        let mut ids = Vec::new();
        for (n, message_type) in [(1, 0), (2, 1)] {
            ids.push(
                id(
                    &client,
                    &format!(
                        "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content,
                             sender_type, created_at, updated_at)
                         SELECT {acme}, 1, {conversation}, {message_type}, 'message {n}',
                             CASE WHEN {message_type} = 0 THEN 'Contact' END, created_at, created_at
                         FROM conversations WHERE id = {conversation} RETURNING id"
                    ),
                )
                .await,
            );
        }
        let attachment = id(
            &client,
            &format!(
                "INSERT INTO attachments (message_id, account_id, file_type, external_url, created_at, updated_at)
                 VALUES ({}, {acme}, 0, 'https://files.example.com/{conversation}.png', now(), now()) RETURNING id",
                ids[1]
            ),
        )
        .await;
        attachments.push((attachment, ids[1]));
        messages.push((conversation, ids));
    }
    History {
        alice,
        bob,
        carol,
        dora,
        erin,
        old,
        recent,
        revived,
        at_midnight,
        just_before,
        messages,
        attachments,
    }
}

/// Backfills `db` with `policy` and plans everything; returns replication
/// (still streaming) and the planner.
async fn backfill_and_plan(
    db: &TestDb,
    state_path: &Path,
    policy: BackfillPolicy,
) -> (InProcessBridge, Planner) {
    let mut replication = InProcessBridge::start(db, state_path, |o| o.backfill = policy);
    replication.wait_backfilled(WAIT).await;
    let planner = Planner::new(
        State::open(state_path).unwrap(),
        ConfiguredAccounts::default(),
    )
    .unwrap();
    (replication, planner)
}

fn drain(planner: &mut Planner) {
    while planner.drain_once().unwrap().changes > 0 {}
}

/// Outbox job keys, without their `@seq`.
fn outbox_keys(state: &State) -> BTreeSet<String> {
    let mut stmt = state
        .conn()
        .prepare("SELECT key FROM outbox_jobs ORDER BY id")
        .unwrap();
    let keys = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|k| k.unwrap().split('@').next().unwrap().to_owned())
        .collect();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_none_makes_rows_known_and_plans_nothing_then_live_changes_plan() {
    let db = shared_cluster().create_database();
    let h = seed(&db).await;
    let (_dir, state_path) = state_dir();
    let (mut replication, mut planner) =
        backfill_and_plan(&db, &state_path, BackfillPolicy::None).await;

    // The change log: contacts and conversations cache only, no message or
    // attachment read at all.
    let counts = change_counts(&state_path);
    for contact in [h.alice, h.bob, h.carol, h.dora, h.erin] {
        assert_eq!(
            counts.get(&(Table::Contacts, contact, RowOp::SnapshotCacheOnly)),
            Some(&1),
            "contact {contact}"
        );
    }
    for conversation in [h.old, h.recent, h.revived, h.at_midnight, h.just_before] {
        assert_eq!(
            counts.get(&(Table::Conversations, conversation, RowOp::SnapshotCacheOnly)),
            Some(&1),
            "conversation {conversation}"
        );
    }
    assert!(
        !counts.keys().any(|(table, _, op)| *op == RowOp::Snapshot
            && !matches!(table, Table::Accounts | Table::IntegrationsHooks)),
        "only settings are history: {counts:?}"
    );
    assert!(
        !counts
            .keys()
            .any(|(table, _, _)| matches!(table, Table::Messages | Table::Attachments)),
        "{counts:?}"
    );

    drain(&mut planner);
    let state = State::open(&state_path).unwrap();
    assert!(outbox_keys(&state).is_empty(), "{:?}", outbox_keys(&state));
    assert!(cache::skips(state.conn()).unwrap().is_empty());
    for contact in [h.alice, h.bob, h.carol, h.dora, h.erin] {
        assert!(cache::contact(state.conn(), contact).unwrap().is_some());
    }
    for conversation in [h.old, h.recent, h.revived, h.at_midnight, h.just_before] {
        assert!(cache::conversation(state.conn(), conversation)
            .unwrap()
            .is_some());
    }
    assert!(planner.book().syncing(1).is_some(), "settings are known");
    let progress = repl_state::backfill_progress(state.conn()).unwrap();
    let messages = progress
        .iter()
        .find(|t| t.table_name == "messages")
        .unwrap();
    assert!(messages.done && messages.rows_done == 0, "{progress:?}");
    let report = read_state(&state).unwrap();
    assert_eq!(
        report.replication.backfill_policy,
        Some(BackfillPolicy::None)
    );
    assert!(
        report.render().contains("policy: none"),
        "{}",
        report.render()
    );
    assert_eq!(report.to_json()["backfill"]["policy"], "none");
    // `status` with another policy configured says it is not applied.
    let mut report = report;
    report.configured_backfill = Some(BackfillPolicy::None);
    assert_eq!(
        report.to_json()["backfill"]["configured_policy_applied"],
        true
    );
    report.configured_backfill = Some(BackfillPolicy::All);
    let text = report.render();
    assert!(
        text.contains(
            "backfill = all is configured, but this state file was backfilled with `none`"
        ),
        "{text}"
    );
    assert_eq!(
        report.to_json()["backfill"]["configured_policy_applied"],
        false
    );

    // From now on: a new message in an old conversation creates its ticket
    // (that message first); an edit of an old contact syncs it.
    let client = db.connect().await;
    let live = id(
        &client,
        &format!(
            "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content,
                 sender_type, created_at, updated_at)
             VALUES (1, 1, {}, 0, 'Still broken', 'Contact', now(), now()) RETURNING id",
            h.old
        ),
    )
    .await;
    client
        .batch_execute(&format!(
            "UPDATE contacts SET name = 'Erin Smith', updated_at = now() WHERE id = {}",
            h.erin
        ))
        .await
        .unwrap();
    let expected: BTreeSet<String> = [
        format!("ticket:conversation:{}", h.old),
        format!("writeback:conversation:{}", h.old),
        format!("contact:{}", h.erin),
        format!("writeback:contact:{}", h.erin),
    ]
    .into_iter()
    .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        replication.assert_running();
        drain(&mut planner);
        if outbox_keys(&state) == expected {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "live changes planned {:?}, expected {expected:?}",
            outbox_keys(&state)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let kind: String = state
        .conn()
        .query_row(
            "SELECT kind FROM outbox_jobs WHERE key = ?1",
            [format!("ticket:conversation:{}", h.old)],
            |r| r.get(0),
        )
        .unwrap();
    let kind: serde_json::Value = serde_json::from_str(&kind).unwrap();
    assert_eq!(kind["type"], "create_ticket", "{kind}");
    assert_eq!(kind["first_message"]["id"], live, "{kind}");
    replication.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_since_plans_exactly_the_conversations_active_since_the_day() {
    let db = shared_cluster().create_database();
    let h = seed(&db).await;
    let (_dir, state_path) = state_dir();
    let policy: BackfillPolicy = format!("since:{DAY}").parse().unwrap();
    let (replication, mut planner) = backfill_and_plan(&db, &state_path, policy).await;

    // The change log: messages and attachments of selected conversations
    // only; the other contacts and conversations cache only.
    let counts = change_counts(&state_path);
    let op_of = |table: Table, id: i64| {
        let ops: Vec<RowOp> = counts
            .keys()
            .filter(|(t, i, _)| *t == table && *i == id)
            .map(|k| k.2)
            .collect();
        assert!(ops.len() <= 1, "{table:?} {id}: {ops:?}");
        ops.first().copied()
    };
    for conversation in h.selected() {
        assert_eq!(
            op_of(Table::Conversations, conversation),
            Some(RowOp::Snapshot)
        );
        for &message in h.messages_of(conversation) {
            assert_eq!(op_of(Table::Messages, message), Some(RowOp::Snapshot));
        }
    }
    for conversation in [h.old, h.just_before] {
        assert_eq!(
            op_of(Table::Conversations, conversation),
            Some(RowOp::SnapshotCacheOnly)
        );
        for &message in h.messages_of(conversation) {
            assert_eq!(op_of(Table::Messages, message), None, "not read");
        }
    }
    for (attachment, message) in &h.attachments {
        let selected = h
            .selected()
            .iter()
            .any(|&c| h.messages_of(c).contains(message));
        assert_eq!(
            op_of(Table::Attachments, *attachment),
            selected.then_some(RowOp::Snapshot),
            "attachment {attachment}"
        );
    }
    for (contact, op) in [
        (h.alice, RowOp::SnapshotCacheOnly),
        (h.bob, RowOp::Snapshot),
        (h.carol, RowOp::Snapshot),
        (h.dora, RowOp::Snapshot),
        (h.erin, RowOp::SnapshotCacheOnly),
    ] {
        assert_eq!(
            op_of(Table::Contacts, contact),
            Some(op),
            "contact {contact}"
        );
    }

    drain(&mut planner);
    let state = State::open(&state_path).unwrap();
    assert_eq!(changes::depth(state.conn()).unwrap(), 0);
    let mut expected = BTreeSet::new();
    for contact in [h.bob, h.carol, h.dora] {
        expected.insert(format!("contact:{contact}"));
        expected.insert(format!("writeback:contact:{contact}"));
    }
    for conversation in h.selected() {
        expected.insert(format!("ticket:conversation:{conversation}"));
        expected.insert(format!(
            "followup:message:{}",
            h.messages_of(conversation)[1]
        ));
        expected.insert(format!("writeback:conversation:{conversation}"));
    }
    assert_eq!(outbox_keys(&state), expected);
    for conversation in [h.old, h.just_before] {
        let cached = cache::conversation(state.conn(), conversation)
            .unwrap()
            .expect("known");
        assert!(!cached.ticket_planned);
    }
    assert!(cache::contact(state.conn(), h.alice).unwrap().is_some());
    let report = read_state(&state).unwrap();
    assert_eq!(report.replication.backfill_policy, Some(policy));
    assert_eq!(report.to_json()["backfill"]["policy"], "since:2024-06-01");
    replication.stop().await.unwrap();
}
