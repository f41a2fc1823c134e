//! Replication end to end on a real cluster: backfill, the seam between
//! snapshot and stream, streaming, unchanged TOAST, idle slot advancement,
//! restarts.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use chatwoot_glpi_bridge::chatwoot::{Change, Field, Row, RowOp, Table};
use support::replication::{self as bridge, ChangeKey, InProcessBridge};
use support::{chatwoot, shared_cluster};

const WAIT: Duration = Duration::from_secs(60);

/// Two accounts, contacts, conversations, messages, an attachment and a
/// hook; plus rows in tables outside the publication.
async fn seed(db: &support::TestDb) {
    db.execute(&chatwoot::insert_account_sql("Acme")).await;
    db.execute(&chatwoot::insert_account_sql("Globex")).await;
    db.execute(&chatwoot::insert_contacts_sql(1, 40)).await;
    db.execute(&chatwoot::insert_contacts_sql(2, 5)).await;
    for contact in 1..=6 {
        db.execute(&chatwoot::insert_conversation_sql(1 + contact % 2, contact))
            .await;
    }
    for conversation in 1..=6 {
        db.execute(&chatwoot::insert_messages_sql(1, conversation, 25))
            .await;
    }
    db.execute(
        "INSERT INTO attachments (message_id, account_id, file_type, external_url, created_at, updated_at)
           VALUES (1, 1, 0, 'https://example.com/a.png', now(), now());
         INSERT INTO integrations_hooks (account_id, app_id, settings, created_at, updated_at)
           VALUES (1, 'glpi', '{\"api_url\": \"http://glpi/apirest.php\"}', now(), now());
         INSERT INTO users (name, email, created_at, updated_at) VALUES ('Agent', 'a@example.com', now(), now());
         INSERT INTO portals_members (portal_id, user_id) VALUES (1, 1);",
    )
    .await;
}

async fn all_keys(client: &tokio_postgres::Client, op: RowOp) -> Vec<ChangeKey> {
    let mut keys = Vec::new();
    for table in Table::ALL {
        for id in bridge::ids(client, table).await {
            keys.push((table, id, op));
        }
    }
    keys
}

#[tokio::test]
async fn existing_rows_and_new_writes_reach_the_change_log_exactly_once() {
    let db = shared_cluster().create_database();
    let client = db.connect().await;
    seed(&db).await;
    let snapshot_keys = all_keys(&client, RowOp::Snapshot).await;
    assert!(snapshot_keys.len() > 200);

    let (_dir, state_path) = bridge::state_dir();
    // Small pages: the backfill spans many pages and SQLite transactions.
    let mut run = InProcessBridge::start(&db, &state_path, |o| o.backfill_page_size = 7);
    run.wait_backfilled(WAIT).await;

    db.execute(&chatwoot::insert_contacts_sql(1, 3)).await;
    db.execute(&chatwoot::insert_messages_sql(1, 1, 10)).await;
    db.execute("UPDATE conversations SET status = 1 WHERE id = 2")
        .await;
    db.execute("DELETE FROM attachments WHERE id = 1").await;
    // Unrelated tables are not in the change log.
    db.execute("UPDATE users SET name = 'Renamed'; UPDATE portals_members SET user_id = 2")
        .await;

    let before: HashSet<ChangeKey> = snapshot_keys
        .iter()
        .map(|&(t, id, _)| (t, id, RowOp::Insert))
        .collect();
    let mut expected = snapshot_keys.clone();
    for key in all_keys(&client, RowOp::Insert).await {
        if !before.contains(&key) {
            expected.push(key);
        }
    }
    expected.push((Table::Conversations, 2, RowOp::Update));
    expected.push((Table::Attachments, 1, RowOp::Delete));
    run.wait_for_keys(&expected, WAIT).await;
    run.stop().await.expect("clean stop");

    let counts = bridge::change_counts(&state_path);
    for key in &expected {
        assert_eq!(
            counts.get(key),
            Some(&1),
            "{key:?} must appear exactly once"
        );
    }
    assert_eq!(
        counts.values().sum::<usize>(),
        expected.len(),
        "unexpected extra changes"
    );
    // Backfill rows precede streamed ones and carry the consistent point.
    let log = bridge::change_log(&state_path);
    let first_stream = log
        .iter()
        .position(|c| {
            !matches!(
                c.change,
                Change::Row {
                    op: RowOp::Snapshot,
                    ..
                }
            )
        })
        .unwrap();
    assert_eq!(first_stream, snapshot_keys.len());
    assert!(log[..first_stream]
        .iter()
        .all(|c| c.commit_lsn == log[0].commit_lsn));
    assert!(log[first_stream].commit_lsn > log[0].commit_lsn);
    // display_id set by Chatwoot's trigger arrives with the row.
    let conversation = log.iter().find_map(|c| match &c.change {
        Change::Row {
            row: Row::Conversation(r),
            ..
        } if r.id == 1 => Some(r.clone()),
        _ => None,
    });
    assert_eq!(conversation.unwrap().display_id, Field::Value(1));
}

