//! `demo` as a new user runs it: exit code 0, the backfill and every live
//! change reach GLPI, the write-backs are printed, and it cleans up.

use std::process::Command;

#[test]
fn demo_runs_the_whole_story_and_cleans_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_chatwoot-glpi-bridge"))
        .arg("demo")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for expected in [
        "GLPI now has 3 users, 3 tickets, 3 followups",
        "GLPI: a GLPI user for Grace Hopper",
        "GLPI: Ada's ticket goes to status 5 (Solved)",
        "GLPI: a private followup (is_private = 1)",
        "login grace@example.com    Grace Hopper",
        "contact 4 Grace Hopper       external = {\"glpi_user_id\":",
        "Cleaned up",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("demo-"),
        "the cluster password is printed:\n{stdout}"
    );
}
