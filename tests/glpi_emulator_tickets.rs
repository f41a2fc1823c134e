//! Contract: ticket actors and Ticket_User, bulk creates, rights, the
//! clone-on-id trap, bulk updates and deletes (reference §3, §5.4, §5.6,
//! appendix "Tickets and followups").

mod glpi_emulator_common;

use chatwoot_glpi_bridge::glpi_emulator::EmulatorConfig;
use glpi_emulator_common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn actors_of(glpi: &Glpi, ticket: i64) -> Vec<Value> {
    glpi.emulator
        .items("Ticket_User")
        .into_iter()
        .filter(|a| a["tickets_id"] == ticket)
        .map(|mut a| {
            let a = a.as_object_mut().unwrap();
            a.remove("id");
            a.remove("tickets_id");
            Value::Object(a.clone())
        })
        .collect()
}

#[tokio::test]
async fn requester_by_user_id_keeps_the_given_status() {
    let glpi = Glpi::start().await;
    let user = glpi.create("User", json!({"name": "req"})).await;
    let ticket = glpi
        .create(
            "Ticket",
            json!({"name": "t", "status": 2, "_users_id_requester": user}),
        )
        .await;
    assert_eq!(glpi.emulator.item("Ticket", ticket).unwrap()["status"], 2);
    assert_eq!(
        actors_of(&glpi, ticket),
        [json!({"users_id": user, "type": 1, "use_notification": 1, "alternative_email": ""})]
    );
    let (status, list) = glpi.get(&format!("/Ticket/{ticket}/Ticket_User/")).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["users_id"], user);
    // no requester fields: no actor rows (the API user is not added)
    let bare = glpi.create("Ticket", json!({"name": "bare"})).await;
    assert!(actors_of(&glpi, bare).is_empty());
}

#[tokio::test]
async fn email_only_requesters_in_both_forms() {
    let glpi = Glpi::start().await;
    let t1 = glpi
        .create(
            "Ticket",
            json!({"name": "a", "_users_id_requester": 0,
                   "_users_id_requester_notif": {"use_notification": 1, "alternative_email": ["anon@example.org"]}}),
        )
        .await;
    assert_eq!(
        actors_of(&glpi, t1),
        [
            json!({"users_id": 0, "type": 1, "use_notification": 1, "alternative_email": "anon@example.org"})
        ]
    );
    let observer = glpi.create("User", json!({"name": "obs"})).await;
    let t2 = glpi
        .create(
            "Ticket",
            json!({"name": "b", "_actors": {
                "requester": [{"itemtype": "User", "items_id": 0, "use_notification": 1, "alternative_email": "anon2@example.org"}],
                "observer": [{"itemtype": "User", "items_id": observer, "use_notification": 0, "alternative_email": ""}]}}),
        )
        .await;
    assert_eq!(
        actors_of(&glpi, t2),
        [
            json!({"users_id": 0, "type": 1, "use_notification": 1, "alternative_email": "anon2@example.org"}),
            json!({"users_id": observer, "type": 3, "use_notification": 0, "alternative_email": ""})
        ]
    );
}

