//! Contract: item CRUD for every item type (reference §3, §5, appendix).

mod glpi_emulator_common;

use chatwoot_glpi_bridge::glpi_emulator::EmulatorConfig;
use glpi_emulator_common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn ticket_create_get_update() {
    let glpi = Glpi::start().await;
    let (status, body) = send(
        glpi.req(Method::POST, "/Ticket/")
            .json(&json!({"input": {"name": "Printer broken", "content": "It jams"}})),
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(
        body,
        json!({"id": 1, "message": "Item successfully added: Printer broken (1)"})
    );
    let response = glpi
        .req(Method::POST, "/Ticket/")
        .json(&json!({"input": {"name": "", "content": ""}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.headers()["location"],
        format!("{}/Ticket/2", glpi.emulator.api_url())
    );
    let (_, body) = json_of(response).await;
    assert_eq!(body["message"], "Item successfully added: Ticket - ID 2");

    let response = glpi.req(Method::GET, "/Ticket/1").send().await.unwrap();
    assert!(response.headers().contains_key("last-modified"));
    let (status, ticket) = json_of(response).await;
    assert_eq!(status, 200);
    assert_eq!(ticket["status"], 1);
    assert_eq!(ticket["urgency"], 3);
    assert_eq!(ticket["impact"], 3);
    assert_eq!(ticket["priority"], 3);
    assert_eq!(ticket["users_id_recipient"], 2);
    assert_eq!(ticket["content"], "It jams");
    assert!(ticket["date"].as_str().unwrap().len() == 19);
    assert!(ticket.get("externalid").is_none());

    let (status, body) = glpi.put("/Ticket/1", json!({"input": {"status": 5}})).await;
    assert_eq!((status, body), (200, json!([{"1": true, "message": ""}])));
    let (_, ticket) = glpi.get("/Ticket/1").await;
    assert_eq!(ticket["status"], 5);
    assert!(ticket["solvedate"].is_string());
    let (status, body) = send(
        glpi.req(Method::PATCH, "/Ticket/")
            .json(&json!({"input": {"id": 2, "urgency": 4}})),
    )
    .await;
    assert_eq!((status, body), (200, json!([{"2": true, "message": ""}])));

    let (status, body) = glpi
        .put("/Ticket/99", json!({"input": {"status": 5}}))
        .await;
    assert_eq!((status, body), (400, json!(["ERROR_GLPI_UPDATE", null])));
    let (status, body) = glpi.get("/Ticket/99").await;
    assert_eq!(
        (status, body),
        (404, json!(["ERROR_ITEM_NOT_FOUND", "Item not found"]))
    );
}

#[tokio::test]
async fn ticket_date_must_be_a_glpi_datetime() {
    let glpi = Glpi::start().await;
    let (status, body) = glpi
        .post(
            "/Ticket/",
            json!({"input": {"name": "x", "date": "2024-01-15T10:30:00Z"}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!(["ERROR_GLPI_ADD", "Incorrect value for date field."])
        )
    );
    let id = glpi
        .create(
            "Ticket",
            json!({"name": "x", "date": "2024-01-15 10:30:00"}),
        )
        .await;
    assert_eq!(
        glpi.emulator.item("Ticket", id).unwrap()["date"],
        "2024-01-15 10:30:00"
    );
}

#[tokio::test]
async fn externalid_exists_on_glpi_11_only() {
    let glpi = Glpi::start().await;
    let id = glpi
        .create(
            "Ticket",
            json!({"name": "x", "externalid": "cw-1", "bogus": 1}),
        )
        .await;
    let (_, ticket) = glpi.get(&format!("/Ticket/{id}")).await;
    assert!(ticket.get("externalid").is_none());
    assert!(ticket.get("bogus").is_none());

    let glpi11 = Glpi::start_with(EmulatorConfig {
        version: chatwoot_glpi_bridge::glpi_emulator::GlpiVersion::V11,
        ..EmulatorConfig::default()
    })
    .await;
    let id = glpi11
        .create("Ticket", json!({"name": "x", "externalid": "cw-1"}))
        .await;
    let (_, ticket) = glpi11.get(&format!("/Ticket/{id}")).await;
    assert_eq!(ticket["externalid"], "cw-1");
}

#[tokio::test]
async fn followups_need_content_and_an_existing_ticket() {
    let glpi = Glpi::start().await;
    let ticket = glpi
        .create("Ticket", json!({"name": "t", "content": "c"}))
        .await;
    let (status, body) = glpi
        .post(
            "/ITILFollowup/",
            json!({"input": {"itemtype": "Ticket", "items_id": ticket, "content": "Hello",
                   "is_private": 1, "date": "2024-01-15 10:30:00", "users_id": 7}}),
        )
        .await;
    assert_eq!((status, body), (201, json!({"id": 1, "message": ""})));
    let followup = glpi.emulator.item("ITILFollowup", 1).unwrap();
    assert_eq!(followup["date"], "2024-01-15 10:30:00");
    assert_eq!(followup["users_id"], 7);
    assert_eq!(followup["users_id_editor"], 0);
    assert_eq!(followup["is_private"], 1);
    assert!(glpi.emulator.item("Ticket", ticket).unwrap()["takeintoaccountdate"].is_string());

    let (status, body) = glpi
        .post(
            "/ITILFollowup/",
            json!({"input": {"itemtype": "Ticket", "items_id": ticket, "content": ""}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!([
                "ERROR_GLPI_ADD",
                "You can't add a followup without description"
            ])
        )
    );
    let (status, body) = glpi
        .post(
            "/ITILFollowup/",
            json!({"input": {"itemtype": "Ticket", "items_id": 999, "content": "x"}}),
        )
        .await;
    assert_eq!((status, body), (400, json!(["ERROR_GLPI_ADD", ""])));

    let (status, list) = glpi
        .get(&format!("/Ticket/{ticket}/ITILFollowup/?range=0-999"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, _) = glpi.get("/Ticket/999/ITILFollowup/").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn contacts_are_plain_items() {
    let glpi = Glpi::start().await;
    let (status, body) = glpi
        .post(
            "/Contact/",
            json!({"input": {"name": "Doe", "firstname": "John", "email": "j@example.com"}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            201,
            json!({"id": 1, "message": "Item successfully added: Doe John"})
        )
    );
    // no uniqueness
    glpi.create(
        "Contact",
        json!({"name": "Doe", "firstname": "John", "email": "j@example.com"}),
    )
    .await;
    let (_, contact) = glpi.get("/Contact/1").await;
    assert_eq!(contact["email"], "j@example.com");
    assert_eq!(contact["entities_id"], 0);
}
