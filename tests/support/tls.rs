//! TLS for the harness's PostgreSQL: clusters started with `ssl = on` and
//! a throwaway server certificate for the host name `localhost` only.

use chatwoot_glpi_bridge::sandbox_postgres::SandboxSsl;

pub use super::certificates::TestCertificates;
use super::{Cluster, ClusterOptions};

impl Cluster {
    /// A new cluster with `ssl = on` and `certs`' server certificate. With
    /// `ssl_only`, pg_hba.conf rejects plaintext TCP connections of every
    /// role but the superuser `postgres` (whom the harness itself uses).
    pub fn start_with_tls(certs: &TestCertificates, ssl_only: bool) -> Cluster {
        Cluster::start_new(&ClusterOptions {
            ssl: Some(SandboxSsl {
                cert_file: certs.server_cert.clone(),
                key_file: certs.server_key.clone(),
                ssl_only,
            }),
            ..ClusterOptions::default()
        })
    }
}
