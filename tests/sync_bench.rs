//! Sync benchmark: the whole bridge (replication, planner, workers,
//! write-back) in-process against a real PostgreSQL (durable settings, not
//! the test harness's fsync=off) and the GLPI emulator answering every
//! request after 20 ms. Prints figures; asserts nothing about speed.
//!
//! 1. History: 2,000 conversations (200 contacts) with 20,000 messages exist
//!    before the bridge starts; it backfills them. Prints the time taken and
//!    GLPI requests per message.
//! 2. Steady state: 4,000 new messages (2 per conversation) arrive; prints
//!    GLPI requests per synced message (target 1.0) and followups per second
//!    against the bound `in_flight / latency` (target ≥ 0.8 of it).
//! 3. Rate limit: the same with a GLPI rate limit set well below that bound;
//!    prints the achieved request rate against the limit (target ≥ 0.95).
//!
//! An ignored test (the test harness boots the cluster; an `examples/`
//! program cannot use it), run on demand in release mode:
//!
//! `BENCH_CONVERSATIONS=2000 cargo test --release --test sync_bench -- --ignored --nocapture`

mod support;

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use chatwoot_glpi_bridge::worker::runtime::WorkerConfig;
use support::bridge::{BridgeEnv, BridgeSetup};
use support::{Cluster, ClusterOptions};

const LATENCY: Duration = Duration::from_millis(20);
const IN_FLIGHT: usize = 8;
const MESSAGES_PER_CONVERSATION: i64 = 10;
const CONVERSATIONS_PER_CONTACT: i64 = 10;

fn setup(rate_limit: Option<u32>) -> BridgeSetup {
    let mut setup = BridgeSetup::new("user");
    setup.latency = Some(LATENCY);
    setup.settle_timeout = Duration::from_secs(900);
    setup.workers = WorkerConfig {
        max_concurrent_conversations: 4 * IN_FLIGHT,
        glpi_max_in_flight: IN_FLIGHT,
        glpi_requests_per_second: rate_limit.and_then(NonZeroU32::new),
        ..WorkerConfig::default()
    };
    setup
}

/// Chatwoot rows as Rails writes them: contacts, conversations, and
/// `per_conversation` messages in each, alternating contact and agent.
fn history_sql(contacts: i64, conversations: i64, per_conversation: i64) -> String {
    format!(
        "INSERT INTO contacts (account_id, name, email, phone_number, created_at, updated_at)
           SELECT 1, 'Customer ' || g, 'customer' || g || '@example.com', '+3361000' || lpad(g::text, 4, '0'), now(), now()
             FROM generate_series(1, {contacts}) g;
         INSERT INTO users (name, display_name, email, uid, created_at, updated_at)
           VALUES ('Agent Smith', 'Agent Smith', 'agent@example.com', 'agent', now(), now());
         INSERT INTO conversations (account_id, inbox_id, contact_id, status, created_at, updated_at)
           SELECT 1, 1, c.id, 0, now(), now()
             FROM generate_series(1, {conversations}) g
             JOIN (SELECT id, row_number() OVER (ORDER BY id) AS n FROM contacts WHERE account_id = 1) c
               ON c.n = 1 + (g - 1) % {contacts};
         {}",
        messages_sql(per_conversation)
    )
}

/// `per_conversation` new messages in every conversation of account 1.
fn messages_sql(per_conversation: i64) -> String {
    format!(
        "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content, private,
                               sender_type, sender_id, created_at, updated_at)
           SELECT 1, 1, v.id, (k % 2),
                  'Message ' || k || ' of conversation ' || v.id || E'\\nwith a second line & <markup>',
                  false,
                  CASE WHEN k % 2 = 0 THEN 'Contact' ELSE 'User' END,
                  CASE WHEN k % 2 = 0 THEN v.contact_id ELSE (SELECT min(id) FROM users) END,
                  now(), now()
             FROM conversations v, generate_series(1, {per_conversation}) k
            WHERE v.account_id = 1
            ORDER BY k, v.id"
    )
}

