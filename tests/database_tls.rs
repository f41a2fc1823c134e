//! TLS to Chatwoot's PostgreSQL, driven by DATABASE_URL's sslmode: real
//! clusters with `ssl = on` (a throwaway CA and a server certificate for
//! `localhost`, made with `openssl`), and the harness's shared cluster with
//! `ssl = off`. Ordinary connections (setup, backfill, write-back) and the
//! replication connection are checked alike.

mod support;

use std::sync::OnceLock;

use chatwoot_glpi_bridge::chatwoot_db::ConnectionSettings;
use chatwoot_glpi_bridge::cli::check::{render, run_checks, Outcome};
use chatwoot_glpi_bridge::config::{Config, ConfigArgs, Key};
use chatwoot_glpi_bridge::replication::{ReplicationError, SourceDb};
use chatwoot_glpi_bridge::secret::Secret;
use chatwoot_glpi_bridge::state::mappings::GlpiPersonType;
use chatwoot_glpi_bridge::writeback::ChatwootDb;
use support::bridge::{BridgeEnv, BridgeSetup};
use support::tls::TestCertificates;
use support::{shared_cluster, Cluster, TestDb};

const BRIDGE_PASSWORD: &str = "bridge-tls-pw";

fn certificates() -> &'static TestCertificates {
    static CERTS: OnceLock<TestCertificates> = OnceLock::new();
    CERTS.get_or_init(TestCertificates::generate)
}

/// The `ssl = on` cluster shared by this binary's tests (plaintext allowed).
fn tls_cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster = Cluster::start_with_tls(certificates(), false);
        cluster.remove_at_exit();
        cluster
    })
}

/// `db`'s URL for the role `bridge` (a superuser with a password of its
/// own) on `host`, with `params` as the query.
fn bridge_url(db: &TestDb, host: &str, params: &str) -> String {
    format!(
        "postgres://bridge:{BRIDGE_PASSWORD}@{host}:{}/{}?{params}",
        db.port, db.name
    )
}

/// Roles are cluster-wide: tests running at once may race to create it,
/// so an "already exists" is fine.
async fn create_bridge_role(db: &TestDb) {
    let client = db.connect().await;
    let _ = client
        .batch_execute(&format!(
            "CREATE ROLE bridge LOGIN SUPERUSER PASSWORD '{BRIDGE_PASSWORD}'"
        ))
        .await;
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bridge')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(exists);
}

fn source(url: &str) -> SourceDb {
    SourceDb::from_url(&Secret::new(url)).unwrap_or_else(|e| panic!("{e}"))
}

/// An ordinary connection and a replication connection (IDENTIFY_SYSTEM),
/// both as `run` makes them; the first error of either.
async fn connect_both(url: &str) -> Result<tokio_postgres::Client, ReplicationError> {
    let source = source(url);
    let client = source.connect().await?;
    let config = source.replication_config("unused_slot", "unused_publication");
    let mut repl = pgwire_replication::ReplicationClient::connect_gated(config)
        .await
        .map_err(|e| source.wire_error("unused_slot", e))?;
    repl.identify_system()
        .await
        .map_err(|e| source.wire_error("unused_slot", e))?;
    repl.abort();
    Ok(client)
}

/// Both connections fail with a TLS error whose message contains every
/// one of `expected` and never the password.
async fn assert_both_fail(url: &str, expected: &[&str]) {
    let source = source(url);
    let ordinary = source.connect().await.err();
    let config = source.replication_config("unused_slot", "unused_publication");
    // The replication client connects in a task of its own: its first
    // command reports a failed connection.
    let replication = async {
        let mut client = pgwire_replication::ReplicationClient::connect_gated(config).await?;
        let identified = client.identify_system().await;
        client.abort();
        identified
    }
    .await
    .err()
    .map(|e| source.wire_error("unused_slot", e));
    let target = source.target();
    for (which, err) in [("ordinary", ordinary), ("replication", replication)] {
        let err = err.unwrap_or_else(|| panic!("the {which} connection to {target} succeeded"));
        let text = err.to_string();
        println!("{which}: {text}");
        assert!(
            matches!(err, ReplicationError::Tls { .. }),
            "{which}: not a TLS error: {text}"
        );
        assert!(
            !err.is_transient(),
            "{which}: a TLS misconfiguration is not retried"
        );
        for e in expected {
            assert!(text.contains(e), "{which}: {text:?} lacks {e:?}");
        }
        assert!(!text.contains(BRIDGE_PASSWORD), "{which}: {text}");
    }
}

