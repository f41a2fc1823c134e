//! GLPI outages with the real bridge binary: while GLPI is down (nothing
//! listening) or failing (every request 503, then 429s), jobs wait and retry
//! with backoff, the replication side keeps storing changes and confirming
//! LSNs (the slot's `confirmed_flush_lsn` advances, so Chatwoot's WAL does not
//! pile up), and when GLPI is back everything drains exactly once and in
//! order per conversation (the workload oracle checks followup order).

mod faults_common;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chatwoot_glpi_bridge::glpi_emulator::{Emulator, EmulatorConfig, Fault};
use faults_common::process::{log_tail, BridgeConfig, BridgeProcess};
use support::workload::{self, Expected, HookSettings, Workload};

const DRAIN_BOUND: Duration = Duration::from_secs(120);

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

async fn lsn_of(client: &tokio_postgres::Client, sql: &str) -> u64 {
    // No row yet: the bridge has not created its slot yet (it just started).
    let text: Option<String> = client
        .query_opt(sql, &[])
        .await
        .expect(sql)
        .and_then(|row| row.get(0));
    let text = text.unwrap_or_else(|| "0/0".into());
    let (hi, lo) = text.split_once('/').expect("lsn");
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// Waits until the slot confirms everything written so far (GLPI still
/// down): the change log holds it, so PostgreSQL may recycle its WAL.
async fn slot_catches_up(
    client: &tokio_postgres::Client,
    slot: &str,
    bridge: &mut BridgeProcess,
    log: &std::path::Path,
) {
    let target = lsn_of(client, "SELECT pg_current_wal_lsn()::text").await;
    let sql = format!(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '{slot}'"
    );
    let start = Instant::now();
    loop {
        let confirmed = lsn_of(client, &sql).await;
        if confirmed >= target {
            return;
        }
        assert!(
            bridge.exited().is_none(),
            "bridge exited: {}",
            log_tail(log, 40)
        );
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the slot did not advance while GLPI was down: confirmed {confirmed:X} < {target:X}\n{}",
            log_tail(log, 40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for exactly-once (or fails with what is wrong).
async fn drained(
    client: &tokio_postgres::Client,
    account_id: i64,
    glpi: &Emulator,
    api_users: &[i64],
    log: &std::path::Path,
) {
    let start = Instant::now();
    loop {
        match Expected::read(client, account_id)
            .await
            .check(glpi, api_users)
        {
            Ok(checked) => {
                println!(
                    "drained in {:.1?}: {} users, {} tickets, {} followups in order, {} write-backs",
                    start.elapsed(),
                    checked.persons,
                    checked.tickets,
                    checked.followups,
                    checked.write_backs
                );
                return;
            }
            Err(problems) if start.elapsed() > DRAIN_BOUND => panic!(
                "not drained after {DRAIN_BOUND:?}:\n{}\n{}",
                problems.join("\n"),
                log_tail(log, 40)
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Nothing listens on GLPI's port for a while (GLPI down), then GLPI comes
/// back on the same address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glpi_down_then_back_on_the_same_port() {
    let db = support::shared_cluster().create_database();
    let client = db.connect().await;
    let addr = free_addr();
    let api_url = format!("http://{addr}/apirest.php");
    let account =
        workload::create_account(&client, &HookSettings::for_emulator(&api_url).json()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = BridgeConfig::new(&db.url, dir.path(), &db.name);
    let mut bridge = BridgeProcess::spawn(&config);

    // GLPI is down: Chatwoot keeps working, the bridge keeps confirming.
    let mut writer = Workload::new(&db.url, account, 42);
    for _ in 0..150 {
        writer.step().await.expect("workload");
    }
    slot_catches_up(&client, &config.slot, &mut bridge, &config.log_file).await;
    for _ in 0..50 {
        writer.step().await.expect("workload");
    }
    slot_catches_up(&client, &config.slot, &mut bridge, &config.log_file).await;

    // GLPI comes back on the same port.
    let glpi = Emulator::start_on(addr, EmulatorConfig::default())
        .await
        .expect("emulator");
    let api_users = support::workload::glpi_user_ids(&glpi);
    drained(
        &client,
        account.account_id,
        &glpi,
        &api_users,
        &config.log_file,
    )
    .await;
    bridge.stop_cleanly(Duration::from_secs(10));
}

/// GLPI answers 503 to everything for a while, then a burst of 429s, while
/// Chatwoot keeps writing; then it recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glpi_failing_5xx_then_429_then_recovering() {
    let db = support::shared_cluster().create_database();
    let client = db.connect().await;
    let glpi = Emulator::start_on(free_addr(), EmulatorConfig::default())
        .await
        .expect("emulator");
    let api_users = support::workload::glpi_user_ids(&glpi);
    let account =
        workload::create_account(&client, &HookSettings::for_emulator(&glpi.api_url()).json())
            .await;
    let dir = tempfile::tempdir().unwrap();
    let config = BridgeConfig::new(&db.url, dir.path(), &db.name);
    let mut bridge = BridgeProcess::spawn(&config);
    let mut writer = Workload::new(&db.url, account, 7);
    for _ in 0..60 {
        writer.step().await.expect("workload");
    }
    drained(
        &client,
        account.account_id,
        &glpi,
        &api_users,
        &config.log_file,
    )
    .await;

    // Failing: every request answers 503 until cleared.
    glpi.inject(Fault::ServerErrors {
        count: 1_000_000,
        status: 503,
    });
    let failing_since = glpi.requests().len();
    for _ in 0..120 {
        writer.step().await.expect("workload");
    }
    slot_catches_up(&client, &config.slot, &mut bridge, &config.log_file).await;
    let attempts = glpi.requests().len() - failing_since;
    assert!(attempts > 0, "the bridge kept trying");
    // Backoff, not a hot loop: a few requests per second at most.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let in_five_secs = glpi.requests().len() - failing_since - attempts;
    assert!(
        in_five_secs < 200,
        "{in_five_secs} requests in 5 s against a failing GLPI"
    );

    // Recovering through a burst of 429s.
    glpi.clear_faults();
    glpi.inject(Fault::TooManyRequests {
        count: 20,
        retry_after_secs: 1,
    });
    drained(
        &client,
        account.account_id,
        &glpi,
        &api_users,
        &config.log_file,
    )
    .await;
    bridge.stop_cleanly(Duration::from_secs(10));
}
