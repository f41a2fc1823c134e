//! The test harness itself: a real cluster with logical WAL, Chatwoot's schema
//! and triggers, isolated databases, restarts.

mod support;

use support::{shared_cluster, Cluster, ClusterOptions, WalLevel};

#[tokio::test]
async fn shared_cluster_runs_logical_wal_and_chatwoot_triggers() {
    let db = shared_cluster().create_database();
    let client = db.connect().await;
    let wal: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(wal, "logical");

    db.execute(&support::chatwoot::insert_account_sql("Acme"))
        .await;
    db.execute(&support::chatwoot::insert_account_sql("Other"))
        .await;
    db.execute(&support::chatwoot::insert_contacts_sql(1, 3))
        .await;
    for _ in 0..2 {
        db.execute(&support::chatwoot::insert_conversation_sql(1, 1))
            .await;
    }
    db.execute(&support::chatwoot::insert_conversation_sql(2, 2))
        .await;
    let rows = client
        .query(
            "SELECT account_id, display_id FROM conversations ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let ids: Vec<(i32, i32)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    // display_id is per account, from conv_dpid_seq_<account_id>.
    assert_eq!(ids, vec![(1, 1), (1, 2), (2, 1)]);
}

#[tokio::test]
async fn databases_are_isolated() {
    let a = shared_cluster().create_database();
    let b = shared_cluster().create_database();
    assert_ne!(a.name, b.name);
    a.execute(&support::chatwoot::insert_account_sql("Only in A"))
        .await;
    let n: i64 = b
        .connect()
        .await
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn dedicated_cluster_restarts_and_keeps_data() {
    let cluster = Cluster::start_new(&ClusterOptions {
        wal_level: WalLevel::Replica,
        ..ClusterOptions::default()
    });
    let db = cluster.create_database();
    db.execute(&support::chatwoot::insert_account_sql("Before restart"))
        .await;
    cluster.restart();
    let client = db.connect().await;
    let wal: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(wal, "replica");
    let n: i64 = client
        .query_one("SELECT count(*) FROM accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
}
