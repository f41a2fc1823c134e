//! The planning rules, each checked on the outbox contents after real
//! changes went through the change log and the drain loop.

use serde_json::json;

use crate::chatwoot::{ContactRow, Field, Row, RowOp};
use crate::outbox::{self, JobKind};
use crate::state::mappings::{self, GlpiPersonType};

use super::cache;
use super::settings::CRM_INTEGRATION_FLAG;
use super::test_support::*;
use super::CONTACT_NOT_IDENTIFIABLE;

use RowOp::{Insert, Snapshot, Update};

#[test]
fn contact_insert_plans_sync_then_write_back_in_the_contact_queue() {
    let mut h = Harness::syncing();
    h.commit(vec![contact(
        Insert,
        contact_row(
            5,
            "Test User",
            Some("test@example.com"),
            Some("+1234567890"),
        ),
    )]);
    let jobs = h.jobs();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    assert_eq!(jobs[0].0, "contact:5");
    assert!(jobs[0].1.starts_with("contact:5@"));
    match &jobs[0].2 {
        JobKind::SyncContact { contact } => {
            assert_eq!(contact.name.as_deref(), Some("Test User"));
            assert_eq!(contact.email.as_deref(), Some("test@example.com"));
            assert_eq!(contact.phone_number.as_deref(), Some("+1234567890"));
            assert_eq!(contact.account_id, 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(jobs[1].1, "writeback:contact:5");
    assert_eq!(jobs[1].0, "contact:5");
}

#[test]
fn updates_that_leave_glpi_fields_unchanged_plan_nothing() {
    let mut h = with_conversation();
    // Chatwoot bumps last_activity_at on every message: same visible fields.
    let stats = h.commit(vec![
        contact(
            Update,
            contact_row(5, "Test User", Some("test@example.com"), None),
        ),
        conversation(Update, conversation_row(7, 5, 0, None)),
    ]);
    assert_eq!(stats.changes, 2);
    assert!(h.jobs().is_empty(), "{:?}", h.jobs());
    // An identifier change is not shown in GLPI either.
    let mut c = contact_row(5, "Test User", Some("test@example.com"), None);
    c.identifier = Field::Value("crm-42".into());
    h.commit(vec![contact(Update, c)]);
    assert!(h.jobs().is_empty());
}

#[test]
fn unchanged_toast_columns_are_resolved_from_the_cache() {
    let mut h = with_conversation();
    let mut c = contact_row(5, "ignored", Some("new@example.com"), None);
    c.name = Field::Unchanged;
    c.additional_attributes = Field::Unchanged;
    h.commit(vec![contact(Update, c)]);
    match &h.jobs()[0].2 {
        JobKind::SyncContact { contact } => {
            assert_eq!(
                contact.name.as_deref(),
                Some("Test User"),
                "never read as NULL"
            );
            assert_eq!(contact.email.as_deref(), Some("new@example.com"));
        }
        other => panic!("{other:?}"),
    }
    h.run_all_jobs();

    // A conversation whose large additional_attributes arrive unchanged keeps
    // its mail subject; a long message's content arrives unchanged on a
    // status update and must not look like a change.
    let mut conv = conversation_row(8, 5, 0, None);
    conv.additional_attributes = Field::Value(json!({"mail_subject": "Printer on fire"}));
    h.commit(vec![conversation(Insert, conv)]);
    let mut conv = conversation_row(8, 5, 0, None);
    conv.additional_attributes = Field::Unchanged;
    conv.status = Field::Unchanged;
    h.commit(vec![conversation(Update, conv)]);
    assert!(h.jobs().is_empty());
    h.commit(vec![message(Insert, message_row(80, 8, "long text"))]);
    match &h.jobs()[0].2 {
        JobKind::CreateTicket { conversation, .. } => {
            assert_eq!(
                conversation.mail_subject.as_deref(),
                Some("Printer on fire")
            );
            assert_eq!(conversation.status, 0);
        }
        other => panic!("{other:?}"),
    }
    h.run_all_jobs();
    let mut m = message_row(80, 8, "");
    m.content = Field::Unchanged;
    m.content_attributes = Field::Unchanged;
    h.commit(vec![message(Update, m)]);
    assert!(h.jobs().is_empty());
    let cached = cache::message(h.conn(), 80).unwrap().unwrap();
    assert_eq!(cached.snapshot.unwrap().text, "long text");
}

#[test]
fn unidentifiable_contacts_are_recorded_as_visible_skips() {
    let mut h = Harness::syncing();
    let stats = h.commit(vec![contact(Insert, contact_row(5, "", None, None))]);
    assert_eq!(stats.skipped, 1);
    assert!(h.jobs().is_empty());
    let skips = cache::skips(h.conn()).unwrap();
    assert_eq!(skips.len(), 1);
    assert_eq!(skips[0].subject, "contact:5");
    assert_eq!(skips[0].reason, CONTACT_NOT_IDENTIFIABLE);
    assert_eq!(skips[0].account_id, Some(1));

    // Becoming identifiable syncs it and clears the skip.
    h.commit(vec![contact(
        Update,
        contact_row(5, "", None, Some("+33612345678")),
    )]);
    assert_eq!(h.job_keys().len(), 2);
    assert!(cache::skips(h.conn()).unwrap().is_empty());

    // Its conversation's ticket is created without a requester snapshot
    // when the contact is not identifiable.
    h.run_all_jobs();
    h.commit(vec![
        contact(Insert, contact_row(6, " ", None, None)),
        conversation(Insert, conversation_row(9, 6, 0, None)),
        message(Insert, message_row(90, 9, "hi")),
    ]);
    match &h.jobs()[0].2 {
        JobKind::CreateTicket { contact, .. } => assert_eq!(contact, &None),
        other => panic!("{other:?}"),
    }
}

#[test]
fn accounts_that_do_not_sync_plan_nothing_but_stay_cached() {
    let mut h = Harness::new();
    h.commit(vec![
        account(1, 0),
        contact(
            Insert,
            contact_row(5, "Test User", Some("t@example.com"), None),
        ),
        conversation(Insert, conversation_row(7, 5, 0, None)),
        message(Insert, message_row(70, 7, "Hello")),
    ]);
    assert!(h.jobs().is_empty());
    assert!(cache::contact(h.conn(), 5).unwrap().is_some());
    assert!(cache::message(h.conn(), 70).unwrap().is_some());
}

#[test]
fn feature_flag_gates_the_hook_live() {
    let mut h = Harness::new();
    h.commit(vec![account(1, 1 << 42), hook(10, 1, true, settings())]);
    let states = cache::account_states(h.conn()).unwrap();
    assert_eq!(states[0].1, "problem");
    assert!(states[0].2.as_deref().unwrap().contains("crm_integration"));
    h.commit(vec![contact(
        Insert,
        contact_row(5, "A", Some("a@example.com"), None),
    )]);
    assert!(h.jobs().is_empty());

    h.commit(vec![account(1, (1 << 42) | CRM_INTEGRATION_FLAG)]);
    assert_eq!(cache::account_states(h.conn()).unwrap()[0].1, "syncing");
    h.commit(vec![contact(
        Insert,
        contact_row(6, "B", Some("b@example.com"), None),
    )]);
    assert_eq!(h.job_keys().len(), 2);
}

#[test]
fn disabling_editing_and_enabling_take_effect_live() {
    let mut h = with_conversation();
    h.commit(vec![message(Insert, message_row(70, 7, "Hello"))]);
    h.run_all_jobs();

    // Disabled: nothing new, but the cache follows (status 0 -> 1).
    h.commit(vec![hook(10, 1, false, settings())]);
    h.commit(vec![
        message(Insert, message_row(71, 7, "while disabled")),
        conversation(Update, conversation_row(7, 5, 1, None)),
        contact(Insert, contact_row(8, "C", Some("c@example.com"), None)),
    ]);
    assert!(h.jobs().is_empty());
    assert_eq!(cache::conversation(h.conn(), 7).unwrap().unwrap().status, 1);

    // Bad edit: reported, still nothing.
    let mut bad = settings();
    bad["sync_type"] = json!("users");
    h.commit(vec![hook(10, 1, true, bad)]);
    let states = cache::account_states(h.conn()).unwrap();
    assert_eq!(states[0].1, "problem");
    assert!(
        states[0].2.as_deref().unwrap().contains(
            r#"integrations_hooks row 10 (account 1): sync_type must be "user" or "contact", got "users""#
        ),
        "{states:?}"
    );
    h.commit(vec![message(Insert, message_row(72, 7, "still off"))]);
    assert!(h.jobs().is_empty());

    // Fixed: resumes from the cached state (status already 1: no update).
    h.commit(vec![hook(10, 1, true, settings())]);
    h.commit(vec![
        conversation(Update, conversation_row(7, 5, 1, None)),
        message(Insert, message_row(73, 7, "back")),
    ]);
    assert_eq!(
        h.job_keys(),
        vec!["followup:message:73", "writeback:conversation:7"]
    );
}

#[test]
fn the_environment_names_accounts_without_a_hook() {
    let configured = super::ConfiguredAccounts::from_lookup(|name| {
        match name {
            "GLPI_ACCOUNT_IDS" => Some("1"),
            "GLPI_API_URL" => Some("http://127.0.0.1:9/apirest.php"),
            "GLPI_APP_TOKEN" => Some("a"),
            "GLPI_USER_TOKEN" => Some("u"),
            _ => None,
        }
        .map(str::to_owned)
    })
    .unwrap();
    let mut h = Harness::with_config(configured);
    h.commit(vec![
        account(1, 0),
        account(2, 0),
        contact(Insert, contact_row(5, "A", Some("a@example.com"), None)),
    ]);
    assert_eq!(h.job_keys().len(), 2);
    assert!(h.planner.book().syncing(1).is_some());
    assert!(h.planner.book().syncing(2).is_none());
}

#[test]
fn own_write_backs_update_the_cache_and_plan_nothing() {
    let mut h = with_conversation();
    h.commit(vec![message(Insert, message_row(70, 7, "Hello"))]);
    h.run_all_jobs();
    mappings::record_contact(h.conn(), 5, 1, GlpiPersonType::User, 42, None).unwrap();
    mappings::adopt_ticket(h.conn(), 7, 1, 900, Some(70)).unwrap();

    let mut c = contact_row(5, "Test User", Some("test@example.com"), None);
    c.additional_attributes = Field::Value(json!({"external": {"glpi_user_id": 42}}));
    let mut conv = conversation_row(7, 5, 0, None);
    conv.additional_attributes =
        Field::Value(json!({"glpi": {"ticket_id": 900, "last_synced_message_id": 70}}));
    let stats = h.commit_from_bridge(vec![
        contact(Update, c.clone()),
        conversation(Update, conv.clone()),
    ]);
    assert_eq!(stats.changes, 2);
    assert!(h.jobs().is_empty());
    assert_eq!(
        cache::contact(h.conn(), 5).unwrap().unwrap().key_user_id,
        Some(42)
    );

    // Rails touching the rows later, keys intact: still nothing.
    h.commit(vec![contact(Update, c), conversation(Update, conv)]);
    assert!(h.jobs().is_empty());
}

#[test]
fn clobbered_keys_are_written_back_again() {
    let mut h = with_conversation();
    h.commit(vec![message(Insert, message_row(70, 7, "Hello"))]);
    h.run_all_jobs();
    mappings::record_contact(h.conn(), 5, 1, GlpiPersonType::User, 42, None).unwrap();
    mappings::adopt_ticket(h.conn(), 7, 1, 900, Some(70)).unwrap();

    // The avatar job rewrites additional_attributes from a stale copy.
    let mut c = contact_row(5, "Test User", Some("test@example.com"), None);
    c.additional_attributes = Field::Value(json!({"avatar_url_hash": "abc"}));
    let mut conv = conversation_row(7, 5, 0, None);
    conv.additional_attributes = Field::Value(json!({"referer": "https://x"}));
    h.commit(vec![contact(Update, c), conversation(Update, conv)]);
    let mut keys = h.job_keys();
    keys.sort();
    assert_eq!(
        keys,
        vec!["writeback:contact:5", "writeback:conversation:7"]
    );
}

#[test]
fn ids_already_in_chatwoot_are_adopted_in_the_backfill() {
    let mut h = Harness::syncing();
    let mut c = contact_row(5, "Test User", Some("test@example.com"), None);
    c.additional_attributes = Field::Value(json!({"external": {"glpi_id": "31"}}));
    let mut c2 = contact_row(6, "Other", Some("o@example.com"), None);
    c2.additional_attributes = Field::Value(json!({"external": {"glpi_contact_id": 12}}));
    let mut conv = conversation_row(7, 5, 0, None);
    conv.additional_attributes =
        Field::Value(json!({"glpi": {"ticket_id": 900, "last_synced_message_id": 71}}));
    let mut conv_no_progress = conversation_row(8, 6, 0, None);
    conv_no_progress.additional_attributes = Field::Value(json!({"glpi": {"ticket_id": 901}}));
    h.commit(vec![
        contact(Snapshot, c),
        contact(Snapshot, c2),
        conversation(Snapshot, conv),
        conversation(Snapshot, conv_no_progress),
        message(Snapshot, message_row(70, 7, "old")),
        message(Snapshot, message_row(71, 7, "old too")),
        message(Snapshot, message_row(72, 7, "new since")),
        message(Snapshot, message_row(80, 8, "old")),
    ]);
    // No contact re-sync, no second ticket, no re-sent message; the legacy
    // `external.glpi_id` gets its current name written next to it.
    assert_eq!(
        h.job_keys(),
        vec![
            "followup:message:72",
            "writeback:contact:5",
            "writeback:conversation:7"
        ],
    );
    let link = mappings::contact_link(h.conn(), 5).unwrap().unwrap();
    assert_eq!((link.person_type, link.glpi_id), (GlpiPersonType::User, 31));
    let link = mappings::contact_link(h.conn(), 6).unwrap().unwrap();
    assert_eq!(
        (link.person_type, link.glpi_id),
        (GlpiPersonType::Contact, 12)
    );
    let ticket = mappings::ticket_link(h.conn(), 7).unwrap().unwrap();
    assert_eq!(
        (ticket.glpi_ticket_id, ticket.last_synced_message_id),
        (900, Some(71))
    );

    // Live messages of the conversation adopted without progress do sync.
    h.run_all_jobs();
    h.commit(vec![message(Insert, message_row(81, 8, "live"))]);
    assert_eq!(h.job_keys()[0], "followup:message:81");
}

#[test]
fn backfilled_rows_plan_like_inserts() {
    let mut h = Harness::syncing();
    h.commit(vec![
        contact(
            Snapshot,
            contact_row(5, "Test User", Some("t@example.com"), None),
        ),
        conversation(Snapshot, conversation_row(7, 5, 2, Some(1))),
        message(Snapshot, message_row(70, 7, "first")),
        message(Snapshot, message_row(71, 7, "second")),
        attachment(Snapshot, 700, 71, "https://x/a.png"),
    ]);
    let keys = h.job_keys();
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(keys[0].starts_with("contact:5@"));
    assert_eq!(
        &keys[1..],
        [
            "ticket:conversation:7",
            "followup:message:71",
            "writeback:contact:5",
            "writeback:conversation:7"
        ]
    );
    assert_eq!(attachment_urls(&h.jobs()[2].2), vec!["https://x/a.png"]);
}

#[test]
fn a_message_of_an_unknown_conversation_is_a_visible_skip() {
    let mut h = Harness::syncing();
    h.commit(vec![message(Insert, message_row(70, 99, "orphan"))]);
    assert!(h.jobs().is_empty());
    let skips = cache::skips(h.conn()).unwrap();
    assert_eq!(skips[0].subject, "message:70");
    assert!(
        skips[0].reason.contains("conversation 99 is unknown"),
        "{skips:?}"
    );
}

#[test]
fn a_parked_ticket_blocks_only_its_own_conversation() {
    let mut h = Harness::syncing();
    h.commit(vec![
        contact(Insert, contact_row(5, "A", Some("a@example.com"), None)),
        conversation(Insert, conversation_row(7, 5, 0, None)),
        conversation(Insert, conversation_row(8, 5, 0, None)),
        message(Insert, message_row(70, 7, "a")),
        message(Insert, message_row(71, 7, "b")),
        message(Insert, message_row(80, 8, "c")),
    ]);
    let conn = h.conn();
    let runnable = |conn| {
        outbox::next_runnable(conn, 10, &Default::default())
            .unwrap()
            .into_iter()
            .map(|j| j.key)
            .collect::<Vec<_>>()
    };
    let first = runnable(conn);
    assert!(
        first.contains(&"ticket:conversation:7".to_owned()),
        "{first:?}"
    );
    let ticket7 = outbox::next_runnable(conn, 10, &Default::default())
        .unwrap()
        .into_iter()
        .find(|j| j.key == "ticket:conversation:7")
        .unwrap();
    outbox::park(conn, ticket7.id, "GLPI refused: entity not writable").unwrap();
    let after = runnable(conn);
    assert!(
        after.contains(&"ticket:conversation:8".to_owned()),
        "{after:?}"
    );
    assert!(
        !after.iter().any(|k| k.contains(":7") || k.ends_with(":71")),
        "{after:?}"
    );
}

#[test]
fn a_failed_batch_rolls_back_and_is_planned_again() {
    let mut h = Harness::syncing();
    h.conn()
        .execute_batch("ALTER TABLE outbox_jobs RENAME TO outbox_jobs_away")
        .unwrap();
    h.append(
        false,
        vec![contact(
            Insert,
            contact_row(5, "A", Some("a@example.com"), None),
        )],
    );
    assert!(h.planner.drain_once().is_err());
    assert!(
        cache::contact(h.conn(), 5).unwrap().is_none(),
        "cache rolled back"
    );
    assert_eq!(
        crate::state::changes::depth(h.conn()).unwrap(),
        1,
        "change kept"
    );
    h.conn()
        .execute_batch("ALTER TABLE outbox_jobs_away RENAME TO outbox_jobs")
        .unwrap();
    h.drain();
    assert_eq!(h.job_keys().len(), 2);
    assert_eq!(crate::state::changes::depth(h.conn()).unwrap(), 0);
    // Draining again plans nothing twice.
    assert_eq!(h.drain().changes, 0);
    assert_eq!(h.job_keys().len(), 2);
}

#[test]
fn deletes_carry_only_ids_and_are_resolved_from_the_cache() {
    let mut h = with_conversation();
    h.commit(vec![deleted(Row::Contact(ContactRow {
        id: 5,
        ..ContactRow::default()
    }))]);
    assert!(cache::contact(h.conn(), 5).unwrap().is_none());
    // A hook deleted: the account stops syncing.
    h.commit(vec![deleted(Row::IntegrationsHook(
        crate::chatwoot::HookRow {
            id: 10,
            ..Default::default()
        },
    ))]);
    assert!(h.planner.book().syncing(1).is_none());
    h.commit(vec![message(Insert, message_row(70, 7, "x"))]);
    assert!(h.jobs().is_empty());
}

#[test]
fn workers_read_the_same_live_settings_on_their_own_connection() {
    use crate::worker::runtime::AccountLookup;
    let mut h = Harness::syncing();
    let lookup = super::accounts::SettingsLookup::new(
        crate::state::State::open(h.planner.state().path()).unwrap(),
        Default::default(),
    );
    let glpi = lookup.account(1).unwrap().expect("account 1 syncs");
    assert_eq!(glpi.api_url, "http://127.0.0.1:9/apirest.php");
    assert_eq!(glpi.user_token.expose(), "user");
    assert!(lookup.account(2).unwrap().is_none());
    h.commit(vec![hook(10, 1, false, settings())]);
    assert!(lookup.account(1).unwrap().is_none(), "disabled live");
}

#[test]
fn status_shows_account_problems_and_skips_with_their_reasons() {
    let mut h = Harness::syncing();
    let mut bad = settings();
    bad["ticket_type"] = json!("7");
    h.commit(vec![
        account(2, CRM_INTEGRATION_FLAG),
        hook(11, 2, true, bad),
        contact(Insert, contact_row(5, "", None, None)),
    ]);
    let report = crate::cli::status::read_state(h.planner.state()).unwrap();
    let text = report.render();
    assert!(
        text.contains("account 1: syncing: integrations_hooks row 10"),
        "{text}"
    );
    assert!(
        text.contains(
            "account 2: problem: integrations_hooks row 11 (account 2): ticket_type must be 1 (Incident) or 2 (Request), got \"7\""
        ),
        "{text}"
    );
    assert!(
        text.contains("contact:5 (account 1): Contact not identifiable"),
        "{text}"
    );
    let json = report.to_json();
    assert_eq!(json["skipped"]["total"], 1);
    assert_eq!(json["integrations"][1]["state"], "problem");
}

#[test]
fn a_truncate_forgets_cached_rows_and_plans_nothing() {
    let mut h = with_conversation();
    h.commit(vec![crate::chatwoot::Change::Truncate {
        tables: vec![crate::chatwoot::Table::Contacts],
    }]);
    assert!(cache::contact(h.conn(), 5).unwrap().is_none());
    assert!(cache::conversation(h.conn(), 7).unwrap().is_some());
    assert!(h.jobs().is_empty());
    // Accounts and hooks truncated: nothing syncs any more.
    h.commit(vec![crate::chatwoot::Change::Truncate {
        tables: vec![
            crate::chatwoot::Table::Accounts,
            crate::chatwoot::Table::IntegrationsHooks,
        ],
    }]);
    assert!(h.planner.book().syncing(1).is_none());
}

#[test]
fn additional_attributes_set_to_null_are_restored_too() {
    let mut h = with_conversation();
    mappings::record_contact(h.conn(), 5, 1, GlpiPersonType::User, 42, None).unwrap();
    let mut c = contact_row(5, "Test User", Some("test@example.com"), None);
    c.additional_attributes = Field::Null;
    h.commit(vec![contact(Update, c)]);
    assert_eq!(h.job_keys(), vec!["writeback:contact:5"]);
}
