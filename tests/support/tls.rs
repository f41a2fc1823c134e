//! TLS for the harness's PostgreSQL: throwaway certificates made with the
//! `openssl` command (a CA, a server certificate for the host name
//! `localhost` only, and an unrelated CA), and clusters started with
//! `ssl = on`.

use std::path::{Path, PathBuf};
use std::process::Command;

use chatwoot_glpi_bridge::sandbox_postgres::SandboxSsl;

use super::{Cluster, ClusterOptions};

/// PEM files in a temporary directory.
pub struct TestCertificates {
    _dir: tempfile::TempDir,
    /// The CA that signed the server certificate.
    pub ca: PathBuf,
    /// A CA that signed nothing the server presents.
    pub other_ca: PathBuf,
    /// Valid for `DNS:localhost` only (not for 127.0.0.1).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("this test needs the `openssl` command (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA `name.pem` with its key `name.key`.
fn make_ca(dir: &Path, name: &str, subject: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            subject,
        ],
    );
}

impl TestCertificates {
    pub fn generate() -> TestCertificates {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        make_ca(d, "ca", "/CN=Test PostgreSQL CA");
        make_ca(d, "other_ca", "/CN=Some Other CA");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext.cnf");
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        TestCertificates {
            ca: d.join("ca.pem"),
            other_ca: d.join("other_ca.pem"),
            server_cert: d.join("server.pem"),
            server_key: d.join("server.key"),
            _dir: dir,
        }
    }
}

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