fn non_session(env: &BridgeEnv) -> Vec<chatwoot_glpi_bridge::glpi_emulator::RecordedRequest> {
    env.glpi_requests()
}

/// Requests per second over the span of `requests`' arrivals.
fn rate(requests: &[chatwoot_glpi_bridge::glpi_emulator::RecordedRequest]) -> f64 {
    let (Some(first), Some(last)) = (requests.first(), requests.last()) else {
        return 0.0;
    };
    let span = last.at.duration_since(first.at).as_secs_f64();
    if span == 0.0 {
        return 0.0;
    }
    (requests.len() - 1) as f64 / span
}

async fn steady_state(
    env: &BridgeEnv,
    conversations: i64,
    per_conversation: i64,
) -> (f64, f64, f64) {
    env.emulator.clear_requests();
    let started = Instant::now();
    env.sql(&messages_sql(per_conversation)).await;
    env.settle().await;
    let elapsed = started.elapsed().as_secs_f64();
    let requests = non_session(env);
    let followups: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/ITILFollowup")
        .cloned()
        .collect();
    let messages = (conversations * per_conversation) as f64;
    (requests.len() as f64 / messages, rate(&followups), elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
async fn sync_benchmark() {
    let conversations: i64 = std::env::var("BENCH_CONVERSATIONS")
        .ok()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000);
    let contacts = (conversations / CONVERSATIONS_PER_CONTACT).max(1);
    let messages = conversations * MESSAGES_PER_CONVERSATION;
    let cluster = Cluster::start_new(&ClusterOptions {
        fast_unsafe: false,
        ..ClusterOptions::default()
    });
    cluster.remove_at_exit();
    let bound = IN_FLIGHT as f64 / LATENCY.as_secs_f64();
    println!(
        "sync benchmark: {conversations} conversations, {contacts} contacts, {messages} messages"
    );
    println!(
        "GLPI emulator latency {} ms, {IN_FLIGHT} requests in flight: bound {bound:.0} requests/s",
        LATENCY.as_millis()
    );

    // 1. History, backfilled on first start.
    let mut history = setup(None);
    history.seed_sql = Some(history_sql(
        contacts,
        conversations,
        MESSAGES_PER_CONVERSATION,
    ));
    let started = Instant::now();
    let env = BridgeEnv::start_on(&cluster, history).await;
    let elapsed = started.elapsed().as_secs_f64();
    let requests = non_session(&env);
    println!(
        "history: {messages} messages synced in {elapsed:.1} s ({:.0} messages/s), {} GLPI requests ({:.2} per message: contact lookups + creates, tickets, followups)",
        messages as f64 / elapsed,
        requests.len(),
        requests.len() as f64 / messages as f64
    );

    // 2. Steady state.
    let per_conversation = 2;
    let (per_message, followups_per_s, elapsed) =
        steady_state(&env, conversations, per_conversation).await;
    println!(
        "steady state: {} messages in {elapsed:.1} s; GLPI requests per synced message {per_message:.3} (target 1.0); followups/s {followups_per_s:.0} = {:.2} of the bound {bound:.0} (target >= 0.8)",
        conversations * per_conversation,
        followups_per_s / bound
    );
    env.stop().await;

    // 3. With a rate limit well below the bound.
    let limit = 100;
    let mut limited = setup(Some(limit));
    limited.seed_sql = Some(history_sql(contacts / 4 + 1, conversations / 4, 1));
    let env = BridgeEnv::start_on(&cluster, limited).await;
    env.emulator.clear_requests();
    env.sql(&messages_sql(2)).await;
    env.settle().await;
    let requests = non_session(&env);
    let achieved = rate(&requests);
    println!(
        "rate limit {limit}/s: {} requests at {achieved:.1} requests/s = {:.3} of the limit (target >= 0.95)",
        requests.len(),
        achieved / limit as f64
    );
    env.stop().await;
}
