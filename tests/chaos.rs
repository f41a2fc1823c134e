//! The chaos test (issue 5): a live Chatwoot-like workload against a real
//! PostgreSQL cluster and the GLPI emulator, while the real bridge binary is
//! killed with SIGKILL at random moments (at least 30 times), PostgreSQL is
//! restarted (at least twice) and GLPI misbehaves (5xx bursts, 429, creates
//! committed but answered by a dropped connection, invalidated sessions,
//! dropped connections). Then the faults stop, the bridge drains, and the
//! oracle checks exactly-once: one GLPI User per identifiable contact, one
//! Ticket per conversation with a message, one followup per later message in
//! commit order, every write-back present. It prints the counts it checked.
//!
//! Seeded: `CHAOS_SEED=<n>` replays a run (the seed is printed first).
//! Bounded: about 2 minutes of chaos plus the drain (well under 4 minutes on
//! 2 cores); `CHAOS_SECS` shortens or lengthens the chaos phase.

mod faults_common;
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatwoot_glpi_bridge::glpi::{GlpiClient, GlpiConfig};
use chatwoot_glpi_bridge::glpi_emulator::{Emulator, EmulatorConfig, Fault};
use chatwoot_glpi_bridge::secret::Secret;
use faults_common::process::{log_tail, BridgeConfig, BridgeProcess};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::workload::{self, Expected, HookSettings, Workload};
use support::{Cluster, ClusterOptions};

const MIN_KILLS: u32 = 30;
const MIN_PG_RESTARTS: u32 = 2;
const DRAIN_BOUND: Duration = Duration::from_secs(90);

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
}

