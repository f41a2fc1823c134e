//! The GLPI client under the emulator's faults: expired sessions, 5xx
//! bursts, 429 with Retry-After, dropped connections, lost create answers,
//! timeouts. Idempotent requests are retried; a create whose outcome is
//! unknown is never re-sent.

mod glpi_client_common;

use std::time::Duration;

use chatwoot_glpi_bridge::glpi::{GlpiError, TicketInput};
use chatwoot_glpi_bridge::glpi_emulator::Fault;
use glpi_client_common::*;
use serde_json::json;

#[tokio::test]
async fn invalidated_session_is_renewed_once_for_all_workers() {
    let emulator = emulator().await;
    let client = client(&emulator);
    client.get("User", 2).await.unwrap();
    assert_eq!(count(&emulator, "GET", "/initSession"), 1);

    emulator.inject(Fault::InvalidateSessions);
    let mut handles = Vec::new();
    for i in 0..20 {
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            client
                .create("Contact", &json!({"name": format!("After expiry {i}")}))
                .await
        }));
    }
    for h in handles {
        h.await.unwrap().expect("call recovered transparently");
    }
    assert_eq!(
        count(&emulator, "GET", "/initSession"),
        2,
        "exactly one new session"
    );
    assert_eq!(emulator.items("Contact").len(), 20);
    let refused = requests_to(&emulator, "POST", "/Contact")
        .iter()
        .filter(|r| r.status == 401)
        .count();
    assert!(refused >= 1, "the old session was really refused");
    assert_eq!(
        requests_to(&emulator, "POST", "/Contact")
            .iter()
            .filter(|r| r.status == 201)
            .count(),
        20
    );
}

#[tokio::test]
async fn server_error_bursts_are_retried() {
    let emulator = emulator().await;
    let client = client(&emulator);
    client.get("User", 2).await.unwrap();

    emulator.inject(Fault::ServerErrors {
        count: 3,
        status: 502,
    });
    let user = client
        .get("User", 2)
        .await
        .expect("GET retried past 3 × 502");
    assert_eq!(user.unwrap()["name"], json!("glpi"));
    let statuses: Vec<u16> = requests_to(&emulator, "GET", "/User/2")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 502, 502, 502, 200]);

    // 503 means "not processed": a create is retried too, and lands once.
    emulator.inject(Fault::ServerErrors {
        count: 2,
        status: 503,
    });
    let id = client
        .create("Contact", &json!({"name": "After 503"}))
        .await
        .expect("create retried past 503");
    assert_eq!(emulator.items("Contact").len(), 1);
    assert_eq!(
        emulator.item("Contact", id).unwrap()["name"],
        json!("After 503")
    );
    assert_eq!(count(&emulator, "POST", "/Contact"), 3);
}

#[tokio::test]
async fn a_create_answered_500_is_an_unknown_outcome_not_a_retry() {
    // PHP can fail after the row is inserted (notifications, plugins): a
    // 500/502/504 to a POST does not say nothing happened.
    let emulator = emulator().await;
    let client = client(&emulator);
    client.get("User", 2).await.unwrap();
    emulator.inject(Fault::ServerErrors {
        count: 1,
        status: 500,
    });
    let err = client
        .create("Contact", &json!({"name": "Maybe"}))
        .await
        .unwrap_err();
    assert!(err.is_unknown_outcome(), "{err}");
    assert_eq!(count(&emulator, "POST", "/Contact"), 1, "not re-sent");
}

#[tokio::test]
async fn retries_stop_at_max_retries_with_a_transient_error() {
    let emulator = emulator().await;
    let mut config = config(&emulator);
    config.max_retries = 2;
    let client = client_with(config);
    client.get("User", 2).await.unwrap();
    emulator.inject(Fault::ServerErrors {
        count: 10,
        status: 500,
    });
    let err = client.get("User", 2).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.status(), Some(500));
    assert_eq!(
        count(&emulator, "GET", "/User/2"),
        1 + 3,
        "1 try + 2 retries"
    );
    assert!(err.to_string().contains("GET /User/2"), "{err}");
}

#[tokio::test]
async fn too_many_requests_waits_retry_after_then_succeeds() {
    let emulator = emulator().await;
    let client = client(&emulator);
    client.get("User", 2).await.unwrap();
    emulator.inject(Fault::TooManyRequests {
        count: 1,
        retry_after_secs: 1,
    });
    let id = client
        .create("Contact", &json!({"name": "Paced"}))
        .await
        .expect("429 retried");
    assert!(emulator.item("Contact", id).is_some());
    let posts = requests_to(&emulator, "POST", "/Contact");
    assert_eq!(
        posts.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 201]
    );
    let waited = posts[1].at.duration_since(posts[0].at);
    assert!(
        waited >= Duration::from_millis(990),
        "retried after {waited:?}"
    );
}

#[tokio::test]
async fn dropped_connection_get_is_retried_post_is_unknown_outcome() {
    let emulator = emulator().await;
    let client = client(&emulator);
    client.get("User", 2).await.unwrap();

    emulator.inject(Fault::DropConnections { count: 1 });
    assert!(client.get("User", 2).await.unwrap().is_some());
    assert_eq!(count(&emulator, "GET", "/User/2"), 3);

    emulator.inject(Fault::DropConnections { count: 1 });
    let err = client
        .create("Contact", &json!({"name": "Dropped"}))
        .await
        .unwrap_err();
    assert!(err.is_unknown_outcome(), "{err}");
    assert!(!err.is_transient() && !err.is_permanent());
    assert_eq!(
        count(&emulator, "POST", "/Contact"),
        1,
        "a create is never re-sent blindly"
    );
    assert!(err.to_string().contains("POST /Contact"), "{err}");
}

#[tokio::test]
async fn lost_create_answer_is_resolved_by_looking_up() {
    let emulator = emulator().await;
    let client = client(&emulator);
    client.get("User", 2).await.unwrap();
    emulator.inject(Fault::CommitThenDrop {
        count: 1,
        itemtype: Some("Ticket".into()),
    });
    let ticket = TicketInput {
        name: "[chatwoot:conversation:42] Printer".into(),
        content: "It is broken".into(),
        status: Some(2),
        ..Default::default()
    };
    let err = client.create_ticket(&ticket).await.unwrap_err();
    assert!(err.is_unknown_outcome(), "{err}");
    assert_eq!(count(&emulator, "POST", "/Ticket"), 1);
    // The caller's resolution: the ticket exists, find it instead of re-creating.
    let found = client.find_tickets_by_name(&ticket.name).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(emulator.items("Ticket").len(), 1);
    assert_eq!(emulator.items("Ticket")[0]["id"], json!(found[0]));
}

#[tokio::test]
async fn timeouts_retry_reads_and_report_creates_as_unknown() {
    let emulator = emulator().await;
    let mut config = config(&emulator);
    config.timeout = Duration::from_millis(300);
    config.max_retries = 1;
    let client = client_with(config);
    client.get("User", 2).await.unwrap();
    emulator.inject(Fault::Latency(Duration::from_millis(800)));

    let err = client.get("User", 2).await.unwrap_err();
    assert!(matches!(err, GlpiError::Timeout { .. }), "{err}");
    assert!(err.is_transient());
    assert_eq!(count(&emulator, "GET", "/User/2"), 1 + 2);

    let err = client
        .create("Contact", &json!({"name": "Slow"}))
        .await
        .unwrap_err();
    assert!(err.is_unknown_outcome(), "{err}");
    assert_eq!(count(&emulator, "POST", "/Contact"), 1);
    emulator.clear_faults();
}
