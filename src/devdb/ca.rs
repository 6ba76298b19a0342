//! A throwaway certificate authority (rcgen) for tests and `pgcloak demo`: it issues server
//! certificates (DNS names / IP addresses) and client certificates (by common name).
//!
//! Keys are ECDSA P-256, generated fresh for every CA and every leaf; nothing is persisted except
//! the PEM files a caller chooses to write.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

use super::DevDbError;

/// A self-signed CA whose private key never leaves the process.
pub struct TestCa {
    /// The CA certificate with its key (rcgen's issuer).
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The subject common name, for `Debug`.
    name: String,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("subject", &self.name)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl TestCa {
    /// Makes a new CA certificate and key with the given subject common name.
    pub fn new(common_name: &str) -> Result<TestCa, DevDbError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = subject(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(TestCa {
            ca,
            name: common_name.to_owned(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.ca.pem()
    }

    /// The CA certificate, DER (for a rustls root store).
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.ca.der().clone()
    }

    /// Issues a leaf certificate for the given DNS names / IP addresses ("localhost",
    /// "127.0.0.1"). Returns (certificate PEM, private key PEM).
    pub fn issue(&self, names: &[&str]) -> Result<(String, String), DevDbError> {
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name = subject(names.first().copied().unwrap_or("localhost"));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// Issues a client certificate with the given subject common name (PostgreSQL and pgcloak
    /// match the CN against the user name). Returns (certificate PEM, private key PEM).
    pub fn issue_client(&self, cn: &str) -> Result<(String, String), DevDbError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = subject(cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Result<(String, String), DevDbError> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::{ServerName, UnixTime};
    use std::sync::Arc;

    fn leaf_der(pem: &str) -> CertificateDer<'static> {
        let mut rd = pem.as_bytes();
        rustls_pemfile::certs(&mut rd).next().unwrap().unwrap()
    }

    fn verifier(ca: &TestCa) -> Arc<WebPkiServerVerifier> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap()
    }

    #[test]
    fn server_cert_verifies_for_its_names_only() {
        let ca = TestCa::new("unit CA").unwrap();
        let (cert, key) = ca.issue(&["localhost", "127.0.0.1"]).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let v = verifier(&ca);
        let leaf = leaf_der(&cert);
        let now = UnixTime::now();
        for name in ["localhost", "127.0.0.1"] {
            let sn = ServerName::try_from(name).unwrap();
            v.verify_server_cert(&leaf, &[], &sn, &[], now).unwrap();
        }
        let other = ServerName::try_from("example.com").unwrap();
        assert!(v.verify_server_cert(&leaf, &[], &other, &[], now).is_err());
    }

    #[test]
    fn other_ca_does_not_verify() {
        let ca = TestCa::new("unit CA").unwrap();
        let stranger = TestCa::new("other CA").unwrap();
        let (cert, _) = stranger.issue(&["localhost"]).unwrap();
        let sn = ServerName::try_from("localhost").unwrap();
        let res =
            verifier(&ca).verify_server_cert(&leaf_der(&cert), &[], &sn, &[], UnixTime::now());
        assert!(res.is_err());
    }

    #[test]
    fn client_cert_is_pem_and_debug_redacts() {
        let ca = TestCa::new("unit CA").unwrap();
        let (cert, key) = ca.issue_client("app").unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        assert!(format!("{ca:?}").contains("<redacted>"));
    }
}
