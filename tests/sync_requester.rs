//! The ticket's requester follows the conversation's contact.
//!
//! Job level (workers fed by hand): a ChangeRequester job swaps the ticket's
//! requester row, restores the status GLPI resets when an actor is removed,
//! and is idempotent: run again, or re-run after a crash at any point (the
//! GLPI effects done, nothing recorded), it leaves exactly one requester.
//! Contact mode swaps the email-only requester and the description's
//! contact details. End to end: a Chatwoot contact merge (Rails'
//! `ContactMergeAction`) moves the mergee's ticket to the base contact's
//! GLPI user.

mod support;

use chatwoot_glpi_bridge::glpi_emulator::{Fault, GlpiVersion};
use chatwoot_glpi_bridge::outbox::{
    keys, ContactSnapshot, ConversationSnapshot, JobKind, MessageSnapshot,
};
use chatwoot_glpi_bridge::state::mappings::{self, GlpiPersonType, TicketRequester};
use chatwoot_glpi_bridge::worker::runtime::WorkerConfig;
use reqwest::Method;
use serde_json::{json, Value};
use support::bridge::{glpi_admin, BridgeEnv, BridgeSetup, JobEnv};

fn contact(id: i64, name: &str, email: &str) -> ContactSnapshot {
    ContactSnapshot {
        id,
        account_id: 1,
        name: Some(name.to_owned()),
        email: Some(email.to_owned()),
        phone_number: None,
        identifier: None,
    }
}

fn create_ticket(conversation_id: i64, requester: ContactSnapshot) -> JobKind {
    JobKind::CreateTicket {
        conversation: ConversationSnapshot {
            id: conversation_id,
            account_id: 1,
            display_id: conversation_id,
            contact_id: Some(requester.id),
            status: 0,
            priority: None,
            mail_subject: None,
            created_at: "2026-11-28 08:00:00.5".to_owned(),
        },
        contact: Some(requester),
        first_message: MessageSnapshot {
            id: 10,
            conversation_id,
            message_type: 0,
            private: false,
            text: "Printer broken".to_owned(),
            sender_type: None,
            sender_id: None,
            created_at: "2026-11-28 08:00:01".to_owned(),
            deleted: false,
            attachments: Vec::new(),
        },
    }
}

fn change_requester(conversation_id: i64, previous: i64, to: ContactSnapshot) -> JobKind {
    JobKind::ChangeRequester {
        conversation_id,
        previous_contact_id: Some(previous),
        contact: Some(to),
    }
}

/// Conversation 1 of contact 2 (the mergee) in Chatwoot, and contacts 1
/// and 2; its ticket created in GLPI.
async fn ticket_of_contact_2(env: &JobEnv, mergee: &ContactSnapshot) -> i64 {
    env.db
        .execute(&support::chatwoot::insert_contacts_sql(1, 2))
        .await;
    env.db
        .execute(&support::chatwoot::insert_conversation_sql(1, 2))
        .await;
    env.enqueue(&[(
        &keys::conversation_queue(1),
        &keys::create_ticket(1),
        create_ticket(1, mergee.clone()),
    )]);
    env.drain().await;
    let state = env.state();
    mappings::ticket_link(state.conn(), 1)
        .unwrap()
        .expect("the ticket was created")
        .glpi_ticket_id
}

