//! Invariant 6, bad input at the GLPI side: every job ends in GLPI correctly
//! or is parked with a reason the operator can read (and retry); nothing is
//! dropped silently, nothing crashes, and a parked job blocks only its queue.
//!
//! Covered here with the real workers against the emulator (GLPI 10 and 11):
//! an entity the API user cannot write to, invalid and unusual email
//! addresses, 150,000-character messages, emoji, HTML and `<script>` in
//! content, and a followup for a conversation that has no ticket.

mod faults_common;
mod support;

use std::time::Duration;

use chatwoot_glpi_bridge::glpi_emulator::GlpiVersion;
use chatwoot_glpi_bridge::outbox::{
    self, keys, ContactSnapshot, ConversationSnapshot, JobKind, MessageSnapshot,
};
use chatwoot_glpi_bridge::state::mappings::{self, GlpiPersonType};
use faults_common::Rig;

const DRAIN: Duration = Duration::from_secs(30);

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

fn message(id: i64, conversation_id: i64, text: &str) -> MessageSnapshot {
    MessageSnapshot {
        id,
        conversation_id,
        message_type: 0,
        private: false,
        text: text.to_owned(),
        sender_type: Some("Contact".to_owned()),
        sender_id: Some(1),
        created_at: "2026-11-28 08:00:00.5".to_owned(),
        deleted: false,
        attachments: Vec::new(),
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
        created_at: "2026-11-28 07:59:00".to_owned(),
    }
}

async fn insert_contact_row(rig: &Rig, c: &ContactSnapshot) {
    rig.db
        .connect()
        .await
        .execute(
            "INSERT INTO contacts (id, account_id, name, email, phone_number, created_at, updated_at) \
             VALUES ($1, 1, $2, $3, $4, now(), now())",
            &[&(c.id as i32), &c.name, &c.email, &c.phone_number],
        )
        .await
        .expect("contact row");
}

/// Text as GLPI shows it: GLPI 10 stores `&`, `<`, `>` as numeric entities.
fn shown(content: &str) -> String {
    content
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}

fn ticket_job(conversation_id: i64, contact: &ContactSnapshot, text: &str) -> JobKind {
    JobKind::CreateTicket {
        conversation: conversation(conversation_id, contact.id),
        contact: Some(contact.clone()),
        first_message: message(conversation_id * 100, conversation_id, text),
    }
}

fn enqueue_ticket(rig: &Rig, conversation_id: i64, contact: &ContactSnapshot, text: &str) {
    rig.enqueue(
        &keys::conversation_queue(conversation_id),
        &keys::create_ticket(conversation_id),
        ticket_job(conversation_id, contact, text),
    );
}

fn enqueue_followup(rig: &Rig, conversation_id: i64, message_id: i64, text: &str) {
    rig.enqueue(
        &keys::conversation_queue(conversation_id),
        &keys::create_followup(message_id),
        JobKind::CreateFollowup {
            conversation_id,
            message: message(message_id, conversation_id, text),
        },
    );
}

/// An entity the GLPI API user may not create in: the jobs are parked with
/// GLPI's refusal as the reason, kept (retryable), and nothing is created.
async fn unwritable_entity(version: GlpiVersion) {
    let mut rig = Rig::new(version, GlpiPersonType::User).await;
    rig.account.jobs.entity_id = 5;
    let c = contact(1, "Zoé O'Neil", Some("zoe@example.com"), None);
    insert_contact_row(&rig, &c).await;
    enqueue_ticket(&rig, 3, &c, "Hello");
    enqueue_followup(&rig, 3, 301, "Second message");
    let parked = rig.drain(DRAIN).await;
    assert_eq!(parked.len(), 1, "the ticket job is parked: {parked:?}");
    assert!(
        parked[0].contains("ticket:conversation:3") && parked[0].contains("permission"),
        "the reason is GLPI's refusal: {parked:?}"
    );
    assert_eq!(rig.count("Ticket"), 0);
    // The followup is kept behind its parked ticket, not dropped.
    let depth = outbox::depth(rig.state().conn()).expect("depth");
    assert_eq!((depth.pending, depth.parked), (1, 1));

    // The operator fixes the rights (here: the setting) and retries.
    rig.account.jobs.entity_id = 0;
    outbox::retry_parked(rig.state().conn(), outbox::ParkedSelection::All).expect("retry");
    let parked = rig.drain(DRAIN).await;
    assert!(parked.is_empty(), "{parked:?}");
    assert_eq!(rig.count("Ticket"), 1);
    assert_eq!(rig.count("ITILFollowup"), 1);
}

