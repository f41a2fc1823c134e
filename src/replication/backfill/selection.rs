//! The backfill policy as SQL on the snapshot: which rows of each table the
//! backfill reads, and which of those are history to send to GLPI
//! ([`RowOp::Snapshot`]) rather than rows the planner only needs to know
//! ([`RowOp::SnapshotCacheOnly`]).
//!
//! The selection is decided by PostgreSQL in the backfill's own paged
//! queries (one `EXISTS` probe on an indexed key per row, no query per row
//! from here), so the policy costs Chatwoot's database no extra round trips.
//!
//! - `all`: every row, all sent.
//! - `none`: accounts and hooks (settings) and every contact and
//!   conversation, cache only; no message or attachment is read.
//! - `since:D`: conversations with activity on or after D (UTC) are sent,
//!   with their messages and attachments and the contacts they name; other
//!   contacts and conversations are cache only; their messages and
//!   attachments are not read (a later message in such a conversation
//!   creates its ticket then).
//!
//! [`RowOp::Snapshot`]: crate::chatwoot::RowOp::Snapshot
//! [`RowOp::SnapshotCacheOnly`]: crate::chatwoot::RowOp::SnapshotCacheOnly

use crate::chatwoot::Table;
use crate::config::BackfillPolicy;

/// The columns of `conversations` that tell its last activity, best first
/// (Chatwoot versions before `last_activity_at` have the other two).
pub const ACTIVITY_COLUMNS: [&str; 3] = ["last_activity_at", "updated_at", "created_at"];

/// What the backfill reads from one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableSelection {
    /// Nothing: the planner needs none of these rows.
    Skip,
    /// The rows where `read` holds (SQL on the table aliased `t`); those
    /// where `sent` also holds are history for GLPI, the others cache only.
    Rows { read: String, sent: String },
}

impl TableSelection {
    fn all_sent() -> Self {
        TableSelection::Rows {
            read: "true".into(),
            sent: "true".into(),
        }
    }
}

/// The selection of `table` under `policy`. `activity_columns` are those of
/// [`ACTIVITY_COLUMNS`] that this database's `conversations` has.
pub fn table_selection(
    policy: BackfillPolicy,
    table: Table,
    activity_columns: &[&str],
) -> TableSelection {
    let day = match policy {
        BackfillPolicy::All => return TableSelection::all_sent(),
        BackfillPolicy::None => None,
        BackfillPolicy::Since(day) => Some(day),
    };
    // A conversation (aliased `alias`) selected by the policy. The day is a
    // typed date printed as YYYY-MM-DD: safe to inline. Chatwoot's columns
    // are `timestamp without time zone` holding UTC, compared at midnight.
    let selected = |alias: &str| match day {
        None => "false".to_owned(),
        Some(day) => {
            let columns: Vec<String> = activity_columns
                .iter()
                .map(|c| format!("{alias}.\"{c}\""))
                .collect();
            if columns.is_empty() {
                "false".to_owned()
            } else {
                format!("coalesce({}) >= DATE '{day}'", columns.join(", "))
            }
        }
    };
    match table {
        Table::Accounts | Table::IntegrationsHooks => TableSelection::all_sent(),
        Table::Contacts => TableSelection::Rows {
            read: "true".into(),
            sent: match day {
                None => "false".into(),
                Some(_) => format!(
                    "EXISTS (SELECT 1 FROM public.conversations AS cv \
                     WHERE cv.contact_id = t.id AND {})",
                    selected("cv")
                ),
            },
        },
        Table::Conversations => TableSelection::Rows {
            read: "true".into(),
            sent: selected("t"),
        },
        Table::Messages | Table::Attachments if day.is_none() => TableSelection::Skip,
        Table::Messages => TableSelection::Rows {
            read: format!(
                "EXISTS (SELECT 1 FROM public.conversations AS cv \
                 WHERE cv.id = t.conversation_id AND {})",
                selected("cv")
            ),
            sent: "true".into(),
        },
        Table::Attachments => TableSelection::Rows {
            read: format!(
                "EXISTS (SELECT 1 FROM public.messages AS m \
                 JOIN public.conversations AS cv ON cv.id = m.conversation_id \
                 WHERE m.id = t.message_id AND {})",
                selected("cv")
            ),
            sent: "true".into(),
        },
    }
}

