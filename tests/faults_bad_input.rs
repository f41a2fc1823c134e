//! Invariant 6, bad input at the GLPI side: every job ends in GLPI correctly
//! or is parked with a reason the operator can read (and retry); nothing is
//! dropped silently, nothing crashes, and a parked job blocks only its queue.
//!
//! Covered here with the real workers against the emulator (GLPI 10 and 11):
//! an entity the API user cannot write to, invalid and unusual email
//! addresses, 150,000-character messages, emoji, HTML and `<script>` in
//! content, and a followup for a conversation that has no ticket.

mod faults_common;
mod support;

use std::time::Duration;

use chatwoot_glpi_bridge::glpi_emulator::GlpiVersion;
use chatwoot_glpi_bridge::outbox::{
    self, keys, ContactSnapshot, ConversationSnapshot, JobKind, MessageSnapshot,
};
use chatwoot_glpi_bridge::state::mappings::{self, GlpiPersonType};
use faults_common::Rig;

const DRAIN: Duration = Duration::from_secs(30);

fn contact(id: i64, name: &str, email: Option<&str>, phone: Option<&str>) -> ContactSnapshot {
    ContactSnapshot {
        id,
        account_id: 1,
        name: Some(name.to_owned()),
        email: email.map(str::to_owned),
        phone_number: phone.map(str::to_owned),
        identifier: None,
    }
}

fn message(id: i64, conversation_id: i64, text: &str) -> MessageSnapshot {
    MessageSnapshot {
        id,
        conversation_id,
        message_type: 0,
        private: false,
        text: text.to_owned(),
        sender_type: Some("Contact".to_owned()),
        sender_id: Some(1),
        created_at: "2026-11-28 08:00:00.5".to_owned(),
        deleted: false,
        attachments: Vec::new(),
    }
}

fn conversation(id: i64, contact_id: i64) -> ConversationSnapshot {
    ConversationSnapshot {
        id,
        account_id: 1,
        display_id: id,
        contact_id: Some(contact_id),
        status: 0,
        priority: None,
        mail_subject: None,
        created_at: "2026-11-28 07:59:00".to_owned(),
    }
}

async fn insert_contact_row(rig: &Rig, c: &ContactSnapshot) {
    rig.db
        .connect()
        .await
        .execute(
            "INSERT INTO contacts (id, account_id, name, email, phone_number, created_at, updated_at) \
             VALUES ($1, 1, $2, $3, $4, now(), now())",
            &[&(c.id as i32), &c.name, &c.email, &c.phone_number],
        )
        .await
        .expect("contact row");
}

/// Text as GLPI shows it: GLPI 10 stores `&`, `<`, `>` as numeric entities.
fn shown(content: &str) -> String {
    content
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#38;", "&")
}

fn ticket_job(conversation_id: i64, contact: &ContactSnapshot, text: &str) -> JobKind {
    JobKind::CreateTicket {
        conversation: conversation(conversation_id, contact.id),
        contact: Some(contact.clone()),
        first_message: message(conversation_id * 100, conversation_id, text),
    }
}

fn enqueue_ticket(rig: &Rig, conversation_id: i64, contact: &ContactSnapshot, text: &str) {
    rig.enqueue(
        &keys::conversation_queue(conversation_id),
        &keys::create_ticket(conversation_id),
        ticket_job(conversation_id, contact, text),
    );
}

fn enqueue_followup(rig: &Rig, conversation_id: i64, message_id: i64, text: &str) {
    rig.enqueue(
        &keys::conversation_queue(conversation_id),
        &keys::create_followup(message_id),
        JobKind::CreateFollowup {
            conversation_id,
            message: message(message_id, conversation_id, text),
        },
    );
}

