//! The requester rule: a conversation that moves to another contact after
//! its ticket was planned gets the new contact as requester (a waiting
//! CreateTicket is patched instead), and nothing else plans a requester
//! change (invariant 4).

use crate::chatwoot::{Field, RowOp};
use crate::outbox::{self, keys, ContactSnapshot, JobKind};

use super::test_support::*;

use RowOp::{Insert, Update};

/// Account 1 syncing, contacts 5 and 6, conversation 7 of contact 5 with
/// its ticket created (jobs ran).
fn with_ticket() -> Harness {
    let mut h = with_conversation();
    h.commit(vec![
        contact(
            Insert,
            contact_row(6, "Base Person", Some("base@example.com"), None),
        ),
        message(Insert, message_row(70, 7, "Hello")),
    ]);
    h.run_all_jobs();
    h
}

fn requester_changes(h: &Harness) -> Vec<(String, Option<i64>, Option<ContactSnapshot>)> {
    h.jobs()
        .into_iter()
        .filter_map(|(_, key, kind)| match kind {
            JobKind::ChangeRequester {
                previous_contact_id,
                contact,
                ..
            } => Some((key, previous_contact_id, contact)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_contact_change_after_the_ticket_plans_a_requester_change() {
    let mut h = with_ticket();
    h.commit(vec![conversation(Update, conversation_row(7, 6, 0, None))]);
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].0, keys::conversation_queue(7));
    let changes = requester_changes(&h);
    let (key, previous, contact) = &changes[0];
    assert!(key.starts_with("requester:conversation:7@"), "{key}");
    assert_eq!(*previous, Some(5));
    let contact = contact.as_ref().expect("the new contact is identifiable");
    assert_eq!(contact.id, 6);
    assert_eq!(contact.email.as_deref(), Some("base@example.com"));

    // One UPDATE changing contact and status plans both, requester first.
    h.run_all_jobs();
    h.commit(vec![conversation(Update, conversation_row(7, 5, 1, None))]);
    let names: Vec<&str> = h.jobs().iter().map(|(_, _, k)| k.name()).collect();
    assert_eq!(names, ["change_requester", "update_ticket"]);
}

#[test]
fn no_requester_change_without_a_contact_change_or_from_the_bridge() {
    let mut h = with_ticket();
    // Same contact, other columns touched: nothing.
    let mut row = conversation_row(7, 5, 0, None);
    row.contact_id = Field::Unchanged;
    h.commit(vec![conversation(Update, row)]);
    h.commit(vec![conversation(Update, conversation_row(7, 5, 0, None))]);
    assert!(h.jobs().is_empty(), "{:?}", h.jobs());
    // The bridge's own write-back never plans (even if it carried a change).
    h.commit_from_bridge(vec![conversation(Update, conversation_row(7, 6, 0, None))]);
    assert!(h.jobs().is_empty(), "{:?}", h.jobs());
}

#[test]
fn before_any_ticket_the_create_takes_the_contact_of_its_time() {
    let mut h = with_conversation();
    h.commit(vec![contact(
        Insert,
        contact_row(6, "Base Person", Some("base@example.com"), None),
    )]);
    h.run_all_jobs();
    h.commit(vec![conversation(Update, conversation_row(7, 6, 0, None))]);
    assert!(h.jobs().is_empty(), "no ticket planned yet: {:?}", h.jobs());
    h.commit(vec![message(Insert, message_row(70, 7, "Hello"))]);
    match &h.jobs()[0].2 {
        JobKind::CreateTicket {
            conversation,
            contact,
            ..
        } => {
            assert_eq!(conversation.contact_id, Some(6));
            assert_eq!(contact.as_ref().map(|c| c.id), Some(6));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_create_no_worker_started_is_patched_with_the_new_contact() {
    let mut h = with_conversation();
    h.commit(vec![contact(
        Insert,
        contact_row(6, "Base Person", Some("base@example.com"), None),
    )]);
    h.run_all_jobs();
    // The CreateTicket waits behind another job of the conversation's queue
    // (not its head), so no worker can have started it.
    outbox::enqueue(
        h.conn(),
        1,
        &keys::conversation_queue(7),
        "earlier-job",
        &JobKind::WriteBackConversation { conversation_id: 7 },
    )
    .unwrap();
    h.commit(vec![message(Insert, message_row(70, 7, "Hello"))]);
    let stats = h.commit(vec![conversation(Update, conversation_row(7, 6, 0, None))]);
    assert_eq!(stats.patched, 1);
    assert!(requester_changes(&h).is_empty(), "{:?}", h.jobs());
    let create = h
        .jobs()
        .into_iter()
        .find_map(|(_, _, k)| match k {
            JobKind::CreateTicket {
                conversation,
                contact,
                ..
            } => Some((conversation.contact_id, contact.map(|c| c.id))),
            _ => None,
        })
        .unwrap();
    assert_eq!(create, (Some(6), Some(6)));
}

#[test]
fn a_create_a_worker_may_run_gets_a_requester_change_behind_it() {
    let mut h = with_conversation();
    h.commit(vec![contact(
        Insert,
        contact_row(6, "Base Person", Some("base@example.com"), None),
    )]);
    h.run_all_jobs();
    h.commit(vec![message(Insert, message_row(70, 7, "Hello"))]);
    // The CreateTicket is its queue's head: a worker may be creating the
    // ticket with contact 5 right now.
    let stats = h.commit(vec![conversation(Update, conversation_row(7, 6, 0, None))]);
    assert_eq!(stats.patched, 0);
    let names: Vec<&str> = h.jobs().iter().map(|(_, _, k)| k.name()).collect();
    assert_eq!(
        names,
        [
            "create_ticket",
            "write_back_conversation",
            "change_requester"
        ]
    );
    assert_eq!(requester_changes(&h)[0].1, Some(5));

    // In the create's own transaction it is patched.
    let mut h = with_conversation();
    h.commit(vec![contact(
        Insert,
        contact_row(6, "Base Person", Some("base@example.com"), None),
    )]);
    h.run_all_jobs();
    let stats = h.commit(vec![
        message(Insert, message_row(70, 7, "Hello")),
        conversation(Update, conversation_row(7, 6, 0, None)),
    ]);
    assert_eq!(stats.patched, 1);
    assert!(requester_changes(&h).is_empty());
}

#[test]
fn moving_to_an_unidentifiable_contact_plans_a_removal() {
    let mut h = with_ticket();
    h.commit(vec![contact(Insert, contact_row(8, "", None, None))]);
    h.run_all_jobs();
    h.commit(vec![conversation(Update, conversation_row(7, 8, 0, None))]);
    let changes = requester_changes(&h);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].1, Some(5));
    assert_eq!(changes[0].2, None, "no requester to add");
}
