use super::*;
use crate::outbox::{keys, SCHEMA};

fn open() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn
}

fn write_back(conversation_id: i64) -> JobKind {
    JobKind::WriteBackConversation { conversation_id }
}

fn update(conversation_id: i64, status: i32) -> JobKind {
    JobKind::UpdateTicket {
        conversation_id,
        status,
        priority: None,
    }
}

/// Enqueues an UpdateTicket job in `conversation:<conv>` with a unique key.
fn push(conn: &Connection, conv: i64, seq: i64) -> i64 {
    enqueue(
        conn,
        1,
        &keys::conversation_queue(conv),
        &keys::update_ticket(conv, seq),
        &update(conv, 0),
    )
    .unwrap()
    .id()
}

fn runnable_ids(conn: &Connection) -> Vec<i64> {
    next_runnable(conn, 100, &HashSet::new())
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect()
}

fn done(conn: &mut Connection, id: i64) {
    complete(conn, id, |_| Ok::<_, OutboxError>(())).unwrap();
}

#[test]
fn a_duplicate_key_is_ignored() {
    let conn = open();
    let a = enqueue(
        &conn,
        1,
        "conversation:1",
        "ticket:conversation:1",
        &update(1, 0),
    )
    .unwrap();
    let b = enqueue(
        &conn,
        1,
        "conversation:1",
        "ticket:conversation:1",
        &update(1, 2),
    )
    .unwrap();
    assert!(matches!(a, Enqueued::New(_)));
    assert_eq!(b, Enqueued::AlreadyQueued(a.id()));
    assert_eq!(depth(&conn).unwrap().pending, 1);
    let jobs = next_runnable(&conn, 10, &HashSet::new()).unwrap();
    assert_eq!(jobs[0].kind, update(1, 0), "the first enqueue wins");
}

#[test]
fn only_the_oldest_job_of_each_queue_runs_in_enqueue_order() {
    let mut conn = open();
    let a1 = push(&conn, 1, 1);
    let b1 = push(&conn, 2, 2);
    let a2 = push(&conn, 1, 3);
    let a3 = push(&conn, 1, 4);
    let b2 = push(&conn, 2, 5);
    assert_eq!(runnable_ids(&conn), vec![a1, b1]);
    done(&mut conn, a1);
    assert_eq!(runnable_ids(&conn), vec![b1, a2]);
    done(&mut conn, a2);
    done(&mut conn, b1);
    assert_eq!(runnable_ids(&conn), vec![a3, b2]);
    let job = &next_runnable(&conn, 1, &HashSet::new()).unwrap()[0];
    assert_eq!(job.id, a3, "limit keeps the oldest");
    assert_eq!(job.queue, "conversation:1");
    assert_eq!(job.attempts, 0);
}

#[test]
fn queues_being_run_are_excluded_without_losing_others() {
    let conn = open();
    let ids: Vec<i64> = (1..=5).map(|c| push(&conn, c, c)).collect();
    let running: HashSet<String> = ["conversation:1", "conversation:2"]
        .into_iter()
        .map(String::from)
        .collect();
    let jobs = next_runnable(&conn, 3, &running).unwrap();
    let got: Vec<i64> = jobs.iter().map(|j| j.id).collect();
    assert_eq!(got, ids[2..5].to_vec());
}

#[test]
fn a_job_retried_later_waits_for_its_time_and_blocks_its_queue() {
    let conn = open();
    let a1 = push(&conn, 1, 1);
    let _a2 = push(&conn, 1, 2);
    let b1 = push(&conn, 2, 3);
    let later = SystemTime::now() + Duration::from_secs(60);
    retry_later(&conn, a1, "GLPI answered 503", later).unwrap();
    assert_eq!(
        runnable_ids(&conn),
        vec![b1],
        "a1 waits, a2 stays behind it"
    );
    let at_time = next_runnable_at(&conn, 10, &HashSet::new(), later).unwrap();
    assert_eq!(at_time[0].id, a1);
    assert_eq!(at_time[0].attempts, 1);
    let wake = next_not_before(&conn).unwrap().unwrap();
    assert!(wake > SystemTime::now() + Duration::from_secs(50));
}