/// An entity the GLPI API user may not create in: the jobs are parked with
/// GLPI's refusal as the reason, kept (retryable), and nothing is created.
async fn unwritable_entity(version: GlpiVersion) {
    let mut rig = Rig::new(version, GlpiPersonType::User).await;
    rig.account.jobs.entity_id = 5;
    let c = contact(1, "Zoé O'Neil", Some("zoe@example.com"), None);
    insert_contact_row(&rig, &c).await;
    enqueue_ticket(&rig, 3, &c, "Hello");
    enqueue_followup(&rig, 3, 301, "Second message");
    let parked = rig.drain(DRAIN).await;
    assert_eq!(parked.len(), 1, "the ticket job is parked: {parked:?}");
    assert!(
        parked[0].contains("ticket:conversation:3") && parked[0].contains("permission"),
        "the reason is GLPI's refusal: {parked:?}"
    );
    assert_eq!(rig.count("Ticket"), 0);
    // The followup is kept behind its parked ticket, not dropped.
    let depth = outbox::depth(rig.state().conn()).expect("depth");
    assert_eq!((depth.pending, depth.parked), (1, 1));

    // The operator fixes the rights (here: the setting) and retries.
    rig.account.jobs.entity_id = 0;
    outbox::retry_parked(rig.state().conn(), outbox::ParkedSelection::All).expect("retry");
    let parked = rig.drain(DRAIN).await;
    assert!(parked.is_empty(), "{parked:?}");
    assert_eq!(rig.count("Ticket"), 1);
    assert_eq!(rig.count("ITILFollowup"), 1);
}

/// Contacts with odd or invalid emails all end as exactly one GLPI user
/// each, identified by what GLPI accepts (never parked for a bad address
/// when the contact has a name or phone).
async fn unusual_emails(version: GlpiVersion) {
    let rig = Rig::new(version, GlpiPersonType::User).await;
    let emails = [
        "not-an-email",
        "two@@example.com",
        "trailing.dot@example.com.",
        "with space@example.com",
        "first+tag@example.com",
        "o'neil@example.com",
        "UPPER.Case@Example.COM",
        "zoé@exämple.com",
        "a!b@exa_mple.com",
        "x@localhost",
    ];
    for (i, email) in emails.iter().enumerate() {
        let id = i as i64 + 1;
        let c = contact(id, &format!("Person {id}"), Some(email), None);
        insert_contact_row(&rig, &c).await;
        rig.enqueue(
            &keys::contact_queue(id),
            &keys::sync_contact(id, 1),
            JobKind::SyncContact { contact: c },
        );
    }
    let users_before = rig.count("User");
    let parked = rig.drain(DRAIN).await;
    assert!(
        parked.is_empty(),
        "no contact parked for its email: {parked:?}"
    );
    assert_eq!(rig.count("User") - users_before, emails.len());
    for id in 1..=emails.len() as i64 {
        assert!(
            mappings::contact_link(rig.state().conn(), id)
                .unwrap()
                .is_some(),
            "contact {id} ({}) is linked",
            emails[id as usize - 1]
        );
    }
}

/// 150,000 characters (Chatwoot's limit) of text with emoji, HTML and a
/// script tag, as ticket description and as followup: stored whole, and
/// shown as text (escaped), never as markup.
async fn long_and_hostile_content(version: GlpiVersion) {
    let rig = Rig::new(version, GlpiPersonType::User).await;
    let c = contact(1, "Zoé O'Neil", Some("zoe@example.com"), None);
    insert_contact_row(&rig, &c).await;
    let hostile = "<script>alert('x')</script> <b>bold</b> & 😀🇫🇷 \"q\" 'a'";
    let filler = 150_000 - hostile.chars().count();
    let mut long: String = "Start lorem ipsum ".chars().cycle().take(filler).collect();
    long.push_str(hostile);
    assert_eq!(long.chars().count(), 150_000);
    enqueue_ticket(&rig, 3, &c, &long);
    enqueue_followup(&rig, 3, 301, &long);
    enqueue_followup(&rig, 3, 302, hostile);
    let parked = rig.drain(DRAIN).await;
    assert!(parked.is_empty(), "{parked:?}");
    let ticket = rig.glpi.items("Ticket")[0].clone();
    let followups = rig.glpi.items("ITILFollowup");
    assert_eq!(followups.len(), 2);
    for content in [
        ticket["content"].as_str().unwrap(),
        followups[0]["content"].as_str().unwrap(),
        followups[1]["content"].as_str().unwrap(),
    ] {
        let text = shown(content);
        assert!(
            !text.contains("<script>"),
            "a script tag reached GLPI as markup"
        );
        assert!(
            text.contains("&lt;script&gt;alert('x')&lt;/script&gt;"),
            "the script tag is shown as text"
        );
        assert!(
            text.contains("&lt;b&gt;bold&lt;/b&gt; &amp; 😀🇫🇷"),
            "HTML and emoji shown as text: {}",
            &text[text.len().saturating_sub(300)..]
        );
    }
    let first = shown(ticket["content"].as_str().unwrap());
    assert!(
        first.matches("lorem ipsum").count() == long.matches("lorem ipsum").count(),
        "the 150,000-character message is whole in the description"
    );
    assert_eq!(
        shown(followups[0]["content"].as_str().unwrap())
            .matches("lorem ipsum")
            .count(),
        long.matches("lorem ipsum").count(),
        "the 150,000-character message is whole in its followup"
    );
    // Titles are cut to 80 characters.
    assert!(ticket["name"].as_str().unwrap().chars().count() <= 80);
}

