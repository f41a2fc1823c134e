//! Pruning the message cache (`prune`) and the rules for changes that
//! arrive for a pruned message: deletions still reach GLPI, late
//! attachments are visible skips, nothing fails or duplicates.

use std::time::Duration;

use serde_json::json;

use crate::chatwoot::{AttachmentRow, Field, Row, RowOp};
use crate::outbox::JobKind;
use crate::state::mappings::{self, TicketLink};
use crate::state::State;

use super::cache::{self, created_at_seconds};
use super::outcome::SkipReason;
use super::prune::{self, prune_batch, release_free_pages, Pruned};
use super::test_support::*;

use RowOp::{Insert, Update};

const DAY: i64 = 24 * 3600;
const RETENTION: Duration = Duration::from_secs(30 * DAY as u64);

/// A message of conversation 7 created on January `day`, 2026.
fn message_on(id: i64, day: u32, text: &str) -> crate::chatwoot::MessageRow {
    let mut m = message_row(id, 7, text);
    m.created_at = Field::Value(format!("2026-01-{day:02} 10:00:00.000000"));
    m
}

fn january(day: u32) -> i64 {
    created_at_seconds(&format!("2026-01-{day:02} 10:00:00"))
}

/// Plays the workers: every queued job is done and its GLPI ids recorded
/// as a worker records them (ticket description = its first message).
fn complete_jobs(h: &mut Harness) {
    for (_, _, kind) in h.jobs() {
        match kind {
            JobKind::CreateTicket {
                conversation,
                first_message,
                ..
            } => mappings::record_ticket(
                h.conn(),
                &TicketLink {
                    conversation_id: conversation.id,
                    account_id: 1,
                    glpi_ticket_id: 500 + conversation.id,
                    last_synced_message_id: None,
                    first_message_id: Some(first_message.id),
                    glpi_status: Some(2),
                    glpi_priority: Some(3),
                    display_id: Some(conversation.display_id),
                    description_tail: None,
                    reconciled: true,
                },
            )
            .unwrap(),
            JobKind::CreateFollowup {
                conversation_id,
                message,
            } => {
                mappings::record_followup(h.conn(), message.id, conversation_id, 9_000 + message.id)
                    .unwrap()
            }
            _ => {}
        }
    }
    h.run_all_jobs();
}

/// Another connection to the harness's state file, for pruning.
fn pruner(h: &Harness) -> State {
    State::open(h.planner.state().path()).unwrap()
}

fn prune_all(h: &Harness, now: i64) -> Pruned {
    let mut state = pruner(h);
    let mut total = Pruned::default();
    loop {
        let pruned = prune_batch(state.conn_mut(), RETENTION, now, 1_000).unwrap();
        total.add(pruned);
        if !pruned.more {
            return total;
        }
    }
}

fn cached(h: &Harness, id: i64) -> Option<cache::CachedMessage> {
    cache::message(h.conn(), id).unwrap()
}

fn attachment_ids(h: &Harness) -> Vec<i64> {
    let mut stmt = h
        .conn()
        .prepare("SELECT id FROM planner_attachments ORDER BY id")
        .unwrap();
    let ids = stmt.query_map([], |r| r.get(0)).unwrap();
    ids.map(Result::unwrap).collect()
}

/// Ticket from 70, followups 71 (with an attachment) and 72, all in GLPI,
/// created January 1st, then pruned on February 15th.
fn pruned_conversation() -> Harness {
    let mut h = with_conversation();
    h.commit(vec![message(Insert, message_on(70, 1, "Hello"))]);
    h.commit(vec![
        message(Insert, message_on(71, 1, "my screen")),
        attachment(Insert, 710, 71, "https://x/screen.png"),
    ]);
    let mut reply = message_on(72, 1, "Agent reply");
    reply.message_type = Field::Value(1);
    reply.sender_type = Field::Value("User".into());
    reply.sender_id = Field::Value(3);
    h.commit(vec![message(Insert, reply)]);
    complete_jobs(&mut h);
    let pruned = prune_all(&h, january(1) + 45 * DAY);
    assert_eq!((pruned.messages, pruned.attachments), (3, 1), "{pruned:?}");
    for id in [70, 71, 72] {
        assert!(cache::message(h.conn(), id).unwrap().is_none(), "{id}");
    }
    assert!(attachment_ids(&h).is_empty());
    h
}

