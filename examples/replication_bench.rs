//! Replication throughput: 1,000,000 message inserts streamed from the slot
//! into the committed change log by the bridge's replication stage, beside
//! `pg_recvlogical` reading the same WAL range from a copy of the same slot
//! (`pg_copy_logical_replication_slot`), in alternated runs; and the
//! bridge's peak RSS (VmHWM).
//!
//! ```sh
//! cargo run --release --example replication_bench            # 1,000,000 rows, 3 rounds
//! BENCH_ROWS=200000 BENCH_ROUNDS=1 cargo run --release --example replication_bench
//! ```
//!
//! It starts its own throwaway PostgreSQL (`sandbox_postgres`), so it needs
//! the same server binaries as the tests, and `pg_recvlogical`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chatwoot_glpi_bridge::lsn::Lsn;
use chatwoot_glpi_bridge::replication::{self, ReplicationOptions};
use chatwoot_glpi_bridge::sandbox_postgres::{
    SandboxOptions, SandboxPostgres as Cluster, DEFAULT_SUPERUSER_PASSWORD,
};
use chatwoot_glpi_bridge::secret::Secret;
use chatwoot_glpi_bridge::state::{replication as repl_state, State};
use tokio_util::sync::CancellationToken;

const SLOT: &str = "bench_bridge";
const DB: &str = "bench";

/// The benchmark's database: Chatwoot's schema, one account, contact and
/// conversation.
struct BenchDb {
    name: String,
    url: String,
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    client
}

async fn create_db(cluster: &Cluster) -> BenchDb {
    let admin = connect(&cluster.superuser_url("postgres")).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {DB}"))
        .await
        .unwrap();
    let url = cluster.superuser_url(DB);
    let client = connect(&url).await;
    client
        .batch_execute(include_str!("../sql/chatwoot_schema.sql"))
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO accounts (name, created_at, updated_at) VALUES ('Bench', now(), now());
             INSERT INTO contacts (account_id, name, created_at, updated_at) VALUES (1, 'C', now(), now());
             INSERT INTO conversations (account_id, inbox_id, contact_id, created_at, updated_at)
               VALUES (1, 1, 1, now(), now());",
        )
        .await
        .unwrap();
    BenchDb {
        name: DB.to_owned(),
        url,
    }
}
const PUBLICATION: &str = "chatwoot_glpi_bridge";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn options(db: &BenchDb, state: &Path, slot: &str) -> ReplicationOptions {
    let mut o = ReplicationOptions::new(Secret::new(db.url.as_str()), state.to_path_buf());
    o.names.slot = slot.to_owned();
    o.names.publication = PUBLICATION.to_owned();
    o.max_rows_in_flight = env_usize("BENCH_ROWS_IN_FLIGHT", o.max_rows_in_flight);
    o.group_commit_rows = env_usize("BENCH_GROUP_COMMIT_ROWS", o.group_commit_rows);
    o
}

/// Runs the replication stage on `slot` until everything up to `end` is in
/// the change log; returns the elapsed time.
async fn bridge_run(db: &BenchDb, state: &Path, slot: &str, end: Lsn) -> Duration {
    // One reader connection, polled (opening the state file applies the
    // schemas, which takes the write lock).
    let reader = State::open(state).unwrap();
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(replication::run(options(db, state, slot), cancel.clone()));
    while repl_state::load(reader.conn()).unwrap().durable_lsn < end {
        assert!(
            !task.is_finished(),
            "replication ended early: {:?}",
            task.await
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    cancel.cancel();
    task.await.unwrap().unwrap();
    elapsed
}

/// `pg_recvlogical` (protocol 1, to /dev/null) on `slot` up to `end`.
fn recvlogical_run(cluster: &Cluster, db: &BenchDb, slot: &str, end: Lsn) -> Duration {
    let started = Instant::now();
    let status = Command::new("pg_recvlogical")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
        ])
        .args(["-d", &db.name, "--slot", slot, "--start", "--no-loop"])
        .args([
            "-o",
            "proto_version=1",
            "-o",
            &format!("publication_names={PUBLICATION}"),
        ])
        .args(["--endpos", &end.to_string(), "-f", "/dev/null"])
        .env("PGPASSWORD", DEFAULT_SUPERUSER_PASSWORD)
        .status()
        .expect("run pg_recvlogical (install postgresql-client)");
    assert!(status.success(), "pg_recvlogical failed");
    started.elapsed()
}

