//! Sync behaviours beyond the guide's manual tests, end to end: the status
//! and priority maps, attachments (with the message, and late), contacts
//! that cannot be identified, a disabled integration, settings edited live.

mod support;

use serde_json::{json, Value};
use support::bridge::{hook_settings, BridgeEnv, BridgeSetup, SyncedHello};

fn puts(env: &BridgeEnv, path: &str) -> Vec<Value> {
    env.glpi_requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path == path)
        .map(|r| r.body.expect("a body")["input"].clone())
        .collect()
}

fn posts(env: &BridgeEnv, path: &str) -> Vec<Value> {
    env.glpi_requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == path)
        .map(|r| r.body.expect("a body")["input"].clone())
        .collect()
}

/// Chatwoot (status, priority) set, and the GLPI (status, priority) sent.
type Step = (i32, Option<i32>, Option<(i64, i64)>);

#[tokio::test]
async fn status_and_priority_follow_the_guide_tables() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let SyncedHello {
        conversation,
        ticket,
        ..
    } = env.synced_hello().await;
    let first = posts(&env, "/Ticket");
    assert_eq!(
        (first[0]["status"].clone(), first[0]["priority"].clone()),
        (json!(2), json!(3))
    );

    // (Chatwoot status, Chatwoot priority) → (GLPI status, GLPI priority),
    // None when GLPI already shows it (no call).
    let steps: &[Step] = &[
        (2, None, Some((4, 3))),    // pending → 4
        (3, None, None),            // snoozed → 4: GLPI unchanged
        (1, None, Some((5, 3))),    // resolved → 5
        (0, None, Some((2, 3))),    // open → 2
        (0, Some(0), Some((2, 2))), // low → 2
        (0, Some(1), Some((2, 3))), // medium → 3
        (0, Some(2), Some((2, 4))), // high → 4
        (0, Some(3), Some((2, 5))), // urgent → 5
        (0, None, Some((2, 3))),    // none → 3
    ];
    for (status, priority, expected) in steps {
        env.emulator.clear_requests();
        let priority_sql = priority
            .map(|p| p.to_string())
            .unwrap_or_else(|| "NULL".to_owned());
        env.sql(&format!(
            "UPDATE conversations SET status = {status}, priority = {priority_sql}, updated_at = now() WHERE id = {conversation}"
        ))
        .await;
        env.settle().await;
        let sent = puts(&env, &format!("/Ticket/{ticket}"));
        match expected {
            Some((s, p)) => {
                assert_eq!(
                    sent,
                    vec![json!({"status": s, "priority": p})],
                    "step {status}/{priority:?}"
                );
                let stored = env.emulator.item("Ticket", ticket).unwrap();
                assert_eq!(
                    (stored["status"].as_i64(), stored["priority"].as_i64()),
                    (Some(*s), Some(*p))
                );
            }
            None => assert!(
                env.glpi_requests().is_empty(),
                "step {status}/{priority:?}: {sent:?}"
            ),
        }
    }
    env.stop().await;
}

