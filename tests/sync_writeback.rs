//! Write-back on a real cluster: the jsonb merge touches only the bridge's
//! keys, writes integers, is skipped when nothing changes, and every write
//! transaction carries the bridge's logical message (so the planner
//! recognises it).

mod support;

use chatwoot_glpi_bridge::replication::transaction::BRIDGE_MESSAGE_PREFIX;
use chatwoot_glpi_bridge::state::mappings::GlpiPersonType;
use chatwoot_glpi_bridge::writeback::ChatwootDb;
use serde_json::json;
use support::shared_cluster;

fn pool(url: &str) -> ChatwootDb {
    ChatwootDb::new(url.parse().expect("test url"), 2)
}

async fn attrs(client: &tokio_postgres::Client, table: &str, id: i32) -> serde_json::Value {
    client
        .query_one(
            &format!("SELECT additional_attributes::text FROM {table} WHERE id = $1"),
            &[&id],
        )
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn contact_merge_keeps_other_keys_and_writes_integers() {
    let db = shared_cluster().create_database();
    db.execute(&support::chatwoot::insert_account_sql("Acme"))
        .await;
    db.execute(
        "INSERT INTO contacts (account_id, name, email, created_at, updated_at, additional_attributes) VALUES
           (1, 'A', 'a@example.com', now(), now(), '{\"city\":\"Paris\",\"external\":{\"leadsquared_id\":\"x\"}}'),
           (1, 'B', 'b@example.com', now(), now(), NULL),
           (1, 'C', 'c@example.com', now(), now(), '{\"external\":\"garbage\"}')",
    )
    .await;
    let client = db.connect().await;
    let pool = pool(&db.url);

    assert!(pool
        .write_contact(1, GlpiPersonType::User, 7)
        .await
        .unwrap());
    assert_eq!(
        attrs(&client, "contacts", 1).await,
        json!({"city":"Paris","external":{"leadsquared_id":"x","glpi_user_id":7}})
    );
    // Same value again: no write at all.
    assert!(!pool
        .write_contact(1, GlpiPersonType::User, 7)
        .await
        .unwrap());

    assert!(pool
        .write_contact(2, GlpiPersonType::Contact, 9)
        .await
        .unwrap());
    assert_eq!(
        attrs(&client, "contacts", 2).await,
        json!({"external":{"glpi_contact_id":9}})
    );
    assert!(pool
        .write_contact(3, GlpiPersonType::User, 11)
        .await
        .unwrap());
    assert_eq!(
        attrs(&client, "contacts", 3).await,
        json!({"external":{"glpi_user_id":11}})
    );
    // A contact deleted meanwhile: nothing to write, no error.
    assert!(!pool
        .write_contact(99, GlpiPersonType::User, 1)
        .await
        .unwrap());
}

#[tokio::test]
async fn conversation_merge_nests_under_glpi_and_advances_progress() {
    let db = shared_cluster().create_database();
    db.execute(&support::chatwoot::insert_account_sql("Acme"))
        .await;
    db.execute(&support::chatwoot::insert_contacts_sql(1, 1))
        .await;
    db.execute(&support::chatwoot::insert_conversation_sql(1, 1))
        .await;
    db.execute(
        "UPDATE conversations SET additional_attributes = '{\"mail_subject\":\"Printer\",\"glpi\":{\"note\":1}}'",
    )
    .await;
    let client = db.connect().await;
    let pool = pool(&db.url);
    assert!(pool.write_conversation(1, 40, Some(12)).await.unwrap());
    assert_eq!(
        attrs(&client, "conversations", 1).await,
        json!({"mail_subject":"Printer","glpi":{"note":1,"ticket_id":40,"last_synced_message_id":12}})
    );
    assert!(!pool.write_conversation(1, 40, Some(12)).await.unwrap());
    assert!(pool.write_conversation(1, 40, Some(15)).await.unwrap());
    assert_eq!(
        attrs(&client, "conversations", 1).await["glpi"]["last_synced_message_id"],
        json!(15)
    );
}

#[tokio::test]
async fn every_write_back_transaction_carries_the_bridge_message() {
    let db = shared_cluster().create_database();
    db.execute(&support::chatwoot::insert_account_sql("Acme"))
        .await;
    db.execute(&support::chatwoot::insert_contacts_sql(1, 1))
        .await;
    let client = db.connect().await;
    let slot = format!("wb_{}", db.name);
    client
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'test_decoding')",
            &[&slot],
        )
        .await
        .unwrap();
    let pool = pool(&db.url);
    assert!(pool
        .write_contact(1, GlpiPersonType::User, 5)
        .await
        .unwrap());
    // The harness runs with synchronous_commit=off and logical decoding
    // reads only flushed WAL: one synchronous commit flushes all before it.
    client
        .batch_execute("SET synchronous_commit = on; UPDATE accounts SET name = name")
        .await
        .unwrap();
    let rows = client
        .query(
            "SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)",
            &[&slot],
        )
        .await
        .unwrap();
    let lines: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
    let message_at = lines
        .iter()
        .position(|l| l.contains("message: transactional: 1") && l.contains(BRIDGE_MESSAGE_PREFIX))
        .unwrap_or_else(|| panic!("no bridge message in {lines:#?}"));
    let update_at = lines
        .iter()
        .position(|l| l.starts_with("table public.contacts: UPDATE"))
        .unwrap_or_else(|| panic!("no contact update in {lines:#?}"));
    let commits: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("COMMIT"))
        .map(|(i, _)| i)
        .collect();
    // Same transaction: no COMMIT between the message and the update.
    assert!(message_at < update_at, "{lines:#?}");
    assert!(
        !commits.iter().any(|c| (message_at..update_at).contains(c)),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn pool_reconnects_after_its_connections_are_killed() {
    let db = shared_cluster().create_database();
    db.execute(&support::chatwoot::insert_account_sql("Acme"))
        .await;
    db.execute(&support::chatwoot::insert_contacts_sql(1, 1))
        .await;
    let pool = pool(&db.url);
    assert!(pool
        .write_contact(1, GlpiPersonType::User, 1)
        .await
        .unwrap());
    let admin = db.connect().await;
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    // The pooled connection is dead; the first use may fail (transient),
    // a retry gets a new connection.
    let mut ok = false;
    for _ in 0..3 {
        if let Ok(changed) = pool.write_contact(1, GlpiPersonType::User, 2).await {
            ok = changed;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        ok,
        "write-back did not recover after its connection was killed"
    );
}
