//! Invariant 2, unknown outcomes: GLPI commits a create and the connection
//! drops before the answer (emulator `Fault::CommitThenDrop`). The worker must
//! find the record in GLPI before creating again: Users by email, phone or
//! login, Contacts by email or phone, Tickets and followups by the bridge's
//! marker, on GLPI 10 (HTML-encoded storage) and GLPI 11 (raw).
//!
//! Two ways to lose the answer are covered for every item type:
//! * `*_retried`: the worker sees the dropped connection, reschedules the job
//!   and resolves it on the retry;
//! * `*_after_crash`: the process dies right after the POST (the job is run by
//!   hand and its error thrown away, as if the process had been killed before
//!   recording anything), so the job restarts with no trace of the attempt.
//!
//! In each case GLPI must end with exactly one record.

mod faults_common;
mod support;

use std::time::Duration;

use chatwoot_glpi_bridge::glpi_emulator::{Fault, GlpiVersion};
use chatwoot_glpi_bridge::outbox::{
    keys, ContactSnapshot, ConversationSnapshot, JobKind, MessageSnapshot,
};
use chatwoot_glpi_bridge::state::mappings::{self, GlpiPersonType};
use chatwoot_glpi_bridge::worker::job;
use faults_common::Rig;

const DRAIN: Duration = Duration::from_secs(30);

/// How the answer of the faulted create is lost.
#[derive(Clone, Copy, Debug)]
enum Loss {
    /// The worker sees the dropped connection and retries.
    Retried,
    /// The process dies after sending: the attempt leaves no trace.
    Crash,
}

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

fn message(id: i64, conversation_id: i64, message_type: i32, text: &str) -> MessageSnapshot {
    MessageSnapshot {
        id,
        conversation_id,
        message_type,
        private: false,
        text: text.to_owned(),
        sender_type: Some(if message_type == 0 { "Contact" } else { "User" }.to_owned()),
        // Contact 1 for incoming messages, agent (user) 1 otherwise.
        sender_id: Some(1),
        created_at: format!("2026-11-28 08:00:{:02}.123456", id % 60),
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
        priority: Some(2),
        mail_subject: None,
        created_at: "2026-11-28 07:59:00.5".to_owned(),
    }
}

