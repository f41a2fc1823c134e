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
