//! HTTPS to GLPI: the client verifies the certificate by default and trusts
//! a private CA only when given its PEM bundle (`ca_cert`, GLPI_CA_CERT).
//! The emulator is put behind a TLS front whose certificate is signed by a
//! throwaway CA made with the `openssl` command.

mod glpi_client_common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use chatwoot_glpi_bridge::glpi::GlpiError;
use glpi_client_common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("this test needs the `openssl` command (apt-get install openssl)");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A CA (`ca.pem`) and a server certificate for 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
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
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=Test GLPI CA",
        ],
    );
    openssl(
        dir,
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
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
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
}

/// Terminates TLS on 127.0.0.1 and forwards the bytes to `upstream`.
async fn tls_front(dir: &Path, upstream: SocketAddr) -> SocketAddr {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut plain = TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_with_private_ca_needs_the_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let emulator = emulator().await;
    let upstream: SocketAddr = emulator
        .api_url()
        .trim_start_matches("http://")
        .trim_end_matches("/apirest.php")
        .parse()
        .unwrap();
    let front = tls_front(dir.path(), upstream).await;
    let https_url = format!("https://{front}/apirest.php");

    // Without the CA: the certificate is refused before any request is sent.
    let mut config = config(&emulator);
    config.api_url = https_url.clone();
    config.max_retries = 0;
    let err = client_with(config.clone())
        .get("User", 2)
        .await
        .unwrap_err();
    assert!(matches!(err, GlpiError::Connection { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains("GLPI_CA_CERT"), "{text}");
    assert!(emulator.requests().is_empty(), "nothing reached GLPI");

    // With the CA bundle: a whole session over HTTPS.
    config.ca_cert = Some(dir.path().join("ca.pem"));
    let client = client_with(config);
    assert_eq!(
        client.get("User", 2).await.unwrap().unwrap()["name"],
        "glpi"
    );
    client.kill_session().await.unwrap();
    assert_eq!(count(&emulator, "GET", "/initSession"), 1);
    assert_eq!(count(&emulator, "GET", "/killSession"), 1);
}