/// Rails' delete: content replaced, `content_attributes = {deleted: true}`,
/// then the attachments destroyed, in one transaction.
fn deletion_of(mut m: crate::chatwoot::MessageRow) -> crate::chatwoot::MessageRow {
    m.content = Field::Value("This message was deleted".into());
    m.processed_message_content = Field::Value("This message was deleted".into());
    m.content_attributes = Field::Value(json!({"deleted": true}));
    m
}

#[test]
fn messages_are_dated_by_chatwoot_s_created_at_and_an_unreadable_one_is_now() {
    assert_eq!(
        created_at_seconds("2026-01-02 03:04:05.123456"),
        1_767_323_045
    );
    assert_eq!(created_at_seconds("2026-01-02 03:04:05"), 1_767_323_045);
    let now = cache::unix_now();
    assert!((created_at_seconds("yesterday") - now).abs() < 5);
}

#[test]
fn a_pruned_message_s_deletion_still_updates_its_followup_once() {
    let mut h = pruned_conversation();
    let mut reply = deletion_of(message_on(72, 1, ""));
    reply.message_type = Field::Value(1);
    reply.sender_type = Field::Value("User".into());
    reply.sender_id = Field::Value(3);
    h.commit(vec![
        message(Update, deletion_of(message_on(71, 1, ""))),
        deleted(Row::Attachment(AttachmentRow {
            id: 710,
            ..AttachmentRow::default()
        })),
        message(Update, reply),
    ]);
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    for ((queue, key, kind), id) in jobs.iter().zip([71, 72]) {
        assert_eq!(queue, "conversation:7");
        assert!(
            key.starts_with(&format!("followup-update:message:{id}@")),
            "an update of the followup GLPI has, never a new one: {key}"
        );
        match kind {
            JobKind::UpdateFollowup {
                conversation_id,
                message,
            } => {
                assert_eq!((*conversation_id, message.id), (7, id));
                assert!(message.deleted);
                assert!(message.attachments.is_empty());
                assert_eq!(message.created_at, "2026-01-01 10:00:00.000000");
            }
            other => panic!("{other:?}"),
        }
    }
    match &jobs[1].2 {
        JobKind::UpdateFollowup { message, .. } => {
            assert_eq!(message.message_type, 1);
            assert_eq!(message.sender_type.as_deref(), Some("User"));
            assert_eq!(message.sender_id, Some(3));
        }
        other => panic!("{other:?}"),
    }

    // The ticket's description (message 70) is re-rendered too.
    h.commit(vec![message(Update, deletion_of(message_on(70, 1, "")))]);
    assert!(h.job_keys()[2].starts_with("followup-update:message:70@"));

    // Done and pruned again: the deleted messages stay as tombstones, so
    // seeing them again (a later status update) plans nothing.
    complete_jobs(&mut h);
    let pruned = prune_all(&h, january(1) + 46 * DAY);
    assert_eq!((pruned.messages, pruned.tombstones), (0, 3), "{pruned:?}");
    let tombstone = cache::message(h.conn(), 71).unwrap().unwrap();
    assert!(tombstone.deleted && tombstone.snapshot.is_none() && tombstone.job_id.is_none());
    h.commit(vec![message(Update, deletion_of(message_on(71, 1, "")))]);
    assert!(h.jobs().is_empty(), "{:?}", h.jobs());
    // Tombstones are never walked again.
    assert_eq!(prune_all(&h, january(1) + 90 * DAY), Pruned::default());
}