/// A followup whose conversation has no ticket is parked with that reason,
/// and blocks only its own conversation.
async fn followup_without_ticket(version: GlpiVersion) {
    let rig = Rig::new(version, GlpiPersonType::User).await;
    let c = contact(1, "Bob Smith", Some("bob@example.com"), None);
    insert_contact_row(&rig, &c).await;
    enqueue_followup(&rig, 9, 901, "orphan message");
    enqueue_followup(&rig, 9, 902, "another one");
    enqueue_ticket(&rig, 4, &c, "other conversation");
    enqueue_followup(&rig, 4, 401, "goes through");
    let parked = rig.drain(DRAIN).await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert!(parked[0].contains("followup:message:901") && parked[0].contains("no GLPI ticket"));
    assert_eq!(rig.count("Ticket"), 1);
    assert_eq!(rig.count("ITILFollowup"), 1);
    let depth = outbox::depth(rig.state().conn()).expect("depth");
    assert_eq!(
        (depth.pending, depth.parked),
        (1, 1),
        "902 waits behind 901"
    );
}

macro_rules! both_versions {
    ($($name:ident),*) => {
        mod glpi10 {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(GlpiVersion::V10).await } )*
        }
        mod glpi11 {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(GlpiVersion::V11).await } )*
        }
    };
}

both_versions!(
    unwritable_entity,
    unusual_emails,
    long_and_hostile_content,
    followup_without_ticket
);

