use bytes::Bytes;
use rand::{Rng, SeedableRng};

use super::encode::{self, Col};
use super::*;

fn dec(bytes: Vec<u8>) -> PgOutputMessage {
    decode(&Bytes::from(bytes)).expect("valid message")
}

fn texts(tuple: &TupleData) -> Vec<ColumnValue<'_>> {
    tuple.iter().collect()
}

#[test]
fn begin_commit_origin() {
    assert_eq!(
        dec(encode::begin(0x16_B374_D848, 771)),
        PgOutputMessage::Begin(Begin {
            final_lsn: 0x16_B374_D848,
            commit_time_micros: 1_000_000,
            xid: 771,
        })
    );
    assert_eq!(
        dec(encode::commit(10, 20)),
        PgOutputMessage::Commit(Commit {
            flags: 0,
            commit_lsn: 10,
            end_lsn: 20,
            commit_time_micros: 1_000_000,
        })
    );
    assert_eq!(
        dec(encode::origin(5, "chatwoot-glpi-bridge")),
        PgOutputMessage::Origin(Origin {
            commit_lsn: 5,
            name: "chatwoot-glpi-bridge".into(),
        })
    );
}

#[test]
fn relation_and_type() {
    let PgOutputMessage::Relation(rel) = dec(encode::relation(
        16385,
        "public",
        "contacts",
        &["id", "email"],
    )) else {
        panic!()
    };
    assert_eq!(
        (rel.id, rel.schema.as_str(), rel.name.as_str()),
        (16385, "public", "contacts")
    );
    assert_eq!(rel.replica_identity, b'd');
    assert_eq!(rel.columns.len(), 2);
    assert_eq!(rel.columns[0].flags, 1);
    assert_eq!(rel.columns[1].name, "email");
    assert_eq!(rel.columns[1].type_oid, 25);
    assert_eq!(rel.columns[1].type_modifier, -1);
    assert_eq!(
        dec(encode::type_info(90001, "public", "vector")),
        PgOutputMessage::Type(TypeInfo {
            oid: 90001,
            schema: "public".into(),
            name: "vector".into(),
        })
    );
}

#[test]
fn insert_with_every_column_kind_is_zero_copy() {
    let raw = Bytes::from(encode::insert(
        7,
        &[
            Col::Text("42"),
            Col::Null,
            Col::Unchanged,
            Col::Binary(&[0, 1]),
            Col::Text(""),
        ],
    ));
    let PgOutputMessage::Insert(ins) = decode(&raw).unwrap() else {
        panic!()
    };
    assert_eq!(ins.relation_id, 7);
    assert_eq!(ins.new.len(), 5);
    let cols = texts(&ins.new);
    assert_eq!(
        cols,
        vec![
            ColumnValue::Text(b"42"),
            ColumnValue::Null,
            ColumnValue::Unchanged,
            ColumnValue::Binary(&[0, 1]),
            ColumnValue::Text(b""),
        ]
    );
    // The value points into the received buffer.
    let ColumnValue::Text(v) = cols[0] else {
        panic!()
    };
    let range = raw.as_ptr_range();
    assert!(range.contains(&v.as_ptr()));
    assert_eq!(ins.new.share(v), Bytes::from_static(b"42"));
}

#[test]
fn update_without_and_with_old_tuples() {
    let PgOutputMessage::Update(u) =
        dec(encode::update(3, None, &[Col::Text("1"), Col::Unchanged]))
    else {
        panic!()
    };
    assert!(u.old.is_none());
    assert_eq!(
        texts(&u.new),
        vec![ColumnValue::Text(b"1"), ColumnValue::Unchanged]
    );

    for (marker, kind) in [(b'K', OldTupleKind::Key), (b'O', OldTupleKind::Full)] {
        let PgOutputMessage::Update(u) = dec(encode::update(
            3,
            Some((marker, &[Col::Text("1"), Col::Text("old")])),
            &[Col::Text("2"), Col::Text("new")],
        )) else {
            panic!()
        };
        let (old_kind, old) = u.old.unwrap();
        assert_eq!(old_kind, kind);
        assert_eq!(
            texts(&old),
            vec![ColumnValue::Text(b"1"), ColumnValue::Text(b"old")]
        );
        assert_eq!(
            texts(&u.new),
            vec![ColumnValue::Text(b"2"), ColumnValue::Text(b"new")]
        );
    }
}

#[test]
fn delete_key_and_full() {
    let PgOutputMessage::Delete(d) = dec(encode::delete(9, b'K', &[Col::Text("5"), Col::Null]))
    else {
        panic!()
    };
    assert_eq!((d.relation_id, d.old_kind), (9, OldTupleKind::Key));
    assert_eq!(
        texts(&d.old),
        vec![ColumnValue::Text(b"5"), ColumnValue::Null]
    );
    let PgOutputMessage::Delete(d) = dec(encode::delete(9, b'O', &[Col::Text("5")])) else {
        panic!()
    };
    assert_eq!(d.old_kind, OldTupleKind::Full);
}