#[test]
fn other_updates_of_a_pruned_message_plan_and_cache_nothing() {
    let mut h = pruned_conversation();
    // A status update (sent → read), with the long text unchanged (TOAST).
    let mut read = message_on(71, 1, "");
    read.content = Field::Unchanged;
    read.processed_message_content = Field::Unchanged;
    read.content_attributes = Field::Unchanged;
    let stats = h.commit(vec![message(Update, read)]);
    assert_eq!(stats.changes, 1);
    assert!(h.jobs().is_empty(), "{:?}", h.jobs());
    assert!(cache::message(h.conn(), 71).unwrap().is_none());
}

#[test]
fn a_late_attachment_to_a_pruned_message_is_a_visible_skip_not_a_failure() {
    let mut h = pruned_conversation();
    let stats = h.commit(vec![attachment(Insert, 711, 71, "https://x/late.png")]);
    assert_eq!((stats.changes, stats.skipped), (1, 1), "{stats:?}");
    assert_eq!(stats.no_job.get(&SkipReason::MessageCacheExpired), Some(&1));
    assert!(h.jobs().is_empty(), "{:?}", h.jobs());
    let skips = cache::skips(h.conn()).unwrap();
    assert_eq!(skips.len(), 1, "{skips:?}");
    assert_eq!(skips[0].subject, "attachment:711");
    assert!(
        skips[0].reason.contains("message 71") && skips[0].reason.contains("message_cache_days"),
        "{}",
        skips[0].reason
    );
    assert!(attachment_ids(&h).is_empty(), "not cached");
    // Its later destruction and the message's deletion still plan fine.
    h.commit(vec![
        message(Update, deletion_of(message_on(71, 1, ""))),
        deleted(Row::Attachment(AttachmentRow {
            id: 711,
            ..AttachmentRow::default()
        })),
    ]);
    assert_eq!(h.jobs().len(), 1, "{:?}", h.jobs());

    // A message that never reached GLPI: its late attachment is cached as
    // before, no skip.
    h.commit(vec![attachment(Insert, 990, 99, "https://x/other.png")]);
    assert_eq!(cache::skips(h.conn()).unwrap().len(), 1);
    assert_eq!(attachment_ids(&h), vec![990]);
}

