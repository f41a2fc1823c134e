//! Contract: `/search/:itemtype` and `searchText` lists (reference §3 "Read
//! many", §4, appendix "Users and search").

mod glpi_emulator_common;

use glpi_emulator_common::*;
use reqwest::Method;
use serde_json::json;

fn email_search(value: &str) -> String {
    format!(
        "/search/User?criteria[0][field]=5&criteria[0][searchtype]=contains&criteria[0][value]={}&forcedisplay[0]=2",
        urlencode(value)
    )
}

fn urlencode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[tokio::test]
async fn user_search_by_email() {
    let glpi = Glpi::start().await;
    let id = glpi
        .create(
            "User",
            json!({"name": "jdoe", "_useremails": ["john.doe@example.com"]}),
        )
        .await;
    assert_eq!(id, 7);
    let response = glpi
        .req(Method::GET, &email_search("^john.doe@example.com$"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-range"], "0-0/1");
    assert_eq!(response.headers()["accept-range"], "User 1000");
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"totalcount": 1, "count": 1, "sort": [1], "order": ["ASC"],
               "data": [{"1": "jdoe", "2": 7, "5": "john.doe@example.com"}],
               "content-range": "0-0/1"})
    );
    // case-insensitive
    let (_, body) = glpi.get(&email_search("^JOHN.DOE@example.com$")).await;
    assert_eq!(body["totalcount"], 1);
}

#[tokio::test]
async fn empty_search_has_no_data_and_no_content_range() {
    let glpi = Glpi::start().await;
    let response = glpi
        .req(Method::GET, &email_search("^nobody@example.com$"))
        .send()
        .await
        .unwrap();
    assert!(!response.headers().contains_key("content-range"));
    let (status, body) = json_of(response).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"totalcount": 0, "count": 0, "sort": [1], "order": ["ASC"], "content-range": "0--1/0"})
    );
}

#[tokio::test]
async fn bad_search_field_is_an_error() {
    let glpi = Glpi::start().await;
    let (status, body) = glpi
        .get("/search/User?criteria[0][field]=9999&criteria[0][searchtype]=contains&criteria[0][value]=x")
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!([
            "ERROR",
            format!("Bad field ID in search criteria{}", doc(&glpi, "ERROR"))
        ])
    );
}

#[tokio::test]
async fn multi_valued_cells_and_joined_equals() {
    let glpi = Glpi::start().await;
    glpi.create(
        "User",
        json!({"name": "alice", "_useremails": {"-1": "alice@example.com", "-2": "alice.alt@example.com"}}),
    )
    .await;
    glpi.create(
        "User",
        json!({"name": "a_b", "_useremails": ["a_b@example.com"]}),
    )
    .await;
    let (_, body) = glpi.get(&email_search("^alice.alt@example.com$")).await;
    assert_eq!(body["totalcount"], 1, "a non-default email matches too");
    assert_eq!(
        body["data"][0]["5"],
        json!(["alice@example.com", "alice.alt@example.com"])
    );
    // equals on a joined field compares the joined row id: no text match
    let (_, body) = glpi
        .get("/search/User?criteria[0][field]=5&criteria[0][searchtype]=equals&criteria[0][value]=alice%40example.com")
        .await;
    assert_eq!(body["totalcount"], 0);
    // `_` is not a wildcard
    let (_, body) = glpi.get(&email_search("^a_b@")).await;
    assert_eq!(body["totalcount"], 1);
    let (_, body) = glpi.get(&email_search("^aXb@")).await;
    assert_eq!(body["totalcount"], 0);
    // the id only comes with forcedisplay
    let (_, body) = glpi
        .get("/search/User?criteria[0][field]=1&criteria[0][searchtype]=contains&criteria[0][value]=%5Ealice%24")
        .await;
    assert_eq!(body["data"][0]["1"], "alice");
    assert!(body["data"][0].get("2").is_none());
    // equals on an own column is exact and case-insensitive
    let (_, body) = glpi
        .get("/search/User?criteria[0][field]=1&criteria[0][searchtype]=equals&criteria[0][value]=ALICE&forcedisplay[0]=2")
        .await;
    assert_eq!(body["data"][0]["2"], 7);
}

