//! rustls configurations: the client-facing server config (TLS 1.2+, ALPN `postgresql`,
//! optional client certificates, records of at most 8 KB as PostgreSQL's) and the upstream client config (`verify-full` or
//! `verify-ca` against `upstream.tls_ca`). One crypto provider: ring.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::config::{self, file::TlsMode};

/// The ALPN protocol name PostgreSQL 17 uses for TLS connections.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Largest plaintext in one TLS record sent to clients: 8 KB, as PostgreSQL's (its send buffer
/// is 8 KB and OpenSSL writes one record per `SSL_write`). libpq reads with at least 8 KB of
/// room and `SSL_read` returns one record at most, so a record of up to 8 KB is always read
/// whole; the rest of a 16 KB record (rustls' default) stays inside OpenSSL where a
/// non-blocking client's wait for socket readiness cannot see it, and the client hangs
/// (libpq before 18, and async drivers that wait on the socket).
pub const MAX_RECORD_PLAINTEXT: usize = 8192;
/// A TLS record header: type, version, length.
const RECORD_HEADER: usize = 5;

/// A TLS configuration that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("invalid CA for certificate verification: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    #[error("invalid upstream TLS server name {0:?}")]
    ServerName(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn open(path: &Path) -> Result<std::io::BufReader<std::fs::File>, TlsError> {
    std::fs::File::open(path)
        .map(std::io::BufReader::new)
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

fn pem_error(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Reads every certificate of a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut open(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate found"));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    rustls_pemfile::private_key(&mut open(path)?)
        .map_err(|e| pem_error(path, format!("bad PEM private key: {e}")))?
        .ok_or_else(|| pem_error(path, "no private key found"))
}

fn load_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots
            .add(cert)
            .map_err(|e| pem_error(path, format!("unusable CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// The client-facing TLS setup and the proxy certificate (for `tls-server-end-point`).
#[derive(Clone)]
pub struct ServerTls {
    pub config: Arc<ServerConfig>,
    /// DER of the proxy's own (leaf) certificate.
    pub cert_der: CertificateDer<'static>,
}

/// Builds the client-facing config from `[listen]`: TLS 1.2+, ALPN `postgresql` advertised,
/// client certificates required when `tls_client_ca` is set.
pub fn server_config(listen: &config::file::Listen) -> Result<ServerTls, TlsError> {
    let chain = load_certs(&listen.tls_cert)?;
    let key = load_key(&listen.tls_key)?;
    let cert_der = chain[0].clone();
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match &listen.tls_client_ca {
        Some(ca) => builder.with_client_cert_verifier(
            WebPkiClientVerifier::builder_with_provider(load_roots(ca)?, provider()).build()?,
        ),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    // rustls counts the record header in the fragment size.
    config.max_fragment_size = Some(MAX_RECORD_PLAINTEXT + RECORD_HEADER);
    Ok(ServerTls {
        config: Arc::new(config),
        cert_der,
    })
}

/// Builds the upstream client config from `[upstream]` (also used by the control login).
pub fn client_config(up: &config::file::Upstream) -> Result<ClientConfig, TlsError> {
    let roots = load_roots(&up.tls_ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let mut config = match up.tls_mode {
        TlsMode::VerifyFull => builder.with_root_certificates(roots).with_no_client_auth(),
        TlsMode::VerifyCa => {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider()).build()?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(VerifyCa { inner }))
                .with_no_client_auth()
        }
    };
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    Ok(config)
}

/// The name the upstream certificate is checked against (host name or IP address).
pub fn upstream_server_name(up: &config::file::Upstream) -> Result<ServerName<'static>, TlsError> {
    let name = up.server_name().to_owned();
    ServerName::try_from(name.clone()).map_err(|_| TlsError::ServerName(name))
}

/// `verify-ca`: the chain must lead to the configured CA (and be valid now), but the name is
/// not checked — as libpq's `sslmode=verify-ca`. rustls checks the chain before the name, so
/// a name mismatch error means the chain itself verified.
#[derive(Debug)]
struct VerifyCa {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for VerifyCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
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

#[cfg(test)]
mod tests;