#[test]
fn a_parked_job_blocks_only_its_queue_and_can_be_retried_or_dropped() {
    let mut conn = open();
    let a1 = push(&conn, 1, 1);
    let a2 = push(&conn, 1, 2);
    let b1 = push(&conn, 2, 3);
    park(&conn, a1, "GLPI: ERROR_GLPI_ADD (invalid entity)").unwrap();
    assert_eq!(runnable_ids(&conn), vec![b1]);

    let list = parked(&conn).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, a1);
    assert_eq!(list[0].reason, "GLPI: ERROR_GLPI_ADD (invalid entity)");
    assert_eq!(list[0].attempts, 1);
    assert_eq!(list[0].blocked_jobs, 1);
    assert_eq!(parked_counts(&conn).unwrap(), vec![(1, 1)]);
    assert_eq!(
        depth(&conn).unwrap(),
        OutboxDepth {
            pending: 2,
            parked: 1
        }
    );

    // Retry: back to pending, attempts kept (the retry looks up first).
    assert_eq!(retry_parked(&conn, ParkedSelection::One(a1)).unwrap(), 1);
    let jobs = next_runnable(&conn, 10, &HashSet::new()).unwrap();
    assert_eq!(jobs[0].id, a1);
    assert_eq!(jobs[0].attempts, 1);
    assert!(matches!(
        retry_parked(&conn, ParkedSelection::One(a1)),
        Err(OutboxError::NotParked(_))
    ));

    // Park again, then drop: a2 becomes runnable.
    park(&conn, a1, "still refused").unwrap();
    drop_parked(&mut conn, a1).unwrap();
    assert_eq!(runnable_ids(&conn), vec![a2, b1]);
    assert!(parked(&conn).unwrap().is_empty());
    assert!(matches!(
        drop_parked(&mut conn, a1),
        Err(OutboxError::NoSuchJob(_))
    ));
    assert!(matches!(
        drop_parked(&mut conn, a2),
        Err(OutboxError::NotParked(_))
    ));
}

#[test]
fn retry_all_releases_every_parked_job() {
    let conn = open();
    let a = push(&conn, 1, 1);
    let b = push(&conn, 2, 2);
    park(&conn, a, "x").unwrap();
    park(&conn, b, "y").unwrap();
    assert!(runnable_ids(&conn).is_empty());
    assert_eq!(retry_parked(&conn, ParkedSelection::All).unwrap(), 2);
    assert_eq!(runnable_ids(&conn), vec![a, b]);
}

#[test]
fn complete_records_and_deletes_atomically() {
    let mut conn = open();
    conn.execute_batch("CREATE TABLE links (job INTEGER)")
        .unwrap();
    let a1 = push(&conn, 1, 1);
    let a2 = push(&conn, 1, 2);

    // A failing record changes nothing.
    let err = complete(&mut conn, a1, |tx| {
        tx.execute("INSERT INTO links VALUES (1)", [])?;
        Err::<(), _>(OutboxError::NoSuchJob(-1))
    });
    assert!(err.is_err());
    let links: i64 = conn
        .query_row("SELECT count(*) FROM links", [], |r| r.get(0))
        .unwrap();
    assert_eq!(links, 0);
    assert_eq!(runnable_ids(&conn), vec![a1]);

    let value = complete(&mut conn, a1, |tx| {
        tx.execute("INSERT INTO links VALUES (1)", [])?;
        Ok::<_, OutboxError>(42)
    })
    .unwrap();
    assert_eq!(value, 42);
    assert_eq!(runnable_ids(&conn), vec![a2]);
    assert!(matches!(
        complete(&mut conn, a1, |_| Ok::<_, OutboxError>(())),
        Err(OutboxError::NoSuchJob(_))
    ));
}

