//! Backfilled rows outside the backfill policy (`RowOp::SnapshotCacheOnly`):
//! known to the planner, nothing sent; later live changes to them plan as
//! they would for any known row.

use serde_json::json;

use crate::chatwoot::{AttachmentRow, Field, Row, RowOp};
use crate::outbox::JobKind;
use crate::state::mappings;

use super::cache;
use super::test_support::*;

use RowOp::{Insert, SnapshotCacheOnly, Update};

/// Account 1 syncing; the backfill (policy `none`) left contacts 5
/// (identifiable), 6 (not identifiable) and 9 (GLPI user 77 in its keys),
/// conversation 7 of contact 5 and conversation 8 (GLPI ticket 500 in its
/// keys), all cache only.
fn backfilled_cache_only() -> Harness {
    let mut h = Harness::syncing();
    let mut carol = contact_row(9, "Carol", Some("carol@example.com"), None);
    carol.additional_attributes = Field::Value(json!({"external": {"glpi_user_id": 77}}));
    let mut adopted = conversation_row(8, 9, 0, None);
    adopted.additional_attributes = Field::Value(json!({"glpi": {"ticket_id": 500}}));
    let stats = h.commit(vec![
        contact(
            SnapshotCacheOnly,
            contact_row(5, "Alice", Some("alice@example.com"), None),
        ),
        contact(SnapshotCacheOnly, contact_row(6, "", None, None)),
        contact(SnapshotCacheOnly, carol),
        conversation(SnapshotCacheOnly, conversation_row(7, 5, 0, None)),
        conversation(SnapshotCacheOnly, adopted),
    ]);
    assert!(stats.jobs.is_empty(), "{stats:?}");
    assert_eq!(stats.skipped, 0, "not sent is not a skip: {stats:?}");
    h
}

#[test]
fn cache_only_rows_are_known_adopted_and_plan_nothing() {
    let h = backfilled_cache_only();
    assert!(h.jobs().is_empty(), "{:?}", h.jobs());
    let conn = h.conn();
    assert!(cache::skips(conn).unwrap().is_empty());
    let alice = cache::contact(conn, 5).unwrap().expect("contact 5 cached");
    assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
    let c7 = cache::conversation(conn, 7)
        .unwrap()
        .expect("conversation 7 cached");
    assert!(!c7.ticket_planned);
    // GLPI ids in Chatwoot's keys are adopted: no duplicate later.
    assert_eq!(
        mappings::contact_link(conn, 9).unwrap().unwrap().glpi_id,
        77
    );
    assert_eq!(
        mappings::ticket_link(conn, 8)
            .unwrap()
            .unwrap()
            .glpi_ticket_id,
        500
    );
}

#[test]
fn a_live_message_in_an_old_conversation_creates_its_ticket_with_that_message_first() {
    let mut h = backfilled_cache_only();
    // A status change alone: GLPI has no ticket to update yet.
    h.commit(vec![conversation(
        Update,
        conversation_row(7, 5, 1, Some(2)),
    )]);
    assert!(h.jobs().is_empty(), "{:?}", h.jobs());
    h.commit(vec![message(Insert, message_row(70, 7, "Still broken"))]);
    let jobs = h.jobs();
    let ticket = jobs
        .iter()
        .find(|(_, k, _)| k == "ticket:conversation:7")
        .unwrap_or_else(|| panic!("{jobs:?}"));
    match &ticket.2 {
        JobKind::CreateTicket {
            conversation,
            contact,
            first_message,
        } => {
            assert_eq!(conversation.id, 7);
            assert_eq!((conversation.status, conversation.priority), (1, Some(2)));
            assert_eq!(contact.as_ref().map(|c| c.id), Some(5));
            assert_eq!(first_message.id, 70);
            assert_eq!(first_message.text, "Still broken");
        }
        other => panic!("{other:?}"),
    }
    // In the adopted conversation, a followup on the existing ticket.
    h.run_all_jobs();
    h.commit(vec![message(Insert, message_row(80, 8, "Any news?"))]);
    assert_eq!(
        h.job_keys(),
        vec![
            "followup:message:80".to_owned(),
            "writeback:conversation:8".to_owned()
        ]
    );
}

#[test]
fn a_visible_edit_of_an_old_contact_syncs_it_and_a_touch_does_not() {
    let mut h = backfilled_cache_only();
    h.commit(vec![contact(
        Update,
        contact_row(5, "Alice", Some("alice@example.com"), None),
    )]);
    assert!(h.jobs().is_empty(), "nothing GLPI shows changed");
    h.commit(vec![contact(
        Update,
        contact_row(5, "Alice Martin", Some("alice@example.com"), None),
    )]);
    let jobs = h.jobs();
    assert!(
        matches!(&jobs[0].2, JobKind::SyncContact { contact } if contact.id == 5
            && contact.name.as_deref() == Some("Alice Martin")),
        "{jobs:?}"
    );
}

#[test]
fn updates_of_messages_never_backfilled_plan_nothing_and_do_not_fail() {
    let mut h = backfilled_cache_only();
    let mut gone = message_row(60, 7, "Message deleted");
    gone.content_attributes = Field::Value(json!({"deleted": true}));
    let stats = h.commit(vec![
        message(Update, gone),
        attachment(Insert, 600, 60, "https://x/late.png"),
        deleted(Row::Attachment(AttachmentRow {
            id: 600,
            ..Default::default()
        })),
    ]);
    assert_eq!(stats.changes, 3);
    assert!(h.jobs().is_empty(), "{:?}", h.jobs());
    // The message is known now, still not in GLPI.
    let cached = cache::message(h.conn(), 60).unwrap().unwrap();
    assert!(cached.deleted && cached.snapshot.is_none());
}
