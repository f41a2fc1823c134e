//! Worker jobs against the GLPI emulator and a real Chatwoot database, fed
//! straight into the outbox: request counts in steady state, unknown
//! outcomes resolved by lookup (no duplicates), parked jobs blocking only
//! their own conversation, one GLPI user per contact under concurrency.

mod support;

use chatwoot_glpi_bridge::glpi_emulator::{Fault, GlpiVersion};
use chatwoot_glpi_bridge::outbox::{
    keys, AttachmentSnapshot, ContactSnapshot, ConversationSnapshot, JobKind, MessageSnapshot,
};
use chatwoot_glpi_bridge::state::mappings::{self, GlpiPersonType};
use chatwoot_glpi_bridge::worker::runtime::WorkerConfig;
use support::bridge::JobEnv;

fn contact(id: i64, name: &str, email: Option<&str>, phone: Option<&str>) -> ContactSnapshot {
    ContactSnapshot {
        id,
        account_id: 1,
        name: Some(name.to_owned()),
        email: email.map(str::to_owned),
        phone_number: phone.map(str::to_owned),
        identifier: None,
    }
}

fn conversation(id: i64, contact_id: i64) -> ConversationSnapshot {
    ConversationSnapshot {
        id,
        account_id: 1,
        display_id: id,
        contact_id: Some(contact_id),
        status: 0,
        priority: None,
        mail_subject: None,
        created_at: "2024-01-15 10:00:00.123".to_owned(),
    }
}

fn message(id: i64, conversation_id: i64, text: &str) -> MessageSnapshot {
    MessageSnapshot {
        id,
        conversation_id,
        message_type: 1,
        private: false,
        text: text.to_owned(),
        sender_type: None,
        sender_id: None,
        created_at: format!("2024-01-15 10:{:02}:00", id % 60),
        deleted: false,
        attachments: Vec::new(),
    }
}

fn ticket_job(
    conv: i64,
    contact_snapshot: ContactSnapshot,
    first: MessageSnapshot,
) -> (String, String, JobKind) {
    (
        keys::conversation_queue(conv),
        keys::create_ticket(conv),
        JobKind::CreateTicket {
            conversation: conversation(conv, contact_snapshot.id),
            contact: Some(contact_snapshot),
            first_message: first,
        },
    )
}

fn followup_job(conv: i64, msg: MessageSnapshot) -> (String, String, JobKind) {
    (
        keys::conversation_queue(conv),
        keys::create_followup(msg.id),
        JobKind::CreateFollowup {
            conversation_id: conv,
            message: msg,
        },
    )
}

fn enqueue(env: &JobEnv, jobs: Vec<(String, String, JobKind)>) {
    let borrowed: Vec<(&str, &str, JobKind)> = jobs
        .iter()
        .map(|(q, k, j)| (q.as_str(), k.as_str(), j.clone()))
        .collect();
    env.enqueue(&borrowed);
}

async fn insert_conversation_rows(env: &JobEnv, conversations: i64) {
    env.db
        .execute(&support::chatwoot::insert_contacts_sql(1, 2))
        .await;
    for _ in 0..conversations {
        env.db
            .execute(&support::chatwoot::insert_conversation_sql(1, 1))
            .await;
    }
}

#[tokio::test]
async fn steady_state_costs_one_request_per_followup() {
    let env = JobEnv::start_user_mode_glpi10().await;
    insert_conversation_rows(&env, 1).await;
    let c = contact(
        1,
        "Test User",
        Some("test@example.com"),
        Some("+1234567890"),
    );
    enqueue(
        &env,
        vec![ticket_job(1, c, message(10, 1, "Printer broken"))],
    );
    env.drain().await;
    env.emulator.clear_requests();
    enqueue(
        &env,
        (11..31)
            .map(|id| followup_job(1, message(id, 1, &format!("msg {id}"))))
            .collect(),
    );
    env.drain().await;
    let requests = env.glpi_requests();
    let posts = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/ITILFollowup")
        .count();
    assert_eq!(posts, 20);
    assert_eq!(
        requests.len(),
        20,
        "only the POSTs: {:?}",
        requests
            .iter()
            .map(|r| (&r.method, &r.path))
            .collect::<Vec<_>>()
    );
    assert_eq!(env.emulator.items("ITILFollowup").len(), 20);
    let state = env.state();
    let link = mappings::ticket_link(state.conn(), 1).unwrap().unwrap();
    assert_eq!(link.last_synced_message_id, Some(30));
    env.stop().await;
}

