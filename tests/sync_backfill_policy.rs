//! The backfill policies end to end (Chatwoot's database, the whole bridge,
//! the GLPI emulator): `none` sends no history, yet a new message in an old
//! conversation creates its ticket and an edit of an old contact syncs it;
//! `since:D` sends only the conversations active since D and their contacts.

mod support;

use chatwoot_glpi_bridge::config::BackfillPolicy;
use serde_json::Value;
use support::bridge::{BridgeEnv, BridgeSetup};

/// Account 1's history: Alice's conversation, old (two messages); Bob's,
/// recent (two messages); Carol's, created long ago but active recently
/// (two messages); Dan, without conversation. Ids are looked up by email.
const HISTORY: &str = "
INSERT INTO contacts (account_id, name, email, created_at, updated_at) VALUES
  (1, 'Alice Old', 'alice@example.com', '2023-01-01', '2023-01-01'),
  (1, 'Bob Recent', 'bob@example.com', '2023-01-01', '2023-01-01'),
  (1, 'Carol Revived', 'carol@example.com', '2023-01-01', '2023-01-01'),
  (1, 'Dan Idle', 'dan@example.com', '2023-01-01', '2023-01-01');
INSERT INTO conversations (account_id, inbox_id, contact_id, created_at, updated_at, last_activity_at)
  SELECT 1, 1, c.id, v.created::timestamp, v.created::timestamp, v.active::timestamp
  FROM (VALUES ('alice@example.com', '2024-01-10', '2024-01-11'),
               ('bob@example.com', '2024-06-10', '2024-06-12'),
               ('carol@example.com', '2024-01-05', '2024-06-20')) AS v(email, created, active)
  JOIN contacts c ON c.email = v.email ORDER BY c.id;
INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content, private,
                      sender_type, sender_id, created_at, updated_at)
  SELECT 1, 1, cv.id, m.type, m.text || ' from ' || c.name, false,
         CASE WHEN m.type = 0 THEN 'Contact' END, CASE WHEN m.type = 0 THEN c.id END,
         cv.last_activity_at, cv.last_activity_at
  FROM conversations cv JOIN contacts c ON c.id = cv.contact_id,
       (VALUES (1, 0, 'History question'), (2, 1, 'History answer')) AS m(n, type, text)
  ORDER BY cv.id, m.n;
";

fn setup(backfill: BackfillPolicy) -> BridgeSetup {
    let mut setup = BridgeSetup::new("user");
    setup.seed_sql = Some(HISTORY.to_owned());
    setup.backfill = backfill;
    setup
}

async fn contact_id(env: &BridgeEnv, email: &str) -> i64 {
    env.insert(&format!(
        "SELECT id FROM contacts WHERE email = '{email}' AND account_id = 1"
    ))
    .await
}

async fn conversation_of(env: &BridgeEnv, email: &str) -> i64 {
    env.insert(&format!(
        "SELECT cv.id FROM conversations cv JOIN contacts c ON c.id = cv.contact_id WHERE c.email = '{email}'"
    ))
    .await
}

/// GLPI users of account 1's GLPI named after Chatwoot contacts' emails.
fn user_names(env: &BridgeEnv) -> Vec<String> {
    let mut names: Vec<String> = env
        .emulator
        .items("User")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .filter(|n| n.ends_with("@example.com"))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

fn texts(items: &[Value], field: &str) -> Vec<String> {
    let mut texts: Vec<String> = items
        .iter()
        .map(|i| i[field].as_str().unwrap_or_default().to_owned())
        .collect();
    texts.sort();
    texts
}

#[tokio::test]
async fn backfill_none_sends_no_history_and_live_changes_to_old_rows_sync() {
    let env = BridgeEnv::start(setup(BackfillPolicy::None)).await;
    let creates: Vec<_> = env
        .glpi_requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(creates.is_empty(), "history reached GLPI: {creates:#?}");
    assert!(env.emulator.items("Ticket").is_empty());
    assert!(user_names(&env).is_empty());

    // A new message in Alice's old conversation: its ticket, with that
    // message as the first one (the history before it stays out of GLPI).
    let old = conversation_of(&env, "alice@example.com").await;
    env.new_message(old, true, "Still broken, months later")
        .await;
    let ticket = env.ticket_of(old).await;
    env.settle().await;
    let tickets = env.emulator.items("Ticket");
    assert_eq!(tickets.len(), 1, "{tickets:#?}");
    assert_eq!(tickets[0]["id"].as_i64(), Some(ticket));
    let content = tickets[0]["content"].as_str().unwrap_or_default();
    assert!(content.contains("Still broken, months later"), "{content}");
    assert!(!content.contains("History"), "{content}");
    assert!(env.emulator.items("ITILFollowup").is_empty());
    assert_eq!(user_names(&env), vec!["alice@example.com"]);

    // An edit of Dan, who was never sent: now he is.
    let dan = contact_id(&env, "dan@example.com").await;
    env.sql(&format!(
        "UPDATE contacts SET name = 'Dan Active', updated_at = now() WHERE id = {dan}"
    ))
    .await;
    env.settle().await;
    assert_eq!(
        user_names(&env),
        vec!["alice@example.com", "dan@example.com"]
    );
    assert!(env.attributes("contacts", dan).await["external"]["glpi_user_id"].is_i64());
    // Bob and Carol, untouched, are still not in GLPI.
    let bob = conversation_of(&env, "bob@example.com").await;
    assert!(env.attributes("conversations", bob).await["glpi"].is_null());
    env.stop().await;
}

#[tokio::test]
async fn backfill_since_sends_only_recent_conversations_and_their_contacts() {
    let since: BackfillPolicy = "since:2024-06-01".parse().unwrap();
    let env = BridgeEnv::start(setup(since)).await;

    assert_eq!(
        user_names(&env),
        vec!["bob@example.com", "carol@example.com"]
    );
    let tickets = env.emulator.items("Ticket");
    assert_eq!(tickets.len(), 2, "{tickets:#?}");
    let contents = texts(&tickets, "content");
    assert!(
        contents[0].contains("History question from Bob Recent")
            && contents[1].contains("History question from Carol Revived"),
        "{contents:?}"
    );
    let followups = texts(&env.emulator.items("ITILFollowup"), "content");
    assert_eq!(followups.len(), 2, "{followups:?}");
    assert!(
        followups[0].contains("History answer from Bob Recent")
            && followups[1].contains("History answer from Carol Revived"),
        "{followups:?}"
    );
    for email in ["bob@example.com", "carol@example.com"] {
        let conversation = conversation_of(&env, email).await;
        env.ticket_of(conversation).await;
    }
    let old = conversation_of(&env, "alice@example.com").await;
    assert!(env.attributes("conversations", old).await["glpi"].is_null());
    let alice = contact_id(&env, "alice@example.com").await;
    assert!(env.attributes("contacts", alice).await["external"].is_null());
    env.stop().await;
}
