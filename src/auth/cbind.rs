//! RFC 5929 `tls-server-end-point` channel-binding data: the hash of a DER certificate, taken
//! with the hash of its signature algorithm (SHA-256 when that is MD5 or SHA-1).
//!
//! A tiny DER walk finds `Certificate.signatureAlgorithm` (no X.509 crate needed).

use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

const TAG_SEQUENCE: u8 = 0x30;
const TAG_OID: u8 = 0x06;
/// `[0]` constructed, context-specific (RSASSA-PSS-params.hashAlgorithm).
const TAG_CTX0: u8 = 0xa0;

/// 1.2.840.113549.1.1 (PKCS #1) prefix.
const PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
/// 1.2.840.10045.4.3 (ecdsa-with-SHA2) prefix.
const ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
/// 1.2.840.10045.4.1 ecdsa-with-SHA1.
const ECDSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x01];
/// 1.2.840.10040.4.3 dsa-with-sha1.
const DSA_SHA1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x03];
/// 2.16.840.1.101.3.4.3 (NIST sigAlgs: dsa-with-sha2) prefix.
const NIST_SIG: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
/// 2.16.840.1.101.3.4.2 (NIST hashAlgs) prefix.
const NIST_HASH: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];
/// 1.3.14.3.2.26 sha1 and 1.3.14.3.2.29 sha1WithRSASignature (OIW).
const OIW_SHA1: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1a];
const OIW_SHA1_RSA: &[u8] = &[0x2b, 0x0e, 0x03, 0x02, 0x1d];

/// RFC 5929 tls-server-end-point hash of `cert_der`; `None` if the certificate cannot be
/// parsed or its signature algorithm has no single hash (e.g. Ed25519), as in PostgreSQL.
pub fn tls_server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    let (cert, _) = read_tlv(cert_der, TAG_SEQUENCE)?;
    let (_tbs, rest) = read_tlv(cert, TAG_SEQUENCE)?;
    let (alg, _) = read_tlv(rest, TAG_SEQUENCE)?;
    let (oid, params) = read_tlv(alg, TAG_OID)?;
    let hash = signature_hash(oid, params)?;
    Some(match hash {
        Hash::Sha224 => Sha224::digest(cert_der).to_vec(),
        Hash::Sha256 => Sha256::digest(cert_der).to_vec(),
        Hash::Sha384 => Sha384::digest(cert_der).to_vec(),
        Hash::Sha512 => Sha512::digest(cert_der).to_vec(),
    })
}

/// The hash to use for a signature algorithm OID (MD5 and SHA-1 are upgraded to SHA-256).
fn signature_hash(oid: &[u8], params: &[u8]) -> Option<Hash> {
    let (prefix, last) = oid.split_last().map(|(l, p)| (p, *l))?;
    match (prefix, last) {
        // md5WithRSA(4), sha1WithRSA(5), sha256WithRSA(11), sha384(12), sha512(13), sha224(14)
        (PKCS1, 4 | 5 | 11) => Some(Hash::Sha256),
        (PKCS1, 12) => Some(Hash::Sha384),
        (PKCS1, 13) => Some(Hash::Sha512),
        (PKCS1, 14) => Some(Hash::Sha224),
        (PKCS1, 10) => pss_hash(params),
        (ECDSA_SHA2 | NIST_SIG, 1) => Some(Hash::Sha224),
        (ECDSA_SHA2 | NIST_SIG, 2) => Some(Hash::Sha256),
        (ECDSA_SHA2 | NIST_SIG, 3) => Some(Hash::Sha384),
        (ECDSA_SHA2 | NIST_SIG, 4) => Some(Hash::Sha512),
        _ if oid == ECDSA_SHA1 || oid == DSA_SHA1 || oid == OIW_SHA1_RSA => Some(Hash::Sha256),
        _ => None,
    }
}

/// RSASSA-PSS: `params` is `SEQUENCE { [0] hashAlgorithm DEFAULT sha1, … }`.
fn pss_hash(params: &[u8]) -> Option<Hash> {
    let (seq, _) = read_tlv(params, TAG_SEQUENCE)?;
    let Some((explicit, _)) = read_tlv(seq, TAG_CTX0) else {
        return Some(Hash::Sha256); // default sha1 → SHA-256
    };
    let (alg, _) = read_tlv(explicit, TAG_SEQUENCE)?;
    let (oid, _) = read_tlv(alg, TAG_OID)?;
    if oid == OIW_SHA1 {
        return Some(Hash::Sha256);
    }
    let (prefix, last) = oid.split_last().map(|(l, p)| (p, *l))?;
    match (prefix, last) {
        (NIST_HASH, 1) => Some(Hash::Sha256),
        (NIST_HASH, 2) => Some(Hash::Sha384),
        (NIST_HASH, 3) => Some(Hash::Sha512),
        (NIST_HASH, 4) => Some(Hash::Sha224),
        _ => None,
    }
}

/// Reads one DER TLV with the expected tag: returns (contents, rest).
fn read_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_p256_sha256_cert_hashes_with_sha256() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        assert_eq!(
            tls_server_end_point(&der).unwrap(),
            Sha256::digest(&der).to_vec()
        );
    }

    #[test]
    fn ecdsa_p384_sha384_cert_hashes_with_sha384() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        assert_eq!(
            tls_server_end_point(&der).unwrap(),
            Sha384::digest(&der).to_vec()
        );
    }

    #[test]
    fn ed25519_and_garbage_give_none() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        assert_eq!(tls_server_end_point(cert.der()), None);
        assert_eq!(tls_server_end_point(b""), None);
        assert_eq!(
            tls_server_end_point(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(tls_server_end_point(&[0x30, 0x03, 0x30, 0x01]), None);
    }

    #[test]
    fn oid_table() {
        let pkcs1 = |n: u8| [PKCS1, &[n]].concat();
        assert_eq!(signature_hash(&pkcs1(5), &[]), Some(Hash::Sha256));
        assert_eq!(signature_hash(&pkcs1(4), &[]), Some(Hash::Sha256));
        assert_eq!(signature_hash(&pkcs1(12), &[]), Some(Hash::Sha384));
        assert_eq!(signature_hash(&pkcs1(13), &[]), Some(Hash::Sha512));
        assert_eq!(signature_hash(ECDSA_SHA1, &[]), Some(Hash::Sha256));
        // PSS with sha384: SEQUENCE { [0] { SEQUENCE { OID sha384 } } }
        let pss = [
            0x30, 0x0f, 0xa0, 0x0d, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03,
            0x04, 0x02, 0x02,
        ];
        assert_eq!(signature_hash(&pkcs1(10), &pss), Some(Hash::Sha384));
        assert_eq!(
            signature_hash(&pkcs1(10), &[0x30, 0x00]),
            Some(Hash::Sha256)
        );
    }
}
