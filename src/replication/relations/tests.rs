use bytes::Bytes;
use serde_json::json;

use super::*;
use crate::chatwoot::rows::{ContactRow, ConversationRow};
use crate::chatwoot::text::ValueProblem;
use crate::chatwoot::{Field, Row};
use crate::replication::pgoutput::encode::{self, Col};
use crate::replication::pgoutput::{decode, PgOutputMessage};

fn msg(bytes: Vec<u8>) -> PgOutputMessage {
    decode(&Bytes::from(bytes)).unwrap()
}

fn cache_with(relations: &[(u32, &str, &str, &[&str])]) -> RelationCache {
    let mut cache = RelationCache::new();
    for (id, schema, name, columns) in relations {
        let PgOutputMessage::Relation(r) = msg(encode::relation(*id, schema, name, columns)) else {
            unreachable!()
        };
        cache.apply(r);
    }
    cache
}

const CONVERSATION_COLUMNS: &[&str] = &[
    "account_id",
    "inbox_id",
    "status",
    "id",
    "additional_attributes",
    "waiting_since", // not read by the bridge
    "display_id",
];

#[test]
fn insert_matches_columns_by_name_in_relation_order_ignoring_extras() {
    let cache = cache_with(&[(10, "public", "conversations", CONVERSATION_COLUMNS)]);
    let change = cache
        .change(&msg(encode::insert(
            10,
            &[
                Col::Text("1"),
                Col::Text("2"),
                Col::Text("0"),
                Col::Text("77"),
                Col::Text(r#"{"glpi": {"ticket_id": 5}}"#),
                Col::Text("2026-01-01 00:00:00"),
                Col::Text("3"),
            ],
        )))
        .unwrap()
        .unwrap();
    let expected = ConversationRow {
        id: 77,
        account_id: Field::Value(1),
        inbox_id: Field::Value(2),
        status: Field::Value(0),
        additional_attributes: Field::Value(json!({"glpi": {"ticket_id": 5}})),
        display_id: Field::Value(3),
        ..Default::default()
    };
    assert_eq!(
        change,
        Change::Row {
            op: RowOp::Insert,
            row: Row::Conversation(expected)
        }
    );
}

#[test]
fn update_with_unchanged_toast_is_unchanged_never_null() {
    let cache = cache_with(&[(10, "public", "conversations", CONVERSATION_COLUMNS)]);
    let change = cache
        .change(&msg(encode::update(
            10,
            None,
            &[
                Col::Text("1"),
                Col::Text("2"),
                Col::Text("1"),
                Col::Text("77"),
                Col::Unchanged,
                Col::Null,
                Col::Text("3"),
            ],
        )))
        .unwrap()
        .unwrap();
    let Change::Row {
        op: RowOp::Update,
        row: Row::Conversation(c),
    } = change
    else {
        panic!("{change:?}")
    };
    assert_eq!(c.additional_attributes, Field::Unchanged);
    assert_eq!(c.status, Field::Value(1));
}

#[test]
fn update_with_full_old_image_fills_unchanged_values() {
    let cache = cache_with(&[(11, "public", "contacts", &["id", "additional_attributes"])]);
    let change = cache
        .change(&msg(encode::update(
            11,
            Some((b'O', &[Col::Text("4"), Col::Text(r#"{"a": 1}"#)])),
            &[Col::Text("4"), Col::Unchanged],
        )))
        .unwrap()
        .unwrap();
    let Change::Row {
        row: Row::Contact(c),
        ..
    } = change
    else {
        panic!()
    };
    assert_eq!(c.additional_attributes, Field::Value(json!({"a": 1})));
}

#[test]
fn delete_with_only_the_key() {
    let cache = cache_with(&[(11, "public", "contacts", &["id", "name", "email"])]);
    let change = cache
        .change(&msg(encode::delete(
            11,
            b'K',
            &[Col::Text("9"), Col::Null, Col::Null],
        )))
        .unwrap()
        .unwrap();
    assert_eq!(
        change,
        Change::Row {
            op: RowOp::Delete,
            row: Row::Contact(ContactRow {
                id: 9,
                ..Default::default()
            })
        }
    );
}

#[test]
fn truncate_keeps_our_tables_and_drops_foreign_ones() {
    let cache = cache_with(&[
        (10, "public", "conversations", &["id"]),
        (11, "public", "messages", &["id"]),
        (12, "public", "users", &["id"]),
    ]);
    let change = cache
        .change(&msg(encode::truncate(0, &[10, 12, 11])))
        .unwrap();
    assert_eq!(
        change,
        Some(Change::Truncate {
            tables: vec![Table::Conversations, Table::Messages]
        })
    );
    assert_eq!(
        cache.change(&msg(encode::truncate(0, &[12]))).unwrap(),
        None
    );
    assert!(matches!(
        cache.change(&msg(encode::truncate(0, &[10, 99]))),
        Err(ChangeError::UnknownRelation {
            relation_id: 99,
            ..
        })
    ));
}

#[test]
fn tables_we_do_not_read_are_skipped() {
    let cache = cache_with(&[
        (12, "public", "users", &["id", "name"]),
        // Same name as ours, other schema: not Chatwoot's table.
        (13, "audit", "contacts", &["id", "name"]),
    ]);
    for rel in [12, 13] {
        assert!(!cache.is_read(rel, "Insert").unwrap());
        assert_eq!(cache.get(rel).unwrap().table(), None);
        let insert = msg(encode::insert(rel, &[Col::Text("1"), Col::Text("x")]));
        assert_eq!(cache.change(&insert).unwrap(), None);
    }
    assert_eq!(cache.get(13).unwrap().columns, ["id", "name"]);
}

#[test]
fn relation_sent_again_replaces_the_mapping() {
    let mut cache = cache_with(&[(11, "public", "contacts", &["id", "name"])]);
    // ALTER TABLE contacts ADD COLUMN ... (before name) then a new Relation.
    let PgOutputMessage::Relation(r) = msg(encode::relation(
        11,
        "public",
        "contacts",
        &["id", "nickname", "name"],
    )) else {
        unreachable!()
    };
    cache.apply(r);
    let change = cache
        .change(&msg(encode::insert(
            11,
            &[Col::Text("1"), Col::Text("nick"), Col::Text("Ada")],
        )))
        .unwrap()
        .unwrap();
    let Change::Row {
        row: Row::Contact(c),
        ..
    } = change
    else {
        panic!()
    };
    assert_eq!(c.name, Field::Value("Ada".to_owned()));
}

#[test]
fn unknown_relation_and_wrong_column_count_are_errors() {
    let cache = cache_with(&[(11, "public", "contacts", &["id", "name"])]);
    let err = cache
        .change(&msg(encode::insert(42, &[Col::Text("1")])))
        .unwrap_err();
    assert!(matches!(
        err,
        ChangeError::UnknownRelation {
            message: "Insert",
            relation_id: 42
        }
    ));
    assert!(cache.is_read(42, "Delete").is_err());
    let err = cache
        .change(&msg(encode::insert(11, &[Col::Text("1")])))
        .unwrap_err();
    assert!(
        err.to_string().contains("public.contacts has 1 columns"),
        "{err}"
    );
}

#[test]
fn bad_value_names_table_column_and_id() {
    let cache = cache_with(&[(10, "public", "messages", &["message_type", "id"])]);
    let err = cache
        .change(&msg(encode::update(
            10,
            None,
            &[Col::Text("abc"), Col::Text("31")],
        )))
        .unwrap_err();
    let ChangeError::Row { op, error } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*op, RowOp::Update);
    assert_eq!(
        (error.table, error.column, error.id),
        ("messages", "message_type", Some(31))
    );
    let text = err.to_string();
    assert!(
        text.contains("messages row id=31: column message_type"),
        "{text}"
    );
    // Binary values are never requested: an error for the column, not a panic.
    let err = cache
        .change(&msg(encode::insert(
            10,
            &[Col::Binary(&[1]), Col::Text("32")],
        )))
        .unwrap_err();
    assert!(matches!(
        err,
        ChangeError::Row {
            error: RowError {
                problem: ValueProblem::Binary,
                id: Some(32),
                ..
            },
            ..
        }
    ));
}
