//! A human summary of what clients created, for `glpi-sandbox` on Ctrl-C:
//! counts per item type, then one line per item with its telling fields.

use std::fmt::Write;

use serde_json::Value;

use super::sanitize;
use super::schema::ItemType;
use super::store::Glpi;

/// The columns worth showing for each type.
fn shown_columns(t: ItemType) -> &'static [&'static str] {
    match t {
        ItemType::User => &["name", "realname", "firstname", "phone", "is_deleted"],
        ItemType::UserEmail => &["users_id", "email", "is_default"],
        ItemType::Contact => &["name", "firstname", "email", "phone", "entities_id"],
        ItemType::Ticket => &[
            "name",
            "status",
            "priority",
            "type",
            "entities_id",
            "date",
            "externalid",
        ],
        ItemType::TicketUser => &["tickets_id", "type", "users_id", "alternative_email"],
        ItemType::ItilFollowup => &["items_id", "users_id", "is_private", "date", "content"],
    }
}

pub(crate) fn created_summary(glpi: &Glpi) -> String {
    let mut out = String::new();
    let mut lines = String::new();
    let mut counts = Vec::new();
    for t in ItemType::ALL {
        let rows: Vec<_> = glpi
            .table(t)
            .iter()
            .filter(|(id, _)| !(t == ItemType::User && glpi.seeded_users.contains(id)))
            .collect();
        counts.push(format!("{} {}", t.name(), rows.len()));
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(lines, "{} ({}):", t.name(), rows.len());
        for (id, row) in rows {
            let mut line = format!("  #{id}");
            for column in shown_columns(t) {
                let Some(value) = row.get(*column) else {
                    continue;
                };
                let text = match value {
                    Value::Null => continue,
                    Value::String(s) if s.is_empty() => continue,
                    Value::String(s) => {
                        let s = sanitize::decode(s).replace('\n', " ");
                        let short: String = s.chars().take(60).collect();
                        let ellipsis = if s.chars().count() > 60 { "…" } else { "" };
                        format!("{short:?}{ellipsis}")
                    }
                    other => other.to_string(),
                };
                let _ = write!(line, " {column}={text}");
            }
            let _ = writeln!(lines, "{line}");
        }
    }
    let _ = writeln!(out, "Created: {}", counts.join(", "));
    out.push_str(&lines);
    out
}
