//! Graceful shutdown of the real binary: SIGTERM or SIGINT while jobs are in
//! flight against a slow GLPI stops taking new work, finishes or safely
//! abandons the calls in flight, kills the GLPI session, and exits 0 within a
//! bound. A restart then finishes the work exactly once.

mod faults_common;
mod support;

use std::time::{Duration, Instant};

use chatwoot_glpi_bridge::glpi_emulator::{Emulator, EmulatorConfig, Fault};
use faults_common::process::{log_tail, BridgeConfig, BridgeProcess};
use support::workload::{self, Expected, HookSettings, Workload};

/// Generous for CI; the bridge's own drain timeout is 10 s.
const EXIT_BOUND: Duration = Duration::from_secs(15);

async fn stop_with(signal: i32) {
    let db = support::shared_cluster().create_database();
    let client = db.connect().await;
    let glpi = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let api_users = support::workload::glpi_user_ids(&glpi);
    let account =
        workload::create_account(&client, &HookSettings::for_emulator(&glpi.api_url()).json())
            .await;
    let mut writer = Workload::new(&db.url, account, u64::from(signal as u32));
    for _ in 0..150 {
        writer.step().await.expect("history");
    }
    // A slow GLPI: many calls are in flight when the signal arrives.
    glpi.inject(Fault::Latency(Duration::from_millis(400)));
    let dir = tempfile::tempdir().unwrap();
    let config = BridgeConfig::new(&db.url, dir.path(), &db.name);
    let bridge = BridgeProcess::spawn(&config);
    let start = Instant::now();
    while glpi
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count()
        < 5
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{}",
            log_tail(&config.log_file, 30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, took) = bridge.signal_and_wait(signal, EXIT_BOUND);
    assert!(
        status.is_some_and(|s| s.success()),
        "exit 0 within {EXIT_BOUND:?} after signal {signal}: {status:?} after {took:?}\n{}",
        log_tail(&config.log_file, 30)
    );
    println!("signal {signal}: exited 0 after {took:.1?}");
    // The GLPI session was ended, and nothing is left running.
    assert!(
        glpi.requests()
            .iter()
            .any(|r| r.path.starts_with("/killSession")),
        "killSession was sent"
    );
    assert_eq!(glpi.active_sessions(), 0, "no GLPI session left open");
    let after_exit = glpi.requests().len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(glpi.requests().len(), after_exit, "no request after exit");

    // A restart finishes the work, exactly once.
    glpi.clear_faults();
    let bridge = BridgeProcess::spawn(&config);
    let start = Instant::now();
    loop {
        match Expected::read(&client, account.account_id)
            .await
            .check(&glpi, &api_users)
        {
            Ok(c) => {
                println!(
                    "after restart: {} tickets, {} followups, exactly once",
                    c.tickets, c.followups
                );
                break;
            }
            Err(p) if start.elapsed() > Duration::from_secs(90) => {
                panic!("{}\n{}", p.join("\n"), log_tail(&config.log_file, 30))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    bridge.stop_cleanly(EXIT_BOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_work_exits_zero_kills_session_and_loses_nothing() {
    stop_with(libc::SIGTERM).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_mid_work_exits_zero_kills_session_and_loses_nothing() {
    stop_with(libc::SIGINT).await;
}
