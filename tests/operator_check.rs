//! `check` on a real cluster and the GLPI emulator: all PASS on a good
//! setup, and the right FAIL line (with its fix) for each kind of broken
//! setup.

mod support;

use std::collections::HashMap;

use chatwoot_glpi_bridge::cli::check::{render, run_checks, CheckLine, Outcome};
use chatwoot_glpi_bridge::config::{Config, ConfigArgs, Key};
use chatwoot_glpi_bridge::glpi_emulator::{Emulator, EmulatorConfig};
use support::{Cluster, ClusterOptions, TestDb, WalLevel};

const APP_TOKEN: &str = "emulator-app-token";
const USER_TOKEN: &str = "emulator-user-token";
const CRM_INTEGRATION: i64 = 1 << 43;

struct Setup {
    db: TestDb,
    emulator: Emulator,
    dir: tempfile::TempDir,
    slot: String,
}

impl Setup {
    /// A Chatwoot database with account 1 using the GLPI integration hook
    /// (pointing at the emulator).
    async fn new(cluster: &Cluster) -> Setup {
        let db = cluster.create_database();
        let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
        db.execute(&format!(
            "INSERT INTO accounts (id, name, feature_flags, created_at, updated_at)
                 VALUES (1, 'Acme', {CRM_INTEGRATION}, now(), now());
             INSERT INTO integrations_hooks (account_id, app_id, status, settings, created_at, updated_at)
                 VALUES (1, 'glpi', 1, '{{\"api_url\": \"{}\", \"app_token\": \"{APP_TOKEN}\",
                         \"user_token\": \"{USER_TOKEN}\"}}', now(), now());",
            emulator.api_url()
        ))
        .await;
        let slot = format!("check_{}", db.name);
        Setup {
            db,
            emulator,
            dir: tempfile::tempdir().unwrap(),
            slot,
        }
    }

    fn args(&self) -> ConfigArgs {
        ConfigArgs::default()
            .with_flag(Key::DatabaseUrl, &self.db.url)
            .with_flag(
                Key::StateFile,
                self.dir.path().join("state.sqlite3").to_str().unwrap(),
            )
            .with_flag(Key::SlotName, &self.slot)
            .with_flag(Key::PublicationName, &self.slot)
    }

    async fn check(&self, args: ConfigArgs, env: &[(&str, &str)]) -> Vec<CheckLine> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config = Config::load_with_env(&args, &|name| env.get(name).cloned()).unwrap();
        let lines = run_checks(&config).await;
        println!("{}", render(&lines));
        lines
    }
}

fn failures(lines: &[CheckLine]) -> Vec<(String, String)> {
    lines
        .iter()
        .filter_map(|l| match &l.outcome {
            Outcome::Fail(detail) => Some((l.name.clone(), detail.clone())),
            _ => None,
        })
        .collect()
}

/// Asserts exactly one failure, named `name`, whose text contains `needle`.
fn assert_only_failure(lines: &[CheckLine], name: &str, needle: &str) {
    let failed = failures(lines);
    assert_eq!(
        failed.len(),
        1,
        "expected one failure ({name}), got {failed:#?}"
    );
    assert_eq!(failed[0].0, name, "{failed:#?}");
    assert!(
        failed[0].1.contains(needle),
        "{:?} lacks {needle:?}",
        failed[0].1
    );
}

#[tokio::test]
async fn good_setup_passes_every_check() {
    let setup = Setup::new(support::shared_cluster()).await;
    // Account 2 comes from the bridge's own configuration, same GLPI.
    let api_url = setup.emulator.api_url();
    let lines = setup
        .check(
            setup.args(),
            &[
                ("GLPI_ACCOUNT_IDS", "2"),
                ("GLPI_API_URL", &api_url),
                ("GLPI_APP_TOKEN", APP_TOKEN),
                ("GLPI_USER_TOKEN", USER_TOKEN),
            ],
        )
        .await;
    assert!(failures(&lines).is_empty(), "{}", render(&lines));
    assert!(
        !setup.dir.path().join("state.sqlite3").exists(),
        "check created the state file"
    );
    let names: Vec<&str> = lines.iter().map(|l| l.name.as_str()).collect();
    for expected in [
        "database",
        "wal_level",
        "role",
        "replication",
        "tables",
        "privileges",
        "publication",
        "slot",
        "state file",
        "GLPI",
    ] {
        assert!(names.contains(&expected), "no {expected} line: {names:?}");
    }
    let glpi = lines.iter().find(|l| l.name == "GLPI").unwrap();
    assert!(
        matches!(&glpi.outcome, Outcome::Pass(d) if d.contains("accounts 1, 2")),
        "one GLPI instance, both accounts: {glpi:?}"
    );
    // initSession then killSession, nothing else; no session left open.
    let paths: Vec<String> = setup
        .emulator
        .requests()
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(paths, ["/initSession", "/killSession"]);
    assert_eq!(setup.emulator.active_sessions(), 0);
    let text = render(&lines);
    assert!(!text.contains(support::SUPERUSER_PASSWORD), "{text}");
    assert!(!text.contains(USER_TOKEN), "{text}");

    // An existing, correct publication and slot pass too.
    setup
        .db
        .execute(&format!(
            "CREATE PUBLICATION {} FOR TABLE accounts, integrations_hooks, contacts, conversations, messages, attachments",
            setup.slot
        ))
        .await;
    setup
        .db
        .execute(&format!(
            "SELECT pg_create_logical_replication_slot('{}', 'pgoutput')",
            setup.slot
        ))
        .await;
    let lines = setup.check(setup.args(), &[]).await;
    assert!(failures(&lines).is_empty(), "{}", render(&lines));
    assert!(render(&lines).contains("(pgoutput) exists, not being read right now"));
    setup
        .db
        .execute(&format!(
            "SELECT pg_drop_replication_slot('{}')",
            setup.slot
        ))
        .await;
}