#[test]
fn truncate_and_message() {
    assert_eq!(
        dec(encode::truncate(3, &[1, 2, 3])),
        PgOutputMessage::Truncate(Truncate {
            options: 3,
            relation_ids: vec![1, 2, 3],
        })
    );
    assert_eq!(
        dec(encode::message(
            true,
            99,
            "chatwoot-glpi-bridge.writeback",
            b"{}"
        )),
        PgOutputMessage::Message(LogicalMessage {
            transactional: true,
            lsn: 99,
            prefix: "chatwoot-glpi-bridge.writeback".into(),
            content: Bytes::from_static(b"{}"),
        })
    );
}

#[test]
fn relation_id_peek_reads_no_tuple() {
    assert_eq!(
        change_relation_id(&encode::insert(77, &[Col::Text("x")])),
        Some(77)
    );
    assert_eq!(change_relation_id(&encode::delete(78, b'K', &[])), Some(78));
    assert_eq!(change_relation_id(&encode::update(79, None, &[])), Some(79));
    assert_eq!(change_relation_id(&encode::begin(1, 1)), None);
    assert_eq!(change_relation_id(b"I\0\0"), None);
}

#[test]
fn errors_name_message_field_and_offset() {
    let mut bad = encode::insert(7, &[Col::Text("42")]);
    bad[5] = b'X';
    let err = decode(&Bytes::from(bad)).unwrap_err();
    assert_eq!(
        (err.message, err.field, err.offset),
        ("Insert", "tuple marker", 5)
    );
    assert!(err.to_string().contains("Insert"), "{err}");

    let good = encode::insert(7, &[Col::Text("42")]);
    let err = decode(&Bytes::from(good[..good.len() - 1].to_vec())).unwrap_err();
    assert_eq!(err.field, "column value");
    assert!(matches!(
        err.problem,
        DecodeProblem::Truncated {
            needed: 2,
            available: 1
        }
    ));

    let mut trailing = encode::commit(1, 2);
    trailing.push(0);
    let err = decode(&Bytes::from(trailing)).unwrap_err();
    assert_eq!(err.problem, DecodeProblem::TrailingBytes(1));

    let err = decode(&Bytes::from_static(b"Z")).unwrap_err();
    assert_eq!(err.problem, DecodeProblem::UnknownTag(b'Z'));
    assert_eq!(
        decode(&Bytes::new()).unwrap_err().problem,
        DecodeProblem::Empty
    );

    let mut negative = encode::truncate(0, &[]);
    negative[1..5].copy_from_slice(&(-1i32).to_be_bytes());
    let err = decode(&Bytes::from(negative)).unwrap_err();
    assert_eq!(err.problem, DecodeProblem::NegativeCount(-1));
}

fn samples() -> Vec<Vec<u8>> {
    vec![
        encode::begin(1, 2),
        encode::commit(1, 2),
        encode::origin(1, "o"),
        encode::relation(1, "public", "messages", &["id", "content"]),
        encode::type_info(1, "public", "t"),
        encode::insert(
            1,
            &[Col::Text("1"), Col::Null, Col::Unchanged, Col::Binary(b"b")],
        ),
        encode::update(1, Some((b'O', &[Col::Text("1")])), &[Col::Text("2")]),
        encode::update(1, None, &[Col::Text("2")]),
        encode::delete(1, b'K', &[Col::Text("1"), Col::Null]),
        encode::truncate(1, &[1, 2]),
        encode::message(true, 1, "p", b"content"),
    ]
}

#[test]
fn every_prefix_of_valid_messages_errors_without_panic() {
    for full in samples() {
        assert!(decode(&Bytes::from(full.clone())).is_ok());
        for len in 0..full.len() {
            let prefix = Bytes::from(full[..len].to_vec());
            assert!(decode(&prefix).is_err(), "prefix {len} of {full:?} decoded");
            let _ = change_relation_id(&prefix);
        }
    }
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let samples = samples();
    for _ in 0..20_000 {
        let mut bytes: Vec<u8> = if rng.random_bool(0.5) {
            let len = rng.random_range(0..64);
            let mut v: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if let Some(first) = v.first_mut() {
                *first = *b"BCORYIUDTM".get(rng.random_range(0..10)).unwrap_or(&0);
            }
            v
        } else {
            samples[rng.random_range(0..samples.len())].clone()
        };
        for _ in 0..rng.random_range(0..4) {
            if !bytes.is_empty() {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
        }
        if let Ok(PgOutputMessage::Insert(Insert { new: t, .. })) = decode(&Bytes::from(bytes)) {
            assert_eq!(t.iter().count(), t.len());
        }
    }
}
