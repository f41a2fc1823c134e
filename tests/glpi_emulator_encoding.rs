//! Contract: GLPI 10 stores `<`, `>`, `&` as `&#60;`, `&#62;`, `&#38;`
//! and decodes only on request; GLPI 11 stores raw (reference §5.7,
//! appendix "Sanitizing").

mod glpi_emulator_common;

use chatwoot_glpi_bridge::glpi_emulator::{EmulatorConfig, GlpiVersion};
use glpi_emulator_common::*;
use reqwest::Method;
use serde_json::json;

const RAW: &str = "A & B <test> \"q\" 's";
const ENCODED: &str = "A &#38; B &#60;test&#62; \"q\" 's";

#[tokio::test]
async fn glpi_10_stores_encoded_and_decodes_on_request() {
    let glpi = Glpi::start().await;
    let (status, body) = glpi
        .post(
            "/Ticket/",
            json!({"input": {"name": RAW, "content": "<p>Hi</p>\n<script>x</script>"}}),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        body["message"],
        format!("Item successfully added: {ENCODED} (1)")
    );
    let stored = glpi.emulator.item("Ticket", 1).unwrap();
    assert_eq!(stored["name"], ENCODED);
    assert_eq!(
        stored["content"],
        "&#60;p&#62;Hi&#60;/p&#62;\n&#60;script&#62;x&#60;/script&#62;"
    );

    let (_, ticket) = glpi.get("/Ticket/1").await;
    assert_eq!(ticket["name"], ENCODED);
    let (_, ticket) = send(
        glpi.req(Method::GET, "/Ticket/1")
            .header("X-GLPI-Sanitized-Content", "true"),
    )
    .await;
    assert_eq!(ticket["name"], ENCODED);
    let (_, ticket) = send(
        glpi.req(Method::GET, "/Ticket/1")
            .header("x-glpi-sanitized-content", "false"),
    )
    .await;
    assert_eq!(ticket["name"], RAW);
    assert_eq!(ticket["content"], "<p>Hi</p>\n<script>x</script>");

    // lists and sub-item lists honour the header too
    glpi.create(
        "ITILFollowup",
        json!({"itemtype": "Ticket", "items_id": 1, "content": "x & y"}),
    )
    .await;
    let (_, list) = send(
        glpi.req(Method::GET, "/Ticket/?range=0-9")
            .header("X-GLPI-Sanitized-Content", "false"),
    )
    .await;
    assert_eq!(list[0]["name"], RAW);
    let (_, list) = glpi.get("/Ticket/1/ITILFollowup/").await;
    assert_eq!(list[0]["content"], "x &#38; y");
    let (_, list) = send(
        glpi.req(Method::GET, "/Ticket/1/ITILFollowup/")
            .header("X-GLPI-Sanitized-Content", "false"),
    )
    .await;
    assert_eq!(list[0]["content"], "x & y");

    // /search ignores it: always encoded; `&` in a pattern still matches
    let (_, found) = send(
        glpi.req(Method::GET, "/search/Ticket?criteria[0][field]=1&criteria[0][searchtype]=contains&criteria[0][value]=A%20%26%20B")
            .header("X-GLPI-Sanitized-Content", "false"),
    )
    .await;
    assert_eq!(found["totalcount"], 1);
    assert_eq!(found["data"][0]["1"], ENCODED);

    // already-encoded input is left alone, but `&lt;` is not "encoded"
    let id = glpi
        .create(
            "Contact",
            json!({"name": "a &#60;b&#62;", "comment": "&lt;"}),
        )
        .await;
    let stored = glpi.emulator.item("Contact", id).unwrap();
    assert_eq!(stored["name"], "a &#60;b&#62;");
    assert_eq!(stored["comment"], "&#38;lt;");
    // the create message is decoded with the header as well
    let (_, body) = send(
        glpi.req(Method::POST, "/Contact/")
            .header("X-GLPI-Sanitized-Content", "false")
            .json(&json!({"input": {"name": "R&D"}})),
    )
    .await;
    assert_eq!(body["message"], "Item successfully added: R&D");
}

#[tokio::test]
async fn glpi_11_stores_raw() {
    let glpi = Glpi::start_with(EmulatorConfig {
        version: GlpiVersion::V11,
        ..EmulatorConfig::default()
    })
    .await;
    glpi.create("Ticket", json!({"name": RAW, "content": "<p>Hi & bye</p>"}))
        .await;
    assert_eq!(glpi.emulator.item("Ticket", 1).unwrap()["name"], RAW);
    let (_, ticket) = glpi.get("/Ticket/1").await;
    assert_eq!(ticket["content"], "<p>Hi & bye</p>");
    let (_, found) = glpi
        .get("/search/Ticket?criteria[0][field]=21&criteria[0][searchtype]=contains&criteria[0][value]=hi%20%26")
        .await;
    assert_eq!(found["data"][0]["1"], RAW);
}