#[tokio::test]
async fn rows_committed_while_the_backfill_runs_are_seen_once() {
    let db = shared_cluster().create_database();
    db.execute(&chatwoot::insert_account_sql("Acme")).await;
    db.execute(&chatwoot::insert_contacts_sql(1, 1)).await;
    db.execute(&chatwoot::insert_conversation_sql(1, 1)).await;
    db.execute(&chatwoot::insert_messages_sql(1, 1, 3000)).await;

    // A writer commits small transactions throughout the backfill.
    let writer_db = db.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_writer = stop.clone();
    let writer = tokio::spawn(async move {
        let client = writer_db.connect().await;
        let mut n = 0;
        while !stop_writer.is_cancelled() {
            client
                .batch_execute(&chatwoot::insert_messages_sql(1, 1, 3))
                .await
                .unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        n
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let (_dir, state_path) = bridge::state_dir();
    let mut run = InProcessBridge::start(&db, &state_path, |o| o.backfill_page_size = 50);
    run.wait_backfilled(WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    let batches = writer.await.unwrap();
    assert!(batches > 10, "the writer must overlap the backfill");

    let client = db.connect().await;
    let message_ids = bridge::ids(&client, Table::Messages).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let counts = bridge::change_counts(&state_path);
        let seen = |id: i64| {
            counts
                .get(&(Table::Messages, id, RowOp::Snapshot))
                .copied()
                .unwrap_or(0)
                + counts
                    .get(&(Table::Messages, id, RowOp::Insert))
                    .copied()
                    .unwrap_or(0)
        };
        if message_ids.iter().all(|&id| seen(id) >= 1) {
            for &id in &message_ids {
                assert_eq!(seen(id), 1, "message {id} seen twice across the seam");
            }
            let snapshot = message_ids
                .iter()
                .filter(|&&id| counts.contains_key(&(Table::Messages, id, RowOp::Snapshot)))
                .count();
            assert!(
                snapshot >= 3000 && snapshot < message_ids.len(),
                "both sides of the seam used"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages missing from the change log"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run.stop().await.expect("clean stop");
}

#[tokio::test]
async fn unchanged_large_jsonb_in_an_update_is_unchanged_not_null() {
    let db = shared_cluster().create_database();
    db.execute(&chatwoot::insert_account_sql("Acme")).await;
    // ~20 kB of incompressible JSON: stored out of line (TOAST).
    db.execute(
        "INSERT INTO contacts (account_id, name, email, additional_attributes, created_at, updated_at)
         SELECT 1, 'Big', 'big@example.com',
                jsonb_build_object('external', jsonb_build_object('glpi_user_id', 7),
                                   'blob', (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, 600))),
                now(), now()",
    )
    .await;
    let (_dir, state_path) = bridge::state_dir();
    let mut run = InProcessBridge::start(&db, &state_path, |_| {});
    run.wait_backfilled(WAIT).await;
    db.execute("UPDATE contacts SET name = 'Bigger', updated_at = now() WHERE id = 1")
        .await;
    run.wait_for_keys(&[(Table::Contacts, 1, RowOp::Update)], WAIT)
        .await;
    run.stop().await.expect("clean stop");

    let log = bridge::change_log(&state_path);
    let contact = |op: RowOp| {
        log.iter()
            .find_map(|c| match &c.change {
                Change::Row {
                    op: o,
                    row: Row::Contact(r),
                } if *o == op => Some(r.clone()),
                _ => None,
            })
            .unwrap()
    };
    let snapshot = contact(RowOp::Snapshot);
    let attrs = snapshot
        .additional_attributes
        .value()
        .expect("snapshot carries the value");
    assert_eq!(attrs["external"]["glpi_user_id"], 7);
    let update = contact(RowOp::Update);
    assert_eq!(update.name, Field::Value("Bigger".into()));
    assert_eq!(update.additional_attributes, Field::Unchanged);
}

#[tokio::test]
async fn slot_advances_while_only_unrelated_tables_are_written() {
    let db = shared_cluster().create_database();
    db.execute(&chatwoot::insert_account_sql("Acme")).await;
    let client = db.connect().await;
    let (_dir, state_path) = bridge::state_dir();
    let mut run = InProcessBridge::start(&db, &state_path, |_| {});
    run.wait_backfilled(WAIT).await;
    let depth_before = bridge::change_log(&state_path).len();

    let slot = db.slot_name();
    let start = bridge::confirmed_flush_lsn(&client, &slot).await.unwrap();
    for i in 0..50 {
        db.execute(&format!(
            "INSERT INTO users (name, uid, created_at, updated_at) VALUES ('u{i}', 'u{i}', now(), now())"
        ))
        .await;
    }
    let written: i64 = client
        .query_one("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint", &[])
        .await
        .unwrap()
        .get(0);
    assert!(written as u64 > start);
    support::wait_until(Duration::from_secs(30), "confirmed_flush_lsn to pass the unrelated writes", || {
        let (client, slot) = (&client, &slot);
        async move {
            bridge::confirmed_flush_lsn(client, slot).await.unwrap() >= written as u64
        }
    })
    .await;
    run.stop().await.expect("clean stop");
    assert_eq!(
        bridge::change_log(&state_path).len(),
        depth_before,
        "nothing of ours changed"
    );
}

#[tokio::test]
async fn restart_resumes_from_the_slot_without_redoing_history() {
    let db = shared_cluster().create_database();
    let client = db.connect().await;
    db.execute(&chatwoot::insert_account_sql("Acme")).await;
    db.execute(&chatwoot::insert_contacts_sql(1, 20)).await;
    let (_dir, state_path) = bridge::state_dir();

    let mut run = InProcessBridge::start(&db, &state_path, |_| {});
    run.wait_backfilled(WAIT).await;
    db.execute(&chatwoot::insert_contacts_sql(1, 5)).await;
    let first_keys: Vec<ChangeKey> = bridge::ids(&client, Table::Contacts)
        .await
        .into_iter()
        .skip(20)
        .map(|id| (Table::Contacts, id, RowOp::Insert))
        .collect();
    run.wait_for_keys(&first_keys, WAIT).await;
    run.stop().await.expect("clean stop");

    // Written while the bridge is down.
    db.execute(&chatwoot::insert_contacts_sql(1, 7)).await;
    let mut run = InProcessBridge::start(&db, &state_path, |_| {});
    let later: Vec<ChangeKey> = bridge::ids(&client, Table::Contacts)
        .await
        .into_iter()
        .skip(25)
        .map(|id| (Table::Contacts, id, RowOp::Insert))
        .collect();
    assert_eq!(later.len(), 7);
    run.wait_for_keys(&later, WAIT).await;
    run.stop().await.expect("clean stop");

    let counts = bridge::change_counts(&state_path);
    let snapshots = counts
        .iter()
        .filter(|(k, _)| k.2 == RowOp::Snapshot)
        .count();
    assert_eq!(snapshots, 21, "1 account + 20 contacts, backfilled once");
    assert!(
        counts.values().all(|&n| n == 1),
        "no change twice: {counts:?}"
    );
    assert_eq!(counts.len(), 21 + 5 + 7);
}

/// Keys of the contacts with ids after `after`, as inserts.
async fn contact_inserts_after(client: &tokio_postgres::Client, after: i64) -> Vec<ChangeKey> {
    bridge::ids(client, Table::Contacts)
        .await
        .into_iter()
        .filter(|&id| id > after)
        .map(|id| (Table::Contacts, id, RowOp::Insert))
        .collect()
}

#[tokio::test]
async fn second_instance_waits_as_standby_and_takes_over() {
    let db = shared_cluster().create_database();
    let client = db.connect().await;
    db.execute(&chatwoot::insert_account_sql("Acme")).await;
    let (_dir, state_path) = bridge::state_dir();
    let mut first = InProcessBridge::start(&db, &state_path, |_| {});
    first.wait_backfilled(WAIT).await;
    db.execute(&chatwoot::insert_contacts_sql(1, 3)).await;
    first
        .wait_for_keys(&contact_inserts_after(&client, 0).await, WAIT)
        .await;

    // Same state file and slot: it must wait, not fail and not steal.
    let mut standby = InProcessBridge::start(&db, &state_path, |_| {});
    tokio::time::sleep(Duration::from_secs(2)).await;
    standby.assert_running();
    db.execute(&chatwoot::insert_contacts_sql(1, 2)).await;
    first
        .wait_for_keys(&contact_inserts_after(&client, 3).await, WAIT)
        .await;
    first.stop().await.expect("clean stop");

    db.execute(&chatwoot::insert_contacts_sql(1, 4)).await;
    standby
        .wait_for_keys(&contact_inserts_after(&client, 5).await, WAIT)
        .await;
    standby.stop().await.expect("clean stop");
    let counts = bridge::change_counts(&state_path);
    assert_eq!(counts.len(), 1 + 9);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

#[tokio::test]
async fn postgres_restart_mid_stream_loses_and_duplicates_nothing() {
    let cluster = support::Cluster::start_new(&support::ClusterOptions::default());
    let db = cluster.create_database();
    db.execute(&chatwoot::insert_account_sql("Acme")).await;
    let (_dir, state_path) = bridge::state_dir();
    let mut run = InProcessBridge::start(&db, &state_path, |_| {});
    run.wait_backfilled(WAIT).await;
    db.execute(&chatwoot::insert_contacts_sql(1, 5)).await;
    let client = db.connect().await;
    run.wait_for_keys(&contact_inserts_after(&client, 0).await, WAIT)
        .await;

    cluster.restart_async().await;
    // Written right after the restart, while the bridge reconnects.
    db.execute(&chatwoot::insert_contacts_sql(1, 5)).await;
    let client = db.connect().await;
    run.wait_for_keys(&contact_inserts_after(&client, 0).await, WAIT)
        .await;
    run.stop().await.expect("clean stop");
    let counts = bridge::change_counts(&state_path);
    assert_eq!(counts.len(), 1 + 10);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}
