//! The user guide's three manual tests (contact sync, ticket creation,
//! message sync), step by step, in both sync types, end to end: rows
//! written into Chatwoot's database, the bridge running in-process
//! (replication, planner, workers, write-back), GLPI played by the emulator.
//! Every field sent to GLPI and every key written back is checked.

mod support;

use chatwoot_glpi_bridge::glpi::decode_glpi_entities;
use serde_json::{json, Value};
use support::bridge::{BridgeEnv, BridgeSetup};

/// The recorded POST bodies' `input` for `path`.
fn posted(env: &BridgeEnv, path: &str) -> Vec<Value> {
    env.glpi_requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .map(|r| r.body.expect("a body")["input"].clone())
        .collect()
}

fn text(v: &Value) -> String {
    decode_glpi_entities(v.as_str().unwrap_or_default())
}

/// Guide step 1: the test contact.
async fn create_test_contact(env: &BridgeEnv) -> i64 {
    env.insert(
        "INSERT INTO contacts (account_id, name, email, phone_number, created_at, updated_at)
         VALUES (1, 'Test User', 'test@example.com', '+1234567890', now(), now()) RETURNING id",
    )
    .await
}

async fn wait_contact_key(env: &BridgeEnv, contact_id: i64, key: &str) -> i64 {
    for _ in 0..200 {
        let attrs = env.attributes("contacts", contact_id).await;
        if let Some(id) = attrs["external"][key].as_i64() {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("contacts.additional_attributes.external.{key} never written");
}

/// Test 1: Contact Sync, user mode.
#[tokio::test]
async fn guide_test_1_contact_sync_user_mode() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let contact_id = create_test_contact(&env).await;
    env.settle().await;

    let posts = posted(&env, "/User");
    assert_eq!(
        posts,
        vec![json!({
            "name": "test@example.com",
            "firstname": "Test",
            "realname": "User",
            "phone": "+1234567890",
            "entities_id": 0,
            "_useremails": ["test@example.com"],
        })]
    );
    let users: Vec<Value> = env
        .emulator
        .items("User")
        .into_iter()
        .filter(|u| u["name"] == "test@example.com")
        .collect();
    assert_eq!(users.len(), 1);
    let user = &users[0];
    assert_eq!(user["firstname"], "Test");
    assert_eq!(user["realname"], "User");
    assert_eq!(user["phone"], "+1234567890");
    let user_id = user["id"].as_i64().unwrap();
    let emails: Vec<Value> = env
        .emulator
        .items("UserEmail")
        .into_iter()
        .filter(|e| e["users_id"] == user_id)
        .collect();
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0]["email"], "test@example.com");
    assert_eq!(emails[0]["is_default"], 1);

    // Contact → Additional Attributes → External: glpi_user_id.
    assert_eq!(
        wait_contact_key(&env, contact_id, "glpi_user_id").await,
        user_id
    );
    assert_eq!(
        env.attributes("contacts", contact_id).await,
        json!({"external": {"glpi_user_id": user_id}})
    );
    env.stop().await;
}

/// Test 1: Contact Sync, contact mode.
#[tokio::test]
async fn guide_test_1_contact_sync_contact_mode() {
    let env = BridgeEnv::start(BridgeSetup::new("contact")).await;
    let contact_id = create_test_contact(&env).await;
    env.settle().await;
    assert_eq!(
        posted(&env, "/Contact"),
        vec![json!({
            "name": "User",
            "firstname": "Test",
            "email": "test@example.com",
            "phone": "+1234567890",
            "entities_id": 0,
        })]
    );
    assert!(posted(&env, "/User").is_empty());
    let contacts = env.emulator.items("Contact");
    assert_eq!(contacts.len(), 1);
    let glpi_contact = &contacts[0];
    assert_eq!(glpi_contact["name"], "User");
    assert_eq!(glpi_contact["firstname"], "Test");
    assert_eq!(glpi_contact["email"], "test@example.com");
    assert_eq!(glpi_contact["phone"], "+1234567890");
    let glpi_id = glpi_contact["id"].as_i64().unwrap();
    assert_eq!(
        wait_contact_key(&env, contact_id, "glpi_contact_id").await,
        glpi_id
    );
    env.stop().await;
}

