use serde_json::json;

use super::*;
use crate::chatwoot::rows::{ContactRow, MessageRow};

#[test]
fn field_specs_follow_table_columns() {
    fn names<R: TypedRow>() -> Vec<&'static str> {
        R::FIELDS.iter().map(|f| f.name).collect()
    }
    let specs = [
        (Table::Accounts, names::<AccountRow>()),
        (Table::IntegrationsHooks, names::<HookRow>()),
        (Table::Contacts, names::<ContactRow>()),
        (Table::Conversations, names::<ConversationRow>()),
        (Table::Messages, names::<MessageRow>()),
        (Table::Attachments, names::<AttachmentRow>()),
    ];
    for (table, names) in specs {
        assert_eq!(names, table.columns(), "{table:?}");
    }
}

#[test]
fn parses_postgres_text_formats() {
    assert_eq!(parse_i64("-42"), Ok(-42));
    assert_eq!(parse_i64("9223372036854775807"), Ok(i64::MAX));
    assert!(parse_i32("2147483648").is_err());
    assert_eq!(parse_bool("t"), Ok(true));
    assert_eq!(parse_bool("false"), Ok(false));
    assert!(parse_bool("yes").is_err());
    assert_eq!(
        parse_json(r#"{"a": [1, null]}"#),
        Ok(json!({"a": [1, null]}))
    );
    assert!(matches!(
        parse_json("{broken"),
        Err(ValueProblem::InvalidJson { .. })
    ));
}

#[test]
fn backfill_row_matched_by_name_in_any_order_with_extra_column() {
    let row = row_from_named(
        Table::Messages,
        [
            ("content", Some("hello")),
            ("sentiment", Some("{}")), // not read by the bridge
            ("private", Some("true")),
            ("content_attributes", Some(r#"{"deleted": true}"#)),
            ("id", Some("7")),
            ("conversation_id", Some("3")),
            ("created_at", Some("2026-01-02 03:04:05.123456")),
            ("sender_id", None),
        ],
    )
    .unwrap();
    let Row::Message(m) = row else {
        panic!("not a message: {row:?}")
    };
    assert_eq!(m.id, 7);
    assert_eq!(m.content, Field::Value("hello".to_owned()));
    assert_eq!(m.private, Field::Value(true));
    assert_eq!(m.content_attributes, Field::Value(json!({"deleted": true})));
    assert_eq!(m.conversation_id, Field::Value(3));
    assert_eq!(
        m.created_at,
        Field::Value("2026-01-02 03:04:05.123456".to_owned())
    );
    assert_eq!(m.sender_id, Field::Null);
    // Absent from the source (an older Chatwoot): NULL, not an error.
    assert_eq!(m.processed_message_content, Field::Null);
    assert_eq!(m.account_id, Field::Null);
}

#[test]
fn unchanged_value_stays_unchanged() {
    let map = ColumnMap::new(Table::Contacts, ["id", "additional_attributes", "email"]);
    let row = map
        .build_row([TextValue::Text("5"), TextValue::Unchanged, TextValue::Null])
        .unwrap();
    let Row::Contact(c) = row else { panic!() };
    assert_eq!(c.additional_attributes, Field::Unchanged);
    assert_eq!(c.email, Field::Null);
    assert_eq!(
        c,
        ContactRow {
            id: 5,
            additional_attributes: Field::Unchanged,
            ..Default::default()
        }
    );
}

#[test]
fn parse_error_names_table_column_and_id_even_when_id_comes_later() {
    let err = row_from_named(
        Table::Conversations,
        [("status", Some("abc")), ("id", Some("12"))],
    )
    .unwrap_err();
    assert_eq!(err.table, "conversations");
    assert_eq!(err.column, "status");
    assert_eq!(err.id, Some(12));
    let text = err.to_string();
    assert!(
        text.contains("conversations") && text.contains("status"),
        "{text}"
    );
    assert!(text.contains("id=12") && text.contains("\"abc\""), "{text}");
}

#[test]
fn bad_json_is_an_error_not_a_null() {
    let err = row_from_named(
        Table::Contacts,
        [("id", Some("1")), ("additional_attributes", Some("{nope"))],
    )
    .unwrap_err();
    assert_eq!((err.column, err.id), ("additional_attributes", Some(1)));
    assert!(matches!(err.problem, ValueProblem::InvalidJson { .. }));
}

#[test]
fn primary_key_must_be_present_and_valid() {
    let missing = row_from_named(Table::Accounts, [("name", Some("Acme"))]).unwrap_err();
    assert_eq!(
        (missing.column, missing.id, missing.problem),
        ("id", None, ValueProblem::MissingKey)
    );
    let null = row_from_named(Table::Accounts, [("id", None)]).unwrap_err();
    assert_eq!(null.problem, ValueProblem::NullKey);
    let bad = row_from_named(Table::Accounts, [("id", Some("x1"))]).unwrap_err();
    assert_eq!((bad.column, bad.id), ("id", None));
    assert!(bad.to_string().contains("unknown id"), "{bad}");
}

#[test]
fn short_value_list_reads_as_null() {
    let map = ColumnMap::new(Table::Accounts, ["id", "name", "feature_flags"]);
    assert_eq!(map.source_len(), 3);
    let row = map.build_row([Some("1")]).unwrap();
    assert_eq!(
        row,
        Row::Account(AccountRow {
            id: 1,
            ..Default::default()
        })
    );
}