/// With the real binary: a hook whose settings are not an object, a hook
/// with an unknown `sync_type`, a conversation whose contact was deleted and
/// a conversation that had messages before its account's integration was
/// enabled. The good account syncs exactly once; the bad ones are reported
/// (with what to fix) and send nothing; nothing crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_settings_deleted_contact_and_late_enabled_integration_end_to_end() {
    use faults_common::process::{log_tail, BridgeConfig, BridgeProcess};
    use support::workload::{self, Expected, HookSettings, Workload};

    let db = support::shared_cluster().create_database();
    let client = db.connect().await;
    let glpi = chatwoot_glpi_bridge::glpi_emulator::Emulator::start(Default::default())
        .await
        .expect("emulator");
    let api_users = support::workload::glpi_user_ids(&glpi);
    let good =
        workload::create_account(&client, &HookSettings::for_emulator(&glpi.api_url()).json())
            .await;
    let not_object = workload::create_account(&client, &serde_json::json!(["api_url", 5])).await;
    let mut unknown = HookSettings::for_emulator(&glpi.api_url());
    unknown.sync_type = "robot".into();
    let unknown_sync = workload::create_account(&client, &unknown.json()).await;
    // Integration present but disabled for now.
    let mut late_settings = HookSettings::for_emulator(&glpi.api_url()).json();
    late_settings["sync_type"] = serde_json::json!("contact");
    let late = workload::create_account(&client, &late_settings).await;
    client
        .execute(
            "UPDATE integrations_hooks SET status = 0 WHERE account_id = $1",
            &[&(late.account_id as i32)],
        )
        .await
        .unwrap();
    for (i, account) in [good, not_object, unknown_sync, late]
        .into_iter()
        .enumerate()
    {
        let mut writer = Workload::new(&db.url, account, 100 + i as u64);
        for _ in 0..40 {
            writer.step().await.expect("workload");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = BridgeConfig::new(&db.url, dir.path(), &db.name);
    let mut bridge = BridgeProcess::spawn(&config);

    // A conversation whose contact is deleted before its first message.
    let row = client
        .query_one(
            "WITH c AS (INSERT INTO contacts (account_id, name, email, created_at, updated_at) \
                        VALUES ($1, 'Gone Soon', 'gone@example.com', now(), now()) RETURNING id) \
             INSERT INTO conversations (account_id, inbox_id, contact_id, created_at, updated_at) \
             SELECT $1, $2, c.id, now(), now() FROM c RETURNING id, contact_id",
            &[&(good.account_id as i32), &(good.inbox_id as i32)],
        )
        .await
        .unwrap();
    let (orphan_conversation, gone_contact): (i32, i64) = (row.get(0), row.get(1));
    client
        .execute(
            "DELETE FROM contacts WHERE id = $1",
            &[&(gone_contact as i32)],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content, sender_type, sender_id, created_at, updated_at) \
             VALUES ($1, $2, $3, 0, 'my account was deleted?', 'Contact', $4, now(), now())",
            &[&(good.account_id as i32), &(good.inbox_id as i32), &orphan_conversation, &gone_contact],
        )
        .await
        .unwrap();

    // The good account converges exactly once (the deleted contact's GLPI
    // user, created when the contact was, stays in GLPI: one extra user).
    let start = std::time::Instant::now();
    let marker = format!("[cwgb-c{}-v{orphan_conversation}]", good.account_id);
    loop {
        let expected = Expected::read(&client, good.account_id).await;
        let users_ok =
            glpi.items("User").len() >= api_users.len() + expected.identifiable_contacts.len();
        let orphan_ticket = glpi
            .items("Ticket")
            .iter()
            .any(|t| t["content"].as_str().unwrap_or("").contains(&marker));
        let tickets_of_good = glpi
            .items("Ticket")
            .iter()
            .filter(|t| {
                t["content"]
                    .as_str()
                    .unwrap_or("")
                    .contains(&format!("[cwgb-c{}-", good.account_id))
            })
            .count();
        if users_ok && orphan_ticket && tickets_of_good == expected.conversations.len() {
            break;
        }
        assert!(
            bridge.exited().is_none(),
            "{}",
            log_tail(&config.log_file, 40)
        );
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "good account not synced: {tickets_of_good} tickets for {} conversations, orphan ticket {orphan_ticket}\n{}",
            expected.conversations.len(),
            log_tail(&config.log_file, 40)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Bad accounts sent nothing, and are reported with what to fix.
    for bad in [
        not_object.account_id,
        unknown_sync.account_id,
        late.account_id,
    ] {
        let prefix = format!("[cwgb-c{bad}-");
        assert!(
            !glpi
                .items("Ticket")
                .iter()
                .any(|t| t["content"].as_str().unwrap_or("").contains(&prefix)),
            "account {bad} must send nothing"
        );
    }
    let (_, status) = config.command(&["status"]);
    assert!(
        status.contains("robot"),
        "status names the unknown sync_type:\n{status}"
    );
    println!("status with bad settings:\n{status}");

    // Enabling the late integration syncs its conversations that never had
    // a ticket (their messages predate the integration).
    client
        .execute(
            "UPDATE integrations_hooks SET status = 1, updated_at = now() WHERE account_id = $1",
            &[&(late.account_id as i32)],
        )
        .await
        .unwrap();
    let mut writer = Workload::new(&db.url, late, 555);
    for _ in 0..20 {
        writer.step().await.expect("workload");
    }
    let start = std::time::Instant::now();
    let prefix = format!("[cwgb-c{}-", late.account_id);
    while !glpi
        .items("Ticket")
        .iter()
        .any(|t| t["content"].as_str().unwrap_or("").contains(&prefix))
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "a conversation of the late-enabled account never got a ticket\n{}",
            log_tail(&config.log_file, 40)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bridge.stop_cleanly(Duration::from_secs(15));
}

/// What Chatwoot can store at all: PostgreSQL refuses NUL in text and
/// `\u0000` in jsonb, and invalid UTF-8 in a UTF8 database, so none of it
/// can reach the bridge through the slot (the decoder still rejects
/// non-UTF-8 values with a reason rather than dropping them).
#[tokio::test]
async fn postgres_refuses_nul_and_invalid_utf8_so_chatwoot_cannot_store_them() {
    let db = support::shared_cluster().create_database();
    let client = db.connect().await;
    client
        .batch_execute(&support::chatwoot::insert_account_sql("Acme"))
        .await
        .unwrap();
    let nul = client
        .execute(
            "INSERT INTO contacts (account_id, name, created_at, updated_at) VALUES (1, $1, now(), now())",
            &[&"nul\0byte"],
        )
        .await;
    assert!(nul.is_err(), "text with NUL must be refused");
    let jsonb = client
        .batch_execute("SELECT '{\"a\":\"\\u0000\"}'::jsonb")
        .await;
    assert!(jsonb.is_err(), "jsonb \\u0000 must be refused");
    let invalid = client
        .batch_execute("SELECT convert_from('\\xff41'::bytea, 'UTF8')")
        .await;
    assert!(invalid.is_err(), "invalid UTF-8 must be refused");
}