#[tokio::test]
async fn lost_answers_are_resolved_by_lookup_not_repeated() {
    let env = JobEnv::start_user_mode_glpi10().await;
    insert_conversation_rows(&env, 1).await;
    for itemtype in ["User", "Ticket", "ITILFollowup"] {
        env.emulator.inject(Fault::CommitThenDrop {
            count: 1,
            itemtype: Some(itemtype.to_owned()),
        });
    }
    let c = contact(1, "Test User", Some("test@example.com"), None);
    enqueue(
        &env,
        vec![
            ticket_job(1, c, message(10, 1, "first")),
            followup_job(1, message(11, 1, "second")),
        ],
    );
    env.drain().await;
    let synced_users = env
        .emulator
        .items("User")
        .into_iter()
        .filter(|u| u["name"] == "test@example.com")
        .count();
    assert_eq!(synced_users, 1);
    assert_eq!(env.emulator.items("Ticket").len(), 1);
    assert_eq!(env.emulator.items("ITILFollowup").len(), 1);
    let state = env.state();
    let ticket = mappings::ticket_link(state.conn(), 1).unwrap().unwrap();
    assert_eq!(
        ticket.glpi_ticket_id,
        env.emulator.items("Ticket")[0]["id"].as_i64().unwrap()
    );
    env.stop().await;
}

#[tokio::test]
async fn a_parked_job_blocks_only_its_own_conversation() {
    let env = JobEnv::start_user_mode_glpi10().await;
    insert_conversation_rows(&env, 2).await;
    // Conversation 1 never got a ticket: its followup is parked, and the
    // followup queued behind it waits; conversation 2 carries on.
    let c2 = contact(2, "Bob", Some("bob@example.com"), None);
    enqueue(
        &env,
        vec![
            followup_job(1, message(9, 1, "no ticket yet")),
            followup_job(1, message(12, 1, "behind the parked one")),
            ticket_job(2, c2, message(20, 2, "hello")),
            followup_job(2, message(21, 2, "more")),
        ],
    );
    env.drain().await;
    let state = env.state();
    let parked = chatwoot_glpi_bridge::outbox::parked(state.conn()).unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].reason.contains("no GLPI ticket"), "{parked:?}");
    assert_eq!(env.emulator.items("Ticket").len(), 1);
    assert_eq!(env.emulator.items("ITILFollowup").len(), 1);
    assert!(mappings::followup_link(state.conn(), 12).unwrap().is_none());
    assert!(mappings::followup_link(state.conn(), 21).unwrap().is_some());
    env.stop().await;
}

#[tokio::test]
async fn a_glpi_refusal_is_parked_with_glpis_reason() {
    let env = JobEnv::start_user_mode_glpi10().await;
    insert_conversation_rows(&env, 1).await;
    // An entity the API user cannot write to.
    env.accounts
        .accounts
        .lock()
        .unwrap()
        .get_mut(&1)
        .unwrap()
        .jobs
        .entity_id = 7;
    let c = contact(1, "Test User", Some("test@example.com"), None);
    enqueue(&env, vec![ticket_job(1, c, message(10, 1, "hello"))]);
    env.drain().await;
    let state = env.state();
    let parked = chatwoot_glpi_bridge::outbox::parked(state.conn()).unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].reason.contains("ERROR_GLPI_ADD"), "{parked:?}");
    assert!(env.emulator.items("Ticket").is_empty());
    env.stop().await;
}

#[tokio::test]
async fn two_conversations_of_one_contact_make_one_glpi_user() {
    let env = JobEnv::start(
        GlpiVersion::V11,
        GlpiPersonType::User,
        WorkerConfig::default(),
    )
    .await;
    insert_conversation_rows(&env, 4).await;
    let c = contact(
        1,
        "Same Person",
        Some("same@example.com"),
        Some("+33612345678"),
    );
    enqueue(
        &env,
        (1..=4)
            .map(|conv| ticket_job(conv, c.clone(), message(conv * 10, conv, "hi")))
            .collect(),
    );
    env.drain().await;
    let users: Vec<_> = env
        .emulator
        .items("User")
        .into_iter()
        .filter(|u| u["name"] == "same@example.com")
        .collect();
    assert_eq!(users.len(), 1);
    assert_eq!(env.emulator.items("Ticket").len(), 4);
    env.stop().await;
}

