//! The sidecar as `run` starts it (configuration, then the bridge, the
//! metrics endpoint and the sampler), end to end on a real cluster and the GLPI emulator: a job
//! GLPI refuses is parked and visible, `parked retry` after the fix syncs it,
//! and then `/metrics`, `/readyz` and `status` show the synced state.

mod support;

use std::time::Duration;

use chatwoot_glpi_bridge::cli::parked::{run_action, Action};
use chatwoot_glpi_bridge::cli::run::serve;
use chatwoot_glpi_bridge::cli::status::{gather, SlotReport};
use chatwoot_glpi_bridge::config::{Config, ConfigArgs, Key};
use chatwoot_glpi_bridge::glpi_emulator::{Emulator, EmulatorConfig};
use chatwoot_glpi_bridge::observability::ProgressStyle;
use chatwoot_glpi_bridge::outbox;
use chatwoot_glpi_bridge::state::State;
use support::wait_until;
use tokio_util::sync::CancellationToken;

const CRM_INTEGRATION: i64 = 1 << 43;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn scrape(port: u16, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

fn metric_line(text: &str, prefix: &str) -> Option<String> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_owned)
}

#[tokio::test]
async fn parked_job_retried_after_the_fix_then_metrics_and_status_show_the_sync() {
    let db = support::shared_cluster().create_database();
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    // Entity 5 is not writable for the API user: GLPI refuses the creates.
    db.execute(&format!(
        "INSERT INTO accounts (id, name, feature_flags, created_at, updated_at)
             VALUES (1, 'Acme', {CRM_INTEGRATION}, now(), now());
         INSERT INTO integrations_hooks (account_id, app_id, status, settings, created_at, updated_at)
             VALUES (1, 'glpi', 1, '{{\"api_url\": \"{}\", \"app_token\": \"emulator-app-token\",
                     \"user_token\": \"emulator-user-token\", \"entity_id\": \"5\"}}', now(), now());",
        emulator.api_url()
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let state_path = dir.path().join("state.sqlite3");
    let metrics_port = free_port();
    let slot = format!("run_{}", db.name);
    let args = ConfigArgs::default()
        .with_flag(Key::DatabaseUrl, &db.url)
        .with_flag(Key::StateFile, state_path.to_str().unwrap())
        .with_flag(Key::SlotName, &slot)
        .with_flag(Key::PublicationName, &slot)
        .with_flag(Key::MetricsAddr, format!("127.0.0.1:{metrics_port}"))
        .with_flag(Key::StatusIntervalSecs, "1");
    let config = Config::load_with_env(&args, &|_| None).unwrap();

    let cancel = CancellationToken::new();
    let bridge = {
        let (config, cancel) = (config.clone(), cancel.clone());
        tokio::spawn(async move { serve(&config, ProgressStyle::Silent, cancel).await })
    };

    db.execute(&format!(
        "{}; {}; {}",
        support::chatwoot::insert_contacts_sql(1, 1),
        support::chatwoot::insert_conversation_sql(1, 1),
        support::chatwoot::insert_messages_sql(1, 1, 2)
    ))
    .await;

    // The refused job is parked, with GLPI's reason.
    let path = state_path.clone();
    wait_until(Duration::from_secs(60), "a parked job", move || {
        let path = path.clone();
        async move {
            path.exists()
                && State::open(&path)
                    .map(|s| !outbox::parked(s.conn()).unwrap().is_empty())
                    .unwrap_or(false)
        }
    })
    .await;
    let mut state = State::open(&state_path).unwrap();
    let mut out = Vec::new();
    run_action(&Action::List, &mut state, &mut out).unwrap();
    let listed = String::from_utf8(out).unwrap();
    assert!(listed.contains("ERROR_GLPI_ADD"), "{listed}");
    assert!(emulator.items("Ticket").is_empty());

    // Fix the cause (a writable entity), then retry.
    db.execute(
        "UPDATE integrations_hooks SET settings = settings || '{\"entity_id\": \"0\"}', updated_at = now()",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut out = Vec::new();
    run_action(
        &Action::Retry {
            job_id: None,
            all: true,
        },
        &mut state,
        &mut out,
    )
    .unwrap();
    assert!(
        String::from_utf8(out)
            .unwrap()
            .contains("back in the queue"),
        "retry said nothing"
    );

    let url = db.url.clone();
    wait_until(
        Duration::from_secs(60),
        "the ticket id written back",
        move || {
            let url = url.clone();
            async move {
                let client = support::connect(&url).await;
                client
                    .query_one(
                        "SELECT additional_attributes #>> '{glpi,ticket_id}' FROM conversations WHERE id = 1",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get::<_, Option<String>>(0)
                    .is_some()
            }
        },
    )
    .await;
    let tickets = emulator.items("Ticket");
    assert_eq!(tickets.len(), 1, "one ticket, not one per retry");
    assert_eq!(
        emulator.items("ITILFollowup").len(),
        1,
        "the second message"
    );

    // The sampler catches up within its interval.
    wait_until(
        Duration::from_secs(20),
        "metrics to show the empty outbox",
        || async {
            let (_, text) = scrape(metrics_port, "/metrics").await;
            metric_line(&text, "chatwoot_glpi_bridge_outbox_depth ").as_deref()
                == Some("chatwoot_glpi_bridge_outbox_depth 0")
        },
    )
    .await;
    let (status, text) = scrape(metrics_port, "/metrics").await;
    assert_eq!(status, 200);
    for line in [
        "chatwoot_glpi_bridge_glpi_requests_total{endpoint=\"POST /Ticket\",outcome=\"ok\"} 1",
        "chatwoot_glpi_bridge_glpi_requests_total{endpoint=\"POST /ITILFollowup\",outcome=\"ok\"} 1",
        "chatwoot_glpi_bridge_parked_jobs 0",
        "chatwoot_glpi_bridge_backfill_complete 1",
        "chatwoot_glpi_bridge_replication_connected 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // The refused create is counted too (it got GLPI's 400 before the fix).
    let refused = "chatwoot_glpi_bridge_glpi_requests_total{endpoint=\"POST /Ticket\",outcome=\"client_error\"} 1";
    assert!(
        text.lines().any(|l| l == refused),
        "missing {refused:?} in\n{text}"
    );
    let file_bytes: u64 = metric_line(&text, "chatwoot_glpi_bridge_state_file_bytes ")
        .and_then(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
        .expect("the state file size gauge");
    assert!(file_bytes >= 16 * 1024, "{file_bytes}");
    let lsn = metric_line(&text, "chatwoot_glpi_bridge_confirmed_lsn ").unwrap();
    assert_ne!(lsn, "chatwoot_glpi_bridge_confirmed_lsn 0");
    assert_eq!(scrape(metrics_port, "/readyz").await.0, 200);
    assert_eq!(scrape(metrics_port, "/healthz").await.0, 200);

    // status on the synced state file and the live slot.
    let report = gather(&config).await.unwrap();
    assert!(
        matches!(
            report.slot,
            SlotReport::Found {
                active_pid: Some(_),
                ..
            }
        ),
        "{:?}",
        report.slot
    );
    let text = report.render();
    println!("{text}");
    assert!(
        text.contains("outbox: 0 GLPI jobs pending, 0 parked"),
        "{text}"
    );
    assert!(text.contains("Backfill: complete"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "1", "1", "1", "0", "0"]),
        "account 1: one contact, one ticket, one followup:\n{text}"
    );

    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), bridge)
        .await
        .expect("the bridge stops on cancel")
        .unwrap()
        .unwrap();
    assert_eq!(
        emulator.active_sessions(),
        0,
        "GLPI sessions killed on stop"
    );
}
