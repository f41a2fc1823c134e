//! Contract: `chatwoot-glpi-bridge glpi-sandbox` prints its API URL, answers
//! like GLPI, logs requests without tokens, and on Ctrl-C or SIGTERM
//! (`docker stop`) prints what was created and exits 0.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn sandbox_prints_url_and_a_summary_on_ctrl_c() {
    sandbox_prints_url_and_a_summary_on(libc::SIGINT).await;
}

#[tokio::test]
async fn sandbox_stops_with_a_summary_on_sigterm_as_docker_stop_sends() {
    sandbox_prints_url_and_a_summary_on(libc::SIGTERM).await;
}

async fn sandbox_prints_url_and_a_summary_on(stop_signal: libc::c_int) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatwoot-glpi-bridge"))
        .args([
            "glpi-sandbox",
            "--listen",
            "127.0.0.1:0",
            "--app-token",
            "app-secret",
            "--user-token",
            "user-secret",
            "--glpi-version",
            "11",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut first))
        .await
        .expect("prints its URL")
        .unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_owned();
    assert!(url.ends_with("/apirest.php"), "{url}");

    let http = reqwest::Client::new();
    let login: Value = http
        .get(format!(
            "{url}/initSession?app_token=app-secret&user_token=user-secret"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = login["session_token"].as_str().unwrap();
    let created = http
        .post(format!("{url}/Ticket/"))
        .header("App-Token", "app-secret")
        .header("Session-Token", session)
        .json(&json!({"input": {"name": "Dry run", "externalid": "cw-1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: sending a signal to the child we spawned.
    assert_eq!(unsafe { libc::kill(pid, stop_signal) }, 0);
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits after the signal")
        .unwrap();
    assert!(status.success(), "{status:?} after signal {stop_signal}");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    assert!(rest.contains("POST /Ticket/ -> 201"), "{rest}");
    assert!(rest.contains("user_token=[redacted]"), "{rest}");
    assert!(
        !rest.contains("user-secret") && !rest.contains("app-secret"),
        "{rest}"
    );
    assert!(rest.contains("Ticket 1"), "{rest}");
    assert!(
        rest.contains("name=\"Dry run\"") && rest.contains("externalid=\"cw-1\""),
        "{rest}"
    );
}
