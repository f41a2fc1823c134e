//! Contract: sessions, token checks in GLPI's order, routing and envelopes
//! (reference §1, §2, §3 "Error body shape", appendix "Envelope and headers").

mod glpi_emulator_common;

use chatwoot_glpi_bridge::glpi_emulator::EmulatorConfig;
use glpi_emulator_common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn init_session_returns_a_26_char_token_and_checks_credentials() {
    let glpi = Glpi::start().await;
    assert_eq!(glpi.session.len(), 26);
    assert!(glpi.session.chars().all(|c| c.is_ascii_alphanumeric()));

    let (status, body) = send(
        glpi.http
            .get(glpi.url("/initSession"))
            .header("App-Token", APP_TOKEN)
            .header("Authorization", "user_token wrong"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!([
            "ERROR_GLPI_LOGIN_USER_TOKEN",
            "parameter user_token seems invalid"
        ])
    );

    let (status, body) = send(
        glpi.http
            .get(glpi.url("/initSession"))
            .header("App-Token", APP_TOKEN),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR_LOGIN_PARAMETERS_MISSING");
    assert_eq!(
        body[1],
        format!(
            "parameter(s) login, password or user_token are missing{}",
            doc(&glpi, "ERROR_LOGIN_PARAMETERS_MISSING")
        )
    );

    // the same values in the query string
    let (status, body) = send(glpi.http.get(glpi.url(&format!(
        "/initSession?app_token={APP_TOKEN}&user_token={USER_TOKEN}&get_full_session=true"
    ))))
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["session"]["glpiID"], 2);
    assert_eq!(glpi.emulator.active_sessions(), 2);
}

#[tokio::test]
async fn app_token_then_session_token_are_checked_before_the_itemtype() {
    let glpi = Glpi::start().await;
    let (status, body) = send(glpi.http.get(glpi.url("/NoSuchType/"))).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!([
            "ERROR_APP_TOKEN_PARAMETERS_MISSING",
            format!(
                "missing parameter app_token{}",
                doc(&glpi, "ERROR_APP_TOKEN_PARAMETERS_MISSING")
            )
        ])
    );
    let (status, body) = send(
        glpi.http
            .get(glpi.url("/NoSuchType/"))
            .header("App-Token", "nope"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR_WRONG_APP_TOKEN_PARAMETER");

    let (status, body) = send(
        glpi.http
            .get(glpi.url("/NoSuchType/"))
            .header("app-token", APP_TOKEN),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!([
            "ERROR_SESSION_TOKEN_MISSING",
            format!(
                "parameter session_token is missing or empty{}",
                doc(&glpi, "ERROR_SESSION_TOKEN_MISSING")
            )
        ])
    );
    let (status, body) = send(
        glpi.http
            .get(glpi.url("/NoSuchType/"))
            .header("APP-TOKEN", APP_TOKEN)
            .header("session-token", "doesnotexist"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!(["ERROR_SESSION_TOKEN_INVALID", "session_token seems invalid"])
    );

    // with a session: the itemtype is resolved (case-insensitively)
    let (status, body) = glpi.get("/NoSuchType/").await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!([
            "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM",
            format!(
                "resource not found or not an instance of CommonDBTM{}",
                doc(&glpi, "ERROR_RESOURCE_NOT_FOUND_NOR_COMMONDBTM")
            )
        ])
    );
    let (status, _) = glpi.get("/tIcKeT/?range=0-0").await;
    assert_eq!(status, 200);
    // session token in the query string
    let (status, _) = send(glpi.http.get(glpi.url(&format!(
        "/getActiveEntities?app_token={APP_TOKEN}&session_token={}",
        glpi.session
    ))))
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn sending_an_app_token_to_a_client_without_one_is_wrong() {
    let config = EmulatorConfig {
        app_token: None,
        ..EmulatorConfig::default()
    };
    let emulator = chatwoot_glpi_bridge::glpi_emulator::Emulator::start(config)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!("{}/initSession", emulator.api_url());
    let auth = format!("user_token {USER_TOKEN}");
    let (status, _) = send(http.get(&url).header("Authorization", &auth)).await;
    assert_eq!(status, 200);
    let (status, body) = send(
        http.get(&url)
            .header("Authorization", &auth)
            .header("App-Token", "x"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR_WRONG_APP_TOKEN_PARAMETER");
}

#[tokio::test]
async fn kill_session_answers_true_then_the_token_is_invalid() {
    let glpi = Glpi::start().await;
    let (status, body) = glpi.get("/killSession").await;
    assert_eq!((status, body), (200, json!(true)));
    let (status, body) = glpi.get("/getFullSession").await;
    assert_eq!(status, 401);
    assert_eq!(body[0], "ERROR_SESSION_TOKEN_INVALID");
    let (status, _) = glpi.get("/killSession").await;
    assert_eq!(status, 401);
    assert_eq!(glpi.emulator.active_sessions(), 0);
}

#[tokio::test]
async fn full_session_and_entities() {
    let glpi = Glpi::start_with(EmulatorConfig {
        writable_entities: vec![0, 3],
        ..EmulatorConfig::default()
    })
    .await;
    let (status, body) = glpi.get("/getFullSession").await;
    assert_eq!(status, 200);
    assert_eq!(body["session"]["glpiname"], "glpi");
    let (_, body) = glpi.get("/getActiveEntities").await;
    assert_eq!(
        body,
        json!({"active_entity": {"id": 0, "active_entity_recursive": true,
               "active_entities": [{"id": 0}, {"id": 3}]}})
    );
    let (status, body) = glpi
        .post(
            "/changeActiveEntities",
            json!({"entities_id": 3, "is_recursive": false}),
        )
        .await;
    assert_eq!((status, body), (200, json!(true)));
    let (_, body) = glpi.get("/getActiveEntities").await;
    assert_eq!(body["active_entity"]["active_entities"], json!([{"id": 3}]));
    let (status, body) = glpi
        .post(
            "/changeActiveEntities",
            json!({"entities_id": 0, "is_recursive": 1}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR");
}

#[tokio::test]
async fn responses_carry_glpi_headers() {
    let glpi = Glpi::start().await;
    for response in [
        glpi.req(Method::GET, "/getFullSession")
            .send()
            .await
            .unwrap(),
        glpi.req(Method::GET, "/Nope/").send().await.unwrap(),
    ] {
        let h = response.headers();
        assert_eq!(h["content-type"], "application/json; charset=UTF-8");
        assert_eq!(h["cache-control"], "no-store, no-cache, must-revalidate");
        assert_eq!(
            h["access-control-expose-headers"],
            "content-type, content-range, accept-range"
        );
    }
}

#[tokio::test]
async fn body_parsing_errors() {
    let glpi = Glpi::start().await;
    let (status, body) = send(glpi.req(Method::GET, "/Ticket/").body("{}")).await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR_JSON_PAYLOAD_FORBIDDEN");
    let (status, body) = send(
        glpi.req(Method::POST, "/Ticket/")
            .header("Content-Type", "application/json")
            .body("{\"input\": "),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!(["ERROR_JSON_PAYLOAD_INVALID", "JSON payload seems not valid"])
    );
    let (status, body) = glpi
        .post("/Ticket/", json!({"name": "no input wrapper"}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body[1],
        format!(
            "input parameter must be an array of objects{}",
            doc(&glpi, "ERROR_BAD_ARRAY")
        )
    );
    let (status, body) = send(
        glpi.req(Method::POST, "/Ticket/")
            .header("Content-Type", "text/plain")
            .body(r#"{"input":{"name":"x"}}"#),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR_BAD_ARRAY");
    assert!(glpi.emulator.items("Ticket").is_empty());
}

#[tokio::test]
async fn profiles_and_cors() {
    let glpi = Glpi::start().await;
    let (status, body) = glpi
        .post("/changeActiveProfile", json!({"profiles_id": 4}))
        .await;
    assert_eq!((status, body), (200, json!(true)));
    let (status, body) = glpi
        .post("/changeActiveProfile", json!({"profiles_id": 99}))
        .await;
    assert_eq!(
        (status, body),
        (404, json!(["ERROR_ITEM_NOT_FOUND", "Item not found"]))
    );
    let (status, body) = glpi.post("/changeActiveProfile", json!({"other": 1})).await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR");
    let (_, body) = glpi.get("/getMyProfiles").await;
    assert_eq!(body["myprofiles"][0]["name"], "Super-Admin");

    let response = glpi
        .http
        .request(Method::OPTIONS, glpi.url("/Ticket/"))
        .header("Origin", "http://example.org")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "session-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        response.headers()["access-control-allow-methods"],
        "PUT, GET, POST, DELETE, OPTIONS"
    );
    assert!(response
        .headers()
        .contains_key("access-control-allow-headers"));
}
