//! `status` on a real cluster: the slot as PostgreSQL reports it (lag grows
//! with WAL the bridge has not confirmed) and the state file's queues,
//! parked jobs and per-account counts.

mod support;

use chatwoot_glpi_bridge::cli::status::{gather, SlotReport};
use chatwoot_glpi_bridge::config::{Config, ConfigArgs, Key};
use chatwoot_glpi_bridge::outbox::{self, keys, ContactSnapshot, JobKind};
use chatwoot_glpi_bridge::state::mappings::{self, GlpiPersonType};
use chatwoot_glpi_bridge::state::State;

fn config(args: ConfigArgs) -> Config {
    Config::load_with_env(&args, &|_| None).unwrap()
}

#[tokio::test]
async fn status_reports_slot_lag_queues_parked_jobs_and_accounts() {
    let db = support::shared_cluster().create_database();
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.sqlite3");
    let slot = format!("status_{}", db.name);

    // The state file of a bridge that synced a little and parked one job.
    {
        let state = State::open(&state_path).unwrap();
        let conn = state.conn();
        mappings::record_contact(conn, 11, 1, GlpiPersonType::User, 501, None).unwrap();
        mappings::record_contact(conn, 12, 1, GlpiPersonType::User, 502, None).unwrap();
        mappings::record_contact(conn, 21, 2, GlpiPersonType::Contact, 9, None).unwrap();
        mappings::adopt_ticket(conn, 100, 1, 7001, Some(1000)).unwrap();
        mappings::record_followup(conn, 1001, 100, 8001).unwrap();
        mappings::record_followup(conn, 1002, 100, 8002).unwrap();
        let contact = |id| JobKind::SyncContact {
            contact: ContactSnapshot {
                id,
                account_id: 2,
                name: None,
                email: None,
                phone_number: None,
                identifier: None,
            },
        };
        let parked = outbox::enqueue(
            conn,
            2,
            &keys::contact_queue(22),
            &keys::sync_contact(22, 1),
            &contact(22),
        )
        .unwrap()
        .id();
        outbox::enqueue(
            conn,
            2,
            &keys::contact_queue(23),
            &keys::sync_contact(23, 2),
            &contact(23),
        )
        .unwrap();
        outbox::park(
            conn,
            parked,
            "Contact not identifiable: no name, email or phone",
        )
        .unwrap();
    }

    let args = ConfigArgs::default()
        .with_flag(Key::StateFile, state_path.to_str().unwrap())
        .with_flag(Key::SlotName, &slot);

    // Without a database URL, the local half still shows.
    let local = gather(&config(args.clone())).await.unwrap();
    assert!(matches!(local.slot, SlotReport::NotChecked(_)));
    assert!(local
        .render()
        .contains("not checked (DATABASE_URL is not set)"));

    let args = args.with_flag(Key::DatabaseUrl, &db.url);
    let report = gather(&config(args.clone())).await.unwrap();
    assert_eq!(report.slot, SlotReport::Missing);
    assert!(
        report.render().contains("does not exist"),
        "{}",
        report.render()
    );

    db.execute(&format!(
        "SELECT pg_create_logical_replication_slot('{slot}', 'pgoutput')"
    ))
    .await;
    // The harness commits asynchronously: without a synchronous commit the
    // inserts may not be written yet when `status` reads
    // pg_current_wal_lsn() (the WAL writer's delay), and the lag reads 0.
    db.execute(&format!(
        "SET synchronous_commit = on; {}; {}",
        support::chatwoot::insert_account_sql("Acme"),
        support::chatwoot::insert_contacts_sql(1, 200)
    ))
    .await;

    let report = gather(&config(args)).await.unwrap();
    let SlotReport::Found {
        active_pid,
        confirmed_lsn,
        lag_bytes,
        ..
    } = &report.slot
    else {
        panic!("slot not found: {:?}", report.slot);
    };
    assert_eq!(*active_pid, None, "nobody reads the slot");
    assert!(confirmed_lsn.is_some());
    assert!(
        lag_bytes.unwrap() > 10_000,
        "200 inserted contacts are WAL the slot keeps: {lag_bytes:?}"
    );

    let text = report.render();
    println!("{text}");
    assert!(
        text.contains(&format!(
            "slot {slot}: not being read (no bridge connected); confirmed LSN {}",
            confirmed_lsn.unwrap()
        )),
        "{text}"
    );
    assert!(text.contains("KiB of WAL kept for the bridge"), "{text}");
    assert!(
        text.contains("outbox: 1 GLPI job pending (oldest waiting"),
        "{text}"
    );
    assert!(text.contains(", 1 parked"), "{text}");
    assert!(
        text.contains("Contact not identifiable: no name, email or phone"),
        "{text}"
    );
    assert!(text.contains("sync_contact for contact 22"), "{text}");
    // account 1: 2 contacts, 1 ticket, 2 followups; account 2: 1 contact, 1 pending, 1 parked.
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "2", "1", "2", "0", "0"]),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["2", "1", "0", "0", "1", "1"]),
        "{text}"
    );
    assert!(
        !text.contains(support::SUPERUSER_PASSWORD),
        "password printed:\n{text}"
    );

    let on_disk = std::fs::metadata(&state_path).unwrap().len();
    assert!(on_disk > 0);
    assert!(text.contains(" on disk, "), "{text}");
    let json = report.to_json();
    assert_eq!(
        json["state_file_bytes"], on_disk,
        "no -wal file: the bridge is not running"
    );
    assert!(json["state_file_free_bytes"].as_u64().unwrap() < on_disk);
    assert_eq!(json["slot"]["exists"], true);
    assert_eq!(json["outbox"]["parked"], 1);
    assert_eq!(json["parked_jobs"][0]["kind"], "sync_contact");
    assert_eq!(json["accounts"][0]["followups"], 2);

    db.execute(&format!("SELECT pg_drop_replication_slot('{slot}')"))
        .await;
}