#[tokio::test]
async fn attachments_are_listed_and_late_ones_rewrite_the_followup() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let (contact, conversation) = env.test_conversation().await;
    let display_id = env
        .insert(&format!(
            "SELECT display_id::int8 FROM conversations WHERE id = {conversation}"
        ))
        .await;
    let link = format!("https://chat.example.com/app/accounts/1/conversations/{display_id}");
    // The first message and its attachment in one transaction (as Rails does).
    env.sql(&format!(
        "WITH m AS (
           INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content, sender_type, sender_id, created_at, updated_at)
           VALUES (1, 1, {conversation}, 0, 'see the photo', 'Contact', {contact}, now(), now()) RETURNING id)
         INSERT INTO attachments (file_type, external_url, message_id, account_id, created_at, updated_at)
           SELECT 0, 'https://cdn.example.com/photo.png', id, 1, now(), now() FROM m"
    ))
    .await;
    let ticket = env.ticket_of(conversation).await;
    env.settle().await;
    let description = env.glpi_content("Ticket", ticket);
    assert!(
        description.contains(
            "see the photo<br><br>Attachments:<br>- https://cdn.example.com/photo.png<br>"
        ),
        "{description}"
    );

    // A later message whose file has no external URL: the conversation link.
    env.sql(&format!(
        "WITH m AS (
           INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content, created_at, updated_at)
           VALUES (1, 1, {conversation}, 1, 'here is the invoice', now(), now()) RETURNING id)
         INSERT INTO attachments (file_type, fallback_title, message_id, account_id, created_at, updated_at)
           SELECT 3, 'invoice.pdf', id, 1, now(), now() FROM m"
    ))
    .await;
    env.settle().await;
    let followups = posts(&env, "/ITILFollowup");
    assert_eq!(followups.len(), 1);
    let content = followups[0]["content"].as_str().unwrap();
    assert!(
        content.contains(&format!(
            "<br><br>Attachments:<br>- invoice.pdf: {link}<br>"
        )),
        "{content}"
    );

    // A message, then its attachment in a later transaction: the followup
    // is rewritten (PUT), not posted twice.
    let late = env.new_message(conversation, false, "and one more").await;
    env.settle().await;
    env.emulator.clear_requests();
    env.sql(&format!(
        "INSERT INTO attachments (file_type, external_url, message_id, account_id, created_at, updated_at)
         VALUES (0, 'https://cdn.example.com/late.png', {late}, 1, now(), now())"
    ))
    .await;
    env.settle().await;
    let state = env.state();
    let followup_id = chatwoot_glpi_bridge::state::mappings::followup_link(state.conn(), late)
        .unwrap()
        .expect("the late message's followup")
        .glpi_followup_id;
    let rewrites = puts(&env, &format!("/ITILFollowup/{followup_id}"));
    assert_eq!(rewrites.len(), 1, "{:?}", env.glpi_requests());
    assert!(posts(&env, "/ITILFollowup").is_empty());
    let stored = env.glpi_content("ITILFollowup", followup_id);
    assert!(
        stored.contains("and one more<br><br>Attachments:<br>- https://cdn.example.com/late.png"),
        "{stored}"
    );
    assert_eq!(env.emulator.items("ITILFollowup").len(), 2);
    env.stop().await;
}

#[tokio::test]
async fn unidentifiable_contacts_are_skipped_with_the_reason() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let nobody = env.new_contact("", None, None).await;
    env.settle().await;
    assert!(env.glpi_requests().is_empty(), "{:?}", env.glpi_requests());
    let state = env.state();
    let skips = chatwoot_glpi_bridge::planner::cache::skips(state.conn()).unwrap();
    assert!(
        skips
            .iter()
            .any(|s| s.subject == format!("contact:{nobody}")
                && s.reason.contains("not identifiable")),
        "{skips:?}"
    );
    // Their conversations still get a ticket, without requester.
    let conversation = env.new_conversation(nobody).await;
    env.new_message(conversation, true, "anonymous question")
        .await;
    let ticket = env.ticket_of(conversation).await;
    env.settle().await;
    let sent = posts(&env, "/Ticket");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].get("_users_id_requester").is_none(), "{sent:?}");
    assert!(posts(&env, "/User").is_empty());
    assert!(env
        .emulator
        .items("Ticket_User")
        .iter()
        .all(|a| a["tickets_id"] != ticket));
    env.stop().await;
}

#[tokio::test]
async fn a_disabled_integration_sends_nothing_new_and_keeps_its_data() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let kept = env
        .new_contact("Kept User", Some("kept@example.com"), None)
        .await;
    env.settle().await;
    let kept_attrs = env.attributes("contacts", kept).await;
    assert!(kept_attrs["external"]["glpi_user_id"].is_i64());

    env.sql(&format!(
        "UPDATE integrations_hooks SET status = 0, updated_at = now() WHERE id = {}",
        env.hook_id
    ))
    .await;
    env.settle().await;
    env.emulator.clear_requests();
    let ignored = env
        .new_contact("Late User", Some("late@example.com"), None)
        .await;
    env.sql(&format!(
        "UPDATE contacts SET name = 'Kept Renamed' WHERE id = {kept}"
    ))
    .await;
    env.settle().await;
    assert!(env.glpi_requests().is_empty(), "{:?}", env.glpi_requests());
    assert_eq!(env.attributes("contacts", kept).await, kept_attrs);
    assert_eq!(env.attributes("contacts", ignored).await, json!({}));

    // Enabled again: new events flow.
    env.sql(&format!(
        "UPDATE integrations_hooks SET status = 1, updated_at = now() WHERE id = {}",
        env.hook_id
    ))
    .await;
    let again = env
        .new_contact("Again User", Some("again@example.com"), None)
        .await;
    env.settle().await;
    assert_eq!(posts(&env, "/User").len(), 1);
    assert!(env.attributes("contacts", again).await["external"]["glpi_user_id"].is_i64());
    env.stop().await;
}

