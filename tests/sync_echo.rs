//! No echo, no clobber, no blocking, end to end: the bridge's own
//! write-backs (and Chatwoot's constant `updated_at`/`last_activity_at`
//! touches) cause no GLPI call; keys Rails overwrites are put back; a job
//! GLPI refuses is parked and blocks only its own conversation.

mod support;

use serde_json::json;
use support::bridge::{BridgeEnv, BridgeSetup, SyncedHello};

#[tokio::test]
async fn own_write_backs_and_touches_cause_no_glpi_call() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let contact = env
        .new_contact("Test User", Some("test@example.com"), Some("+1234567890"))
        .await;
    let conversation = env.new_conversation(contact).await;
    env.new_message(conversation, true, "hello").await;
    let ticket = env.ticket_of(conversation).await;
    env.settle().await;
    // Exactly what the sync needs: the lookups before creating the user,
    // one user, one ticket. The write-backs that came back through the slot
    // added nothing (no PUT, no second create).
    let calls: Vec<(String, String)> = env
        .glpi_requests()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let creates: Vec<&(String, String)> = calls.iter().filter(|(m, _)| m != "GET").collect();
    assert_eq!(
        creates,
        vec![
            &("POST".to_owned(), "/User".to_owned()),
            &("POST".to_owned(), "/Ticket".to_owned())
        ],
        "{calls:?}"
    );
    let user_id = env.glpi_user_of(contact).await;
    assert_eq!(
        env.attributes("conversations", conversation).await["glpi"]["ticket_id"].as_i64(),
        Some(ticket)
    );

    // Chatwoot touching timestamps (every message does) changes nothing GLPI shows.
    env.emulator.clear_requests();
    env.sql(&format!(
        "UPDATE contacts SET last_activity_at = now(), updated_at = now() WHERE id = {contact};
         UPDATE conversations SET last_activity_at = now(), updated_at = now(), agent_last_seen_at = now() WHERE id = {conversation};"
    ))
    .await;
    // A write-back repeated by hand (as the bridge writes it) is no change either.
    env.sql(&format!(
        "BEGIN;
         SELECT pg_logical_emit_message(true, '{}', '');
         UPDATE contacts SET additional_attributes = additional_attributes || '{{\"external\":{{\"glpi_user_id\":{user_id}}}}}'::jsonb WHERE id = {contact};
         COMMIT;",
        chatwoot_glpi_bridge::replication::transaction::BRIDGE_MESSAGE_PREFIX
    ))
    .await;
    env.settle().await;
    assert!(env.glpi_requests().is_empty(), "{:?}", env.glpi_requests());
    env.stop().await;
}

#[tokio::test]
async fn keys_clobbered_by_rails_are_restored() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let SyncedHello {
        contact,
        conversation,
        message,
        ticket,
    } = env.synced_hello().await;
    let user_id = env.glpi_user_of(contact).await;
    env.emulator.clear_requests();

    // Rails saving hashes it loaded before the write-back (avatar job, IP lookup).
    env.sql(&format!(
        "UPDATE contacts SET additional_attributes = '{{\"city\":\"Paris\",\"avatar_url_hash\":\"x\"}}' WHERE id = {contact};
         UPDATE conversations SET additional_attributes = '{{\"browser_language\":\"fr\"}}' WHERE id = {conversation};"
    ))
    .await;
    env.settle().await;
    assert_eq!(
        env.attributes("contacts", contact).await,
        json!({"city": "Paris", "avatar_url_hash": "x", "external": {"glpi_user_id": user_id}})
    );
    assert_eq!(
        env.attributes("conversations", conversation).await,
        json!({"browser_language": "fr", "glpi": {"ticket_id": ticket, "last_synced_message_id": message}})
    );
    assert!(env.glpi_requests().is_empty(), "{:?}", env.glpi_requests());
    env.stop().await;
}

#[tokio::test]
async fn a_parked_job_does_not_block_another_conversation() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let contact = env
        .new_contact("Test User", Some("test@example.com"), None)
        .await;
    let broken = env.new_conversation(contact).await;
    let healthy = env.new_conversation(contact).await;
    env.new_message(broken, true, "first of broken").await;
    env.new_message(healthy, true, "first of healthy").await;
    let broken_ticket = env.ticket_of(broken).await;
    env.ticket_of(healthy).await;
    env.settle().await;
    let purged = env
        .glpi_admin(
            reqwest::Method::DELETE,
            &format!("/Ticket/{broken_ticket}?force_purge=true"),
            None,
        )
        .await;
    assert_eq!(purged, 200);

    env.emulator.clear_requests();
    env.new_message(broken, false, "lost: its ticket is gone")
        .await;
    env.new_message(broken, false, "waits behind it").await;
    let ok = env.new_message(healthy, false, "still synced").await;
    env.settle().await;

    let state = env.state();
    let parked = chatwoot_glpi_bridge::outbox::parked(state.conn()).unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].queue, format!("conversation:{broken}"));
    assert!(
        parked[0].reason.contains("ERROR_GLPI_ADD"),
        "{}",
        parked[0].reason
    );
    assert!(parked[0].blocked_jobs >= 1);
    let followup = chatwoot_glpi_bridge::state::mappings::followup_link(state.conn(), ok).unwrap();
    assert!(followup.is_some(), "the healthy conversation went on");
    assert_eq!(
        env.attributes("conversations", healthy).await["glpi"]["last_synced_message_id"].as_i64(),
        Some(ok)
    );
    env.stop().await;
}
