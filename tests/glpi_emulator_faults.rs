//! Contract: recording and injected faults (latency that overlaps, server
//! errors, 429, invalidated sessions, dropped connections, commit-then-drop).

mod glpi_emulator_common;

use std::time::{Duration, Instant};

use chatwoot_glpi_bridge::glpi_emulator::Fault;
use glpi_emulator_common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn every_request_is_recorded_in_arrival_order() {
    let glpi = Glpi::start().await;
    glpi.emulator.clear_requests();
    glpi.create("Contact", json!({"name": "Doe"})).await;
    let (status, _) = glpi.get("/Contact/999?expand_dropdowns=true").await;
    assert_eq!(status, 404);
    let requests = glpi.emulator.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/Contact/");
    assert_eq!(requests[0].status, 201);
    assert_eq!(requests[0].body, Some(json!({"input": {"name": "Doe"}})));
    assert!(requests[0]
        .headers
        .iter()
        .any(|(k, v)| k == "session-token" && *v == glpi.session));
    assert_eq!(requests[1].path, "/Contact/999");
    assert_eq!(requests[1].query, "expand_dropdowns=true");
    assert_eq!(requests[1].status, 404);
    assert!(requests[0].at <= requests[1].at);
}

#[tokio::test]
async fn latency_does_not_serialise_requests() {
    let glpi = Glpi::start().await;
    glpi.emulator.inject(Fault::Latency(Duration::from_secs(1)));
    let started = Instant::now();
    let calls = (0..6).map(|_| glpi.get("/getActiveEntities"));
    let results = futures_util::future::join_all(calls).await;
    assert!(results.iter().all(|(s, _)| *s == 200));
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(1));
    // serialised, six requests would take at least 6 s
    assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
    assert!(
        glpi.emulator.max_in_flight() >= 4,
        "max {}",
        glpi.emulator.max_in_flight()
    );
    glpi.emulator.clear_faults();
    let started = Instant::now();
    glpi.get("/getActiveEntities").await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "latency was cleared"
    );
}

#[tokio::test]
async fn server_errors_and_429_apply_to_the_next_requests_only() {
    let glpi = Glpi::start().await;
    glpi.emulator.inject(Fault::ServerErrors {
        count: 2,
        status: 502,
    });
    glpi.emulator.inject(Fault::TooManyRequests {
        count: 1,
        retry_after_secs: 7,
    });
    let (status, _) = glpi
        .post("/Contact/", json!({"input": {"name": "a"}}))
        .await;
    assert_eq!(status, 502);
    let (status, _) = glpi.get("/Contact/").await;
    assert_eq!(status, 502);
    let response = glpi.req(Method::GET, "/Contact/").send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let (status, _) = glpi.get("/Contact/").await;
    assert_eq!(status, 200);
    // nothing was created by the failed POST
    assert!(glpi.emulator.items("Contact").is_empty());
    let faults: Vec<_> = glpi
        .emulator
        .requests()
        .into_iter()
        .filter_map(|r| r.fault)
        .collect();
    assert_eq!(faults, ["ServerErrors", "ServerErrors", "TooManyRequests"]);
}

#[tokio::test]
async fn invalidated_sessions_answer_401_until_a_new_login() {
    let mut glpi = Glpi::start().await;
    glpi.emulator.inject(Fault::InvalidateSessions);
    assert_eq!(glpi.emulator.active_sessions(), 0);
    let (status, body) = glpi.get("/Ticket/").await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!(["ERROR_SESSION_TOKEN_INVALID", "session_token seems invalid"])
    );
    glpi.session = glpi.login().await;
    let (status, _) = glpi.get("/Ticket/").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn dropped_connections_get_no_response_and_change_nothing() {
    let glpi = Glpi::start().await;
    glpi.emulator.inject(Fault::DropConnections { count: 1 });
    let result = glpi
        .req(Method::POST, "/Contact/")
        .json(&json!({"input": {"name": "lost"}}))
        .send()
        .await;
    assert!(
        result.is_err(),
        "expected a transport error, got {result:?}"
    );
    assert!(glpi.emulator.items("Contact").is_empty());
    let (status, _) = glpi.get("/Contact/").await;
    assert_eq!(status, 200);
    let recorded = glpi.emulator.requests();
    let dropped = recorded.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(dropped.status, 0);
    assert_eq!(dropped.fault.as_deref(), Some("DropConnections"));
}

#[tokio::test]
async fn commit_then_drop_creates_the_item_but_loses_the_response() {
    let glpi = Glpi::start().await;
    glpi.emulator.inject(Fault::CommitThenDrop {
        count: 1,
        itemtype: Some("ticket".into()),
    });
    // another type is not affected
    glpi.create("Contact", json!({"name": "kept"})).await;
    let result = glpi
        .req(Method::POST, "/Ticket/")
        .json(&json!({"input": {"name": "committed", "content": "x"}}))
        .send()
        .await;
    assert!(
        result.is_err(),
        "expected a transport error, got {result:?}"
    );
    let tickets = glpi.emulator.items("Ticket");
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0]["name"], "committed");
    // the next create answers normally
    let id = glpi.create("Ticket", json!({"name": "second"})).await;
    assert_eq!(id, 2);
}

#[tokio::test]
async fn recorded_requests_do_not_print_tokens() {
    let glpi = Glpi::start().await;
    glpi.get(&format!("/Ticket/?app_token={APP_TOKEN}&range=0-1"))
        .await;
    let printed = format!("{:?}", glpi.emulator.requests());
    assert!(!printed.contains(USER_TOKEN), "{printed}");
    assert!(!printed.contains(APP_TOKEN), "{printed}");
    assert!(!printed.contains(&glpi.session), "{printed}");
    assert!(printed.contains("range=0-1"), "{printed}");
}