/// What `run` logs once when the configured policy is not the one this
/// state file was backfilled with (`None`: nothing to say).
pub fn policy_mismatch(
    configured: BackfillPolicy,
    backfilled_with: Option<BackfillPolicy>,
) -> Option<String> {
    let used = backfilled_with?;
    (used != configured).then(|| {
        format!(
            "backfill = {configured} is configured, but this state file was backfilled with \
             `{used}`; `{configured}` is not applied: the backfill policy applies only on the \
             first start. To apply it, remove the bridge cleanly and start again (README, \
             Operations: \"Removing the bridge cleanly\")"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(day: &str) -> BackfillPolicy {
        format!("since:{day}").parse().unwrap()
    }

    #[test]
    fn all_reads_and_sends_everything() {
        for table in Table::ALL {
            assert_eq!(
                table_selection(BackfillPolicy::All, table, &ACTIVITY_COLUMNS),
                TableSelection::all_sent()
            );
        }
    }

    #[test]
    fn none_keeps_settings_contacts_and_conversations_and_reads_no_messages() {
        let pick = |t| table_selection(BackfillPolicy::None, t, &ACTIVITY_COLUMNS);
        assert_eq!(pick(Table::Accounts), TableSelection::all_sent());
        assert_eq!(pick(Table::IntegrationsHooks), TableSelection::all_sent());
        for table in [Table::Contacts, Table::Conversations] {
            match pick(table) {
                TableSelection::Rows { read, sent } => {
                    assert_eq!(read, "true", "{table:?}: every row known");
                    assert_eq!(sent, "false", "{table:?}: none sent");
                }
                TableSelection::Skip => panic!("{table:?} must be read"),
            }
        }
        assert_eq!(pick(Table::Messages), TableSelection::Skip);
        assert_eq!(pick(Table::Attachments), TableSelection::Skip);
    }

    #[test]
    fn since_compares_the_best_activity_column_present() {
        let TableSelection::Rows { sent, .. } =
            table_selection(since("2024-03-01"), Table::Conversations, &ACTIVITY_COLUMNS)
        else {
            panic!("conversations are read");
        };
        assert_eq!(
            sent,
            "coalesce(t.\"last_activity_at\", t.\"updated_at\", t.\"created_at\") >= DATE '2024-03-01'"
        );
        // An older Chatwoot without last_activity_at.
        let TableSelection::Rows { read, .. } = table_selection(
            since("2024-03-01"),
            Table::Messages,
            &["updated_at", "created_at"],
        ) else {
            panic!("messages are read");
        };
        assert!(
            read.contains("coalesce(cv.\"updated_at\", cv.\"created_at\") >= DATE '2024-03-01'"),
            "{read}"
        );
    }

    #[test]
    fn a_policy_mismatch_says_it_is_ignored_and_how_to_apply_it() {
        assert_eq!(policy_mismatch(BackfillPolicy::All, None), None);
        assert_eq!(
            policy_mismatch(BackfillPolicy::None, Some(BackfillPolicy::None)),
            None
        );
        let text = policy_mismatch(since("2025-01-01"), Some(BackfillPolicy::All)).unwrap();
        assert!(
            text.contains("backfill = since:2025-01-01 is configured"),
            "{text}"
        );
        assert!(text.contains("backfilled with `all`"), "{text}");
        assert!(text.contains("applies only on the first start"), "{text}");
        assert!(
            text.contains("remove the bridge cleanly and start again"),
            "{text}"
        );
    }
}
