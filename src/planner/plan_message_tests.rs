//! Message rules: tickets, followups, attachments (same transaction and
//! late), deletions, private and activity messages.

use serde_json::json;

use crate::chatwoot::{AttachmentRow, Field, Row, RowOp};
use crate::outbox::JobKind;

use super::test_support::*;

use RowOp::{Insert, Update};

#[test]
fn first_message_creates_the_ticket_later_ones_followups_in_one_queue() {
    let mut h = with_conversation();
    h.commit(vec![message(Insert, message_row(70, 7, "Hello"))]);
    h.commit(vec![message(Insert, message_row(71, 7, "Anyone?"))]);
    let mut reply = message_row(72, 7, "Agent reply");
    reply.message_type = Field::Value(1);
    reply.sender_type = Field::Value("User".into());
    reply.processed_message_content = Field::Value("Agent reply (processed)".into());
    h.commit(vec![message(Insert, reply)]);
    assert_eq!(
        h.job_keys(),
        vec![
            "ticket:conversation:7",
            "followup:message:71",
            "followup:message:72",
            "writeback:conversation:7",
        ],
        "one coalesced write-back at the tail"
    );
    let jobs = h.jobs();
    assert!(jobs.iter().all(|(q, _, _)| q == "conversation:7"));
    match &jobs[0].2 {
        JobKind::CreateTicket {
            conversation,
            contact,
            first_message,
        } => {
            assert_eq!(conversation.display_id, 1007);
            assert_eq!(conversation.contact_id, Some(5));
            assert_eq!(conversation.created_at, "2026-01-02 03:04:05.123456");
            let contact = contact
                .as_ref()
                .expect("the contact travels with the ticket");
            assert_eq!(contact.email.as_deref(), Some("test@example.com"));
            assert_eq!(first_message.text, "Hello");
            assert_eq!(first_message.sender_type.as_deref(), Some("Contact"));
        }
        other => panic!("{other:?}"),
    }
    match &jobs[2].2 {
        JobKind::CreateFollowup { message, .. } => {
            assert_eq!(message.text, "Agent reply (processed)");
            assert_eq!(message.message_type, 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn private_notes_keep_their_flag_and_activity_messages_are_skipped() {
    let mut h = with_conversation();
    let mut note = message_row(70, 7, "internal note");
    note.private = Field::Value(true);
    note.message_type = Field::Value(1);
    let mut activity = message_row(71, 7, "Conversation was resolved by Agent");
    activity.message_type = Field::Value(2);
    activity.sender_type = Field::Null;
    h.commit(vec![message(Insert, note), message(Insert, activity)]);
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    match &jobs[0].2 {
        JobKind::CreateTicket { first_message, .. } => assert!(first_message.private),
        other => panic!("{other:?}"),
    }
    assert_eq!(jobs[1].1, "writeback:conversation:7");

    // A setting includes them.
    let mut s = settings();
    s["include_activity_messages"] = json!("true");
    h.commit(vec![hook(10, 1, true, s)]);
    let mut activity = message_row(72, 7, "Conversation was reopened");
    activity.message_type = Field::Value(2);
    h.commit(vec![message(Insert, activity)]);
    assert!(h.job_keys().contains(&"followup:message:72".to_owned()));
}

#[test]
fn status_and_priority_changes_update_the_ticket_only_when_changed() {
    let mut h = with_conversation();
    // No ticket yet: nothing to update.
    h.commit(vec![conversation(Update, conversation_row(7, 5, 2, None))]);
    assert!(h.jobs().is_empty());
    h.commit(vec![message(Insert, message_row(70, 7, "Hello"))]);
    match &h.jobs()[0].2 {
        JobKind::CreateTicket { conversation, .. } => assert_eq!(conversation.status, 2),
        other => panic!("{other:?}"),
    }
    h.run_all_jobs();
    h.commit(vec![conversation(
        Update,
        conversation_row(7, 5, 1, Some(3)),
    )]);
    h.commit(vec![conversation(
        Update,
        conversation_row(7, 5, 1, Some(3)),
    )]);
    h.commit(vec![conversation(Update, conversation_row(7, 5, 3, None))]);
    let jobs = h.jobs();
    let updates: Vec<_> = jobs
        .iter()
        .filter_map(|(_, _, k)| match k {
            JobKind::UpdateTicket {
                status, priority, ..
            } => Some((*status, *priority)),
            _ => None,
        })
        .collect();
    assert_eq!(updates, vec![(1, Some(3)), (3, None)]);
    assert!(jobs[0].1.starts_with("ticket-update:conversation:7@"));
}

#[test]
fn attachments_in_the_same_transaction_join_the_message() {
    let mut h = with_conversation();
    h.commit(vec![
        message(Insert, message_row(70, 7, "")),
        attachment(Insert, 700, 70, "https://cdn.example.com/a.png"),
        attachment(Insert, 701, 70, "https://cdn.example.com/b.pdf"),
    ]);
    h.commit(vec![
        message(Insert, message_row(71, 7, "see file")),
        attachment(Insert, 710, 71, "https://cdn.example.com/c.png"),
    ]);
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 3, "no update jobs: {jobs:?}");
    assert_eq!(
        attachment_urls(&jobs[0].2),
        vec![
            "https://cdn.example.com/a.png",
            "https://cdn.example.com/b.pdf"
        ]
    );
    assert_eq!(
        attachment_urls(&jobs[1].2),
        vec!["https://cdn.example.com/c.png"]
    );
}

#[test]
fn a_source_transaction_is_never_split_across_batches() {
    let mut h = with_conversation();
    h.planner.batch_size = 1;
    h.commit(vec![
        message(Insert, message_row(70, 7, "")),
        attachment(Insert, 700, 70, "https://cdn.example.com/a.png"),
    ]);
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(
        attachment_urls(&jobs[0].2),
        vec!["https://cdn.example.com/a.png"]
    );
}

#[test]
fn late_attachments_patch_waiting_jobs_or_update_the_followup() {
    let mut h = with_conversation();
    h.commit(vec![message(Insert, message_row(70, 7, "Hello"))]);
    h.commit(vec![message(Insert, message_row(71, 7, "more"))]);
    // The ticket job is its queue's head (a worker may be running it): a
    // late attachment to its message becomes an UpdateFollowup. Message 71's
    // job waits behind it, so it is patched in place.
    let stats = h.commit(vec![
        attachment(Insert, 700, 70, "https://x/a.png"),
        attachment(Insert, 710, 71, "https://x/b.png"),
    ]);
    assert_eq!(stats.patched, 1);
    let jobs = h.jobs();
    let keys: Vec<&str> = jobs.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), 4, "{keys:?}");
    assert_eq!(keys[0], "ticket:conversation:7");
    assert!(
        attachment_urls(&jobs[0].2).is_empty(),
        "the running job is untouched"
    );
    assert_eq!(keys[1], "followup:message:71");
    assert_eq!(attachment_urls(&jobs[1].2), vec!["https://x/b.png"]);
    assert!(
        keys[3].starts_with("followup-update:message:70@"),
        "{keys:?}"
    );
    assert_eq!(attachment_urls(&jobs[3].2), vec!["https://x/a.png"]);

    // After the followup ran, a late attachment updates it.
    h.run_all_jobs();
    h.commit(vec![attachment(Insert, 711, 71, "https://x/c.png")]);
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 1);
    match &jobs[0].2 {
        JobKind::UpdateFollowup { message, .. } => {
            assert_eq!(message.id, 71);
            assert_eq!(message.text, "more");
            assert_eq!(
                attachment_urls(&jobs[0].2),
                vec!["https://x/b.png", "https://x/c.png"]
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_deleted_message_updates_its_followup_once() {
    let mut h = with_conversation();
    h.commit(vec![
        message(Insert, message_row(70, 7, "Hello")),
        message(Insert, message_row(71, 7, "oops")),
        attachment(Insert, 710, 71, "https://x/secret.png"),
    ]);
    h.run_all_jobs();
    // Chatwoot: content replaced + deleted flag, then its attachments go,
    // in one transaction.
    let mut m = message_row(71, 7, "This message was deleted");
    m.content_attributes = Field::Value(json!({"deleted": true}));
    h.commit(vec![
        message(Update, m.clone()),
        deleted(Row::Attachment(AttachmentRow {
            id: 710,
            ..AttachmentRow::default()
        })),
    ]);
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    match &jobs[0].2 {
        JobKind::UpdateFollowup { message, .. } => {
            assert!(message.deleted);
            assert!(message.attachments.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // Seen again (e.g. a later status update of the message): no new job.
    h.run_all_jobs();
    h.commit(vec![message(Update, m)]);
    assert!(h.jobs().is_empty());
}

/// The backfill is one snapshot: its attachments (written after every
/// message) still join their message's first job, whatever the batching.
#[test]
fn backfilled_attachments_join_their_messages_across_batches() {
    let mut h = Harness::syncing();
    h.planner.batch_size = 2;
    h.commit(vec![
        contact(
            RowOp::Snapshot,
            contact_row(5, "A", Some("a@example.com"), None),
        ),
        conversation(RowOp::Snapshot, conversation_row(7, 5, 0, None)),
        message(RowOp::Snapshot, message_row(70, 7, "first")),
        message(RowOp::Snapshot, message_row(71, 7, "second")),
        message(RowOp::Snapshot, message_row(72, 7, "third")),
        attachment(RowOp::Snapshot, 700, 70, "https://x/a.png"),
        attachment(RowOp::Snapshot, 720, 72, "https://x/c.png"),
    ]);
    let jobs = h.jobs();
    let keys: Vec<&str> = jobs.iter().map(|(_, k, _)| k.as_str()).collect();
    assert!(
        !keys.iter().any(|k| k.starts_with("followup-update")),
        "{keys:?}"
    );
    let by_key = |key: &str| &jobs.iter().find(|(_, k, _)| k == key).unwrap().2;
    assert_eq!(
        attachment_urls(by_key("ticket:conversation:7")),
        vec!["https://x/a.png"]
    );
    assert!(attachment_urls(by_key("followup:message:71")).is_empty());
    assert_eq!(
        attachment_urls(by_key("followup:message:72")),
        vec!["https://x/c.png"]
    );
}