/// Test 2 + Test 3 in one conversation, for one sync type.
async fn ticket_and_messages(sync_type: &str) {
    let env = BridgeEnv::start(BridgeSetup::new(sync_type)).await;
    let contact_id = create_test_contact(&env).await;
    let agent_id = env
        .insert(
            "INSERT INTO users (name, display_name, email, uid, created_at, updated_at)
             VALUES ('Alice Martin', 'Alice (support)', 'alice@chat.example.com', 'alice', now(), now()) RETURNING id",
        )
        .await;
    env.settle().await;
    let person_id = if sync_type == "user" {
        wait_contact_key(&env, contact_id, "glpi_user_id").await
    } else {
        wait_contact_key(&env, contact_id, "glpi_contact_id").await
    };

    // Test 2: a conversation with the contact, and a message.
    let conversation_id = env
        .insert(&format!(
            "INSERT INTO conversations (account_id, inbox_id, contact_id, status, priority, created_at, updated_at)
             VALUES (1, 1, {contact_id}, 0, 2, '2024-01-15 10:29:00', now()) RETURNING id"
        ))
        .await;
    let display_id = env
        .insert(&format!(
            "SELECT display_id::int8 FROM conversations WHERE id = {conversation_id}"
        ))
        .await;
    let first = env
        .insert(&format!(
            "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content, processed_message_content,
                                   private, sender_type, sender_id, created_at, updated_at)
             VALUES (1, 1, {conversation_id}, 0, 'raw', 'My printer is broken\nIt smokes <a lot> & more', false,
                     'Contact', {contact_id}, '2024-01-15 10:30:00.654321', now()) RETURNING id"
        ))
        .await;
    env.settle().await;

    let tickets = posted(&env, "/Ticket");
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    let sent = &tickets[0];
    let link = format!("https://chat.example.com/app/accounts/1/conversations/{display_id}");
    let mut description = "[2024-01-15 10:30:00 UTC] Test User (contact):<br>My printer is broken<br>It smokes &lt;a lot&gt; &amp; more".to_owned();
    if sync_type == "contact" {
        description.push_str(
            "<br><br>Contact:<br>- Name: Test User<br>- Email: test@example.com<br>- Phone: +1234567890",
        );
    }
    description.push_str(&format!(
        "<br><br>Conversation in Chatwoot: {link}<br><br>Chatwoot ref [cwgb-c1-v{conversation_id}] [cwgb-m{first}]"
    ));
    let mut expected = json!({
        "name": "My printer is broken",
        "content": description,
        "status": 2,
        "priority": 4,
        "type": 1,
        "entities_id": 0,
        "date": "2024-01-15 10:29:00",
    });
    if sync_type == "user" {
        expected["_users_id_requester"] = json!(person_id);
    } else {
        expected["_users_id_requester"] = json!(0);
        expected["_users_id_requester_notif"] =
            json!({"use_notification": 1, "alternative_email": ["test@example.com"]});
    }
    assert_eq!(sent, &expected);
    assert!(sent.get("itilcategories_id").is_none());

    let stored = env.emulator.items("Ticket");
    assert_eq!(stored.len(), 1);
    let ticket = &stored[0];
    let ticket_id = ticket["id"].as_i64().unwrap();
    assert_eq!(text(&ticket["name"]), "My printer is broken");
    assert_eq!(text(&ticket["content"]), description);
    assert_eq!(ticket["status"], 2);
    assert_eq!(ticket["priority"], 4);
    assert_eq!(ticket["type"], 1);
    // Requester matches the contact.
    let actors: Vec<Value> = env
        .emulator
        .items("Ticket_User")
        .into_iter()
        .filter(|a| a["tickets_id"] == ticket_id)
        .collect();
    assert_eq!(actors.len(), 1, "{actors:#?}");
    assert_eq!(actors[0]["type"], 1);
    if sync_type == "user" {
        assert_eq!(actors[0]["users_id"], person_id);
    } else {
        assert_eq!(actors[0]["users_id"], 0);
        assert_eq!(actors[0]["alternative_email"], "test@example.com");
    }
    // Conversation → Additional Attributes → GLPI: ticket_id.
    assert_eq!(
        env.attributes("conversations", conversation_id).await,
        json!({"glpi": {"ticket_id": ticket_id, "last_synced_message_id": first}})
    );

    // Test 3: more messages, then a status change.
    env.emulator.clear_requests();
    let reply = env
        .insert(&format!(
            "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content, private,
                                   sender_type, sender_id, created_at, updated_at)
             VALUES (1, 1, {conversation_id}, 1, 'Please restart it.', false, 'User', {agent_id},
                     '2024-01-15 10:31:05', now()) RETURNING id"
        ))
        .await;
    let note = env
        .insert(&format!(
            "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content, private,
                                   sender_type, sender_id, created_at, updated_at)
             VALUES (1, 1, {conversation_id}, 1, 'Internal: customer is VIP', true, 'User', {agent_id},
                     '2024-01-15 10:32:00', now()) RETURNING id"
        ))
        .await;
    let answer = env
        .insert(&format!(
            "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content, private,
                                   sender_type, sender_id, created_at, updated_at)
             VALUES (1, 1, {conversation_id}, 0, 'Done, it works', false, 'Contact', {contact_id},
                     '2024-01-15 10:40:00', now()) RETURNING id"
        ))
        .await;
    env.sql(&format!(
        "UPDATE conversations SET status = 1, updated_at = now() WHERE id = {conversation_id}"
    ))
    .await;
    env.settle().await;

    let followups = posted(&env, "/ITILFollowup");
    let contact_author = (sync_type == "user").then_some(person_id);
    let expect = |id: i64, at: &str, who: &str, body: &str, private: i64, author: Option<i64>| {
        let mut v = json!({
            "itemtype": "Ticket",
            "items_id": ticket_id,
            "content": format!("[{at} UTC] {who}:<br>{body}<br><br>Chatwoot ref [cwgb-m{id}]"),
            "is_private": private,
            "date": at,
        });
        if let Some(author) = author {
            v["users_id"] = json!(author);
        }
        v
    };
    assert_eq!(
        followups,
        vec![
            expect(
                reply,
                "2024-01-15 10:31:05",
                "Alice (support) (agent)",
                "Please restart it.",
                0,
                None
            ),
            expect(
                note,
                "2024-01-15 10:32:00",
                "Alice (support) (agent)",
                "Internal: customer is VIP",
                1,
                None
            ),
            expect(
                answer,
                "2024-01-15 10:40:00",
                "Test User (contact)",
                "Done, it works",
                0,
                contact_author
            ),
        ]
    );
    // Stored in order, one per message.
    let stored: Vec<Value> = env.emulator.items("ITILFollowup");
    assert_eq!(stored.len(), 3);
    assert!(stored.iter().all(|f| f["items_id"] == ticket_id));
    assert_eq!(stored[1]["is_private"], 1);
    assert_eq!(stored[2]["date"], "2024-01-15 10:40:00");
    // Status resolved → 5 (Solved), priority unchanged.
    let updates: Vec<Value> = env
        .glpi_requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path == format!("/Ticket/{ticket_id}"))
        .map(|r| r.body.unwrap()["input"].clone())
        .collect();
    assert_eq!(updates, vec![json!({"status": 5, "priority": 4})]);
    assert_eq!(env.emulator.item("Ticket", ticket_id).unwrap()["status"], 5);
    // Conversation → GLPI: last_synced_message_id.
    assert_eq!(
        env.attributes("conversations", conversation_id).await,
        json!({"glpi": {"ticket_id": ticket_id, "last_synced_message_id": answer}})
    );
    env.stop().await;
}

#[tokio::test]
async fn guide_tests_2_and_3_ticket_and_messages_user_mode() {
    ticket_and_messages("user").await;
}

#[tokio::test]
async fn guide_tests_2_and_3_ticket_and_messages_contact_mode() {
    ticket_and_messages("contact").await;
}
