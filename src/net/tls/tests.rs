//! TLS config tests: real handshakes over an in-memory pipe with rcgen certificates.

use super::*;
use crate::config::file::{Listen, Upstream};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use std::path::PathBuf;
use tokio_rustls::{TlsAcceptor, TlsConnector};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA named `ca` and a leaf for `names` signed by it, written as PEM files.
    fn new(names: &[&str]) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.crt"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), leaf_key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn listen(&self) -> Listen {
        Listen {
            address: "127.0.0.1:0".into(),
            tls_cert: self.path("server.crt"),
            tls_key: self.path("server.key"),
            tls_client_ca: None,
            shutdown_timeout_secs: 1,
            max_connections: 10,
            max_message_bytes: 1 << 20,
        }
    }
}

fn upstream(ca: PathBuf, name: &str, mode: TlsMode) -> Upstream {
    Upstream {
        host: name.into(),
        port: 5432,
        tls_mode: mode,
        tls_ca: ca,
        tls_server_name: None,
        connect_timeout_secs: 1,
    }
}

/// Handshakes a client built from `up` against `server`; returns the negotiated ALPN.
async fn handshake(server: &ServerTls, up: &Upstream) -> Result<Option<Vec<u8>>, String> {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(server.config.clone());
    let connector = TlsConnector::from(Arc::new(client_config(up).unwrap()));
    let name = upstream_server_name(up).unwrap();
    let srv = tokio::spawn(async move { acceptor.accept(b).await.map(|_| ()) });
    let res = connector.connect(name, a).await;
    let _ = srv.await;
    res.map(|s| s.get_ref().1.alpn_protocol().map(|p| p.to_vec()))
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn verify_full_accepts_the_right_name_and_negotiates_alpn() {
    let pki = Pki::new(&["localhost"]);
    let server = server_config(&pki.listen()).unwrap();
    assert_eq!(
        server.cert_der,
        load_certs(&pki.path("server.crt")).unwrap()[0]
    );
    let up = upstream(pki.path("ca.crt"), "localhost", TlsMode::VerifyFull);
    assert_eq!(
        handshake(&server, &up).await,
        Ok(Some(ALPN_POSTGRESQL.to_vec()))
    );
}

#[tokio::test]
async fn verify_full_refuses_another_name_but_verify_ca_accepts_it() {
    let pki = Pki::new(&["db.example"]);
    let server = server_config(&pki.listen()).unwrap();
    let full = upstream(pki.path("ca.crt"), "localhost", TlsMode::VerifyFull);
    let err = handshake(&server, &full).await.unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
    let ca = upstream(pki.path("ca.crt"), "localhost", TlsMode::VerifyCa);
    assert!(handshake(&server, &ca).await.is_ok());
}

#[tokio::test]
async fn both_modes_refuse_a_foreign_ca() {
    let pki = Pki::new(&["localhost"]);
    let other = Pki::new(&["localhost"]);
    let server = server_config(&pki.listen()).unwrap();
    for mode in [TlsMode::VerifyFull, TlsMode::VerifyCa] {
        let up = upstream(other.path("ca.crt"), "localhost", mode);
        let err = handshake(&server, &up).await.unwrap_err();
        assert!(err.contains("invalid peer certificate"), "{mode:?}: {err}");
    }
}

#[tokio::test]
async fn client_ca_requires_a_client_certificate() {
    let pki = Pki::new(&["localhost"]);
    let mut listen = pki.listen();
    listen.tls_client_ca = Some(pki.path("ca.crt"));
    let server = server_config(&listen).unwrap();
    let up = upstream(pki.path("ca.crt"), "localhost", TlsMode::VerifyFull);
    // TLS 1.3: the client learns of the refusal on its first read, so check the server side.
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = TlsAcceptor::from(server.config.clone());
    let connector = TlsConnector::from(Arc::new(client_config(&up).unwrap()));
    let client = tokio::spawn(async move {
        let name = upstream_server_name(&up).unwrap();
        connector.connect(name, a).await.map(|_| ())
    });
    let accepted = acceptor.accept(b).await;
    let _ = client.await;
    let Err(err) = accepted else {
        panic!("server must refuse a client without a certificate")
    };
    let err = err.to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[test]
fn missing_or_empty_files_are_named() {
    let pki = Pki::new(&["localhost"]);
    let mut listen = pki.listen();
    listen.tls_cert = pki.path("nope.crt");
    let err = server_config(&listen).err().unwrap().to_string();
    assert!(err.contains("nope.crt"), "{err}");
    std::fs::write(pki.path("empty.crt"), "").unwrap();
    listen.tls_cert = pki.path("empty.crt");
    let err = server_config(&listen).err().unwrap().to_string();
    assert!(err.contains("no certificate"), "{err}");
    let mut listen = pki.listen();
    listen.tls_key = pki.path("server.crt");
    let err = server_config(&listen).err().unwrap().to_string();
    assert!(err.contains("no private key"), "{err}");
}

/// Moves every pending TLS byte from `from` to `to`.
fn transfer(
    from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
) {
    let mut bytes = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut bytes).unwrap();
    }
    let mut rd = &bytes[..];
    while !rd.is_empty() {
        to.read_tls(&mut rd).unwrap();
        to.process_new_packets().unwrap();
    }
}

#[test]
fn records_to_clients_carry_at_most_8_kb_as_postgresql_s() {
    use std::io::Write;
    let pki = Pki::new(&["localhost"]);
    let server = server_config(&pki.listen()).unwrap();
    let up = upstream(pki.path("ca.crt"), "localhost", TlsMode::VerifyFull);
    let mut client = rustls::ClientConnection::new(
        Arc::new(client_config(&up).unwrap()),
        upstream_server_name(&up).unwrap(),
    )
    .unwrap();
    let mut srv = rustls::ServerConnection::new(server.config.clone()).unwrap();
    while client.is_handshaking() || srv.is_handshaking() {
        transfer(&mut client, &mut srv);
        transfer(&mut srv, &mut client);
    }
    transfer(&mut srv, &mut client); // session tickets
    // A 48 KB response written at once, as the relay writes a batch.
    srv.writer().write_all(&[b'x'; 48 * 1024]).unwrap();
    let mut wire = Vec::new();
    while srv.wants_write() {
        srv.write_tls(&mut wire).unwrap();
    }
    let mut records = Vec::new();
    let mut rest = &wire[..];
    while !rest.is_empty() {
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        records.push(len);
        rest = &rest[5 + len..];
    }
    // TLS 1.3 adds a content-type byte and a 16-byte tag to each record's plaintext.
    assert!(records.len() >= 6, "{records:?}");
    assert!(
        records.iter().all(|&n| n <= MAX_RECORD_PLAINTEXT + 17),
        "{records:?}"
    );
    let (mut rd, mut got) = (&wire[..], 0);
    while !rd.is_empty() {
        client.read_tls(&mut rd).unwrap();
        client.process_new_packets().unwrap();
        let mut buf = [0u8; 64 * 1024];
        while let Ok(n @ 1..) = std::io::Read::read(&mut client.reader(), &mut buf) {
            got += n;
        }
    }
    assert_eq!(got, 48 * 1024);
}
