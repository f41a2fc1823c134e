//! Typed rows, built from columns matched by name (text format, as both
//! pgoutput and the backfill's `::text` casts deliver them).

use serde::{Deserialize, Serialize};

use super::Field;

/// `accounts`: the `crm_integration` feature flag gates syncing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountRow {
    pub id: i64,
    pub name: Field<String>,
    pub feature_flags: Field<i64>,
}

/// `integrations_hooks`: an enabled row with `app_id = 'glpi'` carries an
/// account's GLPI settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HookRow {
    pub id: i64,
    pub account_id: Field<i64>,
    pub app_id: Field<String>,
    /// 1 = enabled, 0 = disabled.
    pub status: Field<i32>,
    pub hook_type: Field<i32>,
    pub inbox_id: Field<i64>,
    pub settings: Field<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactRow {
    pub id: i64,
    pub account_id: Field<i64>,
    pub name: Field<String>,
    pub email: Field<String>,
    pub phone_number: Field<String>,
    pub identifier: Field<String>,
    pub additional_attributes: Field<serde_json::Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationRow {
    pub id: i64,
    pub account_id: Field<i64>,
    pub inbox_id: Field<i64>,
    pub contact_id: Field<i64>,
    /// Per-account number shown in Chatwoot's UI and links.
    pub display_id: Field<i64>,
    /// open=0, resolved=1, pending=2, snoozed=3.
    pub status: Field<i32>,
    /// low=0, medium=1, high=2, urgent=3; NULL = none.
    pub priority: Field<i32>,
    pub additional_attributes: Field<serde_json::Value>,
    /// UTC, `YYYY-MM-DD HH:MM:SS[.ffffff]` as PostgreSQL prints it.
    pub created_at: Field<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MessageRow {
    pub id: i64,
    pub account_id: Field<i64>,
    pub conversation_id: Field<i64>,
    /// incoming=0, outgoing=1, activity=2, template=3.
    pub message_type: Field<i32>,
    pub content_type: Field<i32>,
    pub content: Field<String>,
    pub processed_message_content: Field<String>,
    pub private: Field<bool>,
    pub sender_type: Field<String>,
    pub sender_id: Field<i64>,
    /// A `json` column (not `jsonb`): `deleted: true` marks a deleted message.
    pub content_attributes: Field<serde_json::Value>,
    /// UTC, `YYYY-MM-DD HH:MM:SS[.ffffff]` as PostgreSQL prints it.
    pub created_at: Field<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AttachmentRow {
    pub id: i64,
    pub account_id: Field<i64>,
    pub message_id: Field<i64>,
    pub file_type: Field<i32>,
    pub external_url: Field<String>,
    pub fallback_title: Field<String>,
    pub extension: Field<String>,
}

impl AccountRow {
    pub const COLUMNS: &'static [&'static str] = &["id", "name", "feature_flags"];
}

impl HookRow {
    pub const COLUMNS: &'static [&'static str] = &[
        "id",
        "account_id",
        "app_id",
        "status",
        "hook_type",
        "inbox_id",
        "settings",
    ];
}

impl ContactRow {
    pub const COLUMNS: &'static [&'static str] = &[
        "id",
        "account_id",
        "name",
        "email",
        "phone_number",
        "identifier",
        "additional_attributes",
    ];
}

impl ConversationRow {
    pub const COLUMNS: &'static [&'static str] = &[
        "id",
        "account_id",
        "inbox_id",
        "contact_id",
        "display_id",
        "status",
        "priority",
        "additional_attributes",
        "created_at",
    ];
}

impl MessageRow {
    pub const COLUMNS: &'static [&'static str] = &[
        "id",
        "account_id",
        "conversation_id",
        "message_type",
        "content_type",
        "content",
        "processed_message_content",
        "private",
        "sender_type",
        "sender_id",
        "content_attributes",
        "created_at",
    ];
}

impl AttachmentRow {
    pub const COLUMNS: &'static [&'static str] = &[
        "id",
        "account_id",
        "message_id",
        "file_type",
        "external_url",
        "fallback_title",
        "extension",
    ];
}
