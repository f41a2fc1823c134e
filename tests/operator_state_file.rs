//! A state file the bridge's user cannot open or create (a root-owned
//! directory bind-mounted into the container, say) is reported with what
//! to do, once, by the real binary run as an unprivileged user.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// The binary run as the `postgres` OS user when we are root (CI and
/// sessions run as root; root would be allowed everywhere), else as us.
fn bridge_as_unprivileged(args: &[&str]) -> (bool, String) {
    let binary = env!("CARGO_BIN_EXE_chatwoot-glpi-bridge");
    // SAFETY: geteuid has no preconditions.
    let output = if unsafe { libc::geteuid() } == 0 {
        Command::new("runuser")
            .args(["-u", "postgres", "--", binary])
            .args(args)
            .output()
    } else {
        Command::new(binary).args(args).output()
    }
    .expect("the binary runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn a_state_file_the_user_cannot_write_says_to_fix_the_permissions() {
    let dir = tempfile::tempdir().unwrap();
    // Traversable and readable by everyone, writable only by its owner.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    if unsafe { libc::geteuid() } != 0 {
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let new_file = dir.path().join("new.sqlite3");
    let (ok, text) = bridge_as_unprivileged(&[
        "run",
        "--database-url",
        "postgres://bridge:s3cret-pw@127.0.0.1:1/chatwoot",
        "--state-file",
        new_file.to_str().unwrap(),
        "--metrics-addr",
        "off",
    ]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!(
            "cannot open the state file {}",
            new_file.display()
        )),
        "{text}"
    );
    assert!(text.contains("must exist and be writable"), "{text}");
    assert!(text.contains("chown -R 10001:10001"), "{text}");
    assert!(!text.contains("s3cret-pw"), "the password leaked: {text}");
    assert_eq!(
        text.matches("cannot open the state file").count(),
        1,
        "said once: {text}"
    );
    assert!(!new_file.exists());
}
