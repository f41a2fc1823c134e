//! Replication + planner on a real cluster: a small Chatwoot history is
//! backfilled and planned, then live changes are streamed and planned; the
//! outbox must hold exactly the jobs the sync rules call for (no workers run,
//! so what the planner decided stays visible).

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chatwoot_glpi_bridge::outbox::JobKind;
use chatwoot_glpi_bridge::planner::{self, cache, ConfiguredAccounts, Planner, PlannerSignals};
use chatwoot_glpi_bridge::state::mappings::GlpiPersonType;
use chatwoot_glpi_bridge::state::{changes, State};
use chatwoot_glpi_bridge::writeback::ChatwootDb;
use support::replication::{state_dir, InProcessBridge};
use support::shared_cluster;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);
const CRM_INTEGRATION: i64 = 1 << 43;

async fn insert(client: &tokio_postgres::Client, sql: &str) -> i64 {
    let row = client
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{e:?} running {sql}"));
    i64::from(row.get::<_, i32>(0))
}

async fn contact(
    client: &tokio_postgres::Client,
    account: i64,
    name: &str,
    email: Option<&str>,
    attrs: &str,
) -> i64 {
    let email = email.map_or("NULL".to_owned(), |e| format!("'{e}'"));
    insert(
        client,
        &format!(
            "INSERT INTO contacts (account_id, name, email, additional_attributes, created_at, updated_at)
             VALUES ({account}, '{name}', {email}, '{attrs}', now(), now()) RETURNING id"
        ),
    )
    .await
}

async fn conversation(client: &tokio_postgres::Client, account: i64, contact: i64) -> i64 {
    insert(
        client,
        &format!(
            "INSERT INTO conversations (account_id, inbox_id, contact_id, created_at, updated_at)
             VALUES ({account}, 1, {contact}, now(), now()) RETURNING id"
        ),
    )
    .await
}

/// A message; `message_type` 0 incoming, 1 outgoing, 2 activity.
async fn message(
    client: &tokio_postgres::Client,
    account: i64,
    conversation: i64,
    message_type: i32,
    text: &str,
) -> i64 {
    let sender = if message_type == 0 {
        "'Contact'"
    } else {
        "NULL"
    };
    insert(
        client,
        &format!(
            "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content,
                 sender_type, created_at, updated_at)
             VALUES ({account}, 1, {conversation}, {message_type}, '{text}', {sender}, now(), now())
             RETURNING id"
        ),
    )
    .await
}

/// Outbox jobs `(key without its @seq, kind)`, in queue order.
fn outbox(state_path: &Path) -> Vec<(String, JobKind)> {
    let state = State::open(state_path).unwrap();
    let mut stmt = state
        .conn()
        .prepare("SELECT key, kind FROM outbox_jobs ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    rows.map(|r| {
        let (key, kind) = r.unwrap();
        let key = key.split('@').next().unwrap().to_owned();
        (key, serde_json::from_str(&kind).unwrap())
    })
    .collect()
}

fn keys(jobs: &[(String, JobKind)]) -> BTreeSet<String> {
    jobs.iter().map(|(k, _)| k.clone()).collect()
}