/// One random GLPI fault.
fn random_fault(rng: &mut StdRng) -> Fault {
    let itemtypes = ["User", "Ticket", "ITILFollowup"];
    match rng.random_range(0..6u32) {
        0 => Fault::ServerErrors {
            count: rng.random_range(2..8),
            status: [500, 502, 503][rng.random_range(0..3)],
        },
        1 => Fault::TooManyRequests {
            count: rng.random_range(1..4),
            retry_after_secs: 1,
        },
        2 | 3 => Fault::CommitThenDrop {
            count: rng.random_range(1..3),
            itemtype: Some(itemtypes[rng.random_range(0..itemtypes.len())].to_owned()),
        },
        4 => Fault::InvalidateSessions,
        _ => Fault::DropConnections {
            count: rng.random_range(1..3),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_once_under_kills_restarts_and_glpi_faults() {
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    let chaos_secs: u64 = std::env::var("CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(90);
    println!("chaos seed {seed} (replay with CHAOS_SEED={seed}), chaos phase {chaos_secs} s");
    let started = Instant::now();

    let cluster = Arc::new(Cluster::start_new(&ClusterOptions::default()));
    let db = cluster.create_database();
    let glpi = Emulator::start_on(free_addr(), EmulatorConfig::default())
        .await
        .expect("emulator");
    let api_user_ids = support::workload::glpi_user_ids(&glpi);
    let account = workload::create_account(
        &db.connect().await,
        &HookSettings::for_emulator(&glpi.api_url()).json(),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = BridgeConfig::new(&db.url, dir.path(), &db.name);

    // Some history before the first start: the backfill must carry it.
    let mut writer = Workload::new(&db.url, account, seed);
    for _ in 0..40 {
        writer.step().await.expect("history");
    }

    // The workload: a Chatwoot-like writer that keeps going through
    // PostgreSQL restarts (failed steps are simply retried later).
    let stop = Arc::new(AtomicBool::new(false));
    let steps = Arc::new(AtomicU64::new(0));
    let failed_steps = Arc::new(AtomicU64::new(0));
    let writer_task = {
        let (stop, steps, failed) = (stop.clone(), steps.clone(), failed_steps.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match writer.step().await {
                    Ok(_) => steps.fetch_add(1, Ordering::SeqCst),
                    Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        })
    };

    // The chaos: kill the bridge at random moments, restart PostgreSQL,
    // inject GLPI faults.
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let chaos = Duration::from_secs(chaos_secs);
    let chaos_start = Instant::now();
    let mut kills = 0u32;
    let mut pg_restarts = 0u32;
    let mut faults = 0u32;
    let mut next_restart = chaos / 3;
    let mut bridge = BridgeProcess::spawn(&config);
    while chaos_start.elapsed() < chaos || kills < MIN_KILLS || pg_restarts < MIN_PG_RESTARTS {
        let life = Duration::from_millis(rng.random_range(300..4_000));
        let deadline = Instant::now() + life;
        while Instant::now() < deadline {
            if rng.random_bool(0.3) {
                glpi.inject(random_fault(&mut rng));
                faults += 1;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        if let Some(status) = bridge.exited() {
            panic!(
                "the bridge exited by itself ({status}) under chaos; log:\n{}",
                log_tail(&config.log_file, 60)
            );
        }
        bridge.kill9();
        kills += 1;
        if chaos_start.elapsed() >= next_restart && pg_restarts < MIN_PG_RESTARTS {
            let c = cluster.clone();
            tokio::task::spawn_blocking(move || c.restart())
                .await
                .expect("restart PostgreSQL");
            pg_restarts += 1;
            next_restart += chaos / 3;
        }
        bridge = BridgeProcess::spawn(&config);
    }
    stop.store(true, Ordering::SeqCst);
    writer_task.await.expect("workload");
    glpi.clear_faults();
    println!(
        "chaos phase: {:.0?}, {kills} SIGKILLs, {pg_restarts} PostgreSQL restarts, {faults} GLPI faults, \
         {} workload steps ({} failed during restarts)",
        chaos_start.elapsed(),
        steps.load(Ordering::SeqCst),
        failed_steps.load(Ordering::SeqCst)
    );

    // Drain without faults, then check exactly-once.
    let client = db.connect().await;
    let drain_start = Instant::now();
    let checked = loop {
        let expected = Expected::read(&client, account.account_id).await;
        match expected.check(&glpi, &api_user_ids) {
            Ok(checked) => break checked,
            Err(problems) => {
                if let Some(status) = bridge.exited() {
                    panic!(
                        "the bridge exited ({status}) while draining; log:\n{}",
                        log_tail(&config.log_file, 80)
                    );
                }
                if drain_start.elapsed() > DRAIN_BOUND {
                    panic!(
                        "not exactly-once after {DRAIN_BOUND:?} of draining (seed {seed}):\n{}\nbridge log:\n{}",
                        problems.join("\n"),
                        log_tail(&config.log_file, 60)
                    );
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    // Nothing more arrives once it has converged (no late duplicates).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let expected = Expected::read(&client, account.account_id).await;
    let again = expected
        .check(&glpi, &api_user_ids)
        .unwrap_or_else(|p| panic!("diverged after converging: {}", p.join("\n")));
    let (status, took) = bridge.signal_and_wait(libc::SIGTERM, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM must end the bridge with 0 within 10 s, got {status:?} after {took:?}"
    );
    println!(
        "exactly-once checked (seed {seed}): {} GLPI users for {} identifiable contacts, {} tickets, \
         {} followups in commit order, {} write-backs; drained in {:.1?}; total {:.0?}",
        again.persons,
        expected.identifiable_contacts.len(),
        again.tickets,
        again.followups,
        again.write_backs,
        drain_start.elapsed(),
        started.elapsed()
    );
    assert_eq!(
        (checked.tickets, checked.followups),
        (again.tickets, again.followups)
    );
    assert!(
        again.tickets > 5 && again.followups > 20,
        "the workload was too small to mean anything"
    );

    // The oracle can fail: one duplicated followup is caught.
    let ticket = glpi.items("Ticket")[0].clone();
    let duplicate = glpi
        .items("ITILFollowup")
        .into_iter()
        .find(|f| f["items_id"] == ticket["id"])
        .expect("a followup");
    let mut config = GlpiConfig::new(glpi.api_url(), Secret::new("emulator-user-token"));
    config.app_token = Some(Secret::new("emulator-app-token"));
    GlpiClient::new(config)
        .expect("client")
        .create(
            "ITILFollowup",
            &serde_json::json!({"itemtype": "Ticket", "items_id": ticket["id"], "content": duplicate["content"]}),
        )
        .await
        .expect("duplicate a followup");
    let problems = expected
        .check(&glpi, &api_user_ids)
        .expect_err("the oracle must see a duplicated followup");
    println!(
        "oracle self-check: a duplicated followup is reported: {}",
        problems[0]
    );
    glpi.shutdown().await;
}