#[tokio::test]
async fn a_late_attachment_rewrites_the_followup() {
    let env = JobEnv::start_user_mode_glpi10().await;
    insert_conversation_rows(&env, 1).await;
    let c = contact(1, "Test User", Some("test@example.com"), None);
    enqueue(
        &env,
        vec![
            ticket_job(1, c, message(10, 1, "first")),
            followup_job(1, message(11, 1, "see photo")),
        ],
    );
    env.drain().await;
    let mut late = message(11, 1, "see photo");
    late.attachments.push(AttachmentSnapshot {
        id: 5,
        external_url: Some("https://files.example/p.png".to_owned()),
        file_type: 0,
        fallback_title: None,
    });
    enqueue(
        &env,
        vec![(
            keys::conversation_queue(1),
            keys::update_followup(11, 1),
            JobKind::UpdateFollowup {
                conversation_id: 1,
                message: late,
            },
        )],
    );
    env.drain().await;
    let followups = env.emulator.items("ITILFollowup");
    assert_eq!(followups.len(), 1);
    let content = followups[0]["content"].as_str().unwrap();
    assert!(content.contains("https://files.example/p.png"), "{content}");
    env.stop().await;
}

#[tokio::test]
async fn an_adopted_ticket_is_reconciled_before_posting() {
    let env = JobEnv::start_user_mode_glpi10().await;
    insert_conversation_rows(&env, 1).await;
    let c = contact(1, "Test User", Some("test@example.com"), None);
    enqueue(
        &env,
        vec![
            ticket_job(1, c, message(10, 1, "first")),
            followup_job(1, message(11, 1, "second")),
            followup_job(1, message(12, 1, "third")),
        ],
    );
    env.drain().await;
    let ticket_id = env.emulator.items("Ticket")[0]["id"].as_i64().unwrap();
    // The state file is lost; Chatwoot's key lags one message behind (the
    // write-back of message 12 never happened). The planner adopts it.
    {
        let state = env.state();
        state
            .conn()
            .execute_batch("DELETE FROM ticket_links; DELETE FROM followup_links;")
            .unwrap();
        mappings::adopt_ticket(state.conn(), 1, 1, ticket_id, Some(11)).unwrap();
    }
    env.emulator.clear_requests();
    enqueue(
        &env,
        vec![
            followup_job(1, message(12, 1, "third")),
            followup_job(1, message(13, 1, "fourth")),
        ],
    );
    env.drain().await;
    let posts: Vec<_> = env
        .glpi_requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "only message 13 is new");
    let lists = env
        .glpi_requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/ITILFollowup"))
        .count();
    assert_eq!(lists, 1, "one reconciliation, then one POST per message");
    assert_eq!(env.emulator.items("ITILFollowup").len(), 3);
    let state = env.state();
    assert!(
        mappings::ticket_link(state.conn(), 1)
            .unwrap()
            .unwrap()
            .reconciled
    );
    assert_eq!(
        mappings::ticket_link(state.conn(), 1)
            .unwrap()
            .unwrap()
            .last_synced_message_id,
        Some(13)
    );
    env.stop().await;
}

#[tokio::test]
async fn an_email_glpi_refuses_does_not_park_the_ticket() {
    let env = JobEnv::start(
        GlpiVersion::V10,
        GlpiPersonType::Contact,
        WorkerConfig::default(),
    )
    .await;
    insert_conversation_rows(&env, 1).await;
    // Plausible to Chatwoot, refused by PHP's FILTER_VALIDATE_EMAIL.
    let c = contact(1, "Odd Address", Some("odd..dots@example.com"), None);
    enqueue(&env, vec![ticket_job(1, c, message(10, 1, "hello"))]);
    env.drain().await;
    let state = env.state();
    assert!(chatwoot_glpi_bridge::outbox::parked(state.conn())
        .unwrap()
        .is_empty());
    let tickets = env.emulator.items("Ticket");
    assert_eq!(tickets.len(), 1);
    let content =
        chatwoot_glpi_bridge::glpi::decode_glpi_entities(tickets[0]["content"].as_str().unwrap());
    assert!(
        content.contains("Email: odd..dots@example.com"),
        "{content}"
    );
    env.stop().await;
}
