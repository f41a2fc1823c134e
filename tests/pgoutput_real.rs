//! The decoder against what a real PostgreSQL sends: pgoutput v1 bytes read
//! from a logical slot (`pg_logical_slot_get_binary_changes`, the same
//! messages a walsender streams), fed to the `TransactionAssembler`; and the
//! backfill's `SELECT col::text` rows built by the same row function.

mod support;

use bytes::Bytes;
use chatwoot_glpi_bridge::chatwoot::text::ColumnMap;
use chatwoot_glpi_bridge::chatwoot::{Change, Field, Row, RowOp, Table};
use chatwoot_glpi_bridge::replication::transaction::{
    CommittedTransaction, TransactionAssembler, BRIDGE_MESSAGE_PREFIX, BRIDGE_ORIGIN_NAME,
};
use serde_json::json;
use support::{shared_cluster, TestDb};

const SLOT: &str = "decoder_test";

/// A database with a publication like the bridge's (plus a table the bridge
/// does not read) and a pgoutput slot created before any change.
async fn setup() -> (TestDb, tokio_postgres::Client) {
    let db = shared_cluster().create_database();
    // The harness runs with synchronous_commit=off; logical decoding reads
    // only flushed WAL, so make every commit of this database flush.
    db.execute(&format!(
        "ALTER DATABASE {} SET synchronous_commit = on",
        db.name
    ))
    .await;
    db.execute(
        "CREATE TABLE public.audit_log (id serial PRIMARY KEY, note text);
         CREATE PUBLICATION bridge_pub FOR TABLE accounts, integrations_hooks, contacts,
             conversations, messages, attachments, audit_log;",
    )
    .await;
    let client = db.connect().await;
    client
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot(&db)],
        )
        .await
        .unwrap();
    (db, client)
}

/// Slot names are per cluster: one per test database.
fn slot(db: &TestDb) -> String {
    format!("{SLOT}_{}", db.name)
}

/// Consumes everything in the slot as one decoding session.
async fn drain(db: &TestDb, client: &tokio_postgres::Client) -> Vec<CommittedTransaction> {
    let rows = client
        .query(
            "SELECT data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL, \
             'proto_version', '1', 'publication_names', 'bridge_pub', 'messages', 'true')",
            &[&slot(db)],
        )
        .await
        .unwrap();
    let mut assembler = TransactionAssembler::new();
    let mut out = Vec::new();
    for row in rows {
        let data: Vec<u8> = row.get(0);
        out.extend(assembler.handle_pgoutput(&Bytes::from(data)).unwrap());
    }
    assert!(!assembler.in_transaction());
    out
}

fn rows(transactions: &[CommittedTransaction]) -> Vec<(RowOp, Row)> {
    transactions
        .iter()
        .flat_map(|t| &t.changes)
        .filter_map(|c| match c {
            Change::Row { op, row } => Some((*op, row.clone())),
            Change::Truncate { .. } => None,
        })
        .collect()
}

