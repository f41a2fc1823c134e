//! Throwaway certificates made with the `openssl` command: a CA, a server
//! certificate it signed for one name only, and an unrelated CA. Used in
//! front of the harness's PostgreSQL (`tls.rs`) and of the GLPI emulator
//! (`glpi_client_tls.rs`, which includes this file on its own).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// PEM files in a temporary directory.
pub struct TestCertificates {
    _dir: tempfile::TempDir,
    /// The CA that signed the server certificate.
    pub ca: PathBuf,
    /// A CA that signed nothing the server presents.
    pub other_ca: PathBuf,
    /// Valid for the subject alternative name it was made for only.
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

/// A new P-256 key `key` and, signed by it, a self-signed certificate
/// (`self_signed`) or a certificate request, written to `out`.
fn new_key(dir: &Path, self_signed: bool, key: &str, out: &str, subject: &str) {
    let mut args = vec!["req"];
    if self_signed {
        args.extend(["-x509", "-days", "2"]);
    }
    args.extend([
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        key,
        "-out",
        out,
        "-subj",
        subject,
    ]);
    openssl(dir, &args);
}

/// A self-signed CA `name.pem` with its key `name.key`.
fn make_ca(dir: &Path, name: &str, subject: &str) {
    new_key(
        dir,
        true,
        &format!("{name}.key"),
        &format!("{name}.pem"),
        subject,
    );
}

impl TestCertificates {
    /// A server certificate for `DNS:localhost` only (not for 127.0.0.1).
    pub fn generate() -> TestCertificates {
        Self::generate_for("localhost", "DNS:localhost")
    }

    /// A server certificate with common name `cn` valid for
    /// `subject_alt_name` only (e.g. `IP:127.0.0.1`).
    pub fn generate_for(cn: &str, subject_alt_name: &str) -> TestCertificates {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        make_ca(d, "ca", "/CN=Test PostgreSQL CA");
        make_ca(d, "other_ca", "/CN=Some Other CA");
        new_key(d, false, "server.key", "server.csr", &format!("/CN={cn}"));
        std::fs::write(
            d.join("ext.cnf"),
            format!(
                "subjectAltName={subject_alt_name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            ),
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