/// Whether this session is encrypted, as the server sees it.
async fn server_sees_ssl(client: &tokio_postgres::Client) -> bool {
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_backfills_streams_and_writes_back_over_tls() {
    let cluster = tls_cluster();
    let mut setup = BridgeSetup::new("user");
    setup.database_url_suffix = "?sslmode=require".to_owned();
    setup.seed_sql = Some(
        "INSERT INTO contacts (account_id, name, email, created_at, updated_at)
           VALUES (1, 'Before Start', 'before@example.com', now(), now())"
            .to_owned(),
    );
    let env = BridgeEnv::start_on(cluster, setup).await;

    // Backfilled (snapshot over the ordinary connection), then streamed.
    let contact = env
        .new_contact("Ada Lovelace", Some("ada@example.com"), None)
        .await;
    let conversation = env.new_conversation(contact).await;
    env.new_message(conversation, true, "My printer is on fire")
        .await;
    let ticket = env.ticket_of(conversation).await;
    assert!(ticket > 0);
    env.settle().await;
    let users = env.emulator.items("User");
    for email in ["before@example.com", "ada@example.com"] {
        assert!(
            users.iter().any(|u| u["name"] == email),
            "{email} did not reach GLPI: {users:?}"
        );
    }
    assert!(
        env.attributes("contacts", contact).await["external"]["glpi_user_id"].is_i64(),
        "the contact's GLPI id was not written back"
    );

    // The server sees every session of the bridge as SSL: the walsender and
    // the write-back pool's connections.
    let sessions = env
        .client
        .query(
            "SELECT a.backend_type, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
             WHERE a.application_name = 'chatwoot-glpi-bridge' AND a.datname = current_database()",
            &[],
        )
        .await
        .unwrap();
    let sessions: Vec<(String, bool)> = sessions.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(
        sessions.iter().any(|(kind, _)| kind == "walsender"),
        "no replication session: {sessions:?}"
    );
    assert!(
        sessions.iter().any(|(kind, _)| kind == "client backend"),
        "no write-back session: {sessions:?}"
    );
    assert!(
        sessions.iter().all(|(_, ssl)| *ssl),
        "a session is not encrypted: {sessions:?}"
    );
    env.stop().await;
}

#[tokio::test]
async fn verify_full_trusts_only_the_named_ca_and_host() {
    let certs = certificates();
    let db = tls_cluster().create_database();
    create_bridge_role(&db).await;
    let ca = certs.ca.display().to_string();
    let other_ca = certs.other_ca.display().to_string();

    let client = connect_both(&bridge_url(
        &db,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .unwrap_or_else(|e| panic!("verify-full with the right CA and host: {e}"));
    assert!(server_sees_ssl(&client).await);

    // The certificate is signed by another CA than sslrootcert's.
    assert_both_fail(
        &bridge_url(
            &db,
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={other_ca}"),
        ),
        &["not trusted", &format!("sslrootcert={other_ca}")],
    )
    .await;
    // No sslrootcert: only public CAs are trusted.
    assert_both_fail(
        &bridge_url(&db, "localhost", "sslmode=verify-full"),
        &["not trusted", "public CAs", "sslrootcert="],
    )
    .await;
    // The certificate names `localhost`, not 127.0.0.1.
    assert_both_fail(
        &bridge_url(
            &db,
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        ),
        &["not valid for the host name \"127.0.0.1\"", "verify-ca"],
    )
    .await;
    // verify-ca checks the chain only: 127.0.0.1 is fine, a wrong CA is not.
    let client = connect_both(&bridge_url(
        &db,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ))
    .await
    .unwrap_or_else(|e| panic!("verify-ca by address: {e}"));
    assert!(server_sees_ssl(&client).await);
    assert_both_fail(
        &bridge_url(
            &db,
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={other_ca}"),
        ),
        &["not trusted"],
    )
    .await;
}

#[tokio::test]
async fn require_fails_clearly_without_server_ssl_and_prefer_falls_back() {
    let db = shared_cluster().create_database();
    create_bridge_role(&db).await;
    assert_both_fail(
        &bridge_url(&db, "127.0.0.1", "sslmode=require"),
        &[
            "does not accept SSL connections",
            "sslmode=require",
            "ssl = on",
        ],
    )
    .await;

    let client = connect_both(&bridge_url(&db, "127.0.0.1", "sslmode=prefer"))
        .await
        .unwrap_or_else(|e| panic!("prefer against ssl=off: {e}"));
    assert!(!server_sees_ssl(&client).await);
    // The default is prefer too, and it encrypts when the server offers SSL.
    let tls_db = tls_cluster().create_database();
    create_bridge_role(&tls_db).await;
    let client = connect_both(&bridge_url(&tls_db, "127.0.0.1", ""))
        .await
        .unwrap_or_else(|e| panic!("prefer against ssl=on: {e}"));
    assert!(server_sees_ssl(&client).await);
}

#[tokio::test]
async fn hostssl_only_server_rejects_plaintext_and_accepts_require() {
    let cluster = Cluster::start_with_tls(certificates(), true);
    let db = cluster.create_database();
    create_bridge_role(&db).await;

    let plaintext = source(&bridge_url(&db, "127.0.0.1", "sslmode=disable"))
        .connect()
        .await
        .expect_err("pg_hba.conf accepts only SSL for this role");
    assert!(
        matches!(plaintext, ReplicationError::LoginRefused { .. }),
        "{plaintext}"
    );
    assert!(
        plaintext.to_string().contains("no encryption"),
        "{plaintext}"
    );

    let url = bridge_url(&db, "127.0.0.1", "sslmode=require");
    let client = connect_both(&url)
        .await
        .unwrap_or_else(|e| panic!("require under hostssl: {e}"));
    assert!(server_sees_ssl(&client).await);

    // Write-back over the same settings.
    let contact: i64 = client
        .query_one(
            "INSERT INTO contacts (account_id, name, email, created_at, updated_at)
             VALUES (1, 'Grace', 'grace@example.com', now(), now()) RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i32>(0)
        .into();
    let settings: ConnectionSettings = url.parse().unwrap();
    let chatwoot = ChatwootDb::new(settings, 1);
    assert!(chatwoot
        .write_contact(contact, GlpiPersonType::User, 42)
        .await
        .unwrap());
    let written: Option<i64> = client
        .query_one(
            "SELECT (additional_attributes -> 'external' ->> 'glpi_user_id')::int8 FROM contacts WHERE id = $1::int8",
            &[&contact],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(written, Some(42));

    // A write-back that cannot connect says why (it is retried, and logged).
    let write_back_error = |url: String| async move {
        let settings: ConnectionSettings = url.parse().unwrap();
        ChatwootDb::new(settings, 1)
            .write_contact(contact, GlpiPersonType::User, 43)
            .await
            .expect_err("cannot connect")
            .to_string()
    };
    let plaintext = write_back_error(bridge_url(&db, "127.0.0.1", "sslmode=disable")).await;
    assert!(plaintext.contains("no encryption"), "{plaintext}");
    let other_ca = certificates().other_ca.display().to_string();
    let untrusted = write_back_error(bridge_url(
        &db,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={other_ca}"),
    ))
    .await;
    assert!(
        untrusted.contains("not trusted") && untrusted.contains(&other_ca),
        "{untrusted}"
    );
    assert!(!untrusted.contains(BRIDGE_PASSWORD), "{untrusted}");
}

#[tokio::test]
async fn check_says_whether_the_connection_is_encrypted() {
    let db = tls_cluster().create_database();
    create_bridge_role(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let check = |url: String| {
        let state = dir.path().join("state.sqlite3");
        async move {
            let args = ConfigArgs::default()
                .with_flag(Key::DatabaseUrl, &url)
                .with_flag(Key::StateFile, state.to_str().unwrap());
            let config = Config::load_with_env(&args, &|_| None).unwrap();
            let lines = run_checks(&config).await;
            println!("{}", render(&lines));
            lines
                .into_iter()
                .find(|l| l.name == "tls" || l.failed())
                .map(|l| l.outcome)
        }
    };
    let ca = certificates().ca.display().to_string();
    match check(bridge_url(
        &db,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    {
        Some(Outcome::Pass(line)) => {
            assert!(line.starts_with("encrypted (TLSv1."), "{line}");
            assert!(line.contains("sslmode=verify-full"), "{line}");
            assert!(line.contains("host name verified"), "{line}");
        }
        other => panic!("{other:?}"),
    }
    match check(bridge_url(&db, "127.0.0.1", "sslmode=disable")).await {
        Some(Outcome::Note(line)) => {
            assert!(line.starts_with("not encrypted (sslmode=disable"), "{line}")
        }
        other => panic!("{other:?}"),
    }
    // An unreadable sslrootcert is named before anything connects.
    match check(bridge_url(
        &db,
        "localhost",
        "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
    ))
    .await
    {
        Some(Outcome::Fail(line)) => {
            assert!(line.contains("TLS settings"), "{line}");
            assert!(line.contains("sslrootcert=/nonexistent/ca.pem"), "{line}");
            assert!(!line.contains(BRIDGE_PASSWORD), "{line}");
        }
        other => panic!("{other:?}"),
    }
}