#[test]
fn pruning_forgets_exactly_what_is_older_than_the_retention_and_no_queued_job_needs() {
    let mut h = with_conversation();
    h.commit(vec![message(Insert, message_on(70, 1, "Hello"))]);
    h.commit(vec![
        message(Insert, message_on(71, 1, "old, synced")),
        attachment(Insert, 710, 71, "https://x/a.png"),
    ]);
    h.commit(vec![
        message(Insert, message_on(72, 20, "young, synced")),
        attachment(Insert, 720, 72, "https://x/b.png"),
    ]);
    h.commit(vec![message(
        Insert,
        message_on(75, 1, "old, then deleted"),
    )]);
    complete_jobs(&mut h);
    h.commit(vec![message(Update, deletion_of(message_on(75, 1, "")))]);
    // Old, of an account that does not sync: cached without a snapshot.
    let mut elsewhere = message_on(74, 1, "other account");
    elsewhere.account_id = Field::Value(2);
    h.commit(vec![message(Insert, elsewhere)]);
    // Rows from a version before pruning: age unknown (0).
    h.commit(vec![message(Insert, message_on(76, 1, "legacy, synced"))]);
    let mut legacy = message_on(77, 1, "legacy, other account");
    legacy.account_id = Field::Value(2);
    h.commit(vec![message(Insert, legacy)]);
    h.conn()
        .execute(
            "UPDATE planner_messages SET created_at = 0 WHERE id IN (76, 77)",
            [],
        )
        .unwrap();
    complete_jobs(&mut h);
    // Old, but its followup job is still queued (GLPI down, or parked).
    h.commit(vec![
        message(Insert, message_on(73, 1, "old, job queued")),
        attachment(Insert, 730, 73, "https://x/c.png"),
    ]);

    // February 10th: more than 30 days after January 1st, not after the 20th.
    let now = january(10) + 31 * DAY;
    let mut state = pruner(&h);
    let first = prune_batch(state.conn_mut(), RETENTION, now, 2).unwrap();
    assert_eq!(first.stamped, 2);
    assert!(first.more, "a full batch says more may wait: {first:?}");
    assert_eq!(first.messages + first.tombstones, 2, "{first:?}");
    let mut total = first;
    total.add(prune_all(&h, now));
    // 70, 71, 74, 76 forgotten; 75 a tombstone.
    assert_eq!((total.messages, total.tombstones), (4, 1), "{total:?}");
    assert_eq!(total.attachments, 1);
    for id in [70, 71, 74, 76] {
        assert!(cached(&h, id).is_none(), "{id} forgotten");
    }
    assert!(cached(&h, 75).is_some_and(|m| m.deleted && m.snapshot.is_none()));
    assert!(
        cached(&h, 72).is_some_and(|m| m.snapshot.is_some()),
        "younger"
    );
    assert!(
        cached(&h, 73).is_some_and(|m| m.snapshot.is_some()),
        "job queued"
    );
    let legacy = cached(&h, 77).expect("no snapshot to date it: stamped now");
    assert_eq!(legacy.created_at, now);
    assert_eq!(attachment_ids(&h), vec![720, 730]);

    // Once its job is done, 73 goes too; 72 when it is old enough.
    complete_jobs(&mut h);
    let later = prune_all(&h, now);
    assert_eq!((later.messages, later.attachments), (1, 1), "{later:?}");
    assert!(cached(&h, 73).is_none());
    let pruned = prune_all(&h, january(20) + 31 * DAY);
    assert_eq!(pruned.messages, 1);
    assert!(cached(&h, 72).is_none());
}

#[test]
fn the_planner_prunes_in_steps_and_then_waits_for_the_next_pass() {
    let mut h = pruned_conversation();
    // Harness messages are dated 2026, older than 30 days by now.
    h.commit(vec![message(Insert, message_row(80, 7, "late in the day"))]);
    complete_jobs(&mut h);
    assert!(h.planner.prune_due());
    assert!(
        !h.planner.prune_step().unwrap(),
        "one small batch did it all"
    );
    assert!(cache::message(h.conn(), 80).unwrap().is_none());
    assert!(!h.planner.prune_due(), "the next pass waits");

    let mut forever = with_conversation();
    let path = forever.planner.state().path().to_path_buf();
    forever.planner = super::Planner::new(
        State::open(&path).unwrap(),
        super::ConfiguredAccounts::default(),
    )
    .unwrap()
    .with_message_cache(None);
    forever.commit(vec![message(Insert, message_row(90, 7, "kept"))]);
    complete_jobs(&mut forever);
    assert!(!forever.planner.prune_due());
    assert!(!forever.planner.prune_step().unwrap());
    assert!(cache::message(forever.conn(), 90).unwrap().is_some());
}

#[test]
fn a_state_file_from_before_pruning_gets_the_column_and_its_rows_are_kept_a_full_retention() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    {
        let state = State::open(&path).unwrap();
        // The older schema: no created_at, no index.
        state
            .conn()
            .execute_batch(
                "DROP INDEX planner_messages_by_age;
                 DROP TABLE planner_messages;
                 CREATE TABLE planner_messages (
                     id INTEGER PRIMARY KEY,
                     conversation_id INTEGER NOT NULL,
                     account_id INTEGER NOT NULL,
                     deleted INTEGER NOT NULL DEFAULT 0,
                     snapshot TEXT,
                     job_id INTEGER
                 );
                 INSERT INTO planner_messages (id, conversation_id, account_id, deleted, snapshot, job_id)
                 VALUES (1, 7, 1, 0, '{\"created_at\": \"2026-01-01 10:00:00.5\"}', 3);",
            )
            .unwrap();
    }
    let mut state = State::open(&path).unwrap();
    let m = cache::message(state.conn(), 1).unwrap().unwrap();
    assert_eq!(m.created_at, 0, "unknown until stamped");
    let pruned = prune_batch(state.conn_mut(), RETENTION, january(20), 100).unwrap();
    assert_eq!((pruned.stamped, pruned.messages), (1, 0));
    assert_eq!(
        cache::message(state.conn(), 1).unwrap().unwrap().created_at,
        january(1)
    );
    let pruned = prune_batch(state.conn_mut(), RETENTION, january(1) + 31 * DAY, 100).unwrap();
    assert_eq!(pruned.messages, 1);
}