/// The ticket's requester rows as (users_id, alternative_email).
fn requesters(
    emulator: &chatwoot_glpi_bridge::glpi_emulator::Emulator,
    ticket: i64,
) -> Vec<(i64, String)> {
    emulator
        .items("Ticket_User")
        .into_iter()
        .filter(|a| a["tickets_id"] == ticket && a["type"] == 1)
        .map(|a| {
            (
                a["users_id"].as_i64().unwrap(),
                a["alternative_email"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn user_id_by_email(emulator: &chatwoot_glpi_bridge::glpi_emulator::Emulator, email: &str) -> i64 {
    let users: Vec<i64> = emulator
        .items("UserEmail")
        .into_iter()
        .filter(|e| e["email"] == email)
        .map(|e| e["users_id"].as_i64().unwrap())
        .collect();
    assert_eq!(users.len(), 1, "one GLPI user with {email}: {users:?}");
    users[0]
}

/// Ticket_User writes the bridge sent since the last `clear_requests`.
fn actor_writes(env: &JobEnv) -> (usize, usize) {
    let requests = env.glpi_requests();
    let posts = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.eq_ignore_ascii_case("/Ticket_User"))
        .count();
    let deletes = requests
        .iter()
        .filter(|r| r.method == "DELETE" && r.path.starts_with("/Ticket_User/"))
        .count();
    (posts, deletes)
}

fn run(env: &JobEnv, key: &str, kind: JobKind) {
    env.enqueue(&[(&keys::conversation_queue(1), key, kind)]);
}

fn parked(env: &JobEnv) -> Vec<String> {
    chatwoot_glpi_bridge::outbox::parked(env.state().conn())
        .unwrap()
        .into_iter()
        .map(|p| p.reason)
        .collect()
}

#[tokio::test]
async fn the_requester_is_swapped_once_even_when_run_again_or_after_a_crash() {
    let env = JobEnv::start_user_mode_glpi10().await;
    let base = contact(1, "Ada Base", "ada@example.com");
    let mergee = contact(2, "Bea Mergee", "bea@example.com");
    let ticket = ticket_of_contact_2(&env, &mergee).await;
    let bea = user_id_by_email(&env.emulator, "bea@example.com");
    assert_eq!(requesters(&env.emulator, ticket), [(bea, String::new())]);
    assert_eq!(env.emulator.item("Ticket", ticket).unwrap()["status"], 2);
    let users_before = env.emulator.items("User").len();

    run(&env, "requester:1@1", change_requester(1, 2, base.clone()));
    env.drain().await;
    assert!(parked(&env).is_empty(), "{:?}", parked(&env));
    let ada = user_id_by_email(&env.emulator, "ada@example.com");
    assert_eq!(requesters(&env.emulator, ticket), [(ada, String::new())]);
    assert_eq!(
        env.emulator.items("User").len(),
        users_before + 1,
        "the new contact's user is created, the old one is left alone"
    );
    assert!(env.emulator.item("User", bea).is_some());
    // GLPI put the ticket back to New when the old requester was removed
    // (nobody assigned); the bridge set its status again.
    assert_eq!(env.emulator.item("Ticket", ticket).unwrap()["status"], 2);
    let recorded = mappings::ticket_requester(env.state().conn(), 1).unwrap();
    assert_eq!(
        recorded,
        Some(TicketRequester {
            conversation_id: 1,
            contact_id: Some(1),
            glpi_user_id: ada,
            alternative_email: String::new(),
        })
    );

    // The same change again: nothing to add, nothing to remove.
    env.emulator.clear_requests();
    run(&env, "requester:1@2", change_requester(1, 2, base.clone()));
    env.drain().await;
    assert_eq!(actor_writes(&env), (0, 0));
    assert_eq!(requesters(&env.emulator, ticket), [(ada, String::new())]);

    // Crash after every GLPI effect, before the job was recorded (and before
    // the status was put back): the mappings still name the old requester.
    let old_record = TicketRequester {
        conversation_id: 1,
        contact_id: Some(2),
        glpi_user_id: bea,
        alternative_email: String::new(),
    };
    mappings::record_requester(env.state().conn(), &old_record).unwrap();
    glpi_admin(
        &env.emulator,
        Method::PUT,
        &format!("/Ticket/{ticket}"),
        Some(json!({"input": {"status": 1}})),
    )
    .await;
    env.emulator.clear_requests();
    run(&env, "requester:1@3", change_requester(1, 2, base.clone()));
    env.drain().await;
    assert_eq!(
        actor_writes(&env),
        (0, 0),
        "no second add, no failing delete"
    );
    assert_eq!(requesters(&env.emulator, ticket), [(ada, String::new())]);
    assert_eq!(env.emulator.item("Ticket", ticket).unwrap()["status"], 2);

    // Crash after the add, before the old requester was removed.
    mappings::record_requester(env.state().conn(), &old_record).unwrap();
    let status = glpi_admin(
        &env.emulator,
        Method::POST,
        "/Ticket_User",
        Some(json!({"input": {"tickets_id": ticket, "users_id": bea, "type": 1}})),
    )
    .await;
    assert_eq!(status, 201);
    env.emulator.clear_requests();
    run(&env, "requester:1@4", change_requester(1, 2, base));
    env.drain().await;
    assert_eq!(actor_writes(&env), (0, 1));
    assert_eq!(requesters(&env.emulator, ticket), [(ada, String::new())]);
    assert_eq!(env.emulator.item("Ticket", ticket).unwrap()["status"], 2);
    assert!(parked(&env).is_empty(), "{:?}", parked(&env));
    env.stop().await;
}

#[tokio::test]
async fn a_lost_answer_to_the_add_is_found_by_listing_the_actors() {
    let env = JobEnv::start(
        GlpiVersion::V11,
        GlpiPersonType::User,
        WorkerConfig::default(),
    )
    .await;
    let mergee = contact(2, "Bea Mergee", "bea@example.com");
    let ticket = ticket_of_contact_2(&env, &mergee).await;
    env.emulator.inject(Fault::CommitThenDrop {
        count: 1,
        itemtype: Some("Ticket_User".to_owned()),
    });
    env.emulator.clear_requests();
    run(
        &env,
        "requester:1@1",
        change_requester(1, 2, contact(1, "Ada Base", "ada@example.com")),
    );
    env.drain().await;
    assert!(parked(&env).is_empty(), "{:?}", parked(&env));
    let ada = user_id_by_email(&env.emulator, "ada@example.com");
    assert_eq!(requesters(&env.emulator, ticket), [(ada, String::new())]);
    assert_eq!(actor_writes(&env).0, 1, "one add, its answer lost");
    env.stop().await;
}

#[tokio::test]
async fn a_ticket_deleted_in_glpi_parks_the_change_with_a_reason() {
    let env = JobEnv::start_user_mode_glpi10().await;
    let ticket = ticket_of_contact_2(&env, &contact(2, "Bea Mergee", "bea@example.com")).await;
    let status = glpi_admin(
        &env.emulator,
        Method::DELETE,
        &format!("/Ticket/{ticket}?force_purge=true"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    run(
        &env,
        "requester:1@1",
        change_requester(1, 2, contact(1, "Ada Base", "ada@example.com")),
    );
    env.drain().await;
    let reasons = parked(&env);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].contains("resync conversation"), "{reasons:?}");
    env.stop().await;
}

#[tokio::test]
async fn contact_mode_swaps_the_email_only_requester_and_the_description_details() {
    let env = JobEnv::start(
        GlpiVersion::V10,
        GlpiPersonType::Contact,
        WorkerConfig::default(),
    )
    .await;
    let ticket = ticket_of_contact_2(&env, &contact(2, "Bea Mergee", "bea@example.com")).await;
    assert_eq!(
        requesters(&env.emulator, ticket),
        [(0, "bea@example.com".to_owned())]
    );
    let description = |env: &JobEnv| -> String {
        let ticket = env.emulator.item("Ticket", ticket).unwrap();
        chatwoot_glpi_bridge::glpi::decode_glpi_entities(ticket["content"].as_str().unwrap())
    };
    assert!(
        description(&env).contains("Name: Bea Mergee"),
        "{}",
        description(&env)
    );

    for key in ["requester:1@1", "requester:1@2"] {
        run(
            &env,
            key,
            change_requester(1, 2, contact(1, "Ada Base", "ada@example.com")),
        );
        env.drain().await;
        assert!(parked(&env).is_empty(), "{:?}", parked(&env));
        assert_eq!(
            requesters(&env.emulator, ticket),
            [(0, "ada@example.com".to_owned())]
        );
        // The message keeps its author; the contact block names the new
        // contact.
        let text = description(&env);
        let (message, details) = text.split_once("Contact:").expect("a contact block");
        assert!(
            message.contains("Bea Mergee (contact)") && message.contains("Printer broken"),
            "{text}"
        );
        assert!(
            details.contains("Name: Ada Base")
                && details.contains("Email: ada@example.com")
                && !details.contains("Bea"),
            "{text}"
        );
        assert_eq!(env.emulator.item("Ticket", ticket).unwrap()["status"], 2);
    }
    assert_eq!(env.emulator.items("Contact").len(), 2);
    env.stop().await;
}

/// The ticket's requester users, end to end.
fn ticket_requester_users(env: &BridgeEnv, ticket: i64) -> Vec<Value> {
    env.emulator
        .items("Ticket_User")
        .into_iter()
        .filter(|a| a["tickets_id"] == ticket && a["type"] == 1)
        .map(|a| a["users_id"].clone())
        .collect()
}

#[tokio::test]
async fn merging_contacts_in_chatwoot_moves_the_mergee_ticket_to_the_base_user() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let base = env
        .new_contact("Ada Base", Some("ada@example.com"), None)
        .await;
    let mergee = env
        .new_contact("Bea Mergee", Some("bea@example.com"), None)
        .await;
    let base_conversation = env.new_conversation(base).await;
    let mergee_conversation = env.new_conversation(mergee).await;
    env.new_message(base_conversation, true, "Printer broken")
        .await;
    env.new_message(mergee_conversation, true, "Screen broken")
        .await;
    let base_ticket = env.ticket_of(base_conversation).await;
    let mergee_ticket = env.ticket_of(mergee_conversation).await;
    env.new_message(mergee_conversation, true, "Still broken")
        .await;
    env.settle().await;
    let glpi_user = |contact: i64| {
        let env = &env;
        async move {
            env.attributes("contacts", contact).await["external"]["glpi_user_id"]
                .as_i64()
                .expect("glpi_user_id written back")
        }
    };
    let (ada, bea) = (glpi_user(base).await, glpi_user(mergee).await);
    assert_eq!(ticket_requester_users(&env, mergee_ticket), [json!(bea)]);
    let users_before = env.emulator.items("User").len();
    let old_row = env
        .emulator
        .items("Ticket_User")
        .into_iter()
        .find(|a| a["tickets_id"] == mergee_ticket && a["users_id"] == bea)
        .expect("the mergee is the requester")["id"]
        .clone();
    env.emulator.clear_requests();

    // ContactMergeAction: the mergee's conversations and messages move to
    // the base contact, then the mergee row is deleted, in one transaction.
    env.sql(&format!(
        "BEGIN;
         UPDATE conversations SET contact_id = {base}, updated_at = now() WHERE contact_id = {mergee};
         UPDATE messages SET sender_id = {base} WHERE sender_type = 'Contact' AND sender_id = {mergee};
         DELETE FROM contacts WHERE id = {mergee};
         COMMIT;"
    ))
    .await;
    env.settle().await;

    // Five calls: list the actors, add the new requester, remove the old
    // one, read the ticket back, put back the status GLPI reset. The
    // messages moved to the base contact are not rewritten.
    let calls: Vec<String> = env
        .glpi_requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        [
            format!("GET /Ticket/{mergee_ticket}/Ticket_User"),
            "POST /Ticket_User".to_owned(),
            format!("DELETE /Ticket_User/{old_row}"),
            format!("GET /Ticket/{mergee_ticket}"),
            format!("PUT /Ticket/{mergee_ticket}"),
        ]
    );
    assert_eq!(ticket_requester_users(&env, mergee_ticket), [json!(ada)]);
    assert_eq!(ticket_requester_users(&env, base_ticket), [json!(ada)]);
    assert_eq!(
        env.emulator.items("User").len(),
        users_before,
        "no user created"
    );
    assert!(
        env.emulator
            .item("User", bea)
            .is_some_and(|u| u["is_deleted"] == 0),
        "the mergee's GLPI user is left alone"
    );
    let stored = env.emulator.item("Ticket", mergee_ticket).unwrap();
    assert_eq!(stored["status"], 2, "the status GLPI reset is put back");

    // A later update of the conversation that leaves its contact alone
    // changes no requester.
    env.emulator.clear_requests();
    env.sql(&format!(
        "UPDATE conversations SET last_activity_at = now() WHERE id = {mergee_conversation}"
    ))
    .await;
    env.settle().await;
    assert!(
        !env.glpi_requests()
            .iter()
            .any(|r| r.path.to_ascii_lowercase().contains("ticket_user")),
        "{:?}",
        env.glpi_requests()
    );
    env.stop().await;
}