#[tokio::test]
async fn wal_level_replica_fails_with_the_fix() {
    let cluster = Cluster::start_new(&ClusterOptions {
        wal_level: WalLevel::Replica,
        ..ClusterOptions::default()
    });
    let setup = Setup::new(&cluster).await;
    let lines = setup.check(setup.args(), &[]).await;
    assert_only_failure(&lines, "wal_level", "ALTER SYSTEM SET wal_level = logical");
}

#[tokio::test]
async fn unreachable_database_fails_and_says_what_to_check() {
    let setup = Setup::new(support::shared_cluster()).await;
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = setup.args().with_flag(
        Key::DatabaseUrl,
        format!("postgres://postgres:pw@127.0.0.1:{closed_port}/chatwoot"),
    );
    let lines = setup.check(args, &[]).await;
    let failed = failures(&lines);
    assert_eq!(failed[0].0, "database", "{failed:#?}");
    assert!(
        failed[0]
            .1
            .contains("Check the host and port in DATABASE_URL"),
        "{failed:#?}"
    );
    assert!(
        !failed[0].1.contains(":pw@"),
        "password printed: {failed:#?}"
    );
    // Without the database, the hooks cannot be read: no account to check.
    assert!(
        failed.iter().any(|(name, _)| name == "accounts"),
        "{failed:#?}"
    );
}

#[tokio::test]
async fn role_without_replication_or_update_fails_with_grants() {
    let setup = Setup::new(support::shared_cluster()).await;
    let role = format!("plain_{}", setup.db.name);
    setup
        .db
        .execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'plain-pw';
             GRANT SELECT ON accounts, integrations_hooks, contacts, conversations, messages, attachments TO {role};"
        ))
        .await;
    let args = setup
        .args()
        .with_flag(Key::DatabaseUrl, setup.db.url_as(&role, "plain-pw"));
    let lines = setup.check(args, &[]).await;
    let failed = failures(&lines);
    let names: Vec<&str> = failed.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"role"), "{failed:#?}");
    assert!(
        names.contains(&"replication"),
        "connection refused too: {failed:#?}"
    );
    let privileges = failed.iter().find(|(n, _)| n == "privileges").unwrap();
    assert!(
        privileges.1.contains(&format!(
            "GRANT UPDATE (additional_attributes) ON contacts, conversations TO \"{role}\""
        )),
        "{privileges:?}"
    );
    // It cannot create the publication either: setup-sql is the way out.
    let publication = failed.iter().find(|(n, _)| n == "publication").unwrap();
    assert!(publication.1.contains("setup-sql"), "{publication:?}");
}

#[tokio::test]
async fn database_without_chatwoot_tables_fails() {
    let cluster = support::shared_cluster();
    let setup = Setup::new(cluster).await;
    let empty = cluster.create_empty_database();
    let args = setup.args().with_flag(Key::DatabaseUrl, &empty.url);
    let api_url = setup.emulator.api_url();
    let lines = setup
        .check(
            args,
            &[
                ("GLPI_ACCOUNT_IDS", "1"),
                ("GLPI_API_URL", &api_url),
                ("GLPI_APP_TOKEN", APP_TOKEN),
                ("GLPI_USER_TOKEN", USER_TOKEN),
            ],
        )
        .await;
    let failed = failures(&lines);
    let tables = failed.iter().find(|(n, _)| n == "tables").unwrap();
    assert!(
        tables.1.contains("contacts") && tables.1.contains("chatwoot_production"),
        "{tables:?}"
    );
}

#[tokio::test]
async fn publication_lacking_tables_fails_with_alter_publication() {
    let setup = Setup::new(support::shared_cluster()).await;
    setup
        .db
        .execute(&format!(
            "CREATE PUBLICATION {} FOR TABLE contacts",
            setup.slot
        ))
        .await;
    let lines = setup.check(setup.args(), &[]).await;
    assert_only_failure(
        &lines,
        "publication",
        &format!("ALTER PUBLICATION {} ADD TABLE public.accounts", setup.slot),
    );
}

