//! `resync contact|conversation ID` end to end: the bridge runs in-process
//! against a real Chatwoot database and the GLPI emulator; someone edits or
//! deletes records in GLPI by hand (through GLPI's API, as a GLPI admin
//! would); the resync makes GLPI show Chatwoot's state again, creating only
//! what is missing, and a second resync changes nothing. Also `parked
//! retry` of a resync parked on a trashed ticket, and the real binary with
//! `--wait`.

mod support;

use chatwoot_glpi_bridge::cli::resync::{queue, read_current, Target};
use chatwoot_glpi_bridge::glpi_emulator::RecordedRequest;
use chatwoot_glpi_bridge::outbox;
use chatwoot_glpi_bridge::planner::ConfiguredAccounts;
use chatwoot_glpi_bridge::state::mappings;
use reqwest::Method;
use serde_json::{json, Value};
use support::bridge::{BridgeEnv, BridgeSetup};

async fn purge(env: &BridgeEnv, itemtype: &str, id: i64) {
    let path = format!("/{itemtype}/{id}?force_purge=1");
    assert_eq!(env.glpi_admin(Method::DELETE, &path, None).await, 200);
}

/// Waits until `table` row `id`'s `additional_attributes` at `pointer`
/// is `expected`.
async fn wait_written_back(env: &BridgeEnv, table: &str, id: i64, pointer: &str, expected: i64) {
    for _ in 0..100 {
        if env.attributes(table, id).await.pointer(pointer) == Some(&json!(expected)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "{table} {id}: {pointer} is {:?}, expected {expected}",
        env.attributes(table, id).await.pointer(pointer)
    );
}

/// Queues a resync as the command does, reading Chatwoot through the
/// test's own connection.
async fn resync(env: &mut BridgeEnv, target: Target) -> anyhow::Result<usize> {
    let current = match target {
        Target::Conversation { id } => read_current(&mut env.client, id).await?,
        Target::Contact { .. } => Default::default(),
    };
    let mut state = env.state();
    let planned = queue(&mut state, ConfiguredAccounts::default(), target, &current)?;
    Ok(planned.jobs.len())
}

fn requests_since(env: &BridgeEnv, seen: usize) -> Vec<RecordedRequest> {
    env.glpi_requests().into_iter().skip(seen).collect()
}

fn count(requests: &[RecordedRequest], method: &str, path: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

/// The ticket's followups, by the message marker in their content.
fn followup_markers(env: &BridgeEnv, ticket_id: i64) -> Vec<i64> {
    let mut markers: Vec<i64> = env
        .emulator
        .items("ITILFollowup")
        .iter()
        .filter(|f| f["itemtype"] == "Ticket" && f["items_id"] == ticket_id)
        .filter_map(|f| support::workload::message_marker(f["content"].as_str()?))
        .collect();
    markers.sort_unstable();
    markers
}

/// The GLPI users that are requesters of `ticket`.
fn requesters(env: &BridgeEnv, ticket: i64) -> Vec<i64> {
    env.emulator
        .items("Ticket_User")
        .iter()
        .filter(|r| r["tickets_id"] == ticket && r["type"] == 1)
        .filter_map(|r| r["users_id"].as_i64())
        .collect()
}

/// A conversation of three messages, synced: (contact, conversation,
/// messages, ticket).
async fn synced_conversation(env: &BridgeEnv) -> (i64, i64, Vec<i64>, i64) {
    let contact = env
        .new_contact("Ada Lovelace", Some("ada@example.com"), None)
        .await;
    let conversation = env.new_conversation(contact).await;
    let mut messages = Vec::new();
    for (incoming, text) in [
        (true, "My printer is on fire"),
        (false, "Please step away from it"),
        (true, "Done, what now?"),
    ] {
        messages.push(env.new_message(conversation, incoming, text).await);
    }
    env.settle().await;
    let ticket = env.ticket_of(conversation).await;
    (contact, conversation, messages, ticket)
}

#[tokio::test]
async fn resync_conversation_restores_what_glpi_lost_and_is_idempotent() {
    let mut env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let (contact, conversation, messages, ticket) = synced_conversation(&env).await;
    assert_eq!(followup_markers(&env, ticket), messages[1..].to_vec());
    let user = env.glpi_user_of(contact).await;
    assert_eq!(requesters(&env, ticket), vec![user]);

    // By hand in GLPI: the requester removed, one followup purged, the
    // ticket closed.
    let row = env
        .emulator
        .items("Ticket_User")
        .into_iter()
        .find(|r| r["tickets_id"] == ticket && r["type"] == 1)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    purge(&env, "Ticket_User", row).await;
    assert!(requesters(&env, ticket).is_empty());
    let lost = env
        .emulator
        .items("ITILFollowup")
        .into_iter()
        .find(|f| {
            support::workload::message_marker(f["content"].as_str().unwrap()) == Some(messages[1])
        })
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    purge(&env, "ITILFollowup", lost).await;
    let status = env
        .glpi_admin(
            Method::PUT,
            &format!("/Ticket/{ticket}"),
            Some(json!({"input": {"status": 6}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(followup_markers(&env, ticket), vec![messages[2]]);

    let seen = env.glpi_requests().len();
    resync(&mut env, Target::Conversation { id: conversation })
        .await
        .unwrap();
    env.settle().await;
    let sent = requests_since(&env, seen);
    assert_eq!(count(&sent, "POST", "/Ticket"), 0, "{sent:#?}");
    assert_eq!(count(&sent, "POST", "/ITILFollowup"), 1, "{sent:#?}");
    assert_eq!(followup_markers(&env, ticket), messages[1..].to_vec());
    assert_eq!(requesters(&env, ticket), vec![user]);
    let shown = env.emulator.item("Ticket", ticket).unwrap();
    assert_eq!(
        shown["status"], 2,
        "an open conversation is a Processing ticket"
    );
    assert_eq!(env.ticket_of(conversation).await, ticket);

    // Again: GLPI already matches, so only reads.
    let seen = env.glpi_requests().len();
    resync(&mut env, Target::Conversation { id: conversation })
        .await
        .unwrap();
    env.settle().await;
    let sent = requests_since(&env, seen);
    assert!(
        sent.iter().all(|r| r.method == "GET"),
        "a second resync only reads: {sent:#?}"
    );

    // The whole ticket purged: a new one with the same description and
    // every followup, written back.
    purge(&env, "Ticket", ticket).await;
    resync(&mut env, Target::Conversation { id: conversation })
        .await
        .unwrap();
    env.settle().await;
    let renewed = env.state();
    let link = mappings::ticket_link(renewed.conn(), conversation)
        .unwrap()
        .unwrap();
    assert_ne!(link.glpi_ticket_id, ticket);
    let new_ticket = env.emulator.item("Ticket", link.glpi_ticket_id).unwrap();
    assert!(
        new_ticket["content"]
            .as_str()
            .unwrap()
            .contains("My printer is on fire"),
        "{new_ticket}"
    );
    assert_eq!(
        followup_markers(&env, link.glpi_ticket_id),
        messages[1..].to_vec()
    );
    wait_written_back(
        &env,
        "conversations",
        conversation,
        "/glpi/ticket_id",
        link.glpi_ticket_id,
    )
    .await;
    env.stop().await;
}

#[tokio::test]
async fn a_trashed_ticket_parks_the_resync_until_the_operator_decides() {
    let mut env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let (_, conversation, messages, ticket) = synced_conversation(&env).await;
    // Moved to GLPI's trash (not purged).
    assert_eq!(
        env.glpi_admin(Method::DELETE, &format!("/Ticket/{ticket}"), None)
            .await,
        200
    );
    resync(&mut env, Target::Conversation { id: conversation })
        .await
        .unwrap();
    env.settle().await;
    let parked = outbox::parked(env.state().conn()).unwrap();
    assert_eq!(parked.len(), 1, "{parked:#?}");
    assert!(parked[0].reason.contains("trash"), "{}", parked[0].reason);
    assert!(
        parked[0].reason.contains(&format!("Ticket {ticket}")),
        "{}",
        parked[0].reason
    );

    // Another resync would only wait behind it: refused with the way out.
    let err = resync(&mut env, Target::Conversation { id: conversation })
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("parked retry {}", parked[0].id)),
        "{err}"
    );

    // The operator purges it, then retries the parked job: a new ticket.
    purge(&env, "Ticket", ticket).await;
    let mut state = env.state();
    let mut out = Vec::new();
    chatwoot_glpi_bridge::cli::parked::run_action(
        &chatwoot_glpi_bridge::cli::parked::Action::Retry {
            job_id: Some(parked[0].id),
            all: false,
        },
        &mut state,
        &mut out,
    )
    .unwrap();
    env.settle().await;
    assert!(outbox::parked(env.state().conn()).unwrap().is_empty());
    let link = mappings::ticket_link(env.state().conn(), conversation)
        .unwrap()
        .unwrap();
    assert_ne!(link.glpi_ticket_id, ticket);
    assert_eq!(
        followup_markers(&env, link.glpi_ticket_id),
        messages[1..].to_vec()
    );
    env.stop().await;
}

#[tokio::test]
async fn resync_contact_recreates_a_purged_user_and_restores_edited_fields() {
    let mut env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let contact = env
        .new_contact("Grace Hopper", Some("grace@example.com"), Some("+15550100"))
        .await;
    env.settle().await;
    let user = env.glpi_user_of(contact).await;

    // Renamed by hand in GLPI: the resync puts Chatwoot's name back.
    env.glpi_admin(
        Method::PUT,
        &format!("/User/{user}"),
        Some(json!({"input": {"realname": "Edited", "firstname": "Someone"}})),
    )
    .await;
    let seen = env.glpi_requests().len();
    resync(&mut env, Target::Contact { id: contact })
        .await
        .unwrap();
    env.settle().await;
    let sent = requests_since(&env, seen);
    assert_eq!(count(&sent, "POST", "/User"), 0, "{sent:#?}");
    let shown = env.emulator.item("User", user).unwrap();
    assert_eq!(
        (shown["firstname"].as_str(), shown["realname"].as_str()),
        (Some("Grace"), Some("Hopper"))
    );

    // Purged in GLPI: a new user, written back.
    purge(&env, "User", user).await;
    resync(&mut env, Target::Contact { id: contact })
        .await
        .unwrap();
    env.settle().await;
    let users: Vec<Value> = env
        .emulator
        .items("User")
        .into_iter()
        .filter(|u| u["name"] == "grace@example.com")
        .collect();
    assert_eq!(users.len(), 1, "{users:#?}");
    let new_user = users[0]["id"].as_i64().unwrap();
    assert_ne!(new_user, user);
    wait_written_back(
        &env,
        "contacts",
        contact,
        "/external/glpi_user_id",
        new_user,
    )
    .await;

    env.stop().await;
}

#[tokio::test]
async fn resync_brings_in_a_conversation_written_while_the_integration_was_disabled() {
    let mut env = BridgeEnv::start(BridgeSetup::new("user")).await;
    env.sql(&format!(
        "UPDATE integrations_hooks SET status = 0 WHERE id = {}",
        env.hook_id
    ))
    .await;
    let contact = env
        .new_contact("Alan Turing", Some("alan@example.com"), None)
        .await;
    let conversation = env.new_conversation(contact).await;
    let first = env.new_message(conversation, true, "Hello?").await;
    let second = env.new_message(conversation, false, "Hi Alan").await;
    env.settle().await;
    assert!(env.emulator.items("Ticket").is_empty());

    // Refused while the account does not sync, with the reason.
    let err = resync(&mut env, Target::Conversation { id: conversation })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("disabled"), "{err}");

    env.sql(&format!(
        "UPDATE integrations_hooks SET status = 1 WHERE id = {}",
        env.hook_id
    ))
    .await;
    env.settle().await;
    resync(&mut env, Target::Conversation { id: conversation })
        .await
        .unwrap();
    env.settle().await;
    let ticket = env.ticket_of(conversation).await;
    let content = env.emulator.item("Ticket", ticket).unwrap()["content"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(content.contains("Hello?"), "{content}");
    assert!(
        content.contains(&format!("cwgb-c1-v{conversation}")),
        "{content}"
    );
    assert!(!followup_markers(&env, ticket).contains(&first));
    assert_eq!(followup_markers(&env, ticket), vec![second]);
    // The requester is the contact's GLPI user, created on the way.
    assert_eq!(
        env.emulator
            .items("User")
            .iter()
            .filter(|u| u["name"] == "alan@example.com")
            .count(),
        1
    );

    // Unknown ids say what to check.
    let err = resync(&mut env, Target::Conversation { id: 999_999 })
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown to the bridge"), "{err}");
    env.stop().await;
}

#[tokio::test]
async fn the_command_waits_and_says_what_glpi_holds() {
    let env = BridgeEnv::start(BridgeSetup::new("user")).await;
    let (_, conversation, _, ticket) = synced_conversation(&env).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatwoot-glpi-bridge"))
        .args([
            "resync",
            "conversation",
            &conversation.to_string(),
            "--wait",
            "--wait-timeout",
            "60",
        ])
        .env("DATABASE_URL", &env.db.url)
        .env("BRIDGE_STATE_FILE", &env.state_path)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "Resync of conversation {conversation} (account 1)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("resync_ticket"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Done: conversation {conversation} is GLPI Ticket {ticket} with 2 followups."
        )),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&env.db.url),
        "no database URL in the output"
    );

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatwoot-glpi-bridge"))
        .args(["resync", "contact", "424242"])
        .env("DATABASE_URL", &env.db.url)
        .env("BRIDGE_STATE_FILE", &env.state_path)
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("contact 424242 is unknown to the bridge"),
        "{stderr}"
    );
    env.stop().await;
}