/// What the backfill sees: `SELECT col::text AS col ... ORDER BY id`.
async fn backfill(client: &tokio_postgres::Client, table: Table) -> Vec<Row> {
    let columns: Vec<String> = table
        .columns()
        .iter()
        .map(|c| format!("{c}::text AS {c}"))
        .collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY id",
        columns.join(", "),
        table.name()
    );
    let result = client.query(&sql, &[]).await.unwrap();
    let Some(first) = result.first() else {
        return Vec::new();
    };
    let map = ColumnMap::new(table, first.columns().iter().map(|c| c.name()));
    result
        .iter()
        .map(|row| {
            map.build_row((0..row.len()).map(|i| row.get::<_, Option<&str>>(i)))
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn stream_and_backfill_build_identical_typed_rows() {
    let (db, client) = setup().await;
    db.execute(
        r#"INSERT INTO accounts (name, feature_flags, created_at, updated_at)
               VALUES ('Acme', 8796093022208, now(), now());
           INSERT INTO integrations_hooks (account_id, app_id, status, hook_type, settings, created_at, updated_at)
               VALUES (1, 'glpi', 1, 0, '{"api_url": "http://glpi/apirest.php", "entity_id": 0}', now(), now());
           INSERT INTO contacts (account_id, name, email, additional_attributes, created_at, updated_at)
               VALUES (1, 'Zoë «quoted» O''Brien', 'zoe@example.com', '{"external": {"glpi_user_id": 12}}', now(), now());
           INSERT INTO conversations (account_id, inbox_id, contact_id, priority, created_at, updated_at)
               VALUES (1, 1, 1, 2, '2026-01-02 03:04:05.678901', now());
           INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content,
                                 private, content_attributes, sender_type, sender_id, created_at, updated_at)
               VALUES (1, 1, 1, 1, E'line1\nline2 \\ tab\t', true, '{ "b" : 1,  "a": [true, null] }',
                       'User', 3, now(), now());
           INSERT INTO attachments (account_id, message_id, file_type, external_url, extension, created_at, updated_at)
               VALUES (1, 1, 0, 'https://example.com/x.png', 'png', now(), now());"#,
    )
    .await;
    let streamed = rows(&drain(&db, &client).await);
    assert_eq!(streamed.len(), 6);
    assert!(streamed.iter().all(|(op, _)| *op == RowOp::Insert));
    for (_, row) in &streamed {
        let snapshot = backfill(&client, row.table()).await;
        assert_eq!(snapshot, vec![row.clone()], "{:?}", row.table());
    }
    let Row::Message(m) = &streamed[4].1 else {
        panic!("{:?}", streamed[4])
    };
    assert_eq!(m.private, Field::Value(true));
    assert_eq!(m.content, Field::Value("line1\nline2 \\ tab\t".to_owned()));
    assert_eq!(
        m.content_attributes,
        Field::Value(json!({"b": 1, "a": [true, null]}))
    );
    assert_eq!(m.processed_message_content, Field::Null);
    let Row::Conversation(c) = &streamed[3].1 else {
        panic!()
    };
    assert_eq!(
        c.created_at,
        Field::Value("2026-01-02 03:04:05.678901".to_owned())
    );
    assert_eq!(c.display_id, Field::Value(1));
    let Row::Account(a) = &streamed[0].1 else {
        panic!()
    };
    assert_eq!(a.feature_flags, Field::Value(8796093022208));
}

#[tokio::test]
async fn unchanged_toasted_jsonb_arrives_as_unchanged_and_full_identity_fills_it() {
    let (db, client) = setup().await;
    // ~9 kB of random hex: stored out of line, so an UPDATE that does not
    // touch it sends it as 'u'.
    db.execute(
        "INSERT INTO accounts (name, created_at, updated_at) VALUES ('Acme', now(), now());
         INSERT INTO conversations (account_id, inbox_id, created_at, updated_at, additional_attributes)
         SELECT 1, 1, now(), now(), jsonb_object_agg('k' || g, md5(g::text || random()::text) || md5(random()::text))
         FROM generate_series(1, 150) g;",
    )
    .await;
    drain(&db, &client).await;
    db.execute("UPDATE conversations SET status = 1, last_activity_at = now()")
        .await;
    let updates = rows(&drain(&db, &client).await);
    let [(RowOp::Update, Row::Conversation(c))] = &updates[..] else {
        panic!("{updates:?}")
    };
    assert_eq!(c.status, Field::Value(1));
    assert_eq!(c.additional_attributes, Field::Unchanged);

    db.execute(
        "ALTER TABLE conversations REPLICA IDENTITY FULL;
         UPDATE conversations SET status = 2;",
    )
    .await;
    let updates = rows(&drain(&db, &client).await);
    let [(RowOp::Update, Row::Conversation(c))] = &updates[..] else {
        panic!("{updates:?}")
    };
    let attributes = c
        .additional_attributes
        .value()
        .expect("filled from old image");
    assert_eq!(attributes.as_object().unwrap().len(), 150);
}

#[tokio::test]
async fn deletes_carry_the_key_and_truncate_names_only_our_tables() {
    let (db, client) = setup().await;
    db.execute(
        "INSERT INTO contacts (account_id, email, created_at, updated_at) VALUES (1, 'a@x', now(), now());
         INSERT INTO audit_log (note) VALUES ('not ours');",
    )
    .await;
    drain(&db, &client).await;
    // One statement per transaction (a multi-statement batch is one).
    db.execute("DELETE FROM contacts").await;
    db.execute("UPDATE audit_log SET note = 'still not ours'")
        .await;
    db.execute("TRUNCATE messages, audit_log, attachments")
        .await;
    let transactions = drain(&db, &client).await;
    assert_eq!(transactions.len(), 3, "{transactions:?}");
    let [(RowOp::Delete, Row::Contact(deleted))] = &rows(&transactions[..1])[..] else {
        panic!("{transactions:?}")
    };
    assert_eq!(deleted.id, 1);
    assert_eq!(deleted.email, Field::Null);
    // The audit_log-only transaction yields its commit LSN and nothing else.
    assert!(transactions[1].changes.is_empty());
    assert!(transactions[1].commit_lsn > transactions[0].commit_lsn);
    let [Change::Truncate { tables }] = &transactions[2].changes[..] else {
        panic!("{transactions:?}")
    };
    let mut tables = tables.clone();
    tables.sort_by_key(|t| t.name());
    assert_eq!(tables, [Table::Attachments, Table::Messages]);
}

#[tokio::test]
async fn own_writes_are_marked_by_logical_message_and_by_origin() {
    let (db, client) = setup().await;
    db.execute(
        "INSERT INTO contacts (account_id, email, created_at, updated_at) VALUES (1, 'a@x', now(), now());",
    )
    .await;
    drain(&db, &client).await;
    // Each batch is one transaction.
    db.execute(&format!(
        "SELECT pg_logical_emit_message(true, '{BRIDGE_MESSAGE_PREFIX}', 'contact 1');
         UPDATE contacts SET additional_attributes = '{{\"external\": {{\"glpi_user_id\": 5}}}}';"
    ))
    .await;
    db.execute(
        "SELECT pg_logical_emit_message(true, 'someone.else', '');
         UPDATE contacts SET name = 'Rails';",
    )
    .await;
    db.execute(&format!(
        "SELECT pg_logical_emit_message(false, '{BRIDGE_MESSAGE_PREFIX}', 'not in a transaction')"
    ))
    .await;
    db.execute(&format!(
        "SELECT pg_replication_origin_create('{BRIDGE_ORIGIN_NAME}')"
    ))
    .await;
    db.execute(&format!(
        "SELECT pg_replication_origin_session_setup('{BRIDGE_ORIGIN_NAME}');
         UPDATE contacts SET name = 'via origin';"
    ))
    .await;
    let transactions = drain(&db, &client).await;
    let marks: Vec<(bool, usize)> = transactions
        .iter()
        .map(|t| (t.from_bridge, t.changes.len()))
        .collect();
    // PostgreSQL 14 also sends the origin's creation, a transaction that
    // touches no published table, as an empty Begin/Commit pair (no changes,
    // not ours); 15 and later skip such transactions.
    let expected: &[(bool, usize)] = if shared_cluster().major_version() < 15 {
        &[(true, 1), (false, 1), (false, 0), (true, 1)]
    } else {
        &[(true, 1), (false, 1), (true, 1)]
    };
    assert_eq!(marks, expected);
}

#[tokio::test]
async fn relation_sent_again_after_alter_table_and_missing_columns_read_as_null() {
    let (db, client) = setup().await;
    db.execute(
        "INSERT INTO contacts (account_id, email, phone_number, created_at, updated_at)
             VALUES (1, 'before@x', '+1', now(), now());
         ALTER TABLE contacts ADD COLUMN nickname text, DROP COLUMN phone_number;
         INSERT INTO contacts (account_id, email, nickname, created_at, updated_at)
             VALUES (1, 'after@x', 'nick', now(), now());",
    )
    .await;
    let streamed = rows(&drain(&db, &client).await);
    let contacts: Vec<_> = streamed
        .iter()
        .map(|(_, row)| match row {
            Row::Contact(c) => (c.id, c.email.clone(), c.phone_number.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        contacts,
        [
            (
                1,
                Field::Value("before@x".into()),
                Field::Value("+1".into())
            ),
            (2, Field::Value("after@x".into()), Field::Null),
        ]
    );
}