#[tokio::test]
async fn bad_requesters() {
    let glpi = Glpi::start().await;
    let (status, body) = glpi
        .post(
            "/Ticket/",
            json!({"input": {"name": "x", "_users_id_requester": 0,
                   "_users_id_requester_notif": {"use_notification": 1, "alternative_email": ["not-an-email"]}}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!(["ERROR_GLPI_ADD", "Invalid email address not-an-email"])
        )
    );
    assert!(glpi.emulator.items("Ticket").is_empty());
    // an unknown user id: GLPI creates the ticket and silently skips the actor
    let ticket = glpi
        .create("Ticket", json!({"name": "x", "_users_id_requester": 4242}))
        .await;
    assert!(actors_of(&glpi, ticket).is_empty());
}

#[tokio::test]
async fn assigning_a_new_ticket_makes_it_processing() {
    let glpi = Glpi::start().await;
    let tech = glpi.create("User", json!({"name": "tech2"})).await;
    let ticket = glpi
        .create("Ticket", json!({"name": "x", "_users_id_assign": tech}))
        .await;
    assert_eq!(glpi.emulator.item("Ticket", ticket).unwrap()["status"], 2);
}

#[tokio::test]
async fn ticket_user_rows_are_unique_and_checked() {
    let glpi = Glpi::start().await;
    let user = glpi.create("User", json!({"name": "u"})).await;
    let ticket = glpi.create("Ticket", json!({"name": "x"})).await;
    let (status, body) = glpi
        .post(
            "/Ticket_User/",
            json!({"input": {"tickets_id": ticket, "users_id": user, "type": 1}}),
        )
        .await;
    assert_eq!((status, body), (201, json!({"id": 1, "message": ""})));
    for input in [
        json!({"tickets_id": ticket, "users_id": user, "type": 1}),
        json!({"tickets_id": ticket, "users_id": 4242, "type": 1}),
        json!({"tickets_id": 999, "users_id": user, "type": 1}),
        json!({"tickets_id": ticket, "users_id": 0, "type": 1}),
    ] {
        let (status, body) = glpi.post("/ticket_user/", json!({ "input": input })).await;
        assert_eq!(
            (status, body),
            (400, json!(["ERROR_GLPI_ADD", ""])),
            "{input}"
        );
    }
    let (status, body) = glpi
        .post("/Ticket_User/", json!({"input": {"tickets_id": ticket, "users_id": 0, "type": 3, "alternative_email": "bad@"}}))
        .await;
    assert_eq!(
        (status, body),
        (400, json!(["ERROR_GLPI_ADD", "Invalid email address"]))
    );
    // the same user in another role is fine
    glpi.create(
        "Ticket_User",
        json!({"tickets_id": ticket, "users_id": user, "type": 3}),
    )
    .await;
}

#[tokio::test]
async fn bulk_create_201_207_400() {
    let glpi = Glpi::start().await;
    let response = glpi
        .req(Method::POST, "/User/")
        .json(&json!({"input": [{"name": "bulk1"}, {"name": "bulk2"}]}))
        .send()
        .await
        .unwrap();
    let api = glpi.emulator.api_url();
    assert_eq!(
        response.headers()["link"],
        format!("{api}/User/7,{api}/User/8")
    );
    assert!(!response.headers().contains_key("location"));
    let (status, body) = json_of(response).await;
    assert_eq!(status, 201);
    assert_eq!(
        body,
        json!([{"id": 7, "message": "Item successfully added: bulk1"},
               {"id": 8, "message": "Item successfully added: bulk2"}])
    );
    let response = glpi
        .req(Method::POST, "/User/")
        .json(&json!({"input": [{"name": "bulk3"}, {"name": "bulk1"}]}))
        .send()
        .await
        .unwrap();
    assert!(!response.headers().contains_key("link"));
    let (status, body) = json_of(response).await;
    assert_eq!(status, 207);
    assert_eq!(
        body,
        json!(["ERROR_GLPI_PARTIAL_ADD", [{"id": 9, "message": "Item successfully added: bulk3"},
               {"id": false, "message": "Unable to add. The user already exists."}]])
    );
    let (status, body) = glpi
        .post(
            "/User/",
            json!({"input": [{"name": "bulk1"}, {"name": "bad/login"}]}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!(["ERROR_GLPI_ADD", [{"id": false, "message": "Unable to add. The user already exists."},
               {"id": false, "message": "The login is not valid. Unable to add the user."}]])
    );
}

#[tokio::test]
async fn creating_outside_writable_entities_is_a_400_rights_failure() {
    let glpi = Glpi::start_with(EmulatorConfig {
        writable_entities: vec![0, 2],
        ..EmulatorConfig::default()
    })
    .await;
    let rights = json!([
        "ERROR_GLPI_ADD",
        "You don't have permission to perform this action."
    ]);
    let (status, body) = glpi
        .post(
            "/Ticket/",
            json!({"input": {"name": "x", "entities_id": 5}}),
        )
        .await;
    assert_eq!((status, &body), (400, &rights));
    let (status, body) = glpi
        .post(
            "/Contact/",
            json!({"input": {"name": "x", "entities_id": 5}}),
        )
        .await;
    assert_eq!((status, &body), (400, &rights));
    let id = glpi
        .create("Ticket", json!({"name": "x", "entities_id": 2}))
        .await;
    assert_eq!(glpi.emulator.item("Ticket", id).unwrap()["entities_id"], 2);
    // the active entity is the default; after narrowing to entity 2 only, 0 is refused
    glpi.post(
        "/changeActiveEntities",
        json!({"entities_id": 2, "is_recursive": false}),
    )
    .await;
    let (status, body) = glpi
        .post(
            "/Ticket/",
            json!({"input": {"name": "x", "entities_id": 0}}),
        )
        .await;
    assert_eq!((status, &body), (400, &rights));
    let id = glpi.create("Ticket", json!({"name": "y"})).await;
    assert_eq!(glpi.emulator.item("Ticket", id).unwrap()["entities_id"], 2);
    // and a writable-but-not-allowed entity with only root writable
    let glpi = Glpi::start_with(EmulatorConfig {
        writable_entities: vec![],
        ..EmulatorConfig::default()
    })
    .await;
    let (status, body) = glpi.post("/Ticket/", json!({"input": {"name": "x"}})).await;
    assert_eq!((status, body), (400, rights));
}

#[tokio::test]
async fn an_id_in_a_post_clones_the_existing_item() {
    let glpi = Glpi::start().await;
    let first = glpi
        .create(
            "Contact",
            json!({"name": "Doe", "firstname": "John", "email": "j@example.com"}),
        )
        .await;
    let (status, body) = glpi
        .post(
            "/Contact/",
            json!({"input": {"id": first, "name": "Other"}}),
        )
        .await;
    assert_eq!(status, 201);
    let clone = body["id"].as_i64().unwrap();
    assert_ne!(clone, first);
    let copy = glpi.emulator.item("Contact", clone).unwrap();
    assert_eq!(copy["name"], "Other");
    assert_eq!(copy["firstname"], "John");
    assert_eq!(copy["email"], "j@example.com");
    // without a name, the copy is renamed
    let (_, body) = glpi
        .post("/Contact/", json!({"input": {"id": first}}))
        .await;
    assert_eq!(
        glpi.emulator
            .item("Contact", body["id"].as_i64().unwrap())
            .unwrap()["name"],
        "Doe (copy)"
    );

    let user = glpi.create("User", json!({"name": "req"})).await;
    let ticket = glpi
        .create(
            "Ticket",
            json!({"name": "orig", "status": 5, "_users_id_requester": user}),
        )
        .await;
    let copy = glpi
        .create("Ticket", json!({"id": ticket, "name": "copy"}))
        .await;
    let stored = glpi.emulator.item("Ticket", copy).unwrap();
    assert_eq!(stored["status"], 5);
    assert_eq!(actors_of(&glpi, copy), actors_of(&glpi, ticket));

    // a free id is inserted with exactly that id, and ids continue after it
    let free = glpi
        .create("Contact", json!({"id": 500, "name": "Five hundred"}))
        .await;
    assert_eq!(free, 500);
    assert_eq!(glpi.create("Contact", json!({"name": "next"})).await, 501);
}

#[tokio::test]
async fn bulk_update_quirks() {
    let glpi = Glpi::start().await;
    let a = glpi.create("Contact", json!({"name": "a"})).await;
    let b = glpi.create("Contact", json!({"name": "b"})).await;
    let (status, body) = glpi
        .put(
            "/Contact/",
            json!({"input": [{"id": a, "name": "a2"}, {"id": b, "name": "b2"}]}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!([{a.to_string(): true, "message": ""}, {b.to_string(): true, "message": ""}])
        )
    );
    let (status, body) = glpi
        .put(
            "/Contact/",
            json!({"input": [{"id": 999, "name": "x"}, {"id": b, "name": "b3"}]}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            207,
            json!(["ERROR_GLPI_PARTIAL_UPDATE", [{b.to_string(): true, "message": ""}]])
        )
    );
    let (status, body) = glpi
        .put("/Contact/", json!({"input": [{"id": 998}, {"id": 999}]}))
        .await;
    assert_eq!((status, body), (400, json!(["ERROR_GLPI_UPDATE", []])));
    let (status, body) = glpi.put("/Contact/1", json!({"name": "no input"})).await;
    assert_eq!(status, 400);
    assert_eq!(body[0], "ERROR_BAD_ARRAY");
    // unknown fields are ignored
    let (status, _) = glpi
        .put(&format!("/Contact/{a}"), json!({"input": {"nonsense": 1}}))
        .await;
    assert_eq!(status, 200);
    assert!(glpi
        .emulator
        .item("Contact", a)
        .unwrap()
        .get("nonsense")
        .is_none());
}

#[tokio::test]
async fn delete_trashes_or_purges() {
    let glpi = Glpi::start().await;
    let t = glpi.create("Ticket", json!({"name": "x"})).await;
    let (status, body) = send(glpi.req(Method::DELETE, &format!("/Ticket/{t}"))).await;
    assert_eq!(
        (status, body),
        (200, json!([{t.to_string(): true, "message": ""}]))
    );
    assert_eq!(glpi.emulator.item("Ticket", t).unwrap()["is_deleted"], 1);
    let (status, _) =
        send(glpi.req(Method::DELETE, &format!("/Ticket/{t}?force_purge=true"))).await;
    assert_eq!(status, 200);
    assert!(glpi.emulator.item("Ticket", t).is_none());
    let (status, body) = send(glpi.req(Method::DELETE, "/Ticket/12345")).await;
    assert_eq!(
        (status, body),
        (400, json!(["ERROR_GLPI_DELETE", "Item not found"]))
    );
}

#[tokio::test]
async fn status_dates_follow_updates() {
    let glpi = Glpi::start().await;
    let t = glpi
        .create("Ticket", json!({"name": "x", "status": 6}))
        .await;
    let stored = glpi.emulator.item("Ticket", t).unwrap();
    assert!(stored["closedate"].is_string() && stored["solvedate"].is_string());
    glpi.put(&format!("/Ticket/{t}"), json!({"input": {"status": 2}}))
        .await;
    let stored = glpi.emulator.item("Ticket", t).unwrap();
    assert!(stored["closedate"].is_null() && stored["solvedate"].is_null());
    glpi.put(&format!("/Ticket/{t}"), json!({"input": {"status": 6}}))
        .await;
    assert!(glpi.emulator.item("Ticket", t).unwrap()["closedate"].is_string());
    // a followup on a closed ticket is refused
    let (status, body) = glpi
        .post(
            "/ITILFollowup/",
            json!({"input": {"itemtype": "Ticket", "items_id": t, "content": "late"}}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!([
                "ERROR_GLPI_ADD",
                "You don't have permission to perform this action."
            ])
        )
    );
}

#[tokio::test]
async fn removing_actors_can_send_a_ticket_back_to_new() {
    let glpi = Glpi::start().await;
    let tech = glpi.create("User", json!({"name": "tech9"})).await;
    let req = glpi.create("User", json!({"name": "req9"})).await;
    let t = glpi
        .create(
            "Ticket",
            json!({"name": "x", "_users_id_assign": tech, "_users_id_requester": req}),
        )
        .await;
    assert_eq!(glpi.emulator.item("Ticket", t).unwrap()["status"], 2);
    let assign_row = glpi
        .emulator
        .items("Ticket_User")
        .into_iter()
        .find(|a| a["type"] == 2)
        .unwrap();
    let (status, _) = send(glpi.req(
        Method::DELETE,
        &format!("/Ticket_User/{}", assign_row["id"]),
    ))
    .await;
    assert_eq!(status, 200);
    assert_eq!(glpi.emulator.item("Ticket", t).unwrap()["status"], 1);

    // GLPI does it for any open status, Pending included, when no one is assigned
    glpi.put(&format!("/Ticket/{t}"), json!({"input": {"status": 4}}))
        .await;
    let (status, _) = glpi
        .put(
            &format!("/Ticket/{t}"),
            json!({"input": {"_actors": {"requester": [{"itemtype": "User", "items_id": 0, "alternative_email": "new@example.org", "use_notification": 1}]}}}),
        )
        .await;
    assert_eq!(status, 200);
    let stored = glpi.emulator.item("Ticket", t).unwrap();
    assert_eq!(stored["status"], 1);
    assert_eq!(
        actors_of(&glpi, t),
        [
            json!({"users_id": 0, "type": 1, "use_notification": 1, "alternative_email": "new@example.org"})
        ]
    );
}

#[tokio::test]
async fn replacing_a_requester_row_by_row() {
    // What the bridge does when a conversation moves to another contact:
    // add the new requester, remove the old one (reference §3 Delete, §5.6).
    let glpi = Glpi::start().await;
    let old = glpi.create("User", json!({"name": "old-req"})).await;
    let new = glpi.create("User", json!({"name": "new-req"})).await;
    let t = glpi
        .create(
            "Ticket",
            json!({"name": "x", "status": 2, "_users_id_requester": old}),
        )
        .await;
    let old_row = glpi.emulator.items("Ticket_User")[0]["id"]
        .as_i64()
        .unwrap();
    let (status, body) = glpi
        .post(
            "/Ticket_User/",
            json!({"input": {"tickets_id": t, "users_id": new, "type": 1, "use_notification": 1, "alternative_email": ""}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["message"], "", "actors produce no message");
    assert_eq!(glpi.emulator.item("Ticket", t).unwrap()["status"], 2);
    let (status, body) = send(glpi.req(Method::DELETE, &format!("/Ticket_User/{old_row}"))).await;
    assert_eq!(
        (status, body),
        (200, json!([{old_row.to_string(): true, "message": ""}]))
    );
    assert_eq!(
        actors_of(&glpi, t),
        [json!({"users_id": new, "type": 1, "use_notification": 1, "alternative_email": ""})]
    );
    // Removing any actor (a requester too) of a ticket nobody is assigned
    // to sends it back to New.
    assert_eq!(glpi.emulator.item("Ticket", t).unwrap()["status"], 1);
    // The row is purged (no trash bin): deleting it again is "Item not found".
    let (status, body) = send(glpi.req(
        Method::DELETE,
        &format!("/Ticket_User/{old_row}?force_purge=true"),
    ))
    .await;
    assert_eq!(
        (status, body),
        (400, json!(["ERROR_GLPI_DELETE", "Item not found"]))
    );
    // The users themselves are untouched.
    assert!(glpi.emulator.item("User", old).is_some());

    // A ticket may be left without any requester; a solved one keeps its
    // status.
    glpi.put(&format!("/Ticket/{t}"), json!({"input": {"status": 5}}))
        .await;
    let row = glpi.emulator.items("Ticket_User")[0]["id"]
        .as_i64()
        .unwrap();
    let (status, _) = send(glpi.req(Method::DELETE, &format!("/Ticket_User/{row}"))).await;
    assert_eq!(status, 200);
    assert!(actors_of(&glpi, t).is_empty());
    let (status, list) = glpi
        .get(&format!("/Ticket/{t}/Ticket_User/?range=0-99"))
        .await;
    assert_eq!((status, list), (200, json!([])));
    assert_eq!(glpi.emulator.item("Ticket", t).unwrap()["status"], 5);

    // A ticket that is gone: its actors cannot be listed (404) nor added to.
    let (status, _) =
        send(glpi.req(Method::DELETE, &format!("/Ticket/{t}?force_purge=true"))).await;
    assert_eq!(status, 200);
    let (status, body) = glpi.get(&format!("/Ticket/{t}/Ticket_User/")).await;
    assert_eq!(
        (status, body),
        (404, json!(["ERROR_ITEM_NOT_FOUND", "Item not found"]))
    );
    let (status, body) = glpi
        .post(
            "/Ticket_User/",
            json!({"input": {"tickets_id": t, "users_id": new, "type": 1}}),
        )
        .await;
    assert_eq!((status, body), (400, json!(["ERROR_GLPI_ADD", ""])));
}

#[tokio::test]
async fn email_only_requesters_are_replaced_the_same_way() {
    let glpi = Glpi::start().await;
    let t = glpi
        .create(
            "Ticket",
            json!({"name": "x", "status": 4, "_users_id_requester": 0,
                   "_users_id_requester_notif": {"use_notification": 1, "alternative_email": ["old@example.org"]}}),
        )
        .await;
    let old_row = glpi.emulator.items("Ticket_User")[0]["id"]
        .as_i64()
        .unwrap();
    let add = json!({"input": {"tickets_id": t, "users_id": 0, "type": 1, "use_notification": 1, "alternative_email": "new@example.org"}});
    let (status, _) = glpi.post("/Ticket_User/", add.clone()).await;
    assert_eq!(status, 201);
    // The same email-only requester twice: refused silently (unique key).
    let (status, body) = glpi.post("/Ticket_User/", add).await;
    assert_eq!((status, body), (400, json!(["ERROR_GLPI_ADD", ""])));
    let (status, _) = send(glpi.req(Method::DELETE, &format!("/Ticket_User/{old_row}"))).await;
    assert_eq!(status, 200);
    assert_eq!(
        actors_of(&glpi, t),
        [
            json!({"users_id": 0, "type": 1, "use_notification": 1, "alternative_email": "new@example.org"})
        ]
    );
    // Pending, nobody assigned: back to New as well.
    assert_eq!(glpi.emulator.item("Ticket", t).unwrap()["status"], 1);
}
