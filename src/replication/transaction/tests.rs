use bytes::Bytes;
use pgwire_replication::ReplicationEvent;

use super::*;
use crate::chatwoot::{Row, Table};
use crate::replication::pgoutput::encode::{self, Col};

const CONTACTS: u32 = 16400;
const USERS: u32 = 16500;

/// Feeds raw messages; returns what the last one yielded.
fn feed(
    asm: &mut TransactionAssembler,
    messages: Vec<Vec<u8>>,
) -> Result<Option<CommittedTransaction>, StreamError> {
    let mut last = None;
    for m in messages {
        last = asm.handle_pgoutput(&Bytes::from(m))?;
    }
    Ok(last)
}

fn relations() -> Vec<Vec<u8>> {
    vec![
        encode::relation(CONTACTS, "public", "contacts", &["id", "email"]),
        encode::relation(USERS, "public", "users", &["id", "email"]),
    ]
}

fn contact_insert(id: &str) -> Vec<u8> {
    encode::insert(CONTACTS, &[Col::Text(id), Col::Text("a@b.c")])
}

#[test]
fn yields_changes_in_order_at_commit_with_end_lsn() {
    let mut asm = TransactionAssembler::new();
    let mut msgs = vec![encode::begin(0x100, 5)];
    msgs.extend(relations());
    msgs.extend([
        contact_insert("1"),
        encode::insert(USERS, &[Col::Text("1"), Col::Text("agent@x")]),
        encode::update(CONTACTS, None, &[Col::Text("1"), Col::Unchanged]),
        encode::delete(CONTACTS, b'K', &[Col::Text("2"), Col::Null]),
        encode::truncate(0, &[USERS, CONTACTS]),
    ]);
    assert_eq!(feed(&mut asm, msgs).unwrap(), None);
    assert!(asm.in_transaction());
    let tx = feed(&mut asm, vec![encode::commit(0x100, 0x128)])
        .unwrap()
        .unwrap();
    assert!(!asm.in_transaction());
    assert_eq!(tx.commit_lsn, Lsn(0x128));
    assert!(!tx.from_bridge);
    assert!(tx.rejected.is_empty());
    let summary: Vec<_> = tx
        .changes
        .iter()
        .map(|c| match c {
            Change::Row { op, row } => format!("{op:?} {:?} {}", row.table(), row.id()),
            Change::Truncate { tables } => format!("Truncate {tables:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            "Insert Contacts 1",
            "Update Contacts 1",
            "Delete Contacts 2",
            "Truncate [Contacts]"
        ]
    );
    let committed: Vec<_> = tx.committed_changes().collect();
    assert_eq!(committed.len(), 4);
    assert!(committed
        .iter()
        .all(|c| c.commit_lsn == Lsn(0x128) && !c.from_bridge));
}

#[test]
fn transaction_without_our_changes_still_reports_its_commit_lsn() {
    let mut asm = TransactionAssembler::new();
    let mut msgs = vec![encode::begin(0x200, 6)];
    msgs.extend(relations());
    msgs.push(encode::insert(USERS, &[Col::Text("1"), Col::Text("x")]));
    msgs.push(encode::commit(0x200, 0x230));
    let tx = feed(&mut asm, msgs).unwrap().unwrap();
    assert_eq!(tx.commit_lsn, Lsn(0x230));
    assert!(tx.changes.is_empty() && tx.rejected.is_empty());
}

#[test]
fn skipped_relation_change_is_not_decoded() {
    let mut asm = TransactionAssembler::new();
    feed(&mut asm, vec![encode::begin(1, 1), relations().remove(1)]).unwrap();
    // A tuple that would not decode: the skip happens before tuple parsing.
    let mut garbage = encode::insert(USERS, &[]);
    garbage.extend_from_slice(b"\xff\xff not a tuple");
    assert_eq!(asm.handle_pgoutput(&Bytes::from(garbage)).unwrap(), None);
}

#[test]
fn bridge_writeback_marked_by_transactional_message_prefix() {
    let mut asm = TransactionAssembler::new();
    let tx = feed(
        &mut asm,
        [
            vec![encode::begin(1, 1)],
            relations(),
            vec![
                encode::message(true, 1, BRIDGE_MESSAGE_PREFIX, b"{}"),
                contact_insert("3"),
                encode::commit(1, 2),
            ],
        ]
        .concat(),
    )
    .unwrap()
    .unwrap();
    assert!(tx.from_bridge);
    assert!(tx.committed_changes().all(|c| c.from_bridge));

    // Another prefix, or a non-transactional message, marks nothing.
    for (transactional, prefix) in [(true, "someone.else"), (false, BRIDGE_MESSAGE_PREFIX)] {
        let msgs = vec![
            encode::begin(3, 2),
            encode::message(transactional, 3, prefix, b""),
            contact_insert("4"),
            encode::commit(3, 4),
        ];
        let tx = feed(&mut asm, msgs).unwrap().unwrap();
        assert!(!tx.from_bridge, "{prefix} transactional={transactional}");
    }
    // A non-transactional message between transactions is fine.
    let stray = encode::message(false, 9, BRIDGE_MESSAGE_PREFIX, b"");
    assert_eq!(feed(&mut asm, vec![stray]).unwrap(), None);
}

#[test]
fn bridge_writeback_marked_by_origin() {
    let mut asm = TransactionAssembler::new();
    let mut msgs = vec![encode::begin(1, 1), encode::origin(1, BRIDGE_ORIGIN_NAME)];
    msgs.extend(relations());
    msgs.extend([contact_insert("5"), encode::commit(1, 2)]);
    assert!(feed(&mut asm, msgs).unwrap().unwrap().from_bridge);

    let msgs = vec![
        encode::begin(3, 2),
        encode::origin(3, "some_other_replica"),
        contact_insert("6"),
        encode::commit(3, 4),
    ];
    assert!(!feed(&mut asm, msgs).unwrap().unwrap().from_bridge);
}

#[test]
fn pgwire_events_drive_the_same_assembly() {
    let lsn = pgwire_replication::Lsn;
    let xlog = |m: Vec<u8>| ReplicationEvent::XLogData {
        wal_start: lsn(0),
        wal_end: lsn(0),
        server_time_micros: 0,
        data: Bytes::from(m),
    };
    let mut events = vec![
        ReplicationEvent::KeepAlive {
            wal_end: lsn(5),
            reply_requested: false,
            server_time_micros: 0,
        },
        ReplicationEvent::Begin {
            final_lsn: lsn(0x40),
            xid: 9,
            commit_time_micros: 0,
        },
        ReplicationEvent::Message {
            transactional: true,
            lsn: lsn(0x30),
            prefix: BRIDGE_MESSAGE_PREFIX.to_owned(),
            content: Bytes::new(),
        },
    ];
    events.extend(relations().into_iter().map(xlog));
    events.push(xlog(contact_insert("8")));
    events.push(ReplicationEvent::Commit {
        lsn: lsn(0x40),
        end_lsn: lsn(0x48),
        commit_time_micros: 0,
    });
    let mut asm = TransactionAssembler::new();
    let mut yielded = Vec::new();
    for event in events {
        yielded.extend(asm.handle_event(event).unwrap());
    }
    assert_eq!(yielded.len(), 1);
    let tx = &yielded[0];
    assert_eq!((tx.commit_lsn, tx.from_bridge), (Lsn(0x48), true));
    assert!(matches!(
        &tx.changes[..],
        [Change::Row { row: Row::Contact(c), .. }] if c.id == 8
    ));
}

#[test]
fn bad_row_is_rejected_with_reason_and_the_rest_goes_on() {
    let mut asm = TransactionAssembler::new();
    let mut msgs = vec![encode::begin(1, 1)];
    msgs.extend(relations());
    msgs.push(encode::insert(CONTACTS, &[Col::Text("x7"), Col::Null]));
    msgs.push(contact_insert("8"));
    msgs.push(encode::commit(1, 2));
    let tx = feed(&mut asm, msgs).unwrap().unwrap();
    assert_eq!(tx.changes.len(), 1);
    assert_eq!(tx.rejected.len(), 1);
    let (op, error) = &tx.rejected[0];
    assert_eq!(*op, RowOp::Insert);
    assert_eq!((error.table, error.column), ("contacts", "id"));
    assert_eq!(Table::from_name(error.table), Some(Table::Contacts));
}

#[test]
fn protocol_errors_stop_the_stream() {
    let mut asm = TransactionAssembler::new();
    feed(&mut asm, relations()).unwrap();
    assert!(matches!(
        feed(&mut asm, vec![contact_insert("1")]),
        Err(StreamError::OutsideTransaction("Insert"))
    ));
    assert!(matches!(
        feed(&mut asm, vec![encode::commit(1, 2)]),
        Err(StreamError::OutsideTransaction("Commit"))
    ));
    feed(&mut asm, vec![encode::begin(1, 1)]).unwrap();
    assert!(matches!(
        feed(&mut asm, vec![encode::begin(1, 1)]),
        Err(StreamError::BeginInsideTransaction)
    ));
    let err = feed(&mut asm, vec![encode::delete(4242, b'K', &[])]).unwrap_err();
    assert!(err.to_string().contains("relation id 4242"), "{err}");
    let err = feed(&mut asm, vec![b"I\0\0".to_vec()]).unwrap_err();
    assert!(matches!(err, StreamError::Decode(_)), "{err}");
}
