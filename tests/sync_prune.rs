//! Pruning the planner's message cache, end to end: once a synced
//! message's cached snapshot is forgotten (older than `message_cache_days`),
//! Chatwoot deleting it still rewrites its GLPI followup (once, never a new
//! followup), and a late attachment to it is a visible skip, not a failure.

mod support;

use std::time::Duration;

use chatwoot_glpi_bridge::planner::{cache, prune};
use chatwoot_glpi_bridge::state::mappings;
use support::bridge::{BridgeEnv, BridgeSetup};

/// Prunes the running bridge's state file as if `days_later` days had
/// passed, with the default retention; returns the messages forgotten.
fn prune_as_if_later(env: &BridgeEnv, days_later: i64) -> usize {
    let mut state = env.state();
    let retention = Duration::from_secs(prune::DEFAULT_MESSAGE_CACHE_DAYS * 24 * 3600);
    let now = cache::unix_now() + days_later * 24 * 3600;
    let mut forgotten = 0;
    loop {
        let pruned = prune::prune_batch(state.conn_mut(), retention, now, 100).unwrap();
        forgotten += pruned.messages;
        if !pruned.more {
            return forgotten;
        }
    }
}

#[tokio::test]
async fn a_pruned_message_deleted_in_chatwoot_still_says_so_in_glpi() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let (_, conversation) = env.test_conversation().await;
    let first = env.new_message(conversation, true, "hello").await;
    let regretted = env
        .new_message(conversation, false, "a secret I should not have sent")
        .await;
    env.sql(&format!(
        "INSERT INTO attachments (file_type, external_url, message_id, account_id, created_at, updated_at)
         VALUES (0, 'https://cdn.example.com/secret.png', {regretted}, 1, now(), now())"
    ))
    .await;
    env.settle().await;
    {
        // Dated by Chatwoot's created_at (PostgreSQL's text), i.e. now.
        let cached = cache::message(env.state().conn(), regretted)
            .unwrap()
            .unwrap();
        assert!(
            (cached.created_at - cache::unix_now()).abs() < 3600,
            "{cached:?}"
        );
    }
    assert_eq!(prune_as_if_later(&env, 29), 0, "younger than 30 days");
    assert!(prune_as_if_later(&env, 60) >= 2);
    {
        let state = env.state();
        for id in [first, regretted] {
            assert!(cache::message(state.conn(), id).unwrap().is_none(), "{id}");
        }
    }
    env.emulator.clear_requests();

    // What Chatwoot does on delete: the row stays, its content is replaced,
    // its attachments are destroyed.
    env.sql(&format!(
        "BEGIN;
         UPDATE messages SET content = 'This message was deleted', content_type = 0,
                content_attributes = '{{\"deleted\":true}}', updated_at = now() WHERE id = {regretted};
         DELETE FROM attachments WHERE message_id = {regretted};
         COMMIT;"
    ))
    .await;
    env.settle().await;
    let followup = mappings::followup_link(env.state().conn(), regretted)
        .unwrap()
        .unwrap()
        .glpi_followup_id;
    let requests = env.glpi_requests();
    let rewrites: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "PUT" && r.path == format!("/ITILFollowup/{followup}"))
        .collect();
    assert_eq!(rewrites.len(), 1, "{requests:?}");
    assert!(
        !requests
            .iter()
            .any(|r| r.method == "POST" && r.path.contains("ITILFollowup")),
        "no second followup: {requests:?}"
    );
    let stored = env.glpi_content("ITILFollowup", followup);
    assert!(
        stored.contains("This message was deleted in Chatwoot."),
        "{stored}"
    );
    assert!(
        !stored.contains("a secret") && !stored.contains("secret.png"),
        "{stored}"
    );

    // A late attachment to the other pruned message: nothing sent, listed.
    env.emulator.clear_requests();
    let pruned_followup = env.new_message(conversation, false, "one more").await;
    env.settle().await;
    prune_as_if_later(&env, 60);
    env.emulator.clear_requests();
    env.sql(&format!(
        "INSERT INTO attachments (file_type, external_url, message_id, account_id, created_at, updated_at)
         VALUES (0, 'https://cdn.example.com/late.png', {pruned_followup}, 1, now(), now())"
    ))
    .await;
    env.settle().await;
    assert!(env.glpi_requests().is_empty(), "{:?}", env.glpi_requests());
    let skips = cache::skips(env.state().conn()).unwrap();
    assert!(
        skips.iter().any(|s| s.subject.starts_with("attachment:")
            && s.reason.contains(&format!("message {pruned_followup}"))),
        "{skips:?}"
    );
    env.stop().await;
}
