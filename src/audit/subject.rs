//! The subject of a client certificate as an RFC 4514 string (`CN=app,O=Example`), for the
//! login records of the audit trail: RDNs last-first, multi-valued RDNs joined with `+`, the
//! RFC's short names (CN, L, ST, O, OU, C, STREET, DC, UID) else the dotted OID, special
//! characters escaped, and a value that is not a string as `#` and the hex of its DER.

use x509_parser::asn1_rs::ToDer;
use x509_parser::prelude::{AttributeTypeAndValue, X509Name, parse_x509_certificate};

/// The subject of the DER certificate `der` (`None`: it does not parse).
pub fn subject_of(der: &[u8]) -> Option<String> {
    let (_, cert) = parse_x509_certificate(der).ok()?;
    Some(rfc4514(cert.subject()))
}

fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| rdn.iter().map(attribute).collect::<Vec<_>>().join("+"))
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn attribute(a: &AttributeTypeAndValue<'_>) -> String {
    let oid = a.attr_type().to_id_string();
    let ty = short_name(&oid).map_or(oid.clone(), str::to_owned);
    match a.as_str() {
        Ok(s) => format!("{ty}={}", escape(s)),
        Err(_) => {
            let der = a.attr_value().to_der_vec().unwrap_or_default();
            format!("{ty}=#{}", hex::encode(der))
        }
    }
}

/// RFC 4514 §2.4 escaping; control characters as `\XX` too (the trail is a log).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let last = s.chars().count().saturating_sub(1);
    for (i, c) in s.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    out.push_str(&format!("\\{b:02X}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_is_rfc4514_last_rdn_first_with_escapes() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "DE");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc.");
        dn.push(rcgen::DnType::CommonName, "#app ");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            subject_of(cert.der()).unwrap(),
            "CN=\\#app\\ ,O=Acme\\, Inc.,C=DE"
        );
        assert_eq!(subject_of(b"not a certificate"), None);
        assert_eq!(escape("a\nb"), "a\\0Ab");
    }
}