/// Waits until `key` is queued and the change log is drained.
async fn wait_planned(replication: &mut InProcessBridge, state_path: &Path, key: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        replication.assert_running();
        let state = State::open(state_path).unwrap();
        let drained = changes::depth(state.conn()).unwrap() == 0;
        if drained && keys(&outbox(state_path)).contains(key) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} never planned; outbox: {:?}",
            keys(&outbox(state_path))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn clear_outbox(state_path: &Path) {
    let state = State::open(state_path).unwrap();
    state.conn().execute("DELETE FROM outbox_jobs", []).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_live_changes_become_exactly_the_expected_jobs() {
    let db = shared_cluster().create_database();
    let client = db.connect().await;

    // History: Acme syncs (flag + hook); Globex has a hook but no flag.
    let acme = insert(&client, &format!(
        "INSERT INTO accounts (name, feature_flags, created_at, updated_at) VALUES ('Acme', {CRM_INTEGRATION}, now(), now()) RETURNING id")).await;
    let globex = insert(&client,
        "INSERT INTO accounts (name, created_at, updated_at) VALUES ('Globex', now(), now()) RETURNING id").await;
    let settings = r#"{"api_url": "http://127.0.0.1:9/apirest.php", "user_token": "t", "entity_id": "2", "category_id": ""}"#;
    let hook = insert(&client, &format!(
        "INSERT INTO integrations_hooks (account_id, app_id, status, hook_type, settings, created_at, updated_at)
         VALUES ({acme}, 'glpi', 1, 0, '{settings}', now(), now()) RETURNING id::int")).await;
    insert(&client, &format!(
        "INSERT INTO integrations_hooks (account_id, app_id, status, hook_type, settings, created_at, updated_at)
         VALUES ({globex}, 'glpi', 1, 0, '{settings}', now(), now()) RETURNING id::int")).await;
    let alice = contact(
        &client,
        acme,
        "Alice Martin",
        Some("alice@example.com"),
        "{}",
    )
    .await;
    let nobody = contact(&client, acme, "", None, "{}").await;
    let carol = contact(
        &client,
        acme,
        "Carol",
        Some("carol@example.com"),
        r#"{"external": {"glpi_user_id": 77}}"#,
    )
    .await;
    let dave = contact(&client, globex, "Dave", Some("dave@example.com"), "{}").await;
    let c1 = conversation(&client, acme, alice).await;
    let c2 = conversation(&client, acme, carol).await;
    let c3 = conversation(&client, globex, dave).await;
    let m11 = message(&client, acme, c1, 0, "Hello, my printer is broken").await;
    let m12 = message(&client, acme, c1, 1, "Have you tried turning it off?").await;
    client.batch_execute(&format!(
        "INSERT INTO attachments (message_id, account_id, file_type, external_url, created_at, updated_at)
         VALUES ({m12}, {acme}, 0, 'https://files.example.com/howto.png', now(), now())")).await.unwrap();
    let m13 = message(&client, acme, c1, 2, "Conversation was assigned to Agent").await;
    let m21 = message(&client, acme, c2, 0, "old, already in GLPI").await;
    let m22 = message(&client, acme, c2, 0, "new since the last sync").await;
    client.batch_execute(&format!(
        "UPDATE conversations SET additional_attributes = '{{\"glpi\": {{\"ticket_id\": 500, \"last_synced_message_id\": {m21}}}}}' WHERE id = {c2}")).await.unwrap();
    message(&client, globex, c3, 0, "Globex is not synced").await;

    // Replication and the planner, woken by replication's commits.
    let (_dir, state_path) = state_dir();
    let durable = Arc::new(Notify::new());
    let notify = durable.clone();
    let mut replication = InProcessBridge::start(&db, &state_path, move |o| {
        o.on_durable = Some(notify);
    });
    replication.wait_backfilled(WAIT).await;
    let cancel = CancellationToken::new();
    let planner = Planner::new(
        State::open(&state_path).unwrap(),
        ConfiguredAccounts::default(),
    )
    .unwrap();
    let planner_task = tokio::spawn(planner::run(
        planner,
        PlannerSignals {
            new_changes: durable,
            jobs_ready: Arc::new(Notify::new()),
            cancel: cancel.clone(),
            idle_poll: Duration::from_millis(200),
        },
    ));

    let last_backfill_key = format!("writeback:conversation:{c2}");
    wait_planned(&mut replication, &state_path, &last_backfill_key).await;
    let jobs = outbox(&state_path);
    let expected: BTreeSet<String> = [
        format!("contact:{alice}"),
        format!("writeback:contact:{alice}"),
        format!("ticket:conversation:{c1}"),
        format!("followup:message:{m12}"),
        format!("writeback:conversation:{c1}"),
        format!("followup:message:{m22}"),
        format!("writeback:conversation:{c2}"),
    ]
    .into_iter()
    .collect();
    assert_eq!(keys(&jobs), expected, "backfill: {jobs:#?}");
    assert_eq!(jobs.len(), expected.len(), "no duplicates: {jobs:#?}");
    for (key, kind) in &jobs {
        match kind {
            JobKind::SyncContact { contact } => {
                assert_eq!(contact.name.as_deref(), Some("Alice Martin"));
                assert_eq!(contact.email.as_deref(), Some("alice@example.com"));
            }
            JobKind::CreateTicket {
                conversation,
                contact,
                first_message,
            } => {
                assert_eq!(conversation.id, c1);
                assert_eq!(conversation.display_id, 1);
                assert_eq!(conversation.status, 0);
                assert_eq!(contact.as_ref().unwrap().id, alice);
                assert_eq!(first_message.id, m11);
                assert_eq!(first_message.text, "Hello, my printer is broken");
                assert_eq!(first_message.sender_type.as_deref(), Some("Contact"));
            }
            JobKind::CreateFollowup { message, .. } if message.id == m12 => {
                assert_eq!(message.message_type, 1);
                assert_eq!(message.attachments.len(), 1, "{key}");
                assert_eq!(
                    message.attachments[0].external_url.as_deref(),
                    Some("https://files.example.com/howto.png")
                );
            }
            _ => {}
        }
    }
    {
        let state = State::open(&state_path).unwrap();
        let skips = cache::skips(state.conn()).unwrap();
        assert!(
            skips
                .iter()
                .any(|s| s.subject == format!("contact:{nobody}")
                    && s.reason == planner::CONTACT_NOT_IDENTIFIABLE),
            "{skips:?}"
        );
        let states = cache::account_states(state.conn()).unwrap();
        let globex_state = states.iter().find(|s| s.0 == globex).unwrap();
        assert_eq!(globex_state.1, "problem", "{states:?}");
        let carol_link = chatwoot_glpi_bridge::state::mappings::contact_link(state.conn(), carol)
            .unwrap()
            .expect("carol's id adopted");
        assert_eq!(carol_link.glpi_id, 77);
        let _ = m13; // the activity message planned nothing (checked above)
    }

    // Live changes, as if the workers had run everything so far.
    clear_outbox(&state_path);
    let m14 = message(&client, acme, c1, 0, "Still broken").await;
    client
        .batch_execute(&format!(
            "
        UPDATE conversations SET status = 1, priority = 2 WHERE id = {c1};
        UPDATE conversations SET updated_at = now(), last_activity_at = now() WHERE id = {c1};
        UPDATE contacts SET email = 'alice@new.example.com' WHERE id = {alice};
        UPDATE contacts SET last_activity_at = now() WHERE id = {alice};"
        ))
        .await
        .unwrap();
    // The bridge's own write-backs come back through the slot: no job.
    let chatwoot = ChatwootDb::new(db.url.parse().unwrap(), 1);
    assert!(chatwoot
        .write_contact(alice, GlpiPersonType::User, 4242)
        .await
        .unwrap());
    assert!(chatwoot
        .write_conversation(c1, 900, Some(m14))
        .await
        .unwrap());
    // Disabled: a new message plans nothing; enabled again: it resumes.
    client
        .batch_execute(&format!(
            "UPDATE integrations_hooks SET status = 0 WHERE id = {hook}"
        ))
        .await
        .unwrap();
    message(&client, acme, c1, 0, "while disabled").await;
    client
        .batch_execute(&format!(
            "UPDATE integrations_hooks SET status = 1 WHERE id = {hook}"
        ))
        .await
        .unwrap();
    let sentinel = contact(
        &client,
        acme,
        "Sentinel",
        Some("sentinel@example.com"),
        "{}",
    )
    .await;

    wait_planned(
        &mut replication,
        &state_path,
        &format!("contact:{sentinel}"),
    )
    .await;
    let jobs = outbox(&state_path);
    let expected: BTreeSet<String> = [
        format!("followup:message:{m14}"),
        format!("ticket-update:conversation:{c1}"),
        format!("writeback:conversation:{c1}"),
        format!("contact:{alice}"),
        format!("writeback:contact:{alice}"),
        format!("contact:{sentinel}"),
        format!("writeback:contact:{sentinel}"),
    ]
    .into_iter()
    .collect();
    assert_eq!(keys(&jobs), expected, "live: {jobs:#?}");
    assert_eq!(jobs.len(), expected.len(), "no duplicates: {jobs:#?}");
    let c1_queue: Vec<&str> = jobs
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| {
            k.ends_with(&format!("conversation:{c1}")) || *k == format!("followup:message:{m14}")
        })
        .collect();
    assert_eq!(
        c1_queue[0],
        format!("followup:message:{m14}"),
        "commit order: {c1_queue:?}"
    );
    for (_, kind) in &jobs {
        match kind {
            JobKind::UpdateTicket {
                status, priority, ..
            } => assert_eq!((*status, *priority), (1, Some(2))),
            JobKind::SyncContact { contact } if contact.id == alice => {
                assert_eq!(contact.email.as_deref(), Some("alice@new.example.com"));
                assert_eq!(contact.name.as_deref(), Some("Alice Martin"));
            }
            _ => {}
        }
    }

    cancel.cancel();
    tokio::time::timeout(WAIT, planner_task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    replication.stop().await.expect("clean stop");
}
