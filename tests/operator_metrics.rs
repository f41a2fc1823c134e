//! The metrics endpoint after real GLPI traffic: request counts by endpoint
//! and outcome (retries included), the latency histogram, and the names the
//! README documents; then the throughput counters after a whole sync (real
//! PostgreSQL, the bridge in-process, the GLPI emulator), each value as the
//! workload makes it.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chatwoot_glpi_bridge::glpi::{ContactInput, GlpiClient, GlpiConfig, RetryPolicy};
use chatwoot_glpi_bridge::glpi_emulator::{Emulator, EmulatorConfig, Fault};
use chatwoot_glpi_bridge::observability::{GlpiOutcome, Metrics, MetricsServer};
use chatwoot_glpi_bridge::secret::Secret;

#[tokio::test]
async fn glpi_requests_are_counted_by_endpoint_and_outcome_and_served() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let mut config = GlpiConfig::new(emulator.api_url(), Secret::new("emulator-user-token"));
    config.app_token = Some(Secret::new("emulator-app-token"));
    config.metrics = Some(metrics.clone());
    let client = GlpiClient::with_retry_policy(
        config,
        RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_retry_after: Duration::from_millis(5),
        },
    )
    .unwrap();

    let contact = ContactInput {
        name: Some("Lovelace".into()),
        firstname: Some("Ada".into()),
        email: Some("ada@example.com".into()),
        ..ContactInput::default()
    };
    client.create_contact(&contact).await.unwrap();
    // Two 503s, then success: three attempts of one create.
    emulator.inject(Fault::ServerErrors {
        count: 2,
        status: 503,
    });
    client
        .create_contact(&contact)
        .await
        .unwrap_or_else(|e| panic!("a create after 5xx must still succeed or be unknown: {e}"));
    client.kill_session().await.unwrap();

    assert_eq!(
        metrics.glpi_requests("GET /initSession", GlpiOutcome::Ok),
        1
    );
    assert_eq!(metrics.glpi_requests("POST /Contact", GlpiOutcome::Ok), 2);
    assert_eq!(
        metrics.glpi_requests("POST /Contact", GlpiOutcome::ServerError),
        2
    );
    assert_eq!(
        metrics.glpi_requests("GET /killSession", GlpiOutcome::Ok),
        1
    );

    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), metrics.clone())
        .await
        .unwrap();
    let text = reqwest::get(format!("http://{}/metrics", server.local_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "chatwoot_glpi_bridge_glpi_requests_total{endpoint=\"POST /Contact\",outcome=\"ok\"} 2",
        "chatwoot_glpi_bridge_glpi_requests_total{endpoint=\"POST /Contact\",outcome=\"server_error\"} 2",
        "chatwoot_glpi_bridge_glpi_request_duration_seconds_count{endpoint=\"POST /Contact\"} 4",
        "chatwoot_glpi_bridge_glpi_request_duration_seconds_bucket{endpoint=\"POST /Contact\",le=\"+Inf\"} 4",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    for name in [
        "slot_lag_bytes",
        "confirmed_lsn",
        "outbox_depth",
        "oldest_pending_age_seconds",
        "parked_jobs",
        "state_file_bytes",
        "backfill_complete",
        "backfill_rows_copied",
        "replication_connected",
    ] {
        assert!(
            text.contains(&format!("# TYPE chatwoot_glpi_bridge_{name} ")),
            "{name} missing"
        );
    }
    server.shutdown().await;
}

/// `/metrics` as served.
async fn scrape(metrics: &Arc<Metrics>) -> String {
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), metrics.clone())
        .await
        .unwrap();
    let text = reqwest::get(format!("http://{}/metrics", server.local_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    server.shutdown().await;
    text
}

/// Every sample of the scrape: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse::<f64>().ok()? as u64)))
        .collect()
}

/// How much each sample grew between two scrapes.
fn growth(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .collect()
}

fn sample_key(name: &str, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("chatwoot_glpi_bridge_{name}{{{}}}", labels.join(","))
}

