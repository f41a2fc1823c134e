//! Bad setups fail fast with a message that names the fix; the publication
//! lists exactly our tables; `setup-sql` gives a least-privilege role the
//! bridge can run as.

mod support;

use std::time::Duration;

use chatwoot_glpi_bridge::chatwoot::{RowOp, Table};
use chatwoot_glpi_bridge::replication::ReplicationError;
use chatwoot_glpi_bridge::state::mappings::GlpiPersonType;
use chatwoot_glpi_bridge::writeback::ChatwootDb;
use support::replication::{self as bridge, InProcessBridge};
use support::{chatwoot, shared_cluster, Cluster, ClusterOptions, TestDb, WalLevel};

const WAIT: Duration = Duration::from_secs(60);

/// Runs the bridge on `db` (as `url`) until it fails; returns the error.
async fn first_error(db: &TestDb, url: &str) -> ReplicationError {
    let (_dir, state_path) = bridge::state_dir();
    let url = url.to_owned();
    let run = InProcessBridge::start(db, &state_path, move |o| {
        o.database_url = url.as_str().into();
    });
    match run.join(WAIT).await {
        Err(err) => err,
        Ok(()) => panic!("the bridge accepted a bad setup"),
    }
}

#[tokio::test]
async fn wal_level_replica_is_refused_with_how_to_enable_logical() {
    let cluster = Cluster::start_new(&ClusterOptions {
        wal_level: WalLevel::Replica,
        ..ClusterOptions::default()
    });
    let db = cluster.create_database();
    let err = first_error(&db, &db.url).await;
    assert!(
        matches!(err, ReplicationError::WalLevelNotLogical { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("ALTER SYSTEM SET wal_level = logical"),
        "{text}"
    );
    assert!(
        text.contains("command: postgres -c wal_level=logical"),
        "{text}"
    );
}

#[tokio::test]
async fn role_without_replication_is_refused() {
    let db = shared_cluster().create_database();
    let role = format!("norepl_{}", db.name);
    db.execute(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'pw'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
    ))
    .await;
    let err = first_error(&db, &db.url_as(&role, "pw")).await;
    assert!(
        matches!(err, ReplicationError::RoleLacksReplication { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains(&format!("ALTER ROLE \"{role}\" WITH REPLICATION")),
        "{err}"
    );
}

#[tokio::test]
async fn missing_chatwoot_tables_are_listed() {
    let db = shared_cluster().create_empty_database();
    db.execute("CREATE TABLE accounts (id serial PRIMARY KEY, name varchar)")
        .await;
    let err = first_error(&db, &db.url).await;
    match &err {
        ReplicationError::MissingTables { tables, .. } => assert_eq!(
            tables,
            &[
                "integrations_hooks",
                "contacts",
                "conversations",
                "messages",
                "attachments"
            ]
        ),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains("integrations_hooks, contacts"),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_database_names_host_and_port_but_never_the_password() {
    let db = shared_cluster().create_database();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "postgres://postgres:pw-never-printed@127.0.0.1:{port}/{}",
        db.name
    );
    let err = first_error(&db, &url).await;
    assert!(
        matches!(err, ReplicationError::Unreachable { .. }),
        "{err:?}"
    );
    let text = format!("{err} {err:?}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(!text.contains("pw-never-printed"), "{text}");

    // A wrong password is a refused login, also without the password.
    let err = first_error(&db, &db.url_as("postgres", "wrong-pw-never-printed")).await;
    assert!(
        matches!(err, ReplicationError::LoginRefused { .. }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("wrong-pw-never-printed"));
}

#[tokio::test]
async fn slot_with_another_plugin_is_refused() {
    let db = shared_cluster().create_database();
    db.execute(&format!(
        "SELECT pg_create_logical_replication_slot('{}', 'test_decoding')",
        db.slot_name()
    ))
    .await;
    let err = first_error(&db, &db.url).await;
    assert!(
        matches!(err, ReplicationError::SlotWrongPlugin { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("test_decoding"), "{err}");
    db.execute(&format!(
        "SELECT pg_drop_replication_slot('{}')",
        db.slot_name()
    ))
    .await;
}

#[tokio::test]
async fn exhausted_replication_slots_are_reported() {
    let cluster = Cluster::start_new(&ClusterOptions {
        max_replication_slots: 1,
        ..ClusterOptions::default()
    });
    let db = cluster.create_database();
    db.execute("SELECT pg_create_logical_replication_slot('someone_else', 'pgoutput')")
        .await;
    let err = first_error(&db, &db.url).await;
    assert!(
        matches!(err, ReplicationError::SlotsExhausted { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("max_replication_slots = 1"),
        "{err}"
    );
}

#[tokio::test]
async fn publication_lacking_tables_is_refused_with_the_alter_statement() {
    let db = shared_cluster().create_database();
    db.execute("CREATE PUBLICATION chatwoot_glpi_bridge FOR TABLE accounts, contacts")
        .await;
    let err = first_error(&db, &db.url).await;
    match &err {
        ReplicationError::PublicationLacksTables { missing, .. } => assert_eq!(
            missing,
            &[
                "integrations_hooks",
                "conversations",
                "messages",
                "attachments"
            ]
        ),
        other => panic!("{other:?}"),
    }
    assert!(err
        .to_string()
        .contains("ALTER PUBLICATION \"chatwoot_glpi_bridge\" ADD TABLE integrations_hooks"));
}

#[tokio::test]
async fn publication_lists_exactly_our_tables_and_portals_members_still_updates() {
    let db = shared_cluster().create_database();
    db.execute("INSERT INTO portals_members (portal_id, user_id) VALUES (1, 1)")
        .await;
    let (_dir, state_path) = bridge::state_dir();
    let mut run = InProcessBridge::start(&db, &state_path, |_| {});
    run.wait_backfilled(WAIT).await;
    let client = db.connect().await;
    let all: bool = client
        .query_one(
            "SELECT puballtables FROM pg_publication WHERE pubname = 'chatwoot_glpi_bridge'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!all);
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'chatwoot_glpi_bridge' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut expected: Vec<String> = Table::ALL.iter().map(|t| t.name().to_owned()).collect();
    expected.sort();
    assert_eq!(tables, expected);
    // Chatwoot's table without a primary key keeps working.
    db.execute("UPDATE portals_members SET user_id = 2; DELETE FROM portals_members")
        .await;
    run.stop().await.unwrap();
}

#[tokio::test]
async fn state_file_of_another_database_is_refused() {
    let a = shared_cluster().create_database();
    let b = shared_cluster().create_database();
    let (_dir, state_path) = bridge::state_dir();
    let mut run = InProcessBridge::start(&a, &state_path, |_| {});
    run.wait_backfilled(WAIT).await;
    run.stop().await.unwrap();

    let run = InProcessBridge::start(&b, &state_path, |_| {});
    let err = run.join(WAIT).await.unwrap_err();
    assert!(
        matches!(err, ReplicationError::StateFromOtherDatabase { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&a.name) && text.contains(&b.name), "{text}");
    assert!(
        text.contains(&chatwoot_glpi_bridge::config::how_to_set(
            chatwoot_glpi_bridge::config::Key::StateFile
        )),
        "{text}"
    );
}

#[tokio::test]
async fn existing_slot_unknown_to_a_fresh_state_file_is_not_taken_over() {
    let db = shared_cluster().create_database();
    db.execute(&format!(
        "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
        db.slot_name()
    ))
    .await;
    let err = first_error(&db, &db.url).await;
    assert!(
        matches!(err, ReplicationError::SlotNotOurs { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("pg_drop_replication_slot"),
        "{err}"
    );
    db.execute(&format!(
        "SELECT pg_drop_replication_slot('{}')",
        db.slot_name()
    ))
    .await;
}

#[tokio::test]
async fn setup_sql_gives_a_least_privilege_role_the_bridge_runs_as() {
    let db = shared_cluster().create_database();
    db.execute(&chatwoot::insert_account_sql("Acme")).await;
    db.execute(&chatwoot::insert_contacts_sql(1, 10)).await;
    let role = format!("bridge_{}", db.name);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chatwoot-glpi-bridge"))
        .args([
            "setup-sql",
            "--role",
            &role,
            "--role-password",
            "role-pw",
            "--database",
            &db.name,
        ])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sql = String::from_utf8(out.stdout).unwrap();
    let statements: String = sql.lines().filter(|l| !l.starts_with("--")).collect();
    assert!(
        !statements.contains("SUPERUSER") && !statements.contains("ALL TABLES"),
        "{sql}"
    );
    db.execute(&sql).await;

    let url = db.url_as(&role, "role-pw");
    let (_dir, state_path) = bridge::state_dir();
    let url_for_run = url.clone();
    let mut run = InProcessBridge::start(&db, &state_path, move |o| {
        o.database_url = url_for_run.as_str().into();
    });
    run.wait_backfilled(WAIT).await;
    db.execute(&chatwoot::insert_contacts_sql(1, 2)).await;
    run.wait_for_keys(
        &[
            (Table::Contacts, 10, RowOp::Snapshot),
            (Table::Contacts, 12, RowOp::Insert),
        ],
        WAIT,
    )
    .await;
    run.stop().await.unwrap();

    // The write-back itself runs as this role: its marker message
    // (pg_logical_emit_message, which setup-sql says needs no grant) and the
    // additional_attributes merge.
    let chatwoot = ChatwootDb::new(url.parse().unwrap(), 1);
    let wrote = chatwoot
        .write_contact(1, GlpiPersonType::User, 4242)
        .await
        .expect("the write-back runs as the setup-sql role");
    assert!(wrote);

    // Least privilege: the write-back column only, no secrets of users.
    let as_role = support::connect(&url).await;
    as_role
        .batch_execute("UPDATE contacts SET additional_attributes = '{}' WHERE id = 1")
        .await
        .expect("the write-back column is writable");
    let denied = as_role
        .batch_execute("UPDATE contacts SET name = 'x' WHERE id = 1")
        .await;
    assert!(denied.is_err(), "other columns must not be writable");
    let denied = as_role
        .batch_execute("SELECT encrypted_password FROM users")
        .await;
    assert!(denied.is_err(), "users' secrets must not be readable");
    as_role
        .batch_execute("SELECT id, name, display_name FROM users")
        .await
        .expect("sender names are readable");
}
