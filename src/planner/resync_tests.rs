//! Unit tests of `resync` planning on a real state file: which jobs, in
//! which order, and what is refused.

use serde_json::json;

use super::resync::{self, CurrentMessages, ResyncError};
use super::test_support::*;
use crate::chatwoot::{Field, MessageRow, RowOp::Insert};
use crate::outbox::{self, JobKind};

fn activity(id: i64, conversation_id: i64) -> MessageRow {
    MessageRow {
        message_type: Field::Value(2),
        ..message_row(id, conversation_id, "Conversation was marked resolved")
    }
}

fn current(messages: Vec<MessageRow>) -> CurrentMessages {
    CurrentMessages {
        messages,
        attachments: vec![],
    }
}

fn plan_conversation(
    h: &Harness,
    id: i64,
    now: &CurrentMessages,
) -> Result<Vec<String>, ResyncError> {
    resync::conversation(h.conn(), h.planner.book(), id, now)?;
    Ok(h.job_keys())
}

#[test]
fn a_conversation_resync_queues_the_ticket_check_then_each_shown_message_then_the_write_back() {
    let h = with_conversation();
    let now = current(vec![
        message_row(72, 7, "second"),
        message_row(71, 7, "first"),
        activity(73, 7),
    ]);
    let keys = plan_conversation(&h, 7, &now).unwrap();
    assert_eq!(
        keys,
        vec![
            "resync:ticket:conversation:7",
            "resync:requester:conversation:7",
            "resync:followup:message:72",
            "writeback:conversation:7",
        ]
    );
    let jobs = h.jobs();
    let JobKind::ResyncTicket {
        conversation,
        contact,
        first_message,
    } = &jobs[0].2
    else {
        panic!("{:?}", jobs[0]);
    };
    assert_eq!(conversation.id, 7);
    assert_eq!(contact.as_ref().map(|c| c.id), Some(5));
    assert_eq!(first_message.as_ref().map(|m| m.id), Some(71));

    // Asked again before the workers ran it: nothing added.
    let again = plan_conversation(&h, 7, &now).unwrap();
    assert_eq!(again, keys);
    let planned = resync::conversation(h.conn(), h.planner.book(), 7, &now).unwrap();
    assert!(planned
        .jobs
        .iter()
        .filter(|j| !j.kind.starts_with("write_back"))
        .all(|j| j.already_queued));
}

#[test]
fn messages_an_adopted_ticket_already_showed_are_not_posted_again() {
    let mut h = Harness::syncing();
    let mut row = conversation_row(7, 5, 0, None);
    row.additional_attributes =
        Field::Value(json!({"glpi": {"ticket_id": 900, "last_synced_message_id": 71}}));
    h.commit(vec![
        contact(
            Insert,
            contact_row(5, "Test User", Some("t@example.com"), None),
        ),
        conversation(Insert, row),
    ]);
    h.run_all_jobs();
    let keys = plan_conversation(
        &h,
        7,
        &current(vec![
            message_row(70, 7, "a"),
            message_row(71, 7, "b"),
            message_row(72, 7, "c"),
        ]),
    )
    .unwrap();
    assert_eq!(
        keys,
        vec![
            "resync:ticket:conversation:7",
            "resync:requester:conversation:7",
            "resync:followup:message:72",
            "writeback:conversation:7",
        ]
    );
}

#[test]
fn refusals_say_what_to_do() {
    let h = with_conversation();
    let err = plan_conversation(&h, 8, &current(vec![])).unwrap_err();
    assert!(matches!(err, ResyncError::Unknown(_)), "{err}");
    let err = plan_conversation(&h, 7, &current(vec![activity(73, 7)])).unwrap_err();
    assert!(matches!(err, ResyncError::NoMessages(7)), "{err}");

    // A parked job at the head of the queue: the resync would wait behind it.
    let id = outbox::enqueue(
        h.conn(),
        1,
        &outbox::keys::contact_queue(5),
        &outbox::keys::write_back_contact(5),
        &JobKind::WriteBackContact { contact_id: 5 },
    )
    .unwrap()
    .id();
    outbox::park(h.conn(), id, "refused").unwrap();
    let err = resync::contact(h.conn(), h.planner.book(), 5).unwrap_err();
    assert!(
        err.to_string().contains(&format!("parked retry {id}")),
        "{err}"
    );
}

#[test]
fn a_contact_without_name_email_or_phone_is_refused_and_an_unsynced_account_named() {
    let mut h = Harness::syncing();
    h.commit(vec![
        contact(Insert, contact_row(6, "", None, None)),
        account(2, 0),
    ]);
    let err = resync::contact(h.conn(), h.planner.book(), 6).unwrap_err();
    assert!(matches!(err, ResyncError::NotIdentifiable(6)), "{err}");

    let mut other = contact_row(9, "Someone", Some("s@example.com"), None);
    other.account_id = Field::Value(2);
    h.commit(vec![contact(Insert, other)]);
    let err = resync::contact(h.conn(), h.planner.book(), 9).unwrap_err();
    assert!(
        matches!(err, ResyncError::AccountNotSyncing { account_id: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("no GLPI integration"), "{err}");
}
