//! The harness's throwaway PostgreSQL cluster: a thin wrapper over the
//! library's [`chatwoot_glpi_bridge::sandbox_postgres`] (shared with the
//! `demo` command) that panics instead of returning errors, as tests want.

use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatwoot_glpi_bridge::sandbox_postgres::{self, SandboxPostgres};
pub use chatwoot_glpi_bridge::sandbox_postgres::{
    SandboxOptions as ClusterOptions, SandboxSsl, WalLevel,
};

/// Password of the superuser `postgres` in every test cluster.
pub const SUPERUSER_PASSWORD: &str = sandbox_postgres::DEFAULT_SUPERUSER_PASSWORD;

/// A running (or stopped) PostgreSQL cluster; its fields (`port`,
/// `data_dir`, `socket_dir`, `bin_dir`) and read-only methods come from
/// [`SandboxPostgres`].
pub struct Cluster(Arc<SandboxPostgres>);

impl Deref for Cluster {
    type Target = SandboxPostgres;

    fn deref(&self) -> &SandboxPostgres {
        &self.0
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
pub fn bin_dir() -> PathBuf {
    sandbox_postgres::find_bin_dir().unwrap_or_else(|e| panic!("{e}"))
}

impl Cluster {
    /// initdb + start a new cluster.
    pub fn start_new(options: &ClusterOptions) -> Cluster {
        Cluster(Arc::new(
            SandboxPostgres::start_new(options).unwrap_or_else(|e| panic!("{e}")),
        ))
    }

    /// Starts a stopped cluster again on the same port.
    pub fn start(&self) {
        self.0.start().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops the cluster (`fast`: disconnects clients, clean shutdown).
    pub fn stop(&self) {
        self.0.stop().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops and starts the cluster. Blocks the calling thread: from async
    /// code use [`Cluster::restart_async`], or a bridge running on the
    /// test's runtime cannot answer the server meanwhile (PostgreSQL then
    /// waits up to `wal_sender_timeout` for its walsender to finish).
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// [`Cluster::restart`] without blocking the async runtime: a database
    /// restart under a running bridge.
    pub async fn restart_async(&self) {
        let cluster = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || {
            cluster.stop().unwrap_or_else(|e| panic!("{e}"));
            cluster.start().unwrap_or_else(|e| panic!("{e}"));
        })
        .await
        .expect("restart task");
    }
}

/// Waits until `f` returns true, polling; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
