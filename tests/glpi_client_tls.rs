//! HTTPS to GLPI: the client verifies the certificate by default and trusts
//! a private CA only when given its PEM bundle (`ca_cert`, GLPI_CA_CERT).
//! The emulator is put behind a TLS front whose certificate is signed by a
//! throwaway CA made with the `openssl` command.

#[path = "support/certificates.rs"]
mod certificates;
mod glpi_client_common;

use std::net::SocketAddr;
use std::sync::Arc;

use certificates::TestCertificates;
use chatwoot_glpi_bridge::glpi::GlpiError;
use glpi_client_common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

/// Terminates TLS on 127.0.0.1 and forwards the bytes to `upstream`.
async fn tls_front(certs: &TestCertificates, upstream: SocketAddr) -> SocketAddr {
    let key = PrivateKeyDer::from_pem_file(&certs.server_key).unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certs.server_cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
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
    let certs = TestCertificates::generate_for("127.0.0.1", "IP:127.0.0.1");
    let emulator = emulator().await;
    let upstream: SocketAddr = emulator
        .api_url()
        .trim_start_matches("http://")
        .trim_end_matches("/apirest.php")
        .parse()
        .unwrap();
    let front = tls_front(&certs, upstream).await;
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
    config.ca_cert = Some(certs.ca.clone());
    let client = client_with(config);
    assert_eq!(
        client.get("User", 2).await.unwrap().unwrap()["name"],
        "glpi"
    );
    client.kill_session().await.unwrap();
    assert_eq!(count(&emulator, "GET", "/initSession"), 1);
    assert_eq!(count(&emulator, "GET", "/killSession"), 1);
}
