//! The metrics endpoint after real GLPI traffic: request counts by endpoint
//! and outcome (retries included), the latency histogram, and the names the
//! README documents.

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