/// Loses the answer of the next create of `itemtype` the way `loss` says,
/// then lets the real workers drain the outbox.
async fn lose_then_drain(rig: &Rig, itemtype: &str, loss: Loss) {
    rig.glpi.inject(Fault::CommitThenDrop {
        count: 1,
        itemtype: Some(itemtype.to_owned()),
    });
    if let Loss::Crash = loss {
        // Run the job until GLPI has committed the create, then kill it: the
        // slow lookup that would resolve the lost answer never happens, and
        // nothing is recorded in the outbox (like SIGKILL at that instant).
        rig.glpi.inject(Fault::Latency(Duration::from_millis(300)));
        let before = rig.count(itemtype);
        let ctx = rig.context();
        let job = rig.next_job().expect("a job to run");
        let attempt =
            tokio::spawn(async move { job::execute(&ctx, &job).await.map_err(|e| e.to_string()) });
        let start = std::time::Instant::now();
        while rig.count(itemtype) == before {
            assert!(start.elapsed() < DRAIN, "the create never reached GLPI");
            assert!(
                !attempt.is_finished(),
                "the job ended before its create: {:?}",
                attempt.await
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        attempt.abort();
        let _ = attempt.await;
        rig.glpi.clear_faults();
    }
    let parked = rig.drain(DRAIN).await;
    assert!(parked.is_empty(), "nothing may be parked: {parked:?}");
}

async fn insert_contact_row(rig: &Rig, c: &ContactSnapshot) {
    rig.db
        .connect()
        .await
        .execute(
            "INSERT INTO contacts (id, account_id, name, email, phone_number, created_at, updated_at) \
             VALUES ($1, 1, $2, $3, $4, now(), now())",
            &[
                &(c.id as i32),
                &c.name,
                &c.email,
                &c.phone_number,
            ],
        )
        .await
        .expect("contact row");
}

async fn person_once(
    version: GlpiVersion,
    person_type: GlpiPersonType,
    c: ContactSnapshot,
    loss: Loss,
) {
    let rig = Rig::new(version, person_type).await;
    insert_contact_row(&rig, &c).await;
    rig.enqueue(
        &keys::contact_queue(c.id),
        &format!("contact:{}@1", c.id),
        JobKind::SyncContact { contact: c.clone() },
    );
    let itemtype = person_type.itemtype();
    let before = rig.count(itemtype);
    lose_then_drain(&rig, itemtype, loss).await;
    assert_eq!(
        rig.count(itemtype) - before,
        1,
        "exactly one GLPI {itemtype} for contact {c:?} ({version:?}, {loss:?}); requests: {:?}",
        rig.glpi
            .requests()
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect::<Vec<_>>()
    );
    let link = mappings::contact_link(rig.state().conn(), c.id)
        .expect("state")
        .expect("the contact is linked");
    let created = rig.glpi.items(itemtype).last().cloned().expect("created");
    assert_eq!(
        Some(link.glpi_id),
        created["id"].as_i64(),
        "linked to the one created"
    );
    // The write-back job ran too.
    let attrs: String = rig
        .db
        .connect()
        .await
        .query_one(
            "SELECT additional_attributes::text FROM contacts WHERE id = $1",
            &[&(c.id as i32)],
        )
        .await
        .expect("attrs")
        .get(0);
    let attrs: serde_json::Value = serde_json::from_str(&attrs).expect("json");
    assert_eq!(attrs["external"][person_type.writeback_key()], link.glpi_id);
}

/// A ticket (and its requester) and one followup, each create losing its
/// answer once.
async fn ticket_and_followup_once(version: GlpiVersion, person_type: GlpiPersonType, loss: Loss) {
    let rig = Rig::new(version, person_type).await;
    let c = contact(1, "Zoé O'Neil", Some("zoe.oneil@example.com"), None);
    insert_contact_row(&rig, &c).await;
    // Content GLPI 10 encodes: the marker must survive it.
    let first = message(
        11,
        5,
        0,
        "Printer <b>broken</b> & <script>alert(1)</script>\nsecond line",
    );
    rig.enqueue(
        &keys::conversation_queue(5),
        &keys::create_ticket(5),
        JobKind::CreateTicket {
            conversation: conversation(5, 1),
            contact: Some(c.clone()),
            first_message: first,
        },
    );
    let users_before = rig.count("User");
    lose_then_drain(&rig, "Ticket", loss).await;
    assert_eq!(
        rig.count("Ticket"),
        1,
        "exactly one ticket ({version:?}, {loss:?})"
    );
    assert_eq!(
        rig.count("User") - users_before,
        1,
        "exactly one requester user"
    );
    let ticket = rig.glpi.items("Ticket")[0].clone();
    let link = mappings::ticket_link(rig.state().conn(), 5)
        .expect("state")
        .expect("ticket linked");
    assert_eq!(ticket["id"].as_i64(), Some(link.glpi_ticket_id));

    // Two followups; the first one's answer is lost.
    for (id, text) in [(12, "Agent reply: R&D says <soon>"), (13, "thanks 🙏")] {
        rig.enqueue(
            &keys::conversation_queue(5),
            &keys::create_followup(id),
            JobKind::CreateFollowup {
                conversation_id: 5,
                message: message(id, 5, 1, text),
            },
        );
    }
    lose_then_drain(&rig, "ITILFollowup", loss).await;
    let followups = rig.glpi.items("ITILFollowup");
    let markers: Vec<Option<i64>> = followups
        .iter()
        .map(|f| support::workload::message_marker(f["content"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        markers,
        [Some(12), Some(13)],
        "one followup per message, in order ({version:?}, {loss:?})"
    );
    assert!(followups
        .iter()
        .all(|f| f["items_id"].as_i64() == Some(link.glpi_ticket_id)));
}

macro_rules! both_versions {
    ($($name:ident => $f:ident($($arg:expr),*);)*) => {
        mod glpi10 {
            use super::*;
            $( #[tokio::test] async fn $name() { $f(GlpiVersion::V10, $($arg),*).await } )*
        }
        mod glpi11 {
            use super::*;
            $( #[tokio::test] async fn $name() { $f(GlpiVersion::V11, $($arg),*).await } )*
        }
    };
}

both_versions! {
    user_by_email_retried => person_once(GlpiPersonType::User, contact(1, "Zoé O'Neil", Some("zoe@example.com"), None), Loss::Retried);
    user_by_email_after_crash => person_once(GlpiPersonType::User, contact(1, "Zoé O'Neil", Some("zoe@example.com"), None), Loss::Crash);
    user_by_phone_after_crash => person_once(GlpiPersonType::User, contact(2, "Bob Smith", None, Some("+49 30 1234567")), Loss::Crash);
    user_by_login_after_crash => person_once(GlpiPersonType::User, contact(3, "Name Only", None, None), Loss::Crash);
    contact_by_email_retried => person_once(GlpiPersonType::Contact, contact(1, "Zoé O'Neil", Some("zoe@example.com"), None), Loss::Retried);
    contact_by_email_after_crash => person_once(GlpiPersonType::Contact, contact(1, "Zoé O'Neil", Some("zoe@example.com"), None), Loss::Crash);
    contact_by_phone_after_crash => person_once(GlpiPersonType::Contact, contact(2, "Bob Smith", None, Some("+33 6 12 34 56 78")), Loss::Crash);
    ticket_and_followups_retried => ticket_and_followup_once(GlpiPersonType::User, Loss::Retried);
    ticket_and_followups_after_crash => ticket_and_followup_once(GlpiPersonType::User, Loss::Crash);
    contact_mode_ticket_after_crash => contact_mode_ticket();
}

/// Contact mode: the ticket has an email-only requester and the contact's
/// details in its description; the marker still finds it.
async fn contact_mode_ticket(version: GlpiVersion) {
    let rig = Rig::new(version, GlpiPersonType::Contact).await;
    let c = contact(
        1,
        "Zoé O'Neil",
        Some("zoe.oneil@example.com"),
        Some("+33 6 12 34 56 78"),
    );
    insert_contact_row(&rig, &c).await;
    rig.enqueue(
        &keys::conversation_queue(7),
        &keys::create_ticket(7),
        JobKind::CreateTicket {
            conversation: conversation(7, 1),
            contact: Some(c),
            first_message: message(21, 7, 0, "Hello & <welcome>"),
        },
    );
    lose_then_drain(&rig, "Ticket", Loss::Crash).await;
    assert_eq!(rig.count("Ticket"), 1);
    assert_eq!(rig.count("Contact"), 1);
}