/// Contacts with odd or invalid emails all end as exactly one GLPI user
/// each, identified by what GLPI accepts (never parked for a bad address
/// when the contact has a name or phone).
async fn unusual_emails(version: GlpiVersion) {
    let rig = Rig::new(version, GlpiPersonType::User).await;
    let emails = [
        "not-an-email",
        "two@@example.com",
        "trailing.dot@example.com.",
        "with space@example.com",
        "first+tag@example.com",
        "o'neil@example.com",
        "UPPER.Case@Example.COM",
        "zoé@exämple.com",
        "a!b@exa_mple.com",
        "x@localhost",
    ];
    for (i, email) in emails.iter().enumerate() {
        let id = i as i64 + 1;
        let c = contact(id, &format!("Person {id}"), Some(email), None);
        insert_contact_row(&rig, &c).await;
        rig.enqueue(
            &keys::contact_queue(id),
            &keys::sync_contact(id, 1),
            JobKind::SyncContact { contact: c },
        );
    }
    let users_before = rig.count("User");
    let parked = rig.drain(DRAIN).await;
    assert!(
        parked.is_empty(),
        "no contact parked for its email: {parked:?}"
    );
    assert_eq!(rig.count("User") - users_before, emails.len());
    for id in 1..=emails.len() as i64 {
        assert!(
            mappings::contact_link(rig.state().conn(), id)
                .unwrap()
                .is_some(),
            "contact {id} ({}) is linked",
            emails[id as usize - 1]
        );
    }
}

/// 150,000 characters (Chatwoot's limit) of text with emoji, HTML and a
/// script tag, as ticket description and as followup: stored whole, and
/// shown as text (escaped), never as markup.
async fn long_and_hostile_content(version: GlpiVersion) {
    let rig = Rig::new(version, GlpiPersonType::User).await;
    let c = contact(1, "Zoé O'Neil", Some("zoe@example.com"), None);
    insert_contact_row(&rig, &c).await;
    let hostile = "<script>alert('x')</script> <b>bold</b> & 😀🇫🇷 \"q\" 'a'";
    let filler = 150_000 - hostile.chars().count();
    let mut long: String = "Start lorem ipsum ".chars().cycle().take(filler).collect();
    long.push_str(hostile);
    assert_eq!(long.chars().count(), 150_000);
    enqueue_ticket(&rig, 3, &c, &long);
    enqueue_followup(&rig, 3, 301, &long);
    enqueue_followup(&rig, 3, 302, hostile);
    let parked = rig.drain(DRAIN).await;
    assert!(parked.is_empty(), "{parked:?}");
    let ticket = rig.glpi.items("Ticket")[0].clone();
    let followups = rig.glpi.items("ITILFollowup");
    assert_eq!(followups.len(), 2);
    for content in [
        ticket["content"].as_str().unwrap(),
        followups[0]["content"].as_str().unwrap(),
        followups[1]["content"].as_str().unwrap(),
    ] {
        let text = shown(content);
        assert!(
            !text.contains("<script>"),
            "a script tag reached GLPI as markup"
        );
        assert!(
            text.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
            "the script tag is shown as text"
        );
        assert!(
            text.contains("&lt;b&gt;bold&lt;/b&gt; &amp; 😀🇫🇷"),
            "HTML and emoji shown as text: {}",
            &text[text.len().saturating_sub(300)..]
        );
    }
    let first = shown(ticket["content"].as_str().unwrap());
    assert!(
        first.matches("lorem ipsum").count() == long.matches("lorem ipsum").count(),
        "the 150,000-character message is whole in the description"
    );
    assert_eq!(
        shown(followups[0]["content"].as_str().unwrap())
            .matches("lorem ipsum")
            .count(),
        long.matches("lorem ipsum").count(),
        "the 150,000-character message is whole in its followup"
    );
    // Titles are cut to 80 characters.
    assert!(ticket["name"].as_str().unwrap().chars().count() <= 80);
}

/// A followup whose conversation has no ticket is parked with that reason,
/// and blocks only its own conversation.
async fn followup_without_ticket(version: GlpiVersion) {
    let rig = Rig::new(version, GlpiPersonType::User).await;
    let c = contact(1, "Bob Smith", Some("bob@example.com"), None);
    insert_contact_row(&rig, &c).await;
    enqueue_followup(&rig, 9, 901, "orphan message");
    enqueue_followup(&rig, 9, 902, "another one");
    enqueue_ticket(&rig, 4, &c, "other conversation");
    enqueue_followup(&rig, 4, 401, "goes through");
    let parked = rig.drain(DRAIN).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].contains("followup:message:901") && parked[0].contains("no GLPI ticket"));
    assert_eq!(rig.count("Ticket"), 1);
    assert_eq!(rig.count("ITILFollowup"), 1);
    let depth = outbox::depth(rig.state().conn()).expect("depth");
    assert_eq!(
        (depth.pending, depth.parked),
        (1, 1),
        "902 waits behind 901"
    );
}

macro_rules! both_versions {
    ($($name:ident),*) => {
        mod glpi10 {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(GlpiVersion::V10).await } )*
        }
        mod glpi11 {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(GlpiVersion::V11).await } )*
        }
    };
}

both_versions!(
    unwritable_entity,
    unusual_emails,
    long_and_hostile_content,
    followup_without_ticket
);