#[test]
fn write_backs_coalesce_at_the_tail() {
    let mut conn = open();
    let queue = keys::conversation_queue(1);
    let key = keys::write_back_conversation(1);
    let f1 = push(&conn, 1, 1);
    let wb1 = enqueue(&conn, 1, &queue, &key, &write_back(1)).unwrap();
    let f2 = push(&conn, 1, 2);
    let wb2 = enqueue(&conn, 1, &queue, &key, &write_back(1)).unwrap();
    assert!(matches!(wb2, Enqueued::New(_)));
    assert_ne!(wb1.id(), wb2.id());
    // The not-started write-back moved behind f2.
    done(&mut conn, f1);
    assert_eq!(runnable_ids(&conn), vec![f2]);
    done(&mut conn, f2);
    assert_eq!(runnable_ids(&conn), vec![wb2.id()]);

    // A write-back at the head may be running: it is kept (under a retired
    // key) and a new one queues behind the new work.
    let f3 = push(&conn, 1, 3);
    let wb3 = enqueue(&conn, 1, &queue, &key, &write_back(1)).unwrap();
    assert_eq!(depth(&conn).unwrap().pending, 3);
    done(&mut conn, wb2.id());
    assert_eq!(runnable_ids(&conn), vec![f3]);
    done(&mut conn, f3);
    let jobs = next_runnable(&conn, 10, &HashSet::new()).unwrap();
    assert_eq!(jobs[0].id, wb3.id());
    assert_eq!(jobs[0].key, key);
}

#[test]
fn only_jobs_no_worker_can_have_started_are_patched() {
    let conn = open();
    let head = push(&conn, 1, 1);
    let behind = push(&conn, 1, 2);
    let set_status = |k: &mut JobKind| {
        if let JobKind::UpdateTicket { status, .. } = k {
            *status = 3;
        }
    };
    assert!(!patch_unstarted(&conn, head, false, set_status).unwrap());
    assert!(patch_unstarted(&conn, head, true, set_status).unwrap());
    assert!(patch_unstarted(&conn, behind, false, set_status).unwrap());
    assert!(!patch_unstarted(&conn, 999, true, set_status).unwrap());
    park(&conn, head, "x").unwrap();
    assert!(!patch_unstarted(&conn, head, true, set_status).unwrap());
    let kinds: Vec<String> = conn
        .prepare("SELECT kind FROM outbox_jobs ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        kinds.iter().all(|k| k.contains("\"status\":3")),
        "{kinds:?}"
    );
}

#[test]
fn oldest_pending_age_ignores_parked_jobs() {
    let conn = open();
    assert_eq!(oldest_pending_age(&conn).unwrap(), None);
    let a = push(&conn, 1, 1);
    conn.execute(
        "UPDATE outbox_jobs SET enqueued_at = enqueued_at - 60000 WHERE id = ?1",
        [a],
    )
    .unwrap();
    let b = push(&conn, 2, 2);
    let age = oldest_pending_age(&conn).unwrap().unwrap();
    assert!(age >= Duration::from_secs(59), "{age:?}");
    park(&conn, a, "x").unwrap();
    let age = oldest_pending_age(&conn).unwrap().unwrap();
    assert!(age < Duration::from_secs(59), "{age:?}");
    park(&conn, b, "y").unwrap();
    assert_eq!(oldest_pending_age(&conn).unwrap(), None);
}

/// Scheduling must not scan the table: with 100k jobs, picking work reads
/// only the partial index of runnable heads.
#[test]
fn scheduling_uses_the_runnable_index_on_a_large_outbox() {
    let conn = open();
    conn.execute_batch("BEGIN").unwrap();
    for i in 0..100_000 {
        push(&conn, i % 5_000, i);
    }
    conn.execute_batch("COMMIT").unwrap();
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT id, key, queue, account_id, kind, attempts FROM outbox_jobs
             WHERE is_head = 1 AND state = 'pending' AND not_before <= 0 ORDER BY id LIMIT 10",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        plan.iter().any(|p| p.contains("outbox_jobs_runnable")),
        "{plan:?}"
    );
    assert_eq!(runnable_ids(&conn).len(), 100);
    let heads: i64 = conn
        .query_row(
            "SELECT count(*) FROM outbox_jobs WHERE is_head = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(heads, 5_000, "exactly one head per queue");
}