#[tokio::test]
async fn settings_edited_live_apply_to_the_next_ticket() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let (contact, first) = env.test_conversation().await;
    env.new_message(first, true, "before the edit").await;
    env.settle().await;
    let before = posts(&env, "/Ticket");
    assert_eq!(before[0]["type"], 1);
    assert!(before[0].get("itilcategories_id").is_none());

    let edited = hook_settings(
        &env.emulator,
        &json!({"sync_type": "user", "ticket_type": "2", "category_id": "5", "entity_id": 0, "default_user_id": "2"}),
    );
    env.client
        .execute(
            "UPDATE integrations_hooks SET settings = $1::text::jsonb, updated_at = now() WHERE id = $2",
            &[&edited.to_string(), &env.hook_id],
        )
        .await
        .unwrap();
    env.emulator.clear_requests();
    let second = env.new_conversation(contact).await;
    env.new_message(second, true, "after the edit").await;
    env.new_message(second, false, "an answer").await;
    env.settle().await;
    let after = posts(&env, "/Ticket");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["type"], 2);
    assert_eq!(after[0]["itilcategories_id"], 5);
    let followups = posts(&env, "/ITILFollowup");
    assert_eq!(followups.len(), 1);
    assert_eq!(
        followups[0]["users_id"], 2,
        "default_user_id authors outgoing messages"
    );
    env.stop().await;
}

#[tokio::test]
async fn contact_changes_update_glpi_only_when_it_shows_them() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let contact = env
        .new_contact("Test User", Some("test@example.com"), Some("+1234567890"))
        .await;
    env.settle().await;
    let user_id = env.glpi_user_of(contact).await;
    env.emulator.clear_requests();

    // Touches and fields GLPI does not show: no call.
    env.sql(&format!(
        "UPDATE contacts SET last_activity_at = now(), updated_at = now(), location = 'Paris' WHERE id = {contact}"
    ))
    .await;
    env.settle().await;
    assert!(env.glpi_requests().is_empty(), "{:?}", env.glpi_requests());

    // A rename: names and phone, the email untouched.
    env.sql(&format!(
        "UPDATE contacts SET name = 'Jean  Pierre Dupont' WHERE id = {contact}"
    ))
    .await;
    env.settle().await;
    assert_eq!(
        puts(&env, &format!("/User/{user_id}")),
        vec![json!({"firstname": "Jean", "realname": "Pierre Dupont", "phone": "+1234567890"})]
    );
    let user = env.emulator.item("User", user_id).unwrap();
    assert_eq!(
        (user["firstname"].as_str(), user["realname"].as_str()),
        (Some("Jean"), Some("Pierre Dupont"))
    );
    assert_eq!(
        user["name"], "test@example.com",
        "the login is never renamed"
    );

    // A new email: added to the user's emails.
    env.emulator.clear_requests();
    env.sql(&format!(
        "UPDATE contacts SET email = 'new@example.com' WHERE id = {contact}"
    ))
    .await;
    env.settle().await;
    assert_eq!(
        puts(&env, &format!("/User/{user_id}")),
        vec![
            json!({"firstname": "Jean", "realname": "Pierre Dupont", "phone": "+1234567890",
                    "_useremails": ["new@example.com"]})
        ]
    );
    assert!(env
        .emulator
        .items("UserEmail")
        .iter()
        .any(|e| e["users_id"] == user_id && e["email"] == "new@example.com"));
    assert!(posts(&env, "/User").is_empty());
    env.stop().await;
}

#[tokio::test]
async fn a_message_deleted_in_chatwoot_says_so_in_glpi() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let (_, conversation) = env.test_conversation().await;
    env.new_message(conversation, true, "hello").await;
    let regretted = env
        .new_message(conversation, false, "a secret I should not have sent")
        .await;
    env.settle().await;
    env.emulator.clear_requests();
    // What Chatwoot does on delete: the row stays, its content is replaced.
    env.sql(&format!(
        "UPDATE messages SET content = 'This message was deleted', content_type = 0,
                content_attributes = '{{\"deleted\":true}}', updated_at = now() WHERE id = {regretted}"
    ))
    .await;
    env.settle().await;
    let state = env.state();
    let followup = chatwoot_glpi_bridge::state::mappings::followup_link(state.conn(), regretted)
        .unwrap()
        .unwrap()
        .glpi_followup_id;
    let rewrites = puts(&env, &format!("/ITILFollowup/{followup}"));
    assert_eq!(rewrites.len(), 1, "{:?}", env.glpi_requests());
    let stored = env.glpi_content("ITILFollowup", followup);
    assert!(
        stored.contains("This message was deleted in Chatwoot."),
        "{stored}"
    );
    assert!(!stored.contains("a secret"), "{stored}");
    env.stop().await;
}
