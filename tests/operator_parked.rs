//! `parked list|retry|drop` against a real state file: what the operator
//! sees, and that retry and drop change what the workers may run.

use std::time::SystemTime;

use chatwoot_glpi_bridge::cli::parked::{render_list, run_action, Action};
use chatwoot_glpi_bridge::outbox::{self, keys, JobKind, MessageSnapshot};
use chatwoot_glpi_bridge::state::State;

fn message(id: i64, conversation_id: i64) -> MessageSnapshot {
    MessageSnapshot {
        id,
        conversation_id,
        message_type: 0,
        private: false,
        text: format!("message {id}"),
        sender_type: Some("Contact".into()),
        sender_id: Some(1),
        created_at: "2026-01-01 10:00:00".into(),
        deleted: false,
        attachments: vec![],
    }
}

fn enqueue_followup(state: &State, conversation_id: i64, message_id: i64) -> i64 {
    outbox::enqueue(
        state.conn(),
        1,
        &keys::conversation_queue(conversation_id),
        &keys::create_followup(message_id),
        &JobKind::CreateFollowup {
            conversation_id,
            message: message(message_id, conversation_id),
        },
    )
    .unwrap()
    .id()
}

fn run(state: &mut State, action: Action) -> String {
    let mut out = Vec::new();
    run_action(&action, state, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn runnable_ids(state: &State) -> Vec<i64> {
    outbox::next_runnable(state.conn(), 10, &Default::default())
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect()
}

#[test]
fn list_retry_and_drop_parked_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = State::open(dir.path().join("state.sqlite3")).unwrap();
    let stuck = enqueue_followup(&state, 42, 901);
    let behind = enqueue_followup(&state, 42, 902);
    let other = enqueue_followup(&state, 7, 950);

    assert_eq!(run(&mut state, Action::List), "No parked jobs.\n");

    outbox::park(
        state.conn(),
        stuck,
        "GLPI refused: ERROR_GLPI_ADD (you don't have permission to perform this action)",
    )
    .unwrap();
    let listed = run(&mut state, Action::List);
    assert!(
        listed.starts_with("1 parked job (each blocks only its own queue)"),
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "#{stuck}  account 1  create_followup for message 901 of conversation 42"
        )),
        "{listed}"
    );
    assert!(
        listed.contains("1 job waiting behind it in conversation:42"),
        "{listed}"
    );
    assert!(
        listed.contains("reason: GLPI refused: ERROR_GLPI_ADD"),
        "{listed}"
    );
    assert!(listed.contains("parked retry ID"), "{listed}");
    // The parked job blocks its conversation only.
    assert_eq!(runnable_ids(&state), vec![other]);

    let retried = run(
        &mut state,
        Action::Retry {
            job_id: Some(stuck),
            all: false,
        },
    );
    assert!(retried.starts_with("1 job back in the queue"), "{retried}");
    assert_eq!(runnable_ids(&state), vec![stuck, other]);

    // Retrying a job that is not parked says so.
    let mut sink = Vec::new();
    let err = run_action(
        &Action::Retry {
            job_id: Some(stuck),
            all: false,
        },
        &mut state,
        &mut sink,
    )
    .unwrap_err();
    assert!(err.to_string().contains(&stuck.to_string()), "{err}");

    outbox::park(state.conn(), stuck, "still refused").unwrap();
    let dropped = run(&mut state, Action::Drop { job_id: stuck });
    assert!(
        dropped.contains("create_followup for message 901 of conversation 42"),
        "{dropped}"
    );
    assert_eq!(runnable_ids(&state), vec![behind, other]);
    assert_eq!(render_list(&[], SystemTime::now()), "No parked jobs.\n");
}