/// CPU time (user + system) this process has used.
fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let rows = env_usize("BENCH_ROWS", 1_000_000);
    let rounds = env_usize("BENCH_ROUNDS", 3).max(1);
    let per_tx = 1000;
    let cluster = Cluster::start_new(&SandboxOptions::default()).expect("start PostgreSQL");
    let db = create_db(&cluster).await;
    let client = connect(&db.url).await;

    // First start on an (almost) empty database: the bridge creates the
    // publication and its slot and backfills a few rows; then it is stopped.
    let dir = tempfile::tempdir().unwrap();
    let base_state = dir.path().join("base.sqlite3");
    let cancel = CancellationToken::new();
    let task = tokio::spawn(replication::run(
        options(&db, &base_state, SLOT),
        cancel.clone(),
    ));
    while !State::open(&base_state)
        .and_then(|s| repl_state::load(s.conn()))
        .map(|s| s.backfill.is_complete())
        .unwrap_or(false)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    task.await.unwrap().unwrap();
    let rss_before = vm_hwm_kib();

    // Copies of the slot (same confirmed position) and of the state file,
    // one per run, so every run reads the same WAL range.
    for round in 0..rounds {
        client
            .execute(
                "SELECT pg_copy_logical_replication_slot($1, $2)",
                &[&SLOT, &format!("bench_recv_{round}")],
            )
            .await
            .unwrap();
        if round > 0 {
            client
                .execute(
                    "SELECT pg_copy_logical_replication_slot($1, $2)",
                    &[&SLOT, &format!("{SLOT}_{round}")],
                )
                .await
                .unwrap();
        }
        std::fs::copy(&base_state, dir.path().join(format!("run{round}.sqlite3"))).unwrap();
    }

    eprintln!("inserting {rows} messages in transactions of {per_tx}...");
    let content = "x".repeat(150);
    for start in (0..rows).step_by(per_tx) {
        let n = per_tx.min(rows - start);
        client
            .batch_execute(&format!(
                "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content, created_at, updated_at)
                 SELECT 1, 1, 1, 0, '{content} ' || g, now(), now() FROM generate_series(1, {n}) g"
            ))
            .await
            .unwrap();
    }
    let end: Lsn = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await
        .unwrap()
        .get::<_, String>(0)
        .parse()
        .unwrap();

    let mut bridge_rates = Vec::new();
    let mut recv_rates = Vec::new();
    for round in 0..rounds {
        let recv = recvlogical_run(&cluster, &db, &format!("bench_recv_{round}"), end);
        let slot = if round == 0 {
            SLOT.to_owned()
        } else {
            format!("{SLOT}_{round}")
        };
        let state = dir.path().join(format!("run{round}.sqlite3"));
        let cpu_before = cpu_time();
        let bridge = bridge_run(&db, &state, &slot, end).await;
        let cpu = cpu_time() - cpu_before;
        let (b, r) = (
            rows as f64 / bridge.as_secs_f64(),
            rows as f64 / recv.as_secs_f64(),
        );
        println!(
            "round {round}: bridge {:>8.0} rows/s ({:.2} s, {:.2} s CPU)   pg_recvlogical {:>8.0} rows/s ({:.2} s)   ratio {:.2}",
            b,
            bridge.as_secs_f64(),
            cpu.as_secs_f64(),
            r,
            recv.as_secs_f64(),
            b / r
        );
        bridge_rates.push(b);
        recv_rates.push(r);
    }
    let (b, r) = (median(bridge_rates), median(recv_rates));
    let hwm = vm_hwm_kib();
    println!("rows: {rows}, transactions of {per_tx} rows, {rounds} alternated rounds (medians)");
    println!("bridge (slot -> committed change log): {b:.0} rows/s");
    println!("pg_recvlogical (slot -> /dev/null):    {r:.0} rows/s");
    println!("ratio: {:.2}x", b / r);
    println!(
        "bridge peak RSS (VmHWM): {:.1} MiB (before streaming: {:.1} MiB)",
        hwm as f64 / 1024.0,
        rss_before as f64 / 1024.0
    );
}