#[tokio::test]
async fn ticket_search_paging_sorting_and_links() {
    let glpi = Glpi::start().await;
    for i in 0..5 {
        glpi.create(
            "Ticket",
            json!({"name": format!("t{i}"), "status": if i % 2 == 0 { 2 } else { 4 }}),
        )
        .await;
    }
    let response = glpi
        .req(Method::GET, "/search/Ticket?criteria[0][field]=12&criteria[0][searchtype]=equals&criteria[0][value]=2&range=0-1&sort=1&order=DESC&forcedisplay[0]=12")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(response.headers()["content-range"], "0-1/3");
    let (_, body) = json_of(response).await;
    assert_eq!(body["totalcount"], 3);
    assert_eq!(body["count"], 2);
    assert_eq!(body["sort"], json!([1]));
    assert_eq!(body["order"], json!(["DESC"]));
    assert_eq!(body["data"][0], json!({"1": "t4", "2": 5, "12": 2}));
    // OR and AND NOT links
    let (_, body) = glpi
        .get("/search/Ticket?criteria[0][field]=1&criteria[0][searchtype]=contains&criteria[0][value]=%5Et0%24&criteria[1][link]=OR&criteria[1][field]=1&criteria[1][searchtype]=contains&criteria[1][value]=%5Et1%24&range=0-9")
        .await;
    assert_eq!(body["totalcount"], 2);
    let (_, body) = glpi
        .get("/search/Ticket?criteria[0][field]=12&criteria[0][searchtype]=equals&criteria[0][value]=2&criteria[1][link]=AND%20NOT&criteria[1][field]=1&criteria[1][searchtype]=contains&criteria[1][value]=t0&range=0-9")
        .await;
    assert_eq!(body["totalcount"], 2);
    let (status, body) = glpi.get("/search/Ticket?range=9-10").await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR_RANGE_EXCEED_TOTAL");
    let (status, body) = glpi
        .get("/search/Ticket?criteria[0][field]=1&criteria[0][searchtype]=contains")
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body[1],
        format!("Malformed search criteria{}", doc(&glpi, "ERROR"))
    );
    // externalid (87) exists on GLPI 11 only
    let (status, _) = glpi
        .get("/search/Ticket?criteria[0][field]=87&criteria[0][searchtype]=contains&criteria[0][value]=x")
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn externalid_search_on_glpi_11() {
    let glpi = Glpi::start_with(chatwoot_glpi_bridge::glpi_emulator::EmulatorConfig {
        version: chatwoot_glpi_bridge::glpi_emulator::GlpiVersion::V11,
        ..Default::default()
    })
    .await;
    glpi.create(
        "Ticket",
        json!({"name": "a", "externalid": "chatwoot:1:42"}),
    )
    .await;
    glpi.create(
        "Ticket",
        json!({"name": "b", "externalid": "chatwoot:1:420"}),
    )
    .await;
    let (_, body) = glpi
        .get("/search/Ticket?criteria[0][field]=87&criteria[0][searchtype]=contains&criteria[0][value]=%5Echatwoot:1:42%24&forcedisplay[0]=87")
        .await;
    assert_eq!(body["totalcount"], 1);
    assert_eq!(
        body["data"][0],
        json!({"1": "a", "2": 1, "87": "chatwoot:1:42"})
    );
}

#[tokio::test]
async fn followup_and_contact_search() {
    let glpi = Glpi::start().await;
    let t = glpi.create("Ticket", json!({"name": "x"})).await;
    glpi.create(
        "ITILFollowup",
        json!({"itemtype": "Ticket", "items_id": t, "content": "[cw:msg:9] hello"}),
    )
    .await;
    let (_, body) = glpi
        .get("/search/ITILFollowup?criteria[0][field]=1&criteria[0][searchtype]=contains&criteria[0][value]=%5Bcw:msg:9%5D")
        .await;
    assert_eq!(body["totalcount"], 1);
    glpi.create(
        "Contact",
        json!({"name": "Doe", "email": "doe@example.com"}),
    )
    .await;
    let (_, body) = glpi
        .get("/search/Contact?criteria[0][field]=6&criteria[0][searchtype]=contains&criteria[0][value]=%5Edoe@example.com%24&forcedisplay[0]=2")
        .await;
    assert_eq!(body["data"][0]["2"], 1);
    assert_eq!(body["data"][0]["6"], "doe@example.com");
}
