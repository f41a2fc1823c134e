//! A rustls connector for tokio-postgres (its `MakeTlsConnect` and
//! `TlsConnect` traits over tokio-rustls), with the certificate checks of
//! libpq's sslmodes: none for prefer/require, the chain for verify-ca, the
//! chain and the host name for verify-full. The crypto provider is `ring`,
//! as for the GLPI client, given explicitly (no process-wide default).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

use super::failure::{TlsError, TlsFailure};
use super::sslmode::TlsSettings;

/// A name the server's certificate holds, learned by a verify-ca handshake
/// whose host name did not match; the replication connection uses it as its
/// expected name (see `ConnectionSettings::replication_tls`).
pub type LearnedName = Arc<Mutex<Option<String>>>;

/// Builds the rustls client configuration for `settings`. Reads
/// `sslrootcert` now, so a missing or empty file fails at start-up.
pub fn client_config(
    settings: &TlsSettings,
    learned: &LearnedName,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.verifies_chain() {
        let roots = Arc::new(root_store(settings)?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| format!("TLS setup failed: {e}"))?;
        if settings.verifies_host() {
            webpki
        } else {
            Arc::new(ChainOnly {
                inner: webpki,
                learned: learned.clone(),
            })
        }
    } else {
        Arc::new(EncryptOnly { provider })
    };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

fn root_store(settings: &TlsSettings) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let Some(path) = &settings.root_cert else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            format!(
                "cannot read sslrootcert={} ({e}): give the path of a PEM file holding the CA \
                 certificate(s) that signed the server's certificate",
                path.display()
            )
        })?;
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "sslrootcert={} holds no usable certificate: it must be PEM (-----BEGIN \
             CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(roots)
}

/// prefer/require without sslrootcert: encrypt, accept any certificate (as
/// libpq does), but still check the handshake signatures.
#[derive(Debug)]
struct EncryptOnly {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// verify-ca: the chain must verify; a host name mismatch is accepted.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
    learned: LearnedName,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as C;
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(C::NotValidForNameContext {
                presented, ..
            })) => {
                // Webpki checks the name last, after the chain: the chain is good.
                if let Some(name) = presented.iter().find_map(|p| usable_name(p)) {
                    *self.learned.lock().unwrap_or_else(|e| e.into_inner()) = Some(name);
                }
                Ok(ServerCertVerified::assertion())
            }
            Err(rustls::Error::InvalidCertificate(C::NotValidForName)) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// webpki's rendering of a presented name (`DnsName("db.example")`,
/// `IpAddress(10.0.0.5)`) → a name a handshake can expect.
fn usable_name(presented: &str) -> Option<String> {
    let name = if let Some(dns) = presented.strip_prefix("DnsName(\"") {
        let dns = dns.strip_suffix("\")")?;
        // A wildcard matches any one label.
        match dns.strip_prefix("*.") {
            Some(rest) => format!("bridge.{rest}"),
            None => dns.to_owned(),
        }
    } else {
        presented
            .strip_prefix("IpAddress(")?
            .strip_suffix(')')?
            .to_owned()
    };
    ServerName::try_from(name.clone()).ok().map(|_| name)
}

/// tokio-postgres' connector: one per connection attempt, made per host.
#[derive(Clone)]
pub struct RustlsConnect {
    pub config: Arc<ClientConfig>,
    pub settings: TlsSettings,
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsHandshake;
    type Error = TlsError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsHandshake, TlsError> {
        let failed = |detail: String| TlsError {
            failure: TlsFailure::Handshake { detail },
            settings: self.settings.clone(),
            host: host.to_owned(),
        };
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| failed(format!("{host:?} is not a host name TLS can check: {e}")))?;
        Ok(RustlsHandshake {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            server_name,
            settings: self.settings.clone(),
            host: host.to_owned(),
        })
    }
}

/// One handshake.
pub struct RustlsHandshake {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
    settings: TlsSettings,
    host: String,
}

impl<S> TlsConnect<S> for RustlsHandshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = TlsError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, TlsError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            match self.connector.connect(self.server_name, stream).await {
                Ok(tls) => Ok(RustlsStream(tls)),
                Err(err) => Err(TlsError {
                    failure: classify_io(&err),
                    settings: self.settings,
                    host: self.host,
                }),
            }
        })
    }
}

/// tokio-rustls reports rustls errors inside an `io::Error`.
fn classify_io(err: &io::Error) -> TlsFailure {
    match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls_err) => TlsFailure::from_rustls(rustls_err),
        None => TlsFailure::Handshake {
            detail: err.to_string(),
        },
    }
}

/// An encrypted connection.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    /// No `tls-server-end-point` binding: SCRAM runs without channel binding
    /// (tokio-postgres' default `channel_binding=prefer` accepts that).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_learned_from_webpki_are_usable_as_expected_names() {
        assert_eq!(
            usable_name("DnsName(\"db.example\")").as_deref(),
            Some("db.example")
        );
        assert_eq!(
            usable_name("DnsName(\"*.example\")").as_deref(),
            Some("bridge.example")
        );
        assert_eq!(
            usable_name("IpAddress(10.0.0.5)").as_deref(),
            Some("10.0.0.5")
        );
        assert_eq!(usable_name("DirectoryName"), None);
    }
}