#[test]
fn a_new_state_file_gives_pruned_pages_back_to_the_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.sqlite3");
    let mut state = State::open(&path).unwrap();
    let pragma = |state: &State, name: &str| {
        state
            .conn()
            .query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    assert_eq!(pragma(&state, "auto_vacuum"), 2, "incremental");
    let text = "x".repeat(2_000);
    {
        let tx = crate::state::write_transaction(state.conn_mut()).unwrap();
        for id in 1..=3_000 {
            let snapshot = json!({"created_at": "2026-01-01 10:00:00", "text": text}).to_string();
            tx.execute(
                "INSERT INTO planner_messages (id, conversation_id, account_id, snapshot, created_at)
                 VALUES (?1, 1, 1, ?2, ?3)",
                rusqlite::params![id, snapshot, january(1)],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let full = pragma(&state, "page_count");
    loop {
        let pruned = prune_batch(
            state.conn_mut(),
            RETENTION,
            january(1) + 31 * DAY,
            prune::PRUNE_BATCH,
        )
        .unwrap();
        if !pruned.more {
            break;
        }
    }
    assert!(pragma(&state, "freelist_count") > full / 2);
    let mut released = 0;
    loop {
        let n = release_free_pages(state.conn_mut()).unwrap();
        if n == 0 {
            break;
        }
        released += n;
    }
    let after = pragma(&state, "page_count");
    assert!(released > 0 && after < full / 4, "{full} -> {after} pages");
    assert!(pragma(&state, "freelist_count") <= after / 10 + 256);
}

/// The drain loop prunes in its idle time, and keeps planning meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_loop_prunes_when_idle() {
    use std::sync::Arc;
    use tokio::sync::Notify;
    use tokio_util::sync::CancellationToken;

    let mut h = with_conversation();
    // Dated January 2026: older than 30 days by now.
    h.commit(vec![message(Insert, message_on(70, 1, "Hello"))]);
    h.commit(vec![message(Insert, message_on(71, 1, "old"))]);
    complete_jobs(&mut h);
    let path = h.planner.state().path().to_path_buf();
    let planner = super::Planner::new(
        State::open(&path).unwrap(),
        super::ConfiguredAccounts::default(),
    )
    .unwrap();
    let signals = super::PlannerSignals {
        new_changes: Arc::new(Notify::new()),
        jobs_ready: Arc::new(Notify::new()),
        cancel: CancellationToken::new(),
        idle_poll: Duration::from_millis(20),
    };
    let cancel = signals.cancel.clone();
    let new_changes = signals.new_changes.clone();
    let task = tokio::spawn(super::run(planner, signals));
    let reader = State::open(&path).unwrap();
    let gone = |id| cache::message(reader.conn(), id).unwrap().is_none();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(gone(70) && gone(71)) {
        assert!(std::time::Instant::now() < deadline, "not pruned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still planning: a new message becomes a job.
    h.append(false, vec![message(Insert, message_on(72, 2, "new"))]);
    new_changes.notify_one();
    while h.job_keys().is_empty() {
        assert!(std::time::Instant::now() < deadline, "not planned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h.job_keys()[0], "followup:message:72");
    cancel.cancel();
    task.await.unwrap().unwrap();
}