/// `status` beside a running bridge: it reads the state file read-only, so a
/// writer holding the write lock does not delay it, and it creates nothing
/// (no state file where there was none, no `-wal`/`-shm` left behind).
#[tokio::test]
async fn status_reads_without_locking_or_creating_files() {
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.sqlite3");
    let args = ConfigArgs::default().with_flag(Key::StateFile, state_path.to_str().unwrap());
    let files = || {
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };

    let err = gather(&config(args.clone())).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("no state file at"), "{text}");
    assert!(
        text.contains(&chatwoot_glpi_bridge::config::how_to_set(Key::StateFile)),
        "{text}"
    );
    assert!(files().is_empty(), "status created {:?}", files());

    // A bridge in the middle of a commit: the write lock is taken.
    let mut writer = State::open(&state_path).unwrap();
    let tx = chatwoot_glpi_bridge::state::write_transaction(writer.conn_mut()).unwrap();
    tx.execute("DELETE FROM outbox_jobs", []).unwrap();
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        gather(&config(args.clone())),
    )
    .await
    .expect("status waited for the bridge's write lock")
    .unwrap();
    assert_eq!(report.outbox.total(), 0);
    tx.commit().unwrap();
    drop(writer);

    // The bridge has stopped: only the state file is left, and stays alone.
    assert_eq!(files(), ["state.sqlite3"]);
    gather(&config(args.clone())).await.unwrap();
    assert_eq!(files(), ["state.sqlite3"]);

    // A file from an older version: status says so instead of failing on
    // the first query, and leaves the upgrade to `run`.
    State::open(&state_path)
        .unwrap()
        .conn()
        .execute_batch("DROP TABLE planner_skips")
        .unwrap();
    let text = format!("{:#}", gather(&config(args)).await.unwrap_err());
    assert!(
        text.contains("lacks the tables planner_skips") && text.contains("start `run` once"),
        "{text}"
    );
}