#[tokio::test]
async fn slot_with_another_plugin_fails() {
    let setup = Setup::new(support::shared_cluster()).await;
    setup
        .db
        .execute(&format!(
            "SELECT pg_create_logical_replication_slot('{}', 'test_decoding')",
            setup.slot
        ))
        .await;
    let lines = setup.check(setup.args(), &[]).await;
    assert_only_failure(&lines, "slot", "not pgoutput");
    setup
        .db
        .execute(&format!(
            "SELECT pg_drop_replication_slot('{}')",
            setup.slot
        ))
        .await;
}

#[tokio::test]
async fn wrong_glpi_token_and_unreachable_glpi_fail() {
    let setup = Setup::new(support::shared_cluster()).await;
    setup
        .db
        .execute(
            "UPDATE integrations_hooks SET settings = settings || '{\"user_token\": \"wrong-token\"}'",
        )
        .await;
    let lines = setup.check(setup.args(), &[]).await;
    assert_only_failure(&lines, "GLPI", "cannot open a session");
    let glpi = failures(&lines).remove(0).1;
    assert!(glpi.contains("account 1"), "{glpi}");
    assert!(!glpi.contains("wrong-token"), "token printed: {glpi}");

    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    setup
        .db
        .execute(&format!(
            "UPDATE integrations_hooks SET settings = settings || '{{\"user_token\": \"{USER_TOKEN}\",
                 \"api_url\": \"http://127.0.0.1:{closed_port}/apirest.php\"}}'"
        ))
        .await;
    let lines = setup.check(setup.args(), &[]).await;
    assert_only_failure(&lines, "GLPI", &format!("127.0.0.1:{closed_port}"));
}

#[tokio::test]
async fn hook_problems_and_no_syncing_account_fail() {
    let setup = Setup::new(support::shared_cluster()).await;
    // The hook is enabled but the account lacks crm_integration.
    setup
        .db
        .execute("UPDATE accounts SET feature_flags = 0")
        .await;
    let lines = setup.check(setup.args(), &[]).await;
    let failed = failures(&lines);
    let account = failed.iter().find(|(n, _)| n == "account").unwrap();
    assert!(account.1.contains("crm_integration"), "{account:?}");
    assert!(
        failed.iter().any(|(n, _)| n == "accounts"),
        "nothing syncs: {failed:#?}"
    );

    // A disabled hook is a note, not a failure, but nothing syncs.
    setup
        .db
        .execute(&format!(
            "UPDATE accounts SET feature_flags = {CRM_INTEGRATION}; UPDATE integrations_hooks SET status = 0"
        ))
        .await;
    let lines = setup.check(setup.args(), &[]).await;
    assert!(render(&lines).contains("NOTE  account      account 1: its GLPI integration"));
    assert_only_failure(&lines, "accounts", "GLPI_ACCOUNT_IDS");
}

#[tokio::test]
async fn state_file_of_another_database_fails() {
    let cluster = support::shared_cluster();
    let setup = Setup::new(cluster).await;
    let state_path = setup.dir.path().join("state.sqlite3");
    {
        let state = chatwoot_glpi_bridge::state::State::open(&state_path).unwrap();
        chatwoot_glpi_bridge::state::replication::bind_source(
            state.conn(),
            &chatwoot_glpi_bridge::state::replication::SourceIdentity {
                system_identifier: "7000000000000000001".into(),
                database_name: "chatwoot_production".into(),
            },
            &setup.slot,
        )
        .unwrap();
    }
    let lines = setup.check(setup.args(), &[]).await;
    assert_only_failure(
        &lines,
        "state file",
        "belongs to database chatwoot_production",
    );
    // Read-only: nothing created beside the state file.
    let files: Vec<_> = std::fs::read_dir(setup.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["state.sqlite3"]);
}

#[tokio::test]
async fn least_privilege_role_from_setup_sql_passes() {
    use chatwoot_glpi_bridge::replication::setup::{setup_sql, SetupSqlOptions};
    use chatwoot_glpi_bridge::replication::ReplicationNames;

    let setup = Setup::new(support::shared_cluster()).await;
    let role = format!("bridge_{}", setup.db.name);
    let sql = setup_sql(&SetupSqlOptions {
        names: ReplicationNames::validated(&setup.slot, &setup.slot).unwrap(),
        role: role.clone(),
        role_password: Some("bridge-pw".into()),
        database: Some(setup.db.name.clone()),
    });
    setup.db.execute(&sql).await;
    let args = setup
        .args()
        .with_flag(Key::DatabaseUrl, setup.db.url_as(&role, "bridge-pw"));
    let lines = setup.check(args, &[]).await;
    assert!(failures(&lines).is_empty(), "{}", render(&lines));
    assert!(render(&lines).contains(&format!("role {role} has REPLICATION")));
}