/// A contact, a conversation of three messages (one followup's answer lost
/// once), an unidentifiable contact, a Chatwoot update GLPI does not show,
/// a hook edited to an entity GLPI refuses tickets in and a new
/// conversation's ticket then parked: every counter grows by what this
/// workload implies.
#[tokio::test]
async fn a_sync_is_counted_from_the_slot_to_the_write_back() {
    use support::bridge::{BridgeEnv, BridgeSetup};

    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let before = samples(&scrape(&env.metrics).await);

    // The first followup's answer is lost after GLPI created it.
    env.emulator.inject(Fault::CommitThenDrop {
        count: 1,
        itemtype: Some("ITILFollowup".into()),
    });
    let ada = env
        .new_contact("Ada Lovelace", Some("ada@example.com"), None)
        .await;
    let conversation = env.new_conversation(ada).await;
    env.new_message(conversation, true, "My printer is broken")
        .await;
    env.new_message(conversation, true, "It says PC LOAD LETTER")
        .await;
    env.new_message(conversation, false, "We are on it").await;
    env.new_contact("", None, None).await;
    env.settle().await;
    // Chatwoot touching a synced contact: nothing GLPI shows changes.
    env.sql(&format!(
        "UPDATE contacts SET updated_at = now() WHERE id = {ada}"
    ))
    .await;
    env.settle().await;
    // An entity the GLPI user may not write: the next ticket is parked.
    env.sql(&format!(
        "UPDATE integrations_hooks SET settings = settings || '{{\"entity_id\": \"5\"}}',
                updated_at = now() WHERE id = {}",
        env.hook_id
    ))
    .await;
    let refused = env.new_conversation(ada).await;
    env.new_message(refused, true, "Also the scanner").await;
    env.settle().await;
    // Three settles, three probe contacts in account 2 (its own GLPI).
    let probes = 3;

    // Job outcomes are counted just after they are committed.
    for _ in 0..100 {
        if env
            .metrics
            .counter("jobs_parked_total", &["create_ticket", "1"])
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = scrape(&env.metrics).await;
    let grown = growth(&before, &samples(&text));
    let got = |name: &str, labels: &[(&str, &str)]| {
        grown.get(&sample_key(name, labels)).copied().unwrap_or(0)
    };
    let expect = |name: &str, labels: &[(&str, &str)], value: u64| {
        assert_eq!(got(name, labels), value, "{name}{labels:?} in\n{text}");
    };

    let received = |table, op| got("changes_received_total", &[("table", table), ("op", op)]);
    expect(
        "changes_received_total",
        &[("table", "contacts"), ("op", "insert")],
        2 + probes,
    );
    expect(
        "changes_received_total",
        &[("table", "conversations"), ("op", "insert")],
        2,
    );
    expect(
        "changes_received_total",
        &[("table", "messages"), ("op", "insert")],
        4,
    );
    expect(
        "changes_received_total",
        &[("table", "integrations_hooks"), ("op", "update")],
        1,
    );
    // Every change received was planned, table by table.
    for table in [
        "contacts",
        "conversations",
        "messages",
        "integrations_hooks",
        "accounts",
        "attachments",
    ] {
        let all: u64 = ["insert", "update", "delete"]
            .iter()
            .map(|op| received(table, op))
            .sum();
        expect("changes_planned_total", &[("table", table)], all);
    }

    // The updates received are the bridge's own write-backs, but for the one
    // Chatwoot update: they plan nothing.
    let updates = received("contacts", "update") + received("conversations", "update");
    // At least: the touch, Ada's and the probes' ids, one ticket id.
    let at_least = 3 + probes;
    assert!(updates >= at_least, "write-backs came back: {updates}");
    expect(
        "changes_skipped_total",
        &[("reason", "own_write_back")],
        updates - 1,
    );
    // The updated_at touch and the conversations before their first message.
    expect("changes_skipped_total", &[("reason", "no_glpi_change")], 3);
    expect(
        "changes_skipped_total",
        &[("reason", "contact_not_identifiable")],
        1,
    );
    expect("changes_skipped_total", &[("reason", "settings")], 1);
    expect(
        "changes_skipped_total",
        &[("reason", "account_not_syncing")],
        0,
    );

    expect("jobs_enqueued_total", &[("kind", "create_ticket")], 2);
    expect("jobs_enqueued_total", &[("kind", "create_followup")], 2);
    expect(
        "jobs_enqueued_total",
        &[("kind", "sync_contact")],
        1 + probes,
    );
    let done = |kind, account| {
        got(
            "jobs_completed_total",
            &[("kind", kind), ("account", account)],
        )
    };
    assert_eq!(done("create_ticket", "1"), 1, "{text}");
    assert_eq!(done("create_followup", "1"), 2, "{text}");
    assert_eq!(done("sync_contact", "1"), 1, "{text}");
    assert_eq!(done("sync_contact", "2"), probes, "{text}");
    expect(
        "jobs_retried_total",
        &[
            ("kind", "create_followup"),
            ("account", "1"),
            ("reason", "unknown_outcome"),
        ],
        1,
    );
    expect(
        "jobs_parked_total",
        &[("kind", "create_ticket"), ("account", "1")],
        1,
    );
    // Ada and the probes got their GLPI user id written back.
    expect(
        "write_backs_total",
        &[("table", "contacts"), ("outcome", "written")],
        1 + probes,
    );
    assert!(
        got(
            "write_backs_total",
            &[("table", "conversations"), ("outcome", "written")]
        ) >= 1,
        "{text}"
    );
    // Every family served is documented in the README's metrics table.
    let readme = include_str!("../README.md");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE chatwoot_glpi_bridge_") {
            let name = rest.split(' ').next().unwrap();
            assert!(
                readme.contains(&format!("| `{name}")),
                "{name} is not in the README's metrics table"
            );
        }
    }
    // The lost answer was resolved by lookup: no second followup.
    assert_eq!(env.emulator.items("ITILFollowup").len(), 2);
    for name in [
        "changes_received_total",
        "changes_planned_total",
        "changes_skipped_total",
        "jobs_enqueued_total",
        "jobs_completed_total",
        "jobs_retried_total",
        "jobs_parked_total",
        "write_backs_total",
    ] {
        assert!(
            text.contains(&format!("# TYPE chatwoot_glpi_bridge_{name} counter\n")),
            "{name} missing"
        );
        assert!(
            text.contains(&format!("# HELP chatwoot_glpi_bridge_{name} ")),
            "{name} has no help"
        );
    }
    env.stop().await;
}
