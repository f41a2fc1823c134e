//! Database faults with the real binary: connections terminated
//! (`pg_terminate_backend` on the walsender and every other bridge
//! connection) mid-backfill, mid-stream and mid-write-back, and PostgreSQL
//! restarted: the bridge reconnects and nothing is lost or duplicated. The
//! slot invalidated by `max_slot_wal_keep_size` while the bridge was stopped
//! is reported once, clearly, with the way out, and the process exits
//! non-zero instead of retrying forever; one invalidated by PostgreSQL 18's
//! `idle_replication_slot_timeout` names that setting instead.

mod faults_common;
mod support;

use std::time::Duration;

use faults_common::process::{fails_with, log_tail, BridgeConfig, BridgeProcess};
use support::{Cluster, ClusterOptions};

/// The bridge's slot as PostgreSQL reports it: (wal_status, confirmed_flush_lsn).
async fn slot_row(
    client: &tokio_postgres::Client,
    slot: &str,
) -> Option<(Option<String>, Option<String>)> {
    client
        .query_opt(
            "SELECT wal_status, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .expect("pg_replication_slots")
        .map(|r| (r.get(0), r.get(1)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidated_slot_is_reported_with_the_way_out_and_exits_once() {
    let cluster = Cluster::start_new(&ClusterOptions {
        extra_conf: vec![
            "max_slot_wal_keep_size = 1MB".into(),
            "wal_keep_size = 0".into(),
            "min_wal_size = 32MB".into(),
            "max_wal_size = 64MB".into(),
        ],
        ..ClusterOptions::default()
    });
    let db = cluster.create_database();
    let client = db.connect().await;
    client
        .batch_execute(&support::chatwoot::insert_account_sql("Acme"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = BridgeConfig::new(&db.url, dir.path(), &db.name);
    stream_then_stop(&client, &config).await;

    // While it is stopped, Chatwoot writes far more WAL than the slot may
    // keep; a checkpoint then invalidates the slot.
    for _ in 0..4 {
        client
            .batch_execute(
                "INSERT INTO contacts (account_id, name, email, created_at, updated_at) \
                 SELECT 1, repeat('x', 2000), 'bulk' || g || '-' || md5(random()::text) || '@example.com', now(), now() \
                 FROM generate_series(1, 2000) g; \
                 SELECT pg_switch_wal(); CHECKPOINT;",
            )
            .await
            .unwrap();
    }
    let (wal_status, _) = slot_row(&client, &config.slot)
        .await
        .expect("slot still listed");
    assert_eq!(
        wal_status.as_deref(),
        Some("lost"),
        "the slot must be invalidated for this test"
    );

    // Restart: one clear report with the way out, then a non-zero exit (no
    // crash loop inside the process).
    let log = fails_with(&config, &[]);
    let lower = log.to_lowercase();
    for needle in [
        "invalidated",
        &config.slot,
        "pg_drop_replication_slot",
        "backfill",
        &config.state_file.display().to_string(),
    ] {
        assert!(
            lower.contains(&needle.to_lowercase()),
            "the report names {needle:?}; log:\n{log}"
        );
    }
    assert!(
        log.matches("invalidated").count() <= 3,
        "reported once, not in a retry loop; log:\n{log}"
    );

    // The way out works: drop the slot, move the state file away, start.
    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&config.slot])
        .await
        .unwrap();
    std::fs::rename(&config.state_file, dir.path().join("old-state.sqlite3")).unwrap();
    let mut bridge = BridgeProcess::spawn(&config);
    support::wait_until(Duration::from_secs(60), "a new slot, confirmed", || async {
        matches!(slot_row(&client, &config.slot).await, Some((Some(s), Some(_))) if s != "lost")
    })
    .await;
    assert!(
        bridge.exited().is_none(),
        "{}",
        log_tail(&config.log_file, 30)
    );
    drop(bridge);
    drop(cluster);
}

/// A first start (slot created, backfill done, streaming), then a clean stop.
async fn stream_then_stop(client: &tokio_postgres::Client, config: &BridgeConfig) {
    let bridge = BridgeProcess::spawn(config);
    support::wait_until(
        Duration::from_secs(60),
        "the slot to be created and confirmed",
        || async { matches!(slot_row(client, &config.slot).await, Some((_, Some(_)))) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _) = bridge.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "clean stop: {status:?}\n{}",
        log_tail(&config.log_file, 40)
    );
}

/// PostgreSQL 18 invalidates a slot nobody read for longer than
/// `idle_replication_slot_timeout` (at the next checkpoint). The report
/// must name that setting, not `max_slot_wal_keep_size`, or the operator
/// raises the wrong one and loses the next slot too. Older servers lack the
/// setting: the test says so and returns (`.ci/pg-matrix` runs it on 18).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slot_invalidated_for_idleness_names_idle_replication_slot_timeout() {
    let cluster = Cluster::start_new(&ClusterOptions::default());
    let major = cluster.major_version();
    if major < 18 {
        eprintln!("skipped: idle_replication_slot_timeout needs PostgreSQL 18, this is {major}");
        return;
    }
    let db = cluster.create_database();
    let client = db.connect().await;
    client
        .batch_execute(&support::chatwoot::insert_account_sql("Acme"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = BridgeConfig::new(&db.url, dir.path(), &db.name);
    stream_then_stop(&client, &config).await;

    // Stopped for longer than the timeout; a checkpoint invalidates the slot.
    let admin = support::connect(&cluster.superuser_url("postgres")).await;
    admin
        .batch_execute("ALTER SYSTEM SET idle_replication_slot_timeout = '1s'")
        .await
        .unwrap();
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    admin.batch_execute("CHECKPOINT").await.unwrap();
    let reason: Option<String> = client
        .query_one(
            "SELECT invalidation_reason FROM pg_replication_slots WHERE slot_name = $1",
            &[&config.slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        reason.as_deref(),
        Some("idle_timeout"),
        "the slot must be invalidated for idleness for this test"
    );

    let log = fails_with(&config, &[]);
    for needle in [
        "invalidated",
        "idle_replication_slot_timeout",
        "pg_drop_replication_slot",
        config.slot.as_str(),
    ] {
        assert!(
            log.contains(needle),
            "the report names {needle:?}; log:\n{log}"
        );
    }
    assert!(
        !log.contains("max_slot_wal_keep_size"),
        "the report blames the wrong setting; log:\n{log}"
    );
    // `check` says the same.
    let (ok, check) = config.command(&["check"]);
    assert!(!ok, "{check}");
    let slot_line = check
        .lines()
        .skip_while(|l| !l.contains(&config.slot))
        .take(3)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        slot_line.contains("invalidated") && slot_line.contains("idle_replication_slot_timeout"),
        "{check}"
    );
    assert!(!check.contains("max_slot_wal_keep_size"), "{check}");
    // And `status`.
    let (_, status) = config.command(&["status"]);
    assert!(
        status.contains("the slot is invalidated")
            && status.contains("idle_replication_slot_timeout")
            && !status.contains("max_slot_wal_keep_size"),
        "{status}"
    );
    drop(cluster);
}

/// Every backend of `db` except ours: the walsender, the bridge's query and
/// write-back connections (and the workload's, which reconnects).
async fn terminate_all(client: &tokio_postgres::Client, db: &str) -> i64 {
    client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(0)
}

/// Connections cut again and again mid-backfill (a large history), mid-stream
/// and mid-write-back, then PostgreSQL restarted mid-stream: the bridge
/// reconnects and GLPI ends exactly once, in order, with every write-back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_and_restarts_mid_backfill_stream_and_write_back() {
    use support::workload::{self, Expected, HookSettings, Workload};
    let cluster = Cluster::start_new(&ClusterOptions::default());
    let db = cluster.create_database();
    let glpi = chatwoot_glpi_bridge::glpi_emulator::Emulator::start(Default::default())
        .await
        .expect("emulator");
    let api_users = support::workload::glpi_user_ids(&glpi);
    let admin = cluster.superuser_url("postgres");
    let control = support::connect(&admin).await;
    let account = workload::create_account(
        &db.connect().await,
        &HookSettings::for_emulator(&glpi.api_url()).json(),
    )
    .await;
    let mut writer = Workload::new(&db.url, account, 99);
    for _ in 0..400 {
        writer.step().await.expect("history");
    }
    let dir = tempfile::tempdir().unwrap();
    let config = BridgeConfig::new(&db.url, dir.path(), &db.name);
    let mut bridge = BridgeProcess::spawn(&config);

    // Mid-backfill and mid-stream: cut every connection every ~700 ms while
    // Chatwoot keeps writing.
    let mut cuts = 0;
    for round in 0..12 {
        for _ in 0..15 {
            let _ = writer.step().await;
        }
        tokio::time::sleep(Duration::from_millis(300 + 100 * (round % 4))).await;
        cuts += terminate_all(&control, &db.name).await;
        assert!(
            bridge.exited().is_none(),
            "bridge died on a cut connection:\n{}",
            log_tail(&config.log_file, 40)
        );
    }
    // Mid-stream: PostgreSQL restarted under it.
    cluster.restart();
    for _ in 0..40 {
        let _ = writer.step().await;
    }
    println!("{cuts} backends terminated over 12 rounds, plus one PostgreSQL restart");

    let client = db.connect().await;
    let start = std::time::Instant::now();
    let checked = loop {
        match Expected::read(&client, account.account_id)
            .await
            .check(&glpi, &api_users)
        {
            Ok(c) => break c,
            Err(p) if start.elapsed() > Duration::from_secs(120) => {
                panic!("{}\n{}", p.join("\n"), log_tail(&config.log_file, 40))
            }
            Err(_) => {
                assert!(
                    bridge.exited().is_none(),
                    "{}",
                    log_tail(&config.log_file, 40)
                );
                tokio::time::sleep(Duration::from_millis(500)).await
            }
        }
    };
    println!(
        "exactly once after the cuts: {} users, {} tickets, {} followups, {} write-backs",
        checked.persons, checked.tickets, checked.followups, checked.write_backs
    );
    bridge.stop_cleanly(Duration::from_secs(15));
}
