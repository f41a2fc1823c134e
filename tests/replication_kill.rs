//! The real binary killed with SIGKILL at random moments, during the backfill
//! and during streaming, while Chatwoot keeps writing: after a final clean
//! run the change log holds every committed row exactly once.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chatwoot_glpi_bridge::chatwoot::{RowOp, Table};
use rand::Rng;
use support::replication::{self as bridge, BridgeProcess};
use support::{chatwoot, shared_cluster};

const KILLS_DURING_BACKFILL: usize = 10;
const KILLS_DURING_STREAMING: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let db = shared_cluster().create_database();
    db.execute(&chatwoot::insert_account_sql("Acme")).await;
    db.execute(&chatwoot::insert_contacts_sql(1, 500)).await;
    for contact in 1..=20 {
        db.execute(&chatwoot::insert_conversation_sql(1, contact))
            .await;
    }
    for conversation in 1..=20 {
        db.execute(&chatwoot::insert_messages_sql(1, conversation, 1500))
            .await;
    }

    // Chatwoot keeps writing small transactions the whole time.
    let writer_db = db.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_writer = stop.clone();
    let writer = tokio::spawn(async move {
        let client = writer_db.connect().await;
        let mut commits = 0u32;
        while !stop_writer.is_cancelled() {
            let conversation = 1 + commits % 20;
            let sql = if commits % 7 == 0 {
                chatwoot::insert_contacts_sql(1, 1)
            } else {
                chatwoot::insert_messages_sql(1, i64::from(conversation), 1 + commits % 4)
            };
            client.batch_execute(&sql).await.unwrap();
            commits += 1;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        commits
    });

    let (_dir, state_path) = bridge::state_dir();
    let page = ["--backfill-page-size", "20"];
    let started = Instant::now();
    let mut rng = rand::rng();
    let mut backfill_kills = 0;
    for _ in 0..KILLS_DURING_BACKFILL {
        let mut process = BridgeProcess::spawn(&db, &state_path, &page);
        // Killed once a random number of rows is stored or after a random
        // delay, whichever comes first: on a quiet machine the whole copy
        // can take less than a delay alone would pick. A threshold below
        // what the previous attempt stored kills the restart while it
        // discards that attempt.
        let threshold = rng.random_range(1..6_000u64);
        let deadline = Instant::now() + Duration::from_millis(rng.random_range(50..400));
        while Instant::now() < deadline
            && !bridge::backfill_complete(&state_path)
            && bridge::backfill_rows_done(&state_path) < threshold
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !bridge::backfill_complete(&state_path) {
            backfill_kills += 1;
        }
        process.kill9();
    }
    let mut streaming_kills = 0;
    for _ in 0..KILLS_DURING_STREAMING {
        let mut process = BridgeProcess::spawn(&db, &state_path, &page);
        support::wait_until(
            Duration::from_secs(120),
            "the backfill to complete",
            || async { bridge::backfill_complete(&state_path) },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..1000))).await;
        streaming_kills += 1;
        process.kill9();
    }
    assert!(
        backfill_kills >= 5,
        "only {backfill_kills} kills landed mid-backfill"
    );
    eprintln!(
        "{backfill_kills} kills mid-backfill, {streaming_kills} mid-stream in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // A last, clean run catches up with everything committed.
    let mut process = BridgeProcess::spawn(&db, &state_path, &page);
    stop.cancel();
    let commits = writer.await.unwrap();
    assert!(
        commits > 100,
        "the writer must overlap the kills ({commits} commits)"
    );

    let client = db.connect().await;
    let mut committed: HashMap<(Table, i64), ()> = HashMap::new();
    for table in Table::ALL {
        for id in bridge::ids(&client, table).await {
            committed.insert((table, id), ());
        }
    }
    assert!(committed.len() > 30_000);
    let deadline = Instant::now() + Duration::from_secs(120);
    let counts = loop {
        let counts = bridge::change_counts(&state_path);
        let mut per_row: HashMap<(Table, i64), usize> = HashMap::new();
        for ((table, id, op), n) in &counts {
            assert!(
                matches!(op, RowOp::Snapshot | RowOp::Insert),
                "only inserts were written, got {op:?} for {table:?} {id}"
            );
            *per_row.entry((*table, *id)).or_insert(0) += n;
        }
        if committed.keys().all(|k| per_row.contains_key(k)) {
            break per_row;
        }
        assert!(
            Instant::now() < deadline,
            "committed rows missing from the change log"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(process.terminate(), "SIGTERM must stop the bridge cleanly");

    let duplicated: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).take(5).collect();
    assert!(
        duplicated.is_empty(),
        "rows seen more than once: {duplicated:?}"
    );
    let unknown: Vec<_> = counts
        .keys()
        .filter(|k| !committed.contains_key(k))
        .take(5)
        .collect();
    assert!(
        unknown.is_empty(),
        "rows that were never committed: {unknown:?}"
    );
    assert_eq!(counts.len(), committed.len());
}
